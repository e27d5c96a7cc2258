"""The inside of a submission — a folder, a .zip or a tar archive — as one listing, and where in it the
two student files are.

Nothing is ever extracted: the listing holds names, kinds and sizes, and only the two chosen student
files are read, each with a byte cap. Links and devices are listed but never followed or read; an
entry with an absolute path or a ``..`` component refuses the whole archive (it can only be hostile).
Zips written on Windows (backslash separators, names in the OEM code page or UTF-8 without the flag)
and on macOS (``__MACOSX/``, ``._*`` AppleDouble files, ``.DS_Store``) are read like any other.
"""
from __future__ import annotations

import os
import re
import stat
import tarfile
import zipfile
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from .discover import shown, student_files

MAX_FILE_BYTES = 512 * 1024           #: one student file
MAX_ENTRIES = 20_000                  #: entries listed in one submission
MAX_ARCHIVE_BYTES = 256 * 1024 * 1024  #: an archive file on disk
MAX_TAR_EXPANDED = 512 * 1024 * 1024  #: bytes a tar may declare in total (its stream is read to list it)
MAX_DEPTH = 12
MAX_WRAP = 3                          #: wrapping folders unwrapped above the student files
_VARIANT = re.compile(r"^(?P<stem>.+?)(?:-(?P<n>\d{1,3})| ?\((?P<p>\d{1,3})\))?\.py$", re.IGNORECASE)


class IntakeError(Exception):
    """The submission as a whole cannot be graded (status ``rejected``), with the reason."""


@dataclass
class Entry:
    parts: tuple[str, ...]
    kind: str          #: "file", "dir", "link" or "special"
    size: int = 0
    ref: object = None  #: ZipInfo, TarInfo or Path

    @property
    def name(self) -> str:
        return self.parts[-1]


@dataclass
class Listing:
    label: str                                   #: the submission's name, for messages
    entries: list[Entry]
    reader: object = None                        #: callable(entry, limit=...) -> bytes (capped)
    notes: list[str] = field(default_factory=list)

    def children(self) -> dict[tuple[str, ...], list[Entry]]:
        out: dict[tuple[str, ...], list[Entry]] = {}
        known = {e.parts for e in self.entries}
        for e in list(self.entries):
            for i in range(1, len(e.parts)):  # zips often omit the entries of folders
                p = e.parts[:i]
                if p not in known:
                    known.add(p)
                    self.entries.append(Entry(p, "dir"))
        for e in self.entries:
            out.setdefault(e.parts[:-1], []).append(e)
        return out


def is_junk(name: str) -> bool:
    """Entries an operating system or a tool adds: never a student's choice of where files go."""
    return name.startswith(".") or name in ("__MACOSX", "__pycache__", "Thumbs.db", "desktop.ini")


def canonical(name: str) -> tuple[str, int] | None:
    """Which student file a file name is, and how closely: 0 exact, else a rename a platform or a
    browser makes (``layers-1.py``, ``layers (2).py``, ``Layers.py``), ranked so the latest wins."""
    files = student_files()
    if name in files:
        return name, 0
    m = _VARIANT.match(name)
    if not m:
        return None
    stem = m.group("stem").lower() + ".py"
    if stem not in files:
        return None
    n = m.group("n") or m.group("p")
    return stem, (1000 - int(n)) if n else 1001


def _last_copies(label: str, entries: list[Entry]) -> tuple[list[Entry], list[str]]:
    """An archive may hold one path twice (``zip -u``, an appended re-upload): the last copy is the
    one ``unzip``, Python's ``zipfile.read`` and ``tar -x`` leave, so it is the one graded, and said."""
    last: dict[tuple[str, ...], Entry] = {}
    count: dict[tuple[str, ...], int] = {}
    for e in entries:
        last.pop(e.parts, None)  # re-inserted: the order is that of the last copies
        last[e.parts] = e
        count[e.parts] = count.get(e.parts, 0) + 1
    notes = [f"{shown('/'.join(p))} appears {n} times in {shown(label)}; the last copy was used "
             "(as unzip and tar extract it)" for p, n in count.items() if n > 1 and canonical(p[-1])]
    return list(last.values()), notes


