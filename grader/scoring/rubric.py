"""The rubric: points per check, the public share, and the accuracy bands of the MNIST tests."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..tomlfile import read_toml


DEFAULT = Path(__file__).with_name("default_rubric.toml")


class RubricError(ValueError):
    """The rubric file is invalid; the message says where."""


@dataclass(frozen=True)
class MnistRule:
    points: float
    full_within: float
    bands: tuple[tuple[float, float], ...]
    chance_margin: float

    def fraction(self, accuracy: float | None, reference: float, chance: float) -> float:
        """Credit for ``accuracy`` given the reference's accuracy under the same protocol."""
        if accuracy is None or not accuracy > chance + self.chance_margin:
            return 0.0
        drop = reference - accuracy
        if drop <= self.full_within:
            return 1.0
        for max_drop, frac in self.bands:
            if drop <= max_drop:
                return frac
        return 0.0


@dataclass(frozen=True)
class Rubric:
    name: str
    public_share: float
    partial_credit: bool
    checks: dict[str, float]
    mnist: dict[str, MnistRule]
    source: str = field(default="", compare=False)
    digest: str = ""
    #: The import policy: (top-level module, library name shown in the message), see ``[imports]``.
    blocked_imports: tuple[tuple[str, str], ...] = ()
    late: object = None             #: grader.instructor.late.LatePolicy or None ([late])
    presentation: object = None     #: grader.instructor.visibility.Presentation ([visibility], [leaderboard])
    grading_digest: str = ""        #: sha256 of what can change a score (not [late], [visibility], [leaderboard])

    @property
    def total(self) -> float:
        return sum(self.checks.values()) + sum(r.points for r in self.mnist.values())


def load_rubric(path: str | Path | None = None, spec=None) -> Rubric:
    """The rubric in ``path`` (default: the assignment's own) for ``spec`` (default: the current one)."""
    from ..spec import current_spec

    spec = spec or current_spec()
    p = Path(path) if path else spec.rubric
    data, raw_bytes = read_toml(p, "rubric", RubricError)

    known = spec.load_checks()  # this assignment's checks, in registration order
    head = data.get("rubric", {})
    checks = data.get("checks", {})
    unknown = sorted(set(checks) - set(known))
    if unknown:
        raise RubricError(f"rubric {p} names unknown checks: {', '.join(unknown)}; known: {', '.join(known)}")
    for k, v in checks.items():
        if not isinstance(v, (int, float)) or v < 0:
            raise RubricError(f"rubric {p}: points of {k} must be a number >= 0")
    mnist = {}
    for comp, rule in (data.get("mnist") or {}).items():
        if comp not in spec.end_to_end_ids:
            raise RubricError(f"rubric {p}: unknown MNIST test {comp!r}")
        try:
            bands = tuple(sorted((float(a), float(b)) for a, b in rule.get("bands", [])))
            mnist[comp] = MnistRule(float(rule["points"]), float(rule.get("full_within", 0.005)), bands,
                                    float(rule.get("chance_margin", 0.05)))
        except (KeyError, TypeError, ValueError) as exc:
            raise RubricError(f"rubric {p}: [mnist.{comp}] is invalid ({exc})") from None
    share = float(head.get("public_share", 0.25))
    if not 0 <= share <= 1:
        raise RubricError(f"rubric {p}: public_share must be between 0 and 1")
    ordered = {cid: float(checks[cid]) for cid in known if cid in checks}
    return Rubric(str(head.get("name", "rubric")), share, bool(head.get("partial_credit", True)), ordered, mnist,
                  source=str(p), digest=hashlib.sha256(raw_bytes).hexdigest(),
                  blocked_imports=_import_policy(data.get("imports"), p),
                  late=_parse_late(data, p), presentation=_parse_presentation(data, p, spec),
                  grading_digest=grading_digest(data))


def _import_policy(section, p: Path) -> tuple[tuple[str, str], ...]:
    """``[imports] blocked = [...]`` (default: the autodiff libraries) minus ``allowed = [...]``."""
    from ..sandbox.worker import BLOCKED_IMPORTS

    section = section or {}
    if not isinstance(section, dict):
        raise RubricError(f"rubric {p}: [imports] must be a table")
    unknown = sorted(set(section) - {"blocked", "allowed"})
    if unknown:
        raise RubricError(f"rubric {p}: [imports] has unknown keys {', '.join(unknown)}; known: blocked, allowed")
    blocked = section.get("blocked", sorted(BLOCKED_IMPORTS))
    allowed = section.get("allowed", [])
    for key, value in (("blocked", blocked), ("allowed", allowed)):
        if not isinstance(value, list) or not all(isinstance(v, str) and v.isidentifier() for v in value):
            raise RubricError(f"rubric {p}: [imports] {key} must be a list of top-level module names")
    keep = [b for b in blocked if b not in set(allowed)]
    return tuple((b, BLOCKED_IMPORTS.get(b, b)) for b in sorted(set(keep)))


#: sections that only change how results are presented or penalised, never a check's score: editing
#: them (a moved deadline, hidden tests released) must not regrade anything (issue 19)
PRESENTATION_SECTIONS = ("late", "visibility", "leaderboard")


def grading_digest(data: dict) -> str:
    kept = {k: v for k, v in data.items() if k not in PRESENTATION_SECTIONS}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()


def _parse_late(data: dict, p: Path):
    if "late" not in data:
        return None
    from ..instructor.late import LateError, LatePolicy

    try:
        return LatePolicy.from_table(data["late"], base=p.parent, where=f"rubric {p}")
    except LateError as exc:
        raise RubricError(str(exc)) from None


def _parse_presentation(data: dict, p: Path, spec=None):
    from ..instructor.visibility import VisibilityError, parse_presentation

    try:
        return parse_presentation(data.get("visibility"), data.get("leaderboard"), f"rubric {p}", spec)
    except VisibilityError as exc:
        raise RubricError(str(exc)) from None
