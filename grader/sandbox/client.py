"""The two implementations of the oracle interface the checks call.

``LocalImpl`` runs classes in this process (the reference, and the project's own known-buggy
variants in tests). ``SandboxImpl`` runs a submission in a separate, isolated worker process and is
the only way student code is ever executed. Both go through :class:`worker.Dispatcher` and the same
value encoding, so an honest submission gets the same answers, hence the same score, either way.
"""
from __future__ import annotations

import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .protocol import ProtocolError, decode_value, encode_value, read_message, write_message
from .shm import Arena
from .worker import STUDENT_MODULES, Dispatcher

RUNTIME_FILES = ("worker.py", "protocol.py", "isolation.py", "shm.py", "training.py")
HERE = Path(__file__).resolve().parent


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


def _classify(info: dict) -> dict:
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
    seconds: float = 0.0


@dataclass(frozen=True)
class Handle:
    generation: int
    id: int
    cls: str


class _Base:
    """Shared request logic; subclasses provide :meth:`_request`."""

    label = "implementation"

    def new(self, cls: str, *args) -> Handle:
        head, _ = self._call_op({"op": "new", "cls": cls}, list(args), cls=cls, method="__init__")
        if type(head.get("h")) is not int:
            raise self._malformed("no object handle in the reply")
        return Handle(self._generation, head["h"], cls)

    def set(self, h: Handle, name: str, value) -> None:
        self._check_handle(h)
        arrays: list = []
        tree = encode_value(value, arrays)
        self._op({"op": "set", "h": h.id, "name": name, "value": tree}, arrays, cls=h.cls, method=f"set {name}")

    def attr(self, h: Handle, name: str):
        self._check_handle(h)
        head, arrays = self._op({"op": "attr", "h": h.id, "name": name}, [], cls=h.cls, method=name)
        return self._value(head, arrays)

    def call(self, h: Handle, method: str, *args, readonly: tuple[bool, ...] = (), echo: bool = False) -> Any:
        return self.call_ex(h, method, *args, readonly=readonly, echo=echo).value

    def call_ex(self, h: Handle, method: str, *args, readonly: tuple[bool, ...] = (), echo: bool = False) -> Reply:
        self._check_handle(h)
        head, arrays = self._call_op({"op": "call", "h": h.id, "method": method,
                                      "readonly": list(readonly), "echo": echo}, list(args),
                                     cls=h.cls, method=method)
        modified = head.get("modified")
        if modified is not None and not (type(modified) is list and all(type(m) is bool for m in modified)):
            raise self._malformed("a malformed 'modified' list")
        seconds = head.get("seconds", 0.0)
        return Reply(self._value(head, arrays), modified, float(seconds) if type(seconds) in (int, float) else 0.0)

    # A reply comes from the student's process, which can write anything to the pipe: every field
    # is checked, and a bad one is the submission's protocol error, never an exception in a check.
    def _value(self, head: dict, arrays: list):
        try:
            return decode_value(head["value"], arrays)
        except (ProtocolError, KeyError, TypeError, ValueError, RecursionError) as exc:
            raise self._malformed(f"no valid value in the reply: {type(exc).__name__}") from None

    def _malformed(self, why: str) -> "StudentError":
        return StudentError({"kind": "protocol", "type": "ProtocolError", "where": "",
                             "message": f"the worker sent a malformed answer ({why}); "
                                        "did the code write to the grader's pipe?"})

    def _call_op(self, head: dict, args: list, *, cls: str, method: str):
        arrays: list = []
        head = dict(head, args=encode_value(args, arrays))
        return self._op(head, arrays, cls=cls, method=method)

    def _op(self, head: dict, arrays: list, *, cls: str, method: str, timeout: float | None = None):
        reply, out = self._request(head, arrays, cls=cls, method=method, timeout=timeout)
        if not reply.get("ok"):
            raise StudentError(_classify(reply.get("error") or {}))
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
        self._request({"op": "drop"}, [], cls="", method="drop", timeout=10.0)


