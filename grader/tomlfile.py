"""Reading the TOML files an instructor writes (rubric, assignment spec, overrides) with one kind of
error message: which file, and whether it could not be read or is not valid TOML."""
from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def read_toml(path: Path, what: str, error: type[Exception]) -> tuple[dict, bytes]:
    """The table in ``path`` and its bytes; ``error(message)`` naming ``what`` (e.g. "rubric") if it
    cannot be read or parsed."""
    try:
        raw = Path(path).read_bytes()
        return tomllib.loads(raw.decode()), raw
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{what} {path} is not valid TOML: {exc}") from None
