"""The student release (``grader release OUT``): the folder students clone or unpack.

It holds the skeleton package, the notebooks (outputs stripped), MNIST, the students' CI workflow,
a README and pyproject.toml (``templates/student-README.md``, ``templates/student-pyproject.toml``)
and a ``grader`` that runs the public checks and nothing more: the modules :mod:`.closure` ships,
the public part of the rubric, and the reference's recorded answers (:mod:`.recording`). It holds
no reference code, no hidden check (``grader/checks/hidden/`` is never copied) and no grading
machinery; :func:`assert_clean` verifies that on every build before the folder appears.
"""
from __future__ import annotations

import ast
import json
import os
import shutil
import tempfile
from pathlib import Path

from .. import __version__
from .closure import NEVER_SHIPPED, shake
from .common import GRADER, MNIST_FILES, ROOT, ReleaseError, template
from .recording import RECORDING, record_public_reference

WORKFLOWS = GRADER / "templates" / "workflows"
STUDENT_FILES = ("layers.py", "logistic_regression.py")
PYTHON = "3.10"


def public_rubric_toml() -> str:
    """The default rubric cut to the checks ``grader check`` runs (so it loads against the shipped registry)."""
    from ..checks import REGISTRY
    from ..scoring.rubric import load_rubric

    r = load_rubric()
    lines = ["# The public part of the rubric: the points of the checks `grader check` runs.",
             "# Official grading adds hidden cases of these checks, more checks, and the MNIST tests.", "",
             "[rubric]", f"name = {json.dumps(r.name)}", f"public_share = {r.public_share!r}",
             f"partial_credit = {'true' if r.partial_credit else 'false'}", "", "[checks]"]
    lines += [f"{json.dumps(cid)} = {pts!r}" for cid, pts in r.checks.items() if REGISTRY[cid].public]
    return "\n".join(lines) + "\n"


def student_pyproject() -> str:
    import tomllib

    main = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = [d for d in main["project"].get("dependencies", []) if not d.lower().startswith("scikit-learn")]
    return template("student-pyproject.toml", version=__version__,
                    requires_python=main["project"].get("requires-python", ">=3.10"),
                    dependencies="".join(f"    {json.dumps(d)},\n" for d in deps))


def _copy_tree(src: Path, dst: Path, *, skip=("__pycache__", ".ipynb_checkpoints", ".cache")) -> None:
    def ignore(_dir, names):
        return [n for n in names if n in skip or n.endswith((".pyc", ".pyo")) or n.endswith(".egg-info")]

    shutil.copytree(src, dst, ignore=ignore, dirs_exist_ok=True)


def _copy_notebooks(dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        data = json.loads(nb.read_text(encoding="utf-8"))
        for cell in data.get("cells", []):  # never ship outputs of a run with the reference
            if cell.get("cell_type") == "code":
                cell["outputs"] = []
                cell["execution_count"] = None
        (dst / nb.name).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    readme = ROOT / "notebooks" / "README.md"
    if readme.is_file():
        shutil.copyfile(readme, dst / "README.md")


def _copy_mnist(dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in MNIST_FILES:
        src = ROOT / "data" / "mnist" / name
        if not src.is_file():
            raise ReleaseError(f"data/mnist/{name} is missing from the repository")
        shutil.copyfile(src, dst / name)


def write_release_files(stage: Path) -> None:
    """Everything of the release, into the (empty) folder ``stage``."""
    for rel, text in shake().items():
        p = stage / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    (stage / "grader" / "scoring" / "default_rubric.toml").write_text(public_rubric_toml(), encoding="utf-8")
    from ..spec import DEFAULT_PATH

    (stage / "grader" / "assignments").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DEFAULT_PATH, stage / "grader" / "assignments" / DEFAULT_PATH.name)  # the assignment spec
    record_public_reference(stage / "grader" / RECORDING)
    _copy_tree(ROOT / "assignment", stage / "assignment")
    _copy_notebooks(stage / "notebooks")
    _copy_mnist(stage / "data" / "mnist")
    (stage / "pyproject.toml").write_text(student_pyproject(), encoding="utf-8")
    (stage / "README.md").write_text(template("student-README.md", python=PYTHON), encoding="utf-8")
    wf = stage / ".github" / "workflows"
    wf.mkdir(parents=True)
    shutil.copyfile(WORKFLOWS / "student-check.yml", wf / "check.yml")
    (stage / ".gitignore").write_text(template("student.gitignore"), encoding="utf-8")


def build_release(out: Path) -> Path:
    """Write the student distribution into ``out`` (created; must be empty or absent)."""
    out = Path(out).resolve()
    if out.exists() and any(out.iterdir()):
        raise ReleaseError(f"{out} exists and is not empty; give a new folder")
    if out == ROOT or ROOT in out.parents and out.parts[len(ROOT.parts)] in ("grader", "assignment", "solutions"):
        raise ReleaseError(f"{out} is inside the repository's packages; give a folder elsewhere")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".release-", dir=out.parent))  # same file system: renamed at the end
    try:
        write_release_files(stage)
        assert_clean(stage)
        os.chmod(stage, 0o755)  # mkdtemp made it private
        if out.exists():
            out.rmdir()
        os.replace(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out


# --- what must never be in it -----------------------------------------------------------------------

def reference_snippets() -> list[str]:
    """Distinctive lines of the reference's forward/backward bodies (absent from the skeleton)."""
    skeleton = "".join((ROOT / "assignment" / f).read_text() for f in STUDENT_FILES)
    out = []
    for f in STUDENT_FILES:
        src = (ROOT / "solutions" / f).read_text()
        lines = src.splitlines()
        for cls in (n for n in ast.parse(src).body if isinstance(n, ast.ClassDef)):
            for fn in (n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name in ("forward", "backward")):
                body = fn.body[1:] if ast.get_docstring(fn) is not None else fn.body
                for st in body:
                    for line in lines[st.lineno - 1: st.end_lineno]:
                        s = line.strip()
                        if len(s) >= 24 and s not in skeleton and not s.startswith("#"):
                            out.append(s)
    return sorted(set(out))


def hidden_check_names() -> list[str]:
    """Function names of the hidden-only checks (those registered from ``grader/checks/hidden/``)."""
    from ..checks import REGISTRY

    return sorted(s.func.__name__ for s in REGISTRY.values() if not s.public)


def assert_clean(stage: Path) -> None:
    """Refuse a release that holds the reference, a hidden-only check, or a never-shipped package."""
    problems = []
    if (stage / "solutions").exists():
        problems.append("solutions/ is present")
    for pkg in NEVER_SHIPPED:
        if (stage.joinpath(*pkg.split("."))).exists():
            problems.append(f"{pkg.replace('.', '/')}/ is present")
    snippets = reference_snippets()
    hidden = [f"def {name}(" for name in hidden_check_names()]
    for p in stage.rglob("*"):
        if p.is_file() and p.suffix in (".py", ".ipynb", ".md", ".toml", ".yml", ".txt"):
            text = p.read_text(encoding="utf-8", errors="replace")
            problems += [f"{p.relative_to(stage)} contains the reference line {s!r}" for s in snippets if s in text]
            problems += [f"{p.relative_to(stage)} defines the hidden check {h[4:-1]}" for h in hidden if h in text]
    if problems:
        raise ReleaseError("the release would leak what students must not have: " + "; ".join(problems[:10]))
