"""Learning-platform bulk downloads: one submission per student, the id from the platform's naming.

* **Canvas** ("Download Submissions"): flat files ``<name>_<userid>_<submissionid>_<file>``, where
  ``<name>`` is the student's last and first name run together in lower case; a late submission has
  ``_LATE`` after the name; a file re-uploaded under the same name is renamed ``layers-1.py``. The id
  is ``<name>``; the Canvas user id is kept as ``lms_id``; ``late`` is whether ``LATE`` was there.
* **Moodle** ("Download all submissions"): a folder per student and plugin,
  ``<Full Name>_<participant>_assignsubmission_file_`` (or flat files with that prefix when the
  download was not in folders). The id is the full name; the participant number is ``lms_id``.
* **Gradescope** (export of submissions): ``submission_metadata.yml`` beside one folder per submission,
  each listed with its ``:submitters:`` (``:name:``, ``:sid:``, ``:email:``) and ``:created_at:``. The id
  is the submitter's ``sid`` (else email, else name); a group submission gives one row per member.
* **GitHub Classroom** (the clones of an assignment's repositories): folders ``<assignment>-<login>``;
  the id is the GitHub login.

A file or folder among them that does not follow the platform's naming is taken as a plain entry.
Detection from names alone is conservative: a Canvas download is recognised only by the full naming
(lower-case name, numeric user id and submission id), and never when that grouping would merge
several stand-alone submissions (``hw1_2024_ivanov.zip``, ``hw1_2024_petrova.zip``) into one student;
then the folder is plain, one row per entry, with a warning (:func:`canvas_doubt`).
"""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from .archives import canonical, is_junk
from .discover import Submission, accepted, classify, shown, student_files, student_id

MAX_METADATA_BYTES = 16 * 1024 * 1024
CANVAS = re.compile(r"^(?P<name>[^_]+)(?P<late>_LATE)?_(?P<uid>\d+)(?:_(?P<sub>\d+))?_(?P<file>.+)$")
MOODLE = re.compile(r"^(?P<name>.+?)_(?P<pid>\d+)_assign(?:submission|feedback)_(?P<plugin>[a-z]+)_(?P<rest>.*)$")
GRADESCOPE_META = "submission_metadata.yml"


_REUPLOAD = re.compile(r"^(?P<base>.+?)(?:-\d{1,3})?(?P<ext>\.(?:zip|ipynb|tgz|tar(?:\.[a-z0-9]+)?))$", re.IGNORECASE)


def canvas_named(name: str) -> bool:
    """Canvas's own naming: ``lastnamefirstname[_LATE]_<userid>_<submissionid>_<file>`` (lower case)."""
    m = CANVAS.match(name)
    return bool(m and m["sub"] and m["name"] == m["name"].lower())


def canvas_doubt(names: list[str]) -> str:
    """Why grouping these file names as a Canvas download would merge distinct students, or "".

    In a Canvas download each student's files share ``<name>_<userid>``; a student submits one
    archive or notebook (a re-upload is ``hw1-1.zip``). Several stand-alone submissions of different
    names under one ``<name>_<userid>`` (``hw1_2024_01_ivanov.zip``, ``hw1_2024_01_smith.zip``), for
    most of the entries, are several students named by another scheme."""
    boxes: dict[tuple[str, str], dict[str, str]] = {}
    named = 0
    for n in names:
        m = CANVAS.match(n)
        named += bool(m)
        r = _REUPLOAD.match(m["file"]) if m else None
        if r:
            boxes.setdefault((m["name"], m["uid"]), {}).setdefault((r["base"] + r["ext"]).lower(), m["file"])
    merged = {k: v for k, v in boxes.items() if len(v) > 1}
    if sum(map(len, merged.values())) * 2 <= named:  # one student's zip and notebook: still Canvas
        return ""
    (name, uid), files = sorted(merged.items())[0]
    return (f"read as a Canvas download, {len(files)} separate submissions ({', '.join(sorted(map(shown, files.values()))[:4])}) "
            f"would be one student {shown(name)!r} (user {shown(uid)})")


