"""The worker's side of MNIST training: one gradient per request, nothing else (issue 20).

The trusted parent owns the parameters and applies every SGD step (``grader/checks/mnist.py``).
For each step it writes the batch indices and the current parameters into the shared arena
(``shm.py``) and sends ``{"op": "grad", "n": ...}``; the worker loads those parameters into the
student's layer objects, runs forward and backward on that batch of the training images it holds,
and writes the parameter gradients back into the arena, replying with their dtypes and shapes and
the loss. Whatever happens here between two requests, no parameter of the run moves: the next
request brings the parameters again, from the parent's own copy.

Copied into the sandbox next to ``worker.py``: standard library, numpy and siblings only.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

try:  # inside the sandbox the siblings are top-level modules
    from protocol import ALLOWED_DTYPES, NumpyScalar, decode_value, encode_value
    from shm import Arena
except ImportError:  # in the parent they live in grader.sandbox
    from .protocol import ALLOWED_DTYPES, NumpyScalar, decode_value, encode_value
    from .shm import Arena

OPS = ("data", "net", "grad")
#: Which layer object answers for a parameter: (component, layer attribute).
PARAM_OWNER = {"W1": "Linear", "b1": "Linear", "W2": "Linear", "b2": "Linear",
               "w": "LogisticRegression", "b": "LogisticRegression"}


class TrainingError(Exception):
    """The training protocol itself could not go on (a loss that is not a number, ...)."""

    def __init__(self, info: dict) -> None:
        super().__init__(info.get("message", ""))
        self.info = info


class Net:
    """The MLP (784-H-10) or the logistic regression, built from the student's classes through an
    object API (``new``/``set``/``call``; local in the worker, or remote for tests)."""

    def __init__(self, api: Any, kind: str, hidden: int) -> None:
        self.api, self.kind = api, kind
        if kind == "mlp":
            self.l1 = self._new("Linear", 784, hidden, 0)
            self.relu = self._new("ReLU")
            self.l2 = self._new("Linear", hidden, 10, 0)
            self.lsm = self._new("LogSoftmax")
            self.nll = self._new("NLLLoss", "mean")
        else:
            self.lr = self._new("LogisticRegression", 784, 0)

    def _new(self, cls: str, *args):
        return self._annotate(cls, "__init__", self.api.new, cls, *args)

    def _c(self, h, cls: str, method: str, *args):
        return self._annotate(cls, method, self.api.call, h, method, *args)

    @staticmethod
    def _annotate(cls: str, method: str, fn: Callable, *args):
        """Run one call; a failure says which component and method it was (issue 15 reads it)."""
        try:
            return fn(*args)
        except Exception as exc:
            info = getattr(exc, "info", None)
            if isinstance(info, dict):
                info.setdefault("component", cls)
                info.setdefault("method", method)
            raise

    def load(self, params: dict[str, np.ndarray]) -> None:
        """Set the parameters (arrays the layers may keep: nobody else holds them)."""
        s = self.api.set
        if self.kind == "mlp":
            for h, pre in ((self.l1, "1"), (self.l2, "2")):
                self._annotate("Linear", "set W", s, h, "W", params[f"W{pre}"])
                self._annotate("Linear", "set b", s, h, "b", params[f"b{pre}"])
        else:
            self._annotate("LogisticRegression", "set w", s, self.lr, "w", params["w"])
            self._annotate("LogisticRegression", "set b", s, self.lr, "b", params["b"])

    def step(self, xb: np.ndarray, yb: np.ndarray) -> tuple[float, dict]:
        """Forward and backward on one batch; returns the loss and the raw parameter gradients."""
        c = self._c
        if self.kind == "mlp":
            h = c(self.l1, "Linear", "forward", xb)
            a = c(self.relu, "ReLU", "forward", h)
            t = c(self.l2, "Linear", "forward", a)
            lp = c(self.lsm, "LogSoftmax", "forward", t)
            loss = c(self.nll, "NLLLoss", "forward", lp, yb)
            g = c(self.nll, "NLLLoss", "backward", 1.0)
            g = c(self.lsm, "LogSoftmax", "backward", g)
            g = c(self.l2, "Linear", "backward", g)
            g = c(self.relu, "ReLU", "backward", g)
            c(self.l1, "Linear", "backward", g)
            g1, g2 = c(self.l1, "Linear", "gradients"), c(self.l2, "Linear", "gradients")
            g1, g2 = (g if isinstance(g, dict) else {} for g in (g1, g2))
            grads = {"W1": g1.get("W"), "b1": g1.get("b"), "W2": g2.get("W"), "b2": g2.get("b")}
        else:
            loss = c(self.lr, "LogisticRegression", "forward", xb, yb)
            c(self.lr, "LogisticRegression", "backward", 1.0)
            g = c(self.lr, "LogisticRegression", "gradients")
            g = g if isinstance(g, dict) else {}
            grads = {"w": g.get("w"), "b": g.get("b")}
        if isinstance(loss, NumpyScalar):
            loss = loss.array
        try:
            loss = float(loss)
        except (TypeError, ValueError):
            comp = "NLLLoss" if self.kind == "mlp" else "LogisticRegression"
            raise TrainingError({"message": f"the loss is not a number ({type(loss).__name__})", "kind": "type",
                                 "component": comp, "method": "forward"}) from None
        return loss, grads


def _describe_grad(g: Any) -> dict:
    """What a gradient that could not be written looks like, for the parent's error message."""
    shape = getattr(g, "shape", None)
    ok_shape = isinstance(shape, tuple) and all(type(s) is int for s in shape)
    return {"type": f"{type(g).__module__}.{type(g).__qualname__}"[:120],
            "shape": list(shape) if ok_shape else None, "dtype": str(getattr(g, "dtype", ""))[:40]}


