"""A clock that does not run while the grader waits for a CPU: deadlines independent of load.

Wall time on a busy machine is mostly time spent waiting for a core (issue 21: a correct but slow
einsum submission took 12 s on an idle core and 56 s at a load average of 16 on 2 cores, enough to
run into a 60 s budget). Linux counts, per thread, the time it was runnable but not running
(``run_delay``, the second field of ``/proc/<pid>/schedstat``, which also holds time throttled by a
CPU quota). :class:`LoadClock` is wall time minus that delay, summed over the grading thread and the
sandbox worker(s) it watches: a correct submission is charged about its idle-machine time whatever
else runs, while a submission that sleeps or stalls is charged every second of it.

A submission cannot slow its own clock down: the charged time is never less than the CPU time of
the watched workers (every thread, from ``/proc/<pid>/stat``), so starving its main thread with busy
threads charges it for those threads' work. Its rate is also bounded below (:data:`MIN_RATE`):
however long the queue for a CPU, a deadline of ``t`` charged seconds passes within ``t / MIN_RATE``
wall seconds. That bound is a last resort: at 0.2 (before) a correct submission graded at a load
average of 15-20 on 2 cores, with less than a fifth of a core, ran out of its 60 s budget; at 0.05 it
needs less than a twentieth. Where ``schedstat`` is missing the clock is plain wall time.
"""
from __future__ import annotations

import os
import threading
import time

from .shm import close_fd

MIN_RATE = 0.05  #: a charged second lasts at most 20 wall seconds
READ_EVERY = 0.005  #: wall seconds between two reads of the kernel's counters
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(stat: bytes, *, reaped_children: bool = False) -> float:
    """user + system CPU seconds of every thread, from the text of a ``/proc/<pid>/stat`` file
    (raises ValueError or IndexError when it is not one); ``reaped_children``: plus those of the
    children it has waited for (the fork server's workers)."""
    fields = stat.rsplit(b")", 1)[1].split()
    own = int(fields[11]) + int(fields[12])
    return (own + (int(fields[13]) + int(fields[14]) if reaped_children else 0)) / _TICKS


class _Stat:
    """One schedstat file kept open: re-read with ``pread`` at offset 0 (about 1.5 microseconds,
    against 15 for an open and read), as the clock is read several times per call to the worker."""

    def __init__(self, path: str) -> None:
        try:
            self.fd: int | None = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self.fd = None

    def delay(self) -> float | None:
        if self.fd is None:
            return None
        try:
            return int(os.pread(self.fd, 128, 0).split()[1]) / 1e9
        except (OSError, ValueError, IndexError):
            return None

    def cpu(self) -> float | None:
        """user + system CPU seconds of every thread (for a ``/proc/<pid>/stat`` file)."""
        if self.fd is None:
            return None
        try:
            return cpu_seconds(os.pread(self.fd, 4096, 0))
        except (OSError, ValueError, IndexError):
            return None

    def close(self) -> None:
        close_fd(self.fd)
        self.fd = None


class LoadClock:
    """Charged seconds: wall time minus the CPU waits of this thread and the watched processes."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()
        self._thread = threading.get_ident()
        self._own = _Stat("/proc/thread-self/schedstat")  # this thread's, resolved now
        self._self0 = self._own.delay()
        self._done = 0.0                   #: waits of processes no longer watched
        self._pids: dict[int, float] = {}  #: pid -> its run_delay when it began to be watched
        self._last: dict[int, float] = {}  #: pid -> its latest run_delay read
        self._stats: dict[int, _Stat] = {}
        self._cpu_stats: dict[int, _Stat] = {}
        self._cpu_first: dict[int, float] = {}  #: pid -> its CPU seconds when it began to be watched
        self._cpu_last: dict[int, float] = {}
        self._cpu_done = 0.0                    #: CPU of processes no longer watched
        self._floor = 0.0                  #: the clock never goes backwards
        self._read_at = -READ_EVERY        #: wall seconds (since _t0) of the last read of the counters
        self._charged = 0.0                #: charged seconds at that read

    def watch(self, pid: int) -> None:
        stat = self._stats[pid] = _Stat(f"/proc/{pid}/schedstat")
        d = stat.delay()
        self._pids[pid] = self._last[pid] = d if d is not None else 0.0
        cpu = self._cpu_stats[pid] = _Stat(f"/proc/{pid}/stat")
        c = cpu.cpu()
        self._cpu_first[pid] = self._cpu_last[pid] = c if c is not None else 0.0

    def unwatch(self, pid: int) -> None:
        """Call just before the process is killed (its schedstat disappears once it is reaped)."""
        if pid in self._pids:
            self._read(pid)
            self._done += self._last.pop(pid) - self._pids.pop(pid)
            self._stats.pop(pid).close()
            self._cpu_done += self._cpu_last.pop(pid) - self._cpu_first.pop(pid)
            self._cpu_stats.pop(pid).close()

    def _read(self, pid: int) -> None:
        d = self._stats[pid].delay()
        if d is not None:
            self._last[pid] = max(d, self._last[pid])
        c = self._cpu_stats[pid].cpu()
        if c is not None:
            self._cpu_last[pid] = max(c, self._cpu_last[pid])

    def worker_cpu(self) -> float:
        """CPU seconds the watched processes used since they began to be watched (as of the last read)."""
        return self._cpu_done + sum(self._cpu_last[p] - self._cpu_first[p] for p in self._cpu_last)

    def _own_delay(self) -> float | None:
        if threading.get_ident() != self._thread:  # the kept file is the creating thread's
            return None
        return self._own.delay()

    def waited(self) -> float:
        own = self._own_delay()
        total = self._done + (own - self._self0 if own is not None and self._self0 is not None else 0.0)
        for pid in self._pids:
            self._read(pid)
            total += self._last[pid] - self._pids[pid]
        return total

    def __call__(self) -> float:
        wall = time.monotonic() - self._t0
        if wall - self._read_at < READ_EVERY:
            # Between two reads the clock runs at wall speed: it is ahead by at most the waits of
            # one READ_EVERY window, taken back at the next read (it then stands still until the
            # true value catches up), so the error never adds up.
            now = max(self._charged + (wall - self._read_at), self._floor)
        else:
            waited = self.waited()  # reads every counter, the CPU ones too
            self._charged = max(wall - waited, self.worker_cpu(), wall * MIN_RATE)
            self._read_at = wall
            now = max(self._charged, self._floor)
        self._floor = now
        return now

    def close(self) -> None:
        for stat in [self._own, *self._stats.values(), *self._cpu_stats.values()]:
            stat.close()
        self._stats.clear()
        self._cpu_stats.clear()
        self._cpu_first.clear()
        self._cpu_last.clear()
        self._pids.clear()
        self._last.clear()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
