"""The batch summary (score distribution, pass rate per component, most common named causes) and
the console table. The HTML class report planned next will be rendered from the same numbers."""
from __future__ import annotations

from collections import Counter

from ..diagnosis.causes import CAUSES
from ..scoring.results import SubmissionResult
from ..spec import current_spec
from .gradebook import component_columns


def class_statistics(results: list[SubmissionResult]) -> dict:
    scores = sorted(r.score for r in results)
    n = len(scores)
    median = (scores[(n - 1) // 2] + scores[n // 2]) / 2 if n else 0.0
    comp_pass = {}
    for c in component_columns():
        rows = [r.component_scores().get(c) for r in results]
        rows = [x for x in rows if x and x[1] > 0]
        comp_pass[c] = (sum(1 for s, m in rows if s >= m - 1e-9), len(rows))
    causes = Counter(c for r in results for c in sorted({c for t in r.tests for c in t.causes}))
    # MNIST runs whose gradients were not the layers' own (issue 20): for the instructor to look at.
    review = [{"student": r.student, "test": comp, **(m.get("review") or {})}
              for r in results for comp, m in sorted(r.mnist.items()) if isinstance(m, dict) and m.get("review")]
    return {"review": review, "count": n, "mean": round(sum(scores) / n, 3) if n else 0.0, "median": round(median, 3),
            "min": scores[0] if n else 0.0, "max": scores[-1] if n else 0.0,
            "status": dict(Counter(r.status for r in results)), "component_full_marks": comp_pass,
            "causes": sorted(causes.items(), key=lambda kv: (-kv[1], kv[0])),  # ties by name: the same in every process
            "scores": scores}


def _cell(s) -> str:
    """An id in a Markdown table: exact, but for the characters Markdown or HTML would act on."""
    return str(s).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace("`", "\\`")


def _accounting(rec: dict, unmatched: list[str], missing: list[str]) -> list[str]:
    lines = ["", "## Every entry accounted for", "",
             f"Layout: {rec.get('layout', '?')}. {rec.get('entries_found', 0)} entries found"
             + (f" ({len(rec.get('ignored', []))} ignored: " + ", ".join(f"`{_cell(n)}`" for n in rec["ignored"][:20])
                + ")" if rec.get("ignored") else "")
             + f" -> {rec.get('submissions', 0)} submissions ({rec.get('rejected', 0)} rejected)"
             + (f" + {len(missing)} missing from the roster" if missing else "")
             + f" = {rec.get('rows_written', 0)} rows written."]
    if rec.get("grouped"):
        lines += ["", "Rows built from several entries (the platform's naming groups a student's files): "
                     + "; ".join(f"`{_cell(k)}` <- " + ", ".join(f"`{_cell(e)}`" for e in v[:10])
                                 for k, v in list(rec["grouped"].items())[:50])]
    if rec.get("unaccounted"):
        lines.append("Not accounted for (a grader bug, please report): " + ", ".join(map(_cell, rec["unaccounted"])))
    if missing:
        lines += ["", f"### Missing: {len(missing)} roster student(s) with no submission", ""]
        lines += [f"- {_cell(m)}" for m in missing]
    if unmatched:
        lines += ["", f"### Unmatched: {len(unmatched)} submission(s) matching nobody in the roster", ""]
        lines += [f"- {_cell(u)}" for u in unmatched]
    return lines


def _students(results: list[SubmissionResult]) -> list[str]:
    lines = ["", "## Students", "", "| student | score | status | late | folder |", "|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: r.student):
        late = r.intake.get("late")
        lines.append(f"| {_cell(r.student)} | {r.score:g} | {r.status} | {'' if late is None else 'yes' if late else 'no'}"
                     f" | {_cell(r.intake.get('folder', ''))} |")
    return lines


def render_summary(results: list[SubmissionResult], max_score: float, *, reconciliation: dict | None = None,
                   unmatched: list[str] = (), missing: list[str] = ()) -> str:
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
            lines.append(f"| {_cell(e['student'])} | {e['test']} | {_cell(ev)} |")
    if reconciliation is not None:
        lines += _accounting(reconciliation, list(unmatched), list(missing))
    lines += _students(results)
    return "\n".join(lines) + "\n"


def render_text(results: list[SubmissionResult]) -> str:
    spec = current_spec()
    short, columns = spec.short_names, spec.test_ids
    head = f"{'student':<24} {'score':>7} {'status':<9}" + "".join(f"{short.get(c, c):>9}" for c in columns)
    lines = [head, "-" * len(head)]
    for r in sorted(results, key=lambda r: r.student):
        comps = r.component_scores()
        cells = "".join(f"{(f'{comps[c][0]:g}' if c in comps else '-'):>9}" for c in columns)
        lines.append(f"{r.student[:24]:<24} {r.score:>7g} {r.status:<9}" + cells)
        if r.reason:
            lines.append(f"    {r.reason[:150]}")
    return "\n".join(lines) + "\n"
