"""The layers of a multilayer perceptron: Linear, ReLU, LogSoftmax and NLLLoss.

Each layer's ``forward`` and ``backward`` sit side by side. ``backward(G)`` receives
``G = dL/d(output)`` with the output's shape and returns ``dL/d(input)`` with the input's shape;
the gradients of the layer's own parameters are **assigned** (not added) to ``grad_*`` attributes.

Rules every method follows (the grader checks each one):

* never modify an argument in place (the grader passes read-only arrays);
* keep the floating dtype of the input (float32 in, float32 out);
* work on a whole batch at once with array operations, no Python loops over samples.

Imports: every standard-library module and every installed package (numpy, scipy, matplotlib, ...)
may be used, except automatic or symbolic differentiation libraries (torch, jax, autograd,
tensorflow, sympy, ...), which the grader blocks: compute the gradients by hand with numpy.
"""
from __future__ import annotations

import numpy as np

from .module import Module

__all__ = ["Linear", "ReLU", "LogSoftmax", "NLLLoss"]


class Linear(Module):
    """Affine layer ``T = X W + b``.

    Parameters
    ----------
    in_features : int
        D, the number of input features.
    out_features : int
        M, the number of output features.
    rng : numpy.random.Generator or int or None
        Source of the initial weights (He initialisation); ``b`` starts at zero.

    Attributes
    ----------
    W : ndarray, shape (D, M)
    b : ndarray, shape (M,)
    grad_W : ndarray, shape (D, M)
        dL/dW from the most recent ``backward``.
    grad_b : ndarray, shape (M,)
        dL/db from the most recent ``backward``.
    """

    def __init__(self, in_features: int, out_features: int, rng=None) -> None:
        rng = np.random.default_rng(rng)
        self.in_features = in_features
        self.out_features = out_features
        self.W = rng.standard_normal((in_features, out_features)) * np.sqrt(2.0 / in_features)
        self.b = np.zeros(out_features)
        self.grad_W = np.zeros_like(self.W)
        self.grad_b = np.zeros_like(self.b)
        self._X = None

    def forward(self, X: np.ndarray) -> np.ndarray:
        """Compute ``T = X W + b``.

        Parameters
        ----------
        X : ndarray, shape (N, D)

        Returns
        -------
        ndarray, shape (N, M)
            Row ``i`` is ``X[i] @ W + b``: ``b`` is broadcast to every row.

        Notes
        -----
        Cache ``X``: ``backward`` needs it for ``grad_W``. Keep a reference, do not modify it.
        """
        raise NotImplementedError("Need to implement for Task 2: Linear.forward")

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """Gradients of ``T = X W + b`` by the chain rule.

        With ``G = dL/dT`` of shape (N, M), ``T[i, m] = sum_d X[i, d] W[d, m] + b[m]`` gives

        * ``dL/dX = G W^T``, shape (N, D);
        * ``dL/dW = X^T G``, shape (D, M): a sum over the batch, done by the matrix product;
        * ``dL/db = G.sum(axis=0)``, shape (M,): ``b`` is used by every row, so its gradient is
          the **sum** over the batch (not the mean, and not the (N, M) array itself).

        Each gradient has the shape of what it differentiates; checking shapes catches most
        transposition mistakes.

        Parameters
        ----------
        grad_output : ndarray, shape (N, M)

        Returns
        -------
        ndarray, shape (N, D)
            dL/dX. Also **assigns** ``self.grad_W`` and ``self.grad_b`` (calling ``backward``
            twice gives the same values; do not use ``+=``).
        """
        raise NotImplementedError("Need to implement for Task 2: Linear.backward")

    def parameters(self) -> dict[str, np.ndarray]:
        return {"W": self.W, "b": self.b}

    def gradients(self) -> dict[str, np.ndarray]:
        return {"W": self.grad_W, "b": self.grad_b}

    def __repr__(self) -> str:
        return f"Linear({self.in_features}, {self.out_features})"


