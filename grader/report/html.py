"""``report.html``: the class's picture in one self-contained file (issue 18).

Written at the end of every batch and by ``grader report OUT``. One file, no script, no network: the
charts are inline SVG drawn by matplotlib (:mod:`.charts`), the styles are inline, and a
Content-Security-Policy forbids any script or remote resource, so the page works from a ``file://``
URL and an injected tag could not run even if it got through. Every string a submission can influence
(ids, reasons, notes, feedback text) goes through :func:`esc`. The run record shows the secret's digest,
never the secret.
"""
from __future__ import annotations

import hashlib
import html
import json
import re
from collections import Counter
from pathlib import Path

from ..diagnosis.causes import CAUSES
from ..scoring.results import SubmissionResult
from . import charts
from .atomic import write_atomic
from .feedback import render_feedback
from ..spec import current_spec
from .gradebook import component_columns
from .summary import class_statistics

REPORT = "report.html"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:62rem;padding:1rem 1.5rem;color:#1d2733}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d7dde3;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #d7dde3;padding:.2rem .5rem;text-align:left;vertical-align:top}
th{background:#f1f4f7}td.n{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:.5rem 0}svg.chart{max-width:100%;height:auto}
pre{background:#f6f8fa;border:1px solid #d7dde3;padding:.6rem;white-space:pre-wrap;word-break:break-word;font-size:13px}
.muted{color:#5b6773}code{background:#f1f4f7;padding:0 .2rem}
"""


def esc(value) -> str:
    """Text for HTML content or a quoted attribute: markup characters escaped, control characters removed."""
    return html.escape(_CONTROL.sub("", str(value)), quote=True)


def _table(head: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    """``rows`` hold HTML already escaped by the caller."""
    out = ["<table><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>" + "".join(f'<td{" class=n" if i in numeric else ""}>{c}</td>' for i, c in enumerate(row))
                   + "</tr>")
    return "\n".join(out) + "</tbody></table>"


def _figure(chart_id: str, svg: str, caption: str) -> str:
    return f'<figure id="chart-{chart_id}">{svg}<figcaption class="muted">{esc(caption)}</figcaption></figure>'


def anonymised_feedback(r: SubmissionResult, alias: str) -> str:
    """The submission's feedback with its id and file name replaced by ``alias``."""
    text = render_feedback(r)
    names = {r.student, r.source, Path(r.source).stem if r.source else ""}
    for name in sorted((n for n in names if n and len(n) >= 2), key=len, reverse=True):
        text = text.replace(name, alias)
    return text


# --- the numbers -------------------------------------------------------------------------------------

def component_shares(results: list[SubmissionResult]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for c in component_columns():
        vals = [100 * s / m for r in results for comp, (s, m) in r.component_scores().items() if comp == c and m > 0]
        if vals:
            out[c] = vals
    return out


def check_rates(results: list[SubmissionResult]) -> list[tuple[str, float]]:
    passed: dict[str, list[int]] = {}
    for r in results:
        if r.status == "rejected":  # never ran: would only say "the file was missing" 50 times
            continue
        for t in r.tests:
            key = f"{t.check} ({t.visibility})" if t.check != t.component else t.component
            passed.setdefault(key, []).append(int(t.passed))
    return [(k, sum(v) / len(v)) for k, v in passed.items()]


def cause_examples(results: list[SubmissionResult], causes: list[tuple[str, int]]) -> list[dict]:
    """For each named cause: its count and the first submission (by id) that has it."""
    by_id = sorted(results, key=lambda r: r.student)
    rows = []
    for k, (cause, count) in enumerate(causes):
        example = next(r for r in by_id if any(cause in t.causes for t in r.tests))
        rows.append({"cause": cause, "count": count, "anchor": f"example-{k + 1}",
                     "title": CAUSES[cause].title if cause in CAUSES else cause, "example": example})
    return rows


def mnist_data(results: list[SubmissionResult], record: dict) -> tuple[dict[str, list[float]], dict[str, float]]:
    accs: dict[str, list[float]] = {}
    for r in results:
        for comp, m in sorted(r.mnist.items()):
            if isinstance(m.get("accuracy"), (int, float)):
                accs.setdefault(comp, []).append(float(m["accuracy"]))
    ref = {c: float(v["accuracy"]) for c, v in (record.get("reference_mnist") or {}).items() if "accuracy" in v}
    return accs, ref


# --- the page ----------------------------------------------------------------------------------------

def _record_section(record: dict, n: int) -> str:
    rub = record.get("rubric", {})
    secret_digest = record.get("secret_id") or (
        hashlib.sha256(record["secret"].encode()).hexdigest()[:12] if record.get("secret") else "unknown")
    rows = [["grader version", esc(record.get("grader_version", "?"))],
            ["secret", f"sha256 digest starts <code>{esc(secret_digest)}</code> (the secret itself is in run.json only)"],
            ["rubric", esc(f"{rub.get('name', '?')} ({Path(str(rub.get('source', '?'))).name}), {rub.get('total', '?')} points, "
                           f"sha256 {str(rub.get('sha256', '?'))[:16]}")],
            ["options", esc(", ".join(f"{k}={v}" for k, v in (record.get("options") or {}).items()))],
            ["submissions", esc(f"{n} ({record.get('graded_now', '?')} graded now, "
                                f"{record.get('skipped_as_already_graded', '?')} already graded)")],
            ["python", esc(record.get("python", "?"))]]
    for comp, ref in (record.get("reference_mnist") or {}).items():
        rows.append([esc(f"reference {comp}"), esc(f"accuracy {ref.get('accuracy')}, {ref.get('seconds')} s")])
    if record.get("merged_from"):
        rows.append(["merged from", esc(", ".join(f"shard {m['shard']}/{m['of']}" for m in record["merged_from"]))])
    iso = record.get("isolation") or {}
    iso_rows = [[esc(k), esc(v)] for k, v in sorted(iso.items())] or [["(none recorded)", ""]]
    return (_table(["field", "value"], rows) + "<h3>Isolation layers</h3>" + _table(["layer", "state"], iso_rows)
            + "".join(f"<p class=muted>warning: {esc(w)}</p>" for w in record.get("warnings", [])[:20]))


def _causes_section(rows: list[dict]) -> str:
    if not rows:
        return "<p>No named causes: every test passed.</p>"
    body = [[esc(x["title"]), f"<code>{esc(x['cause'])}</code>", esc(x["count"]),
             f'<a href="#{x["anchor"]}">example feedback</a>'] for x in rows]
    return _table(["cause", "id", "submissions", "example"], body, numeric={2})


def _examples_section(rows: list[dict]) -> str:
    parts = []
    for k, x in enumerate(rows):
        text = anonymised_feedback(x["example"], f"student {chr(65 + k % 26)}{k // 26 or ''}")
        parts.append(f'<section id="{x["anchor"]}"><h3>Example for: {esc(x["title"])}</h3><pre>{esc(text)}</pre></section>')
    return "\n".join(parts)


def _slowest_section(results: list[SubmissionResult], k: int = 10) -> str:
    slow = sorted(results, key=lambda r: (-r.execution_time(), r.student))[:k]
    rows = [[esc(r.student), esc(f"{r.execution_time():.2f}"), esc(r.status), esc(f"{r.score:g} / {r.max_score:g}"),
             esc(", ".join(f"{p} {v:g}" for p, v in r.timings.items()))] for r in slow]
    return _table(["student", "seconds", "status", "score", "parts (s)"], rows, numeric={1})


def render_report(results: list[SubmissionResult], record: dict) -> str:
    st = class_statistics(results)
    max_score = max((r.max_score for r in results), default=0.0)
    causes = [(c, k) for c, k in st["causes"] if c != "not_attempted"][:15]
    cause_rows = cause_examples(results, causes)
    accs, ref = mnist_data(results, record)
    status = {s: st["status"][s] for s in ("ok", "error", "timeout", "rejected") if s in st["status"]}
    status.update({s: v for s, v in sorted(st["status"].items()) if s not in status})
    parts = [f"<h1>Class report</h1><p>{st['count']} submissions; mean {st['mean']:g}, median {st['median']:g}, "
             f"min {st['min']:g}, max {st['max']:g} (out of {max_score:g}).</p>"]
    if results:
        parts += ["<h2>Scores</h2>", _figure("scores", charts.score_histogram(st["scores"], max_score),
                                             "Number of submissions per tenth of the total.")]
        shares = component_shares(results)
        parts += ["<h2>Points per component</h2>", _figure("components", charts.component_boxes(shares),
                                                            "Share of each component's points earned.")]
        rates = check_rates(results)
        if rates:
            parts += ["<h2>Pass rate per check</h2>", _figure("checks", charts.check_pass_rates(rates),
                                                              "Share of graded (not rejected) submissions passing.")]
        parts += ["<h2>Status</h2>", _figure("status", charts.status_bars(status), "Submissions per status."),
                  _table(["status", "submissions"], [[esc(s), esc(v)] for s, v in status.items()], numeric={1})]
    parts += ["<h2>Most common named causes</h2>", _causes_section(cause_rows)]
    if current_spec().end_to_end:  # an assignment without end-to-end tests has no such section
        parts += ["<h2>MNIST accuracy</h2>"]
        if accs:
            parts.append(_figure("mnist", charts.mnist_accuracy(accs, ref),
                                 "Test accuracy of each submission; the red line is the reference under the same protocol."))
        else:
            parts.append("<p>The MNIST tests were not run in this batch (<code>--no-mnist</code> or <code>--public-only</code>).</p>")
    parts += ["<h2>Slowest submissions</h2>", _slowest_section(results), "<h2>Run record</h2>",
              _record_section(record, len(results))]
    if cause_rows:
        parts += ["<h2>Example feedback (anonymised)</h2>", _examples_section(cause_rows)]
    return ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name=viewport content="width=device-width,initial-scale=1">'
            f"<title>Class report</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


def load_run(out: str | Path) -> tuple[list[SubmissionResult], dict]:
    """The results and record of the run in ``out``: the students run.json lists, read from their records."""
    out = Path(out)
    try:
        record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{out}: no run.json; run `grader grade ... --out {out}` first") from None
    wanted = set((record.get("timings") or {}).get("per_submission") or {})
    results = []
    for rec in sorted(out.glob("*/record.json")):
        try:
            r = SubmissionResult.from_dict(json.loads(rec.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not wanted or r.student in wanted:
            results.append(r)
    return sorted(results, key=lambda r: r.student), record


def write_report(out: str | Path, results: list[SubmissionResult] | None = None, record: dict | None = None) -> Path:
    if results is None or record is None:
        results, record = load_run(out)
    return write_atomic(Path(out) / REPORT, render_report(sorted(results, key=lambda r: r.student), record))


def write_report_safely(out: Path, results: list[SubmissionResult], record: dict) -> list[str]:
    """At the end of a batch: the report is a convenience, so its failure is a warning, never a lost batch.

    Skipped without a word where matplotlib is not installed: the Gradescope image leaves it out on
    purpose (one submission, no class to draw)."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        return []
    try:
        write_report(out, results, record)
        return []
    except Exception as exc:  # noqa: BLE001 - reported, and `grader report OUT` can retry
        return [f"report.html was not written ({exc!r}); run `grader report {out}` to retry"]
