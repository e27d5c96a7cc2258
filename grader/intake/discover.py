"""Which paths are submissions, and their student ids (CONTRACT.md section 2)."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

STUDENT_FILES = ("layers.py", "logistic_regression.py")


class UsageError(Exception):
    """The command itself cannot run (exit status 2): nothing to grade, a path that does not exist."""


@dataclass(frozen=True)
class Submission:
    student: str        #: the id: file or directory name without its extension
    path: Path
    kind: str           #: "dir", "zip" or "ipynb"
    note: str = ""      #: e.g. why the id was disambiguated


def _kind(path: Path) -> str | None:
    if path.is_dir():
        return "dir"
    suffix = path.suffix.lower()
    if suffix == ".zip":
        return "zip"
    if suffix == ".ipynb":
        return "ipynb"
    return None


def is_submission_dir(path: Path) -> bool:
    return any((path / f).exists() or (path / "assignment" / f).exists() for f in STUDENT_FILES)


def shown(name: str) -> str:
    """A file name as it may appear in a message, a warning or a report.

    File names are chosen by students and may hold escape sequences, or a newline followed by
    ``::error::`` or a fake result line; printed as is, they would reach terminals and CI logs (where
    a line starting with ``::`` is a GitHub workflow command). Control and format characters become
    ``?``; the length is capped.
    """
    s = "".join("?" if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in str(name))
    return s if len(s) <= 120 else s[:117] + "..."


def safe_id(name: str) -> str:
    """A student id usable as a folder name and a CSV cell: odd characters become ``_``."""
    cleaned = re.sub(r"[^A-Za-z0-9._@+-]", "_", name).strip("._") or "student"
    return cleaned[:100]


def discover(path: str | Path) -> tuple[list[Submission], list[str]]:
    """The submissions under ``path`` and warnings about what was skipped.

    A directory holding a student file (at its top or under ``assignment/``), a ``.zip`` or an
    ``.ipynb`` is one submission; any other directory is a folder of submissions, one per entry.
    """
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{p} does not exist")
    kind = _kind(p)
    if kind in ("zip", "ipynb") or (kind == "dir" and is_submission_dir(p)):
        return [Submission(safe_id(p.stem if kind != "dir" else p.name), p, kind)], []
    if kind is None:
        raise UsageError(f"{p} is neither a folder, a .zip nor an .ipynb file")
    warnings, found = [], []
    for entry in sorted(p.iterdir(), key=lambda e: e.name):
        if entry.name.startswith((".", "__")) or entry.name.lower().startswith("readme"):
            continue
        k = _kind(entry)
        if entry.is_symlink():
            warnings.append(f"{shown(entry.name)}: skipped, symbolic links are not followed")
            continue
        if k is None:
            warnings.append(f"{shown(entry.name)}: skipped, not a folder, .zip or .ipynb")
            continue
        found.append(Submission(safe_id(entry.stem if k != "dir" else entry.name), entry, k))
    if not found:
        raise UsageError(f"no submissions found in {p}: expected sub-folders, .zip or .ipynb files"
                         + (f" ({len(warnings)} other entries skipped)" if warnings else ""))
    by_id: dict[str, list[Submission]] = {}
    for s in found:
        by_id.setdefault(s.student, []).append(s)
    out = []
    for sid, subs in by_id.items():
        if len(subs) == 1:
            out.append(subs[0])
            continue
        names = ", ".join(shown(s.path.name) for s in subs)
        warnings.append(f"duplicate student id {sid!r} ({names}): each is graded under its full file name")
        for s in subs:
            out.append(Submission(safe_id(s.path.name), s.path, s.kind,
                                  note=f"duplicate student id {sid!r}: graded as {safe_id(s.path.name)!r}"))
    out.sort(key=lambda s: s.student)
    return out, warnings
