"""Grading on a Dask cluster: ``--executor dask://HOST:PORT`` or ``--executor dask-local`` (issue 18).

The runner needs only ``concurrent.futures.Executor`` semantics, and a Dask client's
``Client.get_executor`` provides them. What this module adds around it:

- ``pure=False`` on every task, so a regrade is never answered from Dask's cache of an earlier,
  identical-looking call (the submission's files may have changed under the same path).
- Plain data in (``Submission``, ``GradeOptions``: frozen dataclasses of strings, paths, numbers), and
  JSON text out: the task encodes ``SubmissionResult.to_dict()`` with :func:`json.dumps` on the Dask
  worker and the parent decodes it, so nothing but a string crosses back from a worker.
- Every student's code still runs in the sandbox worker subprocess that ``grade_submission`` starts,
  on the Dask worker's machine. ``--no-sandbox`` is refused with a Dask executor (see
  :func:`open_executor`), so student code never runs inside a Dask worker process.
- The parent writes every file (atomically, as for the local pool), and the reference MNIST run is
  done once by the parent and travels inside ``GradeOptions.reference_mnist`` with each task.

The submissions are read by the Dask workers at the path the parent sees: on a cluster they must be on
a shared filesystem (as home and scratch folders are on a Slurm cluster). ``--out`` is written only by
the parent and need not be shared.
"""
from __future__ import annotations

import json
import logging
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

EXTRA_HINT = 'pip install -e ".[dask]"'


class ExecutorSpecError(ValueError):
    """``--executor`` names something this grader cannot use (a usage error, exit status 2)."""


def parse_spec(spec: str | None) -> tuple[str, str | None]:
    """``("local", None)``, ``("dask-local", None)`` or ``("dask", "tcp://host:port")``."""
    s = (spec or "local").strip()
    if s in ("local", "pool", ""):
        return "local", None
    if s == "dask-local":
        return "dask-local", None
    for prefix, scheme in (("dask://", "tcp://"), ("tcp://", "tcp://"), ("tls://", "tls://")):
        if s.startswith(prefix):
            rest = s[len(prefix):]
            host, _, port = rest.rpartition(":")
            if not host or not port.isdigit():
                raise ExecutorSpecError(f"--executor {spec}: expected {prefix}HOST:PORT, e.g. {prefix}10.0.0.5:8786")
            return "dask", scheme + rest
    raise ExecutorSpecError(f"--executor {spec}: expected local, dask-local or dask://HOST:PORT")


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise ExecutorSpecError(f"--executor dask needs the optional extra 'dask': {EXTRA_HINT}") from None
    return distributed


# Dask's own periodic work in every worker process: a sampling profiler every 10 ms, an event-loop
# tick every 20 ms, memory and system monitors. Each wakes a thread that takes the GIL from the task,
# which spends its time in short calls to the sandbox over a pipe; on a busy machine a thread
# descheduled while holding the GIL stalls the task. Measured on the 2-core development machine under
# load: checks 20-40% slower with the defaults, on par with the local pool with these (bench/bench_dask.py).
# Applied to the LocalCluster; README gives the same settings for the workers of a real cluster.
QUIET_WORKERS = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
}

_PINNED = False


def _run_task(fn, *args) -> str:
    """What a Dask worker runs: the job, with BLAS pinned to one thread, its result as JSON text."""
    global _PINNED
    if not _PINNED:  # once per worker process: parallelism is across workers, as with the local pool
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
        _PINNED = True
    return json.dumps(fn(*args), allow_nan=False)


class DaskExecutor(Executor):
    """A ``concurrent.futures.Executor`` over a Dask client; futures resolve to the decoded JSON."""

    def __init__(self, client, cluster=None) -> None:
        self._client = client
        self._cluster = cluster
        self._inner = client.get_executor(pure=False)

    @property
    def workers(self) -> int:
        return len(self._client.scheduler_info().get("workers", {}))

    def submit(self, fn, /, *args, **kwargs) -> Future:
        if kwargs:
            raise TypeError("DaskExecutor.submit takes positional arguments only (plain data)")
        inner = self._inner.submit(_run_task, fn, *args)
        outer: Future = Future()
        outer.set_running_or_notify_cancel()

        def done(f: Future) -> None:
            try:
                outer.set_result(json.loads(f.result()))
            except BaseException as exc:  # a worker lost, a task killed: the runner records an error row
                outer.set_exception(exc)

        inner.add_done_callback(done)
        return outer

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        try:
            self._inner.shutdown(wait=wait and not cancel_futures)
        finally:
            self._client.close()
            if self._cluster is not None:
                self._cluster.close()


def make_dask_executor(kind: str, address: str | None, *, workers: int, submissions: str | None = None) -> DaskExecutor:
    """Connect to a scheduler (``kind == "dask"``) or start a LocalCluster of ``workers`` processes."""
    distributed = _import_distributed()
    if kind == "dask-local":
        # One thread per worker process (each grades one submission at a time and starts its own
        # sandbox subprocess); the scheduler and its HTTP endpoint bound to the loopback interface
        # (a random port: Dask would otherwise take 8787 on every interface).
        import dask

        with dask.config.set(QUIET_WORKERS):  # handed to the worker processes as they are spawned
            cluster = distributed.LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                                               host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                               silence_logs=logging.ERROR)
        return DaskExecutor(distributed.Client(cluster), cluster)
    try:
        client = distributed.Client(address, timeout=15)
    except OSError as exc:
        raise ExecutorSpecError(f"--executor: cannot reach the Dask scheduler at {address}: {exc}") from None
    try:
        preflight(client, submissions)
    except BaseException:
        client.close()
        raise
    return DaskExecutor(client)


def _worker_facts(path: str | None) -> dict:
    import os

    from .. import __version__

    return {"version": __version__, "sees": path is None or os.path.exists(path)}


def preflight(client, submissions: str | None, *, wait_s: float = 60.0) -> None:
    """Before a task is sent: workers exist, run this grader version, and see the submissions folder.

    Without this, a worker on another version would grade differently and one without the shared
    folder would reject every submission as missing."""
    from .. import __version__

    try:
        client.wait_for_workers(1, timeout=wait_s)
    except (TimeoutError, OSError):
        raise ExecutorSpecError(f"--executor: the Dask scheduler has no workers after {wait_s:g} s") from None
    path = str(Path(submissions).resolve()) if submissions else None
    problems = []
    for worker, facts in sorted(client.run(_worker_facts, path).items()):
        if facts["version"] != __version__:
            problems.append(f"{worker} runs grader {facts['version']}, this is {__version__}")
        elif not facts["sees"]:
            problems.append(f"{worker} cannot see {path} (the submissions must be on a shared filesystem)")
    if problems:
        raise ExecutorSpecError("--executor: " + "; ".join(problems[:5]))


@contextmanager
def open_executor(spec: str | None, *, jobs: int, sandbox: bool = True,
                  submissions: str | None = None) -> Iterator[Executor | None]:
    """The executor ``--executor`` asks for; ``None`` means the runner's own local pool."""
    kind, address = parse_spec(spec)
    if kind == "local":
        yield None
        return
    if not sandbox:
        raise ExecutorSpecError("--no-sandbox cannot be combined with a Dask executor: student code would run "
                                "inside the Dask worker process")
    ex = make_dask_executor(kind, address, workers=jobs, submissions=submissions)
    try:
        yield ex
    finally:
        ex.shutdown(wait=False, cancel_futures=True)
