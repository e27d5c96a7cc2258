"""Reading a notebook's JSON without its outputs, in this process or, for a big file, in a bounded one.

An output is dropped as soon as the parser has built it (``object_pairs_hook``), so at most one is
held; a 100 MB notebook of plots costs about twice its size in memory, briefly. What no hook can
bound is a file of millions of tiny JSON values (``[[],[],...]`` takes 50 times its size): a file
over :data:`IN_PROCESS_BYTES` is therefore parsed by ``python -I -S`` running this file, under an
address-space limit and a timeout, and only the code cells' sources and tags come back.
"""
from __future__ import annotations

import json
import sys

IN_PROCESS_BYTES = 8 << 20
MAX_CELLS = 50_000               #: cells of any type


def drop_outputs(pairs: list) -> dict:
    """``object_pairs_hook``: an output is dropped as soon as it is parsed, so at most one is held."""
    if any(k == "output_type" for k, _ in pairs):
        return {}
    return {k: v for k, v in pairs if k not in ("outputs", "attachments")}


def cells_of(raw: bytes) -> list[dict]:
    """The notebook's cells, without outputs; ValueError (with the reason) if it is not a notebook."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        nb = json.loads(raw, object_pairs_hook=drop_outputs)
    except UnicodeDecodeError:
        raise ValueError("it is not UTF-8 text") from None
    except RecursionError:
        raise ValueError("its JSON is nested too deeply") from None
    if isinstance(nb, dict) and isinstance(nb.get("worksheets"), list):  # nbformat 3
        sheets = [w for w in nb["worksheets"] if isinstance(w, dict)]
        cells = [c for w in sheets for c in (w.get("cells") if isinstance(w.get("cells"), list) else [])]
    elif isinstance(nb, dict) and isinstance(nb.get("cells"), list):
        cells = nb["cells"]
    else:
        raise ValueError("it has no list of cells")
    return [c if isinstance(c, dict) else {} for c in cells]


def slim(cells: list[dict], max_code: int) -> list[dict]:
    """What intake needs of each cell (type, source, tags), with at most ``max_code`` characters of code
    (one more, so that the reader can tell that the limit was passed)."""
    if len(cells) > MAX_CELLS:
        raise ValueError(f"it has {len(cells)} cells, over the limit of {MAX_CELLS}")
    out, total = [], 0
    for c in cells:
        meta = c.get("metadata")
        tags = meta.get("tags") if isinstance(meta, dict) else None
        kind = c.get("cell_type")
        src = c.get("source", c.get("input", "")) if kind == "code" else ""
        if isinstance(src, list) and all(isinstance(s, str) for s in src):
            src = "".join(src)
        if isinstance(src, str):
            src = src[:max(0, max_code + 1 - total)]
            total += len(src)
        out.append({"cell_type": kind if isinstance(kind, str) else None, "source": src,
                    "metadata": {"tags": [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []}})
    return out


def main() -> None:
    """``python -I -S notebook_json.py FD SIZE MAX_CODE MEMORY``: the slim cells as JSON on stdout."""
    import os
    import resource

    fd, size, max_code, memory = map(int, sys.argv[1:5])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    try:
        with os.fdopen(fd, "rb") as fh:
            cells = cells_of(fh.read(size + 1))
        result = {"cells": slim(cells, max_code)}
        del cells
    except ValueError as exc:
        result = {"error": str(exc)[:300]}
    except MemoryError:
        result = {"error": "its JSON holds too many values to read within the memory limit "
                           "(clear the outputs and save it again)"}
    sys.stdout.write(json.dumps(result))


if __name__ == "__main__":
    main()
