"""Checks of ``LogSoftmax``: rows independent, stable for huge logits, the softmax Jacobian."""
from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np

from ..sandbox.oracle import StudentError
from .base import CaseResult, check
from .generic import (FLOAT32_CAUSES, VALUE_CAUSES, verdict, check_float32, check_latest_forward, check_part,
                      check_read_only, check_twice, check_upstream, distinct_dims, rel_diff, stability_case, usable)
from .runs import LayerCase, execute

C = "LogSoftmax"


def make_case(rng, N, K, label, scale=3.0, offset=0.0) -> LayerCase:
    T = rng.standard_normal((N, K)) * scale + offset
    return LayerCase(C, (), {}, (T,), rng.standard_normal((N, K)), label, input_names=("T",))


def cases(rng, *, corners: bool = True) -> list[LayerCase]:
    N, K = distinct_dims(rng, (5, 8), (9, 12))
    out = [make_case(rng, N, K, f"N={N}, K={K}")]
    if corners:
        out += [make_case(rng, 1, K, f"N=1, K={K}"), make_case(rng, K, K, f"N=K={K}")]
    return out


WRONG_Y = ("wrong_axis", "missing_keepdims", "returns_softmax", "row_offset", "mean_not_sum")


def _lse(T, axis):
    m = T.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(T - m).sum(axis=axis, keepdims=True)))


def _backward_at(Y, G):
    """The correct backward formula applied to a (possibly wrong) cached forward output Y."""
    return G - np.exp(Y) * G.sum(axis=1, keepdims=True)


def mutants(part, case: LayerCase, ref) -> list:
    T = np.asarray(case.inputs[0], dtype=np.float64)
    G = np.asarray(case.upstream, dtype=np.float64)
    K = T.shape[1]
    Y = T - _lse(T, 1)
    S = np.exp(Y)
    row_max = T.max(axis=1, keepdims=True)
    # wrong forward outputs; a correct backward that uses the cached output inherits the mistake
    wrong_y = [("wrong_axis", T - _lse(T, 0), "normalised over axis=0"),
               ("wrong_axis", T - _lse(T.ravel(), 0), "normalised over the whole array"),
               ("returns_softmax", S, "softmax(T), not log-softmax"),
               ("row_offset", Y + row_max, "T - log(sum(exp(T - max))): the max is never added back"),
               ("mean_not_sum", Y + np.log(K), "log of the mean of exp, not of the sum")]
    if T.shape[0] == T.shape[1]:  # (N,) against (N, K) raises unless N == K; then it lines up with the columns
        s_col = T - T.max(axis=1)[None, :]
        wrong_y += [("missing_keepdims", T - _lse(T, 1).ravel()[None, :], "logsumexp without keepdims"),
                    ("missing_keepdims", s_col - _lse(s_col, 1), "T.max(axis=1) without keepdims"),
                    ("missing_keepdims", (T - row_max) - _lse(T - row_max, 1).ravel()[None, :],
                     "log(sum(exp(T - max), axis=1)) without keepdims"),
                    ("missing_keepdims", s_col - _lse(s_col, 1).ravel()[None, :], "the max and the sum without keepdims")]
    if part == "forward":
        return wrong_y
    if part == "input":
        S0 = np.exp(T - _lse(T, 0))
        out = [("softmax_jacobian", G - S, "G - softmax(T): the sum of G is missing"),
               ("softmax_jacobian", G * (1 - S), "only the diagonal of the Jacobian"),
               ("softmax_jacobian", S - G, "softmax(T) - G"),
               ("softmax_jacobian", G, "G returned unchanged: the Jacobian taken as the identity"),
               ("softmax_jacobian", S * G - S * (S * G).sum(axis=1, keepdims=True), "the softmax Jacobian, not log-softmax's"),
               ("wrong_axis", G - S * G.sum(axis=0, keepdims=True), "G summed over axis=0"),
               ("wrong_axis", G - S0 * G.sum(axis=0, keepdims=True), "softmax and sum over axis=0"),
               ("mean_not_sum", G - S * G.mean(axis=1, keepdims=True), "G.mean(axis=1) instead of G.sum(axis=1)"),
               ("softmax_not_normalised", G - np.exp(T) * G.sum(axis=1, keepdims=True), "exp(T) instead of softmax(T)"),
               ("ignores_upstream", 1 - S * G.shape[1])]
        out += [(c, _backward_at(y, G), w + ", used by backward") for c, y, w in wrong_y]
        if T.shape[0] == T.shape[1]:
            out.append(("missing_keepdims", G - S * G.sum(axis=1)[None, :], "G.sum(axis=1) without keepdims"))
        return out
    return []


def _keepdims_explains_errors(ctx) -> bool:
    """Whether the student's errors are those of a row reduction without keepdims: on a fixed probe
    the layer raises for N != K, and for N == K (where (N,) lines up with the columns instead of
    raising) its answer is one of the missing-keepdims answers computed from the inputs. Judged on
    the student's answers and the inputs only (no reference call), message text unread."""
    rng = np.random.default_rng(20240)
    bad = execute(ctx.student, make_case(rng, 6, 9, "probe N != K"))
    if not any(isinstance(v, StudentError) and v.kind == "exception" for v in (bad.forward, bad.backward)):
        return False
    square = make_case(rng, 7, 7, "probe N == K")
    s = execute(ctx.student, square)
    T = square.inputs[0]
    right = {"forward": T - _lse(T, 1), "input": _backward_at(T - _lse(T, 1), square.upstream)}
    for part, got in (("forward", s.forward), ("input", s.backward)):
        got = usable(got)
        if got is None or got.shape != T.shape:
            continue
        for cause, alt, *_ in mutants(part, square, None):
            if cause == "missing_keepdims" and rel_diff(got, alt) <= 1e-6 and rel_diff(alt, right[part]) > 1e-3:
                return True
    return False


