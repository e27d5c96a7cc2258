"""Numerical gradients for checking your backward passes (provided).

Finite differences *check* a gradient; they do not replace backprop. A central difference costs two
forward passes per input element, so the full gradient of a 784x128 weight matrix would take 200,000
forward passes, where backward takes one. Its error is O(eps^2) from truncation plus O(u/eps) from
rounding (u ~ 1e-16 in float64), which is why ``eps ~ 1e-6`` and float64 are used here.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["numerical_gradient", "rel_error", "check_gradient"]


def numerical_gradient(
    f: Callable[[], float], x: np.ndarray, *, eps: float = 1e-6
) -> np.ndarray:
    """Central-difference gradient of the scalar ``f()`` with respect to ``x``.

    ``x`` is perturbed **in place**, one element at a time, and restored afterwards, so ``f`` must
    read ``x`` (for example a layer's ``W``) every time it is called.

    Parameters
    ----------
    f : callable
        Takes no arguments and returns a scalar that depends on ``x``.
    x : ndarray, any shape, float64
        The array to differentiate with respect to.
    eps : float
        Step size.

    Returns
    -------
    ndarray, same shape as ``x``
        ``(f(x + eps e_i) - f(x - eps e_i)) / (2 eps)`` for every element ``i``.
    """
    grad = np.zeros(x.shape, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    for _ in it:
        i = it.multi_index
        old = x[i].copy()
        x[i] = old + eps
        f_plus = float(f())
        x[i] = old - eps
        f_minus = float(f())
        x[i] = old
        grad[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def rel_error(actual: np.ndarray, desired: np.ndarray) -> float:
    """Largest relative difference ``|a - d| / max(1e-8, |a| + |d|)`` over all elements.

    Below 1e-7 is what a correct float64 backward gives against :func:`numerical_gradient`;
    above 1e-2 almost always means a bug.
    """
    a = np.asarray(actual, dtype=np.float64)
    d = np.asarray(desired, dtype=np.float64)
    if a.shape != d.shape:
        raise ValueError(f"shapes differ: actual {a.shape}, desired {d.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - d) / np.maximum(1e-8, np.abs(a) + np.abs(d))))


def check_gradient(
    layer, X: np.ndarray, *, seed: int = 0, eps: float = 1e-6
) -> dict[str, float]:
    """Compare ``layer.backward`` with central differences on a random upstream gradient.

    Uses the scalar ``L = sum(G * layer.forward(X))`` with a random ``G`` (never all ones, which
    would hide bugs that mix up rows). Returns the relative error for the input (key ``"X"``) and
    for every parameter.

    Parameters
    ----------
    layer : Module
        A layer whose forward takes one array, e.g. ``Linear``, ``ReLU`` or ``LogSoftmax``.
    X : ndarray, float64
        The input; it is copied, never modified.
    """
    rng = np.random.default_rng(seed)
    X = np.array(X, dtype=np.float64)
    G = rng.standard_normal(np.shape(layer.forward(X)))

    def loss() -> float:
        return float(np.sum(G * layer.forward(X)))

    layer.forward(X)
    dX = layer.backward(G)
    analytic = {"X": np.array(dX, dtype=np.float64)}
    analytic.update({k: np.array(v, dtype=np.float64) for k, v in layer.gradients().items()})
    errors = {"X": rel_error(analytic["X"], numerical_gradient(loss, X, eps=eps))}
    for name, param in layer.parameters().items():
        errors[name] = rel_error(analytic[name], numerical_gradient(loss, param, eps=eps))
    return errors
