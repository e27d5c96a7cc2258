"""What the three jobs of the release package share: the repository's paths, the error, the templates,
and the files an assignment spec names (each kept at its place under the spec's root)."""
from __future__ import annotations

import json
import re
import shutil
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent  #: the repository (the release reads its files)
GRADER = ROOT / "grader"

_PLACEHOLDER = re.compile(r"__([A-Z][A-Z0-9_]*)__")


class ReleaseError(RuntimeError):
    """The release could not be built consistently (the message says what is wrong)."""


def fill(text: str, name: str, **values: str) -> str:
    """``text`` with every ``__KEY__`` replaced by ``values[key]``. A placeholder without a value, or a
    value without a placeholder, is a bug of the caller and raises :class:`ReleaseError` (``name`` says
    which file): nothing is left half filled."""
    wanted = set(_PLACEHOLDER.findall(text))
    given = {k.upper() for k in values}
    if wanted != given:
        raise ReleaseError(f"template {name}: placeholders {sorted(wanted)}, values given for {sorted(given)}")
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1).lower(), values.get(m.group(1), "")), text)


def template(name: str, **values: str) -> str:
    """The text of ``grader/release/templates/<name>``, filled in (:func:`fill`).

    The templates are package data (found through :mod:`importlib.resources`, also in an installed,
    non-editable copy of the grader)."""
    text = resources.files(__package__).joinpath("templates", name).read_text(encoding="utf-8")
    return fill(text, name, **values)


def template_names() -> list[str]:
    """Every file in ``grader/release/templates/``."""
    return sorted(p.name for p in resources.files(__package__).joinpath("templates").iterdir() if p.is_file())


def phrase(items: list[str], joiner: str = "and") -> str:
    """``a, b and c``: a list in a sentence."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {joiner} {items[-1]}"


# --- the files of an assignment spec ------------------------------------------------------------------

def relative_to_root(spec, path: Path, what: str) -> str:
    """``path`` (a file the spec names) relative to the spec's root: where it goes in a release."""
    try:
        return Path(path).resolve().relative_to(spec.root).as_posix()
    except ValueError:
        raise ReleaseError(f"the assignment's {what} {path} is outside its root {spec.root}") from None


def check_files(spec) -> dict[str, Path]:
    """The check modules the spec names as ``.py`` files: path relative to the root -> the file."""
    out = {}
    for name in spec.check_modules:
        if name.endswith(".py"):
            p = (spec.root / name).resolve()
            out[relative_to_root(spec, p, "check module")] = p
    return out


def data_files(spec) -> dict[str, Path]:
    """The data files the spec ships (``[release] data``), each of which must exist."""
    out = {}
    for rel in spec.release.data:
        p = spec.root / rel
        if not p.is_file():
            raise ReleaseError(f"{rel} (named in [release] data of {spec.path}) is missing")
        out[rel] = p
    return out


def copy_tree(src: Path, dst: Path, *, skip=("__pycache__", ".ipynb_checkpoints", ".cache")) -> None:
    def ignore(_dir, names):
        return [n for n in names if n in skip or n.endswith((".pyc", ".pyo")) or n.endswith(".egg-info")]

    shutil.copytree(src, dst, ignore=ignore, dirs_exist_ok=True)


def _toml_list(items) -> str:
    return "[" + ", ".join(json.dumps(x) for x in items) + "]"


def render_spec(spec, *, root: str, student_dir: str | None, reference_dir: str | None, recorded: str | None,
                rubric: str, header: str) -> str:
    """The spec as TOML for a release or a bundle: the same assignment, its paths where that layout
    puts them (each relative to ``root``, itself relative to the written file). Check modules given as
    files and the causes keep their place under the root; the known-buggy variants are not shipped."""
    q = json.dumps
    lines = [f"# {header}", "", "[assignment]", f"name = {q(spec.name)}", f"root = {q(root)}", "",
             "[student]", f"package = {q(spec.student_package)}"]
    lines += [f"dir = {q(student_dir)}"] if student_dir else []
    lines += [f"files = {_toml_list(spec.student_files)}", f"provided = {_toml_list(spec.provided_files)}",
              f"provided_names = {_toml_list(spec.provided_names)}", "", "[reference]",
              f"package = {q(spec.reference_package)}"]
    lines += [f"dir = {q(reference_dir)}"] if reference_dir else []
    lines += [f"recorded = {q(recorded)}"] if recorded else []
    lines += ["", "[checks]", f"modules = {_toml_list(spec.check_modules)}", f"rubric = {q(rubric)}"]
    if spec.causes is not None:
        lines.append(f"causes = {q(relative_to_root(spec, spec.causes, 'causes'))}")
    for c in spec.components:
        lines += ["", "[[component]]", f"id = {q(c.id)}", f"module = {q(c.module)}", f"task = {c.task}",
                  f"short = {q(c.short)}"]
    for e in spec.end_to_end:
        lines += ["", "[[end_to_end]]", f"id = {q(e.id)}", f"protocol = {q(e.protocol)}",
                  f"trains = {_toml_list(e.trains)}", f"short = {q(e.short)}"]
    return "\n".join(lines) + "\n"