class Trainer:
    """Answers the ``data``, ``net`` and ``grad`` requests of one worker."""

    def __init__(self, api: Any, arena: Arena, describe: Callable[[BaseException], dict]) -> None:
        self.api, self.arena, self.describe = api, arena, describe
        self.X = self.y = None
        self.net: Net | None = None
        self.layout: dict = {}
        self._views: dict = {}

    def handle(self, op: str, head: dict) -> tuple[dict, list]:
        try:
            self.arena.map(int(head.get("size", 0)))
            if op == "data":
                self.X = self.arena.view(*head["X"][:3])
                self.y = self.arena.view(*head["y"][:3])
                return {"ok": True}, []
            if op == "net":
                self.net = None
                self.layout = {k: head[k] for k in ("params", "grads", "idx")}
                self._views = {}
                self.net = Net(self.api, head["kind"], int(head.get("hidden", 0)))
                return {"ok": True}, []
            return self._grad(int(head["n"]))
        except TrainingError as exc:
            return {"ok": False, "error": {"type": "TrainingError", "where": "", **exc.info}}, []
        except Exception as exc:
            info = getattr(exc, "info", None)
            if isinstance(info, dict):  # a call into student code failed (worker.CallFailed)
                return {"ok": False, "error": info}, []
            return {"ok": False, "error": self.describe(exc)}, []

    def _grad(self, n: int) -> tuple[dict, list]:
        if self.net is None or self.X is None:
            raise TrainingError({"message": "no network or no training data in the worker", "kind": "protocol"})
        off, dt, _, _ = self.layout["idx"]
        idx = self._view(off, dt, (n,)).copy()
        if n < 1 or idx.min() < 0 or idx.max() >= len(self.X):
            raise TrainingError({"message": "batch indices out of range", "kind": "protocol"})
        # Copies: the layers own their parameters, and never hold memory the parent writes.
        params = {k: self._view(*e[:3]).copy() for k, e in self.layout["params"].items()}
        self.net.load(params)
        X = self.X[idx]
        xb = X.astype(np.float32) / np.float32(255.0) if X.dtype == np.uint8 else X
        loss, grads = self.net.step(xb, self.y[idx].copy())
        report = {k: self._put(grads.get(k), e) for k, e in self.layout["grads"].items()}
        return {"ok": True, "loss": repr(loss), "grads": report}, []

    def _view(self, off: int, dtype: str, shape) -> np.ndarray:
        key = (off, dtype, tuple(shape), self.arena.size)
        v = self._views.get(key)
        if v is None:
            v = self._views[key] = self.arena.view(off, dtype, shape)
        return v

    def _put(self, g: Any, entry: list) -> dict:
        """Write one gradient into its slot, or say why it could not be."""
        off, _, _, room = entry
        if isinstance(g, NumpyScalar):
            g = g.array
        if type(g) in (float, int):
            g = np.asarray(g, dtype=np.float64)
        if type(g) is not np.ndarray or g.dtype.str not in ALLOWED_DTYPES or g.nbytes > room:
            return _describe_grad(g)
        self._view(off, g.dtype.str, g.shape)[...] = g
        return {"written": True, "dtype": g.dtype.str, "shape": list(g.shape)}


__all__ = ["Net", "OPS", "PARAM_OWNER", "Trainer", "TrainingError", "decode_value", "encode_value"]
