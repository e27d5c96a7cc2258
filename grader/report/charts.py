"""The class report's charts: matplotlib figures rendered to inline SVG (no pyplot, no network fonts).

Only the trusted numbers of a run go into a chart (scores, component and check ids, cause titles,
accuracies); no string a submission chose is ever drawn, so the SVG needs no escaping beyond what
matplotlib does. Rendering is deterministic (fixed hash salt per chart, no date in the metadata), so
the same results give the same SVG.
"""
from __future__ import annotations

import io

import numpy as np

BLUE, GREY, RED, GREEN = "#3b6ea8", "#9aa5b1", "#b8433a", "#3f8f4e"


def _figure(w: float, h: float):
    from matplotlib.figure import Figure  # the object API: no pyplot state, no GUI backend chosen

    fig = Figure(figsize=(w, h), dpi=100, layout="constrained")
    return fig


def to_svg(fig, name: str, label: str) -> str:
    """``fig`` as an inline ``<svg>`` element (no XML prolog), labelled for screen readers."""
    import matplotlib

    buf = io.StringIO()
    # Text stays text (local sans-serif font, no embedded or downloaded font), ids are stable.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": f"bpg-{name}",
                                "font.family": ["DejaVu Sans", "sans-serif"]}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    return svg.replace("<svg ", f'<svg role="img" aria-label="{label}" class="chart" ', 1)


def score_histogram(scores: list[float], max_score: float) -> str:
    fig = _figure(7.5, 3.0)
    ax = fig.add_subplot()
    top = max_score if max_score > 0 else max(scores + [1.0])
    bins = np.linspace(0, top, 11)
    ax.hist(np.clip(scores, 0, top), bins=bins, color=BLUE, edgecolor="white")
    ax.set_xlabel(f"score (out of {top:g})")
    ax.set_ylabel("submissions")
    ax.set_xlim(0, top)
    ax.yaxis.get_major_locator().set_params(integer=True)
    return to_svg(fig, "scores", "Histogram of scores")


def component_boxes(per_component: dict[str, list[float]]) -> str:
    """Box plot of the share of each component's points students got (percent)."""
    names = list(per_component)
    fig = _figure(7.5, 0.45 * len(names) + 1.0)
    ax = fig.add_subplot()
    data = [per_component[n] for n in names]
    import matplotlib

    horizontal = ({"orientation": "horizontal"} if tuple(int(x) for x in matplotlib.__version__.split(".")[:2]) >= (3, 10)
                  else {"vert": False})  # `vert` is deprecated from 3.10 on, `orientation` new in it
    ax.boxplot(data, **horizontal, showmeans=True, widths=0.6,
               meanprops={"marker": "D", "markerfacecolor": RED, "markeredgecolor": RED, "markersize": 5},
               medianprops={"color": BLUE, "linewidth": 2})
    ax.set_yticks(range(1, len(names) + 1), names)  # (not tick_labels=: matplotlib 3.7 has no such keyword)
    ax.set_xlim(-3, 103)
    ax.set_xlabel("points earned, % of the component's points (box: quartiles; diamond: mean)")
    ax.invert_yaxis()
    return to_svg(fig, "components", "Points per component")


def check_pass_rates(rates: list[tuple[str, float]]) -> str:
    fig = _figure(7.5, 0.22 * len(rates) + 0.9)
    ax = fig.add_subplot()
    labels = [n for n, _ in rates]
    values = [100 * v for _, v in rates]
    y = np.arange(len(rates))
    ax.barh(y, values, color=[GREEN if v >= 99.999 else BLUE for v in values], height=0.7)
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_xlim(0, 100)
    ax.set_ylim(len(rates) - 0.5, -0.5)  # first check on top, no empty margin
    ax.set_xlabel("submissions passing, %")
    return to_svg(fig, "checks", "Pass rate per check")


def status_bars(counts: dict[str, int]) -> str:
    names = list(counts)
    fig = _figure(5.0, 2.4)
    ax = fig.add_subplot()
    colors = {"ok": GREEN, "error": RED, "timeout": "#c98a1b", "rejected": GREY}
    ax.bar(names, [counts[n] for n in names], color=[colors.get(n, BLUE) for n in names])
    ax.set_ylabel("submissions")
    ax.yaxis.get_major_locator().set_params(integer=True)
    return to_svg(fig, "status", "Status counts")


def mnist_accuracy(accs: dict[str, list[float]], reference: dict[str, float]) -> str:
    names = list(accs)
    fig = _figure(7.5, 2.6)
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names):
        values = accs[name]
        ref = reference.get(name)
        seen = values + ([ref] if ref is not None else [])
        lo, hi = min(seen), max(seen)
        pad = max(0.01, 0.05 * (hi - lo))
        lo, hi = max(0.0, lo - pad), min(1.0, hi + pad)
        ax.hist(values, bins=np.linspace(lo, hi, 21), color=BLUE, edgecolor="white")
        ax.set_xlim(lo, hi)
        if ref is not None:
            ax.axvline(ref, color=RED, linewidth=2, label=f"reference {ref:.4f}")
            ax.legend(loc="upper left", fontsize=8)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("test accuracy")
        ax.set_ylabel("submissions")
        ax.yaxis.get_major_locator().set_params(integer=True)
    return to_svg(fig, "mnist", "MNIST accuracy against the reference")
