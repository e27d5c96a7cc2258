"""The student's ``sys.stdout`` and ``sys.stderr`` inside the worker: printing never fails.

The worker's descriptors 1 and 2 are a file under RLIMIT_FSIZE (``config.file_size``), and the
parent keeps only the first ``config.output_cap`` bytes of it for the feedback. Without this layer a
correct submission that prints whole arrays in ``forward`` (debug output left in) would hit the file
size limit after a few hundred MNIST steps, and every later ``print`` would raise ``OSError: File
too large`` inside the student's layer: points lost for a print statement. Here the first ``limit``
characters are written through, one line says that the rest was dropped, and every later write
succeeds without writing anything (and so costs no system call).

Runs inside the sandbox: standard library only.
"""
from __future__ import annotations

import io
import sys

#: characters of the student's output written to the output file (far below the file size limit)
KEEP = 1 << 20


class CappedText(io.TextIOBase):
    """A text stream that writes through up to ``limit`` characters, then discards (never raises)."""

    def __init__(self, raw, limit: int = KEEP, name: str = "stdout") -> None:
        super().__init__()
        self._raw, self._left, self._name, self._noted = raw, int(limit), name, False

    @property
    def encoding(self) -> str:
        return getattr(self._raw, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str:
        return getattr(self._raw, "errors", None) or "replace"

    @property
    def name(self) -> str:
        return f"<{self._name}>"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._raw.fileno()

    def write(self, s) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        if self._left > 0:
            part = s[: self._left]
            self._left -= len(part)
            try:
                self._raw.write(part)
            except (OSError, ValueError):
                self._left = 0
        if self._left <= 0 and not self._noted:
            self._noted = True
            try:
                self._raw.write(f"\n[{self._name}: only the first {KEEP} characters were kept; the rest of "
                                "what the code printed was dropped by the grader]\n")
                self._raw.flush()
            except (OSError, ValueError):
                pass
        return len(s)

    def flush(self) -> None:
        try:
            self._raw.flush()
        except (OSError, ValueError):
            pass


def cap_output(limit: int = KEEP) -> None:
    """Put capped streams in place of ``sys.stdout`` and ``sys.stderr`` (and their originals)."""
    for attr, orig, name in (("stdout", "__stdout__", "stdout"), ("stderr", "__stderr__", "stderr")):
        raw = getattr(sys, attr)
        if raw is None or isinstance(raw, CappedText):
            continue
        capped = CappedText(raw, limit, name)
        setattr(sys, attr, capped)
        setattr(sys, orig, capped)
