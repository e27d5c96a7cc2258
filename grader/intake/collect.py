"""``collect``: from the path given to ``grader grade`` to the list of submissions, every entry
accounted for, with the reconciliation the batch prints and records (entries found = rows written)."""
from __future__ import annotations

import atexit
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .archives import IntakeError, MAX_ARCHIVE_BYTES, is_junk, list_zip
from .discover import Submission, UsageError, classify, finalize, is_submission_dir, is_wrapped_submission_dir, shown, stem, student_id
from . import platforms

LAYOUTS = ("auto", "plain", "canvas", "moodle", "gradescope", "classroom")
MAX_UNPACKED = 2 * MAX_ARCHIVE_BYTES
MAX_MEMBER = 64 * 1024 * 1024


@dataclass
class Found:
    subs: list[Submission]
    warnings: list[str] = field(default_factory=list)
    layout: str = "single"
    entries: list[str] = field(default_factory=list)   #: top-level entries of the folder given
    ignored: list[str] = field(default_factory=list)   #: of those, debris and the grader's own files

    def reconciliation(self) -> dict:
        used = sorted({e for s in self.subs for e in s.meta.get("entries", [])})
        unaccounted = sorted(set(self.entries) - set(used) - set(self.ignored))
        return {"layout": self.layout, "entries_found": len(self.entries), "ignored": [student_id(n) for n in self.ignored],
                "entries_in_submissions": len(used), "submissions": len(self.subs),
                "rejected": sum(s.kind == "rejected" for s in self.subs),
                "unaccounted": [student_id(n) for n in unaccounted],
                # rows built from several entries (a platform's per-student files): said, never hidden
                "grouped": {s.student: [student_id(e) for e in s.meta["entries"]]
                            for s in self.subs if len(s.meta.get("entries", [])) > 1},
                "balanced": not unaccounted}


def grouped_text(rec: dict) -> str:
    """The rows built from several entries, for the reconciliation line ("" when there are none)."""
    grouped = rec.get("grouped") or {}
    if not grouped:
        return ""
    some = "; ".join(f"{shown(k)} <- {len(v)} entries" for k, v in list(grouped.items())[:5])
    return (f"; {sum(map(len, grouped.values()))} entries grouped into {len(grouped)} rows by the "
            f"{rec.get('layout')} naming ({some}{'; ...' if len(grouped) > 5 else ''})")


def _staging(staging: Path | None) -> Path:
    if staging is not None:
        staging.mkdir(parents=True, exist_ok=True)
        return staging
    d = Path(tempfile.mkdtemp(prefix="bpg-intake-"))
    atexit.register(shutil.rmtree, d, True)
    return d


#: what a README beside the submissions is written in (a ``README_john.zip`` is a submission, and a row)
README_SUFFIXES = {"", ".md", ".markdown", ".txt", ".rst", ".html", ".htm", ".pdf", ".rtf", ".doc", ".docx", ".odt"}


def _ignored(e: Path, exclude: tuple[Path, ...]) -> bool:
    """Debris (``.DS_Store``, ``__MACOSX``, ``._*``), a README document, and the grader's own output or roster."""
    readme = e.name.lower().startswith("readme") and Path(e.name).suffix.lower() in README_SUFFIXES
    if is_junk(e.name) or (readme and e.is_file() and not e.is_symlink()):
        return True
    try:
        return any(e.resolve() == x.resolve() for x in exclude)
    except OSError:
        return False


def _zip_layout(path: Path, warnings: list[str] | None = None) -> str:
    """Whether a .zip is a platform's bulk download rather than one student's submission."""
    try:
        entries = list_zip(path).entries
    except IntakeError:
        return "plain"
    tops = {e.parts[0] for e in entries if not is_junk(e.parts[0])}
    names = [e.parts for e in entries]
    if any(p[-1] == platforms.GRADESCOPE_META and len(p) <= 2 for p in names):
        return "gradescope"
    if tops and sum(bool(platforms.MOODLE.match(t)) for t in tops) * 2 > len(tops):
        return "moodle"
    flat = [p[0] for p in names if len(p) == 1]
    if flat and sum(platforms.canvas_named(n) for n in flat) * 2 > len(tops):
        doubt = platforms.canvas_doubt(flat)
        if not doubt:
            return "canvas"
        if warnings is not None:
            warnings.append(f"{shown(path.name)}: {doubt}; taken as one submission instead "
                            "(give --layout canvas if it really is a Canvas download)")
    return "plain"