def _plain(entry: Path, **meta) -> Submission:
    kind, reason = classify(entry)
    from .discover import stem

    folder = entry.is_dir() and not entry.is_symlink()
    sid = student_id(entry.name if folder else stem(entry))
    path = entry
    if folder and kind == "dir":  # a folder holding only one notebook or archive: that is the submission
        path, kind = folder_content(entry)
        if path != entry:
            reason = f"graded {shown(path.name)}, the only submission in the folder {shown(entry.name)}"
    return Submission(sid, path, kind, note=reason, meta={"entries": [entry.name], "alt_id": entry.name,
                                                          "source": entry.name, "layout": "plain", **meta})


def folder_content(d: Path) -> tuple[Path, str]:
    """A student's folder: graded as a folder, or — when no student file is anywhere in it and it
    holds one archive or notebook at its top (beside data, images, a README) — as that file."""
    try:
        kids = [k for k in d.iterdir() if not is_junk(k.name)]
    except OSError:
        return d, "dir"
    if any(canonical(k.name) for k in kids) or any(k.is_dir() and _holds_student_file(k) for k in kids):
        return d, "dir"
    boxes = [k for k in kids if classify(k)[0] in ("zip", "tar", "ipynb")]
    return (boxes[0], classify(boxes[0])[0]) if len(boxes) == 1 else (d, "dir")


def _holds_student_file(d: Path, budget: int = 2000) -> bool:
    """Whether a student file is anywhere under ``d`` (links not followed; a huge tree counts as yes)."""
    for n, (_root, dirs, files) in enumerate(os.walk(d)):
        dirs[:] = [x for x in dirs if not is_junk(x)]
        if n > budget or any(canonical(f) for f in files):
            return True
    return False


def _copy_capped(src: Path, dst: Path, cap: int = 512 * 1024 + 1) -> bool:
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                return False
            data = fh.read(cap)  # enough for the size check downstream to say "over the limit"
    except OSError:
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(data)
    return True


def _group(sid: str, files: list[tuple[str, Path]], staging: Path, key: str, platform: str,
           meta: dict) -> Submission:
    """A student's flat files (original name, path): staged as a folder of the student files, or the
    one archive or notebook they submitted, or rejected with what was there."""
    entries = [p.name for _, p in files]
    meta = {"entries": entries, "source": entries[0], **meta}
    best: dict[str, tuple[int, str, Path]] = {}
    for fname, p in files:
        c = canonical(fname)
        if c and (c[0] not in best or c[1] < best[c[0]][0]):
            best[c[0]] = (c[1], fname, p)
    if best:
        d = staging / platform / key
        notes = []
        for name, (_, fname, p) in sorted(best.items()):
            if _copy_capped(p, d / name):
                if fname != name:
                    notes.append(f"{shown(fname)} was used as {name}")
            else:
                notes.append(f"{shown(p.name)} is not a regular file and was not used")
        if not d.exists():
            d.mkdir(parents=True)
        return Submission(sid, d, "dir", note="; ".join(notes), meta=meta)
    boxes = [(p, classify(p)[0]) for _, p in files]
    boxes = [(p, k) for p, k in boxes if k in ("zip", "tar", "ipynb")]
    if len(boxes) == 1:
        return Submission(sid, boxes[0][0], boxes[0][1], meta=meta)
    listed = ", ".join(shown(f) for f, _ in files[:8])
    what = "several archives or notebooks" if boxes else f"no {', '.join(student_files())}, archive or notebook"
    return Submission(sid, files[0][1], "rejected", meta=meta,
                      note=f"the {platform} submission of {shown(sid)} holds {what} ({listed}); accepted: {accepted()}")


