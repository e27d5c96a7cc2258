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


def describe_part(case: LayerCase, part: str) -> str:
    """How a part of a case's result is named in feedback ("Linear.forward output", ...)."""
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
    bias_of = None
    if part == "b":
        bias_of = (case.batch,) if case.loss else np.shape(case.upstream)
    res = judge(got, want, label=label, what=describe_part(case, part), case=case, mutants=ms,
                scalar_ok=scalar_ok, bias_of=bias_of, unstable=unstable, tol=tol)
    if res.ok and fd and part != "forward" and case.dtype == np.float64:
        f = fd_finding(ctx.ref, case, got, "X" if part == "input" else part, ctx.rng, what=describe_part(case, part))
        if not f.ok:
            return CaseResult(label, False, f.cause, f.detail)
    return res


def _safe_mutants(mutants: MutantFn, part: str, case: LayerCase, ref) -> list:
    """Known wrong answers; one that cannot be formed for this shape (a broadcast error) is skipped."""
    out = []
    try:
        with np.errstate(all="ignore"):  # a wrong formula may overflow on large logits: it is only compared
            candidates = mutants(part, case, ref)
    except (ValueError, IndexError, FloatingPointError):
        return out
    for item in candidates:
        out.append(item)
    return out


#: causes a value check can give any part: validation, shape relations, and the scale of the error
VALUE_CAUSES = ("wrong_type", "wrong_dtype", "wrong_shape", "not_finite", "transposed", "sign", "scale_N",
                "scale_1_over_N", "wrong_values")
FLOAT32_CAUSES = ("wrong_dtype", "float32_inaccurate")


def check_part(ctx: Context, cases: list[LayerCase], part: str, mutants: MutantFn, *, fd: bool = True) -> list[CaseResult]:
    out = []
    for case in cases:
        s, r = execute(ctx.student, case), reference_run(ctx.ref, case)
        out.append(judge_part(ctx, case, s, r, part, mutants, fd=fd))
    return out


# --- property checks: each judges its own property on the student's own answers (issue 15) -------
#
# A property (read-only inputs, a second backward, linearity in G, the latest forward, float32) is
# judged by comparing the student's answers with each other, never with the reference: wrong values
# are the value checks' business and are not charged again. A part whose plain answer is unusable
# (raised, wrong type, not finite, all zero) cannot show the property and is skipped; a case where
# every part is skipped fails as "could not be checked" (or with the error raised), so code that
# does nothing useful never collects property points.

def usable(v, *, scalar_ok: bool = False) -> np.ndarray | None:
    """The student's answer as a float array if a property can be judged on it, else None."""
    v = value_of(v)
    if isinstance(v, StudentError) or type(v) is not np.ndarray or v.dtype.kind != "f":
        return None
    if v.ndim == 0 and not scalar_ok and v.size != 1:
        return None
    if not np.all(np.isfinite(v)) or not np.any(v != 0):
        return None
    return v


