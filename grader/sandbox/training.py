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


def param_owners(network: dict) -> dict[str, str]:
    """Which class answers for each trained parameter of a network description (see :class:`Net`)."""
    layers = network.get("sequence") or []
    return {name: str(layer["cls"]) for layer in layers for name in (layer.get("params") or {}).values()}


def network_classes(network: dict) -> tuple[str, ...]:
    """The classes a network description uses, in the order :class:`Net` builds them."""
    loss = network.get("loss")
    return tuple(str(layer["cls"]) for layer in network.get("sequence") or []) + ((str(loss["cls"]),) if loss else ())


class TrainingError(Exception):
    """The training protocol itself could not go on (a loss that is not a number, ...)."""

    def __init__(self, info: dict) -> None:
        super().__init__(info.get("message", ""))
        self.info = info


class Net:
    """A network built from the student's classes, as the parent describes it, through an object API
    (``new``/``set``/``call``; local in the worker, or remote for tests).

    The description (the end-to-end protocol's, ``grader/checks/mnist_protocol.py``) is a list of
    ``sequence`` of layers, each ``{"cls", "args", "params": {attribute: parameter name}}``, and either a ``loss``
    layer (a sequence: forward through the layers, ``loss.forward(out, y)``, ``loss.backward(1.0)``,
    backward through the layers in reverse) or ``"model": true`` (one layer whose ``forward(X, y)``
    returns the loss and whose ``backward(1.0)`` fills its gradients). The gradients of the layers
    with parameters are read with ``gradients()`` after the backward pass, in the layers' order.
    """

    def __init__(self, api: Any, network: dict) -> None:
        self.api = api
        self.specs = [dict(layer) for layer in network["sequence"]]
        self.handles = [self._new(layer["cls"], *layer.get("args", ())) for layer in self.specs]
        self.model = bool(network.get("model"))
        loss = network.get("loss")
        self.loss_cls = loss["cls"] if loss else self.specs[-1]["cls"]
        self.loss = self._new(loss["cls"], *loss.get("args", ())) if loss else None
        self.trained = [(h, layer) for h, layer in zip(self.handles, self.specs) if layer.get("params")]

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
        for h, layer in self.trained:
            for attr, name in layer["params"].items():
                self._annotate(layer["cls"], f"set {attr}", self.api.set, h, attr, params[name])

    def step(self, xb: np.ndarray, yb: np.ndarray) -> tuple[float, dict]:
        """Forward and backward on one batch; returns the loss and the raw parameter gradients."""
        c, pairs = self._c, list(zip(self.handles, self.specs))
        if self.model:
            (h, layer), = pairs
            loss = c(h, layer["cls"], "forward", xb, yb)
            c(h, layer["cls"], "backward", 1.0)
        else:
            out = xb
            for h, layer in pairs:
                out = c(h, layer["cls"], "forward", out)
            loss = c(self.loss, self.loss_cls, "forward", out, yb)
            g = c(self.loss, self.loss_cls, "backward", 1.0)
            for h, layer in reversed(pairs):
                g = c(h, layer["cls"], "backward", g)
        grads: dict = {}
        for h, layer in self.trained:
            got = c(h, layer["cls"], "gradients")
            got = got if isinstance(got, dict) else {}
            grads.update({name: got.get(attr) for attr, name in layer["params"].items()})
        return _loss_value(loss), grads


def _loss_value(loss: Any) -> float:
    """The loss as a number, for the report only: the parent trains on the gradients and never uses
    it, so a loss of the wrong shape or type (charged by the loss's own checks) costs no MNIST point.
    Per-sample losses give their mean; anything that is not a number gives NaN."""
    if isinstance(loss, NumpyScalar):
        loss = loss.array
    try:
        return float(loss)
    except (TypeError, ValueError, OverflowError):
        pass
    try:
        arr = np.asarray(loss, dtype=np.float64)
        return float(arr.mean()) if arr.size else float("nan")
    except (TypeError, ValueError, OverflowError):
        return float("nan")


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
                self.net = Net(self.api, head["network"])
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


__all__ = ["Net", "OPS", "Trainer", "TrainingError", "decode_value", "encode_value", "network_classes",
           "param_owners"]
