"""PNG plots of pass@1: one figure per benchmark (overall and per category), one across benchmarks.

matplotlib runs with the non-interactive Agg backend so plots are written on headless GPU
machines and in CI alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_benchmark(summary: dict[str, Any], path: Path) -> Path:
    """Bars of pass@1 (in %) for every pass/fail scorer: overall, then per value of each category key."""
    plt = _pyplot()
    graded = set(summary["graded_scorers"])
    scorers = [n for n in summary["overall"] if n not in graded]
    panels: list[tuple[str, dict[str, dict[str, Any]]]] = [("overall", {"all": summary["overall"]})]
    panels += [(f"by {key}", groups) for key, groups in summary["categories"].items()]
    widths = [max(2.5, 0.6 * len(groups) * max(len(scorers), 1)) for _, groups in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(sum(widths) + 1.5, 4.2), squeeze=False,
                             gridspec_kw={"width_ratios": widths})
    bar_w = 0.8 / max(len(scorers), 1)
    for ax, (title, groups) in zip(axes[0], panels, strict=True):
        names = list(groups)
        for j, scorer in enumerate(scorers):
            vals = [100 * (groups[g][scorer]["pass@1"] or 0.0) for g in names]
            xs = [i + (j - (len(scorers) - 1) / 2) * bar_w for i in range(len(names))]
            ax.bar(xs, vals, width=bar_w, label=scorer)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=35 if len(names) > 3 else 0, ha="right" if len(names) > 3 else "center",
                           fontsize=8)
        ax.set_ylim(0, 100)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel(f"pass@1 (%), mean of {summary['k']} run(s)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(summary["title"], fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_benchmarks(summaries: list[dict[str, Any]], path: Path) -> Path:
    """pass@1 and pass@k of each benchmark's primary scorer, side by side."""
    plt = _pyplot()
    names = [s["benchmark"] for s in summaries]
    p1 = [100 * (s["overall"][s["primary_scorer"]]["pass@1"] or 0.0) for s in summaries]
    pk = [100 * (s["overall"][s["primary_scorer"]]["pass@k"] or 0.0) for s in summaries]
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2, 4))
    xs = list(range(len(names)))
    ax.bar([x - 0.2 for x in xs], p1, width=0.4, label="pass@1")
    ax.bar([x + 0.2 for x in xs], pk, width=0.4, label="pass@k")
    ax.set_xticks(xs)
    ax.set_xticklabels(names)
    ax.set_ylim(0, 100)
    ax.set_ylabel("% (primary scorer)")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