def canvas(root: Path, entries: list[Path], staging: Path) -> list[Submission]:
    groups: dict[tuple[str, str], list[tuple[str, Path, re.Match]]] = {}
    out = []
    for e in entries:
        m = CANVAS.match(e.name) if not e.is_dir() else None
        if m is None:
            out.append(_plain(e))
            continue
        groups.setdefault((m["name"], m["uid"]), []).append((m["file"], e, m))
    for i, ((name, uid), files) in enumerate(sorted(groups.items())):
        late = any(m["late"] for _, _, m in files)
        subs = sorted({m["sub"] for _, _, m in files if m["sub"]})
        meta = {"layout": "canvas", "lms_id": uid, "late": late, "alt_id": f"{name} ({uid})"}
        if subs:
            meta["submission_id"] = subs[-1]
        out.append(_group(student_id(name), [(f, p) for f, p, _ in files], staging, f"{i:05d}-{uid}", "canvas", meta))
    return out


def moodle(root: Path, entries: list[Path], staging: Path) -> list[Submission]:
    groups: dict[tuple[str, str], list[tuple[re.Match, Path]]] = {}
    out = []
    for e in entries:
        m = MOODLE.match(e.name)
        if m is None:
            out.append(_plain(e))
            continue
        groups.setdefault((m["name"], m["pid"]), []).append((m, e))
    for i, ((name, pid), parts) in enumerate(sorted(groups.items())):
        meta = {"layout": "moodle", "lms_id": pid, "late": None, "alt_id": f"{name} ({pid})"}
        sid = student_id(name)
        dirs = [e for m, e in parts if e.is_dir() and m["plugin"] == "file"]
        flat = [(m["rest"], e) for m, e in parts if not e.is_dir() and m["plugin"] == "file"]
        entries_ = [e.name for _, e in parts]
        if dirs:
            path, kind = folder_content(dirs[0])
            reason = "" if kind != "dir" or any(not is_junk(k.name) for k in dirs[0].iterdir()) else \
                f"the Moodle submission folder of {shown(name)} is empty; accepted: {accepted()}"
            out.append(Submission(sid, path, "rejected" if reason else kind, note=reason,
                                  meta={**meta, "entries": entries_, "source": dirs[0].name}))
        elif flat:
            s = _group(sid, flat, staging, f"{i:05d}-{pid}", "moodle", meta)
            out.append(Submission(s.student, s.path, s.kind, s.note, meta={**s.meta, "entries": entries_}))
        else:
            out.append(Submission(sid, parts[0][1], "rejected", meta={**meta, "entries": entries_},
                                  note=f"{shown(name)} submitted no file (only {shown(parts[0][0]['plugin'])}); "
                                       f"accepted: {accepted()}"))
    return out


def _gradescope_meta(root: Path) -> dict:
    import yaml

    path = root / GRADESCOPE_META
    if path.stat().st_size > MAX_METADATA_BYTES:
        raise ValueError(f"{GRADESCOPE_META} is over {MAX_METADATA_BYTES} bytes")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ValueError(f"{GRADESCOPE_META} is not readable YAML ({str(exc).splitlines()[0] if str(exc) else exc!r})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{GRADESCOPE_META} is not a mapping of submission folders")
    return data


def _key(d: dict, name: str):
    """Gradescope writes Ruby-symbol keys (``:name:``); accept them with or without the colons."""
    for k, v in (d.items() if isinstance(d, dict) else ()):
        if str(k).strip(":") == name:
            return v
    return None


