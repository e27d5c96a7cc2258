"""A likelier cause tested before a property check's symptom is named (one mistake, one cause).

A property check sees a symptom: a float64 gradient for float32 inputs, a second backward that
differs. Some mistakes show such a symptom as a side effect, and their fix makes it go away; each
function here tests one such hypothesis on the student's own answers (never the reference) and renames
the check's case results it explains. Each takes the check's cases and its results, one per case, and
returns the results, renamed where the hypothesis holds.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..sandbox.oracle import StudentError
from .base import TOL32, CaseResult, Context
from .generic import SAME_TOL, compare_case, per_part, describe_part, part_value, rel_diff, usable, verdict
from .runs import LayerCase, Run, execute


def _param_parts(case: LayerCase) -> list[str]:
    return list(case.params)


def name_accumulated_upcast(ctx: Context, cases32: list[LayerCase], results: list[CaseResult]) -> list[CaseResult]:
    """A parameter gradient that is float64 for float32 inputs because it is added to (+=) a float64
    buffer of the constructor: a second backward doubles it. Named accumulates, not wrong_dtype."""
    out = []
    for case, res in zip(cases32, results):
        if not res.ok and res.cause == "wrong_dtype" and case.params:
            s = execute(ctx.student, case, twice=True)
            for p in _param_parts(case):
                first = usable(part_value(s, p), scalar_ok=True)
                again = usable(part_value(s, p, second=True), scalar_ok=True)
                if (first is not None and again is not None and first.dtype != np.float32
                        and again.shape == first.shape and rel_diff(again, 2 * first) <= TOL32):
                    res = replace(res, cause="accumulates", detail=f"{describe_part(case, p)} has dtype {first.dtype} for "
                                  "float32 inputs and a second backward doubles it: it is added to (+=) the float64 "
                                  "zeros of the constructor instead of assigned")
                    break
        out.append(res)
    return out


def _forward_changes(ctx: Context, case: LayerCase) -> bool:
    """forward(X), backward(G), forward(X) again: a second output that differs from the first means
    backward changed what forward computes from (the parameters: an update step inside backward)."""
    impl = ctx.student
    try:
        h = impl.new(case.cls, *case.ctor)
        for name, value in case.params.items():
            impl.set(h, name, value.copy())
        first = usable(impl.call(h, "forward", *case.inputs), scalar_ok=True)
        impl.call(h, "backward", case.upstream)
        again = usable(impl.call(h, "forward", *case.inputs), scalar_ok=True)
    except StudentError:
        return False
    return first is not None and again is not None and rel_diff(again, first) > SAME_TOL


def name_parameter_updates(ctx: Context, cases: list[LayerCase], results: list[CaseResult]) -> list[CaseResult]:
    """A second backward that differs because backward updated the parameters (forward on the same
    input differs after it): named updates_parameters, not an in-place change of the cache."""
    return [replace(res, cause="updates_parameters", detail=res.detail + "; forward on the same input gives a "
                    "different output after backward: backward changed the parameters")
            if not res.ok and res.cause == "mutates_cache" and case.params and _forward_changes(ctx, case) else res
            for case, res in zip(cases, results)]


def _interleaved(impl, case: LayerCase, other: tuple) -> Run:
    """Two instances with the same parameters: A.forward(X), B.forward(other), then A's backward."""
    run = Run()
    try:
        a, b = impl.new(case.cls, *case.ctor), impl.new(case.cls, *case.ctor)
        for h in (a, b):
            for name, value in case.params.items():
                impl.set(h, name, value.copy())
        run.forward = impl.call(a, "forward", *case.inputs)
        impl.call(b, "forward", *other)
        run.backward = impl.call(a, "backward", case.upstream)
        run.grads = impl.call(a, "gradients") if case.params else None
    except StudentError as exc:
        run.forward = run.backward = run.grads = exc
    return run


def check_own_state(ctx: Context, cases: list[LayerCase], parts: list[str], results: list[CaseResult],
                    plain_runs: list[Run]) -> list[CaseResult]:
    """A case that passed also holds when another instance of the class runs forward in between: its
    answers are those of the instance alone (``plain_runs``, the check's own runs of each case). State
    kept on the class (Linear._X = X) is shared by every layer of a network and fails as shared_state.
    One backward call per case when the layer keeps its own state (a slow backward costs little more)."""
    out = []
    for case, res, plain in zip(cases, results, plain_runs):
        if res.ok:
            first = np.asarray(case.inputs[0])
            other = (first[::-1] * 0.5 + ctx.rng.standard_normal(first.shape).astype(first.dtype),) + tuple(case.inputs[1:])
            s = _interleaved(ctx.student, case, other)
            res = verdict(res.label, per_part(parts, plain, lambda p, base: compare_case(
                res.label, describe_part(case, p), part_value(s, p), base, cause="shared_state",
                detail="differs when another instance of the class ran forward in between")), plain, parts, case.cls)
            if not res.ok and res.cause == "shared_state" and _uses_other(ctx, case, other, s, parts):
                res = replace(res, detail=res.detail + ": it is the other instance's answer (the cache is shared)")
        out.append(res)
    return out


def _uses_other(ctx: Context, case: LayerCase, other: tuple, s: Run, parts: list[str]) -> bool:
    """Whether the interleaved answers are the student's answers for the other instance's input."""
    alone = execute(ctx.student, replace(case, inputs=other))
    pairs = [(usable(part_value(s, p), scalar_ok=True), usable(part_value(alone, p), scalar_ok=True)) for p in parts]
    return any(a is not None and b is not None and a.shape == b.shape and rel_diff(a, b) <= 1e-6 for a, b in pairs)
