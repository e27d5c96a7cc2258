"""A clock that does not run while the grader waits for a CPU: deadlines independent of load.

Wall time on a busy machine is mostly time spent waiting for a core (issue 21: a correct but slow
einsum submission took 12 s on an idle core and 56 s at a load average of 16 on 2 cores, enough to
run into a 60 s budget). Linux counts, per thread, the time it was runnable but not running
(``run_delay``, the second field of ``/proc/<pid>/schedstat``, which also holds time throttled by a
CPU quota). :class:`LoadClock` is wall time minus that delay, summed over the grading thread and the
sandbox worker(s) it watches: a correct submission is charged about its idle-machine time whatever
else runs, while a submission that sleeps or stalls is charged every second of it.

Its rate is bounded below (:data:`MIN_RATE`): however long the queue for a CPU, a deadline of ``t``
charged seconds passes within ``t / MIN_RATE`` wall seconds, so a submission that starves its own
main thread with busy threads cannot stretch its budget further. Where ``schedstat`` is missing the
clock is plain wall time.
"""
from __future__ import annotations

import time

MIN_RATE = 0.2  #: a charged second lasts at most 5 wall seconds


def run_delay(path: str) -> float | None:
    """Seconds the thread of ``path`` (a schedstat file) spent waiting for a CPU, or None."""
    try:
        with open(path) as fh:
            return int(fh.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


class LoadClock:
    """Charged seconds: wall time minus the CPU waits of this thread and the watched processes."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()
        self._self0 = run_delay("/proc/thread-self/schedstat")
        self._done = 0.0                   #: waits of processes no longer watched
        self._pids: dict[int, float] = {}  #: pid -> its run_delay when it began to be watched
        self._last: dict[int, float] = {}  #: pid -> its latest run_delay read
        self._floor = 0.0                  #: the clock never goes backwards

    def watch(self, pid: int) -> None:
        d = run_delay(f"/proc/{pid}/schedstat")
        self._pids[pid] = self._last[pid] = d if d is not None else 0.0

    def unwatch(self, pid: int) -> None:
        """Call just before the process is killed (its schedstat disappears once it is reaped)."""
        if pid in self._pids:
            self._read(pid)
            self._done += self._last.pop(pid) - self._pids.pop(pid)

    def _read(self, pid: int) -> None:
        d = run_delay(f"/proc/{pid}/schedstat")
        if d is not None:
            self._last[pid] = max(d, self._last[pid])

    def waited(self) -> float:
        own = run_delay("/proc/thread-self/schedstat")
        total = self._done + (own - self._self0 if own is not None and self._self0 is not None else 0.0)
        for pid in self._pids:
            self._read(pid)
            total += self._last[pid] - self._pids[pid]
        return total

    def __call__(self) -> float:
        wall = time.monotonic() - self._t0
        now = max(wall - self.waited(), wall * MIN_RATE, self._floor)
        self._floor = now
        return now
