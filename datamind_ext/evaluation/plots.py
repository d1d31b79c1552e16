"""PNG plots of pass@1: one figure per benchmark (overall and per category), one across runs.

matplotlib runs with the non-interactive Agg backend so plots are written on headless GPU
machines and in CI alike. Every bar carries its value and every group its n, so a plot of a
run that scored 0 everywhere still reads as "0 % of n items", not as an empty frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label_bars(ax: Any, bars: Any, values: list[float]) -> None:
    for bar, v in zip(bars, values, strict=True):
        ax.annotate(f"{v:.1f}", (bar.get_x() + bar.get_width() / 2, v), xytext=(0, 2), textcoords="offset points",
                    ha="center", va="bottom", fontsize=7)


def plot_benchmark(summary: dict[str, Any], path: Path) -> Path:
    """Bars of pass@1 (in %) for every pass/fail scorer: overall, then per value of each category key."""
    plt = _pyplot()
    graded = set(summary["graded_scorers"])
    scorers = [n for n in summary["overall"] if n not in graded]
    panels: list[tuple[str, dict[str, dict[str, Any]]]] = [("overall", {"all": summary["overall"]})]
    panels += [(f"by {key}", groups) for key, groups in summary["categories"].items()]
    widths = [max(2.5, 0.6 * len(groups) * max(len(scorers), 1)) for _, groups in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(sum(widths) + 1.5, 4.4), squeeze=False,
                             gridspec_kw={"width_ratios": widths})
    bar_w = 0.8 / max(len(scorers), 1)
    for ax, (title, groups) in zip(axes[0], panels, strict=True):
        names = list(groups)
        for j, scorer in enumerate(scorers):
            vals = [100 * (groups[g][scorer]["pass@1"] or 0.0) for g in names]
            xs = [i + (j - (len(scorers) - 1) / 2) * bar_w for i in range(len(names))]
            _label_bars(ax, ax.bar(xs, vals, width=bar_w, label=scorer), vals)
        n_of = [max((groups[g][s]["items"] for s in scorers), default=0) for g in names]
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([f"{g}\n(n={n})" for g, n in zip(names, n_of, strict=True)],
                           rotation=35 if len(names) > 3 else 0, ha="right" if len(names) > 3 else "center",
                           fontsize=8)
        ax.set_ylim(0, 105)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel(f"pass@1 (%), mean of {summary['k']} run(s)")
    axes[0][0].legend(fontsize=8)
    cov = summary["overall"][summary["primary_scorer"]].get("coverage")
    cov_text = "" if cov is None else f", coverage {100 * cov:.0f} %"
    fig.suptitle(f"{summary['title']} (n={summary['items_in_benchmark']} items, k={summary['k']}{cov_text})",
                 fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_benchmarks(summaries: list[dict[str, Any]], names: list[str], path: Path) -> Path:
    """pass@1 and pass@k of each run's primary scorer, side by side (``names``: one label per run)."""
    plt = _pyplot()
    labels = [f"{name}\n(n={s['items_in_benchmark']}, k={s['k']})" for name, s in zip(names, summaries, strict=True)]
    p1 = [100 * (s["overall"][s["primary_scorer"]]["pass@1"] or 0.0) for s in summaries]
    pk = [100 * (s["overall"][s["primary_scorer"]]["pass@k"] or 0.0) for s in summaries]
    fig, ax = plt.subplots(figsize=(1.9 * len(labels) + 2, 4.4))
    xs = list(range(len(labels)))
    _label_bars(ax, ax.bar([x - 0.2 for x in xs], p1, width=0.4, label="pass@1"), p1)
    _label_bars(ax, ax.bar([x + 0.2 for x in xs], pk, width=0.4, label="pass@k (k per run)"), pk)
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("% (primary scorer)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
