"""The MNIST tests' protocol and its trusted numpy: the data, the network's maths, a run's record.

Everything here runs in the grader's own process on trusted code only: the datasets (test images
and labels never enter the sandbox), the initial parameters drawn from the secret, the correct
gradients of the architecture (what the direction check compares with), the test accuracy of the
parameters the parent produced, and :class:`MnistRun`, what one training run left. The training
loop itself is in ``mnist.py``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .base import CaseResult


@dataclass(frozen=True)
class Protocol:
    """A fixed training protocol; the reference is run under exactly the same one."""

    component: str
    kind: str                 #: "mlp" or "logreg"
    hidden: int = 0
    epochs: int = 1
    batch_size: int = 32
    lr: float = 0.1
    subset: int | None = None  #: a fixed stratified subset of this many training images (None: all)
    digits: tuple[int, int] = (3, 5)
    chance: float = 0.1
    #: Share of the steps whose gradient direction is compared with backpropagation's, drawn by the
    #: parent after each reply (the first step always).
    verify_share: float = 1.0
    # Budget: this many times the reference's training time, and at least min_budget seconds. Loops
    # over samples or finite-difference gradients are 100x slower or worse; correct but unusual code
    # (np.einsum without optimize=True is about 5x) must never hit it, also on a busy machine.
    time_factor: float = 25.0
    min_budget: float = 30.0


MLP = Protocol("MNIST-MLP", "mlp", hidden=64, epochs=2, batch_size=64, lr=0.3, subset=20000, chance=0.1)
LOGREG = Protocol("MNIST-LogReg", "logreg", epochs=2, batch_size=64, lr=0.5, chance=0.5)



def network(p: Protocol) -> dict:
    """The network the worker builds from the student's classes for this protocol (see
    ``grader/sandbox/training.py``, :class:`Net`): layers with the parameters they own, and a loss."""
    if p.kind == "mlp":
        return {"sequence": [{"cls": "Linear", "args": [784, p.hidden, 0], "params": {"W": "W1", "b": "b1"}},
                           {"cls": "ReLU"},
                           {"cls": "Linear", "args": [p.hidden, 10, 0], "params": {"W": "W2", "b": "b2"}},
                           {"cls": "LogSoftmax"}],
                "loss": {"cls": "NLLLoss", "args": ["mean"]}}
    return {"sequence": [{"cls": "LogisticRegression", "args": [784, 0], "params": {"w": "w", "b": "b"}}], "model": True}


MIN_COSINE = 0.9     # every known-buggy variant that gets MNIST credit is at 0.99 or more (bench/README.md)
NORM_FACTOR = 1e4    # N-times-too-large bugs are 64x; see README "MNIST integrity" for the margin
SUBSET_SEED = 20240  # the stratified subset is fixed (not secret): the same images for every run
WALL_FACTOR = 1.5


@dataclass
class Dataset:
    X_train: np.ndarray   #: uint8 (N, 784)
    y_train: np.ndarray   #: int64
    X_test: np.ndarray    #: float32 (M, 784), stays in the parent
    y_test: np.ndarray


def stratified(y: np.ndarray, n: int, seed: int = SUBSET_SEED) -> np.ndarray:
    """``n`` training indices with every class in its share of the whole, fixed by ``seed``, sorted."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    take = np.floor(counts / counts.sum() * n).astype(int)
    take[: n - int(take.sum())] += 1
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, take)]))


def datasets(root=None) -> dict[str, Dataset]:
    from assignment.data import load_raw

    raw = load_raw(root)
    Xtr = raw["train_images"].reshape(len(raw["train_images"]), -1)
    Xte = raw["test_images"].reshape(len(raw["test_images"]), -1).astype(np.float32) / np.float32(255.0)
    ytr, yte = raw["train_labels"].astype(np.int64), raw["test_labels"].astype(np.int64)
    a, b = LOGREG.digits
    tr = (ytr == a) | (ytr == b)
    te = (yte == a) | (yte == b)
    out = {"mlp": Dataset(Xtr, ytr, Xte, yte),
           "logreg": Dataset(Xtr[tr], (ytr[tr] == b).astype(np.int64), Xte[te], (yte[te] == b).astype(np.int64))}
    for p in (MLP, LOGREG):
        d = out[p.kind]
        idx = stratified(d.y_train, p.subset) if p.subset else np.arange(len(d.y_train))
        d.X_train, d.y_train = np.ascontiguousarray(d.X_train[idx]), np.ascontiguousarray(d.y_train[idx])
    return out


