"""Shared memory between the trusted parent and the worker, for the MNIST training steps (issue 20).

An :class:`Arena` is one region of memory both sides map: a memfd when the worker is a separate
process (created by the parent, inherited through ``pass_fds``), plain anonymous memory when the
"worker" is the in-process :class:`worker.Dispatcher`, so both paths run the same code. It holds the
training images (written once per worker), and per step the batch indices and the parameters the
parent wrote, and the gradients the worker wrote back. Only small JSON headers cross the pipe.

Trust: the worker can write anywhere in the arena at any time, so the parent never reads back
anything it wrote (it keeps its own parameters) and copies each gradient out once, after the reply,
validating the copy. The memfd is sealed against shrinking, so the worker cannot truncate it under
the parent's mapping (which would kill the parent with SIGBUS); RLIMIT_FSIZE keeps it from growing it.

This module is copied into the sandbox next to ``worker.py``: standard library and numpy only.
"""
from __future__ import annotations

import math
import mmap
import os

import numpy as np

ALIGN = 64
# A gradient slot has room for float64 even though parameters are float32: a float64-style student
# returns float64 gradients, which are legitimate (the parent casts them).
SLOT_ITEMSIZE = 8


def close_fd(fd: int | None) -> None:
    """Close ``fd`` if there is one, whatever state it is in."""
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


class Arena:
    """A growable shared memory region with typed views at byte offsets."""

    def __init__(self, fd: int | None = None) -> None:
        self.fd = fd
        self.size = 0
        self._mm: mmap.mmap | None = None
        self.data_key = None  #: what the parent last wrote into the data region (channel.py)

    @classmethod
    def create(cls) -> "Arena":
        """The parent's side: an empty memfd, sealed against shrinking (see the module docstring)."""
        fd = os.memfd_create("bpg-arena", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            import fcntl

            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
        except (ImportError, AttributeError, OSError):  # pragma: no cover - very old kernels
            os.close(fd)
            raise
        return cls(fd)

    @classmethod
    def anonymous(cls) -> "Arena":
        return cls(None)

    def ensure(self, size: int) -> None:
        """Make the region at least ``size`` bytes (parent side: grows the memfd first)."""
        if size <= self.size:
            return
        size = _aligned(size)
        if self.fd is not None and os.fstat(self.fd).st_size < size:
            os.ftruncate(self.fd, size)
        self.map(size)

    def map(self, size: int) -> None:
        """(Re)map ``size`` bytes. Old views stay valid: they keep the old mapping alive."""
        if size <= self.size:
            return
        if self.fd is None:
            new = mmap.mmap(-1, size)
            if self._mm is not None:
                new[: self.size] = self._mm[: self.size]
        else:
            new = mmap.mmap(self.fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._mm, self.size = new, size

    def view(self, offset: int, dtype, shape) -> np.ndarray:
        dtype = np.dtype(dtype)
        shape = tuple(int(s) for s in shape)
        count = math.prod(shape)
        if offset < 0 or offset + count * dtype.itemsize > self.size:
            raise ValueError(f"arena view [{offset}, +{count * dtype.itemsize}) outside {self.size} bytes")
        return np.frombuffer(self._mm, dtype=dtype, count=count, offset=offset).reshape(shape)

    def close(self) -> None:
        self._mm = None  # views still alive keep their mapping until they go
        self.size = 0
        self.data_key = None
        close_fd(self.fd)
        self.fd = None


class Layout:
    """Where everything lives in the arena: computed by the parent, sent to the worker as JSON."""

    def __init__(self) -> None:
        self.end = 0
        self.entries: dict[str, list] = {}

    def add(self, name: str, dtype, shape, *, itemsize: int | None = None) -> list:
        dtype = np.dtype(dtype)
        count = math.prod(int(s) for s in shape)
        nbytes = count * (itemsize or dtype.itemsize)
        entry = [self.end, dtype.str, list(shape), nbytes]
        self.entries[name] = entry
        self.end = _aligned(self.end + nbytes)
        return entry
