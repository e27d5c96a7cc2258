"""The student release (``grader release OUT``): the folder students clone or unpack.

Everything homework-specific comes from the current assignment spec: the skeleton package, the
notebooks (outputs stripped) and data files of its ``[release]`` table, its README (or a generic one,
``templates/student-README.md``), the students' CI workflow, pyproject.toml
(``templates/student-pyproject.toml``), and a ``grader`` that runs the public checks and nothing
more: the modules :mod:`.closure` ships, the check modules the spec names, the public part of its
rubric, the spec itself (in the place of the release's default spec) and the reference's recorded
answers (:mod:`.recording`). It holds no reference code, no hidden check (``grader/checks/hidden/``
is never copied) and no grading machinery; :func:`assert_clean` verifies that on every build before
the folder appears.
"""
from __future__ import annotations

import ast
import json
import os
import shutil
import tempfile
from pathlib import Path

from .. import __version__
from ..reference import package_dir
from ..spec import DEFAULT_PATH, current_spec
from .closure import NEVER_SHIPPED, shake
from .common import GRADER, ROOT, ReleaseError, check_files, copy_tree, data_files, fill, relative_to_root
from .common import phrase, render_spec, template
from .recording import RECORDING, public_specs, record_public_reference

WORKFLOWS = GRADER / "templates" / "workflows"
PYTHON = "3.10"


def public_rubric_toml() -> str:
    """The assignment's rubric cut to the checks ``grader check`` runs (so it loads against the shipped registry)."""
    from ..scoring.rubric import load_rubric

    r = load_rubric()
    public = {s.id for s in public_specs()}
    tests = current_spec().end_to_end_ids
    more = f", and the end-to-end tests ({', '.join(tests)})" if tests else ""
    lines = ["# The public part of the rubric: the points of the checks `grader check` runs.",
             f"# Official grading adds hidden cases of these checks, more checks{more}.", "",
             "[rubric]", f"name = {json.dumps(r.name)}", f"public_share = {r.public_share!r}",
             f"partial_credit = {'true' if r.partial_credit else 'false'}", "", "[checks]"]
    lines += [f"{json.dumps(cid)} = {pts!r}" for cid, pts in r.checks.items() if cid in public]
    return "\n".join(lines) + "\n"


def _slug(name: str) -> str:
    return "-".join(w for w in "".join(ch.lower() if ch.isalnum() else " " for ch in name).split()) or "homework"


def student_pyproject(spec) -> str:
    import tomllib

    main = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = [d for d in main["project"].get("dependencies", []) if not d.lower().startswith("scikit-learn")]
    rel = spec.release
    return template("student-pyproject.toml", version=__version__,
                    requires_python=main["project"].get("requires-python", ">=3.10"),
                    dependencies="".join(f"    {json.dumps(d)},\n" for d in deps),
                    project=rel.project or f"{_slug(spec.name)}-homework",
                    description=json.dumps(rel.description or f"{spec.name}: the homework, with the public "
                                           "checks of its autograder"),
                    package=json.dumps(spec.student_package))



def student_readme(spec) -> str:
    """The spec's own README for students (``[release] readme``), else one written from the spec."""
    if spec.release.readme:
        return fill((spec.root / spec.release.readme).read_text(encoding="utf-8"), spec.release.readme,
                    python=PYTHON)
    pkg = spec.student_package
    where = "; ".join(f"{phrase([c.id for c in spec.components if f'{c.module}.py' == f])} in `{pkg}/{f}`"
                      for f in spec.student_files)
    return template("student-README.md", title=spec.name, python=PYTHON, package=pkg, where=where,
                    components=", ".join(spec.component_ids), first=spec.component_ids[0],
                    files=phrase([f"`{pkg}/{f}`" for f in spec.student_files]))


