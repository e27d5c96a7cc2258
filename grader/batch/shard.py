"""CI matrices: ``grader grade --shard i/n`` grades one slice of a class, ``grader merge`` joins them.

A submission belongs to shard ``i`` of ``n`` (1-based, as CI matrices count) when
``sha256(student id, UTF-8) mod n == i - 1``: stable across machines, Python versions and runs, and
independent of which other submissions are in the folder. Each shard writes its usual outputs plus
``shard.json``, the manifest :func:`merge` checks before it trusts anything: the same grader version,
rubric, secret (compared by digest; the manifest never holds the secret) and options in every shard,
each index 1..n exactly once, no student in two shards, and together exactly the class the shards saw.

The merged folder holds the same per-student folders, ``gradebook.csv`` and ``summary.md`` as an
unsharded run, rendered by the same functions from the same records, so they are byte-identical to it
(``results.json`` apart from its timing fields).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..report import render_gradebook, render_summary, sweep_leftovers, write_atomic, write_json
from ..scoring import SubmissionResult

MANIFEST = "shard.json"
FORMAT = "backprop-grader-shard/1"
KEY_FILE = ".grading-key"


class ShardError(ValueError):
    """A ``--shard`` value or a set of shard folders that cannot be used (usage error, exit status 2)."""


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i_s, n_s = text.split("/")
        i, n = int(i_s), int(n_s)
    except ValueError:
        raise ShardError(f"--shard {text}: expected i/n, e.g. 1/4 (shards are numbered 1 to n)") from None
    if n < 1 or not 1 <= i <= n:
        raise ShardError(f"--shard {text}: i must be between 1 and n (shards are numbered 1 to {max(n, 1)})")
    return i, n


def shard_of(student: str, n: int) -> int:
    """The 1-based shard of ``student`` among ``n``."""
    return int.from_bytes(hashlib.sha256(student.encode("utf-8")).digest()[:8], "big") % n + 1


def select(subs: list, shard: tuple[int, int]) -> list:
    i, n = shard
    return [s for s in subs if shard_of(s.student, n) == i]


def _ids_digest(ids) -> str:
    return hashlib.sha256("\x00".join(sorted(ids)).encode("utf-8")).hexdigest()


def write_manifest(out: Path, shard: tuple[int, int], graded: list, everyone: list, opts, max_score: float) -> Path:
    """``shard.json``, written last by a shard run: its presence means the shard is complete."""
    rubric = opts.rubric
    doc = {
        "format": FORMAT, "shard": shard[0], "of": shard[1],
        "assignment": "sha256(student id as UTF-8), first 8 bytes big-endian, mod n, plus 1",
        "grader_version": __version__,
        "rubric": {"name": rubric.name, "sha256": rubric.digest},
        "secret_sha256": hashlib.sha256(opts.secret.encode()).hexdigest(),
        "options": {"public_only": opts.public_only, "mnist": opts.mnist, "sandbox": opts.sandbox},
        "max_score": max_score,
        "class": {"submissions": len(everyone), "ids_sha256": _ids_digest(s.student for s in everyone)},
        "students": [s.student for s in graded],
    }
    return write_json(out / MANIFEST, doc)


# --- merge ---------------------------------------------------------------------------------------------

@dataclass
class MergeOutcome:
    results: list[SubmissionResult]
    out: Path
    shards: int
    warnings: list[str] = field(default_factory=list)


def _load_manifest(d: Path) -> dict:
    try:
        doc = json.loads((d / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ShardError(f"{d}: no {MANIFEST}; not the output of a finished `grader grade --shard i/n` run") from None
    except (OSError, ValueError) as exc:
        raise ShardError(f"{d}/{MANIFEST} is unreadable: {exc}") from None
    if doc.get("format") != FORMAT:
        raise ShardError(f"{d}/{MANIFEST}: unknown format {doc.get('format')!r}")
    return doc


SAME = (("grader version", lambda m: m["grader_version"]), ("rubric", lambda m: m["rubric"]["sha256"]),
        ("secret", lambda m: m["secret_sha256"]), ("options", lambda m: json.dumps(m["options"], sort_keys=True)),
        ("shard count n", lambda m: m["of"]), ("class (the submissions folder)", lambda m: m["class"]["ids_sha256"]))


def check_shards(dirs: list[Path], manifests: list[dict]) -> list[str]:
    """Every reason the shards cannot be merged (empty when they can)."""
    problems = []
    for what, get in SAME:
        values = {}
        for d, m in zip(dirs, manifests):
            values.setdefault(str(get(m)), []).append(str(d))
        if len(values) > 1:
            groups = "; ".join(f"{', '.join(v)}" for v in values.values())
            problems.append(f"shards differ in {what}: refusing to merge ({groups})")
    if problems:
        return problems
    n = manifests[0]["of"]
    by_index: dict[int, list[str]] = {}
    for d, m in zip(dirs, manifests):
        by_index.setdefault(m["shard"], []).append(str(d))
    for i, ds in sorted(by_index.items()):
        if len(ds) > 1:
            problems.append(f"shard {i}/{n} given more than once: {', '.join(ds)}")
    missing = [i for i in range(1, n + 1) if i not in by_index]
    if missing:
        problems.append("missing shard(s) " + ", ".join(f"{i}/{n}" for i in missing))
    seen: dict[str, str] = {}
    for d, m in zip(dirs, manifests):
        for s in m["students"]:
            if s in seen and seen[s] != str(d):
                problems.append(f"student {s!r} appears in two shards: {seen[s]} and {d}")
            seen.setdefault(s, str(d))
    if not problems:
        cls = manifests[0]["class"]
        if len(seen) != cls["submissions"] or _ids_digest(seen) != cls["ids_sha256"]:
            problems.append(f"the shards hold {len(seen)} submissions, the class has {cls['submissions']}")
    return problems


def records_in(d: Path) -> dict[str, Path]:
    """student id -> its folder in ``d``, read from each folder's ``record.json`` (folder names are not ids)."""
    found = {}
    for rec in sorted(d.glob("*/record.json")):
        try:
            student = json.loads(rec.read_text(encoding="utf-8"))["student"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        found[student] = rec.parent
    return found


def _copy_folder(src: Path, dst: Path) -> None:
    """Copy one student's folder, file by file atomically, the grading key last (as the runner writes)."""
    files = sorted((p for p in src.rglob("*") if p.is_file() and not p.is_symlink()),
                   key=lambda p: (p.name == KEY_FILE, str(p)))
    for p in files:
        write_atomic(dst / p.relative_to(src), p.read_bytes())


def merge(out: str | Path, shard_dirs: list[str | Path]) -> MergeOutcome:
    out = Path(out)
    dirs = [Path(d) for d in shard_dirs]
    if not dirs:
        raise ShardError("grader merge: give the output folders of the shards")
    if any(d.resolve() == out.resolve() for d in dirs):
        raise ShardError(f"grader merge: the output folder {out} is one of the shards; merge into a new folder")
    manifests = [_load_manifest(d) for d in dirs]
    problems = check_shards(dirs, manifests)
    if problems:
        raise ShardError("\n".join(problems))
    results: dict[str, SubmissionResult] = {}
    placed: list[tuple[Path, str]] = []
    for d, m in zip(dirs, manifests):
        folders = records_in(d)
        lost = [s for s in m["students"] if s not in folders or not (folders[s] / KEY_FILE).exists()]
        if lost:
            raise ShardError(f"{d}: {len(lost)} graded submission(s) have no complete folder, e.g. {lost[0]!r}")
        for s in m["students"]:
            results[s] = SubmissionResult.from_dict(json.loads((folders[s] / "record.json").read_text(encoding="utf-8")))
            placed.append((folders[s], folders[s].name))
    names = [name for _, name in placed]
    if len(set(names)) != len(names):
        raise ShardError("two shards use the same folder name for different students; cannot merge")
    out.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(out)
    for src, name in placed:
        _copy_folder(src, out / name)
    ordered = [results[s] for s in sorted(results)]
    write_atomic(out / "gradebook.csv", render_gradebook(ordered))
    runs = [json.loads((d / "run.json").read_text(encoding="utf-8")) for d in dirs]
    rec = _merged_reconciliation(runs, ordered)
    write_atomic(out / "summary.md", render_summary(
        ordered, manifests[0]["max_score"], reconciliation=rec, unmatched=list((rec or {}).get("unmatched", [])),
        missing=[r.student for r in ordered if r.status == "missing"]))
    record = merged_record(runs, manifests, ordered, dirs)
    write_json(out / "run.json", record)
    return MergeOutcome(ordered, out, len(dirs), record["warnings"])


def _merged_reconciliation(runs: list[dict], ordered: list[SubmissionResult]) -> dict | None:
    """The class's reconciliation (every shard's intake saw every entry) with the merged rows."""
    rec = json.loads(json.dumps(runs[0].get("reconciliation") or {}))
    if not rec:
        return None
    missing = sum(r.status == "missing" for r in ordered)
    rec.update(rows_written=len(ordered), missing_from_roster=missing, rejected=sum(r.status == "rejected" for r in ordered),
               status={s: sum(r.status == s for r in ordered) for s in sorted({r.status for r in ordered})})
    rec["balanced"] = not rec.get("unaccounted") and rec["rows_written"] == rec.get("submissions", -1) + missing
    return rec


def merged_record(runs: list[dict], manifests: list[dict], ordered: list[SubmissionResult], dirs) -> dict:
    """One run record for the merged folder: the shards' common fields, counts and timings summed."""
    rec = json.loads(json.dumps(runs[0]))
    warnings = list(dict.fromkeys(w for r in runs for w in r.get("warnings", [])))
    per = {}
    for r in runs:
        per.update(r.get("timings", {}).get("per_submission", {}))
    rec.update({
        "submissions": len(ordered),
        "graded_now": sum(r.get("graded_now", 0) for r in runs),
        "skipped_as_already_graded": sum(r.get("skipped_as_already_graded", 0) for r in runs),
        "warnings": warnings,
        "isolation": next((r.get("isolation") for r in runs if r.get("isolation")), {}),
        "merged_from": [{"folder": str(d), "shard": m["shard"], "of": m["of"], "students": len(m["students"])}
                        for d, m in sorted(zip(dirs, manifests), key=lambda x: x[1]["shard"])],
    })
    rec.setdefault("timings", {})
    rec["timings"]["grading"] = round(sum(r.get("timings", {}).get("grading", 0.0) for r in runs), 3)
    rec["timings"]["per_submission"] = {r.student: per.get(r.student, r.timings) for r in ordered}
    return rec


def clear_stale_manifest(out: Path) -> None:
    """An unsharded run (or another shard) in a folder that held a shard: the old manifest no longer holds."""
    try:
        (out / MANIFEST).unlink()
    except FileNotFoundError:
        pass
