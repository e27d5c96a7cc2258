"""Where submissions are graded: inline, in isolated local processes, or any ``Executor``.

The runner needs only ``concurrent.futures.Executor`` semantics (``submit`` returning futures) and a
job function that takes plain picklable data (``Submission``, ``GradeOptions``) and returns plain JSON
data (``SubmissionResult.to_dict()``). A Dask ``Client.get_executor()`` has exactly that interface, so
spreading a batch over a cluster later means passing a different executor, nothing else.

Locally, :func:`run_isolated` gives every grading process a pool of its own (issue 21): in one
shared ``ProcessPoolExecutor`` a process that dies (killed for memory, a crash in a native library)
breaks the pool, and every submission queued in it fails with ``BrokenProcessPool``, honest
neighbours included. Here a death costs only the submission that process was grading, the slot gets
a fresh process, and the runner can retry that one submission alone.
"""
from __future__ import annotations

import multiprocessing as mp
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from typing import Any, Callable, Iterable, Iterator


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


def new_process() -> ProcessPoolExecutor:
    """A pool of one fresh grading process."""
    return ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"), initializer=_init_worker)


def make_executor(jobs: int) -> Executor:
    if jobs <= 1:
        return InlineExecutor()
    return ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"), initializer=_init_worker)


#: (task, value, exception, attempt): what :func:`run_isolated` yields for each task, once.
Outcome = tuple[Any, Any, "BaseException | None", int]


def run_isolated(fn: Callable, tasks: Iterable[tuple[Any, tuple]], jobs: int, *,
                 retry: Callable[[Any, "BaseException | None"], bool]) -> Iterator[Outcome]:
    """Run ``fn(*args)`` for every ``(task, args)`` in up to ``jobs`` processes, one pool each.

    A task whose outcome ``retry(value, exc)`` calls for (its process died, or the job reported a
    failure of the grader itself) runs once more in a brand-new process; its process is replaced
    too, since it may be the broken part. Yields in completion order."""
    queue = deque((task, args, 1) for task, args in tasks)
    idle: list[ProcessPoolExecutor] = []
    running: dict[Future, tuple[Any, tuple, int, ProcessPoolExecutor]] = {}
    try:
        while queue or running:
            while queue and len(running) < max(jobs, 1):
                task, args, attempt = queue.popleft()
                ex = idle.pop() if idle and attempt == 1 else new_process()
                try:
                    fut = ex.submit(fn, *args)
                except Exception:  # the process died between two jobs: a fresh one
                    ex.shutdown(wait=False, cancel_futures=True)
                    ex = new_process()
                    fut = ex.submit(fn, *args)
                running[fut] = (task, args, attempt, ex)
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in done:
                task, args, attempt, ex = running.pop(fut)
                value, exc = None, None
                try:
                    value = fut.result()
                except KeyboardInterrupt:
                    raise
                except BaseException as e:  # BrokenProcessPool, an unpicklable result, ...
                    exc = e
                again = retry(value, exc)
                if exc is not None or again:
                    ex.shutdown(wait=False, cancel_futures=True)
                else:
                    idle.append(ex)
                if again and attempt == 1:
                    queue.append((task, args, 2))
                    continue
                yield task, value, exc, attempt
    finally:
        for _, _, _, ex in running.values():
            ex.shutdown(wait=False, cancel_futures=True)
        for ex in idle:
            ex.shutdown(wait=True)


def run_fresh(fn: Callable, *args) -> tuple[Any, "BaseException | None"]:
    """``fn(*args)`` in a brand-new process: (value, None) or (None, the exception)."""
    ex = new_process()
    try:
        return ex.submit(fn, *args).result(), None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        return None, exc
    finally:
        ex.shutdown(wait=False, cancel_futures=True)
