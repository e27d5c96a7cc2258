"""The reference's answers to the public checks, recorded for the student release.

The release holds no ``solutions/``: ``grader check`` compares a student's answers with the
reference's answers recorded here (``grader/sandbox/recorded.py``), saved as
``grader/checks/public_reference.npz`` and replayed by ``pipeline.reference_impl`` when there is
no ``solutions`` package.

Which requests the reference gets during a check depends on the student only through which of the
check's cases pass (central differences of the reference run after a passing case only, and draw
from the check's generator). So every public check is run against a "student" that is the reference
with every pattern of failing cases, and the recording is replayed against the same patterns to
verify it before it is shipped.
"""
from __future__ import annotations

import itertools
from pathlib import Path

from .. import __version__
from .common import ReleaseError

RECORDING = "checks/public_reference.npz"  #: inside the shipped ``grader/``
MAX_ENUMERATED_CASES = 10  #: up to this many cases, every subset of failing cases is recorded


def public_specs():
    """The checks ``grader check`` runs: every check of the current assignment that has public cases."""
    from ..checks import REGISTRY
    from ..spec import current_spec

    ids = set(current_spec().load_checks())
    return [s for s in REGISTRY.values() if s.public and s.id in ids]


def reference_local():
    from ..reference import classes_of
    from ..sandbox.client import LocalImpl
    from ..spec import current_spec

    return LocalImpl(classes_of(current_spec(), "reference"), label="reference")  # always the live one


def failing_student(fail: frozenset[int]):
    """The reference as a student whose k-th object (k in ``fail``) cannot be created."""
    from ..sandbox.oracle import OracleBase

    inner = reference_local()

    class FailingStudent(OracleBase):
        label = "recording student"

        def __init__(self) -> None:
            self._generation = 0
            self.count = 0
            self.isolation = {}

        def request(self, head, arrays, *, cls, method, timeout=None):
            if head.get("op") == "new":
                k = self.count
                self.count += 1
                if k in fail:
                    return {"ok": False, "error": {"type": "RuntimeError", "where": "",
                                                   "message": "fails on purpose while recording"}}, []
            return inner.request(head, arrays, cls=cls, method=method, timeout=timeout)

    return FailingStudent()


def failure_patterns(n: int) -> list[frozenset[int]]:
    """Which of ``n`` objects fail: every subset for small ``n``, else none, all, each one alone,
    all but each one, and every prefix. The first pattern is always "none fails"."""
    if n <= MAX_ENUMERATED_CASES:
        return [frozenset(c) for r in range(n + 1) for c in itertools.combinations(range(n), r)]
    everything = frozenset(range(n))
    return ([frozenset(), everything] + [frozenset({k}) for k in range(n)]
            + [everything - {k} for k in range(n)] + [frozenset(range(k)) for k in range(1, n)])


def _record(specs, rec) -> dict[str, list[frozenset[int]]]:
    from ..checks import run_check

    plans: dict[str, list[frozenset[int]]] = {}
    for spec in specs:
        student = failing_student(frozenset())
        res = run_check(spec, student, rec, secret=None)
        if not res.passed:
            raise ReleaseError(f"the reference fails its own public check {spec.id}: "
                               + "; ".join(f"{c.label}: {c.cause} {c.detail}" for c in res.cases if not c.ok))
        plans[spec.id] = failure_patterns(student.count)
        for fail in plans[spec.id][1:]:
            run_check(spec, failing_student(fail), rec, secret=None)
    return plans


def _verify(specs, plans: dict[str, list[frozenset[int]]], path: Path) -> None:
    from ..checks import run_check
    from ..sandbox.recorded import RecordedImpl

    replay = RecordedImpl.load(path)
    for spec in specs:
        for fail in plans[spec.id]:
            res = run_check(spec, failing_student(fail), replay, secret=None)
            bad = [c for c in res.cases if c.cause == "grader_error"]
            if bad or (not fail and not res.passed):
                raise ReleaseError(f"replaying the recording for {spec.id} (failing cases {sorted(fail)}) "
                                   f"went wrong: {bad[0].detail if bad else 'the reference did not pass'}")


def record_public_reference(path: Path) -> dict:
    """Run every public check against the reference through a recorder; save to ``path``; replay to verify."""
    from ..sandbox.recorded import RecordingImpl

    specs = public_specs()
    rec = RecordingImpl(reference_local())
    plans = _record(specs, rec)
    meta = {"grader_version": __version__, "checks": sorted(plans), "requests": rec.requests,
            "entries": len(rec.entries)}
    rec.save(path, meta)
    _verify(specs, plans, path)
    return meta
