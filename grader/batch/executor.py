"""Where submissions are graded: inline, or in a pool of local processes.

The runner only needs ``concurrent.futures.Executor`` semantics (``submit`` returning futures) and a
job function that takes plain picklable data (``Submission``, ``GradeOptions``) and returns plain JSON
data (``SubmissionResult.to_dict()``). A Dask ``Client.get_executor()`` has exactly that interface, so
spreading a batch over a cluster later means passing a different executor here, nothing else.
"""
from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import Executor, Future, ProcessPoolExecutor


class InlineExecutor(Executor):
    """Runs each job at submission time in this process (``--jobs 1``: simplest to debug)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        f: Future = Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # KeyboardInterrupt too: the runner decides
            f.set_exception(exc)
            if isinstance(exc, KeyboardInterrupt):
                raise
        return f


def _init_worker() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # each process grades one submission; parallelism is across processes


def make_executor(jobs: int) -> Executor:
    if jobs <= 1:
        return InlineExecutor()
    return ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"), initializer=_init_worker)
