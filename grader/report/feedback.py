"""``feedback.md``: what a student reads. It opens with the causes found, each once, most points
first, with the checks each cost and what to try; the per-check list follows, where a diagnosis
already shown is referred to instead of repeated (issue 15). The terminal output of ``grader check``
and the GitHub summary use the same overview (:func:`summarize_causes`, :func:`cause_overview`)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..diagnosis.causes import CAUSES, SYMPTOMS
from ..scoring.results import SubmissionResult



def _order() -> tuple[str, ...]:
    """Components by task number, then the end-to-end tests (the assignment spec's feedback order)."""
    from ..spec import current_spec

    return current_spec().feedback_order


def _md(text: str) -> str:
    """Student-derived text inside Markdown: no HTML, no links or images that could be injected."""
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("](", "] (").replace("`", "'")


@dataclass
class CauseEntry:
    """One named cause of a submission: what it cost and where."""

    cause: str
    points: float = 0.0
    checks: list[str] = field(default_factory=list)      #: readable names of the tests it failed
    components: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return CAUSES[self.cause].title if self.cause in CAUSES else self.cause

    @property
    def hint(self) -> str:
        return CAUSES[self.cause].hint if self.cause in CAUSES else ""


def _charged(causes) -> list[str]:
    """The causes a failing test is charged to: its named ones, or its symptoms when nothing is named."""
    named = [c for c in causes if c not in SYMPTOMS]
    return named or list(causes)


def summarize_causes(items) -> list[CauseEntry]:
    """``items``: (component, readable check name, causes, points lost or None). Each cause once, most
    points (then most checks) first; a test's lost points are shared between its causes."""
    entries: dict[str, CauseEntry] = {}
    for comp, name, causes, lost in items:
        charged = _charged(causes)
        for c in charged:
            e = entries.setdefault(c, CauseEntry(c))
            e.points += (lost or 0.0) / len(charged)
            if name not in e.checks:
                e.checks.append(name)
            if comp not in e.components:
                e.components.append(comp)
    return sorted(entries.values(), key=lambda e: (-round(e.points, 6), -len(e.checks), e.cause))


def _short(name: str) -> str:
    return name.replace(" (public)", " [public]").replace(" (hidden)", " [hidden]")


def cause_overview(entries: list[CauseEntry], *, md: bool = True, points: bool = True) -> list[str]:
    """The opening of the feedback: each cause once, what it cost, what to try (the first: Fix first)."""
    if not entries:
        return []
    lines = ["## What to fix" if md else "What to fix:", ""]
    for i, e in enumerate(entries, 1):
        where = ", ".join(e.components)
        cost = f"{e.points:g} point(s), " if points else ""
        checks = "; ".join(_short(c) for c in e.checks[:8]) + (" ..." if len(e.checks) > 8 else "")
        bold = f"**{e.title}**" if md else e.title
        lines.append(f"{i}. {bold} ({where}): {cost}{len(e.checks)} check(s): {checks}")
        if e.hint:
            lines.append(f"   {'Fix first' if i == 1 else 'What to try'}: {e.hint}")
    return lines + [""]


def feedback_items(r: SubmissionResult) -> list:
    return [(t.component, t.name, t.causes, t.max_score - t.score) for t in r.tests
            if not t.passed and t.causes and not t.not_attempted]


def render_feedback(r: SubmissionResult) -> str:
    lines = [f"# Feedback for {r.student}", "",
             f"**Score: {r.score:g} / {r.max_score:g}**" + ("" if r.status == "ok" else f" (status: {r.status})"), ""]
    if r.reason:
        lines += [f"> {_md(r.reason)}", ""]
    for n in r.notes[:10]:
        lines.append(f"- Note: {_md(n.splitlines()[0] if n else '')}")
    if r.notes:
        lines.append("")
    lines += cause_overview(summarize_causes(feedback_items(r)))
    shown: dict[tuple, str] = {}
    comps = r.component_scores()
    order = _order()
    for comp in sorted(comps, key=lambda c: order.index(c) if c in order else 99):
        s, m = comps[comp]
        tests = [t for t in r.tests if t.component == comp]
        lines += [f"## {comp}: {s:g} / {m:g}", ""]
        if all(t.not_attempted for t in tests) and tests:
            lines += ["Not attempted yet: the methods still raise `NotImplementedError`.", ""]
            continue
        for t in tests:
            mark = "PASS" if t.passed else "FAIL"
            lines.append(f"- **{mark}** {t.name.split(': ', 1)[-1]} ({t.score:g}/{t.max_score:g})")
            if t.passed:
                continue
            key = tuple(t.causes)
            named = [c for c in key if c not in SYMPTOMS]
            if named and key in shown:  # the same diagnosis again: referred to, not repeated
                titles = ", ".join(CAUSES[c].title for c in named if c in CAUSES)
                lines.append(f"  Same cause as above ({_md(titles)}): see {_md(shown[key])}.")
                continue
            shown.setdefault(key, t.name)
            for line in t.output.splitlines():
                lines.append(f"  {_md(line)}")
        named = sorted({c for t in tests for c in t.causes if c in CAUSES})
        if named:
            lines += ["", "Named causes: " + ", ".join(CAUSES[c].title for c in named)]
        lines.append("")
    lines += ["---", "Public checks: run `grader check` on your `assignment/` folder. Hidden cases with other "
              "shapes and values are graded too."]
    return "\n".join(lines) + "\n"
