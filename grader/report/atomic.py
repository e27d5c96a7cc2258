"""Atomic file writes: a reader (or a resumed run) sees the old file or the new one, never half."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

TMP_SUFFIX = ".tmp"


def _writer_alive(tmp: Path) -> bool:
    """Whether the process that named this temporary file (``.<name>.<pid>-XXXX.tmp``) still runs."""
    try:
        pid = int(tmp.name.rsplit(".", 2)[-2].split("-", 1)[0])
    except (ValueError, IndexError):
        return False  # not ours, or written before the pid was in the name: nobody is finishing it
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_leftovers(folder: str | Path, depth: int = 1) -> list[Path]:
    """Remove the half-written files a killed run left (``kill -9`` between create and rename).

    Only hidden ``*.tmp`` files whose writer is gone are removed, so a run writing next door is
    never disturbed. Returns what was removed."""
    folder, removed = Path(folder), []
    if not folder.is_dir():
        return removed
    dirs = [folder] + ([d for d in folder.iterdir() if d.is_dir() and not d.is_symlink()] if depth else [])
    for d in dirs:
        for tmp in d.glob(f".*{TMP_SUFFIX}"):
            if tmp.is_file() and not tmp.is_symlink() and not _writer_alive(tmp):
                try:
                    tmp.unlink()
                    removed.append(tmp)
                except OSError:
                    pass
    return removed


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def write_json(path: str | Path, obj) -> Path:
    return write_atomic(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")