def _unpack(path: Path, dest: Path, warnings: list[str]) -> Path:
    """A platform's bulk zip written out under ``dest``: regular files only, each path checked (no
    absolute path, no ``..``: the listing refuses those), each member and the total capped. Never
    ``extractall``."""
    import zipfile

    lst = list_zip(path)
    total = 0
    with zipfile.ZipFile(path) as zf:
        for e in lst.entries:
            if e.kind != "file" or any(p.startswith("__MACOSX") for p in e.parts):
                continue
            if e.size > MAX_MEMBER or total + e.size > MAX_UNPACKED:
                warnings.append(f"{shown('/'.join(e.parts))} in {shown(path.name)} is too large and was not unpacked")
                continue
            total += e.size
            target = dest.joinpath(*e.parts)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(e.ref) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
            except Exception as exc:  # corrupt member, odd name: that member is missing, the rest goes on
                warnings.append(f"{shown('/'.join(e.parts))} in {shown(path.name)} could not be unpacked "
                                f"({shown(str(exc))})")
    return dest


def _single_root(root: Path) -> Path:
    """An unpacked bulk download wrapped in one folder (Gradescope's ``assignment_..._export/``)."""
    kids = [k for k in root.iterdir() if not is_junk(k.name)]
    return kids[0] if len(kids) == 1 and kids[0].is_dir() else root


def collect(path: str | Path, *, layout: str = "auto", staging: Path | None = None,
            exclude: tuple[Path, ...] = ()) -> Found:
    p = Path(path)
    if layout not in LAYOUTS:
        raise UsageError(f"unknown layout {layout!r}; one of {', '.join(LAYOUTS)}")
    if not p.exists() and not p.is_symlink():
        raise UsageError(f"{p} does not exist")
    warnings: list[str] = []
    if not p.is_dir():
        kind, reason = classify(p)
        lay = layout if layout != "auto" else (_zip_layout(p, warnings) if kind == "zip" else "plain")
        if kind == "zip" and lay != "plain":
            d = _staging(staging) / "unpacked"
            root = _single_root(_unpack(p, d, warnings))
            found = collect(root, layout=lay, staging=_staging(staging) / "groups", exclude=exclude)
            found.warnings[:0] = warnings
            return found
        if kind == "rejected":
            raise UsageError(f"{reason}")
        sub = Submission(student_id(stem(p)), p, kind, meta={"entries": [p.name]})
        return Found(finalize([sub], warnings), warnings, "single", [p.name])
    # Given alone, a folder is one submission when it holds the student files (or a repository download
    # wrapping them); a folder holding a notebook is a folder of submissions (CONTRACT section 2: the
    # notebook's own name is the id), as it is in a batch only one level down (platforms.folder_content).
    if layout in ("auto", "plain") and (is_submission_dir(p) or is_wrapped_submission_dir(p)):
        path, kind = platforms.folder_content(p)
        note = f"graded {shown(path.name)}, the only submission in the folder {shown(p.name)}" if path != p else ""
        sub = Submission(student_id(p.name), path, kind, note, meta={"entries": [p.name], "source": p.name})
        return Found(finalize([sub], warnings), warnings, "single", [p.name])
    try:
        all_entries = sorted(p.iterdir(), key=lambda e: e.name)
    except OSError as exc:
        raise UsageError(f"{p} could not be read ({exc.strerror or exc})") from None
    ignored = [e for e in all_entries if _ignored(e, exclude)]
    entries = [e for e in all_entries if e not in ignored]
    lay = layout if layout != "auto" else platforms.detect(p, entries, warnings)
    if lay == "gradescope" and (p / platforms.GRADESCOPE_META) in ignored:
        ignored.remove(p / platforms.GRADESCOPE_META)
    if not entries:
        raise UsageError(f"no submissions found in {p}: it is empty"
                         + (f" but for {len(ignored)} ignored entries" if ignored else ""))
    try:
        items = platforms.GROUPERS[lay](p, entries, _staging(staging))
    except (OSError, ValueError) as exc:  # e.g. an unreadable or malformed submission_metadata.yml
        raise UsageError(f"{p} could not be read as a {lay} download: {shown(str(exc))}") from None
    if lay == "gradescope":
        ignored.append(p / platforms.GRADESCOPE_META)
    for s in items:
        if s.kind == "rejected":
            warnings.append(f"{shown(s.meta.get('source') or s.path.name)}: rejected, {s.note}")
    subs = finalize(items, warnings)
    return Found(subs, warnings, lay, [e.name for e in all_entries], [e.name for e in ignored])


def discover(path: str | Path, *, layout: str = "auto", staging: Path | None = None,
             exclude: tuple[Path, ...] = ()) -> tuple[list[Submission], list[str]]:
    """The submissions under ``path`` and warnings. See :func:`collect`, which
    also returns the reconciliation of entries found against submissions."""
    found = collect(path, layout=layout, staging=staging, exclude=exclude)
    return found.subs, found.warnings
