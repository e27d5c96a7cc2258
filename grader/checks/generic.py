"""Check bodies shared by every component; each component module binds them to its own cases.

A component supplies ``cases(rng)`` (a list of :class:`LayerCase`, with non-square, pairwise
distinct shapes plus N = 1 and square corner cases) and ``mutants(part, case, ref)``: known wrong
answers for that very input, used to name a bug when the student's answer equals one of them.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np

from ..sandbox.client import StudentError
from .base import TOL32, CaseResult, Context, error_case
from .runs import LayerCase, Run, execute, fd_finding, grad_of, judge, modified_case, reference_run, value_of

MutantFn = Callable[[str, LayerCase, object], list]


def _what(case: LayerCase, part: str) -> str:
    if part == "forward":
        return f"{case.cls}.forward output"
    if part == "input":
        return f"{case.cls}.backward result (dL/d{case.input_names[0]})"
    return f"gradient of {part} (grad_{part})"


def part_value(run: Run, part: str, *, second: bool = False):
    if part == "forward":
        return run.forward
    if part == "input":
        return run.backward2 if second else run.backward
    if second:
        if isinstance(run.grads2, StudentError) or run.grads2 is None:
            return run.grads2
        return run.grads2.get(part) if isinstance(run.grads2, dict) else run.grads2
    return grad_of(run, part)


def judge_part(ctx: Context, case: LayerCase, s: Run, r: Run, part: str, mutants: MutantFn, *,
               label: str | None = None, second: bool = False, unstable: bool = False, fd: bool = False,
               extra_mutants: list = (), tol: float | None = None) -> CaseResult:
    label = label or case.label
    got = part_value(s, part, second=second)
    want = part_value(r, part)
    if part != "forward" and isinstance(s.forward, StudentError):
        return error_case(label, s.forward, f"{case.cls}.forward (needed before backward)")
    if second and part == "input" and isinstance(s.backward, StudentError):
        return error_case(label, s.backward, f"{case.cls}.backward")
    ms = list(extra_mutants) + _safe_mutants(mutants, part, case, ctx.ref)
    scalar_ok = (case.loss and part == "forward") or np.ndim(value_of(want)) == 0
    bias_of = np.shape(case.upstream) if part == "b" and not case.loss else None
    res = judge(got, want, label=label, what=_what(case, part), case=case, mutants=ms,
                scalar_ok=scalar_ok, bias_of=bias_of, unstable=unstable, tol=tol)
    if res.ok and fd and part != "forward" and case.dtype == np.float64:
        f = fd_finding(ctx.ref, case, got, "X" if part == "input" else part, ctx.rng, what=_what(case, part))
        if not f.ok:
            return CaseResult(label, False, f.cause, f.detail)
    return res


def _safe_mutants(mutants: MutantFn, part: str, case: LayerCase, ref) -> list:
    """Known wrong answers; one that cannot be formed for this shape (a broadcast error) is skipped."""
    out = []
    try:
        candidates = mutants(part, case, ref)
    except (ValueError, IndexError, FloatingPointError):
        return out
    for item in candidates:
        out.append(item)
    return out


def check_part(ctx: Context, cases: list[LayerCase], part: str, mutants: MutantFn, *, fd: bool = True) -> list[CaseResult]:
    out = []
    for case in cases:
        s, r = execute(ctx.student, case), reference_run(ctx.ref, case)
        out.append(judge_part(ctx, case, s, r, part, mutants, fd=fd))
    return out


def check_read_only(ctx: Context, cases: list[LayerCase], parts: list[str], mutants: MutantFn) -> list[CaseResult]:
    """Inputs and upstream gradient passed read-only, then writable with a check they are unchanged."""
    out = []
    for case in cases:
        r = reference_run(ctx.ref, case)
        s = execute(ctx.student, case, readonly=True)
        label = case.label + ", read-only arrays"
        out.append(_first_failure(judge_part(ctx, case, s, r, p, mutants, label=label) for p in parts)
                   or CaseResult(label, True))
        s2 = execute(ctx.student, case, echo=True)
        label2 = case.label + ", inputs unchanged"
        if isinstance(s2.forward, StudentError):
            out.append(error_case(label2, s2.forward, f"{case.cls}.forward"))
        else:
            # Leaving the inputs alone earns credit only together with right answers: returning zeros
            # or an object that lies about itself does not "not modify" anything worth a point.
            out.append(modified_case(label2, s2, f"{case.cls}.forward/backward")
                       or _first_failure(judge_part(ctx, case, s2, r, p, mutants, label=label2) for p in parts)
                       or CaseResult(label2, True))
    return out


def _first_failure(results) -> CaseResult | None:
    for res in results:
        if not res.ok:
            return res
    return None


def check_twice(ctx: Context, cases: list[LayerCase], parts: list[str], mutants: MutantFn) -> list[CaseResult]:
    """backward called twice after one forward gives the same result and gradients."""
    out = []
    for case in cases:
        r = reference_run(ctx.ref, case)
        s = execute(ctx.student, case, twice=True)
        label = case.label + ", second backward"
        bad = None
        for p in parts:
            want = value_of(part_value(r, p))
            res = judge_part(ctx, case, s, r, p, mutants, label=label, second=True,
                             extra_mutants=[("accumulates", 2 * np.asarray(want, dtype=np.float64))])
            if not res.ok:
                bad = res
                if s.backward2 is not None and not isinstance(s.backward2, StudentError):
                    first = judge_part(ctx, case, s, r, p, mutants, label=label)
                    if first.ok and res.cause not in ("accumulates", "exception", "not_attempted"):
                        bad = CaseResult(label, False, "accumulates",
                                         f"the second backward changed {_what(case, p)}: " + res.detail)
                break
        out.append(bad or CaseResult(label, True))
    return out


def check_latest_forward(ctx: Context, cases: list[LayerCase], parts: list[str], mutants: MutantFn) -> list[CaseResult]:
    """After two forward calls, backward differentiates at the input of the second one."""
    out = []
    for case in cases:
        first = np.asarray(case.inputs[0])
        earlier = (first[::-1] * 0.5 + ctx.rng.standard_normal(first.shape).astype(first.dtype),) + tuple(case.inputs[1:])
        s = execute(ctx.student, case, forwards=(earlier,))
        r = reference_run(ctx.ref, case)
        r_old = reference_run(ctx.ref, replace(case, inputs=earlier))
        label = case.label + ", backward after two forward calls"
        out.append(_first_failure(
            judge_part(ctx, case, s, r, p, mutants, label=label,
                       extra_mutants=[("stale_cache", np.asarray(value_of(part_value(r_old, p)), dtype=np.float64))])
            for p in parts) or CaseResult(label, True))
    return out


def check_upstream(ctx: Context, cases: list[LayerCase], parts: list[str], mutants: MutantFn) -> list[CaseResult]:
    """backward is linear in the upstream gradient: scaling G by c scales every gradient by c."""
    out = []
    for case in cases:
        c = float(ctx.rng.uniform(1.5, 3.0)) * (-1 if ctx.rng.random() < 0.5 else 1)
        up = case.upstream * c if isinstance(case.upstream, np.ndarray) else float(case.upstream) * c
        scaled = case.with_upstream(up)
        r0 = reference_run(ctx.ref, case)
        r = reference_run(ctx.ref, scaled)
        s = execute(ctx.student, scaled)
        label = f"{case.label}, upstream gradient x {c:.3g}"
        bad = None
        for p in parts:
            ignore = ("upstream_scale_ignored" if case.loss else "ignores_upstream")
            res = judge_part(ctx, scaled, s, r, p, mutants, label=label,
                             extra_mutants=[(ignore, np.asarray(value_of(part_value(r0, p)), dtype=np.float64))])
            if not res.ok:
                bad = res
                break
        out.append(bad or CaseResult(label, True))
    return out


def check_float32(ctx: Context, cases: list[LayerCase], parts: list[str], mutants: MutantFn) -> list[CaseResult]:
    """float32 inputs and parameters give float32 outputs and gradients, accurate to float32."""
    out = []
    for case in cases:
        c32 = case.astype(np.float32)
        r = reference_run(ctx.ref, c32.astype(np.float64))
        r32 = reference_run(ctx.ref, c32)
        s = execute(ctx.student, c32)
        label = case.label + ", float32"
        out.append(_first_failure(judge_part(ctx, c32, s, r, p, mutants, label=label, tol=_tol32(r, r32, p))
                                  for p in parts) or CaseResult(label, True))
    return out


def stability_case(ctx: Context, case: LayerCase, parts: list[str], mutants: MutantFn, *,
                   small: LayerCase) -> CaseResult:
    """Judge ``case`` (huge inputs). A wrong answer counts as numerical instability only if the
    same computation is right on the moderate inputs ``small``; otherwise the bug is named as is."""
    s, r = execute(ctx.student, case), reference_run(ctx.ref, case)
    res = _first_failure(judge_part(ctx, case, s, r, p, mutants, unstable=True) for p in parts)
    if res is None:
        return CaseResult(case.label, True)
    if res.cause == "unstable":
        s2, r2 = execute(ctx.student, small), reference_run(ctx.ref, small)
        plain = _first_failure(judge_part(ctx, small, s2, r2, p, mutants) for p in parts)
        if plain is not None and plain.cause not in ("not_finite",):
            return CaseResult(case.label, False, plain.cause, plain.detail + " (also wrong for moderate inputs)")
    return res


def _tol32(r64: Run, r32: Run, part: str) -> float:
    """float32 tolerance: TOL32, or 50 times the reference's own float32 error where a result
    cancels (e.g. sum(p - y) of a logistic regression), so correct float32 code never fails by chance."""
    a = np.asarray(value_of(part_value(r32, part)), dtype=np.float64)
    b = np.asarray(value_of(part_value(r64, part)), dtype=np.float64)
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    own = float(np.max(np.abs(a - b))) / scale if scale > 0 else 0.0
    return max(TOL32, 50.0 * own)


def distinct_dims(rng: np.random.Generator, *ranges: tuple[int, int]) -> list[int]:
    """One integer from each (low, high) range, all different (the ranges need not be disjoint)."""
    for _ in range(1000):
        vals = [int(rng.integers(lo, hi + 1)) for lo, hi in ranges]
        if len(set(vals)) == len(vals):
            return vals
    raise RuntimeError("cannot draw distinct dimensions")


def away_from_zero(rng: np.random.Generator, shape, margin: float = 0.05) -> np.ndarray:
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < margin, np.sign(x + 1e-12) * (margin + np.abs(x)), x)
