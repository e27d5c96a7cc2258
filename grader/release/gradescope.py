"""The Gradescope autograder bundle (``grader gradescope OUT.zip``).

Gradescope unpacks the zip into ``/autograder/source`` and copies ``run_autograder`` to
``/autograder/run_autograder``. So the zip holds, at its root: ``setup.sh`` and ``run_autograder``
(``templates/setup.sh``, ``templates/run_autograder.sh``, filled in from the assignment spec), which
find everything else in ``$AUTOGRADER_ROOT/source``, and the project: the whole grader,
``pyproject.toml`` (``setup.sh`` installs it), the data files of the spec, the rubric and the
assignment's secret. The default homework's reference and skeleton are packages at the root, as in
this repository; another assignment's spec comes in ``spec/`` (:data:`SPEC_DIR`) with the files it
names (skeleton, reference, check modules, rubric, causes), and ``run_autograder`` grades with it. The
bundle is the instructor's: students never see it, so the hidden checks (``grader/checks/hidden/``) are
in it.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path

from ..reference import package_dir
from ..spec import current_spec
from .common import (GRADER, ROOT, ReleaseError, check_files, data_files, phrase, relative_to_root, render_spec,
                     template)

#: packages only the notebooks or the batch grader need, left out of the Gradescope image
NOT_FOR_GRADING = ("matplotlib", "ipykernel", "nbclient", "nbconvert")
_SKIPPED_PARTS = ("__pycache__", ".cache", ".ipynb_checkpoints")
SPEC_DIR = "spec"  #: where the bundle holds an assignment that is not the grader's own
SPEC_FILE = "assignment.toml"


def grading_deps() -> list[str]:
    """The grader's dependencies (pyproject.toml) that grading needs, as pip requirement strings."""
    import tomllib

    main = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = [d for d in main["project"].get("dependencies", [])
            if not re.split(r"[<>=!~; \[]", d, maxsplit=1)[0].lower() in NOT_FOR_GRADING]
    if not any(d.lower().startswith("threadpoolctl") for d in deps):
        deps.append("threadpoolctl>=3.1")
    return deps


def shell_quote(s: str) -> str:
    """``s`` as one single-quoted bash word."""
    return "'" + s.replace("'", "'\"'\"'") + "'"


def setup_script(spec=None) -> str:
    """``setup.sh`` with the dependencies and the reference's import name filled in."""
    spec = spec or current_spec()
    return template("setup.sh", deps=" ".join(shell_quote(d) for d in grading_deps()),
                    reference_package=shell_quote(spec.reference_package))



def run_autograder_script(spec=None) -> str:
    """``run_autograder`` with the student files, their package and the spec's place filled in."""
    spec = spec or current_spec()
    files = list(spec.student_files)
    missing = (f"no {phrase(files, 'or')} (nor a single notebook) was found in the submission; upload "
               + phrase([f"{spec.student_package}/{f}" for f in files], "and"))
    return template("run_autograder.sh", student_files=" ".join(shell_quote(f) for f in files),
                    student_package=shell_quote(spec.student_package), nothing_found=shell_quote(missing),
                    spec_file=shell_quote(f"{SPEC_DIR}/{SPEC_FILE}"))


def _tree_files(src: Path, prefix: str) -> dict[str, tuple[bytes, int]]:
    out = {}
    for p in sorted(src.rglob("*")):
        rel = p.relative_to(src)
        if any(part in _SKIPPED_PARTS or part.endswith(".egg-info") for part in rel.parts) \
                or p.suffix in (".pyc", ".pyo") or not p.is_file() or p.is_symlink():
            continue
        out[f"{prefix}/{rel.as_posix()}"] = (p.read_bytes(), 0o644)
    return out


