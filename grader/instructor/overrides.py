"""Instructor overrides: ``OUT/overrides.toml`` (or ``--overrides FILE``), applied on top of the
automatic score when the gradebook is assembled, so they survive every regrade (issue 19).

::

    [[override]]
    student = "alice"
    component = "Linear"      # optional; without it the override sets the total
    adjust = 2.0              # points added to the component (negative: deducted) ...
    # score = 10.0            # ... or the component's (or the total's) new score
    reason = "bias gradient summed in a later cell; accepted on request"
    author = "J. Doe (TA)"
    visible = true            # shown in the student's feedback.md (default: false)

Validated before anything is graded: an unknown key, student or component, a missing reason or
author, both or neither of ``score``/``adjust``, a score outside [0, max], or two overrides of the same
thing are errors that name the file and the entry.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..tomlfile import read_toml


KEYS = {"student", "component", "adjust", "score", "reason", "author", "visible"}


class OverrideError(ValueError):
    """The overrides file is invalid (usage error, exit status 2)."""


@dataclass(frozen=True)
class Override:
    student: str
    component: str | None        #: None: the total
    adjust: float | None
    score: float | None
    reason: str
    author: str
    visible: bool = False

    def describe(self) -> str:
        what = self.component or "total"
        how = f"{self.adjust:+g}" if self.adjust is not None else f"set to {self.score:g}"
        return f"{what} {how} ({self.author}: {self.reason})"


def load_overrides(path: str | Path | None) -> list[Override]:
    """The overrides of ``path`` (none when it is None or, for the default file, absent)."""
    if path is None:
        return []
    p = Path(path)
    data, _ = read_toml(p, "overrides", OverrideError)
    extra = sorted(set(data) - {"override"})
    if extra:
        raise OverrideError(f"overrides {p}: unknown tables {', '.join(extra)}; write each as [[override]]")
    out = []
    for i, entry in enumerate(data.get("override", []), start=1):
        out.append(_entry(entry, f"overrides {p}, entry {i}"))
    return out


def _entry(e: dict, where: str) -> Override:
    unknown = sorted(set(e) - KEYS)
    if unknown:
        raise OverrideError(f"{where}: unknown keys {', '.join(unknown)}; known: {', '.join(sorted(KEYS))}")
    for k in ("student", "reason", "author"):
        if not isinstance(e.get(k), str) or not e[k].strip():
            raise OverrideError(f"{where}: {k} is required (a non-empty string)")
    if ("adjust" in e) == ("score" in e):
        raise OverrideError(f"{where}: give exactly one of adjust (points added) or score (the new score)")
    for k in ("adjust", "score"):
        if k in e and (isinstance(e[k], bool) or not isinstance(e[k], (int, float))):
            raise OverrideError(f"{where}: {k} must be a number")
    if "adjust" in e and "component" not in e:
        raise OverrideError(f"{where}: adjust needs a component; to change the total, give score")
    comp = e.get("component")
    if comp is not None and (not isinstance(comp, str) or not comp):
        from ..spec import current_spec

        raise OverrideError(f"{where}: component must be a component id such as {current_spec().component_ids[0]!r}")
    if not isinstance(e.get("visible", False), bool):
        raise OverrideError(f"{where}: visible must be true or false")
    return Override(e["student"], comp, float(e["adjust"]) if "adjust" in e else None,
                    float(e["score"]) if "score" in e else None, e["reason"].strip(), e["author"].strip(),
                    bool(e.get("visible", False)))


def validate(overrides: list[Override], students: set[str], maxima: dict[str, float], *, source: str) -> None:
    """Refuse overrides naming an unknown student or component, out-of-range scores, duplicates."""
    from .late import did_you_mean

    seen: set[tuple[str, str | None]] = set()
    total_max = round(sum(maxima.values()), 4)
    for o in overrides:
        where = f"overrides {source}, student {o.student!r}"
        if o.student not in students:
            raise OverrideError(f"{where}: unknown student{did_you_mean(o.student, students)}")
        if o.component is not None and o.component not in maxima:
            raise OverrideError(f"{where}: unknown component {o.component!r}; this rubric has "
                                f"{', '.join(maxima)}")
        top = maxima[o.component] if o.component else total_max
        if o.score is not None and not 0 <= o.score <= top:
            raise OverrideError(f"{where}: score {o.score:g} is outside [0, {top:g}]")
        key = (o.student, o.component)
        if key in seen:
            raise OverrideError(f"{where}: a second override of {o.component or 'the total'}")
        seen.add(key)
    mixed = {s for s, c in seen if c is None} & {s for s, c in seen if c is not None}
    if mixed:
        raise OverrideError(f"overrides {source}: {sorted(mixed)[0]!r} has a total and a component override; "
                            "keep one kind per student")


@dataclass(frozen=True)
class Adjusted:
    """The automatic score with a student's overrides applied."""

    score: float
    applied: tuple[Override, ...] = ()
    notes: tuple[str, ...] = ()


def apply(components: dict[str, tuple[float, float]], auto: float, overrides: list[Override]) -> Adjusted:
    """``components``: component -> (score, max) of the automatic grading of one student."""
    if not overrides:
        return Adjusted(auto)
    total = next((o for o in overrides if o.component is None), None)
    if total is not None:
        return Adjusted(round(total.score, 4), (total,))
    comps = {c: s for c, (s, _m) in components.items()}
    notes = []
    for o in overrides:
        s, m = components.get(o.component, (0.0, 0.0))
        new = o.score if o.score is not None else s + o.adjust
        if not 0 <= new <= m:
            notes.append(f"{o.component}: {new:g} kept within [0, {m:g}]")
            new = min(max(new, 0.0), m)
        comps[o.component] = new
    return Adjusted(round(sum(comps.values()), 4), tuple(overrides), tuple(notes))