# --- listings --------------------------------------------------------------------------------------

def _check_name(label: str, raw: str) -> tuple[str, ...]:
    n = raw.replace("\\", "/")
    parts = tuple(p for p in n.split("/") if p not in ("", "."))
    if n.startswith("/") or re.match(r"^[A-Za-z]:", n) or ".." in parts:
        raise IntakeError(f"{shown(label)}: entry {shown(repr(raw))} has an absolute path or leaves the archive's "
                          "folder; such archives are refused")
    return parts


def _zip_name(info: zipfile.ZipInfo) -> str:
    n = info.filename
    if info.flag_bits & 0x800 or n.isascii():
        return n
    try:  # no UTF-8 flag: zipfile decoded cp437; Windows and macOS tools often wrote UTF-8 anyway
        raw = n.encode("cp437")
        return raw.decode("utf-8")
    except UnicodeEncodeError:
        return n
    except UnicodeDecodeError:
        return _cp866(raw) or n


def _cyrillic(c: str) -> bool:
    return "\u0400" <= c <= "\u04ff"


def _cp866(raw: bytes) -> str:
    """A name Russian Windows wrote in its OEM code page (cp866), or "" when that is not clearly it:
    every non-ASCII character must be a Cyrillic letter, and none may touch a Latin letter (``Müller``
    read as cp866 is ``MБller``: it stays cp437)."""
    s = raw.decode("cp866", "replace")
    if any(not c.isascii() and not _cyrillic(c) for c in s):
        return ""
    for a, b in zip(s, s[1:]):
        if (_cyrillic(a) and b.isascii() and b.isalpha()) or (_cyrillic(b) and a.isascii() and a.isalpha()):
            return ""
    return s


def _zip_kind(info: zipfile.ZipInfo) -> str:
    mode = info.external_attr >> 16
    if info.is_dir():
        return "dir"
    fmt = stat.S_IFMT(mode) if info.create_system == 3 else 0
    if fmt == stat.S_IFLNK:
        return "link"
    if fmt and fmt not in (stat.S_IFREG, stat.S_IFDIR):  # no type bits at all (Python's writestr): a file
        return "special"
    return "file"


def _size_cap(path: Path) -> None:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise IntakeError(f"{shown(path.name)} could not be read ({exc.strerror or exc})") from None
    if size > MAX_ARCHIVE_BYTES:
        raise IntakeError(f"{shown(path.name)} is {size} bytes, over the limit of {MAX_ARCHIVE_BYTES} for an archive")


def list_zip(path: Path) -> Listing:
    _size_cap(path)
    try:
        zf = zipfile.ZipFile(path)
        infos = zf.infolist()
    except Exception as exc:  # a hostile archive can make zipfile raise almost anything: all mean "unreadable"
        raise IntakeError(f"{shown(path.name)} is not a readable zip archive ({shown(str(exc))})") from None
    if len(infos) > MAX_ENTRIES:
        raise IntakeError(f"{shown(path.name)} holds {len(infos)} entries, over the limit of {MAX_ENTRIES}")
    entries = []
    for info in infos:
        parts = _check_name(path.name, _zip_name(info))
        if parts:
            entries.append(Entry(parts, _zip_kind(info), info.file_size, info))
    entries, notes = _last_copies(path.name, entries)

    def read(e: Entry, limit: int = MAX_FILE_BYTES + 1) -> bytes:
        if e.ref.flag_bits & 0x1:
            raise ValueError(f"{e.name} is encrypted in the archive")
        try:
            with zipfile.ZipFile(path) as z, z.open(e.ref) as fh:
                return fh.read(limit)
        except Exception as exc:  # BadZipFile, zlib.error (corrupt deflate data), LZMAError, EOFError, ...
            raise ValueError(f"{e.name} could not be read from the archive ({shown(str(exc))})") from None

    return Listing(path.name, entries, read, notes)


