"""GitHub Actions output: a job summary table and error annotations.

Student-derived text can never start a workflow command: annotation messages are escaped as the
runner requires (``%``, CR, LF), and any ``::`` in them is broken up, so a printed
``::set-output`` or ``::add-mask::`` stays inert text.
"""
from __future__ import annotations

from ..diagnosis.causes import CAUSES
from ..scoring.results import SubmissionResult
from .feedback import cause_overview, feedback_items, summarize_causes


def _esc_data(s: str) -> str:
    s = str(s).replace("::", ": :")
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _esc_prop(s: str) -> str:
    return _esc_data(s).replace(":", "%3A").replace(",", "%2C")


def _md_cell(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace("::", ": :")


def github_summary(results: list[SubmissionResult]) -> str:
    lines = ["## Backprop-by-hand grading", ""]
    for r in sorted(results, key=lambda r: r.student):
        lines += [f"### {_md_cell(r.student)}: {r.score:g} / {r.max_score:g} ({r.status})", "",
                  "| component | score | named causes |", "|---|---|---|"]
        comps = r.component_scores()
        overview = cause_overview(summarize_causes(feedback_items(r)))
        if overview:
            lines[-2:-2] = ["**What to fix**", ""] + [_md_cell(x) if x else x for x in overview[2:]]
        for comp, (s, m) in comps.items():
            causes = sorted({c for t in r.tests if t.component == comp for c in t.causes})
            named = ", ".join(CAUSES[c].title if c in CAUSES else c for c in causes) or "-"
            lines.append(f"| {comp} | {s:g} / {m:g} | {_md_cell(named)} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def github_annotations(results: list[SubmissionResult]) -> list[str]:
    out = []
    for r in sorted(results, key=lambda r: r.student):
        for comp, (s, m) in r.component_scores().items():
            if s < m:
                failing = [t for t in r.tests if t.component == comp and not t.passed]
                causes = sorted({c for t in failing for c in t.causes})
                msg = (f"{r.student}: {comp} scored {s:g}/{m:g}. "
                       + "; ".join(CAUSES[c].title for c in causes if c in CAUSES)
                       + ("\n" + failing[0].output if failing else ""))
                out.append(f"::error title={_esc_prop(f'{comp} ({r.student})')}::{_esc_data(msg[:3000])}")
    return out
