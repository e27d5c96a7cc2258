"""Benchmark: a Dask LocalCluster of 2 workers against the local process pool of 2 (issue 18).

Run ``python bench/bench_dask.py`` (``--repeat N``, ``--no-mnist``, ``--out FILE``); it prints one JSON
document. The same 40 mixed submissions as ``bench/bench.py`` (its ``build_mixed``) are graded with
``grader grade --jobs 2`` and with ``grader grade --jobs 2 --executor dask-local``, alternating, each
into a fresh folder. Two figures per executor, medians over the repeats:

- ``wall_s``: the whole command, from start to exit (for Dask: starting and stopping the cluster too);
- ``grading_s``: ``run.json``'s ``timings.grading``, the time from the first task submitted to the
  last result written, i.e. what grows with the class (the cluster's start is paid once per run).

Target: Dask's time within 15% of the local pool's (ratio <= 1.15) on ``grading_s``,
with ``wall_s`` reported next to it. Needs the extra: ``pip install -e ".[dask]"``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from bench import build_mixed  # noqa: E402  (the class of bench/bench.py, so both benchmarks grade the same)

TOLERANCE = 0.15
SECRET = "bench-secret"


def run_once(subs: Path, out: Path, executor: str, mnist: bool) -> dict:
    cmd = [sys.executable, "-m", "grader.cli", "grade", str(subs), "--out", str(out), "--secret", SECRET,
           "--jobs", "2", "--quiet", "--executor", executor] + ([] if mnist else ["--no-mnist"])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    load = os.getloadavg()[0]
    t = time.perf_counter()
    res = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t
    if res.returncode != 0:
        raise RuntimeError(f"{executor}: exit {res.returncode}: {res.stderr[-2000:]}")
    run = json.loads((out / "run.json").read_text())
    return {"wall_s": round(wall, 2), "grading_s": run["timings"]["grading"], "loadavg_1min_at_start": round(load, 2),
            "gradebook": (out / "gradebook.csv").read_bytes()}


def summarise(runs: list[dict], n: int) -> dict:
    out = {}
    for key in ("wall_s", "grading_s"):
        vals = [r[key] for r in runs]
        out[key] = {"median": round(statistics.median(vals), 2), "min": min(vals), "max": max(vals), "runs": vals}
        out[key]["per_minute"] = round(60 * n / out[key]["median"], 1)
    out["loadavg_1min_at_start"] = [r["loadavg_1min_at_start"] for r in runs]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-mnist", action="store_true", help="gradient checks only (quicker, less realistic)")
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
        subs = build_mixed(Path(tmp) / "subs", 40)
        n = sum(1 for p in subs.iterdir() if not p.name.startswith(("_", ".")))
        runs: dict[str, list[dict]] = {"local": [], "dask-local": []}
        for k in range(args.repeat):
            for ex in (("local", "dask-local") if k % 2 == 0 else ("dask-local", "local")):
                r = run_once(subs, Path(tmp) / f"{ex}-{k}", ex, not args.no_mnist)
                print(f"[{k + 1}/{args.repeat}] {ex}: wall {r['wall_s']} s, grading {r['grading_s']} s", file=sys.stderr)
                runs[ex].append(r)
    books = {r.pop("gradebook") for rs in runs.values() for r in rs}
    doc = {"submissions": n, "mnist": not args.no_mnist, "repeat": args.repeat, "cpus": os.cpu_count(),
           "local_pool_jobs_2": summarise(runs["local"], n), "dask_local_cluster_2_workers": summarise(runs["dask-local"], n),
           "identical_gradebooks": len(books) == 1}
    for key in ("grading_s", "wall_s"):
        ratio = doc["dask_local_cluster_2_workers"][key]["median"] / doc["local_pool_jobs_2"][key]["median"]
        doc[f"dask_over_local_{key}"] = round(ratio, 3)
    doc["target"] = f"dask within {TOLERANCE:.0%} of local: grading_s ratio <= {1 + TOLERANCE:.2f}"
    doc["target_met"] = doc["dask_over_local_grading_s"] <= 1 + TOLERANCE
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
