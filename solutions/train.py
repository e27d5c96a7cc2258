"""Minibatch SGD, accuracy, and the two training runs of the notebooks (provided).

Run ``python -m assignment.train`` to train the MLP and the logistic regression on MNIST with your
layers and print their test accuracy.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from .layers import Linear, LogSoftmax, NLLLoss, ReLU
from .logistic_regression import LogisticRegression
from .module import Module, Sequential

__all__ = ["History", "minibatches", "sgd_step", "train_classifier", "train_logistic",
           "accuracy", "make_mlp", "train_mlp", "main"]


@dataclass
class History:
    """What a training run recorded: the mean loss of each epoch and the accuracies."""

    loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0


def minibatches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Indices of one epoch: a fresh permutation of ``range(n)`` cut into batches."""
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def sgd_step(model: Module, lr: float) -> None:
    """``p <- p - lr * dL/dp`` for every parameter, in place."""
    grads = model.gradients()
    for name, p in model.parameters().items():
        p -= lr * grads[name]


def make_mlp(hidden: int = 128, *, seed: int = 0, dtype=np.float32) -> Sequential:
    """784 -> hidden -> 10 with ReLU, ending in LogSoftmax, weights in ``dtype``."""
    rng = np.random.default_rng(seed)
    model = Sequential(Linear(784, hidden, rng), ReLU(), Linear(hidden, 10, rng), LogSoftmax())
    for layer in model.layers:
        for name, p in layer.parameters().items():
            setattr(layer, name, p.astype(dtype))
    return model


def predict(model: Module, X: np.ndarray, batch_size: int = 2000) -> np.ndarray:
    """The arg-max class of each row, computed in batches."""
    return np.concatenate([model.forward(X[i : i + batch_size]).argmax(axis=1)
                           for i in range(0, len(X), batch_size)])


def accuracy(model: Module, X: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows whose predicted class equals ``y``."""
    return float(np.mean(predict(model, X) == y))


def train_classifier(
    model: Module, X: np.ndarray, y: np.ndarray, *, epochs: int = 2, batch_size: int = 64,
    lr: float = 0.3, seed: int = 0, X_test: np.ndarray | None = None, y_test: np.ndarray | None = None,
    verbose: bool = False,
) -> History:
    """Train ``model`` (ending in LogSoftmax) with NLLLoss and plain minibatch SGD.

    Parameters
    ----------
    model : Module
        Maps (B, 784) to (B, 10) log-probabilities.
    X, y : ndarray, shapes (N, 784) and (N,)
    epochs, batch_size, lr : training protocol.
    seed : int
        Seeds the shuffling, so two runs see the same batches.
    """
    rng = np.random.default_rng(seed)
    loss_fn = NLLLoss("mean")
    hist = History()
    start = time.perf_counter()
    for epoch in range(epochs):
        losses = []
        for idx in minibatches(len(X), batch_size, rng):
            out = model.forward(X[idx])
            losses.append(loss_fn.forward(out, y[idx]))
            model.backward(loss_fn.backward(1.0))
            sgd_step(model, lr)
        hist.loss.append(float(np.mean(losses)))
        if X_test is not None:
            hist.test_accuracy.append(accuracy(model, X_test, y_test))
        if verbose:
            extra = f", test accuracy {hist.test_accuracy[-1]:.4f}" if X_test is not None else ""
            print(f"epoch {epoch + 1}: loss {hist.loss[-1]:.4f}{extra}")
    hist.seconds = time.perf_counter() - start
    return hist


def train_logistic(
    model: LogisticRegression, X: np.ndarray, y: np.ndarray, *, epochs: int = 3,
    batch_size: int = 64, lr: float = 0.5, seed: int = 0,
) -> History:
    """Train a binary :class:`LogisticRegression` with minibatch SGD on labels in {0, 1}."""
    rng = np.random.default_rng(seed)
    hist = History()
    start = time.perf_counter()
    for _ in range(epochs):
        losses = []
        for idx in minibatches(len(X), batch_size, rng):
            losses.append(model.forward(X[idx], y[idx]))
            model.backward(1.0)
            sgd_step(model, lr)
        hist.loss.append(float(np.mean(losses)))
    hist.seconds = time.perf_counter() - start
    return hist


def train_mlp(hidden: int = 128, *, epochs: int = 2, seed: int = 0, verbose: bool = True):
    """Train the 784-hidden-10 MLP on MNIST; returns ``(model, history)``."""
    from .data import load_mnist

    d = load_mnist()
    model = make_mlp(hidden, seed=seed)
    hist = train_classifier(model, d.X_train, d.y_train, epochs=epochs, seed=seed,
                            X_test=d.X_test, y_test=d.y_test, verbose=verbose)
    return model, hist


def main() -> None:
    from .data import binary_pair, load_mnist

    model, hist = train_mlp()
    print(f"MLP 784-128-10: test accuracy {hist.test_accuracy[-1]:.4f} in {hist.seconds:.1f} s")
    pair = binary_pair(load_mnist(), 3, 5)
    logreg = LogisticRegression(784, rng=0)
    h = train_logistic(logreg, pair.X_train.astype(np.float64), pair.y_train)
    acc = float(np.mean((logreg.predict_proba(pair.X_test) > 0.5) == pair.y_test))
    print(f"Logistic regression, 3 vs 5: test accuracy {acc:.4f} in {h.seconds:.1f} s")


if __name__ == "__main__":
    main()
