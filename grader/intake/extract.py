"""Copying a submission's two student files, safely, into a scratch package folder."""
from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .archives import MAX_FILE_BYTES, IntakeError, is_junk, listing  # noqa: F401  (re-exported)
from ..spec import current_spec
from .discover import Submission, shown
from .locate import read_student_files
from .notebook_cells import SKELETON
from .notebook import MAX_NOTEBOOK_BYTES, NotebookError, notebook_modules, notebook_source, read_notebook  # noqa: F401



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


#: a notebook inside an archive is read into memory up to this size (a bigger one: submit it as it is)
MAX_ZIPPED_NOTEBOOK_BYTES = 64 << 20


def _from_container(path: Path, kind: str) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """A folder, .zip or tar archive: listed (never extracted), the two student files located and read;
    an archive (or folder) holding no student file but one notebook is that notebook (a learning
    platform that takes only archives: ``hw1.zip`` with ``HW1.ipynb``)."""
    lst = listing(path, kind)
    try:
        return read_student_files(lst)
    except IntakeError:
        nb = _only_notebook(lst)
        if nb is None:
            raise
    if nb.size > MAX_ZIPPED_NOTEBOOK_BYTES:
        raise IntakeError(f"{shown('/'.join(nb.parts))} in {shown(lst.label)} is {nb.size} bytes, over the "
                          f"limit of {MAX_ZIPPED_NOTEBOOK_BYTES} for a notebook inside an archive: submit the "
                          "notebook itself")
    try:
        raw = lst.reader(nb, limit=MAX_ZIPPED_NOTEBOOK_BYTES + 1)
        files, notes = notebook_modules(raw, nb.name)
    except (ValueError, NotebookError) as exc:
        raise IntakeError(str(exc)) from None
    where = f"graded the notebook {shown('/'.join(nb.parts))}, the only submission in {shown(lst.label)}"
    return files, {}, [where, *lst.notes, *notes]


def _only_notebook(lst):
    """The one notebook of a listing (checkpoints and debris aside), or None."""
    books = [e for e in lst.entries if e.kind == "file" and e.name.lower().endswith(".ipynb")
             and not any(is_junk(p) or p == ".ipynb_checkpoints" for p in e.parts)]
    return books[0] if len(books) == 1 else None


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
