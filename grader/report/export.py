"""``--export canvas|moodle``: the gradebook in the form those platforms' grade import reads.

* Canvas (Grades, Import): ``Student, ID, SIS User ID, SIS Login ID, Section, <assignment>``, then a
  ``Points Possible`` row; Canvas matches rows by ``ID`` (its user id: from a Canvas download's file
  names or the roster's LMS id column) or ``SIS User ID`` (the roster id, when a roster is given).
* Moodle (assignment, "Upload grading worksheet"): the offline grading worksheet columns
  ``Identifier, Full name, Email address, Status, Grade, Maximum Grade, Grade can be changed,
  Last modified (submission), Last modified (grade), Feedback comments``; ``Identifier`` is
  ``Participant <n>``, the number from a Moodle download's folder names or the roster's LMS id column.

Rows with no identifier the platform can match are left out, and listed in the returned warnings.
"""
from __future__ import annotations

import csv
import io

from ..scoring.results import SubmissionResult
from .gradebook import BOM, fmt, safe_cell

EXPORTS = ("canvas", "moodle")
FILES = {"canvas": "canvas-grades.csv", "moodle": "moodle-grades.csv"}


def _lms_id(r: SubmissionResult) -> str:
    return str(r.intake.get("lms_id") or (r.intake.get("roster") or {}).get("lms_id") or "")


def _name(r: SubmissionResult) -> str:
    roster = r.intake.get("roster") or {}
    return roster.get("name") or r.intake.get("name") or r.student


def _comment(r: SubmissionResult) -> str:
    text = f"Score {r.score:g} / {r.max_score:g}."
    return text + (f" Status {r.status}: {r.reason[:200]}" if r.status != "ok" else "")


def render_canvas(results: list[SubmissionResult], assignment: str) -> tuple[str, list[str]]:
    buf, skipped = io.StringIO(), []
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section", assignment])
    w.writerow(["Points Possible", "", "", "", "", fmt(max((r.max_score for r in results), default=0))])
    for r in sorted(results, key=lambda r: r.student):
        lms, sis = _lms_id(r), (r.intake.get("roster") or {}).get("id", "")
        if not (lms or sis):
            skipped.append(r.student)
            continue
        w.writerow([safe_cell(_name(r)), lms, safe_cell(sis), "", "", fmt(r.score)])
    return BOM + buf.getvalue(), skipped


def render_moodle(results: list[SubmissionResult]) -> tuple[str, list[str]]:
    buf, skipped = io.StringIO(), []
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade",
                "Grade can be changed", "Last modified (submission)", "Last modified (grade)", "Feedback comments"])
    for r in sorted(results, key=lambda r: r.student):
        lms = _lms_id(r)
        if not lms:
            skipped.append(r.student)
            continue
        email = (r.intake.get("roster") or {}).get("email") or r.intake.get("email") or ""
        status = "No submission" if r.status == "missing" else "Submitted for grading"
        w.writerow([f"Participant {lms}", safe_cell(_name(r)), safe_cell(email), status, fmt(r.score),
                    fmt(r.max_score), "Yes", "", "", safe_cell(_comment(r))])
    return BOM + buf.getvalue(), skipped


def render_export(kind: str, results: list[SubmissionResult], *, assignment: str = "Backprop by hand"
                  ) -> tuple[str, list[str]]:
    """(file text, ids left out because nothing identifies them to the platform)."""
    return render_canvas(results, assignment) if kind == "canvas" else render_moodle(results)
