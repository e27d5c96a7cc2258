"""The sandbox: a submission's classes run in a separate, isolated worker process.

:class:`SandboxImpl` is the only way student code is ever executed. It implements the oracle
interface of ``oracle.py`` over the worker's pipes (``pipe.py``): starts the worker from the
grader's own install (``worker.py``, which applies the layers of ``isolation.py`` and ``view.py``;
forked by this process's fork server, ``spawner.py`` and ``zygote.py``, else a new interpreter),
restarts it after a crash, cuts every call to its deadline and to the submission's time budget
(``clock.py``), and kills every process of the private uid at the end (``cleanup.py``). The limits
are a :class:`config.SandboxConfig`. The names other modules import from here are re-exported.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

from .cleanup import describe_exit, kill_uid, live_uids, processes_of_uid  # noqa: F401  (re-exported)
from . import spawner
from .clock import LoadClock
from .config import SWITCHABLE, SandboxConfig, SandboxRefused  # noqa: F401  (re-exported)
from .local import LocalImpl  # noqa: F401  (re-exported)
from .oracle import Handle, Oracle, OracleBase, Reply, StudentError, checked_reply, classify  # noqa: F401
from .pipe import Pipe, scrub_paths
from .policy import ReadPolicy, read_policy
from .protocol import read_message, write_message
from .shm import Arena

RUNTIME_FILES = ("worker.py", "protocol.py", "isolation.py", "view.py", "shm.py", "training.py", "zygote.py", "streams.py")
#: The environment every worker shares (the fork server's); each worker adds its own folders.
BASE_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "MPLBACKEND": "Agg",
            "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "NUMEXPR_NUM_THREADS": "1", "VECLIB_MAXIMUM_THREADS": "1", "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8"}
HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent.parent


def _runtime_digest() -> dict[str, str]:
    import hashlib

    return {n: hashlib.sha256((HERE / n).read_bytes()).hexdigest() for n in RUNTIME_FILES}


#: The worker's code as this process loaded it: checked again before every worker start.
RUNTIME_DIGEST = _runtime_digest()


# --- the sandbox ----------------------------------------------------------------------------------

_landlock_paths = lru_cache(maxsize=8)(ReadPolicy.landlock_paths)
_listed_dirs = lru_cache(maxsize=8)(ReadPolicy.listed_dirs)


def _spec():
    """The current assignment spec (imported late: the sandbox package does not need it at import)."""
    from ..spec import current_spec

    return current_spec()


class SandboxImpl(OracleBase):
    """A submission's two files, run in an isolated worker process (restarted after failures)."""

    def __init__(self, package_dir: Path, config: SandboxConfig = SandboxConfig(), label: str = "sandbox") -> None:
        self.label, self.config = label, config
        self.package_dir = Path(package_dir)
        self.root = self.package_dir.parent
        self._generation = 0
        self._proc: subprocess.Popen | None = None
        self._chan: Pipe | None = None
        self.restarts = -1
        self.isolation: dict[str, str] = {}
        self.failed_methods: dict[tuple[str, str], dict] = {}
        self.output, self._printed = bytearray(), 0  #: kept output; bytes printed by workers already stopped
        self.answer_seconds = 0.0  #: time spent on answered calls (see SandboxConfig.answer_budget)
        self._uid: int | None = None
        self._outdir = Path(tempfile.mkdtemp(prefix="bpg-out-"))
        self._prepare_root()
        self._arena = Arena.create()  # inherited by every (re)started worker: see shm.py
        self._imported: set[str] = set()
        self.student_modules = dict(config.student_modules) or _spec().student_modules
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
        used = set(live_uids().values())
        rnd = random.SystemRandom()
        for _ in range(100):
            uid = self.config.uid_base + rnd.randrange(100_000)
            if uid not in used:
                return uid
        raise RuntimeError("no free sandbox uid")

    # lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start (or restart) the worker: isolation applied, its greeting checked."""
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
        env = {**BASE_ENV, "HOME": work, "TMPDIR": work, "MPLCONFIGDIR": work + "/.config/matplotlib",
               "XDG_CACHE_HOME": work + "/.cache", "XDG_CONFIG_HOME": work + "/.config", "IPYTHONDIR": work + "/.ipython"}
        out = open(self._outdir / f"output-{self._generation}.txt", "wb")
        try:
            # forked by this process's fork server (numpy already imported), else a new interpreter
            self._proc = spawner.spawn(BASE_ENV, env, work, [req_r, resp_w, self._arena.fd, out.fileno()])
            if self._proc is None:
                self._proc = subprocess.Popen(
                    [sys.executable, "-I", "-B", str(HERE / "worker.py"), json.dumps({"req_fd": req_r, "resp_fd": resp_w})],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=out, pass_fds=(req_r, resp_w, self._arena.fd), env=env,
                    cwd=work, start_new_session=True, close_fds=True)
        finally:
            out.close()
            os.close(req_r)
            os.close(resp_w)
        self._chan = Pipe(resp_r, req_w, self.clock)
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
                "shm_fd": self._arena.fd, "student_modules": self.student_modules, "provided": _spec().provided}

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

    def printed_bytes(self) -> int:
        """How much the student's code has printed so far, over every worker of this submission."""
        try:
            return self._printed + os.stat(self._outdir / f"output-{self._generation}.txt").st_size
        except OSError:  # no worker now (its output already counted)
            return self._printed

    def _collect_output(self) -> None:
        path, self._printed = self._outdir / f"output-{self._generation}.txt", self.printed_bytes()
        try:
            with open(path, "rb") as fh:
                self.output += fh.read(max(self.config.output_cap - len(self.output), 0))
            path.unlink()
        except OSError:
            pass

    def _receive(self, timeout: float, max_bytes: int | None = None, *, deadline_set: bool = False):
        """Read one reply within ``timeout`` charged seconds (from now, or from the request when it
        already set the channel's deadline)."""
        assert self._chan is not None
        if not deadline_set:
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
                                "message": describe_exit(status)})
        except Exception as exc:  # ProtocolError, ValueError, RecursionError...: out of step, so killed
            self._kill()
            raise StudentError({"kind": "protocol", "type": "ProtocolError", "where": "",
                                "message": f"the worker sent a malformed answer ({str(exc)[:200]}); "
                                           "did the code write to the grader's pipe?"})

    def request(self, head, arrays, *, cls, method, timeout=None):
        return self._send(head, arrays, cls=cls, method=method, timeout=timeout)()

    def begin_request(self, head: dict, *, cls: str, method: str, timeout: float):
        """Send now, read the reply when the returned callable is called: the parent works (checks
        the previous MNIST step) while the worker computes this one."""
        return self._send(head, [], cls=cls, method=method, timeout=timeout)

    def _send(self, head, arrays, *, cls, method, timeout=None):
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
            self.start()
        module = self.student_modules.get(head.get("cls", "")) if head.get("op") == "new" else None
        if module and module not in self._imported:
            # the file is imported on its own deadline: a slow import (scipy, matplotlib) is not a slow call
            self._imported.add(module)
            self.request({"op": "import", "module": module}, [], cls=f"import {module}.py", method="import",
                          timeout=self.config.import_timeout)
        timeout = self._left(self.config.call_timeout if timeout is None else timeout)
        t0 = self.clock()
        assert self._chan is not None
        self._chan.deadline = t0 + timeout
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
        return lambda: self._finish(key, timeout, t0, budgeted)

    def _finish(self, key: tuple, timeout: float, t0: float, budgeted: bool):
        try:
            reply, out = self._receive(timeout, self.config.max_call_reply_bytes, deadline_set=True)
        except StudentError as exc:
            if exc.kind in ("timeout", "crash", "protocol") and key[1] not in ("data",):
                self.failed_methods[key] = exc.info
            raise
        if budgeted:
            self.answer_seconds += self.clock() - t0
        reply = checked_reply(reply)
        if not reply.get("ok"):
            err = reply["error"]
            for k in ("message", "where"):
                if k in err:
                    err[k] = scrub_paths(err[k], self.package_dir)
        return reply, out

    def malformed(self, why: str) -> StudentError:
        self._kill()  # whatever else it wrote may still be in the pipe
        return super().malformed(why)

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


def preflight(config: SandboxConfig = SandboxConfig()) -> None:
    """Start one worker on an empty package and stop it: raises :class:`SandboxRefused` at once on a
    machine whose isolation the worker refuses (so ``grader grade`` stops with one clear message
    instead of writing a row of zeros per student)."""
    with tempfile.TemporaryDirectory(prefix="bpg-preflight-") as d:
        pkg = Path(d) / "assignment"
        pkg.mkdir()
        impl = SandboxImpl(pkg, config, label="preflight")
        try:
            impl.start()
        except StudentError:
            pass  # the worker did not start for another reason: each submission's checks report it
        finally:
            impl.close()


__all__ = ["Handle", "LocalImpl", "Oracle", "OracleBase", "Reply", "SWITCHABLE", "SandboxConfig", "SandboxImpl",
           "SandboxRefused", "StudentError", "classify", "kill_uid", "preflight", "processes_of_uid", "scrub_paths"]
