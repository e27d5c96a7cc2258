"""The results model: one :class:`SubmissionResult` per submission, every report is written from it.

Plain dataclasses with ``to_dict``/``from_dict`` (JSON, never pickle), so a result can cross a process
or a cluster boundary unchanged, and the reports of a resumed or distributed run are the same as those
of a local one.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .. import __version__

#: ``infra`` extends CONTRACT.md's list (README, "Statuses"): the grader's own machinery failed for this
#: submission (a grading process died, memory ran out in the grader, a bug of the grader), twice. It
#: is never a verdict on the student: a resumed run grades such a submission again.
STATUSES = ("ok", "error", "timeout", "rejected", "missing", "infra")  # "missing": a roster student with no submission
FINAL_STATUSES = ("ok", "error", "timeout", "rejected", "missing")


@dataclass(frozen=True)
class TestResult:
    """One test of ``results.json``."""

    __test__ = False  # not a pytest class

    name: str                     #: readable, unique: "Linear: backward: dL/db (hidden)"
    component: str                #: first tag: Linear, ReLU, ..., MNIST-MLP, MNIST-LogReg
    check: str                    #: the check id, e.g. "Linear.backward_bias"
    visibility: str               #: "public" or "hidden"
    score: float
    max_score: float
    output: str                   #: feedback text
    causes: tuple[str, ...] = ()  #: named causes of failures, most specific first
    not_attempted: bool = False
    #: the first failing case's own words, one line (no label, title or hints): what a row's reason
    #: quotes, so that no stage has to search ``output`` for it (issue 17)
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.score >= self.max_score - 1e-9 and not self.causes

    def to_gradescope(self) -> dict:
        return {"name": self.name, "score": self.score, "max_score": self.max_score,
                "status": "passed" if self.passed else "failed", "output": self.output,
                "visibility": "visible", "tags": [self.component, self.visibility] + list(self.causes)}


@dataclass
class SubmissionResult:
    """Everything known about one graded submission."""

    student: str
    status: str                               #: ok, error, timeout, rejected or infra
    reason: str = ""                          #: why, when status is not ok
    tests: list[TestResult] = field(default_factory=list)
    digest: str = ""                          #: sha256 of the student files as graded
    isolation: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    mnist: dict[str, dict] = field(default_factory=dict)
    student_output: str = ""                  #: what the code printed, sanitised and truncated
    grader_version: str = __version__
    source: str = ""                          #: the submission's file or folder name
    intake: dict = field(default_factory=dict)  #: output folder, platform, lms id, lateness, roster columns
    budget: dict = field(default_factory=dict)  #: the time budget: seconds, used, exhausted
    secret: dict = field(default_factory=dict)  #: how the hidden cases were drawn (scope, attempt)
    grader_trace: str = ""                    #: the grader's own traceback (record.json only, never shown)
    attempts: int = 1                         #: grading processes it took (2: retried after an infra failure)

    @property
    def score(self) -> float:
        return round(sum(t.score for t in self.tests), 4)

    @property
    def max_score(self) -> float:
        return round(sum(t.max_score for t in self.tests), 4)

    def component_scores(self) -> dict[str, tuple[float, float]]:
        out: dict[str, list[float]] = {}
        for t in self.tests:
            s = out.setdefault(t.component, [0.0, 0.0])
            s[0] += t.score
            s[1] += t.max_score
        return {k: (round(v[0], 4), round(v[1], 4)) for k, v in out.items()}

    def execution_time(self) -> float:
        return round(sum(self.timings.values()), 3)

    def to_gradescope(self, *, include_timing: bool = True, presentation=None) -> dict:
        """results.json; ``presentation`` (the rubric's) sets visibility and the leaderboard, else the
        defaults: public tests visible, hidden ones after the due date, Markdown output."""
        from ..instructor.visibility import present

        return present(self._gradescope_doc(include_timing), self, presentation)

    def _gradescope_doc(self, include_timing: bool) -> dict:
        head = f"Score {self.score:g} / {self.max_score:g}."
        if self.status != "ok":
            head += f" Status: {self.status}. {self.reason}"
        if self.notes:
            head += "\n" + "\n".join(f"Note: {n}" for n in self.notes)
        return {
            "score": self.score,
            "execution_time": self.execution_time() if include_timing else 0.0,
            "output": head,
            "tests": [t.to_gradescope() for t in self.tests],
            "extra_data": {"student": self.student, "status": self.status, "reason": self.reason,
                           "grader_version": self.grader_version, "digest": self.digest,
                           "isolation": self.isolation, "mnist": self.mnist,
                           "folder": self.intake.get("folder", ""), "late": self.intake.get("late"),
                           "intake": self.intake,
                           "budget": self.budget if include_timing else
                           {k: v for k, v in self.budget.items() if k not in ("used", "wall")},
                           "secret": self.secret,
                           "timings": self.timings if include_timing else {}},
        }

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tests"] = [asdict(t) for t in self.tests]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SubmissionResult":
        d = dict(d)
        d["tests"] = [TestResult(**{**t, "causes": tuple(t.get("causes", ()))}) for t in d.get("tests", [])]
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in known})  # a record of an older version loads too
