"""Checks of ``LogisticRegression``: the mean cross-entropy from logits and its gradients."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .base import CaseResult, check
from .generic import (FLOAT32_CAUSES, VALUE_CAUSES, check_latest_forward, check_part, check_read_only, check_twice,
                      check_upstream, distinct_dims, float32_case, judge_part, rel_diff, stability_case, usable)
from .hypotheses import name_accumulated_upcast, name_parameter_updates
from .runs import LayerCase, execute, grad_of, reference_run

C = "LogisticRegression"
PARTS = ["forward", "input", "w", "b"]


def make_case(rng, N, D, label, *, logit: float | None = None, float_labels: bool = False) -> LayerCase:
    X = rng.standard_normal((N, D))
    w = rng.standard_normal(D) * 0.5
    b = np.asarray(rng.standard_normal() * 0.5)
    if logit is not None:  # rows rescaled so that every logit is +-logit
        z = X @ w + b
        X = X * ((logit - np.sign(z) * 0 - b * np.sign(z)) / np.abs(z - b) * 1.0)[:, None]
        X = X * np.sign((X @ w + b))[:, None] * np.where(rng.random(N) < 0.5, 1, -1)[:, None]
    y = rng.integers(0, 2, size=N)
    y = y.astype(np.float64) if float_labels else y.astype(np.int64)
    g = float(rng.uniform(0.5, 2.0))
    return LayerCase(C, (D, 0), {"w": w, "b": b}, (X, y), g, f"{label}, grad_output={g:.3g}",
                     loss=True, input_names=("X", "y"))


def cases(rng, *, corners: bool = True) -> list[LayerCase]:
    N, D = distinct_dims(rng, (6, 9), (10, 14))
    out = [make_case(rng, N, D, f"N={N}, D={D}")]
    if corners:
        out += [make_case(rng, 1, D, f"N=1, D={D}"), make_case(rng, D, D, f"N=D={D}, float labels", float_labels=True)]
    return out


def mutants(part, case: LayerCase, ref) -> list:
    X, y = case.inputs
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = case.params["w"].astype(np.float64)
    b = float(case.params["b"])
    z = X @ w + b
    p = 0.5 * (1 + np.tanh(0.5 * z))
    N = X.shape[0]
    g = float(case.upstream)
    r = (p - y) / N
    r3 = r * p * (1 - p) * g  # dL/dz times the sigmoid's derivative once more
    extra = "the sigmoid's derivative p(1 - p) multiplied in once more"
    cols = [((p[None, :] - y[:, None]) / N * g, "y as a column (N, 1): p - y is an (N, N) table"),
            ((p[:, None] - y[None, :]) / N * g, "p as a column (N, 1): p - y is an (N, N) table")]
    if part == "forward":
        return [("scale_N", np.sum(np.logaddexp(0, z) - y * z), "the sum, not the mean")]
    if part == "input":
        return [("upstream_scale_ignored", np.outer(r, w)), ("scale_N", np.outer(r * N * g, w)),
                ("zero_input_gradient", np.zeros((N, X.shape[1]))),
                ("dx_wrong_factor", X * (r * g)[:, None], "X * (p - y)[:, None] / N: built from X, not w"),
                ("dx_wrong_factor", np.outer(r * g, X.T @ (r * g)), "built from grad_w, not w"),
                ("extra_sigmoid_derivative", np.outer(r3, w), extra)] + [("labels_column", np.outer(d, w), t) for d, t in cols]
    if part == "w":
        out = [("upstream_scale_ignored", X.T @ r), ("extra_sigmoid_derivative", X.T @ r3, extra)]
        out += [("labels_column", X.T @ d, t) for d, t in cols]
        if X.shape[0] == X.shape[1]:
            out.append(("transposed", X @ r * g))
        return out
    if part == "b":
        return [("upstream_scale_ignored", np.asarray(r.sum())),
                ("bias_not_summed", r * g, "one value per sample, not summed"),
                ("extra_sigmoid_derivative", np.asarray(r3.sum()), extra)]
    return []


@check(C, "forward: mean cross-entropy", public=True, owns=VALUE_CAUSES)
def check_logisticregression_forward(ctx):
    """The loss equals the mean binary cross-entropy of sigmoid(X w + b) against y."""
    return check_part(ctx, cases(ctx.rng), "forward", mutants)


@check(C, "backward: dL/dX", public=True, owns=VALUE_CAUSES + ("upstream_scale_ignored", "dx_wrong_factor", "zero_input_gradient",
                                                                  "extra_sigmoid_derivative", "labels_column"))
def check_logisticregression_backward_input(ctx):
    """backward(g) returns g * outer(p - y, w) / N, against the reference and central differences."""
    return check_part(ctx, cases(ctx.rng), "input", mutants)


@check(C, "backward: dL/dw", public=True, owns=VALUE_CAUSES + ("upstream_scale_ignored", "extra_sigmoid_derivative", "labels_column"))
def check_logisticregression_backward_weight(ctx):
    """grad_w equals g * X.T @ (p - y) / N, against the reference and central differences."""
    return check_part(ctx, cases(ctx.rng), "w", mutants)


@check(C, "backward: dL/db", public=True, owns=VALUE_CAUSES + ("upstream_scale_ignored", "bias_not_summed", "bias_keepdims",
                                                                 "extra_sigmoid_derivative", "labels_column"))
def check_logisticregression_backward_bias(ctx):
    """grad_b equals g * sum(p - y) / N, with the shape () of b."""
    out = []
    for case in cases(ctx.rng):
        s, r = execute(ctx.student, case), reference_run(ctx.ref, case)
        res = judge_part(ctx, case, s, r, "b", mutants, fd=True)
        if not res.ok and res.cause == "scale_N" and _labels_column(s, case):
            res = replace(res, cause="labels_column", detail=res.detail + ": the sum of the (N, N) table p_j - y_i "
                          "(grad_w of the same call has the shape (D, N) of that table)")
        out.append(res)
    return out


def _labels_column(s, case: LayerCase) -> bool:
    """N times the right grad_b is also what a column y gives (the sum of all p_j - y_i): told apart by
    the same call's grad_w, which is then X.T @ (that (N, N) table)."""
    got = usable(grad_of(s, "w"))
    return got is not None and case.batch > 1 and any(
        c == "labels_column" and np.shape(alt) == got.shape and rel_diff(got, alt) <= 1e-6
        for c, alt, *_ in mutants("w", case, None))