def _spec_files(spec) -> dict[str, tuple[bytes, int]]:
    """An assignment that is not the grader's own, under ``spec/``: its spec (paths where the bundle
    puts them), skeleton, reference, the check modules it names as files, its rubric and causes."""
    student, reference = spec.student_package, spec.reference_package or "reference"
    files = {**_tree_files(package_dir(spec, "skeleton"), f"{SPEC_DIR}/{student}"),
             **_tree_files(package_dir(spec, "reference"), f"{SPEC_DIR}/{reference}")}
    named = {**check_files(spec), relative_to_root(spec, spec.rubric, "rubric"): spec.rubric}
    if spec.causes is not None:
        named[relative_to_root(spec, spec.causes, "causes")] = spec.causes
    for rel, src in named.items():
        files[f"{SPEC_DIR}/{rel}"] = (src.read_bytes(), 0o644)
    text = render_spec(spec, root=".", student_dir=student, reference_dir=reference, recorded=None,
                       rubric=relative_to_root(spec, spec.rubric, "rubric"),
                       header=f"{spec.name}: the assignment this bundle grades.")
    files[f"{SPEC_DIR}/{SPEC_FILE}"] = (text.encode(), 0o644)
    return files


def bundle_files(rubric_bytes: bytes, spec=None) -> dict[str, tuple[bytes, int]]:
    """Every file of the bundle of ``spec`` (default: the current assignment): zip name -> (content, mode)."""
    spec = spec or current_spec()
    files: dict[str, tuple[bytes, int]] = _tree_files(GRADER, "grader")
    if spec.is_default:  # the grader's own homework: its packages at the root, as in the repository
        for which, pkg in (("skeleton", spec.student_package), ("reference", spec.reference_package)):
            files.update(_tree_files(package_dir(spec, which), pkg))
    else:
        files.update(_spec_files(spec))
    for rel, src in data_files(spec).items():
        files[rel] = (src.read_bytes(), 0o644)
    files["pyproject.toml"] = ((ROOT / "pyproject.toml").read_bytes(), 0o644)
    readme = ROOT / "README.md"
    files["README.md"] = (readme.read_bytes() if readme.is_file() else template("bundle-README.md").encode(), 0o644)
    files["rubric.toml"] = (rubric_bytes, 0o644)
    # One secret for the whole assignment, combined in run_autograder with the student and submission
    # ids (--per-student-secret): every submission gets its own hidden cases, and a regrade of it the
    # same ones. The bundle is the instructor's; students never see it.
    files["grader-secret.txt"] = (secrets.token_hex(16).encode() + b"\n", 0o600)
    files["setup.sh"] = (setup_script(spec).encode(), 0o755)
    files["run_autograder"] = (run_autograder_script(spec).encode(), 0o755)
    return files


def _write_zip(out_zip: Path, files: dict[str, tuple[bytes, int]]) -> None:
    """Written to a temporary file beside ``out_zip``, then renamed: never a half-written bundle.
    Fixed timestamps, so two bundles of the same files differ only in their secret."""
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_zip.parent, prefix=".tmp-", suffix=".zip")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name in sorted(files):
                data, mode = files[name]
                info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                info.external_attr = (stat.S_IFREG | mode) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, data)
        os.replace(tmp, out_zip)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def build_gradescope_bundle(out_zip: Path, rubric: str | None) -> Path:
    """Write the Gradescope autograder zip of the current assignment: setup.sh, run_autograder and the
    project, at its root. ``rubric``: the rubric to bundle (default: the assignment's own)."""
    from ..scoring.rubric import load_rubric

    out_zip = Path(out_zip).resolve()
    if load_rubric(rubric).late is not None:  # refuses an invalid rubric now rather than on Gradescope
        raise ReleaseError("the rubric has a [late] table, which grader grade applies to a batch; on Gradescope "
                           "set the late policy in the assignment's settings and bundle a rubric without [late]")
    rubric_bytes = Path(rubric).read_bytes() if rubric else current_spec().rubric.read_bytes()
    _write_zip(out_zip, bundle_files(rubric_bytes))
    return out_zip


def extract_bundle(zip_path: Path, dest: Path) -> Path:
    """Lay a bundle out as Gradescope does: the zip unpacked into ``dest/source``, keeping file modes,
    and ``run_autograder`` copied to ``dest/run_autograder``. Returns ``dest`` (``AUTOGRADER_ROOT``)."""
    dest = Path(dest)
    source = dest / "source"
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            target = source / info.filename
            if not target.resolve().is_relative_to(source.resolve()):
                raise ReleaseError(f"bad entry {info.filename!r} in {zip_path}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(info))
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(target, mode)
    if not (source / "run_autograder").is_file():
        raise ReleaseError(f"{zip_path} has no run_autograder at its root")
    shutil.copy2(source / "run_autograder", dest / "run_autograder")
    return dest
