"""The wire format between the trusted parent and the sandboxed worker.

A message is ``MAGIC | u32 header length | JSON header | raw array buffers``. The header lists every
array's dtype and shape; the reader checks them against fixed caps *before* allocating anything, so a
hostile worker cannot make the parent allocate a 100 GB buffer or unpickle an object. Values are a
small tagged tree (see :func:`encode_value`): numbers, strings, None, lists, dicts and arrays by index.

This module is copied into the sandbox next to ``worker.py``; it may import only the standard library
and numpy.
"""
from __future__ import annotations

import json
import math
import struct
from typing import Any, BinaryIO

import numpy as np

MAGIC = b"BPG1"
MAX_HEADER = 1 << 20
ALLOWED_DTYPES = {"<f8", "<f4", "<f2", "<i8", "<i4", "<i2", "|i1", "<u8", "<u4", "<u2", "|u1", "|b1"}
MAX_NDIM = 6


class ProtocolError(Exception):
    """A malformed or oversized message: the other side is broken or hostile."""


#: One encoder for every message (json.dumps with options builds a new one per call).
_ENCODE = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            raise EOFError("stream closed")
        buf += chunk
    return bytes(buf)


def write_message(stream: BinaryIO, header: dict, arrays: list[np.ndarray] = ()) -> None:
    metas = []
    bufs = []
    for a in arrays:
        a = a if a.flags.c_contiguous else a.copy(order="C")  # (ascontiguousarray would make 0-d arrays 1-d)
        if a.dtype.byteorder == ">":
            a = a.astype(a.dtype.newbyteorder("<"))
        metas.append({"dtype": a.dtype.str, "shape": list(a.shape)})
        bufs.append(memoryview(a).cast("B") if a.size else b"")
    head = dict(header)
    head["_arrays"] = metas
    raw = _ENCODE(head).encode()
    pre = MAGIC + struct.pack("<I", len(raw)) + raw
    if sum(len(b) for b in bufs) <= 1 << 16:  # small: one write, so one wake-up on the other side
        stream.write(b"".join([pre, *bufs]))
    else:
        stream.write(pre)
        for b in bufs:
            stream.write(b)
    stream.flush()


def read_message(stream: BinaryIO, *, max_bytes: int) -> tuple[dict, list[np.ndarray]]:
    """Read one message; arrays come back writable, owning their memory."""
    pre = _read_exact(stream, 8)
    if pre[:4] != MAGIC:
        raise ProtocolError("bad magic: the stream is out of step")
    (n,) = struct.unpack("<I", pre[4:])
    if n > MAX_HEADER:
        raise ProtocolError(f"header of {n} bytes exceeds {MAX_HEADER}")
    try:
        head = json.loads(_read_exact(stream, n))
    except (ValueError, RecursionError) as exc:  # RecursionError: "[[[[..." nested 100000 deep
        raise ProtocolError(f"header is not JSON: {str(exc)[:200]}") from None
    if not isinstance(head, dict) or not isinstance(head.get("_arrays", []), list):
        raise ProtocolError("header is not an object")
    metas = head.pop("_arrays", [])
    total = 0
    plan = []
    for m in metas:
        if not isinstance(m, dict):
            raise ProtocolError("array descriptor is not an object")
        dt, shape = m.get("dtype"), m.get("shape")
        if dt not in ALLOWED_DTYPES:
            raise ProtocolError(f"dtype {dt!r} is not allowed")
        if (not isinstance(shape, list) or len(shape) > MAX_NDIM
                or not all(type(s) is int and 0 <= s < 2**31 for s in shape)):
            raise ProtocolError(f"bad shape {shape!r}")
        nbytes = math.prod(shape) * np.dtype(dt).itemsize
        total += nbytes
        if total > max_bytes:  # refused before a single byte of it is allocated
            raise ProtocolError(f"an answer of more than {_size(max_bytes)}, the limit for this kind of message")
        plan.append((np.dtype(dt), tuple(shape), nbytes))
    arrays = []
    for dt, shape, nbytes in plan:
        arr = np.empty(shape, dtype=dt)  # numpy-aligned, owned, writable; filled in place
        if nbytes:
            _read_into(stream, memoryview(arr.reshape(-1).view(np.uint8)))
        arrays.append(arr)
    return head, arrays