@check(C, "stable for logits of +-1e3", public=True, owns=("unstable", "not_finite"))
def check_logisticregression_stability(ctx):
    """Every logit is +-1000: the loss stays finite and exact (np.logaddexp), gradients finite."""
    rng = ctx.rng
    N, D = distinct_dims(rng, (6, 9), (10, 14))
    out = []
    for k in range(2):
        case = make_case(rng, N, D, f"N={N}, D={D}, logits +-1e3 ({k + 1})", logit=1e3)
        out.append(stability_case(ctx, case, PARTS, mutants, small=_rescaled(case, 1e-3)))
    return out


def _rescaled(case: LayerCase, factor: float) -> LayerCase:
    X, y = case.inputs
    return replace(case, inputs=(X * factor, y))


@check(C, "inputs are not modified", public=True, owns=("modifies_input",))
def check_logisticregression_read_only(ctx):
    """forward and backward work on read-only X and y and leave them unchanged."""
    return check_read_only(ctx, cases(ctx.rng, corners=False), PARTS)


@check(C, "backward twice, and linear in grad_output",
       public=True, owns=("accumulates", "mutates_cache", "upstream_scale_ignored", "nonlinear_upstream", "stale_cache",
                          "updates_parameters"))
def check_logisticregression_twice_and_upstream(ctx):
    """A second backward gives the same gradients; grad_output scales all of them."""
    cs = cases(ctx.rng, corners=False)
    return (name_parameter_updates(ctx, cs, check_twice(ctx, cs, ["input", "w", "b"], mutants))
            + check_upstream(ctx, cs, ["input", "w", "b"], mutants) + check_latest_forward(ctx, cs, ["input", "w", "b"], mutants))


@check(C, "float32 in, float32 out", public=True, owns=FLOAT32_CAUSES + ("int_labels_upcast", "accumulates"))
def check_logisticregression_float32(ctx):
    """float32 X, w and b give float32 gradients (dL/dX included) and an accurate loss, with integer
    and with float labels."""
    N, D = distinct_dims(ctx.rng, (6, 9), (10, 14))
    ints = make_case(ctx.rng, N, D, f"N={N}, D={D}, integer labels").astype(np.float32)
    floats = make_case(ctx.rng, N, D, f"N={N}, D={D}, float32 labels", float_labels=True).astype(np.float32)
    a, b = name_accumulated_upcast(ctx, [ints, floats], [float32_case(ctx, ints, PARTS, ints.label + ", float32"),
                                                         float32_case(ctx, floats, PARTS, floats.label + ", float32")])
    if not a.ok and a.cause == "wrong_dtype" and b.ok:
        a = CaseResult(a.label, False, "int_labels_upcast",
                       a.detail + "; with float32 labels it is float32, so p - y with integer labels is the "
                       "upcast: convert y to X's dtype first")
    return [a, b]
