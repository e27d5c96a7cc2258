"""What the three jobs of the release package share: the repository's paths, the error, the templates."""
from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent  #: the repository (the release reads its files)
GRADER = ROOT / "grader"
MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
               "t10k-labels-idx1-ubyte.gz", "README.md", "SHA256SUMS")

_PLACEHOLDER = re.compile(r"__([A-Z][A-Z0-9_]*)__")


class ReleaseError(RuntimeError):
    """The release could not be built consistently (the message says what is wrong)."""


def template(name: str, **values: str) -> str:
    """The text of ``grader/release/templates/<name>`` with every ``__KEY__`` replaced by ``values[key]``.

    The templates are package data (found through :mod:`importlib.resources`, also in an installed,
    non-editable copy of the grader). A placeholder without a value, or a value without a
    placeholder, is a bug of the caller and raises :class:`ReleaseError`: nothing is left half filled."""
    text = resources.files(__package__).joinpath("templates", name).read_text(encoding="utf-8")
    wanted = set(_PLACEHOLDER.findall(text))
    given = {k.upper() for k in values}
    if wanted != given:
        raise ReleaseError(f"template {name}: placeholders {sorted(wanted)}, values given for {sorted(given)}")
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1).lower(), values.get(m.group(1), "")), text)


def template_names() -> list[str]:
    """Every file in ``grader/release/templates/``."""
    return sorted(p.name for p in resources.files(__package__).joinpath("templates").iterdir() if p.is_file())
