"""Which MNIST protocol decides the same as today's, for less? (issue 22)

Trains every known-buggy variant (``tests/fixtures/buggy/``), every correct fixture
(``tests/fixtures/correct/``) and the reference under a protocol, on several secrets, in-process, and
records the verdict band each one gets (the rubric's fraction of the MNIST points, relative to the
reference under the same protocol and secret). Comparing the bands of two protocols row by row is
the study; ``bench/README.md`` holds the table.

    python bench/protocol_study.py --protocol current --secrets 20 --out old.jsonl
    python bench/protocol_study.py --protocol mlp-e1-s20k-h64 --secrets 20 --out new.jsonl
    python bench/protocol_study.py --compare old.jsonl new.jsonl

It uses only ``grader.checks.mnist`` (``Protocol``, ``datasets``, ``train_and_score``), so it runs
against any version of the grader on ``PYTHONPATH`` (the old one, for the "before" column).
"""
from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # pragma: no cover - direct invocation
    sys.path.insert(0, str(ROOT))

MNIST_OF = {"Linear": "mlp", "ReLU": "mlp", "LogSoftmax": "mlp", "NLLLoss": "mlp", "LogisticRegression": "logreg"}
# Candidates: name -> (kind, changes to the protocol, training images kept (None: all), stratified)
CANDIDATES = {
    "current": {"mlp": ({}, None), "logreg": ({}, None)},
    "mlp-e1": {"mlp": ({"epochs": 1}, None)},
    "mlp-e1-h64": {"mlp": ({"epochs": 1, "hidden": 64}, None)},
    "mlp-e1-s20k-h64": {"mlp": ({"epochs": 1, "hidden": 64}, 20000)},
    "mlp-e2-s20k-h64": {"mlp": ({"epochs": 2, "hidden": 64}, 20000)},
    "mlp-e1-s30k-h32": {"mlp": ({"epochs": 1, "hidden": 32}, 30000)},
    "mlp-e1-s12k-h32": {"mlp": ({"epochs": 1, "hidden": 32}, 12000)},
    "logreg-e1": {"logreg": ({"epochs": 1}, None)},
    "logreg-e1-s4k": {"logreg": ({"epochs": 1}, 4000)},
}


