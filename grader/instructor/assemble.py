"""Gradebook assembly from stored records: overrides, then the late penalty, as extra columns.

Order: the automatic ``score`` (unchanged, as graded) -> ``adjusted_score`` (overrides applied) ->
the late penalty, computed on the adjusted score -> ``final_score``. Every column is recomputed on
every run from the records, the overrides file, the rubric's ``[late]`` table, the extensions and the
submission times, so nothing here needs a regrade and nothing is lost by one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ..report.gradebook import fmt
from ..scoring.results import SubmissionResult
from .late import Handed, LatePolicy, hours_late
from .overrides import Adjusted, Override, apply


@dataclass(frozen=True)
class Row:
    """What the instructor layer adds to one student's gradebook row."""

    adjusted: Adjusted
    handed: Handed | None = None
    deadline: datetime | None = None
    hours: float | None = None             #: hours after the student's deadline (None: unknown)
    deducted: float = 0.0                   #: points taken by the late penalty
    final: float = 0.0


@dataclass
class Columns:
    """Extra gradebook columns (``render_gradebook(..., extra=columns)``)."""

    rows: dict[str, Row]
    overrides: bool
    late: bool
    header: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.header = ((["adjusted_score", "overrides"] if self.overrides else [])
                       + (["submitted_at", "hours_late", "late_penalty"] if self.late else []) + ["final_score"])

    def row(self, r: SubmissionResult) -> list[str]:
        x = self.rows[r.student]
        cells = []
        if self.overrides:
            cells += [fmt(x.adjusted.score), " | ".join(o.describe() for o in x.adjusted.applied)]
        if self.late:
            when = x.handed.at.isoformat(timespec="minutes") if x.handed and x.handed.at else (
                "late (time unknown)" if x.handed and x.handed.late_mark else "")
            cells += [when, "" if x.hours is None else fmt(max(x.hours, 0.0)), fmt(x.deducted)]
        return cells + [fmt(x.final)]


def compute_rows(results: list[SubmissionResult], overrides: list[Override], policy: LatePolicy | None,
                 handed: dict[str, Handed], extensions: dict[str, datetime]) -> dict[str, Row]:
    by_student: dict[str, list[Override]] = {}
    for o in overrides:
        by_student.setdefault(o.student, []).append(o)
    rows = {}
    for r in results:
        adj = apply(r.component_scores(), r.score, by_student.get(r.student, []))
        if policy is None:
            rows[r.student] = Row(adj, final=adj.score)
            continue
        deadline = extensions.get(r.student, policy.deadline)
        h = handed.get(r.student)
        late_h = hours_late(h, deadline)
        deducted, final = policy.apply(adj.score, late_h)
        rows[r.student] = Row(adj, h, deadline, late_h, deducted, final)
    return rows


def feedback_section(r: SubmissionResult, row: Row, policy: LatePolicy | None) -> str:
    """What feedback.md adds: visible overrides, the late penalty, the final score."""
    lines = []
    shown = [o for o in row.adjusted.applied if o.visible]
    for o in shown:
        lines.append(f"- Adjusted by your instructor: {o.describe()}")
    if policy is not None and row.deducted > 0:
        unit = "%" if policy.unit == "percent" else " points"
        lines.append(f"- Late: handed in {row.handed.at.isoformat(timespec='minutes')}, {row.hours:.1f} h after the "
                     f"deadline {row.deadline.isoformat(timespec='minutes')}: penalty {policy.penalty(row.hours):g}"
                     f"{unit}, {row.deducted:g} points deducted")
    if not lines:
        return ""
    all_visible = len(shown) == len(row.adjusted.applied)
    if all_visible:
        lines.append(f"- **Final score: {row.final:g} / {r.max_score:g}**")
    return "\n## Instructor adjustments\n\n" + "\n".join(lines) + "\n"
