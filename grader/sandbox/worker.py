"""The sandboxed worker: imports the two student files and answers calls over a pipe.

This file runs in two places. In the sandbox it is started as a script (``python -I worker.py``),
applies the isolation layers, then serves requests. In the trusted parent, :class:`Dispatcher` is
used directly by the in-process implementation, so both paths execute exactly the same call and
encoding code and an honest submission scores the same either way.

Only the standard library, numpy and the sibling modules ``protocol``, ``isolation``, ``shm`` and
``training`` (the MNIST gradient op) may be imported here: the sandbox cannot see the grader package.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
import traceback
import types
from typing import Any

if __name__ == "__main__":  # started as a script with -I: put the siblings on the path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:  # inside the sandbox the siblings are top-level modules
    from protocol import NumpyScalar, ProtocolError, decode_value, encode_value, read_message, write_message
    import shm
    import training
except ImportError:  # in the parent they live in grader.sandbox
    from .protocol import NumpyScalar, ProtocolError, decode_value, encode_value, read_message, write_message
    from . import shm, training

import numpy as np

# Bound now, before any student code runs: a submission that monkeypatches numpy (np.frombuffer
# returning writable copies, np.array_equal always True) must not switch off the read-only inputs
# or the "inputs unchanged" comparison below. (Code that goes after the worker's own internals
# through sys.modules or ctypes can still reach them; that is deliberate tampering, see tests.)
_frombuffer = np.frombuffer

#: The assignment's class -> student module map and its provided files (module names, and the names
#: they give the package): set from the configuration the parent sends (its ``grader/spec.py``).
STUDENT_MODULES: dict[str, str] = {}
PROVIDED: dict[str, list[str]] = {"modules": [], "names": []}
#: The default import policy (the rubric's ``[imports]`` section can change it): automatic and
#: symbolic differentiation libraries, by top-level module name, with the reason shown to students.
BLOCKED_IMPORTS = {
    "torch": "PyTorch", "functorch": "PyTorch", "jax": "JAX", "jaxlib": "JAX", "autograd": "autograd",
    "tensorflow": "TensorFlow", "mxnet": "MXNet", "chainer": "Chainer", "theano": "Theano",
    "paddle": "PaddlePaddle", "mlx": "MLX", "tinygrad": "tinygrad", "micrograd": "micrograd",
    "numdifftools": "numdifftools", "sympy": "SymPy", "casadi": "CasADi",
}
#: Methods whose reply must be a dict of name -> value (the parent checks it before using it).
DICT_METHODS = ("parameters", "gradients")


def blocked_message(name: str, label: str) -> str:
    return (f"{name!r} is blocked by the grader: {label} computes derivatives automatically "
            "(or symbolically), and this assignment is about computing gradients by hand. Use numpy instead.")


def dict_reply_problem(method: str, value: Any) -> str | None:
    """Why ``value`` is not a valid answer of ``parameters()``/``gradients()``, or None."""
    if method not in DICT_METHODS:
        return None
    if not isinstance(value, dict):
        return f"{method}() returned a {type(value).__name__}; it must return a dict mapping names to numpy arrays"
    bad = [k for k in value if type(k) is not str]
    if bad:
        return f"{method}() returned a dict with a key that is not a string ({type(bad[0]).__name__})"
    return None


class BlockedImport(importlib.abc.MetaPathFinder):
    """Autodiff libraries are not importable: gradients must be computed by hand.

    The message is the friendly half of the policy; the other half is the file system (the blocked
    libraries' folders are not in the worker's view nor in its landlock rules), so removing this
    finder from ``sys.meta_path`` does not make them importable.
    """

    def __init__(self, blocked: dict[str, str] | None = None) -> None:
        self.blocked = dict(BLOCKED_IMPORTS if blocked is None else blocked)

    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in self.blocked:
            raise ImportError(blocked_message(name, self.blocked[top]), name=name)
        return None


def describe_exception(exc: BaseException, student_dir: str | None) -> dict:
    """Type, message and the student's own line where it was raised (never the grader's frames)."""
    try:
        message = str(exc)
    except BaseException:  # a hostile __str__
        message = "<the exception's message could not be read>"
    where = ""
    try:
        frames = traceback.extract_tb(exc.__traceback__)
        own = [f for f in frames if student_dir and f.filename.startswith(student_dir)]
        if isinstance(exc, SyntaxError) and exc.filename:
            where = f"{os.path.basename(exc.filename)}, line {exc.lineno}"
        elif own:
            f = own[-1]
            where = f"{os.path.basename(f.filename)}, line {f.lineno}, in {f.name}"
            if f.line:
                where += f": {f.line.strip()[:160]}"
    except BaseException:
        pass
    name = type(exc).__name__ if type(type(exc)) is type else "exception"
    return {"type": name[:100], "message": message[:800], "where": where[:300],
            "not_attempted": isinstance(exc, NotImplementedError)}


# --- dispatching calls to student objects ----------------------------------------------------------

class CallFailed(Exception):
    def __init__(self, info: dict) -> None:
        super().__init__(info.get("message", ""))
        self.info = info


class Dispatcher:
    """Holds the student objects and performs the parent's requests on them.

    ``classes`` maps class names to classes (in-process use); otherwise the two student modules are
    imported lazily from ``package_dir`` (sandbox use), each on first need, so a broken
    ``logistic_regression.py`` does not stop ``layers.py`` from being graded.
    """

    def __init__(self, package_dir: str | None = None, classes: dict[str, type] | None = None,
                 package: str = "assignment", arena: "shm.Arena | None" = None,
                 student_modules: dict[str, str] | None = None) -> None:
        self.package_dir = package_dir
        self.package = package
        #: class name -> student module (the assignment's; in the sandbox, set from the configuration)
        self.student_modules = dict(student_modules) if student_modules else STUDENT_MODULES
        self.classes = dict(classes or {})
        self.modules: dict[str, Any] = {}
        self.import_errors: dict[str, dict] = {}
        self.objects: dict[int, Any] = {}
        self.next_handle = 1
        # MNIST training steps (training.py): arrays in shared memory, only headers on the pipe.
        self.arena = arena or shm.Arena.anonymous()
        self.trainer = training.Trainer(_LocalAPI(self), self.arena, lambda e: describe_exception(e, self.package_dir))

    # local object API (used by the training loop inside the worker) ---------------------------
    def new(self, cls: str, *args):
        h = self.next_handle
        self.next_handle += 1
        self.objects[h] = self._class(cls)(*args)
        return h

    def set(self, h: int, name: str, value) -> None:
        setattr(self.objects[h], name, value)

    def call(self, h: int, method: str, *args):
        return getattr(self.objects[h], method)(*args)

    # -------------------------------------------------------------------------------------------
    def _import(self, modname: str):
        if modname in self.modules:
            return self.modules[modname]
        if modname in self.import_errors:
            raise CallFailed(self.import_errors[modname])
        try:
            mod = importlib.import_module(f"{self.package}.{modname}")
        except BaseException as exc:  # SyntaxError, SystemExit, KeyboardInterrupt, ...
            info = describe_exception(exc, self.package_dir)
            info["import_error"] = modname
            info["not_attempted"] = False
            self.import_errors[modname] = info
            raise CallFailed(info) from None
        self.modules[modname] = mod
        return mod

    def _class(self, name: str):
        if name in self.classes:
            return self.classes[name]
        if name not in self.student_modules:
            raise CallFailed({"type": "GraderError", "message": f"unknown class {name}", "where": ""})
        mod = self._import(self.student_modules[name])
        cls = getattr(mod, name, None)
        if not isinstance(cls, type):
            raise CallFailed({"type": "AttributeError", "message": f"{self.student_modules[name]}.py does not define a class {name}",
                              "where": "", "missing": True})
        return cls

    def handle(self, head: dict, arrays: list[np.ndarray]) -> tuple[dict, list]:
        """One request: ``new``, ``set``, ``call``, ``import``, ``drop`` or a training op."""
        op = head.get("op")
        try:
            if op in training.OPS:
                return self.trainer.handle(op, head)
            fn = self._OPS.get(op) if isinstance(op, str) else None
            if fn is not None:
                return fn(self, head, arrays)
        except CallFailed as exc:
            return {"ok": False, "error": exc.info}, []
        except ProtocolError as exc:
            return {"ok": False, "error": {"type": "ProtocolError", "message": str(exc), "where": ""}}, []
        return {"ok": False, "error": {"type": "GraderError", "message": f"unknown op {op!r}", "where": ""}}, []

    def _failed(self, exc: BaseException) -> CallFailed:
        return CallFailed(describe_exception(exc, self.package_dir))

    def _op_new(self, head: dict, arrays: list) -> tuple[dict, list]:
        args = decode_value(head["args"], arrays)
        try:
            h = self.new(head["cls"], *args)
        except CallFailed:
            raise
        except BaseException as exc:
            raise self._failed(exc) from None
        return {"ok": True, "h": h}, []

    def _op_set(self, head: dict, arrays: list) -> tuple[dict, list]:
        value = decode_value(head["value"], arrays)
        if isinstance(value, NumpyScalar):
            value = value.array
        try:
            self.set(head["h"], head["name"], value)
        except BaseException as exc:
            raise self._failed(exc) from None
        return {"ok": True}, []

    def _op_call(self, head: dict, arrays: list) -> tuple[dict, list]:
        args = decode_value(head["args"], arrays)
        for i, flag in enumerate(head.get("readonly") or []):
            if flag and type(args[i]) is np.ndarray:
                # A view of immutable bytes: the WRITEABLE flag cannot be turned back on.
                args[i] = _frombuffer(args[i].tobytes(), dtype=args[i].dtype).reshape(args[i].shape)
        # The bytes themselves (ndarray.tobytes and bytes equality cannot be monkeypatched).
        before = [a.tobytes() if type(a) is np.ndarray else None for a in args] if head.get("echo") else None
        try:
            v = self.call(head["h"], head["method"], *args)
        except BaseException as exc:
            raise self._failed(exc) from None
        out: list = []
        reply = {"ok": True, "value": encode_value(v, out)}
        if before is not None:
            reply["modified"] = [b is not None and a.tobytes() != b for a, b in zip(args, before)]
        return reply, out

    def _op_import(self, head: dict, arrays: list) -> tuple[dict, list]:
        if head.get("module") in self.student_modules.values():
            self._import(head["module"])
        return {"ok": True}, []

    def _op_drop(self, head: dict, arrays: list) -> tuple[dict, list]:
        self.objects.clear()
        return {"ok": True}, []

    _OPS = {"new": _op_new, "set": _op_set, "call": _op_call, "import": _op_import, "drop": _op_drop}


class _LocalAPI:
    """The object API of :class:`Net` over a dispatcher, with exceptions turned into CallFailed."""

    def __init__(self, d: Dispatcher) -> None:
        self.d = d

    def new(self, cls, *args):
        try:
            return self.d.new(cls, *args)
        except CallFailed:
            raise
        except BaseException as exc:
            raise CallFailed(describe_exception(exc, self.d.package_dir)) from None

    def set(self, h, name, value):
        try:
            self.d.set(h, name, value)
        except BaseException as exc:
            raise CallFailed(describe_exception(exc, self.d.package_dir)) from None

    def call(self, h, method, *args):
        try:
            v = self.d.call(h, method, *args)
        except BaseException as exc:
            raise CallFailed(describe_exception(exc, self.d.package_dir)) from None
        problem = dict_reply_problem(method, v)
        if problem:
            raise CallFailed({"type": "TypeError", "message": problem, "where": ""})
        # The loop sees exactly what the parent would see after crossing the pipe.
        arrays: list = []
        return decode_value(encode_value(v, arrays), arrays)


def install_package(package_dir: str, name: str = "assignment", student_modules: dict[str, str] | None = None,
                    provided: dict[str, list[str]] | None = None) -> None:
    """Make ``<name>.*`` importable from ``package_dir`` without running its ``__init__``.

    Inside a student file ``from assignment import Linear``, ``from assignment.layers import ReLU``,
    ``import assignment.module as m`` and the relative forms (``from .layers import Linear``) all
    work: the package exposes the provided helpers at once (``provided``: the provided files'
    module names and the names they give the package) and each student class on first use.
    """
    pkg = types.ModuleType(name)
    pkg.__path__ = [package_dir]
    pkg.__file__ = os.path.join(package_dir, "__init__.py")
    pkg.__package__ = name
    sys.modules[name] = pkg
    provided = provided or PROVIDED
    modules = student_modules or STUDENT_MODULES

    def lazy(attr: str):  # ``from assignment import Linear`` inside a student file
        if attr in modules:
            return getattr(importlib.import_module(f"{name}.{modules[attr]}"), attr)
        if attr in provided["names"]:  # imported on first use: a provided train.py imports the student's layers
            for modname in provided["modules"]:
                helpers = importlib.import_module(f"{name}.{modname}")
                if hasattr(helpers, attr):
                    setattr(pkg, attr, getattr(helpers, attr))
                    return getattr(helpers, attr)
        raise AttributeError(f"module {name!r} has no attribute {attr!r}")

    pkg.__getattr__ = lazy
    if name == "assignment":
        sys.path.append(package_dir)  # ``from module import Module`` also works


def _serve(cfg: dict, req, resp) -> None:
    import isolation
    import streams

    layers = isolation.apply_all(cfg["isolation"])
    refused = isolation.refusal(layers, cfg["isolation"])
    if refused:
        write_message(resp, {"ok": True, "hello": True, "isolation": layers, "refused": refused})
        resp.flush()
        os._exit(0)
    blocked = cfg.get("blocked")
    sys.meta_path.insert(0, BlockedImport(blocked))
    sys.dont_write_bytecode = True
    streams.cap_output()  # a print never raises "File too large" inside the student's layer
    STUDENT_MODULES.update(cfg.get("student_modules") or {})  # the assignment's (the parent's grader/spec.py)
    PROVIDED.update(cfg.get("provided") or {})
    install_package(cfg["package_dir"])
    os.chdir(cfg["work_dir"])
    d = Dispatcher(package_dir=cfg["package_dir"], arena=shm.Arena(cfg["shm_fd"]) if cfg.get("shm_fd") is not None else None)
    write_message(resp, {"ok": True, "hello": True, "isolation": layers, "pid": os.getpid(),
                         "python": sys.version.split()[0], "numpy": np.__version__})
    while True:
        try:
            head, arrays = read_message(req, max_bytes=cfg.get("max_request_bytes", 512 << 20))
        except EOFError:
            break
        if head.get("op") == "exit":
            break
        reply, out = d.handle(head, arrays)
        write_message(resp, reply, out)
    resp.flush()
    for stream in (sys.stdout, sys.stderr):  # the student's prints are part of the feedback
        try:
            stream.flush()
        except BaseException:
            pass


def run(req_fd: int, resp_fd: int, shm_fd: int | None = None) -> None:
    """Serve the parent on these descriptors (``shm_fd``: the arena, where it is under another
    number than in the parent, as in a child of the fork server ``zygote.py``)."""
    req = os.fdopen(req_fd, "rb", buffering=1 << 16)
    resp = os.fdopen(resp_fd, "wb", buffering=1 << 16)
    cfg, _ = read_message(req, max_bytes=64 << 20)  # the configuration comes first, through the pipe
    if shm_fd is not None and cfg.get("shm_fd") is not None:
        cfg["shm_fd"] = shm_fd
    _serve(cfg, req, resp)


def main() -> None:
    import json

    fds = json.loads(sys.argv[1])
    run(fds["req_fd"], fds["resp_fd"])
    os._exit(0)


if __name__ == "__main__":
    main()