def stratified(y: np.ndarray, n: int, seed: int = 20240) -> np.ndarray:
    """A fixed subset of ``n`` training indices with every class in its share of the whole, sorted."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    take = np.floor(counts / counts.sum() * n).astype(int)
    take[: n - take.sum()] += 1
    idx = [rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, take)]
    return np.sort(np.concatenate(idx))


def subjects(kind: str):
    """(name, expected, impl factory) for the reference, the correct fixtures and the buggy variants."""
    from grader.pipeline import reference_impl
    from grader.sandbox.client import LocalImpl
    from grader.validate import load_variant, variant_impl

    yield "reference", "correct", reference_impl
    for d in sorted((ROOT / "tests/fixtures/correct").iterdir()):
        if d.is_dir():
            yield f"correct/{d.name}", "correct", (lambda d=d: _prepared(d))
    for path in sorted((ROOT / "tests/fixtures/buggy").glob("*.py")):
        mod = load_variant(path)
        if MNIST_OF[mod.COMPONENT] == kind:
            yield f"buggy/{path.stem}", mod.CAUSE, (lambda mod=mod: variant_impl(mod))


def _prepared(folder: Path):
    """A correct fixture as the grader sees it (the provided files next to the two student files)."""
    import tempfile

    from grader.intake import Submission, prepare
    from grader.sandbox.client import LocalImpl

    if folder not in _PREPARED:
        _PREPARED[folder] = prepare(Submission(folder.name, folder, "dir"), Path(tempfile.mkdtemp(prefix="study-"))).package_dir
    return LocalImpl.from_package_dir(_PREPARED[folder])


_PREPARED: dict = {}


def protocol_for(name: str, kind: str):
    from grader.checks import mnist as M

    base = M.MLP if kind == "mlp" else M.LOGREG
    changes, keep = CANDIDATES[name].get(kind, CANDIDATES["current"][kind])
    return replace(base, **changes), keep


def study(name: str, secrets: list[str], kinds: list[str], out, label: str | None = None) -> None:
    from threadpoolctl import threadpool_limits

    from grader.checks import mnist as M
    from grader.scoring import load_rubric

    rubric = load_rubric()
    full = M.datasets()
    for kind in kinds:
        if kind not in CANDIDATES[name] and name != "current":
            continue
        p, keep = protocol_for(name, kind)
        data = full[kind]
        if keep is not None:
            idx = stratified(data.y_train, keep)
            data = replace(data, X_train=np.ascontiguousarray(data.X_train[idx]), y_train=data.y_train[idx])
        rule = rubric.mnist[p.component]
        ref_acc, ref_rec = {}, {}
        new_harness = "reference" in inspect.signature(M.train_and_score).parameters
        subs = list(subjects(kind))
        for secret in secrets:  # secrets outside: an interrupted study still covers every subject
            for name_s, expected, factory in subs:
                t = time.process_time()
                kw = {"reference": ref_rec.get(secret)} if new_harness else {}
                with threadpool_limits(1), np.errstate(all="ignore"):
                    run = M.train_and_score(factory(), p, data, secret=secret, budget=600, **kw)
                cpu = time.process_time() - t
                if name_s == "reference":
                    ref_acc[secret] = run.accuracy
                    ref_rec[secret] = {"grad_norms": getattr(run, "grad_norms", None)}
                frac = rule.fraction(run.accuracy, ref_acc[secret], p.chance)
                row = {"protocol": label or name, "kind": kind, "subject": name_s, "expected": expected, "secret": secret,
                       "accuracy": run.accuracy, "reference": ref_acc[secret], "fraction": frac,
                       "cause": None if run.error is None else run.error.cause, "cpu_s": round(cpu, 3)}
                out.write(json.dumps(row) + "\n")
                out.flush()


def load(path: str) -> dict:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return {(r["kind"], r["subject"], r["secret"]): r for r in rows}


def compare(old_path: str, new_path: str) -> int:
    """Print the band table (markdown) and return the number of subjects whose band changed."""
    old, new = load(old_path), load(new_path)
    by_subject = defaultdict(list)
    for key, r in new.items():
        if key in old:
            by_subject[key[:2]].append((old[key], r))
    changed = 0
    print("| network | subject | bands before (x secrets) | bands after | same on every secret | CPU s before / after |")
    print("|---|---|---|---|---|---|")
    for (kind, subj), pairs in sorted(by_subject.items()):
        def bands(rs):
            c = defaultdict(int)
            for r in rs:
                c[r["fraction"]] += 1
            return ", ".join(f"{k:g} x{v}" for k, v in sorted(c.items(), reverse=True))
        same = sum(1 for a, b in pairs if a["fraction"] == b["fraction"])
        if same != len(pairs):
            changed += 1
        cpu_a = np.mean([a["cpu_s"] for a, _ in pairs])
        cpu_b = np.mean([b["cpu_s"] for _, b in pairs])
        print(f"| {kind} | {subj} | {bands([a for a, _ in pairs])} | {bands([b for _, b in pairs])} | "
              f"{same}/{len(pairs)} | {cpu_a:.2f} / {cpu_b:.2f} |")
    print(f"\n{changed} subject(s) with a different band on some secret.")
    return changed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--protocol", choices=sorted(CANDIDATES), default="current")
    ap.add_argument("--secrets", type=int, default=20)
    ap.add_argument("--kinds", default="mlp,logreg")
    ap.add_argument("--out", default="-")
    ap.add_argument("--label", help="protocol name to record (default: --protocol)")
    ap.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"))
    args = ap.parse_args(argv)
    if args.compare:
        compare(*args.compare)
        return 0
    secrets = [f"study-{i}" for i in range(args.secrets)]
    out = sys.stdout if args.out == "-" else open(args.out, "a")
    study(args.protocol, secrets, args.kinds.split(","), out, args.label)
    return 0


if __name__ == "__main__":
    sys.exit(main())