def list_tar(path: Path) -> Listing:
    _size_cap(path)
    entries, total = [], 0
    try:
        with tarfile.open(path, "r:*") as tf:
            while True:
                m = tf.next()  # one header at a time: the caps apply before the stream goes further
                if m is None:
                    break
                if len(entries) >= MAX_ENTRIES:
                    raise IntakeError(f"{shown(path.name)} holds more than {MAX_ENTRIES} entries, over the limit")
                total += max(m.size, 0)
                if total > MAX_TAR_EXPANDED:
                    raise IntakeError(f"{shown(path.name)} expands to more than {MAX_TAR_EXPANDED} bytes, over the limit")
                parts = _check_name(path.name, m.name)
                kind = ("dir" if m.isdir() else "file" if m.isreg() else
                        "link" if (m.issym() or m.islnk()) else "special")
                if parts:
                    entries.append(Entry(parts, kind, m.size, m.name))
    except IntakeError:
        raise
    except Exception as exc:  # ReadError, EOFError, zlib/lzma errors, OSError: all mean "unreadable"
        raise IntakeError(f"{shown(path.name)} is not a readable tar archive ({shown(str(exc))})") from None

    def read(e: Entry, limit: int = MAX_FILE_BYTES + 1) -> bytes:
        try:
            with tarfile.open(path, "r:*") as tf:
                m = tf.getmember(e.ref)
                if not m.isreg():  # checked again: getmember returns the last member of that name
                    raise ValueError(f"{e.name} is not a regular file in the archive")
                return tf.extractfile(m).read(limit)
        except ValueError:
            raise
        except Exception as exc:
            raise ValueError(f"{e.name} could not be read from the archive ({shown(str(exc))})") from None

    entries, notes = _last_copies(path.name, entries)
    return Listing(path.name, entries, read, notes)


def list_dir(root: Path) -> Listing:
    """Breadth first, links never followed, dot-folders (``.git``) listed but not entered."""
    if root.is_symlink():
        raise IntakeError(f"{shown(root.name)} is a symbolic link; submit the folder itself")
    entries: list[Entry] = []
    queue = deque([((), root)])
    notes = []
    while queue:
        parts, d = queue.popleft()
        try:
            with os.scandir(d) as it:
                items = sorted(it, key=lambda x: x.name)
        except OSError as exc:
            if not parts:
                raise IntakeError(f"{shown(root.name)} could not be read ({exc.strerror or exc})") from None
            notes.append(f"{shown('/'.join(parts))}/ could not be read ({exc.strerror or exc})")
            continue
        for it in items:
            p = parts + (it.name,)
            try:
                st = it.stat(follow_symlinks=False)
            except OSError:
                continue
            kind = ("link" if stat.S_ISLNK(st.st_mode) else "dir" if stat.S_ISDIR(st.st_mode)
                    else "file" if stat.S_ISREG(st.st_mode) else "special")
            entries.append(Entry(p, kind, st.st_size, Path(it.path)))
            if len(entries) >= MAX_ENTRIES:
                notes.append(f"only the first {MAX_ENTRIES} entries of {shown(root.name)} were looked at")
                return Listing(root.name, entries, _read_path, notes)
            if kind == "dir" and len(p) < MAX_DEPTH and not is_junk(it.name):
                queue.append((p, Path(it.path)))
    return Listing(root.name, entries, _read_path, notes)


def _read_path(e: Entry, limit: int = MAX_FILE_BYTES + 1) -> bytes:
    try:
        fd = os.open(e.ref, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise ValueError(f"{e.name} is not a regular file")
            return fh.read(limit)
    except OSError as exc:
        raise ValueError(f"{e.name} could not be read ({exc.strerror or exc})") from None


def listing(path: Path, kind: str) -> Listing:
    return {"dir": list_dir, "zip": list_zip, "tar": list_tar}[kind](path)
