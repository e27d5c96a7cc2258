"""Which paths are submissions, their student ids and their output folders (CONTRACT.md section 2).

The student id is the entry's name without its extension, Unicode-normalised (NFC) and otherwise
exact: ``Иванов_Иван``, ``王小明``, ``O'Brien``, ``=SUM(A1)`` and ``🦊 fox`` are ids as they are. Only
characters that cannot be shown safely anywhere (control characters, line separators, bidirectional
overrides) become ``?``. The folder a student's reports go to is a separate, filesystem-safe name
derived from the id (:func:`folder_name`), unique in the batch, and recorded in the row.

Every entry of a folder of submissions is accounted for: a submission, a ``rejected`` entry saying what
it is and what is accepted, or (for operating-system debris such as ``.DS_Store`` and ``__MACOSX``)
listed as ignored in the reconciliation.
"""
from __future__ import annotations

import hashlib
import re
import stat
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path



def student_files() -> tuple[str, ...]:
    """The files taken from a submission: the current assignment spec's (grader/spec.py)."""
    from ..spec import current_spec

    return current_spec().student_files


def files_phrase(joiner: str = "and") -> str:
    """The student files in a sentence: ``layers.py and logistic_regression.py``."""
    from ..spec import current_spec

    return current_spec().files_phrase(joiner)


def accepted() -> str:
    """What a submission may be, for messages."""
    return f"a folder, a .zip, .tar, .tar.gz or .tgz archive holding {files_phrase()}, or an .ipynb notebook"

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
OTHER_ARCHIVES = {".rar": "a RAR archive", ".7z": "a 7-Zip archive", ".gz": "a gzip-compressed file",
                  ".bz2": "a bzip2-compressed file", ".xz": "an xz-compressed file", ".zst": "a Zstandard file",
                  ".cab": "a cabinet archive", ".jar": "a Java archive", ".whl": "a wheel"}
#: names the batch writes next to the student folders: a student folder may never take one
#: (tests/test_intake.py finds every name the batch, the reports and the instructor commands write there)
RESERVED = {"gradebook.csv", "summary.md", "run.json", "junit.xml", "canvas-grades.csv", "moodle-grades.csv",
            "history.jsonl", "report.html", "shard.json", "classroom.json", "overrides.toml"}
_UNSAFE_SHOWN = {"Cc", "Zl", "Zp"}
_BIDI = {"\u061c", "\u200e", "\u200f", *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A)), "\ufeff"}
_WINDOWS_NAMES = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)


class UsageError(Exception):
    """The command itself cannot run (exit status 2): nothing to grade, a path that does not exist."""


@dataclass(frozen=True)
class Submission:
    student: str        #: the id: file or directory name without its extension (or the platform's)
    path: Path
    kind: str           #: "dir", "zip", "tar", "ipynb", or "rejected" (then ``note`` is the reason)
    note: str = ""      #: e.g. why the id was disambiguated, or why the entry is not a submission
    folder: str = ""    #: the folder under --out for this student's reports (see folder_name)
    meta: dict = field(default_factory=dict, hash=False, compare=False)  #: platform, lateness, entries, ...

    def record(self) -> dict:
        """What the row records about where the submission came from (results.json ``extra_data``)."""
        rec = {"folder": self.folder, **self.meta}
        rec["source"] = student_id(self.meta.get("source", self.path.name))  # a file name: shown safely
        if "entries" in rec:
            rec["entries"] = [student_id(e) for e in rec["entries"]]
        return rec


def _bad_char(c: str) -> bool:
    return unicodedata.category(c) in _UNSAFE_SHOWN or c in _BIDI


def shown(name: str) -> str:
    """A file name as it may appear in a message, a warning or a report.

    File names are chosen by students and may hold escape sequences, or a newline followed by
    ``::error::`` or a fake result line; printed as is, they would reach terminals and CI logs (where
    a line starting with ``::`` is a GitHub workflow command). Control and format characters become
    ``?``; the length is capped.
    """
    s = "".join("?" if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in str(name))
    return s if len(s) <= 120 else s[:117] + "..."


def student_id(name: str) -> str:
    """The id for a name: NFC, exact but for characters no report can show safely (each becomes ``?``).
    Zero-width joiners stay: emoji sequences and Persian or Indic names need them."""
    from ..report.text import clean_text  # undecodable bytes of a file name become \xNN, as in every report

    s = unicodedata.normalize("NFC", clean_text(str(name) if isinstance(name, Path) else name))
    return cap_id("".join("?" if _bad_char(c) else c for c in s))


#: ids are exact up to this many characters (a file name is at most 255 bytes; a platform's metadata
#: may say more): a longer one keeps its head, its tail and a hash of the whole, so two stay distinct
MAX_ID = 1000


