"""Checks of ``ReLU``: ``max(X, 0)`` and the mask ``G * (X > 0)``."""
from __future__ import annotations

import numpy as np

from .base import check
from .generic import (away_from_zero, check_float32, check_latest_forward, check_part, check_read_only, check_upstream,
                      distinct_dims, judge_part)
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
    G = np.asarray(case.upstream, dtype=np.float64)
    if part == "forward":
        return [("wrong_values", np.abs(X)), ("wrong_values", X)]
    if part == "input":
        return [("relu_at_zero", G * (X >= 0)), ("ignores_upstream", (X > 0).astype(np.float64)),
                ("wrong_values", G * (X < 0))]
    return []


@check(C, "forward: max(X, 0)", public=True)
def check_relu_forward(ctx):
    """The output equals max(X, 0) elementwise, for 2-d and 3-d inputs."""
    return check_part(ctx, cases(ctx.rng), "forward", mutants)


@check(C, "backward: G * (X > 0)", public=True)
def check_relu_backward(ctx):
    """backward(G) passes G where X > 0 and 0 elsewhere, against the reference and central differences."""
    return check_part(ctx, cases(ctx.rng), "input", mutants)


@check(C, "derivative 0 at exactly 0")
def check_relu_at_zero(ctx):
    """Inputs holding exact zeros: forward gives 0 there and backward passes no gradient there."""
    rng = ctx.rng
    N, D = distinct_dims(rng, (5, 9), (10, 14))
    X = away_from_zero(rng, (N, D))
    X[rng.random((N, D)) < 0.3] = 0.0
    case = make_case(rng, (N, D), f"shape ({N}, {D}) with {int((X == 0).sum())} exact zeros", X=X)
    s, r = execute(ctx.student, case), reference_run(ctx.ref, case)
    return [judge_part(ctx, case, s, r, "forward", mutants, label=case.label + ", forward"),
            judge_part(ctx, case, s, r, "input", mutants, label=case.label + ", backward")]


@check(C, "inputs are not modified")
def check_relu_read_only(ctx):
    """forward and backward work on read-only arrays and leave X and G unchanged."""
    return check_read_only(ctx, cases(ctx.rng, corners=False), ["forward", "input"], mutants)


@check(C, "backward is linear in G and uses the latest forward")
def check_relu_upstream(ctx):
    """Scaling G scales dL/dX by the same factor; after two forwards the mask of the second is used."""
    cs = cases(ctx.rng, corners=False)
    return check_upstream(ctx, cs, ["input"], mutants) + check_latest_forward(ctx, cs, ["input"], mutants)


@check(C, "float32 in, float32 out")
def check_relu_float32(ctx):
    """float32 input and upstream gradient give float32 results."""
    return check_float32(ctx, cases(ctx.rng, corners=False), ["forward", "input"], mutants)
