"""Checks of ``NLLLoss``: one entry per row, both reductions, the scalar upstream gradient."""
from __future__ import annotations

import numpy as np

from dataclasses import replace

from .base import CaseResult, check
from .generic import (FLOAT32_CAUSES, VALUE_CAUSES, check_float32, check_latest_forward, check_read_only, check_twice,
                      distinct_dims, judge_part, part_value, rel_diff, usable)
from .runs import LayerCase, execute, reference_run

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
    N, K = lp.shape
    mean = case.ctor[0] == "mean"
    picked = lp[np.arange(N), t]
    g = float(case.upstream)
    if part == "forward":
        total = -picked.sum()
        return [("wrong_reduction", total if mean else total / N),
                ("wrong_index", -lp[:, t].mean() if mean else -lp[:, t].sum(), "log_probs[:, target]"),
                ("wrong_index", -lp[:, t].sum(), "log_probs[:, target]"),
                ("wrong_index", -np.take(lp, t).mean() if mean else -np.take(lp, t).sum(),
                 "np.take without axis picks from the flattened array"),
                ("wrong_index", -lp.sum() / (N if mean else 1), "sums every log-probability, not only the targets'"),
                ("not_reduced", -picked, "the per-sample losses, shape (N,)")] + (
                [("mean_over_all_entries", total / (N * K), "the sum divided by N*K = log_probs.size")] if mean else [])
    if part == "input":
        scale = 1.0 / N if mean else 1.0
        onehot = np.zeros_like(lp)
        onehot[np.arange(N), t] = 1.0
        cols = np.zeros_like(lp)
        cols[:, t] = 1.0
        flat = np.zeros(lp.size)
        np.add.at(flat, t, 1.0)
        return [("upstream_scale_ignored", -onehot * scale), ("wrong_reduction", -onehot * g * (1.0 if mean else 1.0 / N)),
                ("wrong_index", -cols * g * scale, "the columns target, not one entry per row"),
                ("wrong_index", -flat.reshape(lp.shape) * g * scale, "flat indices: np.take/np.put without axis"),
                ("wrong_batch_size", -onehot * g / K, "divided by K, the number of classes"),
                ("mean_over_all_entries", -onehot * g * scale / K, "divided by N*K = log_probs.size, not by N"),
                ("fused_softmax_gradient", (np.exp(lp) - onehot) * g * scale, "softmax - one-hot")]
    return []


VALUE = VALUE_CAUSES + ("wrong_reduction", "wrong_index", "not_reduced", "scalar_keepdims", "upstream_scale_ignored",
                        "wrong_batch_size", "fused_softmax_gradient", "mean_over_all_entries")


def _value_cases(ctx, cs, part) -> list[CaseResult]:
    out = []
    for case in cs:
        s, r = execute(ctx.student, case), reference_run(ctx.ref, case)
        out.append(judge_part(ctx, case, s, r, part, mutants, fd=True))
    return out


def _sum_cases(ctx, part) -> list[CaseResult]:
    """reduction='sum': right when it equals the reference, or N times the student's own 'mean' answer
    (a mistake shared by both reductions is the 'mean' checks' business)."""
    out = []
    for case in cases(ctx.rng, "sum"):
        s, r = execute(ctx.student, case), reference_run(ctx.ref, case)
        own = usable(part_value(execute(ctx.student, replace(case, ctor=("mean",))), part), scalar_ok=True)
        res = judge_part(ctx, case, s, r, part, mutants, fd=True)
        if not res.ok:
            got = usable(part_value(s, part), scalar_ok=True)
            if (own is not None and got is not None and own.size == np.size(part_value(r, part))
                    and rel_diff(got, case.batch * own) <= 1e-9):
                res = CaseResult(res.label, True)
        out.append(res)
    return out


@check(C, "forward, reduction='mean'", public=True, owns=VALUE)
def check_nllloss_forward_mean(ctx):
    """The loss equals -mean_i log_probs[i, target[i]] and comes back as a float."""
    return _value_cases(ctx, cases(ctx.rng, "mean"), "forward")


@check(C, "forward, reduction='sum'", public=True, owns=VALUE)
def check_nllloss_forward_sum(ctx):
    """With reduction='sum' the loss equals -sum_i log_probs[i, target[i]] (N times the 'mean' loss)."""
    return _sum_cases(ctx, "forward")


@check(C, "backward, reduction='mean'", public=True, owns=VALUE)
def check_nllloss_backward_mean(ctx):
    """backward(g) puts -g/N at [i, target[i]] and 0 elsewhere; checked against central differences."""
    return _value_cases(ctx, cases(ctx.rng, "mean"), "input")


@check(C, "backward, reduction='sum'", public=True, owns=VALUE)
def check_nllloss_backward_sum(ctx):
    """With reduction='sum' backward(g) puts -g at [i, target[i]] (N times the 'mean' gradient)."""
    return _sum_cases(ctx, "input")


@check(C, "inputs are not modified; backward twice", public=True, owns=("modifies_input", "accumulates", "mutates_cache", "stale_cache"))
def check_nllloss_read_only(ctx):
    """forward and backward work on read-only arrays, leave them unchanged, and a second backward agrees."""
    cs = cases(ctx.rng, "mean", corners=False)
    return (check_read_only(ctx, cs, ["forward", "input"]) + check_twice(ctx, cs, ["input"])
            + check_latest_forward(ctx, cs, ["input"]))


@check(C, "float32 in, float32 out", public=True, owns=FLOAT32_CAUSES)
def check_nllloss_float32(ctx):
    """float32 log-probabilities give a float32 gradient."""
    return check_float32(ctx, cases(ctx.rng, "mean", corners=False) + cases(ctx.rng, "sum", corners=False),
                         ["forward", "input"])
