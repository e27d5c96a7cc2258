"""The late policy of the rubric's ``[late]`` table, and when each submission was handed in (issue 19).

Penalties are computed when the gradebook is assembled, from the stored records and the submission
times, never while grading: moving the deadline, granting an extension or fixing a time and running
``grader grade`` again recomputes every penalty without grading anything again (the ``[late]`` table
is not part of the rubric's grading digest, see :func:`grader.scoring.rubric.grading_digest`).

Rules (written out in the README):

* ``deadline`` carries its time zone: a TOML offset date-time (``2026-12-01T23:59:00+01:00``), or a
  local one with ``timezone = "Europe/Berlin"``. A deadline without a zone is refused.
* a submission is late when it was handed in after deadline + ``grace_minutes``; its lateness is then
  counted from the deadline itself (the grace period is forgiveness, not an offset).
* exactly one of ``per_hour``, ``per_day`` (each started hour or day counts) or ``steps``
  (``[[hours_late_up_to, penalty], ...]``; later than the last step: the cap, or everything);
  ``unit = "percent"`` (of the score before the penalty, the default) or ``"points"``; ``cap`` bounds
  the penalty in that unit. The penalised score is never below 0.
* ``extensions`` names a CSV (``student`` and ``deadline``, ``hours`` or ``days``), relative to the
  rubric file: a student's own deadline.
"""
from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

KEYS = {"deadline", "timezone", "grace_minutes", "per_hour", "per_day", "steps", "unit", "cap", "extensions",
        "submission_times"}


class LateError(ValueError):
    """The late policy, an extensions file or a submission-times file is invalid (usage error)."""


def _zone(name: str | None, where: str):
    if not name:
        return None
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(str(name))
    except Exception:
        raise LateError(f"{where}: unknown time zone {name!r} (use a name like 'Europe/Berlin' or 'UTC')") from None


_STAMP = re.compile(r"^\s*(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d(?::\d\d)?)(\.\d+)?\s*(Z|UTC|[+-]\d\d:?\d\d)?\s*$", re.I)


