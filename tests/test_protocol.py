"""The wire protocol's limits, tested on the functions themselves (issue 17).

``read_message`` is what stands between a hostile worker and the parent's memory: every cap is
checked before anything is allocated, and a message the reader refuses never reaches the grader.
"""
from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest

from grader.sandbox.protocol import (ALLOWED_DTYPES, MAGIC, MAX_HEADER, MAX_NDIM, ProtocolError, decode_value,
                                     encode_value, read_message, write_message)


def _raw(header: dict, body: bytes = b"", *, magic: bytes = MAGIC) -> io.BytesIO:
    """A message as a hostile worker could write it: any header, any body."""
    head = json.dumps(header).encode()
    return io.BytesIO(magic + struct.pack("<I", len(head)) + head + body)


class _NoBigReads(io.BytesIO):
    """A stream that fails the test if the reader asks it for more than ``limit`` bytes at once
    (or for a buffer larger than that): proof that nothing was sized from an untrusted length."""

    def __init__(self, data: bytes, limit: int) -> None:
        super().__init__(data)
        self.limit = limit

    def read(self, n=-1):
        assert 0 <= n <= self.limit, f"asked to read {n} bytes"
        return super().read(n)

    def readinto(self, view):
        assert len(view) <= self.limit, f"asked to fill a buffer of {len(view)} bytes"
        return super().readinto(view)


def test_round_trip_keeps_header_dtypes_shapes_and_values():
    """Positive control: every allowed dtype, a 0-d, an empty and a non-contiguous array come back equal."""
    arrays = [np.arange(6, dtype=np.dtype(d)).reshape(2, 3) if d != "|b1" else np.array([[True, False]])
              for d in sorted(ALLOWED_DTYPES)]
    arrays += [np.array(2.5), np.zeros((0, 4)), np.arange(12.0).reshape(3, 4)[:, ::2],
               np.arange(3, dtype=">f8")]
    buf = io.BytesIO()
    write_message(buf, {"op": "call", "n": 1}, arrays)
    buf.seek(0)
    head, back = read_message(buf, max_bytes=1 << 20)
    assert head == {"op": "call", "n": 1}
    assert len(back) == len(arrays)
    for a, b in zip(arrays, back):
        assert b.shape == a.shape and b.dtype == a.dtype.newbyteorder("<") and np.array_equal(a, b)
        assert b.flags.writeable and b.flags.owndata


def test_bad_magic_is_refused():
    with pytest.raises(ProtocolError, match="bad magic"):
        read_message(_raw({"op": "x"}, magic=b"HTTP"), max_bytes=1 << 20)


def test_header_over_the_limit_is_refused_before_it_is_read():
    stream = _NoBigReads(MAGIC + struct.pack("<I", MAX_HEADER + 1) + b"{}", limit=8)
    with pytest.raises(ProtocolError, match="exceeds"):
        read_message(stream, max_bytes=1 << 20)


def test_header_must_be_a_json_object():
    for body in (b"not json", b"[" * 100_000, b"[1, 2]"):
        stream = io.BytesIO(MAGIC + struct.pack("<I", len(body)) + body)
        with pytest.raises(ProtocolError):
            read_message(stream, max_bytes=1 << 20)


@pytest.mark.parametrize("dtype", ["|O", "<c16", "<U8", "|V8", "<M8[s]", ">f8", None, 5])
def test_dtype_not_allowed_is_refused(dtype):
    with pytest.raises(ProtocolError, match="is not allowed"):
        read_message(_raw({"_arrays": [{"dtype": dtype, "shape": [1]}]}, b"\0" * 16), max_bytes=1 << 20)


@pytest.mark.parametrize("shape", [[1] * (MAX_NDIM + 1), [-1], [2**31], [1.5], "3", None, [True]])
def test_bad_or_too_many_dims_are_refused(shape):
    with pytest.raises(ProtocolError, match="bad shape"):
        read_message(_raw({"_arrays": [{"dtype": "<f8", "shape": shape}]}), max_bytes=1 << 20)


def test_exactly_max_ndim_is_accepted():
    """Negative control for the dims cap: MAX_NDIM itself is fine."""
    head, (a,) = read_message(_raw({"_arrays": [{"dtype": "|u1", "shape": [1] * MAX_NDIM}]}, b"\x07"), max_bytes=8)
    assert a.shape == (1,) * MAX_NDIM and a.item() == 7


def test_total_over_max_bytes_is_refused_before_allocation():
    """Two arrays that each fit but together do not; and one claiming ~100 GB with no body at all:
    refused from the header alone (the stream is never asked for the buffers)."""
    two = {"_arrays": [{"dtype": "<f8", "shape": [100]}, {"dtype": "<f8", "shape": [100]}]}
    with pytest.raises(ProtocolError, match="limit"):
        read_message(_raw(two, b"\0" * 1600), max_bytes=1000)
    huge = _raw({"_arrays": [{"dtype": "<f8", "shape": [2**31 - 1, 2**31 - 1]}]}).getvalue()
    with pytest.raises(ProtocolError, match="limit"):
        read_message(_NoBigReads(huge, limit=len(huge)), max_bytes=1 << 20)
    head, arrays = read_message(_raw(two, b"\0" * 1600), max_bytes=1600)  # at the limit: accepted
    assert [a.shape for a in arrays] == [(100,), (100,)]


@pytest.mark.parametrize("cut", [0, 3, 7, 12])
def test_truncated_stream_is_eof(cut):
    buf = io.BytesIO()
    write_message(buf, {"op": "call"}, [np.arange(4.0)])
    data = buf.getvalue()
    for stream in (io.BytesIO(data[:cut]), io.BytesIO(data[:-1])):
        with pytest.raises(EOFError):
            read_message(stream, max_bytes=1 << 20)


def test_values_decode_strictly():
    arrays: list = []
    tree = encode_value({"w": np.ones(2), "k": [1, 2.5, None, "x", True], "s": np.float32(1)}, arrays)
    back = decode_value(tree, arrays)
    assert np.array_equal(back["w"], np.ones(2)) and back["k"] == [1, 2.5, None, "x", True]
    for bad in ({"a": 5}, {"a": "0"}, {"zz": 1}, {"f": [1]}, {"a": 0, "b": 1}, [1],
                {"list": [{"list": [{"list": [{"list": [{"list": [{"i": 1}]}]}]}]}]}):
        with pytest.raises(ProtocolError):
            decode_value(bad, arrays)
