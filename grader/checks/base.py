"""The machinery every check uses: cases, runs on both implementations, and results.

A *check* is a plain function named after what it checks, registered with :func:`check`. It receives
a :class:`Context` holding the student implementation, the reference implementation (both behind the
same oracle interface, see ``grader/sandbox/oracle.py``) and a random generator seeded either with
the fixed public seed or with the run's secret. It returns a :class:`CheckResult`; the runner never
lets an exception escape, so one broken check cannot stop the others.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from ..diagnosis import Finding
from ..diagnosis.causes import CAUSES, RUN_FAILURES
from ..sandbox.oracle import Oracle, StudentError
from . import registry

PUBLIC_SEED = "public-checks-v1"
TOL64 = 1e-9    # a correct float64 solution is at ~1e-15: six orders of magnitude of margin
TOL32 = 1e-4    # float32 results against the float64 reference on the same values (~1e-7 typical)
FD_TOL = 1e-6   # directional central differences of the reference forward, h = 1e-5


@dataclass
class CaseResult:
    """One input case of a check."""

    label: str
    ok: bool
    cause: str | None = None
    detail: str = ""
    also: tuple = ()                    #: other causes equally consistent with this case (see reconcile)


@dataclass
class CheckResult:
    """The outcome of one check on one implementation."""

    id: str
    component: str
    title: str
    visibility: str                     #: "public" or "hidden"
    cases: list[CaseResult] = field(default_factory=list)
    note: str = ""                      #: what was checked, in one sentence

    @property
    def fraction(self) -> float:
        """Share of cases passed: the partial credit."""
        return sum(c.ok for c in self.cases) / len(self.cases) if self.cases else 0.0

    @property
    def passed(self) -> bool:
        return bool(self.cases) and all(c.ok for c in self.cases)

    @property
    def causes(self) -> list[str]:
        seen: list[str] = []
        for c in self.cases:
            if not c.ok and c.cause and c.cause not in seen:
                seen.append(c.cause)
        return seen

    @property
    def not_attempted(self) -> bool:
        return bool(self.cases) and all(c.cause == "not_attempted" for c in self.cases)


@dataclass(frozen=True)
class CheckSpec:
    id: str
    component: str
    title: str
    func: Callable[["Context"], list[CaseResult]]
    public: bool
    note: str
    #: the causes this check judges (plus :data:`RUN_FAILURES`): a failing case of this check never
    #: carries another cause, so one mistake is priced only by the checks about it (issue 15)
    owns: frozenset = frozenset()


REGISTRY: dict[str, CheckSpec] = registry.REGISTRY  #: the one registry (see registry.py)


def is_hidden_module(module: str) -> bool:
    """A module of a ``hidden`` package (``grader.checks.hidden.*``): its checks are hidden-only."""
    return "hidden" in module.split(".")[:-1]


def check(component: str, title: str, *, owns, public: bool | None = None):
    """Register ``func`` as the check ``<component>.<name without check_ prefix>``.

    ``owns``: the cause ids this check judges. Where the check is defined says who sees it: a check
    in ``grader/checks/<component>.py`` runs on the fixed public cases and on hidden cases, and ships
    to students; one in ``grader/checks/hidden/`` runs on hidden cases only and never ships (every
    check of this grader is public, so that no rule is enforced by hidden cases only, issue 15).
    ``public``, if given, must agree with that place."""

    def deco(func):
        name = func.__name__.removeprefix("check_").removeprefix(component.lower() + "_")
        cid = f"{component}.{name}"
        unknown = sorted(set(owns) - set(CAUSES))
        if unknown:
            raise ValueError(f"check {cid} owns unknown causes {unknown}")
        is_public = not is_hidden_module(func.__module__)
        if public is not None and public != is_public:
            raise ValueError(f"check {cid} says public={public} but is defined in {func.__module__}: public checks "
                             "go into grader/checks/<component>.py, hidden-only ones into grader/checks/hidden/")
        REGISTRY[cid] = CheckSpec(cid, component, title, func, is_public, (func.__doc__ or "").strip().split("\n")[0],
                                  frozenset(owns) | RUN_FAILURES)
        return func

    return deco


def seed_for(secret: str, check_id: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{secret}\x00{check_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


class Context:
    """What a check may use: the two implementations and its own random generator."""

    def __init__(self, student: Oracle, reference: Oracle, rng: np.random.Generator, visibility: str) -> None:
        self.student = student
        self.ref = reference
        self.rng = rng
        self.visibility = visibility


def run_check(spec: CheckSpec, student, reference, *, secret: str | None) -> CheckResult:
    """Run one check; public when ``secret`` is None. Never raises."""
    visibility = "public" if secret is None else "hidden"
    rng = seed_for(PUBLIC_SEED if secret is None else secret, spec.id)
    ctx = Context(student, reference, rng, visibility)
    result = CheckResult(spec.id, spec.component, spec.title, visibility, note=spec.note)
    try:
        result.cases = reconcile(spec.func(ctx))
    except StudentError as exc:
        result.cases = [error_case("setup", exc)]
    except Exception as exc:  # a bug of the grader itself must not cost the student the batch
        result.cases = [CaseResult("grader", False, "grader_error", f"internal error in the check: {exc!r}")]
    return result


# --- student errors as case results ---------------------------------------------------------------

#: ``type`` of a ``skipped`` StudentError that follows a call which ran out of time (the sandbox keeps
#: the earlier failure's type): ``Timeout`` (one call), ``TimeBudget`` (the submission's budget),
#: ``TooManyFailures`` (the worker crashed or timed out too often; counted as a timeout, as before).
SKIPPED_AFTER_TIMEOUT = frozenset({"Timeout", "TimeBudget", "TooManyFailures"})


def _own_module_hint(info: dict) -> str:
    """For ``No module named 'assignment.utils'`` (``from .utils import f``): a helper file of the student's own,
    which works beside their package but is not part of what a submission is."""
    from ..spec import current_spec  # late: the spec module imports the check registry

    m = re.fullmatch(r"No module named '([\w.]+)'", str(info.get("message", "")))
    if info.get("type") != "ModuleNotFoundError" or m is None:
        return ""
    spec = current_spec()
    package, _, name = m.group(1).partition(".")
    known = {f.removesuffix(".py") for f in spec.student_files + spec.provided_files}
    if package != spec.student_package or not name or "." in name or name in known:
        return ""  # ``import cv2``: a library not installed here, not a file of the submission
    files = " and ".join(spec.student_files)
    return (f" (only {files} are taken from a submission: a module of your own such as {name}.py is not, so "
            "put what it holds into the file that uses it)")


def error_case(label: str, exc: StudentError, what: str = "") -> CaseResult:
    info = exc.info
    kind = exc.kind
    where = f" at {info['where']}" if info.get("where") else ""
    prefix = f"{what} " if what else ""
    if kind == "not_attempted":
        return CaseResult(label, False, "not_attempted", f"{prefix}not attempted: {info.get('message', '')}".strip())
    if kind == "import":
        if info.get("type") == "SubmissionFileProblem":  # the intake's stand-in (grader/intake/extract.py)
            return CaseResult(label, False, "import_error", f"{info.get('import_error', '')}.py could not be used: "
                              f"{info.get('message')}")
        return CaseResult(label, False, "import_error",
                          f"{info.get('import_error', '')}.py could not be imported: {info.get('type')}: {info.get('message')}{where}"
                          + _own_module_hint(info))
    if kind == "missing":
        return CaseResult(label, False, "missing_class", info.get("message", ""))
    if kind == "timeout":
        return CaseResult(label, False, "timeout", f"{prefix}{info.get('message')}")
    if kind in ("crash", "protocol"):
        return CaseResult(label, False, "crash", f"{prefix}{info.get('message')}")
    if kind == "skipped":  # named by the type of the earlier failure, never by its message's words
        cause = "timeout" if info.get("type") in SKIPPED_AFTER_TIMEOUT else "crash"
        return CaseResult(label, False, cause, f"{prefix}{info.get('message')}")
    msg = f"{prefix}raised {info.get('type')}: {info.get('message')}{where}"
    if "read-only" in str(info.get("message", "")):
        return CaseResult(label, False, "modifies_input", msg + " (it writes into an input array)")
    return CaseResult(label, False, "exception", msg)


def finding_case(label: str, f: Finding) -> CaseResult:
    return CaseResult(label, f.ok, None if f.ok else f.cause, "" if f.ok else f.detail, () if f.ok else f.also)


def reconcile(cases: list[CaseResult]) -> list[CaseResult]:
    """One mistake, one cause: a case whose answer is equally consistent with several causes (a corner
    such as N = 1, where a (1,) array is both the per-sample losses and a kept axis) takes the cause
    the unambiguous failing cases of the same check name, when that is one of its alternatives."""
    firm = [c.cause for c in cases if not c.ok and not c.also]
    out = []
    for c in cases:
        pick = [x for x in firm if x in c.also] if not c.ok and c.also else []
        out.append(replace(c, cause=max(pick, key=pick.count), also=()) if pick else c)
    return out
