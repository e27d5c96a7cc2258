"""Resume keys: a submission is skipped only when it would be graded exactly the same way.

The key hashes the submission's bytes (:func:`fingerprint`), the student id, the rubric, the
secret, the options, the grader version and the assignment spec's digest (:func:`job_key`).
"""
from __future__ import annotations

import hashlib
import os
import secrets as pysecrets
from pathlib import Path

from .. import __version__
from ..intake import Submission
from ..intake.discover import student_files
from ..pipeline import GradeOptions
from ..report.text import hash_bytes

FULL_HASH_LIMIT = 1 << 30  # bytes; larger files (refused by intake anyway) are keyed by size, mtime, head, tail


def _hash_file(h, p: Path) -> None:
    """Stream a file into ``h`` in chunks, never holding it in memory (a 1 TB sparse file is cheap
    to make and must not take the batch down)."""
    st = p.stat()
    h.update(f"{st.st_size}:".encode())
    with open(p, "rb") as fh:
        if st.st_size <= FULL_HASH_LIMIT:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        else:
            h.update(f"{st.st_mtime_ns}:".encode() + fh.read(1 << 20))
            fh.seek(-(1 << 20), os.SEEK_END)
            h.update(fh.read(1 << 20))


def fingerprint(sub: Submission) -> str:
    """sha256 of the bytes that can influence grading of this submission."""
    h = hashlib.sha256(sub.kind.encode())
    # os.fsencode, never str.encode: names come from students and need not be UTF-8 (a clone of a
    # repository holding a layers.py link to b"\xff.py" made ``.encode()`` raise for the whole batch).
    paths = ([base / name for base in (sub.path, sub.path / "assignment") for name in student_files()]
             if sub.kind == "dir" else [sub.path])
    for p in paths:
        h.update(os.fsencode(p.relative_to(sub.path.parent)) + b"\x00")
        try:
            if p.is_symlink():
                h.update(b"<link>" + os.fsencode(os.readlink(p)))
            elif p.is_file():
                _hash_file(h, p)
        except OSError as exc:
            h.update(hash_bytes(repr(exc)))
    return h.hexdigest()


def job_key(sub: Submission, opts: GradeOptions) -> str:
    parts = [fingerprint(sub), sub.student, opts.rubric.grading_digest or opts.rubric.digest, opts.secret, __version__,
             str(opts.public_only), str(opts.mnist), str(opts.sandbox), f"{opts.time_budget:g}",
             str(opts.per_student_secret), opts.attempt, opts.spec.digest]
    return hashlib.sha256(hash_bytes("\x00".join(parts))).hexdigest()


def safe_key(sub: Submission, opts: GradeOptions) -> str:
    """The job key, or one that matches nothing (the submission is then simply graded again)."""
    try:
        return job_key(sub, opts)
    except Exception as exc:
        return f"unkeyed:{type(exc).__name__}:{pysecrets.token_hex(8)}"
