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
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .clock import LoadClock
from .protocol import ProtocolError, decode_value, encode_value, read_message, write_message
from .policy import ReadPolicy, read_policy
from .shm import Arena
from .worker import BLOCKED_IMPORTS, STUDENT_MODULES, Dispatcher, dict_reply_problem

RUNTIME_FILES = ("worker.py", "protocol.py", "isolation.py", "view.py", "shm.py", "training.py")
HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent.parent
#: Layers that can be switched off for a run, by configuration or by GRADER_SANDBOX_OFF="a,b".
SWITCHABLE = ("landlock", "seccomp", "network", "view", "uid")


class SandboxRefused(RuntimeError):
    """The machine does not offer enough isolation to run untrusted code (and no opt-in was given)."""


def _runtime_digest() -> dict[str, str]:
    import hashlib

    return {n: hashlib.sha256((HERE / n).read_bytes()).hexdigest() for n in RUNTIME_FILES}


#: The worker's code as this process loaded it: checked again before every worker start.
RUNTIME_DIGEST = _runtime_digest()


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
        value = self._value(head, arrays)
        problem = dict_reply_problem(method, value)
        if problem:
            raise StudentError({"kind": "exception", "type": "TypeError", "message": problem, "where": ""})
        return Reply(value, modified, float(seconds) if type(seconds) in (int, float) else 0.0)

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
    #: Cap on the arrays of one reply to a single call (new/set/attr/call): the largest legitimate
    #: one, gradients of the MNIST network, is 0.3 MB. Only training reports may be larger. Checked
    #: before the parent allocates anything (issue 21: 130 MB replies took a grading process down).
    max_call_reply_bytes: int = 16 << 20
    output_cap: int = 16 << 10
    #: Total seconds a submission's answered calls may take (training runs aside, they have their own
    #: budget); None: 6 x call_timeout. Without it, a call that always answers just under call_timeout
    #: keeps one submission busy for hours (some 450 calls).
    answer_budget: float | None = None
    work_dir_bytes: int = 64 << 20  #: size of the private tmpfs over the writable folder (root only)
    uid_base: int = 850_000
    #: seconds to import one student file (its imports included: scipy, matplotlib, ...); not part of
    #: the call timeout, so a slow import never costs a correct submission its first check
    import_timeout: float = 20.0
    landlock: bool = True
    seccomp: bool = True
    network: bool = True
    view: bool = True        #: the file-system view (a private read-only root, as root)
    private_uid: bool = True  #: as root, drop to a private uid
    #: grade even when the machine lacks the layers that hide the grader (no view and no landlock) or
    #: when student code would keep root; the instructor's explicit choice (also GRADER_SANDBOX_ALLOW_WEAK=1)
    allow_weak: bool = False
    #: class name -> student module, sent to the worker (the assignment spec's, grader/spec.py);
    #: empty: the current assignment's
    student_modules: tuple[tuple[str, str], ...] = ()
    #: the import policy: top-level module name -> library name shown in the message (None: default)
    blocked_imports: tuple[tuple[str, str], ...] | None = None

    def effective(self) -> dict[str, bool]:
        """The layer switches after GRADER_SANDBOX_OFF / GRADER_SANDBOX_ALLOW_WEAK from the environment."""
        off = {x.strip() for x in os.environ.get("GRADER_SANDBOX_OFF", "").split(",") if x.strip()}
        unknown = off - set(SWITCHABLE)
        if unknown:
            raise SandboxRefused(f"GRADER_SANDBOX_OFF names unknown layers {sorted(unknown)}; known: {', '.join(SWITCHABLE)}")
        return {"landlock": self.landlock and "landlock" not in off, "seccomp": self.seccomp and "seccomp" not in off,
                "network": self.network and "network" not in off, "view": self.view and "view" not in off,
                "private_uid": self.private_uid and "uid" not in off,
                "allow_weak": self.allow_weak or os.environ.get("GRADER_SANDBOX_ALLOW_WEAK", "") == "1"}

    def blocked(self) -> dict[str, str]:
        return dict(BLOCKED_IMPORTS if self.blocked_imports is None else self.blocked_imports)


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


