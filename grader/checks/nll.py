"""Checks of ``NLLLoss``: one entry per row, both reductions, the scalar upstream gradient."""
from __future__ import annotations

import numpy as np

from .base import check
from .generic import check_float32, check_latest_forward, check_part, check_read_only, check_twice, distinct_dims
from .runs import LayerCase

C = "NLLLoss"


def make_case(rng, N, K, reduction, label) -> LayerCase:
    T = rng.standard_normal((N, K)) * 2
    log_probs = T - (T.max(axis=1, keepdims=True) + np.log(np.exp(T - T.max(axis=1, keepdims=True)).sum(axis=1, keepdims=True)))
    target = rng.integers(0, K, size=N).astype(np.int64)
    g = float(rng.uniform(0.5, 2.0))
    return LayerCase(C, (reduction,), {}, (log_probs, target), g, f"{label}, reduction={reduction!r}, grad_output={g:.3g}",
                     loss=True, input_names=("log_probs", "target"))


def cases(rng, reduction, *, corners: bool = True) -> list[LayerCase]:
    N, K = distinct_dims(rng, (5, 8), (9, 12))
    out = [make_case(rng, N, K, reduction, f"N={N}, K={K}")]
    if corners:
        out += [make_case(rng, 1, K, reduction, f"N=1, K={K}"), make_case(rng, K, K, reduction, f"N=K={K}")]
    return out


def mutants(part, case: LayerCase, ref) -> list:
    lp, t = case.inputs
    lp = np.asarray(lp, dtype=np.float64)
    N = lp.shape[0]
    mean = case.ctor[0] == "mean"
    picked = lp[np.arange(N), t]
    g = float(case.upstream)
    if part == "forward":
        total = -picked.sum()
        return [("wrong_reduction", total if mean else total / N),
                ("wrong_index", -lp[:, t].mean() if mean else -lp[:, t].sum()),
                ("wrong_index", -lp[:, t].sum())]
    if part == "input":
        scale = 1.0 / N if mean else 1.0
        onehot = np.zeros_like(lp)
        onehot[np.arange(N), t] = 1.0
        cols = np.zeros_like(lp)
        cols[:, t] = 1.0
        return [("upstream_scale_ignored", -onehot * scale), ("wrong_reduction", -onehot * g * (1.0 if mean else 1.0 / N)),
                ("wrong_index", -cols * g * scale), ("wrong_values", -onehot * g / lp.shape[1])]
    return []


@check(C, "forward, reduction='mean'", public=True)
def check_nllloss_forward_mean(ctx):
    """The loss equals -mean_i log_probs[i, target[i]] and comes back as a float."""
    return check_part(ctx, cases(ctx.rng, "mean"), "forward", mutants)


@check(C, "forward, reduction='sum'")
def check_nllloss_forward_sum(ctx):
    """With reduction='sum' the loss equals -sum_i log_probs[i, target[i]]."""
    return check_part(ctx, cases(ctx.rng, "sum"), "forward", mutants)


@check(C, "backward, reduction='mean'", public=True)
def check_nllloss_backward_mean(ctx):
    """backward(g) puts -g/N at [i, target[i]] and 0 elsewhere; checked against central differences."""
    return check_part(ctx, cases(ctx.rng, "mean"), "input", mutants)


@check(C, "backward, reduction='sum'")
def check_nllloss_backward_sum(ctx):
    """With reduction='sum' backward(g) puts -g at [i, target[i]]."""
    return check_part(ctx, cases(ctx.rng, "sum"), "input", mutants)


@check(C, "inputs are not modified; backward twice")
def check_nllloss_read_only(ctx):
    """forward and backward work on read-only arrays, leave them unchanged, and a second backward agrees."""
    cs = cases(ctx.rng, "mean", corners=False)
    return (check_read_only(ctx, cs, ["forward", "input"], mutants) + check_twice(ctx, cs, ["input"], mutants)
            + check_latest_forward(ctx, cs, ["input"], mutants))


@check(C, "float32 in, float32 out")
def check_nllloss_float32(ctx):
    """float32 log-probabilities give a float32 gradient."""
    return check_float32(ctx, cases(ctx.rng, "mean", corners=False) + cases(ctx.rng, "sum", corners=False),
                         ["forward", "input"], mutants)
