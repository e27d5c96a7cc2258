"""Backprop by hand: the layers of a small neural network, forward and backward, in numpy.

You implement ``forward`` and ``backward`` in ``layers.py`` (Linear, ReLU, LogSoftmax, NLLLoss) and
``logistic_regression.py`` (LogisticRegression). Everything else here is provided.
"""
from .module import Module, Sequential
from .layers import Linear, ReLU, LogSoftmax, NLLLoss
from .logistic_regression import LogisticRegression
from .gradcheck import numerical_gradient, rel_error, check_gradient

__all__ = [
    "Module",
    "Sequential",
    "Linear",
    "ReLU",
    "LogSoftmax",
    "NLLLoss",
    "LogisticRegression",
    "numerical_gradient",
    "rel_error",
    "check_gradient",
]