def parse_time(value, tz=None, *, where: str = "time") -> datetime:
    """An aware datetime from a TOML date-time or a string (ISO 8601, or Ruby's ``2026-11-30 21:04:33.123
    -08:00`` as in Gradescope's export); a time without offset is read in ``tz``, else refused."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime.combine(value, time(23, 59, 59))
    else:
        m = _STAMP.match(str(value))
        if not m:
            raise LateError(f"{where}: {value!r} is not a date and time like 2026-12-01T23:59:00+01:00")
        day, clock, frac, off = m.groups()
        frac = (frac or "")[:7]  # at most microseconds
        off = "" if not off else ("+00:00" if off.upper() in ("Z", "UTC") else off)
        if off and ":" not in off:
            off = off[:3] + ":" + off[3:]
        clock = clock if clock.count(":") == 2 else clock + ":00"
        dt = datetime.fromisoformat(f"{day}T{clock}{frac}{off}")
    if dt.tzinfo is None:
        if tz is None:
            raise LateError(f"{where}: {value!r} has no time zone; add an offset (+01:00) or set timezone")
        dt = dt.replace(tzinfo=tz)
    return dt


def _number(table: dict, key: str, where: str) -> float | None:
    v = table.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
        raise LateError(f"{where}: {key} must be a number >= 0")
    return float(v)


@dataclass(frozen=True)
class LatePolicy:
    """The ``[late]`` table of a rubric."""

    deadline: datetime                      #: aware
    tz: object = None                       #: zone for times given without offset (the deadline's)
    grace: timedelta = timedelta(0)
    per_hour: float | None = None
    per_day: float | None = None
    steps: tuple[tuple[float, float], ...] = ()
    unit: str = "percent"                   #: "percent" of the score before the penalty, or "points"
    cap: float | None = None
    extensions: str | None = None           #: CSV path, resolved against the rubric's folder
    submission_times: str | None = None     #: default submission-times CSV, resolved likewise

    @classmethod
    def from_table(cls, table: dict, *, base: Path, where: str) -> "LatePolicy":
        where = f"{where} [late]"
        unknown = sorted(set(table) - KEYS)
        if unknown:
            raise LateError(f"{where}: unknown keys {', '.join(unknown)}; known: {', '.join(sorted(KEYS))}")
        if "deadline" not in table:
            raise LateError(f"{where}: deadline is required")
        tz = _zone(table.get("timezone"), where)
        deadline = parse_time(table["deadline"], tz, where=f"{where} deadline")
        kinds = [k for k in ("per_hour", "per_day", "steps") if k in table]
        if len(kinds) != 1:
            raise LateError(f"{where}: give exactly one of per_hour, per_day or steps (found {kinds or 'none'})")
        steps: list[tuple[float, float]] = []
        for s in table.get("steps", []):
            if not (isinstance(s, list) and len(s) == 2 and all(isinstance(x, (int, float)) and x >= 0 for x in s)):
                raise LateError(f"{where}: each step is [hours_late_up_to, penalty], numbers >= 0; got {s!r}")
            steps.append((float(s[0]), float(s[1])))
        if "steps" in table and not steps:
            raise LateError(f"{where}: steps is empty")
        unit = table.get("unit", "percent")
        if unit not in ("percent", "points"):
            raise LateError(f"{where}: unit must be 'percent' or 'points', not {unit!r}")
        resolve = (lambda v: str((base / v)) if v else None)
        return cls(deadline, tz or deadline.tzinfo, timedelta(minutes=_number(table, "grace_minutes", where) or 0),
                   _number(table, "per_hour", where), _number(table, "per_day", where), tuple(sorted(steps)),
                   unit, _number(table, "cap", where), resolve(table.get("extensions")),
                   resolve(table.get("submission_times")))

    def penalty(self, hours_late: float) -> float:
        """The penalty (in ``unit``) for a submission this many hours after its deadline."""
        if hours_late <= self.grace.total_seconds() / 3600:
            return 0.0
        full = 100.0 if self.unit == "percent" else math.inf
        if self.per_hour is not None:
            pen = math.ceil(hours_late - 1e-9) * self.per_hour
        elif self.per_day is not None:
            pen = math.ceil(hours_late / 24 - 1e-9) * self.per_day
        else:
            pen = next((p for h, p in self.steps if hours_late <= h), self.cap if self.cap is not None else full)
        if self.cap is not None:
            pen = min(pen, self.cap)
        return min(pen, full)

    def apply(self, score: float, hours_late: float | None) -> tuple[float, float]:
        """(points deducted, penalised score) for ``score`` handed in ``hours_late`` hours late."""
        if hours_late is None or hours_late <= 0:
            return 0.0, score
        pen = self.penalty(hours_late)
        deducted = score * pen / 100 if self.unit == "percent" else min(pen, score)
        deducted = round(min(max(deducted, 0.0), score), 4)
        return deducted, round(score - deducted, 4)


# --- extensions ------------------------------------------------------------------------------------

def load_extensions(policy: LatePolicy, students: set[str]) -> dict[str, datetime]:
    """Each student's own deadline from the extensions CSV; unknown students are an error."""
    if not policy.extensions:
        return {}
    path = Path(policy.extensions)
    rows = _read_csv(path)
    out: dict[str, datetime] = {}
    for i, row in enumerate(rows, start=2):
        sid = (row.get("student") or "").strip()
        where = f"{path}:{i}"
        if not sid:
            raise LateError(f"{where}: no student")
        if sid not in students:
            raise LateError(f"{where}: unknown student {sid!r}{did_you_mean(sid, students)}")
        if sid in out:
            raise LateError(f"{where}: second extension for {sid!r}")
        if (row.get("deadline") or "").strip():
            out[sid] = parse_time(row["deadline"].strip(), policy.tz, where=where)
        elif (row.get("hours") or row.get("days") or "").strip():
            try:
                extra = float(row.get("hours") or 0) + 24 * float(row.get("days") or 0)
            except ValueError:
                raise LateError(f"{where}: hours/days must be numbers") from None
            out[sid] = policy.deadline + timedelta(hours=extra)
        else:
            raise LateError(f"{where}: give deadline, hours or days for {sid!r}")
    return out


def _read_csv(path: Path) -> list[dict]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise LateError(f"cannot read {path}: {exc}") from None
    return [{(k or "").strip(): (v or "") for k, v in r.items()} for r in rows]


def did_you_mean(sid: str, known: set[str]) -> str:
    """The tail of an "unknown student" error: the nearest known ids, or that there is none."""
    import difflib

    near = difflib.get_close_matches(sid, sorted(known), n=3)
    return f" (did you mean {', '.join(map(repr, near))}?)" if near else " (not in this gradebook)"


# --- submission times ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Handed:
    """When one submission was handed in, and where that was read."""

    at: datetime | None
    source: str                       #: "csv", "gradescope", "moodle", "mtime", "canvas-late-mark"
    late_mark: bool = False           #: the platform says late but gives no time (Canvas)


@dataclass
class TimeSources:
    """Submission times of a batch: explicit CSV first, then the platforms' metadata."""

    by_student: dict[str, Handed] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