def gradescope(root: Path, entries: list[Path], staging: Path) -> list[Submission]:
    meta = _gradescope_meta(root)
    listed = {str(k) for k in meta}
    out = [_plain(e) for e in entries if e.name not in listed and e.name != GRADESCOPE_META]
    for folder, info in sorted(meta.items(), key=lambda kv: str(kv[0])):
        folder = str(folder)
        d = root / folder
        submitters = _key(info, "submitters")
        submitters = [x for x in submitters if isinstance(x, dict)] if isinstance(submitters, list) else []
        submitters = submitters or [{}]
        lateness = next((v for k, v in (info or {}).items() if "late" in str(k).lower()), None)
        created = _key(info, "created_at")
        members = [str(_key(s, "sid") or _key(s, "email") or _key(s, "name") or folder) for s in submitters]
        for s, ident in zip(submitters, members):
            m = {"layout": "gradescope", "entries": [folder], "source": folder, "alt_id": f"{ident} ({folder})",
                 "name": str(_key(s, "name") or ""), "email": str(_key(s, "email") or ""),
                 "lms_id": str(_key(s, "sid") or ""), "late": None if lateness is None else bool(lateness),
                 "submitted_at": str(created or "")}
            if len(members) > 1:
                m["group"] = [x for x in members if x != ident]
            if not d.is_dir() or d.is_symlink() or ("/" in folder or folder in ("..", ".")):
                out.append(Submission(student_id(ident), root, "rejected", meta=m,
                                      note=f"{shown(folder)} is listed in {GRADESCOPE_META} but is not a folder "
                                           "of the export"))
                continue
            kind, reason = classify(d)
            path = d
            if kind == "dir":
                path, kind = folder_content(d)
            out.append(Submission(student_id(ident), path, kind, note=reason, meta=m))
    return out


def classroom_prefix(names: list[str]) -> str:
    """``hw1-`` for ``hw1-alice``, ``hw1-bob``: the common prefix, cut after its last dash."""
    if len(names) < 2:
        return names[0].split("-", 1)[0] + "-" if names and "-" in names[0] else ""
    pre = os.path.commonprefix(names)
    return pre[: pre.rfind("-") + 1] if "-" in pre else ""


def classroom(root: Path, entries: list[Path], staging: Path) -> list[Submission]:
    dirs = [e for e in entries if e.is_dir() and not e.is_symlink()]
    prefix = classroom_prefix([d.name for d in dirs])
    out = []
    for e in entries:
        if e not in dirs or not prefix or not e.name.startswith(prefix) or len(e.name) == len(prefix):
            out.append(_plain(e))
            continue
        login = e.name[len(prefix):]
        s = _plain(e, layout="classroom", login=login, repository=e.name, late=None)
        out.append(Submission(student_id(login), s.path, s.kind, s.note, meta={**s.meta, "alt_id": e.name}))
    return out


def plain(root: Path, entries: list[Path], staging: Path) -> list[Submission]:
    return [_plain(e) for e in entries]


GROUPERS = {"plain": plain, "canvas": canvas, "moodle": moodle, "gradescope": gradescope, "classroom": classroom}


def detect(root: Path, entries: list[Path], warnings: list[str] | None = None) -> str:
    """The layout of a folder of submissions, from its names alone; a layout the names only half
    fit is not guessed (plain, and why in ``warnings``)."""
    if (root / GRADESCOPE_META).is_file():
        return "gradescope"
    names = [e.name for e in entries]
    if names and sum(bool(MOODLE.match(n)) for n in names) * 2 > len(names):
        return "moodle"
    files = [e.name for e in entries if not e.is_dir()]
    if files and sum(canvas_named(n) for n in files) * 2 > len(entries):
        doubt = canvas_doubt(files)
        if not doubt:
            return "canvas"
        if warnings is not None:
            warnings.append(f"{doubt}: taken as a plain folder instead, one row per entry "
                            "(give --layout canvas if it really is a Canvas download)")
    dirs = [e for e in entries if e.is_dir() and not e.is_symlink()]
    if len(dirs) >= 2 and len(dirs) * 2 > len(entries) and classroom_prefix([d.name for d in dirs]) \
            and sum((d / ".git").exists() for d in dirs) * 2 >= len(dirs):
        return "classroom"
    return "plain"
