"""Checks of ``Linear``: ``T = X W + b`` and its three gradients."""
from __future__ import annotations

import numpy as np

from .base import check
from .generic import (FLOAT32_CAUSES, VALUE_CAUSES, check_float32, check_latest_forward, check_part, check_read_only,
                      check_twice, check_upstream, distinct_dims)
from .hypotheses import check_own_state, name_accumulated_upcast, name_parameter_updates
from .runs import LayerCase

C = "Linear"
PARTS = ["forward", "input", "W", "b"]


def make_case(rng, N, D, M, label) -> LayerCase:
    return LayerCase(C, (D, M, 0), {"W": rng.standard_normal((D, M)), "b": rng.standard_normal(M)},
                     (rng.standard_normal((N, D)),), rng.standard_normal((N, M)), label)


def cases(rng, *, corners: bool = True) -> list[LayerCase]:
    N, D, M = distinct_dims(rng, (6, 9), (10, 13), (2, 5))
    out = [make_case(rng, N, D, M, f"N={N}, D={D}, M={M}")]
    if corners:
        out += [make_case(rng, 1, D, M, f"N=1, D={D}, M={M}"),
                make_case(rng, M, D, M, f"N=M={M}, D={D}"),
                make_case(rng, D, D, M + 1, f"N=D={D}, M={M + 1}")]
    return out


def mutants(part, case: LayerCase, ref) -> list:
    X, = case.inputs
    X = np.asarray(X, dtype=np.float64)
    G = np.asarray(case.upstream, dtype=np.float64)
    W = case.params["W"].astype(np.float64)
    ones = np.ones_like(G)
    if part == "forward":
        return [("missing_bias", X @ W, "X @ W without + b")]
    if part == "input":
        out = [("returns_weight_gradient", X.T @ G, "X.T @ G, the weight gradient grad_W (shape (D, M)), not dL/dX"),
               ("ignores_upstream", ones @ W.T),
               ("dx_wrong_factor", G @ (X.T @ G).T, "G @ grad_W.T: the weight gradient, not W")]
        if G.shape[1] == X.shape[0]:
            out.append(("dx_wrong_factor", G @ X, "G @ X: the input, not W"))
        return out
    if part == "W":
        return [("ignores_upstream", X.T @ ones),
                ("first_sample_only", np.outer(X[0], G[0]), "np.outer(X[0], G[0]): the first sample's term alone")]
    if part == "b":
        return [("ignores_upstream", ones.sum(axis=0)),
                ("first_sample_only", G[0], "G[0]: the first sample's row alone"),
                ("bias_wrong_axis", G.sum(axis=1), "G.sum(axis=1): summed over the outputs, not the batch")]
    return []


@check(C, "forward: X W + b", public=True, owns=VALUE_CAUSES + ("missing_bias",))
def check_linear_forward(ctx):
    """The output equals X @ W + b for non-square shapes, N = 1, N == M and N == D."""
    return check_part(ctx, cases(ctx.rng), "forward", mutants)


@check(C, "backward: dL/dX", public=True, owns=VALUE_CAUSES + ("ignores_upstream", "dx_wrong_factor", "returns_weight_gradient"))
def check_linear_backward_input(ctx):
    """backward(G) returns G @ W.T, checked against the reference and central differences."""
    return check_part(ctx, cases(ctx.rng), "input", mutants)


@check(C, "backward: dL/dW", public=True, owns=VALUE_CAUSES + ("ignores_upstream", "first_sample_only"))
def check_linear_backward_weight(ctx):
    """grad_W equals X.T @ G (shape (D, M)), checked against the reference and central differences."""
    return check_part(ctx, cases(ctx.rng), "W", mutants)


@check(C, "backward: dL/db", public=True, owns=VALUE_CAUSES + ("ignores_upstream", "bias_not_summed", "bias_keepdims", "bias_wrong_axis",
                                                         "first_sample_only"))
def check_linear_backward_bias(ctx):
    """grad_b equals G.sum(axis=0) with shape (M,): the bias gradient summed over the batch."""
    return check_part(ctx, cases(ctx.rng), "b", mutants)


@check(C, "inputs are not modified", public=True, owns=("modifies_input",))
def check_linear_read_only(ctx):
    """forward and backward work on read-only arrays and leave their arguments unchanged."""
    return check_read_only(ctx, cases(ctx.rng, corners=False), PARTS)


@check(C, "backward twice gives the same gradients; uses the latest forward",
       public=True, owns=("accumulates", "mutates_cache", "stale_cache", "updates_parameters", "shared_state"))
def check_linear_backward_twice(ctx):
    """Gradients are assigned, not accumulated, and backward uses its own most recent forward's input.

    "Its own": a second instance's forward in between changes nothing (a network has several Linear layers)."""
    cs, parts, plain = cases(ctx.rng, corners=False), ["input", "W", "b"], []
    return (name_parameter_updates(ctx, cs, check_twice(ctx, cs, parts, mutants))
            + check_own_state(ctx, cs, parts, check_latest_forward(ctx, cs, parts, mutants, plain_runs=plain), plain))


@check(C, "backward is linear in the upstream gradient", public=True, owns=("ignores_upstream", "nonlinear_upstream"))
def check_linear_upstream(ctx):
    """Scaling G scales dL/dX, grad_W and grad_b by the same factor."""
    return check_upstream(ctx, cases(ctx.rng, corners=False), ["input", "W", "b"], mutants)


@check(C, "float32 in, float32 out", public=True, owns=FLOAT32_CAUSES + ("accumulates",))
def check_linear_float32(ctx):
    """With float32 inputs and parameters every output and gradient is float32 and accurate."""
    cs = cases(ctx.rng, corners=False)
    return name_accumulated_upcast(ctx, [c.astype(np.float32) for c in cs], check_float32(ctx, cs, PARTS, mutants))