MOODLE_FORMATS = ("%A, %d %B %Y, %I:%M %p", "%A, %d %B %Y, %H:%M", "%d %B %Y, %I:%M %p", "%d %B %Y, %H:%M")


def _moodle_time(text: str, tz) -> datetime | None:
    for f in MOODLE_FORMATS:
        try:
            return datetime.strptime(text.strip(), f).replace(tzinfo=tz)
        except ValueError:
            continue
    return None


def times_from_csv(path: Path, records: dict[str, str], tz) -> dict[str, Handed]:
    """``student,submitted_at`` rows, or a Moodle grading worksheet (``Full name`` and ``Last modified
    (submission)``, matched to a student id or to the start of the submission's folder name)."""
    rows = _read_csv(path)
    out: dict[str, Handed] = {}
    for i, row in enumerate(rows, start=2):
        where = f"{path}:{i}"
        if "student" in row:
            sid = row["student"].strip()
            if sid not in records:
                raise LateError(f"{where}: unknown student {sid!r}{did_you_mean(sid, set(records))}")
            out[sid] = Handed(parse_time(row.get("submitted_at", ""), tz, where=where), "csv")
        elif "Last modified (submission)" in row and "Full name" in row:
            name, stamp = row["Full name"].strip(), row["Last modified (submission)"].strip()
            sids = [s for s, src in records.items() if s == name or src.startswith(name + "_")]
            when = _moodle_time(stamp, tz) if stamp and stamp != "-" else None
            for sid in sids:
                if when is not None:
                    out[sid] = Handed(when, "moodle")
        else:
            raise LateError(f"{path}: expected columns student,submitted_at (or a Moodle grading worksheet)")
    return out


def times_from_gradescope(root: Path, records: dict[str, str], tz) -> dict[str, Handed]:
    """``:created_at:`` of each ``submission_NNN`` in a Gradescope export's ``submission_metadata.yml``,
    matched to the record whose source folder is that key. Read line by line (the file is Ruby-style
    YAML; the grader does not depend on a YAML library)."""
    meta = root / "submission_metadata.yml"
    if not meta.is_file():
        return {}
    created: dict[str, str] = {}
    key = None
    for line in meta.read_text(encoding="utf-8", errors="replace").splitlines():
        top = re.match(r"^(\S[^:]*):\s*$", line)
        if top:
            key = top.group(1).strip().strip("'\"")
            continue
        m = re.match(r"^\s+:?created_at:?\s*['\"]?([^'\"]+)['\"]?\s*$", line)
        if m and key and key not in created:
            created[key] = m.group(1)
    out = {}
    for sid, src in records.items():
        stem = src.rsplit(".", 1)[0] if src.endswith(".zip") else src
        if stem in created:
            out[sid] = Handed(parse_time(created[stem], tz, where=f"{meta} {stem}"), "gradescope")
    return out


CANVAS_LATE = re.compile(r"(?:^|_)late_\d+_", re.I)


def collect_times(records: dict[str, str], *, root: Path | None, policy: LatePolicy,
                  csv_path: str | None = None) -> TimeSources:
    """Times for ``records`` (student id -> source file or folder name) under the submissions ``root``.

    ``csv_path`` is a CSV, or the word ``mtime`` to use file modification times (only when asked: a
    copy or an unzip resets them)."""
    ts = TimeSources()
    tz = policy.tz
    if root is not None:
        ts.by_student.update(times_from_gradescope(root, records, tz))
        for sid, src in records.items():
            if sid not in ts.by_student and CANVAS_LATE.search(src):
                ts.by_student[sid] = Handed(None, "canvas-late-mark", late_mark=True)
    path = csv_path or policy.submission_times
    if path == "mtime":
        if root is None:
            raise LateError("--submission-times mtime needs the submissions folder")
        for sid, src in records.items():
            p = root / src
            if p.exists():
                newest = max([p.stat().st_mtime] + [q.stat().st_mtime for q in p.rglob("*") if q.is_file()]
                             if p.is_dir() else [p.stat().st_mtime])
                ts.by_student[sid] = Handed(datetime.fromtimestamp(newest, timezone.utc), "mtime")
    elif path:
        ts.by_student.update(times_from_csv(Path(path), records, tz))
    for sid, h in sorted(ts.by_student.items()):
        if h.late_mark and h.at is None:
            ts.warnings.append(f"{sid!r}: marked late by the platform, but no submission time is known; no penalty "
                               "applied (give the time with --submission-times)")
    return ts


def hours_late(handed: Handed | None, deadline: datetime) -> float | None:
    if handed is None or handed.at is None:
        return None
    return (handed.at - deadline).total_seconds() / 3600