class LocalImpl(_Base):
    """Classes executed in this process (trusted code only: the reference or test fixtures)."""

    def __init__(self, classes: dict[str, type] | None = None, label: str = "in-process", *,
                 dispatcher: Dispatcher | None = None) -> None:
        self.label = label
        self._d = dispatcher or Dispatcher(classes=classes)
        self._generation = 0
        self.isolation = {"in-process": "no isolation: trusted code only"}

    @classmethod
    def from_modules(cls, *modules, label: str = "in-process") -> "LocalImpl":
        classes = {}
        for m in modules:
            for name in STUDENT_MODULES:
                if isinstance(getattr(m, name, None), type):
                    classes[name] = getattr(m, name)
        return cls(classes, label=label)

    @classmethod
    def from_package_dir(cls, package_dir: Path, label: str = "in-process (unsandboxed)") -> "LocalImpl":
        """A prepared submission imported into this process: trusted code only (``--no-sandbox``)."""
        from .worker import install_package

        name = f"_bpg_submission_{uuid.uuid4().hex}"
        install_package(str(package_dir), name)
        return cls(label=label, dispatcher=Dispatcher(package_dir=str(package_dir), package=name))

    failed_methods: dict = {}  # in-process calls cannot hang the grader into a restart

    def training_arena(self) -> Arena:
        return self._d.arena

    def _request(self, head, arrays, *, cls, method, timeout=None):
        # Round-trip through the wire encoding, so values look exactly as they do from a worker.
        arrays = [np.array(a, copy=True) for a in arrays]
        reply, out = self._d.handle(head, arrays)
        return reply, [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in out]

    def close(self) -> None:
        self._d.objects.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --- the sandbox ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SandboxConfig:
    """Limits of one worker. Times in seconds, sizes in bytes."""

    call_timeout: float = 5.0
    start_timeout: float = 20.0
    cpu_seconds: int = 300
    address_space: int = 3 << 30
    file_size: int = 16 << 20
    open_files: int = 64
    processes: int = 64
    max_restarts: int = 6
    max_reply_bytes: int = 128 << 20
    output_cap: int = 16 << 10
    #: Total seconds a submission's answered calls may take (training runs aside, they have their own
    #: budget); None: 6 x call_timeout. Without it, a call that always answers just under call_timeout
    #: keeps one submission busy for hours (some 450 calls).
    answer_budget: float | None = None
    work_dir_bytes: int = 64 << 20  #: size of the private tmpfs over the writable folder (root only)
    uid_base: int = 850_000
    landlock: bool = True
    seccomp: bool = True
    network: bool = True


def _proc_uids(*, live: bool = False) -> dict[int, int]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/status") as fh:
                    for line in fh:
                        if live and line.startswith("State:") and line.split()[1] in ("Z", "X"):
                            break  # a zombie: already dead, waiting for init to reap it
                        if line.startswith("Uid:"):
                            out[int(entry)] = int(line.split()[1])
                            break
            except OSError:
                pass
    return out


def processes_of_uid(uid: int) -> list[int]:
    """Live processes of ``uid`` (killed ones linger as zombies until reaped; they cannot be killed)."""
    return [pid for pid, u in _proc_uids(live=True).items() if u == uid]


def kill_uid(uid: int) -> int:
    """Kill every process running as ``uid`` (a sandbox uid nothing else uses); returns how many."""
    killed = 0
    for _ in range(50):
        pids = processes_of_uid(uid)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
        time.sleep(0.01)
    return killed


def _site_dirs() -> set[str]:
    import site

    dirs = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    try:
        dirs.update(site.getsitepackages())
        dirs.add(site.getusersitepackages())
    except AttributeError:  # a virtualenv's old site.py
        pass
    return {os.path.realpath(d) for d in dirs if d}


def _read_paths() -> list[str]:
    """What the worker may read: the Python runtime and numpy, nothing of the project.

    Not site-packages: it holds every other installed package (SciPy, SymPy, PyTorch: the blocked
    imports would be one ``sys.meta_path`` edit away) and, when the grader is installed normally
    rather than in editable mode, ``solutions/`` itself. A landlock rule on a folder covers all of
    it, so a folder that contains site-packages (the standard library's, in most layouts; a lib/
    holding libpython) is opened up entry by entry instead, and a shared library found under one
    is allowed as a single file.
    """
    hidden = _site_dirs()
    numpy_dir = str(Path(np.__file__).resolve().parent)

    def related(p: str) -> bool:  # p contains, is, or lies inside a site-packages folder
        p = os.path.realpath(p)
        return any(h == p or h.startswith(p.rstrip("/") + "/") or p.startswith(h + "/") for h in hidden)

    def add_dir(paths: set, d: str) -> None:
        if not related(d):
            paths.add(d)
            return
        real = os.path.realpath(d)
        if any(real == h or real.startswith(h + "/") for h in hidden):
            return  # inside site-packages: only numpy (below) and single libraries
        try:
            entries = os.listdir(d)
        except OSError:
            return
        for e in entries:
            sub = os.path.join(d, e)
            if os.path.isdir(sub) and not os.path.islink(sub):
                add_dir(paths, sub)
            else:
                paths.add(sub)

    paths: set[str] = {numpy_dir}
    for d in (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"],
              os.path.join(sysconfig.get_paths()["platstdlib"], "lib-dynload")):
        add_dir(paths, d)
    try:  # shared libraries numpy brought in (OpenBLAS, libgfortran, ...)
        with open("/proc/self/maps") as fh:
            for line in fh:
                p = line.split()[-1]
                if p.endswith(".so") or ".so." in p:
                    d = os.path.dirname(p)
                    if not related(d) or d.startswith(numpy_dir) or os.path.basename(d) == "numpy.libs":
                        paths.add(d)
                    else:
                        paths.add(p)
    except OSError:
        pass
    paths.update({"/dev/null", "/dev/urandom", "/etc/ld.so.cache"})
    paths.add(str(Path(sys.executable).resolve()))
    return sorted(paths)


class _Channel:
    """Pipe ends with deadlines: a stuck or hostile worker can never block the parent."""

    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd, self.wfd = rfd, wfd
        os.set_blocking(wfd, False)
        self.deadline = None

    def _wait_readable(self) -> None:
        left = None if self.deadline is None else self.deadline - time.monotonic()
        if left is not None and left <= 0:
            raise TimeoutError
        r, _, _ = select.select([self.rfd], [], [], left)
        if not r:
            raise TimeoutError

    def read(self, n: int) -> bytes:
        chunks = []
        while n > 0:
            self._wait_readable()
            b = os.read(self.rfd, min(n, 1 << 20))
            if not b:
                break
            chunks.append(b)
            n -= len(b)
        return b"".join(chunks)

    def readinto(self, view: memoryview) -> int:
        self._wait_readable()
        return os.readv(self.rfd, [view[: 1 << 22]])

    def write(self, data) -> None:
        view = memoryview(data).cast("B")
        while view:
            left = None if self.deadline is None else self.deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError
            _, w, _ = select.select([], [self.wfd], [], left)
            if not w:
                raise TimeoutError
            try:
                k = os.write(self.wfd, view[: 1 << 20])
            except BlockingIOError:
                continue
            view = view[k:]

    def flush(self) -> None:
        pass

    def close(self) -> None:
        for fd in (self.rfd, self.wfd):
            try:
                os.close(fd)
            except OSError:
                pass


class SandboxImpl(_Base):
    """A submission's two files, run in an isolated worker process (restarted after failures)."""

    def __init__(self, package_dir: Path, config: SandboxConfig = SandboxConfig(), label: str = "sandbox") -> None:
        self.label = label
        self.config = config
        self.package_dir = Path(package_dir)
        self.root = self.package_dir.parent
        self._generation = 0
        self._proc: subprocess.Popen | None = None
        self._chan: _Channel | None = None
        self.restarts = -1
        self.isolation: dict[str, str] = {}
        self.failed_methods: dict[tuple[str, str], dict] = {}
        self.output = bytearray()
        self.answer_seconds = 0.0  #: time spent on answered calls (see SandboxConfig.answer_budget)
        self.events: list[str] = []
        self._uid: int | None = None
        self._outdir = Path(tempfile.mkdtemp(prefix="bpg-out-"))
        self._prepare_root()
        self._arena = Arena.create()  # inherited by every (re)started worker: see shm.py

    def _prepare_root(self) -> None:
        rt = self.root / "_runtime"
        rt.mkdir(exist_ok=True)
        for name in RUNTIME_FILES:
            shutil.copyfile(HERE / name, rt / name)
        (self.root / "work").mkdir(exist_ok=True)
        if os.geteuid() == 0:
            self._uid = self._free_uid()
            for dirpath, dirnames, filenames in os.walk(self.root):
                os.chown(dirpath, self._uid, self._uid)
                for f in filenames:
                    os.chown(os.path.join(dirpath, f), self._uid, self._uid)
            os.chmod(self.root, 0o700)

    def _free_uid(self) -> int:
        used = set(_proc_uids().values())
        rnd = random.SystemRandom()
        for _ in range(100):
            uid = self.config.uid_base + rnd.randrange(100_000)
            if uid not in used:
                return uid
        raise RuntimeError("no free sandbox uid")

    # lifecycle -------------------------------------------------------------------------------------
    def _start(self) -> None:
        self.restarts += 1
        if self.restarts > self.config.max_restarts:
            raise StudentError({"kind": "skipped", "type": "TooManyFailures", "where": "",
                                "message": f"the worker crashed or timed out {self.config.max_restarts} times; "
                                           "remaining checks were not run"})
        self._generation += 1
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        c = self.config
        iso = {
            "rlimits": {"cpu": c.cpu_seconds, "as": c.address_space, "fsize": c.file_size,
                        "nofile": c.open_files, "nproc": c.processes, "core": 0},
            "read_paths": _read_paths() + [str(self.package_dir), str(self.root / "_runtime")],
            "write_paths": [str(self.root / "work")],
            "work_dir": str(self.root / "work"), "work_dir_bytes": c.work_dir_bytes,
            "uid": self._uid, "landlock": c.landlock, "seccomp": c.seccomp, "network": c.network,
        }
        cfg = {"req_fd": req_r, "resp_fd": resp_w, "isolation": iso, "package_dir": str(self.package_dir),
               "work_dir": str(self.root / "work"), "shm_fd": self._arena.fd}
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": str(self.root / "work"),
               "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "NUMEXPR_NUM_THREADS": "1", "VECLIB_MAXIMUM_THREADS": "1", "PYTHONHASHSEED": "0",
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8"}
        out = open(self._outdir / f"output-{self._generation}.txt", "wb")
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-B", str(self.root / "_runtime" / "worker.py"), json.dumps(cfg)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, pass_fds=(req_r, resp_w, self._arena.fd), env=env,
                cwd=str(self.root / "work"), start_new_session=True, close_fds=True)
        finally:
            out.close()
            os.close(req_r)
            os.close(resp_w)
        self._chan = _Channel(resp_r, req_w)
        try:
            hello, _ = self._receive(self.config.start_timeout)
        except StudentError as exc:
            raise StudentError(dict(exc.info, message="the worker did not start: " + exc.info.get("message", "")))
        if not hello.get("hello"):
            self._kill()
            raise StudentError({"kind": "protocol", "type": "ProtocolError", "where": "",
                                "message": "the worker did not greet the grader"})
        self.isolation = {k: str(v)[:200] for k, v in (hello.get("isolation") or {}).items()}
        if self._uid is None:
            self.isolation["process cleanup"] = "process group only (not root: no private uid)"
        else:
            self.isolation["process cleanup"] = "every process of the private uid is killed at the end"

    def _alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _kill(self) -> None:
        if self._proc is not None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                self._proc.kill()
            except OSError:
                pass
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self._uid is not None:
            kill_uid(self._uid)
        if self._chan is not None:
            self._chan.close()
            self._chan = None
        self._collect_output()
        self._proc = None

    def _collect_output(self) -> None:
        path = self._outdir / f"output-{self._generation}.txt"
        try:
            with open(path, "rb") as fh:
                room = self.config.output_cap - len(self.output)
                if room > 0:
                    self.output += fh.read(room)
            path.unlink()
        except OSError:
            pass

    def _receive(self, timeout: float):
        assert self._chan is not None
        self._chan.deadline = time.monotonic() + timeout
        try:
            return read_message(self._chan, max_bytes=self.config.max_reply_bytes)
        except TimeoutError:
            self._kill()
            raise StudentError({"kind": "timeout", "type": "Timeout", "where": "",
                                "message": f"no answer within {timeout:g} s (an endless loop, or far too slow)"})
        except EOFError:
            status = self._proc.wait(timeout=5) if self._proc else None
            self._kill()
            raise StudentError({"kind": "crash", "type": "WorkerDied", "where": "",
                                "message": _describe_exit(status)})
        except Exception as exc:  # ProtocolError, ValueError, RecursionError...: out of step, so killed
            self._kill()
            raise StudentError({"kind": "protocol", "type": "ProtocolError", "where": "",
                                "message": f"the worker sent a malformed answer ({str(exc)[:200]}); "
                                           "did the code write to the grader's pipe?"})

    def _request(self, head, arrays, *, cls, method, timeout=None):
        key = (cls, method)
        if key in self.failed_methods:
            info = dict(self.failed_methods[key])
            info["message"] = "not run: this call already " + ("timed out" if info["kind"] == "timeout" else "crashed the worker") + " in an earlier check"
            info["kind"] = "skipped"
            raise StudentError(info)
        budgeted = head.get("op") not in ("data", "net", "grad")  # training has its own budget
        budget = self.config.answer_budget
        budget = 6 * self.config.call_timeout if budget is None else budget
        if budgeted and self.answer_seconds >= budget:
            raise StudentError({"kind": "timeout", "type": "TimeBudget", "where": "",
                                "message": f"not run: the submission's calls used up their total time budget "
                                           f"of {budget:g} s (each answered, but slowly)"})
        if not self._alive():
            self._kill()
            self._start()
        timeout = self.config.call_timeout if timeout is None else timeout
        t0 = time.monotonic()
        assert self._chan is not None
        self._chan.deadline = time.monotonic() + timeout
        try:
            write_message(self._chan, head, arrays)
        except (TimeoutError, BrokenPipeError, OSError):
            self._kill()
            info = {"kind": "crash", "type": "WorkerDied", "where": "", "message": "the worker stopped reading requests"}
            self.failed_methods[key] = info
            raise StudentError(info)
        try:
            reply, out = self._receive(timeout)
        except StudentError as exc:
            if exc.kind in ("timeout", "crash", "protocol") and method not in ("data",):
                self.failed_methods[key] = exc.info
            raise
        if budgeted:
            self.answer_seconds += time.monotonic() - t0
        return _checked_reply(reply), out

    def _malformed(self, why: str) -> StudentError:
        self._kill()  # whatever else it wrote may still be in the pipe
        return super()._malformed(why)

    def training_arena(self) -> Arena:
        return self._arena

    def close(self) -> None:
        if self._alive() and self._chan is not None:
            try:
                self._chan.deadline = time.monotonic() + 1.0
                write_message(self._chan, {"op": "exit"})
                self._proc.wait(timeout=1.0)
            except (OSError, TimeoutError, subprocess.TimeoutExpired):
                pass
        self._kill()
        self._arena.close()
        shutil.rmtree(self._outdir, ignore_errors=True)

    def student_output(self) -> str:
        return self.output.decode("utf-8", "replace")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _checked_reply(reply: dict) -> dict:
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


def _describe_exit(status: int | None) -> str:
    if status is None:
        return "the worker process ended without answering"
    if status < 0:
        sig = -status
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        why = {"SIGKILL": " (killed: memory or CPU-time limit, or the grader)", "SIGXCPU": " (CPU-time limit)",
               "SIGSEGV": " (segmentation fault)", "SIGXFSZ": " (file-size limit: too much output?)",
               "SIGSYS": " (a forbidden system call)"}.get(name, "")
        return f"the worker process was killed by {name}{why}"
    return f"the worker process exited with status {status} (sys.exit or os._exit in the submission?)"