def _copy_notebooks(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for nb in sorted(src.glob("*.ipynb")):
        data = json.loads(nb.read_text(encoding="utf-8"))
        for cell in data.get("cells", []):  # never ship outputs of a run with the reference
            if cell.get("cell_type") == "code":
                cell["outputs"] = []
                cell["execution_count"] = None
        (dst / nb.name).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    readme = src / "README.md"
    if readme.is_file():
        shutil.copyfile(readme, dst / "README.md")


def _write(stage: Path, rel: str, text: str) -> None:
    p = stage / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")


def _write_grader(stage: Path, spec) -> None:
    """The student's ``grader``: the shipped modules, the spec, its check files, causes, public rubric
    and the recorded answers of the reference."""
    for rel, text in shake().items():
        _write(stage, rel, text)
    rubric = relative_to_root(spec, spec.rubric, "rubric")
    _write(stage, rubric, public_rubric_toml())
    spec_rel = DEFAULT_PATH.relative_to(ROOT).as_posix()  # the release's default spec: the released one
    root = "/".join([".."] * (spec_rel.count("/")))
    _write(stage, spec_rel, render_spec(spec, root=root, student_dir=None, reference_dir=None,
                                        recorded=f"grader/{RECORDING}", rubric=rubric,
                                        header=f"{spec.name}: the assignment of this release (public checks only)."))
    for rel, src in check_files(spec).items():
        _write(stage, rel, src.read_text(encoding="utf-8"))
    if spec.causes is not None:
        _write(stage, relative_to_root(spec, spec.causes, "causes"), spec.causes.read_text(encoding="utf-8"))
    record_public_reference(stage / "grader" / RECORDING)


def write_release_files(stage: Path) -> None:
    """Everything of the release of the current assignment, into the (empty) folder ``stage``."""
    spec = current_spec()
    _write_grader(stage, spec)
    copy_tree(package_dir(spec, "skeleton"), stage / spec.student_package)
    if spec.release.notebooks:
        _copy_notebooks(spec.root / spec.release.notebooks, stage / spec.release.notebooks)
    for rel, src in data_files(spec).items():
        (stage / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, stage / rel)
    (stage / "pyproject.toml").write_text(student_pyproject(spec), encoding="utf-8")
    (stage / "README.md").write_text(student_readme(spec), encoding="utf-8")
    wf = stage / ".github" / "workflows"
    wf.mkdir(parents=True)
    shutil.copyfile(WORKFLOWS / "student-check.yml", wf / "check.yml")
    (stage / ".gitignore").write_text(template("student.gitignore"), encoding="utf-8")


def build_release(out: Path) -> Path:
    """Write the student distribution of the current assignment into ``out`` (created; must be empty or absent)."""
    spec = current_spec()
    out = Path(out).resolve()
    if out.exists() and any(out.iterdir()):
        raise ReleaseError(f"{out} exists and is not empty; give a new folder")
    packages = ("grader", spec.student_package, spec.reference_package)
    if out == ROOT or ROOT in out.parents and out.parts[len(ROOT.parts)] in packages:
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

def reference_snippets(spec=None) -> list[str]:
    """Distinctive lines of the reference's forward/backward bodies (absent from the skeleton)."""
    spec = spec or current_spec()
    skel, ref = package_dir(spec, "skeleton"), package_dir(spec, "reference")
    skeleton = "".join((skel / f).read_text() for f in spec.student_files)
    out = []
    for f in spec.student_files:
        src = (ref / f).read_text()
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
    """Function names of the assignment's hidden-only checks (those registered from ``grader/checks/hidden/``)."""
    from ..checks import REGISTRY

    ids = set(current_spec().component_ids)
    return sorted(s.func.__name__ for s in REGISTRY.values() if not s.public and s.component in ids)


def assert_clean(stage: Path) -> None:
    """Refuse a release that holds the reference, a hidden-only check, or a never-shipped package."""
    spec = current_spec()
    problems = []
    if spec.reference_package and (stage / spec.reference_package).exists():
        problems.append(f"{spec.reference_package}/ is present")
    for pkg in NEVER_SHIPPED:
        if (stage.joinpath(*pkg.split("."))).exists():
            problems.append(f"{pkg.replace('.', '/')}/ is present")
    snippets = reference_snippets(spec)
    hidden = [f"def {name}(" for name in hidden_check_names()]
    for p in stage.rglob("*"):
        if p.is_file() and p.suffix in (".py", ".ipynb", ".md", ".toml", ".yml", ".txt"):
            text = p.read_text(encoding="utf-8", errors="replace")
            problems += [f"{p.relative_to(stage)} contains the reference line {s!r}" for s in snippets if s in text]
            problems += [f"{p.relative_to(stage)} defines the hidden check {h[4:-1]}" for h in hidden if h in text]
    if problems:
        raise ReleaseError("the release would leak what students must not have: " + "; ".join(problems[:10]))
