"""Benchmark of notebook intake: reading a notebook saved with its outputs, and reducing big cells.

Run ``python bench/bench_notebook.py`` (``--mb N`` for the size of the saved notebook, default 100);
it prints one JSON document. Each figure is measured in a fresh process (time of a first read, then the
peak of Python allocations of a second read, with tracemalloc; a file over 8 MB is parsed by a helper
process, whose peak resident memory is reported too). Targets (issues 14 and 21): a 100 MB notebook of plots costs under 5 s more than
the same code without outputs; any notebook within the code limit is reduced in under 5 s (the
10,000-constant cell took 299 s before the reduction was made linear).
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = [(ROOT / "solutions" / f).read_text() for f in ("layers.py", "logistic_regression.py")]
TARGET_S = 5.0


def _cell(src: str, outputs: list | None = None) -> dict:
    return {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": outputs or [], "source": src}


def _write(path: Path, cells: list[dict]) -> Path:
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}, indent=1))
    return path


def saved_notebook(path: Path, megabytes: int) -> Path:
    image = base64.b64encode(os.urandom(786_432)).decode()  # a 1 MB base64 PNG-sized payload
    plot = {"output_type": "display_data", "metadata": {}, "data": {"image/png": image, "text/plain": ["<Figure>"]}}
    return _write(path, [_cell("%matplotlib inline\nimport numpy as np\nimport matplotlib.pyplot as plt\n"),
                         *(_cell(s) for s in SOLUTION),
                         _cell("plt.plot(np.arange(10))\nplt.show()\n", [plot] * megabytes)])


def code_notebooks(folder: Path) -> dict[str, Path]:
    limit = (512 << 10) - (64 << 10)  # room for the two solution cells
    consts = "".join(f"CONSTANT_{i:05d} = {i * 1.5!r}\n" for i in range(10_000))
    defs = "".join(f"def f{i}(x, y=1.0):\n    return x + y * {i}\n" for i in range(40_000))
    calls = "print(1)\n" * (limit // 9)
    return {name: _write(folder / f"{name}.ipynb", [_cell(src[:limit].rsplit("\n", 3)[0] + "\n"), *map(_cell, SOLUTION)])
            for name, src in {"ten_thousand_constants": consts, "half_mb_of_defs": defs, "half_mb_of_calls": calls}.items()}


PROBE = """
import json, resource, sys, time, tracemalloc
from pathlib import Path
from grader.intake.notebook import NotebookError, read_notebook
start = time.perf_counter()
try:
    files, notes = read_notebook(Path(sys.argv[1]))
    outcome = "graded"
except NotebookError as exc:
    outcome = "rejected: " + str(exc)[:120]
seconds = time.perf_counter() - start
tracemalloc.start()
try:
    read_notebook(Path(sys.argv[1]))
except NotebookError:
    pass
print(json.dumps({"seconds": round(seconds, 3), "outcome": outcome,
                  "peak_python_mb": round(tracemalloc.get_traced_memory()[1] / 1e6, 1),
                  "peak_rss_mb_of_helper": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}))
"""


def probe(path: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, env=env, check=True)
    result = json.loads(out.stdout)
    result["file_mb"] = round(path.stat().st_size / 1e6, 1)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        figures = {"saved_with_outputs": probe(saved_notebook(folder / "big.ipynb", args.mb)),
                   "same_code_without_outputs": probe(saved_notebook(folder / "small.ipynb", 0))}
        figures.update({name: probe(p) for name, p in code_notebooks(folder).items()})
    extra = figures["saved_with_outputs"]["seconds"] - figures["same_code_without_outputs"]["seconds"]
    report = {"figures": figures, "loadavg": os.getloadavg(),
              "targets": {"outputs_extra_seconds": {"value": round(extra, 3), "target": TARGET_S, "met": extra < TARGET_S},
                          **{f"{name}_seconds": {"value": figures[name]["seconds"], "target": TARGET_S,
                                                 "met": figures[name]["seconds"] < TARGET_S}
                             for name in ("ten_thousand_constants", "half_mb_of_defs", "half_mb_of_calls")}}}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