def initial_params(p: Protocol, rng: np.random.Generator) -> dict[str, np.ndarray]:
    f32 = np.float32
    if p.kind == "mlp":
        return {"W1": (rng.standard_normal((784, p.hidden)) * np.sqrt(2 / 784)).astype(f32),
                "b1": np.zeros(p.hidden, f32),
                "W2": (rng.standard_normal((p.hidden, 10)) * np.sqrt(2 / p.hidden)).astype(f32),
                "b2": np.zeros(10, f32)}
    return {"w": (rng.standard_normal(784) * 0.01).astype(f32), "b": np.zeros((), f32)}


def accuracy(p: Protocol, params: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray) -> float:
    """Trusted forward pass of the architecture, in numpy, on the test set."""
    if p.kind == "mlp":
        H = np.maximum(X @ params["W1"] + params["b1"], 0)
        pred = (H @ params["W2"] + params["b2"]).argmax(axis=1)
    else:
        pred = (X @ params["w"] + params["b"] > 0).astype(np.int64)
    return float(np.mean(pred == y))


def backprop(kind: str, params: dict[str, np.ndarray], xb: np.ndarray, yb: np.ndarray) -> dict[str, np.ndarray]:
    """The correct parameter gradients of the architecture's mean loss, in trusted numpy."""
    n = len(yb)
    if kind == "mlp":
        h = xb @ params["W1"] + params["b1"]
        a = np.maximum(h, 0)
        t = a @ params["W2"] + params["b2"]
        e = np.exp(t - t.max(axis=1, keepdims=True))
        G = e / e.sum(axis=1, keepdims=True)
        G[np.arange(n), yb] -= 1
        G /= n
        gh = (G @ params["W2"].T) * (h > 0)
        return {"W1": xb.T @ gh, "b1": gh.sum(axis=0), "W2": a.T @ G, "b2": G.sum(axis=0)}
    z = xb @ params["w"] + params["b"]
    r = (0.5 * (1 + np.tanh(0.5 * z)) - yb) / n
    return {"w": xb.T @ r, "b": np.asarray(r.sum(), dtype=xb.dtype)}


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel(), b.ravel()
    return float(np.dot(a, b)) / max(float(np.sqrt(np.dot(a, a)) * np.sqrt(np.dot(b, b))), 1e-30)


@dataclass
class MnistRun:
    """What one training run under the protocol produced."""

    component: str
    accuracy: float | None = None
    seconds: float = 0.0
    steps: int = 0
    final_loss: float | None = None
    error: CaseResult | None = None
    #: Why training stopped, structured: component, method, kind, step (1-based), message.
    failure: dict | None = None
    #: Evidence for the instructor when the run looks tampered with (the batch summary lists it).
    review: dict | None = None
    verified_steps: int = 0
    grad_norms: list = field(default_factory=list)  #: per step, per parameter (kept for the reference)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["error"] = None if self.error is None else asdict(self.error)
        return d

    def summary(self, ref: dict) -> dict:
        """What ``SubmissionResult.mnist`` records (instructor-facing: never which steps were checked)."""
        return {"accuracy": self.accuracy, "reference_accuracy": ref.get("accuracy"), "steps": self.steps,
                "verified_steps": self.verified_steps, "failure": self.failure, "review": self.review}

    def fail(self, cause: str, detail: str, *, component: str, method: str, kind: str, step: int,
             message: str) -> "MnistRun":
        self.error = CaseResult("training", False, cause, detail)
        self.failure = {"component": component, "method": method, "kind": kind, "step": step,
                        "message": message[:800]}
        return self


def batch_order(p: Protocol, n: int, rng: np.random.Generator) -> np.ndarray:
    return np.concatenate([rng.permutation(n) for _ in range(p.epochs)]).astype(np.int64)
