"""The grading process's end of the fork server (``zygote.py``): workers in a few milliseconds.

:func:`spawn` asks the one fork server of this process for a worker and returns a
:class:`ForkedWorker`, which the client uses exactly like the ``subprocess.Popen`` of a worker
started from the command line (``pid``, ``poll``, ``wait``, ``kill``). Whether it still runs is
read from a pidfd (a cheap system call, no round trip); its exit status comes from the server,
which reaps it only then. When the server cannot be used (no pidfd on this kernel, the server
died, a request failed) :func:`spawn` returns None and the client starts the worker the old way.
"""
from __future__ import annotations

import atexit
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: How long a request to the fork server may take before it is given up (and the server with it).
REPLY_TIMEOUT = 10.0


class ForkedWorker:
    """A worker forked by the server: the ``Popen`` methods the client uses."""

    def __init__(self, server: "_Server", pid: int) -> None:
        self.server, self.pid = server, pid
        self.returncode: int | None = None
        self._pidfd: int | None = os.pidfd_open(pid)
        self._poll = select.poll()  # asked before every request: one poll object, registered once
        self._poll.register(self._pidfd, select.POLLIN)

    def _exited(self, timeout: float) -> bool:
        if self._pidfd is None:
            return True
        return bool(self._poll.poll(max(0, int(timeout * 1000))))

    def _reap(self) -> int:
        status = None
        for _ in range(200):  # the pidfd said it ended: the server reaps it at once (or already did)
            status = self.server.status(self.pid)
            if status is not False:
                break
            time.sleep(0.005)
        self.returncode = os.waitstatus_to_exitcode(status) if isinstance(status, int) else -signal.SIGKILL
        self._poll.unregister(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = None
        return self.returncode

    def poll(self) -> int | None:
        if self.returncode is None and self._exited(0):
            self._reap()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if not self._exited(3600.0 if timeout is None else timeout):
                raise subprocess.TimeoutExpired("sandbox worker", timeout)
            self._reap()
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            try:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            except OSError:
                pass


class _Server:
    def __init__(self, env: dict[str, str]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen([sys.executable, "-I", "-B", str(HERE / "zygote.py"), str(theirs.fileno())],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, pass_fds=(theirs.fileno(),), env=env, cwd="/",
                                         start_new_session=True, close_fds=True)
        finally:
            theirs.close()
        self.sock = ours
        self.sock.settimeout(REPLY_TIMEOUT)
        self.lock = threading.Lock()
        hello = self._recv()
        if not hello.get("ready"):
            raise OSError("the fork server did not start")

    def _recv(self) -> dict:
        data = self.sock.recv(1 << 16)
        if not data:
            raise OSError("the fork server ended")
        return json.loads(data)

    def fork(self, env: dict[str, str], cwd: str, fds: list[int]) -> int:
        with self.lock:
            socket.send_fds(self.sock, [json.dumps({"op": "fork", "env": env, "cwd": cwd}).encode()], fds)
            reply = self._recv()
        if "pid" not in reply:
            raise OSError(reply.get("error", "the fork server refused"))
        return int(reply["pid"])

    def status(self, pid: int) -> "int | None | bool":
        """The raw wait status of an ended child, None if it was never ours, False if not yet ended."""
        try:
            with self.lock:
                self.sock.send(json.dumps({"op": "wait", "pid": pid}).encode())
                reply = self._recv()
        except (OSError, ValueError):
            return None
        if reply.get("gone"):
            return None
        return False if reply.get("status") is None else int(reply["status"])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            try:
                self.proc.wait(timeout=5)  # its children's CPU time is counted in ours only once it is reaped
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


_server: _Server | None = None
_server_pid: int | None = None  # the process that started it (a forked copy of us must not use it)
_starting = threading.Lock()    # threads of one process (a Dask worker's) share one server


_retired: list[_Server] = []    # servers that failed a request: never asked again, ended at exit


def _current(env: dict[str, str]) -> _Server:
    global _server, _server_pid
    if _server is not None and (_server_pid != os.getpid() or not _server.alive()):
        if _server_pid == os.getpid():
            _retire()
        _server = None
    if _server is None:
        _server, _server_pid = _Server(env), os.getpid()
    return _server


def _retire() -> None:
    """Stop using the current server, without ending it: workers it forked for other threads of
    this process may still be grading (they die with it)."""
    global _server
    if _server is not None and _server_pid == os.getpid():
        _retired.append(_server)
    _server = None


def spawn(base_env: dict[str, str], env: dict[str, str], cwd: str, fds: list[int]) -> ForkedWorker | None:
    """A worker forked by this process's server (started with ``base_env`` if it is not running yet),
    with ``env`` as its environment and ``cwd`` as its folder; None if the server cannot be used."""
    if not hasattr(os, "pidfd_open") or os.environ.get("GRADER_NO_FORK_SERVER"):
        return None
    try:
        with _starting:
            server = _current(base_env)
        pid = server.fork(env, cwd, fds)
    except (OSError, ValueError):
        with _starting:
            _retire()
        return None
    try:
        return ForkedWorker(server, pid)
    except OSError:  # no pidfd after all: this child is not used
        os.kill(pid, signal.SIGKILL)
        return None


@atexit.register
def shutdown() -> None:
    """End the fork servers of this process (their workers die with them)."""
    global _server
    if _server_pid == os.getpid():
        for server in _retired + ([_server] if _server is not None else []):
            try:
                server.close()
            except OSError:
                pass
        _retired.clear()
    _server = None


def server_pid() -> int | None:
    """The pid of this process's fork server, if it runs."""
    if _server is not None and _server_pid == os.getpid() and _server.alive():
        return _server.proc.pid
    return None


def server_cpu() -> float:
    """CPU seconds of this process's fork server and of the workers it has reaped (a worker's time
    reaches this process's ``RUSAGE_CHILDREN`` only when the server itself ends): 0 without one."""
    from .clock import cpu_seconds

    pid = server_pid()
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return cpu_seconds(fh.read(), reaped_children=True)
    except (OSError, ValueError, IndexError):
        return 0.0
