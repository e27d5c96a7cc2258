"""Shared fixtures of the harness's own tests."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def make_submission(dest: Path, *, layers: str | None = None, logreg: str | None = None,
                    replace: dict[str, tuple[str, str]] | None = None) -> Path:
    """A submission folder: the reference files, optionally edited (``{file: (old, new)}``)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("layers.py", "logistic_regression.py"):
        text = (ROOT / "solutions" / name).read_text()
        if replace and name in replace:
            old, new = replace[name]
            assert old in text, f"{old!r} not in {name}"
            text = text.replace(old, new)
        (dest / name).write_text(text)
    if layers is not None:
        (dest / "layers.py").write_text(layers)
    if logreg is not None:
        (dest / "logistic_regression.py").write_text(logreg)
    return dest


@pytest.fixture
def submission_factory(tmp_path):
    def make(name: str, **kw) -> Path:
        return make_submission(tmp_path / "subs" / name, **kw)
    return make
