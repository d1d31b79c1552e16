"""The ``datamind`` dataset converter: LLaMA-Factory reads our trajectory JSONL directly.

LLaMA-Factory's sharegpt converter skips a conversation whose roles do not alternate with a
generic log line that names no record, and it accepts trajectories that are useless for SFT
(no final answer, empty code). This converter reads the project's ``Trajectory`` records (the
files ``datamind-ext synth`` writes, or any JSONL with ``id`` and ``messages``), checks each one
with the same rules as our exporter, and logs every rejected record by id and reason before
dropping it; valid records are converted exactly as sharegpt would, so the tokens and masks are
the ones our renderer produces.

Use it through ``datamind-ext sft`` (which registers it) with a ``dataset_info.json`` entry::

    "my_trajectories": {"file_name": "trajectories.jsonl", "formatting": "datamind",
                        "columns": {"messages": "messages"}, "tags": {...the sharegpt role/content tags...}}

(:data:`DATASET_INFO_TEMPLATE` is that entry.)
"""

from __future__ import annotations

import logging
from typing import Any

from llamafactory.data.converter import DATASET_CONVERTERS, SharegptDatasetConverter, register_dataset_converter
from pydantic import ValidationError

from datamind_ext.protocol import Trajectory
from datamind_ext.sft.checks import trajectory_problems
from datamind_ext.sft.export import SHAREGPT_TAGS

NAME = "datamind"
log = logging.getLogger("datamind_ext.llamafactory")

DATASET_INFO_TEMPLATE: dict[str, Any] = {
    "formatting": NAME,
    "columns": {"messages": "messages"},
    "tags": dict(SHAREGPT_TAGS),
}


class DataMindTrajectoryConverter(SharegptDatasetConverter):
    """Sharegpt conversion of ``Trajectory`` records, rejecting unusable ones by id and reason."""

    def __call__(self, example: dict[str, Any]) -> dict[str, Any]:
        record_id = str(example.get("id", "<no id>"))
        try:
            traj = Trajectory(id=record_id, messages=example[self.dataset_attr.messages])
            problems = trajectory_problems(traj)
        except (ValidationError, KeyError, TypeError) as err:
            problems = [f"invalid_record: {str(err).splitlines()[0]}"]
        if problems:
            log.warning("datamind converter: skipping trajectory %s: %s", record_id, "; ".join(problems))
            return super().__call__({**example, self.dataset_attr.messages: []})
        return super().__call__(example)


def register() -> None:
    """Add the converter under ``datamind`` (idempotent)."""
    if DATASET_CONVERTERS.get(NAME) is not DataMindTrajectoryConverter:
        register_dataset_converter(NAME, DataMindTrajectoryConverter)
