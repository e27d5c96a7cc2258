"""Binary logistic regression with the mean cross-entropy loss, forward and backward.

Imports: every standard-library module and every installed package (numpy, scipy, matplotlib, ...)
may be used, except automatic or symbolic differentiation libraries (torch, jax, autograd,
tensorflow, sympy, ...), which the grader blocks: compute the gradients by hand with numpy.
"""
from __future__ import annotations

import numpy as np

from .module import Module

__all__ = ["LogisticRegression"]


class LogisticRegression(Module):
    """``p = sigmoid(X w + b)`` trained with the mean binary cross-entropy.

    Parameters
    ----------
    n_features : int
        D, the number of input features.
    rng : numpy.random.Generator or int or None
        Source of the small random initial weights; ``b`` starts at zero.

    Attributes
    ----------
    w : ndarray, shape (D,)
    b : ndarray, shape () (a 0-d array)
    grad_w : ndarray, shape (D,)
    grad_b : ndarray, shape ()
    """

    def __init__(self, n_features: int, rng=None) -> None:
        rng = np.random.default_rng(rng)
        self.n_features = n_features
        self.w = rng.standard_normal(n_features) * 0.01
        self.b = np.array(0.0)
        self.grad_w = np.zeros_like(self.w)
        self.grad_b = np.zeros_like(self.b)
        self._cache = None

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``P(y = 1 | x)`` for every row of ``X`` (N, D), shape (N,).

        Uses ``sigmoid(z) = (1 + tanh(z / 2)) / 2``, which never overflows.
        """
        z = X @ self.w + self.b
        return 0.5 * (1.0 + np.tanh(0.5 * z))

    def forward(self, X: np.ndarray, y: np.ndarray) -> float:
        """Mean binary cross-entropy ``-(1/N) sum_i [y_i log p_i + (1 - y_i) log(1 - p_i)]``.

        Parameters
        ----------
        X : ndarray, shape (N, D)
        y : ndarray, shape (N,)
            Labels in {0, 1} (int or float).

        Returns
        -------
        float

        Notes
        -----
        With the logit ``z = X w + b``, ``-log p = log(1 + e^-z)`` and ``-log(1 - p) = log(1 + e^z)``,
        so each term is ``log(1 + e^z) - y z``. ``np.logaddexp(0, z)`` computes ``log(1 + e^z)``
        without overflow; ``np.log(sigmoid(z))`` gives ``-inf`` for ``z = -1000`` and the loss
        becomes ``inf`` or ``nan``.
        """
        raise NotImplementedError("Need to implement for Task 1: LogisticRegression.forward")

    def backward(self, grad_output: float = 1.0) -> np.ndarray:
        """Gradients of the mean cross-entropy.

        ``dL/dz_i = (p_i - y_i) / N``: the sigmoid's derivative ``p (1 - p)`` cancels against the
        cross-entropy's. The chain rule through ``z = X w + b`` then gives

        * ``dL/dw = X^T (p - y) / N``, shape (D,);
        * ``dL/db = sum_i (p_i - y_i) / N``, shape () (a 0-d array);
        * ``dL/dX = outer(p - y, w) / N``, shape (N, D), which is returned;

        each multiplied by ``grad_output``. Assign ``grad_w`` and ``grad_b``, do not accumulate.

        Parameters
        ----------
        grad_output : float
            dQ/dL; 1.0 when the loss is the final output.

        Returns
        -------
        ndarray, shape (N, D)
        """
        raise NotImplementedError("Need to implement for Task 1: LogisticRegression.backward")

    def parameters(self) -> dict[str, np.ndarray]:
        return {"w": self.w, "b": self.b}

    def gradients(self) -> dict[str, np.ndarray]:
        return {"w": self.grad_w, "b": self.grad_b}

    def __repr__(self) -> str:
        return f"LogisticRegression({self.n_features})"
