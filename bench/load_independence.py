"""Verdicts independent of machine load, MNIST included (issue 21).

Grades the same 60 mixed submissions (``tests/test_batch.py``'s class with 35 correct ones) twice
with one secret: on the machine as it is, then with ``--hogs`` CPU-bound processes running beside
the batch. Prints one JSON document: the wall time of each run, the load average, and every
submission whose gradebook row or ``results.json`` (timing fields aside) differs. The test suite
runs the same comparison without MNIST (``tests/test_boundaries.py::test_verdicts_do_not_depend_on_load``).

    python bench/load_independence.py [--hogs 2] [--jobs 2] [--no-mnist]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def _grade(subs: Path, out: Path, jobs: int, mnist: bool) -> float:
    cmd = [sys.executable, "-m", "grader.cli", "grade", str(subs), "--out", str(out), "--jobs", str(jobs),
           "--secret", "load-bench", "--quiet"] + ([] if mnist else ["--no-mnist"])
    t = time.monotonic()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return round(time.monotonic() - t, 1)


def _verdicts(out: Path) -> dict:
    docs = {}
    for d in sorted(p for p in out.iterdir() if p.is_dir()):
        doc = json.loads((d / "results.json").read_text(encoding="utf-8"))
        doc.pop("execution_time", None)
        doc.get("extra_data", {}).pop("timings", None)
        doc.get("extra_data", {}).get("budget", {}).pop("used", None)
        doc.get("extra_data", {}).get("budget", {}).pop("wall", None)
        docs[d.name] = doc
    return docs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hogs", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-mnist", action="store_true")
    args = ap.parse_args()
    from test_batch import build_class

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subs = build_class(tmp / "subs", n_correct=35)
        load0 = os.getloadavg()[0]
        idle = _grade(subs, tmp / "idle", args.jobs, not args.no_mnist)
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.hogs)]
        try:
            time.sleep(1)
            load1 = os.getloadavg()[0]
            loaded = _grade(subs, tmp / "loaded", args.jobs, not args.no_mnist)
        finally:
            for h in hogs:
                h.kill()
                h.wait()
        a, b = _verdicts(tmp / "idle"), _verdicts(tmp / "loaded")
        same_gradebook = (tmp / "idle" / "gradebook.csv").read_bytes() == (tmp / "loaded" / "gradebook.csv").read_bytes()
        differ = sorted(s for s in a.keys() | b.keys() if a.get(s) != b.get(s))
        print(json.dumps({"submissions": len(a), "mnist": not args.no_mnist, "hogs": args.hogs, "jobs": args.jobs,
                          "wall_s": {"as_is": idle, "with_hogs": loaded},
                          "loadavg_1min_at_start": {"as_is": load0, "with_hogs": load1},
                          "identical_gradebook": same_gradebook, "differing_results": differ}, indent=2))


if __name__ == "__main__":
    main()
