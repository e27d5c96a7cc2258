"""The parent's side of the MNIST gradient channel (issue 20): ask for one gradient, validate it.

:class:`GradientChannel` lays the training images, the batch indices, the parameters and the
gradient slots out in the implementation's shared arena (``shm.py``), sets up the student's network
in the worker, and then answers :meth:`GradientChannel.gradient`: write the parameters and the
batch, send a two-field header, read the reply, copy every gradient out of the arena and validate
the copy (exact shape, a numeric dtype). A reply that cannot be used is an error, never skipped.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .oracle import StudentError, classify
from .protocol import ALLOWED_DTYPES
from .shm import SLOT_ITEMSIZE, Layout
from .training import param_owners


@dataclass
class GradientRejected(Exception):
    """A gradient the worker returned that cannot be used (wrong shape, not an array, ...)."""

    param: str
    kind: str       #: "shape", "type"
    message: str
    component: str = ""  #: the class that owns the parameter


class GradientChannel:
    """One training run's connection to the student's layers."""

    def __init__(self, impl, kind: str, network: dict, params: dict[str, np.ndarray], X: np.ndarray,
                 y: np.ndarray, batch_size: int, *, timeout: float = 60.0) -> None:
        self.impl, self.kind = impl, kind
        self.key = f"training {kind}"  # one failed-call key per network (an MLP timeout is not LogReg's)
        self.arena = impl.training_arena()
        lay = Layout()
        self.X_at, self.y_at = lay.add("X", X.dtype, X.shape), lay.add("y", y.dtype, y.shape)
        self.idx_at = lay.add("idx", np.int64, (batch_size,))
        self.param_at = {k: lay.add(f"p_{k}", v.dtype, v.shape) for k, v in params.items()}
        self.grad_at = {k: lay.add(f"g_{k}", v.dtype, v.shape, itemsize=SLOT_ITEMSIZE) for k, v in params.items()}
        self.shapes = {k: v.shape for k, v in params.items()}
        self.dtypes = {k: v.dtype for k, v in params.items()}
        self.arena.ensure(lay.end)
        # The images are written once per arena (a worker restarted later still finds them).
        data_key = (X.ctypes.data, X.shape, y.ctypes.data, self.X_at[0])
        if getattr(self.arena, "data_key", None) != data_key:
            self.arena.view(*self.X_at[:3])[...] = X
            self.arena.view(*self.y_at[:3])[...] = y
            self.arena.data_key = data_key
        self._views = {k: self.arena.view(*e[:3]) for k, e in self.param_at.items()}
        self._idx = self.arena.view(*self.idx_at[:3])
        self._grad_views: dict = {}
        size = self.arena.size
        self.request({"op": "data", "size": size, "X": self.X_at, "y": self.y_at}, "data", timeout)
        self.owners = param_owners(network)
        self.request({"op": "net", "size": size, "network": network, "params": self.param_at,
                      "grads": self.grad_at, "idx": self.idx_at}, "net", timeout)
        self._head = {"op": "grad", "size": size, "n": 0}
        self._pending = None

    def request(self, head: dict, method: str, timeout: float) -> dict:
        reply, _ = self.impl.request(head, [], cls=self.key, method=method, timeout=timeout)
        if not reply.get("ok"):
            raise StudentError(classify(reply.get("error") or {}))
        return reply

    def gradient(self, params: dict[str, np.ndarray], idx: np.ndarray, *, timeout: float) -> tuple[float, dict]:
        """The student's loss and parameter gradients at ``params`` on the batch ``idx``.

        Raises StudentError (the call failed: exception, timeout, crash, malformed reply) or
        GradientRejected (a gradient of the wrong shape or type)."""
        self.send(params, idx, timeout=timeout)
        return self.receive()

    def send(self, params: dict[str, np.ndarray], idx: np.ndarray, *, timeout: float) -> None:
        """Ask for the gradients at ``params`` on ``idx`` without waiting: :meth:`receive` reads
        them. The parameters are the caller's: it may keep them, the worker only sees a copy."""
        n = len(idx)
        self._idx[:n] = idx
        for k, v in params.items():
            self._views[k][...] = v
        self._pending = self.impl.begin_request(dict(self._head, n=n), cls=self.key, method="grad", timeout=timeout)

    def drain(self) -> None:
        """Wait for and drop the reply of a request whose answer is no longer wanted."""
        try:
            self.receive()
        except (StudentError, GradientRejected):
            pass

    def receive(self) -> tuple[float, dict]:
        pending, self._pending = self._pending, None
        if pending is None:
            raise RuntimeError("GradientChannel.receive without a request")
        reply, _ = pending()
        if not reply.get("ok"):
            raise StudentError(classify(reply.get("error") or {}))
        grads = reply.get("grads")
        if not isinstance(grads, dict) or set(grads) != set(self.shapes):
            raise self.impl.malformed("no gradient report")
        try:
            loss = float(reply.get("loss"))
        except (TypeError, ValueError):
            raise self.impl.malformed("no loss in the reply") from None
        return loss, {k: self._take(k, grads[k]) for k in self.shapes}

    def _rejected(self, param: str, kind: str, message: str) -> GradientRejected:
        return GradientRejected(param, kind, message, self.owners.get(param, ""))

    def _take(self, k: str, d) -> np.ndarray:
        want = self.shapes[k]
        if not isinstance(d, dict):
            raise self.impl.malformed("a malformed gradient entry")
        shape = d.get("shape")
        if shape is not None and not (isinstance(shape, list) and all(type(s) is int and s >= 0 for s in shape)):
            raise self.impl.malformed("a malformed gradient shape")
        if d.get("written") is not True:  # not an array, or not a usable one
            if shape is not None and tuple(shape) != want:
                raise self._rejected(k, "shape", f"gradient {k} has shape {tuple(shape)}, parameter has {want}")
            raise self._rejected(k, "type", f"gradient {k} is a {str(d.get('type'))[:120]}"
                                            f"{' of dtype ' + str(d.get('dtype'))[:40] if d.get('dtype') else ''}, "
                                            "not a numpy array of numbers")
        if d["dtype"] not in ALLOWED_DTYPES or shape is None:
            raise self.impl.malformed("a gradient of unknown dtype")
        if tuple(shape) != want:
            raise self._rejected(k, "shape", f"gradient {k} has shape {tuple(shape)}, parameter has {want}")
        off, _, _, room = self.grad_at[k]
        if math.prod(want) * np.dtype(d["dtype"]).itemsize > room:
            raise self.impl.malformed("a gradient larger than its slot")
        # One copy, now: whatever the worker writes into the arena later changes nothing.
        view = self._grad_views.get((k, d["dtype"]))
        if view is None:
            view = self._grad_views[(k, d["dtype"])] = self.arena.view(off, d["dtype"], want)
        return np.array(view, dtype=self.dtypes[k])
