"""The workers' fork server: one clean process that has already imported numpy forks each worker.

Starting a worker as a new interpreter costs about 0.2 s of CPU and wall time (the interpreter,
``site`` and numpy's import), most of the start-up of a submission that is graded in under a
second (issue 22). So each grading process starts this server once (``spawner.py``); it imports
the worker's modules and then only forks. Each child gets the pipes, the arena and the output file
of its submission (passed over a unix socket), closes every other descriptor, takes its
submission's environment and folder, and goes on exactly as a worker started from the command
line: reads its configuration, applies every isolation layer, then imports the student's files.

Nothing of a submission ever runs in this process: it holds no secret, no test and no student
code, and it closes the descriptors it received for a child as soon as that child is forked, so
no worker can reach another submission's pipes. Children stay zombies until the grading process
asks for their exit status (``wait``), so a pid the grader may still signal is never reused.

Started as a script (``python -I -B zygote.py FD``): standard library, numpy and siblings only.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import traceback

if __name__ == "__main__":  # started as a script with -I: put the siblings on the path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import isolation  # noqa: E402  (imported now: what every worker would import at its start)
import view  # noqa: E402,F401
import worker  # noqa: E402  (numpy, protocol, shm, training)

#: The descriptors a fork request carries, in this order.
FDS = ("req", "resp", "shm", "out")


def _close_all_but(keep: set[int]) -> None:
    try:
        open_fds = [int(x) for x in os.listdir("/proc/self/fd")]
    except OSError:
        open_fds = list(range(3, 1024))
    for fd in open_fds:
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _child(sock: socket.socket, msg: dict, fds: list[int]) -> None:
    """In the forked child: become the submission's worker. Never returns."""
    code = 70
    try:
        sock.close()
        req, resp, shm_fd, out = fds
        os.setsid()
        os.dup2(out, 1)
        os.dup2(out, 2)
        _close_all_but({0, 1, 2, req, resp, shm_fd})
        os.chdir(msg["cwd"])
        os.environ.clear()
        os.environ.update(msg["env"])
        worker.np.random.seed()  # as a fresh interpreter would: no two workers share a random state
        sys.argv = [worker.__file__, json.dumps({"req_fd": req, "resp_fd": resp})]  # as in a started worker
        worker.run(req, resp, shm_fd)
        code = 0
    except BaseException:
        try:
            traceback.print_exc()
            sys.stderr.flush()
        except BaseException:
            pass
    finally:
        os._exit(code)


def _wait(pid: int) -> dict:
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return {"pid": pid, "gone": True}
    return {"pid": pid, "status": status if done else None}


def serve(sock: socket.socket) -> None:
    sock.send(json.dumps({"ready": True, "pid": os.getpid()}).encode())
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, 1 << 16, len(FDS))
        except OSError:
            break
        if not data:
            break  # the grading process closed its end (or died): children die with us
        msg = json.loads(data)
        if msg.get("op") == "fork" and len(fds) == len(FDS):
            pid = os.fork()
            if pid == 0:
                _child(sock, msg, fds)
            reply = {"pid": pid}
        elif msg.get("op") == "wait":
            reply = _wait(int(msg["pid"]))
        else:
            reply = {"error": f"bad request {str(msg)[:100]}"}
        for fd in fds:
            os.close(fd)
        sock.send(json.dumps(reply).encode())


def main() -> None:
    # It ends when the grading process closes its end of the socket (or dies: the kernel closes it);
    # each worker has SIGKILL as its parent-death signal (isolation.py), so the workers end with it.
    # (Not a parent-death signal here too: that follows the *thread* that started the server, and a
    # Dask worker grades in threads that come and go.)
    sock = socket.socket(fileno=int(sys.argv[1]))
    serve(sock)
    os._exit(0)


if __name__ == "__main__":
    main()
