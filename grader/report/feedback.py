"""``feedback.md``: what a student reads, component by component."""
from __future__ import annotations

from ..diagnosis.causes import CAUSES
from ..scoring.results import SubmissionResult

ORDER = ("LogisticRegression", "Linear", "ReLU", "LogSoftmax", "NLLLoss", "MNIST-MLP", "MNIST-LogReg")


def _md(text: str) -> str:
    """Student-derived text inside Markdown: no HTML, no links or images that could be injected."""
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("](", "] (").replace("`", "'")


def render_feedback(r: SubmissionResult) -> str:
    lines = [f"# Feedback for {r.student}", "",
             f"**Score: {r.score:g} / {r.max_score:g}**" + ("" if r.status == "ok" else f" (status: {r.status})"), ""]
    if r.reason:
        lines += [f"> {_md(r.reason)}", ""]
    for n in r.notes[:10]:
        lines.append(f"- Note: {_md(n.splitlines()[0] if n else '')}")
    if r.notes:
        lines.append("")
    comps = r.component_scores()
    for comp in sorted(comps, key=lambda c: ORDER.index(c) if c in ORDER else 99):
        s, m = comps[comp]
        tests = [t for t in r.tests if t.component == comp]
        lines += [f"## {comp}: {s:g} / {m:g}", ""]
        if all(t.not_attempted for t in tests) and tests:
            lines += ["Not attempted yet: the methods still raise `NotImplementedError`.", ""]
            continue
        for t in tests:
            mark = "PASS" if t.passed else "FAIL"
            lines.append(f"- **{mark}** {t.name.split(': ', 1)[-1]} ({t.score:g}/{t.max_score:g})")
            if not t.passed:
                for line in t.output.splitlines():
                    lines.append(f"  {_md(line)}")
        named = sorted({c for t in tests for c in t.causes if c in CAUSES})
        if named:
            lines += ["", "Named causes: " + ", ".join(CAUSES[c].title for c in named)]
        lines.append("")
    lines += ["---", "Public checks: run `grader check` on your `assignment/` folder. Hidden cases with other "
              "shapes and values are graded too."]
    return "\n".join(lines) + "\n"
