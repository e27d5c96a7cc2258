"""What the workers' fork server saves (issue 22): worker starts, and a class, paired with and without.

    python bench/fork_server.py               # 20 starts each way, twice, alternating (about 20 s)
    python bench/fork_server.py --batch 40    # also 40 correct submissions, --jobs 2, both ways, twice

A start here is what every submission pays: a worker started (forked by the grading process's fork
server, or a new interpreter with ``GRADER_NO_FORK_SERVER=1``), one call that imports the student's
``layers.py``, and the close. CPU counts this process, its reaped children and the fork server with
the workers it reaped. Prints one JSON document (progress lines go to stderr).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import numpy  # noqa: E402,F401  (loaded before threadpool_limits)
from threadpoolctl import threadpool_limits  # noqa: E402


def _cpu() -> float:
    from grader.sandbox import spawner

    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime + spawner.server_cpu()


def starts(package_dir: Path, n: int, fork: bool) -> dict:
    from grader.sandbox import spawner
    from grader.sandbox.client import SandboxConfig, SandboxImpl

    if fork:
        os.environ.pop("GRADER_NO_FORK_SERVER", None)
    else:
        os.environ["GRADER_NO_FORK_SERVER"] = "1"
        spawner.shutdown()
    warm = SandboxImpl(package_dir, SandboxConfig())
    warm.start()  # the fork server's own start is paid once per grading process, not per submission
    warm.close()
    c0, t0 = _cpu(), time.perf_counter()
    for _ in range(n):
        impl = SandboxImpl(package_dir, SandboxConfig())
        impl.start()
        impl.new("Linear", 3, 2)
        impl.close()
    return {"wall_ms": round((time.perf_counter() - t0) / n * 1000, 1), "cpu_ms": round((_cpu() - c0) / n * 1000, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=20, help="worker starts per measurement")
    ap.add_argument("--batch", type=int, default=0, help="also grade a class of this many correct submissions")
    args = ap.parse_args(argv)
    threadpool_limits(1)
    from bench import build_correct, log, run_batch
    from grader.intake import Submission, prepare

    work = Path(tempfile.mkdtemp(prefix="bench-fork-"))
    doc: dict = {"loadavg_start": os.getloadavg()[0], "starts": {"fork": [], "new_interpreter": []}}
    try:
        sub = build_correct(work / "one", 1)
        folder = next(p for p in sub.iterdir() if p.is_dir())
        pkg = prepare(Submission("one", folder, "dir"), work / "scratch").package_dir
        for i in range(2):
            for fork in ((True, False) if i % 2 == 0 else (False, True)):
                log(f"{args.starts} starts, {'forked' if fork else 'new interpreter'}")
                doc["starts"]["fork" if fork else "new_interpreter"].append(starts(pkg, args.starts, fork))
        if args.batch:
            klass = build_correct(work / "class", args.batch)
            doc["batch"] = {"fork": [], "new_interpreter": []}
            for i in range(2):
                for fork in ((True, False) if i % 2 == 0 else (False, True)):
                    os.environ.pop("GRADER_NO_FORK_SERVER", None) if fork else os.environ.update(GRADER_NO_FORK_SERVER="1")
                    log(f"{args.batch} correct, --jobs 2, {'forked' if fork else 'new interpreter'}")
                    r = run_batch(klass, work / "out", 2)
                    doc["batch"]["fork" if fork else "new_interpreter"].append(
                        {"wall_s": round(r["wall"], 2), "cpu_per_submission_s": round(r["cpu"] / r["n"], 3),
                         "load": round(r["load"], 2)})
        for part in [k for k in ("starts", "batch") if k in doc]:
            key = "cpu_ms" if part == "starts" else "cpu_per_submission_s"
            f, n = (statistics.median(x[key] for x in doc[part][m]) for m in ("fork", "new_interpreter"))
            doc[part]["cpu_saved_per_start" if part == "starts" else "cpu_saved_per_submission"] = round(n - f, 3)
    finally:
        os.environ.pop("GRADER_NO_FORK_SERVER", None)
        shutil.rmtree(work, ignore_errors=True)
    doc["loadavg_end"] = os.getloadavg()[0]
    print(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
