"""Where in a submission the two student files are (CONTRACT.md section 2), and reading them.

At the top, under ``assignment/``, or under one chain of single wrapping folders (at most three, what
a repository's "Download ZIP" gives: ``hw1-main/assignment/layers.py``); ``__MACOSX``, dot-files and
``__pycache__`` never count as a folder. Failing that, one folder anywhere that holds them is used;
several such folders are ambiguous and the submission is refused with them listed. The feedback says
where the files were found whenever that is not the top or ``assignment/``.
"""
from __future__ import annotations

import io
import re
import tokenize

from .archives import MAX_FILE_BYTES, MAX_WRAP, Entry, IntakeError, Listing, canonical, is_junk
from .discover import files_phrase, shown, student_files


_COOKIE = re.compile(r"^([ \t\f]*#.*?coding[:=][ \t]*)([-\w.]+)")  #: PEP 263, on line 1 or 2


def decode_source(name: str, data: bytes) -> str:
    """The text of a student's source file, read as Python reads it: UTF-8 (a BOM allowed), or the
    encoding its PEP 263 line declares (``# -*- coding: cp1251 -*-``, common on Russian Windows),
    which is then rewritten to say utf-8, as the grader stores the file in UTF-8."""
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{name} is {len(data)} bytes, over the limit of {MAX_FILE_BYTES}")
    try:
        declared, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:
        if "unknown encoding" in str(exc):
            raise ValueError(f"{name}: its coding line names an encoding Python does not know ({exc})") from None
        declared = "utf-8"  # not UTF-8 and no coding line: the decoding below says where
    codec = "utf-8-sig" if declared in ("utf-8", "utf-8-sig") else declared
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        said = "UTF-8 text" if codec == "utf-8-sig" else f"text in {declared}, the encoding its coding line declares"
        raise ValueError(f"{name} is not {said} (byte {exc.start}); save it as UTF-8, or declare the encoding "
                         "it is in on its first line (# -*- coding: cp1251 -*-)") from None
    if codec != "utf-8-sig":
        head = text.split("\n", 2)
        for i in range(min(2, len(head))):
            if _COOKIE.match(head[i]):
                head[i] = _COOKIE.sub(lambda m: m.group(1) + "utf-8", head[i], count=1)
                break
        text = "\n".join(head)
    if "\x00" in text:
        raise ValueError(f"{name} contains NUL bytes: it is not a Python source file")
    return text


def _where(parts: tuple[str, ...]) -> str:
    return shown("/".join(parts) + "/") if parts else "the top level"


class _Tree:
    def __init__(self, lst: Listing):
        self.kids = lst.children()
        self.all = [e for e in lst.entries if not any(is_junk(p) for p in e.parts)]

    def entry(self, parts: tuple[str, ...]) -> Entry | None:
        return next((e for e in self.kids.get(parts[:-1], []) if e.name == parts[-1]), None)

    def student(self, d: tuple[str, ...]) -> dict[str, Entry]:
        best: dict[str, tuple[int, Entry]] = {}
        for e in self.kids.get(d, []):
            c = None if e.kind == "dir" or is_junk(e.name) else canonical(e.name)
            if c and (c[0] not in best or c[1] < best[c[0]][0]):
                best[c[0]] = (c[1], e)
        return {k: v[1] for k, v in best.items()}

    def subdirs(self, d: tuple[str, ...]) -> list[Entry]:
        return [e for e in self.kids.get(d, []) if e.kind == "dir" and not is_junk(e.name)]


def _chain(t: _Tree) -> tuple[tuple[str, ...] | None, tuple[str, ...], Entry | None]:
    """(base, level, link): the folder holding the files along the wrapping chain, if any."""
    level: tuple[str, ...] = ()
    for depth in range(MAX_WRAP + 1):
        a = t.entry(level + ("assignment",))
        if a is not None and a.kind == "dir" and t.student(a.parts):
            return a.parts, level, None
        if t.student(level):
            return level, level, None
        if a is not None and a.kind == "link":
            return None, level, a
        subs = t.subdirs(level)
        if len(subs) != 1 or depth == MAX_WRAP:
            break
        level = subs[0].parts
    return None, level, None


def _candidates(t: _Tree) -> list[tuple[str, ...]]:
    dirs = sorted({e.parts[:-1] for e in t.all if e.kind != "dir" and canonical(e.name)})
    dirs = [d for d in dirs if t.student(d)]
    return [d for d in dirs if d + ("assignment",) not in dirs]


def _all_files() -> str:
    n = len(student_files())
    return "both files" if n == 2 else "its file" if n == 1 else f"all {n} files"


def locate(lst: Listing) -> tuple[dict[str, Entry], dict[str, str], list[str]]:
    """(chosen entry per student file, problems per missing file, notes). Raises IntakeError when
    the submission holds no student file at all, or several folders that could be the submission."""
    t = _Tree(lst)
    notes = list(lst.notes)
    base, level, link = _chain(t)
    if link is not None:
        msg = f"{_where(link.parts)[:-1]} is a symbolic link, which is not followed"
        return {}, {f: msg for f in student_files()}, notes
    if base is None:
        cands = _candidates(t)
        if len(cands) > 1:
            listed = "; ".join(_where(c) for c in cands[:8]) + ("; ..." if len(cands) > 8 else "")
            raise IntakeError(f"{shown(lst.label)} holds the student files in {len(cands)} different folders "
                              f"({listed}): it is not clear which one is the submission. Submit one folder "
                              f"with {files_phrase()}.")
        if not cands:
            seen = sorted({e.parts[0] for e in t.all})
            found = ", ".join(shown(s) for s in seen[:10]) + (", ..." if len(seen) > 10 else "") or "nothing"
            raise IntakeError(f"{shown(lst.label)} holds no {files_phrase('or')} (found: {found}). "
                              f"A submission holds {_all_files()} at its top, under assignment/, or in one folder.")
        base = cands[0]
    chosen = t.student(base)
    other = level if base != level else level + ("assignment",)
    for name, e in t.student(other).items():
        if name not in chosen:
            chosen[name] = e
    if base not in ((), ("assignment",)):
        notes.append(f"student files found under {_where(base)}")
    problems = {}
    for name in student_files():
        if name in chosen:
            continue
        elsewhere = [e for e in t.all if e.kind != "dir" and (canonical(e.name) or ("",))[0] == name]
        if len(elsewhere) == 1:
            chosen[name] = elsewhere[0]
            notes.append(f"{name} found under {_where(elsewhere[0].parts[:-1])}")
        else:
            problems[name] = (f"{name} was not found in the submission (looked at {_where(base)}"
                              + (" and under assignment/)" if base == level else ")"))
    for name, e in chosen.items():
        if e.name != name:
            notes.append(f"{shown(e.name)} was used as {name}")
    return chosen, problems, notes


def read_student_files(lst: Listing) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """(text per student file, problem per file that cannot be used, notes)."""
    chosen, problems, notes = locate(lst)
    files = {}
    for name, e in chosen.items():
        if e.kind == "link":
            problems[name] = f"{name} is a symbolic link; links are refused, submit the file itself"
        elif e.kind != "file":
            problems[name] = f"{name} is not a regular file"
        elif e.size > MAX_FILE_BYTES:
            problems[name] = f"{name} is {e.size} bytes, over the limit of {MAX_FILE_BYTES}"
        else:
            try:
                data = lst.reader(e)  # every reader turns its failures into ValueError with the message
            except ValueError as exc:
                problems[name] = str(exc)
                continue
            try:
                files[name] = decode_source(name, data)
            except ValueError as exc:
                problems[name] = str(exc)
    return files, problems, notes
