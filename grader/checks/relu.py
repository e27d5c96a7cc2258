"""Checks of ``ReLU``: ``max(X, 0)`` and the mask ``G * (X > 0)``."""
from __future__ import annotations

import numpy as np

from .base import CaseResult, check
from .generic import (FLOAT32_CAUSES, VALUE_CAUSES, verdict, away_from_zero, check_float32, check_latest_forward,
                      check_part, check_read_only, check_upstream, distinct_dims, part_value, usable)
from .runs import LayerCase, execute, reference_run

C = "ReLU"


def make_case(rng, shape, label, X=None) -> LayerCase:
    X = away_from_zero(rng, shape) if X is None else X
    return LayerCase(C, (), {}, (X,), rng.standard_normal(shape), label)


def cases(rng, *, corners: bool = True) -> list[LayerCase]:
    N, D = distinct_dims(rng, (5, 9), (10, 14))
    out = [make_case(rng, (N, D), f"shape ({N}, {D})")]
    if corners:
        out += [make_case(rng, (1, D), f"shape (1, {D})"), make_case(rng, (D, D), f"shape ({D}, {D})"),
                make_case(rng, (2, 3, N), f"3-d shape (2, 3, {N})")]
    return out


def mutants(part, case: LayerCase, ref) -> list:
    X, = case.inputs
    X = np.asarray(X, dtype=np.float64)
    G = np.asarray(case.upstream, dtype=np.float64)
    if part == "forward":
        return [("wrong_values", np.abs(X), "|X|"), ("wrong_values", X, "X unchanged"),
                ("leaky_relu", np.where(X > 0, X, 0.01 * X), "slope 0.01 for X < 0"),
                ("leaky_relu", np.where(X > 0, X, 0.1 * X), "slope 0.1 for X < 0")]
    if part == "input":
        return [("relu_at_zero", G * (X >= 0)), ("ignores_upstream", (X > 0).astype(np.float64)),
                ("relu_inverted_mask", G * (X < 0), "G * (X < 0)"), ("relu_inverted_mask", G * (X <= 0), "G * (X <= 0)"),
                ("relu_output_mask", G * np.maximum(X, 0), "G * max(X, 0)"),
                ("relu_of_gradient", np.maximum(G, 0), "np.maximum(G, 0)"),
                ("relu_of_gradient", np.maximum(G, 0) * (X > 0), "np.maximum(G, 0) * (X > 0)"),
                ("relu_mask_all_ones", G, "G unchanged: the mask is 1 everywhere")]
    return []


def _scaled_upstream(case: LayerCase, c: float) -> list:
    """Answers to backward(c * G) that are ReLU applied to the (scaled) upstream gradient."""
    X = np.asarray(case.inputs[0], dtype=np.float64)
    cG = c * np.asarray(case.upstream, dtype=np.float64)
    words = "the negative entries of the upstream gradient were cut to 0: ReLU applied to G"
    return [("relu_of_gradient", np.maximum(cG, 0), words), ("relu_of_gradient", np.maximum(cG, 0) * (X > 0), words)]


@check(C, "forward: max(X, 0)", public=True, owns=VALUE_CAUSES + ("leaky_relu",))
def check_relu_forward(ctx):
    """The output equals max(X, 0) elementwise, for 2-d and 3-d inputs."""
    return check_part(ctx, cases(ctx.rng), "forward", mutants)


@check(C, "backward: G * (X > 0)", public=True, owns=VALUE_CAUSES + ("ignores_upstream", "relu_inverted_mask", "relu_output_mask", "relu_of_gradient",
                                                                 "relu_mask_all_ones"))
def check_relu_backward(ctx):
    """backward(G) passes G where X > 0 and 0 elsewhere, against the reference and central differences."""
    return check_part(ctx, cases(ctx.rng), "input", mutants)


@check(C, "derivative 0 at exactly 0", public=True, owns=("relu_at_zero",))
def check_relu_at_zero(ctx):
    """Inputs holding exact zeros: forward gives 0 there and backward passes no gradient there.

    Only the entries at exactly 0 are judged (the others are the value checks' business)."""
    rng = ctx.rng
    N, D = distinct_dims(rng, (5, 9), (10, 14))
    X = away_from_zero(rng, (N, D))
    X[rng.random((N, D)) < 0.3] = 0.0
    case = make_case(rng, (N, D), f"shape ({N}, {D}) with {int((X == 0).sum())} exact zeros", X=X)
    s, r = execute(ctx.student, case), reference_run(ctx.ref, case)
    zero = X == 0
    out = []
    for part, words in (("forward", "forward is nonzero"), ("input", "backward passes gradient")):
        label = f"{case.label}, {'forward' if part == 'forward' else 'backward'}"
        v = usable(part_value(s, part))
        if v is None or v.shape != X.shape:
            out.append(verdict(label, [None], s, [part], C))
            continue
        want = np.asarray(part_value(r, part), dtype=np.float64)
        if not np.allclose(v[~zero], want[~zero], rtol=1e-9, atol=1e-12):
            out.append(CaseResult(label, True))  # wrong away from 0: the value checks' business
            continue
        bad = int(np.count_nonzero(v[zero] != 0))
        out.append(CaseResult(label, True) if bad == 0 else CaseResult(
            label, False, "relu_at_zero", f"{words} at {bad} of {int(zero.sum())} entries where X is exactly 0"))
    return out


@check(C, "inputs are not modified", public=True, owns=("modifies_input",))
def check_relu_read_only(ctx):
    """forward and backward work on read-only arrays and leave X and G unchanged."""
    return check_read_only(ctx, cases(ctx.rng, corners=False), ["forward", "input"])


@check(C, "backward is linear in G and uses the latest forward",
       public=True, owns=("ignores_upstream", "nonlinear_upstream", "stale_cache", "relu_of_gradient"))
def check_relu_upstream(ctx):
    """Scaling G scales dL/dX by the same factor; after two forwards the mask of the second is used."""
    cs = cases(ctx.rng, corners=False)
    return (check_upstream(ctx, cs, ["input"], mutants, named_scaled=_scaled_upstream)
            + check_latest_forward(ctx, cs, ["input"], mutants))


@check(C, "float32 in, float32 out", public=True, owns=FLOAT32_CAUSES)
def check_relu_float32(ctx):
    """float32 input and upstream gradient give float32 results."""
    return check_float32(ctx, cases(ctx.rng, corners=False), ["forward", "input"], mutants)
