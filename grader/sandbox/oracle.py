"""The oracle interface: how a check asks student code (or the reference) for an answer.

A check never calls student code directly. It holds an *oracle* (an :class:`Oracle`): ``new`` builds
an object of a named class, ``set`` gives it an attribute, ``call`` runs a method and returns the
value as it crossed the wire (numpy arrays, scalars, lists, dicts; anything else as a placeholder).
Two implementations: :class:`grader.sandbox.local.LocalImpl` (trusted code in this process: the
reference, the known-buggy variants) and :class:`grader.sandbox.client.SandboxImpl` (a submission
in its isolated worker). Both share :class:`OracleBase` and the same value encoding, so an honest
submission gets the same answers, hence the same score, either way.

A reply comes from the student's process, which can write anything to the pipe: every field is
checked here, and a bad one becomes the submission's protocol error, never an exception in a check.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

from .protocol import ProtocolError, decode_value, encode_value
from .shm import Arena
from .worker import dict_reply_problem


class StudentError(Exception):
    """A call into student code did not return a value.

    ``info`` holds ``kind`` (``exception``, ``not_attempted``, ``import``, ``missing``, ``timeout``,
    ``crash``, ``protocol``, ``skipped``), ``type``, ``message`` and ``where``.
    """

    def __init__(self, info: dict) -> None:
        super().__init__(info.get("message", ""))
        self.info = info

    @property
    def kind(self) -> str:
        return self.info.get("kind", "exception")


def classify(info: dict) -> dict:
    """The error info of a failed call with its ``kind`` derived from the worker's flags."""
    info = dict(info)
    if info.get("import_error"):
        info["kind"] = "import"
    elif info.get("missing"):
        info["kind"] = "missing"
    elif info.get("not_attempted"):
        info["kind"] = "not_attempted"
    else:
        info.setdefault("kind", "exception")
    return info


@dataclass
class Reply:
    value: Any
    modified: list[bool] | None = None


@dataclass(frozen=True)
class Handle:
    generation: int
    id: int
    cls: str




@runtime_checkable
class Oracle(Protocol):
    """What a check may ask of an implementation (the reference or a submission)."""

    label: str
    failed_methods: dict

    def new(self, cls: str, *args) -> Handle: ...

    def set(self, h: Handle, name: str, value) -> None: ...

    def call(self, h: Handle, method: str, *args, readonly: tuple[bool, ...] = (), echo: bool = False) -> Any: ...

    def call_ex(self, h: Handle, method: str, *args, readonly: tuple[bool, ...] = (), echo: bool = False) -> Reply: ...

    def training_arena(self) -> Arena: ...

    def begin_request(self, head: dict, *, cls: str, method: str, timeout: float) -> Callable[[], tuple]: ...


class OracleBase:
    """Shared request logic; subclasses provide :meth:`request` (one round trip to the classes)."""

    label = "implementation"

    def new(self, cls: str, *args) -> Handle:
        head, _ = self._call_op({"op": "new", "cls": cls}, list(args), cls=cls, method="__init__")
        if type(head.get("h")) is not int:
            raise self.malformed("no object handle in the reply")
        return Handle(self._generation, head["h"], cls)

    def set(self, h: Handle, name: str, value) -> None:
        self._check_handle(h)
        arrays: list = []
        tree = encode_value(value, arrays)
        self._op({"op": "set", "h": h.id, "name": name, "value": tree}, arrays, cls=h.cls, method=f"set {name}")

    def call(self, h: Handle, method: str, *args, readonly: tuple[bool, ...] = (), echo: bool = False) -> Any:
        return self.call_ex(h, method, *args, readonly=readonly, echo=echo).value

    def call_ex(self, h: Handle, method: str, *args, readonly: tuple[bool, ...] = (), echo: bool = False) -> Reply:
        self._check_handle(h)
        head, arrays = self._call_op({"op": "call", "h": h.id, "method": method,
                                      "readonly": list(readonly), "echo": echo}, list(args),
                                     cls=h.cls, method=method)
        modified = head.get("modified")
        if modified is not None and not (type(modified) is list and all(type(m) is bool for m in modified)):
            raise self.malformed("a malformed 'modified' list")
        value = self._value(head, arrays)
        problem = dict_reply_problem(method, value)
        if problem:
            raise StudentError({"kind": "exception", "type": "TypeError", "message": problem, "where": ""})
        return Reply(value, modified)

    # A reply comes from the student's process, which can write anything to the pipe: every field
    # is checked, and a bad one is the submission's protocol error, never an exception in a check.
    def _value(self, head: dict, arrays: list):
        try:
            return decode_value(head["value"], arrays)
        except (ProtocolError, KeyError, TypeError, ValueError, RecursionError) as exc:
            raise self.malformed(f"no valid value in the reply: {type(exc).__name__}") from None

    def malformed(self, why: str) -> "StudentError":
        return StudentError({"kind": "protocol", "type": "ProtocolError", "where": "",
                             "message": f"the worker sent a malformed answer ({why}); "
                                        "did the code write to the grader's pipe?"})

    def _call_op(self, head: dict, args: list, *, cls: str, method: str):
        arrays: list = []
        head = dict(head, args=encode_value(args, arrays))
        return self._op(head, arrays, cls=cls, method=method)

    def _op(self, head: dict, arrays: list, *, cls: str, method: str, timeout: float | None = None):
        reply, out = self.request(head, arrays, cls=cls, method=method, timeout=timeout)
        if not reply.get("ok"):
            raise StudentError(classify(reply.get("error") or {}))
        return reply, out

    def _check_handle(self, h: Handle) -> None:
        if h.generation != self._generation:
            raise StudentError({"kind": "skipped", "type": "WorkerRestarted",
                                "message": "the worker was restarted after an earlier failure", "where": ""})

    # training (grader/sandbox/channel.py) ---------------------------------------------------------
    def training_arena(self) -> Arena:
        """The memory shared with the worker for MNIST training steps."""
        raise NotImplementedError

    def drop(self) -> None:
        self.request({"op": "drop"}, [], cls="", method="drop", timeout=10.0)

    def begin_request(self, head: dict, *, cls: str, method: str, timeout: float):
        """Send a request without waiting; the returned callable waits for the reply (and must be
        called before the next request). In-process, the work happens when it is called."""
        return lambda: self.request(head, [], cls=cls, method=method, timeout=timeout)




def checked_reply(reply: dict) -> dict:
    """The reply with its status fields reduced to known types: a forged ``error`` that is not a
    dict, or a ``steps_done`` that is not a number, must not raise inside the grader."""
    if reply.get("ok") is True:
        return reply
    err = reply.get("error")
    if not isinstance(err, dict):
        err = {"type": "ProtocolError", "message": "the worker reported a malformed error", "kind": "protocol"}
    info: dict = {k: str(err[k])[:2000] for k in ("type", "message", "where", "kind", "import_error") if k in err}
    info.update({k: err[k] for k in ("not_attempted", "missing") if type(err.get(k)) is bool})
    info.setdefault("where", "")
    out = {"ok": False, "error": info}
    if type(reply.get("steps_done")) is int:
        out["steps_done"] = reply["steps_done"]
    return out
