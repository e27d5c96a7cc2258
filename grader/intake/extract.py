"""Copying a submission's two student files, safely, into a scratch package folder."""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .discover import STUDENT_FILES, Submission, shown
from .notebook import MAX_NOTEBOOK_BYTES, NotebookError, notebook_source, read_notebook  # noqa: F401

MAX_FILE_BYTES = 512 * 1024
MAX_ZIP_ENTRIES = 5000
PROVIDED = ("module.py", "gradcheck.py")


class IntakeError(Exception):
    """The submission as a whole cannot be graded (status ``rejected``), with the reason."""


@dataclass
class Prepared:
    package_dir: Path
    digest: str                                       #: sha256 over the student files' bytes
    problems: dict[str, str] = field(default_factory=dict)  #: file -> why it is missing or refused
    notes: list[str] = field(default_factory=list)


def _trusted_dir() -> Path:
    import assignment  # the installed, instructor's copy: provided files are identical in it

    return Path(assignment.__file__).resolve().parent


def _decode(name: str, data: bytes) -> str:
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{name} is {len(data)} bytes, over the limit of {MAX_FILE_BYTES}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{name} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    if "\x00" in text:
        raise ValueError(f"{name} contains NUL bytes: it is not a Python source file")
    return text


def _from_dir(root: Path) -> tuple[dict[str, str], dict[str, str], list[str]]:
    files, problems, notes = {}, {}, []
    if root.is_symlink():
        raise IntakeError(f"{root.name} is a symbolic link; submit the folder itself")
    base = root
    sub = root / "assignment"
    if sub.is_dir() and not sub.is_symlink() and any((sub / f).exists() or (sub / f).is_symlink() for f in STUDENT_FILES):
        base = sub
        if any((root / f).exists() for f in STUDENT_FILES):
            notes.append("student files found both at the top and under assignment/: assignment/ was used")
    elif sub.is_symlink():
        problems.update({f: "assignment/ is a symbolic link, which is not followed" for f in STUDENT_FILES})
        return files, problems, notes
    for name in STUDENT_FILES:
        path = base / name
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            problems[name] = f"{name} was not found in the submission (looked at its top level and under assignment/)"
            continue
        if stat.S_ISLNK(st.st_mode):
            problems[name] = f"{name} is a symbolic link; links are refused, submit the file itself"
            continue
        if not stat.S_ISREG(st.st_mode):
            problems[name] = f"{name} is not a regular file"
            continue
        if st.st_size > MAX_FILE_BYTES:
            problems[name] = f"{name} is {st.st_size} bytes, over the limit of {MAX_FILE_BYTES}"
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as fh:
                data = fh.read(MAX_FILE_BYTES + 1)
            files[name] = _decode(name, data)
        except (OSError, ValueError) as exc:
            problems[name] = str(exc)
    return files, problems, notes


def _from_zip(path: Path) -> tuple[dict[str, str], dict[str, str], list[str]]:
    try:
        zf = zipfile.ZipFile(path)
    except Exception as exc:  # a hostile archive can make zipfile raise almost anything: all mean "unreadable"
        raise IntakeError(f"{shown(path.name)} is not a readable zip archive ({shown(str(exc))})") from None
    files, problems, notes = {}, {}, []
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_ZIP_ENTRIES:
            raise IntakeError(f"{shown(path.name)} holds {len(infos)} entries, over the limit of {MAX_ZIP_ENTRIES}")
        for info in infos:
            n = info.filename
            if n.startswith("/") or "\\" in n or ".." in n.split("/") or (len(n) > 1 and n[1] == ":"):
                raise IntakeError(f"{shown(path.name)}: entry {shown(repr(n))} has an absolute path or leaves the archive's "
                                  "folder; such archives are refused")
        candidates = {}
        for info in infos:
            parts = [p for p in info.filename.split("/") if p]
            if not parts or parts[0] == "__MACOSX" or info.is_dir():
                continue
            if parts[-1] in STUDENT_FILES:
                depth = len(parts)
                prev = candidates.get(parts[-1])
                if prev is None or depth < prev[0] or (depth == prev[0] and "assignment" in parts[:-1]):
                    candidates[parts[-1]] = (depth, info)
        for name in STUDENT_FILES:
            if name not in candidates:
                problems[name] = f"{name} was not found in the archive"
                continue
            info = candidates[name][1]
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                problems[name] = f"{name} is a symbolic link inside the archive; links are refused"
                continue
            if info.flag_bits & 0x1:
                problems[name] = f"{name} is encrypted in the archive"
                continue
            if info.file_size > MAX_FILE_BYTES:
                problems[name] = f"{name} is {info.file_size} bytes, over the limit of {MAX_FILE_BYTES}"
                continue
            try:
                with zf.open(info) as fh:
                    data = fh.read(MAX_FILE_BYTES + 1)
                files[name] = _decode(name, data)
            except Exception as exc:  # BadZipFile, zlib.error (corrupt deflate data), LZMAError, EOFError, ...
                problems[name] = f"{name} could not be read from the archive ({shown(str(exc))})"
    return files, problems, notes


# --- notebooks: see notebook.py ----------------------------------------------------------------------

def _from_notebook(path: Path) -> tuple[dict[str, str], dict[str, str], list[str]]:
    try:
        files, notes = read_notebook(path)
    except NotebookError as exc:
        raise IntakeError(str(exc)) from None
    return files, {}, notes


def prepare(sub: Submission, scratch_root: Path) -> Prepared:
    """Write ``scratch_root/assignment/`` with the trusted provided files and the student's files."""
    if sub.kind == "dir":
        files, problems, notes = _from_dir(sub.path)
    elif sub.kind == "zip":
        files, problems, notes = _from_zip(sub.path)
    else:
        files, problems, notes = _from_notebook(sub.path)
    pkg = scratch_root / "assignment"
    pkg.mkdir(parents=True)
    trusted = _trusted_dir()
    for name in PROVIDED:
        shutil.copyfile(trusted / name, pkg / name)
    h = hashlib.sha256()
    for name in STUDENT_FILES:
        if name in files:
            text = files[name]
        else:
            # Importing the stand-in reports the intake problem as the reason for every affected check.
            text = f"raise ImportError({problems[name]!r})\n"
        (pkg / name).write_text(text, encoding="utf-8")
        h.update(name.encode() + b"\x00" + text.encode() + b"\x00")
    if sub.note:
        notes.insert(0, sub.note)
    return Prepared(pkg, h.hexdigest(), problems, notes)
