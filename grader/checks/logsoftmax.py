"""Checks of ``LogSoftmax``: rows independent, stable for huge logits, the softmax Jacobian."""
from __future__ import annotations

import numpy as np

from .base import CaseResult, check
from .generic import (stability_case, check_float32, check_latest_forward, check_part, check_read_only, check_twice, check_upstream,
                      distinct_dims, judge_part)
from .runs import LayerCase, execute, reference_run

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


def _lse(T, axis):
    m = T.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(T - m).sum(axis=axis, keepdims=True)))


def mutants(part, case: LayerCase, ref) -> list:
    T = np.asarray(case.inputs[0], dtype=np.float64)
    G = np.asarray(case.upstream, dtype=np.float64)
    Y = T - _lse(T, 1)
    S = np.exp(Y)
    if part == "forward":
        out = [("wrong_axis", T - _lse(T, 0)), ("wrong_axis", T - _lse(T.ravel(), 0))]
        if T.shape[0] == T.shape[1]:
            out.append(("missing_keepdims", T - _lse(T, 1).ravel()[None, :]))
        return out
    if part == "input":
        S0 = np.exp(T - _lse(T, 0))
        return [("softmax_jacobian", G - S), ("softmax_jacobian", G * (1 - S)),
                ("softmax_jacobian", S - G), ("softmax_jacobian", S * G - S * (S * G).sum(axis=1, keepdims=True)),
                ("wrong_axis", G - S * G.sum(axis=0, keepdims=True)), ("wrong_axis", G - S0 * G.sum(axis=0, keepdims=True)),
                ("ignores_upstream", 1 - S * G.shape[1])] + (
                [("missing_keepdims", G - S * G.sum(axis=1)[None, :])] if T.shape[0] == T.shape[1] else [])
    return []


@check(C, "forward: T - logsumexp(T)", public=True)
def check_logsoftmax_forward(ctx):
    """The output equals T - logsumexp(T, axis=1, keepdims=True), also for N = 1 and N == K."""
    return check_part(ctx, cases(ctx.rng), "forward", mutants)


@check(C, "backward: G - softmax(T) * sum(G)", public=True)
def check_logsoftmax_backward(ctx):
    """backward(G) equals G - softmax(T) * G.sum(axis=1, keepdims=True), against the reference and central differences."""
    return check_part(ctx, cases(ctx.rng), "input", mutants)


@check(C, "stable for logits of 1e3 and 1e5")
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


@check(C, "rows are independent")
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
    r2 = reference_run(ctx.ref, changed)
    label = f"{base.label}, row {i} changed"
    for s in (s1, s2):
        if not isinstance(s.forward, np.ndarray):
            return [judge_part(ctx, changed, s2, r2, "forward", mutants, label=label)]
    a1, a2 = np.asarray(s1.forward), np.asarray(s2.forward)
    if a1.shape != (N, K) or a2.shape != (N, K):
        return [judge_part(ctx, changed, s2, r2, "forward", mutants, label=label)]
    others = np.delete(np.arange(N), i)
    if not np.array_equal(a1[others], a2[others]):
        return [CaseResult(label, False, "wrong_axis",
                           f"changing row {i} of T changed other rows of the output: the normalisation mixes "
                           "samples (axis=0, the whole array, or a missing keepdims)")]
    return [judge_part(ctx, changed, s2, r2, "forward", mutants, label=label)]


@check(C, "inputs are not modified")
def check_logsoftmax_read_only(ctx):
    """forward and backward work on read-only arrays and leave T and G unchanged."""
    return check_read_only(ctx, cases(ctx.rng, corners=False), ["forward", "input"], mutants)


@check(C, "backward twice, and linear in G")
def check_logsoftmax_twice_and_upstream(ctx):
    """A second backward gives the same result; scaling G scales it; backward uses the latest forward."""
    cs = cases(ctx.rng, corners=False)
    return (check_twice(ctx, cs, ["input"], mutants) + check_upstream(ctx, cs, ["input"], mutants)
            + check_latest_forward(ctx, cs, ["input"], mutants))


@check(C, "float32 in, float32 out")
def check_logsoftmax_float32(ctx):
    """float32 logits and upstream gradient give float32 results."""
    return check_float32(ctx, cases(ctx.rng, corners=False), ["forward", "input"], mutants)
