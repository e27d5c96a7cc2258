"""``gradebook.csv``: one row per submission, safe to open in a spreadsheet.

UTF-8 (no byte-order mark, so that the header is exactly ``student,...`` for the tools reading it).
Ids are written exactly; only a cell a spreadsheet would run as a formula (one
starting with ``=``, ``+``, ``-``, ``@``, a tab or CR, ``|`` or ``%``) gets a leading ``'``, in this
file only. After the contract's columns come where each student's reports are (``folder``), where the
submission came from (``source``, ``layout``, ``lms_id``), lateness (``late``, ``submitted_at``) and,
with ``--roster``, the roster's columns.
"""
from __future__ import annotations

import csv
import io

from ..scoring.results import SubmissionResult

INTAKE_COLUMNS = ("folder", "source", "layout", "lms_id", "late", "submitted_at")
ROSTER_COLUMNS = ("roster_id", "roster_name", "roster_email", "roster_lms_id")
BOM = "\ufeff"  #: for the platform exports, which spreadsheet programs open directly


def component_columns(spec=None) -> tuple[str, ...]:
    """One column per component id, then the end-to-end tests: from the assignment spec (the
    current one by default), so a new component cannot be left out of the gradebook."""
    from ..spec import current_spec

    return (spec or current_spec()).test_ids


def safe_cell(value: str) -> str:
    """Neutralise spreadsheet formulas (=, +, -, @, tab, CR at the start) in text cells."""
    s = str(value).replace("\r", " ").replace("\n", " ")
    if s[:1] in ("=", "+", "-", "@", "\t", "|", "%"):
        s = "'" + s
    return s


def fmt(x: float) -> str:
    return f"{round(float(x), 4):g}"


def late_cell(v) -> str:
    return "" if v is None else ("yes" if v else "no")


def intake_cells(r: SubmissionResult) -> list[str]:
    i = r.intake
    return [safe_cell(i.get("folder", "")), safe_cell(i.get("source", r.source)), i.get("layout", ""),
            safe_cell(i.get("lms_id", "")), late_cell(i.get("late")), safe_cell(i.get("submitted_at", ""))]


def roster_cells(r: SubmissionResult) -> list[str]:
    row = r.intake.get("roster") or {}
    return [safe_cell(row.get(k, "")) for k in ("id", "name", "email", "lms_id")]


def render_gradebook(results: list[SubmissionResult], *, roster: bool | None = None, extra=None) -> str:
    """``extra``: more columns at the end of each row (``header`` and ``row(result)``), e.g. the
    instructor's overrides and late penalties (grader.instructor.assemble.Columns)."""
    if roster is None:
        roster = any("roster" in r.intake for r in results)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    columns = component_columns()
    w.writerow(["student", "score", "max_score", "status", *columns, "reason", *INTAKE_COLUMNS,
                *(ROSTER_COLUMNS if roster else ()), *(extra.header if extra else [])])
    for r in sorted(results, key=lambda r: r.student):
        comps = r.component_scores()
        w.writerow([safe_cell(r.student), fmt(r.score), fmt(r.max_score), r.status,
                    *[fmt(comps[c][0]) if c in comps else "" for c in columns], safe_cell(r.reason[:300]),
                    *intake_cells(r), *(roster_cells(r) if roster else ()),
                    *([safe_cell(x) for x in extra.row(r)] if extra else [])])
    return buf.getvalue()