class ReLU(Module):
    """Rectified linear unit ``max(X, 0)``, elementwise."""

    def __init__(self) -> None:
        self._X = None

    def forward(self, X: np.ndarray) -> np.ndarray:
        """Compute ``max(X, 0)`` elementwise.

        Parameters
        ----------
        X : ndarray, any shape

        Returns
        -------
        ndarray, same shape and dtype as ``X``
            A new array: ``X`` itself must not be changed (no ``X[X < 0] = 0``).
        """
        raise NotImplementedError("Need to implement for Task 3: ReLU.forward")

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """Pass the gradient through where the input was positive.

        The Jacobian of an elementwise function is diagonal, so the chain rule is an elementwise
        product: ``dL/dX = G * (X > 0)``. The derivative at exactly ``X == 0`` is taken as **0**
        (use ``X > 0``, not ``X >= 0``).

        Parameters
        ----------
        grad_output : ndarray, same shape as the input of ``forward``

        Returns
        -------
        ndarray, same shape and dtype as ``grad_output``
        """
        raise NotImplementedError("Need to implement for Task 3: ReLU.backward")


class LogSoftmax(Module):
    """Log-softmax over the classes of each row: ``Y = T - logsumexp(T, axis=1)``."""

    def __init__(self) -> None:
        self._Y = None

    def forward(self, T: np.ndarray) -> np.ndarray:
        """Compute ``Y[i, k] = T[i, k] - log(sum_j exp(T[i, j]))``, each row on its own.

        Parameters
        ----------
        T : ndarray, shape (N, K)
            Logits.

        Returns
        -------
        ndarray, shape (N, K)

        Notes
        -----
        ``exp(1000)`` overflows. Subtract the row maximum first:
        ``logsumexp(t) = m + log(sum_j exp(t_j - m))`` with ``m = max_j t_j`` is exact and every
        exponent is at most 0. Reduce over ``axis=1`` with ``keepdims=True`` so the (N, 1) result
        broadcasts against (N, K); a (N,) result would broadcast the wrong way when N == K.
        """
        raise NotImplementedError("Need to implement for Task 4: LogSoftmax.forward")

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """Vector-Jacobian product of log-softmax.

        ``dY[i, k] / dT[i, j] = [k == j] - softmax(T)[i, j]``, so with ``G = dL/dY``:
        ``dL/dT = G - softmax(T) * G.sum(axis=1, keepdims=True)``, and ``softmax(T) = exp(Y)``
        from the cached output. Followed by NLL with mean reduction this becomes the familiar
        ``(softmax(T) - Y_onehot) / N``.

        Parameters
        ----------
        grad_output : ndarray, shape (N, K)

        Returns
        -------
        ndarray, shape (N, K)
        """
        raise NotImplementedError("Need to implement for Task 4: LogSoftmax.backward")


class NLLLoss(Module):
    """Negative log-likelihood of the target classes, given log-probabilities.

    Parameters
    ----------
    reduction : {"mean", "sum"}
        ``"mean"`` divides the summed loss by the batch size N.
    """

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction
        self._shape = None
        self._target = None
        self._dtype = None

    def forward(self, log_probs: np.ndarray, target: np.ndarray) -> float:
        """Compute ``-mean_i log_probs[i, target[i]]`` (or the sum).

        Parameters
        ----------
        log_probs : ndarray, shape (N, K)
        target : ndarray of int, shape (N,)
            Class indices in ``[0, K)``.

        Returns
        -------
        float
            Pick one entry per row with fancy indexing, ``log_probs[np.arange(N), target]``;
            ``log_probs[:, target]`` would pick an (N, N) block instead.
        """
        raise NotImplementedError("Need to implement for Task 5: NLLLoss.forward")

    def backward(self, grad_output: float = 1.0) -> np.ndarray:
        """Gradient with respect to ``log_probs``.

        Only the picked entries appear in the loss: ``dL/dlog_probs[i, k]`` is
        ``-grad_output / N`` (mean) or ``-grad_output`` (sum) when ``k == target[i]``, else 0.

        Parameters
        ----------
        grad_output : float
            dQ/dL for a downstream quantity Q; 1.0 when the loss is the final output.

        Returns
        -------
        ndarray, shape (N, K), dtype of ``log_probs``
        """
        raise NotImplementedError("Need to implement for Task 5: NLLLoss.backward")

    def __repr__(self) -> str:
        return f"NLLLoss(reduction={self.reduction!r})"
