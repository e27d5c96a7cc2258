"""Copying a submission's two student files, safely, into a scratch package folder."""
from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .archives import MAX_FILE_BYTES, IntakeError, listing  # noqa: F401  (re-exported)
from ..spec import current_spec
from .discover import Submission, shown
from .locate import read_student_files
from .notebook_cells import SKELETON
from .notebook import MAX_NOTEBOOK_BYTES, NotebookError, notebook_source, read_notebook  # noqa: F401



@dataclass
class Prepared:
    package_dir: Path
    digest: str                                       #: sha256 over the student files' bytes
    problems: dict[str, str] = field(default_factory=dict)  #: file -> why it is missing or refused
    notes: list[str] = field(default_factory=list)


def _trusted_dir(spec) -> Path:
    """The instructor's copy of the student package, where the provided files come from: the spec's
    folder, or the installed package (the provided files are identical in it)."""
    if spec.student_dir is not None:
        return spec.student_dir
    import importlib

    return Path(importlib.import_module(spec.student_package).__file__).resolve().parent


def _from_container(path: Path, kind: str) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """A folder, .zip or tar archive: listed (never extracted), the two student files located and read."""
    return read_student_files(listing(path, kind))


# --- notebooks: see notebook.py ----------------------------------------------------------------------

def _from_notebook(path: Path) -> tuple[dict[str, str], dict[str, str], list[str]]:
    try:
        files, notes = read_notebook(path)
    except NotebookError as exc:
        raise IntakeError(str(exc)) from None
    return files, {}, notes


#: What stands in for a student file the intake could not take: importing it reports the problem,
#: under its own exception type, so that the feedback does not show this code as the student's line.
STAND_IN = ('class SubmissionFileProblem(ImportError):\n    """The grader could not take this file."""\n\n\n'
            "raise SubmissionFileProblem({problem!r})\n")


def prepare(sub: Submission, scratch_root: Path) -> Prepared:
    """Write ``scratch_root/assignment/`` with the trusted provided files and the student's files."""
    if sub.kind == "rejected":  # found by discover, not a submission: the reason says what and why
        raise IntakeError(sub.note)
    if sub.kind in ("dir", "zip", "tar"):
        files, problems, notes = _from_container(sub.path, sub.kind)
    else:
        files, problems, notes = _from_notebook(sub.path)
    pkg = scratch_root / "assignment"
    pkg.mkdir(parents=True)
    spec = current_spec()
    trusted = _trusted_dir(spec)
    for name in spec.provided_files:
        shutil.copyfile(trusted / name, pkg / name)
    for name in spec.student_files:  # the skeleton, for a notebook that subclasses it (notebook_cells.SKELETON)
        if (trusted / name).is_file():
            shutil.copyfile(trusted / name, pkg / f"{SKELETON}{name}")
    h = hashlib.sha256()
    for name in spec.student_files:
        if name in files:
            text = files[name]
        else:
            # Importing the stand-in reports the intake problem as the reason for every affected check.
            text = STAND_IN.format(problem=problems[name])
        (pkg / name).write_text(text, encoding="utf-8")
        h.update(name.encode() + b"\x00" + text.encode() + b"\x00")
    if sub.note:
        notes.insert(0, sub.note)
    return Prepared(pkg, h.hexdigest(), problems, notes)
