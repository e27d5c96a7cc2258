"""MNIST failures that point at their cause (issue 15).

A training test sees a symptom: training stopped at some step, the first batch's gradients point the
wrong way, or the accuracy is low. The component checks of the same submission usually know why.
:func:`attribute_mnist` runs after all tests are scored and rewrites a failing MNIST test so that it
names the component and repeats that component's named cause ("training stopped at step 1:
Linear's bias gradient not summed over the batch; see the Linear checks") instead of a bare symptom.

It reads only scored results and the structured record of the MNIST test
(``component``/``method``/``kind``/``step`` in ``SubmissionResult.mnist[test]["failure"]``), never
the words of its output (issue 17), so it works with any MNIST implementation that fills that
record. It never changes a score.
"""
from __future__ import annotations

from dataclasses import replace

from .causes import CAUSES, SYMPTOMS

#: MNIST causes that only describe what happened to training, replaced by the component's cause
TRAINING_SYMPTOMS = SYMPTOMS | {"inconsistent_training", "not_learning", "wrong_type", "wrong_dtype", "not_finite"}
def _network(spec) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
    """End-to-end test id -> the components its network is made of, and every component id."""
    from ..spec import current_spec

    spec = spec or current_spec()
    return {e.id: e.trains for e in spec.end_to_end}, spec.component_ids


def component_causes(tests, component: str) -> list[str]:
    """Named causes of the component's failing checks, most points lost first."""
    lost: dict[str, float] = {}
    for t in tests:
        if t.component != component or t.score >= t.max_score - 1e-9:
            continue
        for c in t.causes:
            if c in CAUSES and c not in SYMPTOMS:
                lost[c] = lost.get(c, 0.0) + (t.max_score - t.score) / max(len(t.causes), 1)
    return sorted(lost, key=lambda c: -lost[c])


def is_first_batch(info: dict) -> bool:
    """Whether the MNIST failure record says the gradients of the very first batch pointed wrong."""
    return info.get("kind") in ("direction", "gradient_direction") and info.get("step") == 1


def _what_happened(test, info: dict) -> str:
    step = info.get("step")
    if is_first_batch(info):
        return "your gradients on the first MNIST batch disagree with backpropagation"
    if step is not None and info.get("kind") not in (None, "not_learning"):
        return f"training stopped at step {step}"
    if "not_learning" in test.causes or test.score > 0:
        return "the network did not reach the expected accuracy"
    return "training failed"


def _blame(test, info: dict, tests, network, all_ids) -> tuple[str, list[str]] | None:
    comps = network.get(test.component, ())
    named = info.get("component") if info.get("component") in comps else None
    if named and component_causes(tests, named):
        return named, component_causes(tests, named)
    ranked = [(c, component_causes(tests, c)) for c in comps]
    ranked = [(c, cs) for c, cs in ranked if cs]
    if not ranked:
        return None
    lost = {c: sum(t.max_score - t.score for t in tests if t.component == c) for c, _ in ranked}
    return max(ranked, key=lambda x: lost[x[0]])


def attribute_mnist(result, spec=None) -> None:
    """Rewrite each failing MNIST test of ``result`` (a SubmissionResult) to name its cause, in place."""
    out = []
    network, all_ids = _network(spec)
    for t in result.tests:
        if t.component not in network or t.passed:
            out.append(t)
            continue
        info = (result.mnist or {}).get(t.component) or {}
        # the MNIST record of this version keeps the failure under "failure" (None when training ran)
        info = ((info.get("failure") if "failure" in info else info) or {}) if isinstance(info, dict) else {}
        first_batch = is_first_batch(info)
        if "inconsistent_training" in t.causes and not first_batch:
            out.append(t)  # a replay that does not reproduce: tampering or hidden state, left as it is
            continue
        blame = _blame(t, info, result.tests, network, all_ids)
        if blame is None:
            out.append(t)
            continue
        comp, causes = blame
        title = CAUSES[causes[0]].title
        more = f" (and {len(causes) - 1} more cause(s))" if len(causes) > 1 else ""
        head = f"{_what_happened(t, info)}: in {comp}, {title}{more}; see the {comp} checks."
        body = t.output
        if first_batch:  # an ordinary bug, not tampering: no "flagged for review"
            alarm = CAUSES["inconsistent_training"].hint
            body = "\n".join(line for line in body.splitlines() if "first MNIST batch" not in line and alarm not in line)
        kept = tuple(c for c in t.causes if c not in TRAINING_SYMPTOMS)
        new_causes = tuple(dict.fromkeys(tuple(causes) + kept))
        out.append(replace(t, output=head + ("\n" + body if body else ""), causes=new_causes))
    result.tests = out
