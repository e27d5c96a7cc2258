"""``--roster roster.csv``: who should have submitted, matched against who did.

The columns are the instructor's: ``--roster-id`` (default: the first column), and optionally
``--roster-name``, ``--roster-email``, ``--roster-lms-id`` (defaults: a column called ``name``,
``email`` or ``lms_id``, if there is one). A submission matches a roster row when its id equals the
row's id or name, its platform user id equals the row's LMS id, its email equals the row's email, or
(Canvas) its ``lastnamefirstname`` is the row's name run together; comparisons ignore case, spacing
and Unicode normalisation form, but an exact match wins (rows ``alice`` and ``Alice`` are two students).
Roster rows nobody matched become ``missing`` rows; submissions that
match no row are listed as unmatched.
"""
from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from .discover import Submission, UsageError, shown

MAX_ROSTER_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class RosterSpec:
    path: str
    id_col: str | None = None
    name_col: str | None = None
    email_col: str | None = None
    lms_col: str | None = None


@dataclass
class Match:
    matched: dict[str, dict] = field(default_factory=dict)   #: student id -> roster row
    missing: list[dict] = field(default_factory=list)        #: roster rows with no submission
    unmatched: list[str] = field(default_factory=list)       #: student ids matching no roster row
    warnings: list[str] = field(default_factory=list)
    rows: int = 0                                            #: students in the roster


def norm(s) -> str:
    return " ".join(unicodedata.normalize("NFC", str(s or "")).casefold().split())


def _pick(headers: list[str], given: str | None, default: str | None, flag: str) -> str | None:
    if given is not None:
        for h in headers:
            if norm(h) == norm(given):
                return h
        raise UsageError(f"{flag} {given!r}: the roster has no such column (it has: {', '.join(map(shown, headers))})")
    return next((h for h in headers if norm(h) == default), None) if default else None


def load_roster(spec: RosterSpec) -> list[dict]:
    """Roster rows as ``{"id", "name", "email", "lms_id"}`` (empty strings when not mapped)."""
    p = Path(spec.path)
    try:
        if p.stat().st_size > MAX_ROSTER_BYTES:
            raise UsageError(f"roster {p} is over {MAX_ROSTER_BYTES} bytes")
        text = p.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"roster {p} could not be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise UsageError(f"roster {p} is not UTF-8 text; save it as CSV UTF-8") from None
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    headers = [h for h in (reader.fieldnames or []) if h is not None]
    if not headers:
        raise UsageError(f"roster {p} has no header row")
    cols = {"id": _pick(headers, spec.id_col, None, "--roster-id") or headers[0],
            "name": _pick(headers, spec.name_col, "name", "--roster-name"),
            "email": _pick(headers, spec.email_col, "email", "--roster-email"),
            "lms_id": _pick(headers, spec.lms_col, "lms_id", "--roster-lms-id")}
    rows = []
    for raw in reader:
        row = {k: unicodedata.normalize("NFC", str(raw.get(c) or "").strip()) if c else "" for k, c in cols.items()}
        if not any(row.values()) or "points possible" in {norm(v) for v in row.values()}:
            continue  # blank lines, and the "Points Possible" row of a Canvas gradebook export
        rows.append(row)
    return rows


def _canvas_key(name: str) -> set[str]:
    """What Canvas would call a student in file names: last and first name run together, lower case."""
    letters = lambda s: "".join(c for c in norm(s) if c.isalnum())  # noqa: E731
    if "," in name:
        last, first = name.split(",", 1)
        return {letters(last) + letters(first)}
    parts = name.split()
    return {letters(" ".join(parts[-1:])) + letters(" ".join(parts[:-1])), letters(name)} if parts else set()


def exact(s) -> str:
    """A value as written (NFC, outer and repeated spaces aside): ``alice`` and ``Alice`` differ."""
    return " ".join(unicodedata.normalize("NFC", str(s or "")).split())


def _keys(sub: Submission, f=norm) -> set[tuple[str, str]]:
    m = sub.meta
    ident = f(m.get("duplicate_of") or sub.student)
    keys = {("id", ident), ("name", ident), ("email", ident)}
    for field_, k in (("lms_id", "lms_id"), ("email", "email"), ("name", "name"), ("login", "id")):
        if m.get(field_):
            keys.add((k, f(m[field_])))
    if m.get("layout") == "canvas" and f is norm:
        keys.add(("canvas", ident))
    return keys


def _index(rows: list[dict], f) -> dict[tuple[str, str], list[int]]:
    index: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(rows):
        for k in ("id", "name", "email", "lms_id"):
            if r[k]:
                index.setdefault((k, f(r[k])), []).append(i)
        for ck in (_canvas_key(r["name"]) if r["name"] and f is norm else ()):
            index.setdefault(("canvas", ck), []).append(i)
    return index


def match(rows: list[dict], subs: list[Submission]) -> Match:
    """Exact matches first (``alice`` is the row ``alice``, ``Alice`` the row ``Alice``), then the
    rest ignoring case and spacing, preferring a roster row no other submission matched."""
    out = Match(rows=len(rows))
    exact_index, loose_index = _index(rows, exact), _index(rows, norm)
    used: dict[int, list[str]] = {}
    exact_hits = {s.student: sorted({i for key in _keys(s, exact) for i in exact_index.get(key, [])}) for s in subs}
    for s in sorted(subs, key=lambda s: not exact_hits[s.student]):  # exact matches first
        hits = exact_hits[s.student]
        if not hits:
            hits = sorted({i for key in _keys(s) for i in loose_index.get(key, [])})
        hits = sorted(hits, key=lambda i: i in used)  # a row nobody matched yet first (stable)
        if not hits:
            out.unmatched.append(s.student)
            continue
        if len(hits) > 1:
            out.warnings.append(f"{shown(s.student)} matches {len(hits)} roster rows; "
                                f"{shown(rows[hits[0]]['id'])} was used")
        out.matched[s.student] = rows[hits[0]]
        used.setdefault(hits[0], []).append(s.student)
    for i, names in used.items():
        if len(names) > 1:
            out.warnings.append(f"roster student {shown(rows[i]['id'])} has {len(names)} submissions: "
                                + ", ".join(map(shown, names)))
    out.missing = [r for i, r in enumerate(rows) if i not in used]
    if out.unmatched:
        out.warnings.append(f"{len(out.unmatched)} submission(s) match nobody in the roster: "
                            + ", ".join(map(shown, out.unmatched[:20])) + (", ..." if len(out.unmatched) > 20 else ""))
    return out