def cap_id(s: str) -> str:
    if len(s) <= MAX_ID:
        return s
    h = hashlib.sha256(s.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{s[:MAX_ID - 200]}…{s[-180:]} #{h}"


def stem(path: Path) -> str:
    n = path.name
    low = n.lower()
    for suf in TAR_SUFFIXES + (".zip", ".ipynb"):
        if low.endswith(suf) and len(n) > len(suf):
            return n[: -len(suf)]
    return path.stem or n


def folder_name(student: str, taken: set[str]) -> str:
    """A folder name for ``student``'s reports: the id itself when that is safe on every common
    filesystem (no ``/ \\ : * ? " < > |``, no control characters, no leading dot, dash or space, no
    trailing dot or space, no Windows device name, at most 150 UTF-8 bytes) and not yet ``taken``
    (compared case-insensitively, for macOS and Windows); otherwise a cleaned name plus a short hash
    of the id, so two ids never share a folder. Adds the result to ``taken``."""
    s = "".join("_" if c in '/\\:*?"<>|' or unicodedata.category(c)[0] == "C" and c not in "\u200c\u200d" else c
                for c in unicodedata.normalize("NFC", student))
    s = s.strip(" .")
    if s[:1] in ("-", "~"):
        s = "_" + s[1:]
    raw = s.encode("utf-8")
    if len(raw) > 150:
        s = raw[:150].decode("utf-8", "ignore")
    clean = s == student and s and not _WINDOWS_NAMES.match(s)
    name = s if clean else f"{s or 'student'}-{hashlib.sha256(student.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
    n = 2
    base = name
    while name.casefold() in taken or name.casefold() in RESERVED:
        name = f"{base}-{n}"
        n += 1
    taken.add(name.casefold())
    return name


def is_submission_dir(path: Path) -> bool:
    return any((path / f).exists() or (path / "assignment" / f).exists() for f in student_files())


def is_wrapped_submission_dir(path: Path) -> bool:
    """One student's folder whose only folder is a repository download wrapping the files
    (``Иванова Анна/hw1-main/assignment/layers.py``, or ``.../hw1-main/layers.py`` when the wrapper is
    named ``*-main``/``*-master`` or is a clone): graded as that student, not as a batch of one.
    A lone student folder holding the files directly (``batch/alice/layers.py``) stays a batch."""
    try:
        dirs = [k for k in path.iterdir() if not k.name.startswith(".") and k.name != "__MACOSX"
                and k.is_dir() and not k.is_symlink()]
    except OSError:
        return False
    if len(dirs) != 1 or dirs[0].name == "assignment":
        return False
    w = dirs[0]
    if any((w / "assignment" / f).is_file() for f in student_files()):
        return True
    repo = w.name.lower().endswith(("-main", "-master")) or (w / ".git").exists()
    return repo and any((w / f).is_file() for f in student_files())


def classify(path: Path) -> tuple[str, str]:
    """(kind, reason): the kind of submission an entry is, or "rejected" and what it was found to be."""
    try:
        st = path.lstat()
    except OSError as exc:
        return "rejected", f"{shown(path.name)} could not be read ({exc.strerror or exc}); accepted: {accepted()}"
    low = path.name.lower()
    if stat.S_ISLNK(st.st_mode):
        return "rejected", (f"{shown(path.name)} is a symbolic link, which is not followed; submit the folder "
                            f"or file itself ({accepted()})")
    if stat.S_ISDIR(st.st_mode):
        try:
            empty = not any(not e.name.startswith(".") and e.name != "__MACOSX" for e in path.iterdir())
        except OSError as exc:
            return "rejected", f"the folder {shown(path.name)} could not be read ({exc.strerror or exc})"
        return ("rejected", f"{shown(path.name)} is an empty folder; accepted: {accepted()}") if empty else ("dir", "")
    if not stat.S_ISREG(st.st_mode):
        return "rejected", f"{shown(path.name)} is not a regular file (a pipe, socket or device); accepted: {accepted()}"
    if low.endswith(".zip"):
        return "zip", ""
    if low.endswith(TAR_SUFFIXES):
        return "tar", ""
    if low.endswith(".ipynb"):
        return "ipynb", ""
    suffix = Path(low).suffix
    if suffix in OTHER_ARCHIVES:
        what = f"{OTHER_ARCHIVES[suffix]}, a format the grader does not open"
    elif suffix == ".py":
        what = ("a single Python file; a submission needs both " + files_phrase() + " together"
                if len(student_files()) > 1 else "a single Python file; submit it in a folder or an archive")
    else:
        what = f"a file of another type ({shown(suffix) or 'no extension'})"
    return "rejected", f"{shown(path.name)} is {what}. Accepted: {accepted()}."


def finalize(items: list[Submission], warnings: list[str]) -> list[Submission]:
    """Unique ids (a duplicate takes its alternative id, then a counter) and a folder for each."""
    by_id: dict[str, list[Submission]] = {}
    for s in items:
        by_id.setdefault(s.student, []).append(s)
    out, used = [], set(by_id)
    for sid, subs in by_id.items():
        if len(subs) == 1:
            out.append(subs[0])
            continue
        names = ", ".join(shown(s.meta.get("source", s.path.name)) for s in subs)
        warnings.append(f"duplicate student id {shown(sid)!r} ({names}): each is graded and reported, "
                        "under the ids listed in its row")
        kept = False
        for s in subs:
            alt = student_id(s.meta.get("alt_id") or s.path.name)
            new, n = alt, 2
            if alt == sid and not kept:
                kept = True  # the one whose full name is the id keeps it (alice/ beside alice.zip)
            else:
                while new in used:
                    new, n = f"{alt} ({n})", n + 1
            used.add(new)
            note = f"duplicate student id {shown(sid)!r}: graded as {shown(new)!r}"
            out.append(Submission(new, s.path, s.kind, note=(s.note + "; " if s.note else "") + note,
                                  meta={**s.meta, "duplicate_of": sid}))
    out.sort(key=lambda s: s.student)
    taken: set[str] = set()
    return [Submission(s.student, s.path, s.kind, s.note, folder_name(s.student, taken), s.meta) for s in out]