def _size(n: int) -> str:
    return f"{n >> 20} MB" if n >= 1 << 20 else f"{n} bytes"


def _read_into(stream: BinaryIO, view: memoryview) -> None:
    got = 0
    n = len(view)
    while got < n:
        k = stream.readinto(view[got:])
        if not k:
            raise EOFError("stream closed")
        got += k


# --- values -------------------------------------------------------------------------------------
# A value is a JSON tree of one-key dicts: {"a": i} array i, {"s": i} numpy scalar stored as 0-d
# array i, {"f": "1.5"} Python float (repr, so nan/inf survive), {"i": 3}, {"b": true}, {"str": ".."},
# {"none": 1}, {"list": [...]}, {"dict": {...}}, {"other": "type name"} for anything else.

def encode_value(v: Any, arrays: list, *, depth: int = 0) -> dict:
    t = type(v)
    if t is np.ndarray:
        if v.dtype.kind not in "fiub" or v.dtype.str.replace(">", "<") not in ALLOWED_DTYPES:
            return {"other": f"ndarray of dtype {v.dtype}"}
        arrays.append(v)
        return {"a": len(arrays) - 1}
    if isinstance(v, np.generic) and t.__module__ == "numpy":
        if v.dtype.kind not in "fiub":
            return {"other": f"numpy scalar {t.__name__}"}
        arrays.append(np.asarray(v))
        return {"s": len(arrays) - 1}
    if t is float:
        return {"f": repr(v)}
    if t is bool:
        return {"b": v}
    if t is int:
        return {"i": v} if abs(v) < 2**62 else {"f": repr(float(v))}
    if t is str:
        return {"str": v[:2000]}
    if v is None:
        return {"none": 1}
    if depth < 3 and t in (list, tuple) and len(v) <= 64:
        return {"list": [encode_value(x, arrays, depth=depth + 1) for x in v]}
    if depth < 3 and t is dict and len(v) <= 64 and all(type(k) is str for k in v):
        return {"dict": {k: encode_value(x, arrays, depth=depth + 1) for k, x in v.items()}}
    if isinstance(v, np.ndarray):
        return {"other": f"a subclass of numpy.ndarray ({t.__module__}.{t.__qualname__})"}
    return {"other": f"{t.__module__}.{t.__qualname__}"[:200]}


class Opaque:
    """Stands for a value that could not cross the boundary (its type name is kept)."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"<{self.type_name}>"


class NumpyScalar:
    """A numpy scalar returned by the student (kept apart from a 0-d array for validation)."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray) -> None:
        self.array = array


def decode_value(tree: Any, arrays: list[np.ndarray], *, depth: int = 0) -> Any:
    if not isinstance(tree, dict) or len(tree) != 1 or depth > 4:
        raise ProtocolError("malformed value")
    (tag, x), = tree.items()
    if tag == "a" or tag == "s":
        if type(x) is not int or not 0 <= x < len(arrays):
            raise ProtocolError("bad array index")
        return arrays[x] if tag == "a" else NumpyScalar(arrays[x])
    if tag == "f":
        try:
            return float(x)
        except (TypeError, ValueError):
            raise ProtocolError("bad float") from None
    if tag == "i" and type(x) is int:
        return x
    if tag == "b" and type(x) is bool:
        return x
    if tag == "str" and type(x) is str:
        return x[:2000]
    if tag == "none":
        return None
    if tag == "list" and type(x) is list:
        return [decode_value(e, arrays, depth=depth + 1) for e in x]
    if tag == "dict" and type(x) is dict:
        return {str(k)[:100]: decode_value(e, arrays, depth=depth + 1) for k, e in x.items()}
    if tag == "other":
        return Opaque(str(x)[:200])
    raise ProtocolError(f"unknown value tag {tag!r}")
