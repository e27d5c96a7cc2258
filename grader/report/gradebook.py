"""``gradebook.csv``: one row per submission, safe to open in a spreadsheet."""
from __future__ import annotations

import csv
import io

from ..scoring.results import SubmissionResult

COMPONENTS = ("Linear", "ReLU", "LogSoftmax", "NLLLoss", "LogisticRegression", "MNIST-MLP", "MNIST-LogReg")


def safe_cell(value: str) -> str:
    """Neutralise spreadsheet formulas (=, +, -, @, tab, CR at the start) in text cells."""
    s = str(value).replace("\r", " ").replace("\n", " ")
    if s[:1] in ("=", "+", "-", "@", "\t", "|", "%"):
        s = "'" + s
    return s


def fmt(x: float) -> str:
    return f"{round(float(x), 4):g}"


def render_gradebook(results: list[SubmissionResult], *, extra=None) -> str:
    """``extra``: more columns at the end of each row (``header`` and ``row(result)``), e.g. the
    instructor's overrides and late penalties (grader.instructor.assemble.Columns)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow(["student", "score", "max_score", "status", *COMPONENTS, "reason", *(extra.header if extra else [])])
    for r in sorted(results, key=lambda r: r.student):
        comps = r.component_scores()
        w.writerow([safe_cell(r.student), fmt(r.score), fmt(r.max_score), r.status,
                    *[fmt(comps[c][0]) if c in comps else "" for c in COMPONENTS], safe_cell(r.reason[:300]),
                    *([safe_cell(x) for x in extra.row(r)] if extra else [])])
    return buf.getvalue()