def rel_diff(a, b) -> float:
    """max|a - b| / max|b| (inf when the shapes differ)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    d = float(np.max(np.abs(a - b))) if a.size else 0.0
    return d / scale if scale > 0 else d


SAME_TOL = 1e-9  #: the same code on the same values: equal up to rounding


def _plain_error(s: Run, parts: list[str]) -> StudentError | None:
    for p in ["forward"] + list(parts):
        v = part_value(s, p)
        if isinstance(v, StudentError):
            return v
    return None


def verdict(label: str, results: list, plain: Run, parts: list[str], cls: str) -> CaseResult:
    """First failure; else a pass if some part was judged; else why nothing could be judged. A method
    that raised in the plain run fails: no property of it can be shown ("passes when nothing raised")."""
    for r in results:
        if r is not None and not r.ok:
            return r
    err = _plain_error(plain, parts)
    if err is not None:
        return error_case(label, err, f"{cls}")
    if any(r is not None for r in results):
        return CaseResult(label, True)
    return CaseResult(label, False, "untestable",
                      "no result could be checked: each one is missing, not a float array, not finite or all zero")


def compare_case(label: str, what: str, got, base, *, tol: float = SAME_TOL, cause: str, detail: str,
                 named: list = ()) -> CaseResult:
    """``got`` should equal ``base`` (both the student's); ``named``: (cause, array, words) alternatives."""
    if isinstance(got, StudentError):
        return error_case(label, got, what)
    g = value_of(got)
    if type(g) is not np.ndarray or g.shape != np.shape(base):
        return CaseResult(label, False, cause, f"{what}: {detail} (it came back with shape "
                          f"{getattr(g, 'shape', type(g).__name__)} instead of {np.shape(base)})")
    if np.float32 in (g.dtype, np.asarray(base).dtype):  # float32 answers agree to float32 rounding only
        tol = max(tol, TOL32)
    d = rel_diff(g, base)
    if d <= tol:
        return CaseResult(label, True)
    for c, alt, words in named:
        if rel_diff(g, alt) <= max(tol, 1e-6):
            return CaseResult(label, False, c, f"{what}: {words}")
    return CaseResult(label, False, cause, f"{what}: {detail} (relative difference {d:.3g})")


def check_read_only(ctx: Context, cases: list[LayerCase], parts: list[str], mutants: MutantFn = None) -> list[CaseResult]:
    """Inputs and upstream gradient passed read-only, then writable with a check they are unchanged.

    Passes when nothing raised because an input was read-only, nothing was written, and the answers
    are those of the same call on ordinary arrays."""
    out = []
    for case in cases:
        plain = execute(ctx.student, case)
        label = case.label + ", read-only arrays"
        if isinstance(plain.forward, StudentError):  # nothing runs: no need to spend more calls on it
            out += [error_case(label, plain.forward, case.cls), error_case(case.label + ", inputs unchanged",
                                                                           plain.forward, case.cls)]
            continue
        s = execute(ctx.student, case, readonly=True)
        res = []
        for p in ["forward"] + [q for q in parts if q != "forward"]:
            v = part_value(s, p)
            if isinstance(v, StudentError):
                res.append(_read_only_error(label, v, part_value(plain, p), describe_part(case, p)))
                continue
            base = usable(part_value(plain, p), scalar_ok=True)
            res.append(None if base is None else compare_case(
                label, describe_part(case, p), v, base, cause="modifies_input",
                detail="differs from the answer for the same, writable, inputs"))
        out.append(verdict(label, res, plain, parts, case.cls))
        s2 = execute(ctx.student, case, echo=True)
        label2 = case.label + ", inputs unchanged"
        if isinstance(s2.forward, StudentError):
            out.append(error_case(label2, s2.forward, f"{case.cls}.forward"))
        else:
            judged = [CaseResult(label2, True) if usable(part_value(s2, p), scalar_ok=True) is not None else None
                      for p in ["forward"] + [q for q in parts if q != "forward"]]
            out.append(modified_case(label2, s2, f"{case.cls}.forward/backward")
                       or verdict(label2, judged, s2, parts, case.cls))
    return out


def _read_only_error(label: str, err: StudentError, plain, what: str) -> CaseResult | None:
    """An error with read-only inputs: charged when the same call works on writable inputs (then the
    read-only flag is what broke it) or when it is a write into a read-only array; skipped when the
    plain call fails the same way (the value checks' business)."""
    res = error_case(label, err, what)
    if res.cause == "modifies_input":
        return res
    if isinstance(plain, StudentError):
        return None
    return CaseResult(label, False, "modifies_input", res.detail + " (only with read-only inputs: it writes "
                      "into an argument)")


def per_part(parts: list[str], run: Run, judge) -> list:
    """``judge(part, value)`` for each part whose value in ``run`` is usable; None for the others."""
    out = []
    for p in parts:
        base = usable(part_value(run, p), scalar_ok=True)
        out.append(None if base is None else judge(p, base))
    return out


def check_twice(ctx: Context, cases: list[LayerCase], parts: list[str], mutants: MutantFn = None) -> list[CaseResult]:
    """backward called twice after one forward gives the same result and gradients as the first call."""
    out = []
    for case in cases:
        s = execute(ctx.student, case, twice=True)
        label = case.label + ", second backward"
        res = per_part(parts, s, lambda p, base: compare_case(
            label, describe_part(case, p), part_value(s, p, second=True), base, cause="mutates_cache",
            detail="the second backward gave a different answer than the first",
            named=[("accumulates", 2 * base, "the second backward gave twice the first answer: the gradient was "
                    "added to, not assigned")]))
        out.append(verdict(label, res, s, parts, case.cls))
    return out


def check_latest_forward(ctx: Context, cases: list[LayerCase], parts: list[str], mutants: MutantFn = None, *,
                         plain_runs: list | None = None) -> list[CaseResult]:
    """After two forward calls, backward gives what it gives after the second forward alone.
    ``plain_runs``, if given, receives each case's plain run (for a later pass, without a new call)."""
    out = []
    for case in cases:
        first = np.asarray(case.inputs[0])
        earlier = (first[::-1] * 0.5 + ctx.rng.standard_normal(first.shape).astype(first.dtype),) + tuple(case.inputs[1:])
        label = case.label + ", backward after two forward calls"
        plain = execute(ctx.student, case)
        if plain_runs is not None:
            plain_runs.append(plain)
        if isinstance(plain.forward, StudentError):
            out.append(error_case(label, plain.forward, case.cls))
            continue
        s = execute(ctx.student, case, forwards=(earlier,))
        old = execute(ctx.student, replace(case, inputs=earlier))
        def judge(p, base):
            stale = usable(part_value(old, p), scalar_ok=True)
            return compare_case(label, describe_part(case, p), part_value(s, p), base, cause="stale_cache",
                            detail="differs from backward after that forward call alone",
                            named=[] if stale is None else [("stale_cache", stale, "it is the gradient at the "
                                                             "first forward's input, not the latest one")])

        out.append(verdict(label, per_part(parts, plain, judge), plain, parts, case.cls))
    return out


def check_upstream(ctx: Context, cases: list[LayerCase], parts: list[str], mutants: MutantFn = None, *,
                   named_scaled=None) -> list[CaseResult]:
    """backward is linear in the upstream gradient: backward(c * G) equals c * backward(G).

    ``named_scaled(case, c)``: known wrong answers (cause, array, words) for the scaled upstream c * G,
    computed from the inputs, that name why backward is not linear in it."""
    out = []
    for case in cases:
        # always negative, so public and hidden cases see the same rule (a clip or max(G, 0) breaks it)
        c = -float(ctx.rng.uniform(1.5, 3.0))
        ctx.rng.random()  # keeps the draws of later cases as they were
        up = case.upstream * c if isinstance(case.upstream, np.ndarray) else float(case.upstream) * c
        label = f"{case.label}, upstream gradient x {c:.3g}"
        plain = execute(ctx.student, case)
        if isinstance(plain.forward, StudentError):
            out.append(error_case(label, plain.forward, case.cls))
            continue
        s = execute(ctx.student, case.with_upstream(up))
        ignore = "upstream_scale_ignored" if case.loss else "ignores_upstream"
        extra = list(named_scaled(case, c)) if named_scaled else []
        res = per_part(parts, plain, lambda p, base: compare_case(
            label, describe_part(case, p), part_value(s, p), c * base, cause="nonlinear_upstream",
            detail=f"backward(c * G) is not c times backward(G) for c = {c:.3g}",
            named=[(ignore, base, "scaling the upstream gradient did not change it")] + extra))
        out.append(verdict(label, res, plain, parts, case.cls))
    return out


def float32_case(ctx: Context, c32: LayerCase, parts: list[str], label: str) -> CaseResult:
    """One float32 case: every returned array is float32 and agrees with the student's own float64
    answer on the same values to float32 precision (50 times the reference's own float32 error where
    a result cancels). The loss, a Python float, is judged for accuracy only."""
    c64 = c32.astype(np.float64)
    r64, r32 = reference_run(ctx.ref, c64), reference_run(ctx.ref, c32)
    s64 = execute(ctx.student, c64)
    if isinstance(s64.forward, StudentError):
        return error_case(label, s64.forward, c32.cls)
    s32 = execute(ctx.student, c32)
    res = []
    for p in parts:
        what = describe_part(c32, p)
        v = part_value(s32, p)
        if isinstance(v, StudentError):
            res.append(None if isinstance(part_value(s64, p), StudentError) else error_case(label, v, what))
            continue
        base = usable(part_value(s64, p), scalar_ok=True)
        if base is None:
            res.append(None)
            continue
        a = value_of(v)
        if type(a) is np.ndarray and a.dtype.kind == "f" and a.dtype != np.float32 and not (c32.loss and p == "forward"):
            res.append(CaseResult(label, False, "wrong_dtype", f"{what} has dtype {a.dtype} for float32 inputs; "
                                  "expected float32 (a layer keeps its input's dtype)"))
            continue
        res.append(compare_case(label, what, v, base, tol=_tol32(r64, r32, p), cause="float32_inaccurate",
                            detail="the float32 result differs from your float64 result on the same values "
                                   "by more than float32 rounding"))
    return verdict(label, res, s64, parts, c32.cls)


def check_float32(ctx: Context, cases: list[LayerCase], parts: list[str], mutants: MutantFn = None) -> list[CaseResult]:
    """float32 inputs and parameters give float32 outputs and gradients, accurate to float32."""
    return [float32_case(ctx, case.astype(np.float32), parts, case.label + ", float32") for case in cases]


def stability_case(ctx: Context, case: LayerCase, parts: list[str], mutants: MutantFn, *,
                   small: LayerCase) -> CaseResult:
    """Judge ``case`` (huge inputs). Results must be finite; they must also be exact where the same
    computation is right on the moderate inputs ``small`` (wrong values there are the value checks'
    business, not numerical instability)."""
    s, r = execute(ctx.student, case), reference_run(ctx.ref, case)
    s2, r2 = execute(ctx.student, small), reference_run(ctx.ref, small)
    res = []
    for p in parts:
        got = part_value(s, p)
        if isinstance(got, StudentError):
            res.append(None if isinstance(part_value(s2, p), StudentError) else error_case(case.label, got, describe_part(case, p)))
            continue
        g = value_of(got)
        if type(g) is np.ndarray and g.dtype.kind == "f" and not np.all(np.isfinite(g)):
            n_bad = int(np.count_nonzero(~np.isfinite(g)))
            res.append(CaseResult(case.label, False, "unstable", f"{describe_part(case, p)} holds {n_bad} NaN or inf value(s) "
                                  f"of {g.size} for large inputs"))
            continue
        moderate = judge_part(ctx, small, s2, r2, p, mutants)
        if not moderate.ok:  # wrong also for moderate inputs: the value checks' business; finite is all we judge
            res.append(CaseResult(case.label, True) if usable(got, scalar_ok=True) is not None else None)
            continue
        res.append(judge_part(ctx, case, s, r, p, mutants, unstable=True))
    return verdict(case.label, res, s2, parts, case.cls)


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
