"""Recorded reference answers, for the student release that ships no ``solutions/``.

``grader check`` compares a student's answers with the reference's. In the student distribution the
reference code is absent, so ``grader release`` runs every public check against the reference
through a :class:`RecordingImpl` and ships what the reference answered; there a
:class:`RecordedImpl` plays those answers back. Both sit behind the same oracle interface as
``LocalImpl`` (``OracleBase.request`` is the single point every request goes through), so the checks
do not know which one they talk to.

How a request is looked up. A reference object's answers depend only on what was done to that very
object (constructor, parameters set, calls made), never on handle numbers or on other objects. The
key of a request is therefore the sha256 of: the key of the previous request on the same object
(a chain starting at its ``new``), the request header as canonical JSON without the handle number,
and each array's dtype, shape and bytes. Two things that would make a plain "header + bytes +
occurrence counter" key fragile are avoided on purpose:

* which reference requests a check makes depends on the student: the central-difference step runs
  only after a student's answer matched, and it draws random directions from the check's generator,
  so an occurrence counter or a global handle number drifts as soon as one case fails (or only one
  component is checked). Chaining per object does not drift; the recording enumerates the student
  outcomes that change what the reference is asked (see ``grader/release/recording.py``).
* the checks build some inputs with ``exp``/``log``, whose last bit may differ between CPUs and numpy
  builds. Floating values are hashed after rounding the mantissa to 24 bits (float32 precision), so
  a one-ulp difference on the student's machine still finds the recorded answer. Requests that are
  meant to differ (inputs shifted by 1e-5 for central differences) stay far apart at that precision,
  and a collision between two different requests would have been caught while recording (the same
  key answered differently raises there).

Storage: one ``.npz`` (``numpy.savez_compressed``, loaded with ``allow_pickle=False``) holding the
JSON index as a byte array plus the reply arrays. No pickle anywhere.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..report.atomic import write_atomic
from .local import LocalImpl
from .oracle import OracleBase

FORMAT = "bpg-recorded-reference"
VERSION = 1
MANTISSA_BITS = 24


class RecordingMissing(RuntimeError):
    """The recorded reference has no answer for a request (the recording and the checks disagree)."""


# --- canonical keys ---------------------------------------------------------------------------------

def _canon_float(x: float) -> str:
    if not np.isfinite(x):
        return repr(float(x))
    m, e = np.frexp(np.float64(x))
    return repr(float(np.ldexp(np.round(m * 2.0 ** MANTISSA_BITS) / 2.0 ** MANTISSA_BITS, e)))


def _canon_tree(v: Any) -> Any:
    """The header with every float rounded (floats travel as ``{"f": repr}`` or plain numbers)."""
    if isinstance(v, dict):
        if len(v) == 1 and "f" in v and isinstance(v["f"], str):
            try:
                return {"f": _canon_float(float(v["f"]))}
            except ValueError:
                return v
        return {str(k): _canon_tree(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_canon_tree(x) for x in v]
    if isinstance(v, float):
        return _canon_float(v)
    return v


def _canon_array(a: np.ndarray) -> bytes:
    a = np.asarray(a)
    head = f"{a.dtype.str}|{a.shape}|".encode()
    if a.dtype.kind == "f":
        m, e = np.frexp(a.astype(np.float64))
        r = np.ldexp(np.round(m * 2.0 ** MANTISSA_BITS) / 2.0 ** MANTISSA_BITS, e)
        return head + np.ascontiguousarray(r).tobytes()
    return head + np.ascontiguousarray(a).tobytes()


def request_key(previous: str, head: dict, arrays: list) -> str:
    """The key of one request: chained to the previous request on the same object (``previous``)."""
    h = hashlib.sha256()
    h.update(previous.encode() + b"\x00")
    body = {k: v for k, v in head.items() if k not in ("h", "_arrays")}
    h.update(json.dumps(_canon_tree(body), sort_keys=True, separators=(",", ":")).encode() + b"\x00")
    for a in arrays:
        h.update(_canon_array(a) + b"\x00")
    return h.hexdigest()


def _stored_reply(reply: dict) -> dict:
    """What is kept of a reply: everything but the handle number and the timing."""
    return {k: v for k, v in reply.items() if k not in ("h", "seconds")}


class _Chains:
    """Per-object history keys (handle number -> key of the last request on that object)."""

    def __init__(self) -> None:
        self.last: dict[int, str] = {}

    def key(self, head: dict, arrays: list) -> tuple[str, int | None]:
        h = head.get("h")
        if head.get("op") == "new":
            return request_key("new", head, arrays), None
        if isinstance(h, int):
            return request_key(self.last.get(h, f"unknown-handle-{h}"), head, arrays), h
        return request_key("", head, arrays), None


# --- recording ----------------------------------------------------------------------------------------

class RecordingImpl(OracleBase):
    """Wraps a trusted in-process implementation and records every request and its reply."""

    def __init__(self, inner: LocalImpl, label: str = "reference (recording)") -> None:
        self.inner = inner
        self.label = label
        self._generation = 0
        self.isolation = dict(getattr(inner, "isolation", {}))
        self._chains = _Chains()
        self.entries: dict[str, tuple[dict, list[np.ndarray]]] = {}
        self.requests = 0

    def request(self, head, arrays, *, cls, method, timeout=None):
        key, h = self._chains.key(head, arrays)
        reply, out = self.inner.request(head, arrays, cls=cls, method=method, timeout=timeout)
        self.requests += 1
        if head.get("op") == "new" and reply.get("ok") and isinstance(reply.get("h"), int):
            self._chains.last[reply["h"]] = key
        elif h is not None:
            self._chains.last[h] = key
        if head.get("op") == "drop":
            self._chains.last.clear()
        stored = (_stored_reply(reply), [np.array(a, copy=True) for a in out])
        prev = self.entries.get(key)
        if prev is None:
            self.entries[key] = stored
        elif not _same(prev, stored):
            raise RuntimeError(f"the reference answered the same request ({cls}.{method}) differently twice; "
                               "it must be deterministic to be recorded")
        return reply, out

    def save(self, path: str | os.PathLike, meta: dict | None = None) -> Path:
        """Write the recording as one ``.npz`` (JSON index + arrays, no pickle), atomically."""
        path = Path(path)
        index: dict[str, Any] = {"format": FORMAT, "version": VERSION, "mantissa_bits": MANTISSA_BITS,
                                 "meta": meta or {}, "entries": {}}
        named: dict[str, np.ndarray] = {}
        for i, (key, (reply, out)) in enumerate(sorted(self.entries.items())):
            names = []
            for j, a in enumerate(out):
                name = f"r{i}_{j}"
                named[name] = np.asarray(a)
                names.append(name)
            index["entries"][key] = {"reply": reply, "arrays": names}
        raw = json.dumps(index, sort_keys=True, separators=(",", ":")).encode()
        buf = io.BytesIO()
        np.savez_compressed(buf, index=np.frombuffer(raw, dtype=np.uint8), **named)
        return write_atomic(path, buf.getvalue())

    def close(self) -> None:
        self.inner.close()


def _same(a: tuple[dict, list], b: tuple[dict, list]) -> bool:
    if json.dumps(a[0], sort_keys=True) != json.dumps(b[0], sort_keys=True) or len(a[1]) != len(b[1]):
        return False
    return all(x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y, equal_nan=True)
               for x, y in zip(a[1], b[1]))


# --- replay ---------------------------------------------------------------------------------------------

class RecordedImpl(OracleBase):
    """Plays back the recorded reference: answers exactly the requests that were recorded."""

    def __init__(self, entries: dict[str, tuple[dict, list[np.ndarray]]], *, meta: dict | None = None,
                 source: str = "", label: str = "reference (recorded)") -> None:
        self.entries = entries
        self.meta = meta or {}
        self.source = source
        self.label = label
        self._generation = 0
        self.isolation = {"recorded": "answers recorded from the reference when the release was built"}
        self._chains = _Chains()
        self._next = 1

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RecordedImpl":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing: this grader has neither the reference solution (solutions/) nor the "
                "recorded reference answers the public checks need. Reinstall the assignment package "
                "you were given (pip install -e .), or ask your instructor for a fresh copy.")
        with np.load(path, allow_pickle=False) as z:
            index = json.loads(bytes(z["index"]).decode())
            if index.get("format") != FORMAT or index.get("version") != VERSION:
                raise ValueError(f"{path} is not a recording this grader can read "
                                 f"(format {index.get('format')!r}, version {index.get('version')!r})")
            entries = {key: (e["reply"], [np.array(z[n]) for n in e["arrays"]])
                       for key, e in index["entries"].items()}
        return cls(entries, meta=index.get("meta") or {}, source=str(path))

    def request(self, head, arrays, *, cls, method, timeout=None):
        key, h = self._chains.key(head, arrays)
        try:
            stored, out = self.entries[key]
        except KeyError:
            raise RecordingMissing(
                f"the recorded reference has no answer for {cls}.{method} ({head.get('op')}) on these inputs. "
                "The recording in this grader does not match its checks: rebuild the release with "
                "`grader release` (instructors), or reinstall the package you were given (students)."
            ) from None
        reply = json.loads(json.dumps(stored))
        if head.get("op") == "new" and reply.get("ok"):
            reply["h"] = self._next
            self._chains.last[self._next] = key
            self._next += 1
        elif h is not None:
            self._chains.last[h] = key
        if head.get("op") == "drop":
            self._chains.last.clear()
        return reply, [np.array(a, copy=True) for a in out]

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
