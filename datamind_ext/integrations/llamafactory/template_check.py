"""Check, before training, that LLaMA-Factory renders our trajectories exactly as the model's
own chat template does (the rendering the RL rollout and evaluation use).

LLaMA-Factory does not use the tokenizer's chat template for training; it re-implements each
model family's template in Python (``data/template.py``), and users report token-level
mismatches. A mismatch means SFT teaches a layout the policy never sees in RL. This check runs
LLaMA-Factory's own converter, template and supervised processor (without the ``datasets``
machinery) on a few exported rows and compares token ids and loss masks with
:func:`datamind_ext.protocol.render_messages`.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from datamind_ext.protocol import Rendered, render_messages
from datamind_ext.sft.export import dataset_info_entry

IGNORE_INDEX = -100


@dataclass
class TemplateMismatch:
    """Where LLaMA-Factory's rendering of one trajectory first departs from ours."""

    trajectory_id: str
    position: int
    what: str  # "ids" or "mask"
    ours: str  # decoded text around the position
    llamafactory: str

    def describe(self) -> str:
        return (f"trajectory {self.trajectory_id}: {self.what} differ at token {self.position}: "
                f"chat template {self.ours!r} vs LLaMA-Factory {self.llamafactory!r}")


def _data_args(lf_args: dict[str, Any]) -> Any:
    from llamafactory.hparams import DataArguments

    names = {f.name for f in dataclasses.fields(DataArguments)}
    return DataArguments(**{k: v for k, v in lf_args.items() if k in names})


def llamafactory_renderer(lf_args: dict[str, Any], tokenizer: Any) -> Any:
    """A function row -> (input_ids, labels) going through LLaMA-Factory's converter and processor.

    The tokenizer is copied first: LLaMA-Factory's template fixes special tokens in place.
    """
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.data.converter import get_dataset_converter
    from llamafactory.data.parser import DatasetAttr
    from llamafactory.data.processor import SupervisedDatasetProcessor

    data_args = _data_args(lf_args)
    tokenizer = copy.deepcopy(tokenizer)
    template = get_template_and_fix_tokenizer(tokenizer, data_args)
    attr = DatasetAttr("file", dataset_name="datamind_check")
    attr.join(dataset_info_entry("check.jsonl"))
    converter = get_dataset_converter(attr.formatting, attr, data_args)
    processor = SupervisedDatasetProcessor(template=template, tokenizer=tokenizer, processor=None, data_args=data_args)

    def render(row: dict[str, Any]) -> tuple[list[int], list[int]] | None:
        aligned = converter(row)
        batch = {k: [v] for k, v in aligned.items()}
        out = processor.preprocess_dataset(batch)
        if not out.get("input_ids"):
            return None  # LLaMA-Factory dropped the row
        return out["input_ids"][0], out["labels"][0]

    return render


def _context(tokenizer: Any, ids: Sequence[int], pos: int, width: int = 6) -> str:
    return tokenizer.decode(list(ids[max(pos - width, 0) : pos + width]))


def compare_rendering(
    tokenizer: Any, trajectory_id: str, messages: Sequence[Any], lf_ids: list[int], lf_labels: list[int]
) -> TemplateMismatch | None:
    """The first difference between our rendering and LLaMA-Factory's, or ``None``."""
    ours: Rendered = render_messages(tokenizer, messages)
    lf_mask = [int(x != IGNORE_INDEX) for x in lf_labels]
    for what, a, b, ids_a, ids_b in (
        ("ids", ours.input_ids, lf_ids, ours.input_ids, lf_ids),
        ("mask", ours.loss_mask, lf_mask, ours.input_ids, lf_ids),
    ):
        if a != b:
            pos = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            return TemplateMismatch(trajectory_id, pos, what, _context(tokenizer, ids_a, pos), _context(tokenizer, ids_b, pos))
    return None


def check_template(lf_args: dict[str, Any], tokenizer: Any, rows: Sequence[dict[str, Any]]) -> list[TemplateMismatch]:
    """Compare LLaMA-Factory's rendering with ours on exported ``rows`` (``{"id", "messages"}``)."""
    render = llamafactory_renderer(lf_args, tokenizer)
    found = []
    for row in rows:
        got = render(row)
        if got is None:
            found.append(TemplateMismatch(str(row.get("id")), 0, "row dropped by LLaMA-Factory", "", ""))
            continue
        mismatch = compare_rendering(tokenizer, str(row.get("id")), row["messages"], *got)
        if mismatch is not None:
            found.append(mismatch)
    return found