_landlock_paths = lru_cache(maxsize=8)(ReadPolicy.landlock_paths)
_listed_dirs = lru_cache(maxsize=8)(ReadPolicy.listed_dirs)


def scrub_paths(text: str, package_dir: Path | None = None) -> str:
    """``text`` without the grading machine's paths: the submission's own files become relative
    (``layers.py``), the scratch folder, the grader, the Python installation and the home folder
    become placeholders. Applied to everything a worker sends that is shown to a student."""
    if not text or "/" not in text:
        return text
    import site

    pairs = []
    if package_dir is not None:
        pairs += [(str(package_dir) + "/", ""), (str(package_dir), "assignment"),
                  (str(package_dir.parent), "<scratch>")]
    for d in list(getattr(site, "getsitepackages", lambda: [])()) + [sysconfig.get_paths()["purelib"],
                                                                      sysconfig.get_paths()["stdlib"]]:
        pairs += [(d + "/", ""), (d, "<python>")]  # a library's file by its import path: scipy/special/...
    pairs += [(str(HERE.parent), "<grader>"), (str(PROJECT), "<grader>"), (sys.prefix, "<python>"),
              (sys.base_prefix, "<python>"), (os.path.realpath(sys.prefix), "<python>"),
              (os.path.expanduser("~"), "~"), (tempfile.gettempdir(), "<tmp>")]
    for old, new in sorted({p for p in pairs if p[0] and p[0] != "/"}, key=lambda p: -len(p[0])):
        text = text.replace(old, new)
    return text


class _Channel:
    """Pipe ends with deadlines: a stuck or hostile worker can never block the parent."""

    def __init__(self, rfd: int, wfd: int, clock=time.monotonic) -> None:
        self.rfd, self.wfd = rfd, wfd
        os.set_blocking(wfd, False)
        self.deadline = None
        self.clock = clock  #: deadlines are in this clock's seconds (see grader/sandbox/clock.py)

    def _wait(self, r: list, w: list) -> None:
        # The clock runs no faster than wall time: waiting what is left of it in wall seconds never
        # overshoots, and when it ran slower (CPU waits are not charged) the loop waits on.
        while True:
            left = None if self.deadline is None else self.deadline - self.clock()
            if left is not None and left <= 0:
                raise TimeoutError
            rr, ww, _ = select.select(r, w, [], left)
            if rr or ww:
                return

    def _wait_readable(self) -> None:
        self._wait([self.rfd], [])

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
            self._wait([], [self.wfd])
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


def _spec_student_modules() -> dict[str, str]:
    from ..spec import current_spec

    return current_spec().student_modules


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
        self._imported: set[str] = set()
        self.student_modules = dict(config.student_modules) or _spec_student_modules()
        #: Every deadline of this submission is in the seconds of this clock: wall time minus the time
        #: the grader and the worker waited for a CPU, so that load does not change verdicts.
        self.clock = LoadClock()
        #: self.clock() after which nothing more is asked of this submission (its time budget, set
        #: by the pipeline with set_budget); every timeout below is cut to what is left of it.
        self.deadline: float | None = None
        self.budget_exhausted = False

    def set_budget(self, seconds: float) -> None:
        self.deadline = self.clock() + seconds

    def _left(self, timeout: float) -> float:
        """``timeout`` cut to the submission's remaining budget; raises once the budget is spent."""
        if self.deadline is None:
            return timeout
        left = self.deadline - self.clock()
        if left <= 0:
            self.budget_exhausted = True
            raise StudentError({"kind": "timeout", "type": "TimeBudget", "where": "",
                                "message": "not run: the submission used up its total time budget"})
        return min(timeout, left)

    def _prepare_root(self) -> None:
        """The scratch folder: the submission's package and ``work/`` (the only writable place).

        The worker's own code is *not* copied here: it runs from the grader's install (checked
        against the digest taken at import before every start), so nothing the sandbox may write is
        ever executed by a later worker before isolation. As root, only ``work/`` and the package
        belong to the private uid; the scratch folder itself stays root's (mode 0711), so the worker
        cannot add files next to them.
        """
        (self.root / "work").mkdir(exist_ok=True)
        (self.root / "_view").mkdir(exist_ok=True)
        if os.geteuid() == 0:
            self._uid = self._free_uid()
            for top in (self.package_dir, self.root / "work"):
                for dirpath, dirnames, filenames in os.walk(top):
                    os.chown(dirpath, self._uid, self._uid)
                    for f in filenames:
                        os.chown(os.path.join(dirpath, f), self._uid, self._uid)
                os.chmod(top, 0o700)
            os.chown(self.root, 0, 0)
            os.chmod(self.root, 0o711)
            os.chmod(self.root / "_view", 0o700)

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
        if _runtime_digest() != RUNTIME_DIGEST:
            raise SandboxRefused("the sandbox's own code (grader/sandbox/" + ", ".join(RUNTIME_FILES) + ") changed on "
                                 "disk since the grader started; refusing to start a worker from it")
        cfg = self._worker_config()
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        work = str(self.root / "work")
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": work, "TMPDIR": work,
               "MPLBACKEND": "Agg", "MPLCONFIGDIR": work + "/.config/matplotlib", "XDG_CACHE_HOME": work + "/.cache",
               "XDG_CONFIG_HOME": work + "/.config", "IPYTHONDIR": work + "/.ipython",
               "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "NUMEXPR_NUM_THREADS": "1", "VECLIB_MAXIMUM_THREADS": "1", "PYTHONHASHSEED": "0",
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8"}
        out = open(self._outdir / f"output-{self._generation}.txt", "wb")
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-B", str(HERE / "worker.py"), json.dumps({"req_fd": req_r, "resp_fd": resp_w})],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, pass_fds=(req_r, resp_w, self._arena.fd), env=env,
                cwd=work, start_new_session=True, close_fds=True)
        finally:
            out.close()
            os.close(req_r)
            os.close(resp_w)
        self._chan = _Channel(resp_r, req_w, self.clock)
        self.clock.watch(self._proc.pid)
        self._imported = set()
        try:
            self._chan.deadline = self.clock() + self.config.start_timeout
            write_message(self._chan, cfg)
        except (TimeoutError, OSError):
            pass  # the worker died at once: reported by the greeting below
        try:
            hello, _ = self._receive(self._left(self.config.start_timeout), self.config.max_call_reply_bytes)
        except StudentError as exc:
            raise StudentError(dict(exc.info, message="the worker did not start: " + exc.info.get("message", "")))
        if not hello.get("hello"):
            self._kill()
            raise StudentError({"kind": "protocol", "type": "ProtocolError", "where": "",
                                "message": "the worker did not greet the grader"})
        self.isolation = {k: str(v)[:400] for k, v in (hello.get("isolation") or {}).items()}
        if hello.get("refused"):
            self._kill()
            raise SandboxRefused(f"the sandbox refused to run student code: {hello['refused']}")
        if self._uid is None:
            self.isolation["process cleanup"] = "process group only (not root: no private uid)"
        else:
            self.isolation["process cleanup"] = "every process of the private uid is killed at the end"

    def _worker_config(self) -> dict:
        c = self.config
        on = c.effective()
        blocked = c.blocked()
        policy = read_policy(tuple(sorted(blocked)))
        work = str(self.root / "work")
        iso = {
            "rlimits": {"cpu": c.cpu_seconds, "as": c.address_space, "fsize": c.file_size,
                        "nofile": c.open_files, "nproc": c.processes, "core": 0},
            "read_paths": _landlock_paths(policy) + [str(self.package_dir), "/dev/null", "/dev/zero", "/dev/urandom"],
            "list_paths": _listed_dirs(policy), "write_paths": [work], "work_dir": work, "work_dir_bytes": c.work_dir_bytes,
            "policy": {"roots": list(policy.roots), "hidden": list(policy.hidden), "paths": _landlock_paths(policy),
                       "links": [list(x) for x in policy.links]},
            "view_root": str(self.root / "_view"), "package_dir": str(self.package_dir),
            "runtime_private": policy.private, "uid": self._uid, **on,
        }
        return {"isolation": iso, "package_dir": str(self.package_dir), "work_dir": work, "blocked": blocked,
                "shm_fd": self._arena.fd, "student_modules": self.student_modules}

    def _alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _kill(self) -> None:
        if self._proc is not None:
            self.clock.unwatch(self._proc.pid)
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

    def _receive(self, timeout: float, max_bytes: int | None = None):
        assert self._chan is not None
        self._chan.deadline = self.clock() + timeout
        try:
            return read_message(self._chan, max_bytes=self.config.max_reply_bytes if max_bytes is None else max_bytes)
        except TimeoutError:
            self._kill()
            if self.deadline is not None and self.clock() >= self.deadline - 0.05:
                self.budget_exhausted = True
                raise StudentError({"kind": "timeout", "type": "TimeBudget", "where": "",
                                    "message": "stopped: the submission used up its total time budget "
                                               "(every call, the training data and training together)"})
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
        budgeted = head.get("op") not in ("data", "net", "grad", "import")  # training has its own budget
        budget = self.config.answer_budget
        budget = 6 * self.config.call_timeout if budget is None else budget
        if budgeted and self.answer_seconds >= budget:
            raise StudentError({"kind": "timeout", "type": "TimeBudget", "where": "",
                                "message": f"not run: the submission's calls used up their total time budget "
                                           f"of {budget:g} s (each answered, but slowly)"})
        if not self._alive():
            self._kill()
            self._start()
        module = self.student_modules.get(head.get("cls", "")) if head.get("op") == "new" else None
        if module and module not in self._imported:
            # the file is imported on its own deadline: a slow import (scipy, matplotlib) is not a slow call
            self._imported.add(module)
            self._request({"op": "import", "module": module}, [], cls=f"import {module}.py", method="import",
                          timeout=self.config.import_timeout)
        timeout = self._left(self.config.call_timeout if timeout is None else timeout)
        t0 = self.clock()
        assert self._chan is not None
        self._chan.deadline = self.clock() + timeout
        try:
            write_message(self._chan, head, arrays)
        except (TimeoutError, BrokenPipeError, OSError):
            self._kill()
            info = {"kind": "crash", "type": "WorkerDied", "where": "", "message": "the worker stopped reading requests"}
            if self.deadline is not None and self.clock() >= self.deadline - 0.05:
                self.budget_exhausted = True
                info = {"kind": "timeout", "type": "TimeBudget", "where": "",
                        "message": "stopped: the submission used up its total time budget"}
            self.failed_methods[key] = info
            raise StudentError(info)
        try:
            cap = self.config.max_reply_bytes if head.get("op") == "train" else self.config.max_call_reply_bytes
            reply, out = self._receive(timeout, cap)
        except StudentError as exc:
            if exc.kind in ("timeout", "crash", "protocol") and method not in ("data",):
                self.failed_methods[key] = exc.info
            raise
        if budgeted:
            self.answer_seconds += self.clock() - t0
        reply = _checked_reply(reply)
        if not reply.get("ok"):
            err = reply["error"]
            for k in ("message", "where"):
                if k in err:
                    err[k] = scrub_paths(err[k], self.package_dir)
        return reply, out

    def _malformed(self, why: str) -> StudentError:
        self._kill()  # whatever else it wrote may still be in the pipe
        return super()._malformed(why)

    def training_arena(self) -> Arena:
        return self._arena

    def close(self) -> None:
        if self._alive() and self._chan is not None:
            try:
                self._chan.deadline = self.clock() + 1.0
                write_message(self._chan, {"op": "exit"})
                self._proc.wait(timeout=1.0)
            except (OSError, TimeoutError, subprocess.TimeoutExpired):
                pass
        self._kill()
        self._arena.close()
        shutil.rmtree(self._outdir, ignore_errors=True)

    def student_output(self) -> str:
        return scrub_paths(self.output.decode("utf-8", "replace"), self.package_dir)

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


def preflight(config: SandboxConfig = SandboxConfig()) -> None:
    """Start one worker on an empty package and stop it: raises :class:`SandboxRefused` at once on a
    machine whose isolation the worker refuses (so ``grader grade`` stops with one clear message
    instead of writing a row of zeros per student)."""
    with tempfile.TemporaryDirectory(prefix="bpg-preflight-") as d:
        pkg = Path(d) / "assignment"
        pkg.mkdir()
        impl = SandboxImpl(pkg, config, label="preflight")
        try:
            impl._start()
        except StudentError:
            pass  # the worker did not start for another reason: each submission's checks report it
        finally:
            impl.close()