def names_row_reductions(func):
    """Wrap a check body: when the layer raises because a row reduction lost its axis (see
    :func:`_keepdims_explains_errors`), its errors are named missing_keepdims, not a bare exception."""
    @functools.wraps(func)
    def wrapped(ctx):
        out = func(ctx)
        if any(not r.ok and r.cause == "exception" for r in out) and _keepdims_explains_errors(ctx):
            note = (" (with N == K the same code runs and lines its (N,) result up with the columns: a reduction "
                    "over axis=1 without keepdims=True)")
            out = [replace(r, cause="missing_keepdims", detail=r.detail + note)
                   if not r.ok and r.cause == "exception" else r for r in out]
        return out
    return wrapped


@check(C, "forward: T - logsumexp(T)", public=True, owns=VALUE_CAUSES + WRONG_Y)
@names_row_reductions
def check_logsoftmax_forward(ctx):
    """The output equals T - logsumexp(T, axis=1, keepdims=True), also for N = 1 and N == K."""
    return check_part(ctx, cases(ctx.rng), "forward", mutants)


@check(C, "backward: G - softmax(T) * sum(G)",
       public=True, owns=VALUE_CAUSES + WRONG_Y + ("softmax_jacobian", "softmax_not_normalised", "ignores_upstream"))
@names_row_reductions
def check_logsoftmax_backward(ctx):
    """backward(G) equals G - softmax(T) * G.sum(axis=1, keepdims=True), against the reference and central differences."""
    return check_part(ctx, cases(ctx.rng), "input", mutants)


@check(C, "stable for logits of 1e3 and 1e5", public=True, owns=("unstable", "not_finite", "missing_keepdims"))
@names_row_reductions
def check_logsoftmax_stability(ctx):
    """Logits of size 1e3 and 1e5 (and all-equal rows): finite, exact outputs and gradients."""
    rng = ctx.rng
    N, K = distinct_dims(rng, (4, 7), (8, 11))
    out = []
    for scale, offset in ((1e3, 0.0), (1e5, 0.0), (10.0, 1e5)):
        case = make_case(rng, N, K, f"logits ~ {scale:g} x randn + {offset:g}", scale=scale, offset=offset)
        T = case.inputs[0]
        small = LayerCase(C, (), {}, ((T - T.mean()) / max(scale, 1.0) * 3.0,), case.upstream, case.label, input_names=("T",))
        out.append(stability_case(ctx, case, ["forward", "input"], mutants, small=small))
    return out


@check(C, "rows are independent", public=True, owns=("wrong_axis", "missing_keepdims"))
@names_row_reductions
def check_logsoftmax_row_independence(ctx):
    """Changing one row of T changes only that row of the output (normalising over axis=1)."""
    rng = ctx.rng
    N, K = distinct_dims(rng, (5, 8), (9, 12))
    base = make_case(rng, N, K, f"N={N}, K={K}")
    T2 = base.inputs[0].copy()
    i = int(rng.integers(N))
    T2[i] = rng.standard_normal(K) * 3
    s1 = execute(ctx.student, base)
    changed = LayerCase(C, (), {}, (T2,), base.upstream, base.label, input_names=("T",))
    s2 = execute(ctx.student, changed)
    label = f"{base.label}, row {i} changed"
    a1, a2 = usable(s1.forward), usable(s2.forward)
    if a1 is None or a2 is None or a1.shape != (N, K) or a2.shape != (N, K):
        return [verdict(label, [None], s2, ["forward"], C)]
    others = np.delete(np.arange(N), i)
    if not np.array_equal(a1[others], a2[others]):
        return [CaseResult(label, False, "wrong_axis",
                           f"changing row {i} of T changed other rows of the output: the normalisation mixes "
                           "samples (axis=0, the whole array, or a missing keepdims)")]
    return [CaseResult(label, True)]


@check(C, "inputs are not modified", public=True, owns=("modifies_input", "missing_keepdims"))
@names_row_reductions
def check_logsoftmax_read_only(ctx):
    """forward and backward work on read-only arrays and leave T and G unchanged."""
    return check_read_only(ctx, cases(ctx.rng, corners=False), ["forward", "input"])


@check(C, "backward twice, and linear in G",
       public=True, owns=("accumulates", "mutates_cache", "ignores_upstream", "nonlinear_upstream", "stale_cache",
                   "missing_keepdims"))
@names_row_reductions
def check_logsoftmax_twice_and_upstream(ctx):
    """A second backward gives the same result; scaling G scales it; backward uses the latest forward."""
    cs = cases(ctx.rng, corners=False)
    return (check_twice(ctx, cs, ["input"], mutants) + check_upstream(ctx, cs, ["input"], mutants)
            + check_latest_forward(ctx, cs, ["input"], mutants))


@check(C, "float32 in, float32 out", public=True, owns=FLOAT32_CAUSES + ("missing_keepdims",))
@names_row_reductions
def check_logsoftmax_float32(ctx):
    """float32 logits and upstream gradient give float32 results."""
    return check_float32(ctx, cases(ctx.rng, corners=False), ["forward", "input"], mutants)
