"""The batch summary (score distribution, pass rate per component, most common named causes) and
the console table. The HTML class report planned next will be rendered from the same numbers."""
from __future__ import annotations

from collections import Counter

from ..diagnosis.causes import CAUSES
from ..scoring.results import SubmissionResult
from .gradebook import COMPONENTS


def class_statistics(results: list[SubmissionResult]) -> dict:
    scores = sorted(r.score for r in results)
    n = len(scores)
    median = (scores[(n - 1) // 2] + scores[n // 2]) / 2 if n else 0.0
    comp_pass = {}
    for c in COMPONENTS:
        rows = [r.component_scores().get(c) for r in results]
        rows = [x for x in rows if x and x[1] > 0]
        comp_pass[c] = (sum(1 for s, m in rows if s >= m - 1e-9), len(rows))
    causes = Counter(c for r in results for c in {c for t in r.tests for c in t.causes})
    # MNIST runs whose gradients were not the layers' own (issue 20): for the instructor to look at.
    review = [{"student": r.student, "test": comp, **(m.get("review") or {})}
              for r in results for comp, m in sorted(r.mnist.items()) if isinstance(m, dict) and m.get("review")]
    return {"review": review, "count": n, "mean": round(sum(scores) / n, 3) if n else 0.0, "median": round(median, 3),
            "min": scores[0] if n else 0.0, "max": scores[-1] if n else 0.0,
            "status": dict(Counter(r.status for r in results)), "component_full_marks": comp_pass,
            "causes": causes.most_common(), "scores": scores}


def render_summary(results: list[SubmissionResult], max_score: float) -> str:
    st = class_statistics(results)
    lines = ["# Grading summary", "",
             f"{st['count']} submissions; mean {st['mean']:g}, median {st['median']:g}, "
             f"min {st['min']:g}, max {st['max']:g} (out of {max_score:g}).", "",
             "Status: " + ", ".join(f"{k} {v}" for k, v in sorted(st["status"].items())), "",
             "## Score distribution", "", "```"]
    width = max_score / 10 if max_score else 10
    for i in range(10):
        lo, hi = i * width, (i + 1) * width
        k = sum(1 for s in st["scores"] if lo <= s < hi or (i == 9 and s >= hi - 1e-9 and s <= max_score + 1e-9))
        lines.append(f"{lo:6.1f}-{hi:6.1f} | {'#' * k} {k}")
    lines += ["```", "", "## Full marks per component", "", "| component | full marks |", "|---|---|"]
    for c, (ok, n) in st["component_full_marks"].items():
        lines.append(f"| {c} | {ok} / {n} |")
    lines += ["", "## Most common named causes", "", "| cause | submissions |", "|---|---|"]
    for c, k in st["causes"][:15]:
        lines.append(f"| {CAUSES[c].title if c in CAUSES else c} | {k} |")
    if st["review"]:
        lines += ["", "## Flagged for review", "", "MNIST runs whose gradients were not those of the submitted layers "
                  "(no credit was given; the evidence is in each `results.json`, `extra_data.mnist`).", "",
                  "| student | test | evidence |", "|---|---|---|"]
        for e in st["review"]:
            ev = ", ".join(f"{k} {v}" for k, v in e.items() if k not in ("student", "test"))
            lines.append(f"| {e['student']} | {e['test']} | {ev} |")
    return "\n".join(lines) + "\n"


def render_text(results: list[SubmissionResult]) -> str:
    short = {"LogisticRegression": "LogReg", "LogSoftmax": "LogSmax", "MNIST-MLP": "MLP", "MNIST-LogReg": "MNIST-LR"}
    head = f"{'student':<24} {'score':>7} {'status':<9}" + "".join(f"{short.get(c, c):>9}" for c in COMPONENTS)
    lines = [head, "-" * len(head)]
    for r in sorted(results, key=lambda r: r.student):
        comps = r.component_scores()
        cells = "".join(f"{(f'{comps[c][0]:g}' if c in comps else '-'):>9}" for c in COMPONENTS)
        lines.append(f"{r.student[:24]:<24} {r.score:>7g} {r.status:<9}" + cells)
        if r.reason:
            lines.append(f"    {r.reason[:150]}")
    return "\n".join(lines) + "\n"
