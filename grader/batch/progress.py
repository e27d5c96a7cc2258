"""Progress of a batch on stderr: a bar on a terminal, one line per submission in a log."""
from __future__ import annotations

import sys
import time


def progress_printer(enabled: bool):
    """The ``progress`` callback of :func:`grader.batch.grade_batch` for the CLI, or None when quiet.

    On a terminal a tqdm bar; otherwise (CI logs, files) one line per submission with its score,
    the rate and the time left."""
    if not enabled:
        return None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = {"b": None}

        def progress(done, total, r, skipped):
            if bar["b"] is None:
                bar["b"] = tqdm(total=total, unit="sub", file=sys.stderr, dynamic_ncols=True)
            bar["b"].update(1)
            bar["b"].set_postfix_str(f"{r.student[:20]} {r.score:g}{' (cached)' if skipped else ''}")
            if done == total:
                bar["b"].close()

        return progress
    start = time.monotonic()

    def progress(done, total, r, skipped):
        el = time.monotonic() - start
        rate = done / el * 60 if el > 0 else 0.0
        eta = (total - done) / (done / el) if done and el > 0 else 0.0
        print(f"[{done}/{total}] {r.student}: {r.score:g}/{r.max_score:g} {r.status}"
              f"{' (already graded)' if skipped else ''} | {rate:.0f}/min, ETA {eta:.0f} s", file=sys.stderr, flush=True)

    return progress
