"""The parent's ends of a worker's pipes, and the scrubbing of machine paths from what comes back."""
from __future__ import annotations

import os
import select
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent.parent


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


class Pipe:
    """Pipe ends with deadlines: a stuck or hostile worker can never block the parent.

    Reads are buffered (one ``read`` usually brings a whole reply: header and arrays) and the
    clock is read once per wait, not once per piece: a training step is a round trip, 2,000 of
    them per submission."""

    def __init__(self, rfd: int, wfd: int, clock=time.monotonic) -> None:
        self.rfd, self.wfd = rfd, wfd
        os.set_blocking(wfd, False)
        os.set_blocking(rfd, False)
        self.clock = clock  #: deadlines are in this clock's seconds (see grader/sandbox/clock.py)
        self.deadline = None
        self._buf = bytearray()

    @property
    def deadline(self) -> float | None:
        return self._deadline

    @deadline.setter
    def deadline(self, value: float | None) -> None:
        self._deadline = value
        self._wall_until: float | None = None  # recomputed at the first wait

    def _wait(self, r: list, w: list) -> None:
        # The clock runs no faster than wall time, so until the wall clock has moved on by what is
        # left of the deadline it cannot have passed: the (dearer) clock is read only when that
        # much wall time is gone, and when it ran slower (CPU waits are not charged) we wait on.
        while True:
            if self._deadline is None:
                left = None
            else:
                now = time.monotonic()
                if self._wall_until is None or now >= self._wall_until:
                    left = self._deadline - self.clock()
                    if left <= 0:
                        raise TimeoutError
                    self._wall_until = now + left
                left = self._wall_until - now
            rr, ww, _ = select.select(r, w, [], left)
            if rr or ww:
                return

    def _fill(self, want: int) -> bool:
        """Read what the pipe holds (at least one byte, waiting for it); False at end of stream."""
        while True:
            try:
                b = os.read(self.rfd, max(want, 1 << 16))
            except BlockingIOError:
                self._wait([self.rfd], [])
                continue
            if not b:
                return False
            self._buf += b
            return True

    def read(self, n: int) -> bytes:
        while len(self._buf) < n:
            if not self._fill(min(n - len(self._buf), 1 << 20)):
                break
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def readinto(self, view: memoryview) -> int:
        if not self._buf:
            if len(view) >= 1 << 16:  # a large array: straight into its memory
                while True:
                    try:
                        return os.readv(self.rfd, [view[: 1 << 22]])
                    except BlockingIOError:
                        self._wait([self.rfd], [])
            if not self._fill(len(view)):
                return 0
        k = min(len(view), len(self._buf))
        view[:k] = self._buf[:k]
        del self._buf[:k]
        return k

    def write(self, data) -> None:
        view = memoryview(data).cast("B")
        while view:
            try:
                k = os.write(self.wfd, view[: 1 << 20])
            except BlockingIOError:
                self._wait([], [self.wfd])
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


_Channel = Pipe
