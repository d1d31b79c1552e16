"""Export stage: LLaMA-Factory SFT dataset, verl RL parquet, dataset card.

* SFT: written by the SFT package's own exporter (``datamind_ext.sft.export_llamafactory_dataset``)
  so synthesis never re-implements the training format.
* RL: one row per kept task, the columns verl's RL dataset and our agent loop, reward and loss
  read: ``prompt`` (system + user messages), ``data_source``, ``ability``, ``reward_model``
  (``{"ground_truth": gold, "style": "rule"}``), ``extra_info`` (``files`` as absolute paths,
  ``task_kind``, ``question``, ``category``, ``difficulty``, ``task_id``, ``expert_messages``: the
  expert trajectory for the combined SFT+RL loss) and ``agent_name``.
* Card: counts by category × difficulty × file format and a token-length histogram (PNG).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from datamind_ext.protocol import Trajectory, render_messages
from datamind_ext.records import RewardModelColumn, RLExtraInfo, RLRow

DATA_SOURCE = "datamind_synth"
ABILITY = "data_analysis"
AGENT_NAME = "datamind_code_agent"


def token_lengths(trajs: list[Trajectory], tokenizer: Any = None) -> tuple[list[int], str]:
    """Tokens per trajectory with the one renderer; without a tokenizer, characters / 4 (labelled)."""
    if tokenizer is not None:
        return [len(render_messages(tokenizer, t.messages).input_ids) for t in trajs], "tokens"
    return [sum(len(m.content) for m in t.messages) // 4 for t in trajs], "approx. tokens (characters / 4)"


def rl_rows(trajs: list[Trajectory]) -> list[dict[str, Any]]:
    """The RL parquet rows, typed by :class:`datamind_ext.records.RLRow` (what verl's side reads back)."""
    rows = []
    for i, t in enumerate(trajs):
        msgs = t.to_openai()
        prompt = msgs[:2]  # system + the question
        rows.append(RLRow(
            prompt=prompt,
            data_source=DATA_SOURCE,
            ability=ABILITY,
            reward_model=RewardModelColumn(ground_truth=t.ground_truth or "", style="rule"),
            extra_info=RLExtraInfo(
                index=i,
                task_id=t.task_id or t.id,
                question=t.meta.get("question") or prompt[-1]["content"],
                files=[str(Path(f).resolve()) for f in t.files],
                task_kind="file_qa",
                category=t.category or "",
                difficulty=int(t.difficulty or 0),
                difficulty_label=t.meta.get("difficulty_label", ""),
                file_format=t.meta.get("file_format", ""),
                source=t.meta.get("source", ""),
                expert_messages=msgs,
            ),
            agent_name=AGENT_NAME,
        ).to_row())
    return rows


def write_rl_parquet(trajs: list[Trajectory], path: Path) -> int:
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    # one trajectory per task: the RL prompt set has each question once
    seen, unique = set(), []
    for t in trajs:
        if (t.task_id or t.id) not in seen:
            seen.add(t.task_id or t.id)
            unique.append(t)
    pd.DataFrame(rl_rows(unique)).to_parquet(path, index=False)
    return len(unique)


#: LLaMA-Factory's default ``cutoff_len``: the length filter used when a tokenizer is given without --max-tokens
DEFAULT_SFT_CUTOFF_TOKENS = 2048


def _median(xs: list[int]) -> float:
    s = sorted(xs)
    n = len(s)
    return float(s[n // 2]) if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2 if n else 0.0


def histogram_png(lengths: list[int], unit: str, path: Path, cutoff: int | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.hist(lengths or [0], bins=30, color="#4C72B0")
    if lengths:
        ax.axvline(_median(lengths), color="#55A868", linestyle="--", label=f"median {_median(lengths):.0f}")
    if cutoff:
        over = sum(x > cutoff for x in lengths)
        ax.axvline(cutoff, color="#C44E52", label=f"cutoff {cutoff} ({over} over)")
    if lengths or cutoff:
        ax.legend(fontsize=8)
    ax.set_xlabel(unit)
    ax.set_ylabel("trajectories")
    ax.set_title("Trajectory length")
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def dataset_card(trajs: list[Trajectory], report: dict[str, Any], lengths: list[int], unit: str,
                 hist_name: str, meta: dict[str, Any] | None = None, cutoff: int | None = None) -> str:
    """The card: what the set is made from (sources, seed, config), what it holds (category ×
    difficulty, formats, example questions), what was dropped and why, and how long it is."""
    meta = meta or {}
    cats = sorted({t.category or "unknown" for t in trajs})
    diffs = sorted({int(t.difficulty or 0) for t in trajs})
    grid = Counter((t.category or "unknown", int(t.difficulty or 0)) for t in trajs)
    fmts = Counter(t.meta.get("file_format", "?") for t in trajs)
    lines = ["# Synthesized DataMind dataset", "",
             f"{len(trajs)} trajectories kept, {report.get('dropped', 0)} dropped by the filters.", ""]
    if meta:
        lines += ["## Provenance", "", f"- seed: {meta.get('seed')}", f"- generator: {meta.get('generator')}"]
        if meta.get("config"):
            lines.append("- config: `" + json.dumps(meta["config"], sort_keys=True, default=str) + "`")
        srcs = meta.get("sources") or []
        lines += ["", f"### Source tables ({len(srcs)})", ""] + [f"- {x}" for x in srcs]
        lines.append("")
    lines += ["## By category × difficulty (effective steps)", "",
              "| category | " + " | ".join(f"depth {d}" for d in diffs) + " | total |",
              "|---|" + "---|" * (len(diffs) + 1)]
    for c in cats:
        row = [grid[(c, d)] for d in diffs]
        lines.append(f"| {c} | " + " | ".join(map(str, row)) + f" | {sum(row)} |")
    lines += ["", "## By file format", "", "| format | trajectories |", "|---|---|"]
    lines += [f"| {f} | {n} |" for f, n in sorted(fmts.items())]
    lines += ["", "## Example questions", ""]
    for c in cats:
        q = next((t.meta.get("question") for t in trajs if (t.category or "unknown") == c and t.meta.get("question")), None)
        if q:
            lines.append(f"- **{c}**: {q}")
    if lengths:
        s = sorted(lengths)
        lines += ["", f"## Length ({unit})", "",
                  f"min {s[0]}, median {_median(s):.0f}, max {s[-1]}, mean {sum(s) / len(s):.0f}"]
        if cutoff:
            lines.append(f"cutoff {cutoff}: {sum(x > cutoff for x in s)} trajectories over it, dropped from the SFT file")
        lines += ["", f"![length histogram]({hist_name})"]
    if report.get("kept_by_category"):
        lines += ["", "## Kept, by category", "", "| category | kept |", "|---|---|"]
        lines += [f"| {c} | {n} |" for c, n in report["kept_by_category"].items()]
    if report.get("dropped_by_reason"):
        lines += ["", "## Dropped, by reason", "", "| reason | count |", "|---|---|"]
        lines += [f"| {r} | {n} |" for r, n in report["dropped_by_reason"].items()]
    return "\n".join(lines) + "\n"


def export_all(trajs: list[Trajectory], report: dict[str, Any], out_dir: Path, name: str, tokenizer: Any = None,
               max_tokens: int | None = None, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """SFT dataset, RL parquet and card. With a tokenizer and no ``max_tokens`` the SFT file is
    length-filtered at LLaMA-Factory's default cutoff, so the SFT stage takes it as is."""
    from datamind_ext.sft import export_llamafactory_dataset

    out_dir.mkdir(parents=True, exist_ok=True)
    if tokenizer is not None and max_tokens is None:
        max_tokens = DEFAULT_SFT_CUTOFF_TOKENS
    sft = export_llamafactory_dataset(trajs, out_dir / "sft", name=name, tokenizer=tokenizer, max_tokens=max_tokens)
    n_rl = write_rl_parquet(trajs, out_dir / "rl" / "train.parquet")
    lengths, unit = token_lengths(trajs, tokenizer)
    histogram_png(lengths, unit, out_dir / "token_lengths.png", max_tokens)
    (out_dir / "README.md").write_text(dataset_card(trajs, report, lengths, unit, "token_lengths.png", meta, max_tokens),
                                       encoding="utf-8")
    summary = {"sft_dir": str(out_dir / "sft"), "sft_written": sft.n_written, "sft_skipped": sft.reason_counts(),
               "sft_max_tokens": max_tokens,
               "rl_parquet": str(out_dir / "rl" / "train.parquet"), "rl_rows": n_rl, "card": str(out_dir / "README.md")}
    if tokenizer is None:
        summary["sft_note"] = ("not length-filtered (no tokenizer): the SFT stage refuses it; re-export with "
                               "--tokenizer MODEL_DIR [--max-tokens CUTOFF_LEN], or train from filtered/kept.jsonl "
                               "with datamind.trajectories")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary
