"""Text from a submission, made encodable and bounded before anything writes or prints it.

Names, exception messages and printed output all come from student code or the student's files,
and a Python ``str`` can hold what no file can: a lone surrogate (``"\\ud800"`` in an exception
message crosses the JSON pipe intact) or the surrogate escapes ``os.fsdecode`` makes of a file name
that is not UTF-8 (``b"stud\\xe9nt"`` becomes ``"stud\\udce9nt"``). Writing either as UTF-8 raises
``UnicodeEncodeError`` (issue 21: one such message cost a whole batch its gradebook). Every string a
submission produced goes through :func:`clean_text` at the batch boundary; the result encodes to
UTF-8 under every error handler and is at most ``limit`` characters long.

Surrogate escapes of undecodable bytes become ``\\xNN`` (the byte that was there), other lone
surrogates ``\\uDNNN``; nothing else is changed (control characters are the business of the
renderers, which know whether a line break is allowed).
"""
from __future__ import annotations

import os
from typing import Any

TRUNCATED = " ...[truncated]"


def _escape_surrogates(s: str) -> str:
    out = []
    for ch in s:
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:      # os.fsdecode / surrogateescape of the byte o - 0xDC00
            out.append(f"\\x{o - 0xDC00:02x}")
        elif 0xD800 <= o <= 0xDFFF:    # any other lone surrogate
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    return "".join(out)


def clean_text(value: Any, limit: int | None = None) -> str:
    """``value`` as a string that encodes to UTF-8, at most ``limit`` characters long.

    Bytes are decoded as UTF-8 with undecodable bytes shown as ``\\xNN``; any other non-string is
    ``str()``-ed (an object whose ``__str__`` raises is shown by its type name).
    """
    if isinstance(value, (bytes, bytearray)):
        s = bytes(value).decode("utf-8", "surrogateescape")
    elif isinstance(value, str):
        s = value
    else:
        try:
            s = str(value)
        except Exception:
            s = f"<{type(value).__name__}>"
    if limit is not None and len(s) > 4 * limit + 64:
        s = s[: 4 * limit + 64]  # bound the work before escaping (each char may become 6)
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        s = _escape_surrogates(s)
    if limit is not None and len(s) > limit:
        keep = max(limit - len(TRUNCATED), 0)
        s = s[:keep] + TRUNCATED[: limit - keep]
    return s


def clean_name(name: str | bytes | os.PathLike) -> str:
    """A file or folder name for messages and reports: exact where it is valid UTF-8, the
    undecodable bytes as ``\\xNN`` otherwise, at most 255 characters."""
    return clean_text(os.fspath(name) if isinstance(name, os.PathLike) else name, 255)


def clean_tree(obj: Any, limit: int = 20_000, *, depth: int = 0) -> Any:
    """Every string in a JSON-like tree (dict keys too) through :func:`clean_text`; numbers, bools
    and None pass unchanged, anything else becomes its cleaned ``str``."""
    if isinstance(obj, str):
        return clean_text(obj, limit)
    if obj is None or isinstance(obj, (bool, int, float)):
        return obj
    if depth > 20:
        return clean_text(repr(obj), 200)
    if isinstance(obj, dict):
        return {clean_text(k, 500): clean_tree(v, limit, depth=depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_tree(v, limit, depth=depth + 1) for v in obj]
    return clean_text(obj, limit)


def hash_bytes(s: str) -> bytes:
    """``s`` as bytes for a hash: every str encodes, lone surrogates and surrogate escapes included
    (two different names never hash alike)."""
    return s.encode("utf-8", "surrogatepass")
