"""The SFT stage's core: trajectory checks and the LLaMA-Factory dataset export.

Framework-free (no llamafactory import): synthesis calls the exporter directly; the
LLaMA-Factory integration (``datamind_ext.integrations.llamafactory``) trains on its output.
"""

from datamind_ext.sft.checks import trajectory_problems
from datamind_ext.sft.export import (
    SHAREGPT_TAGS,
    ExportReport,
    dataset_info_entry,
    export_llamafactory_dataset,
    sharegpt_record,
)

__all__ = [
    "SHAREGPT_TAGS",
    "ExportReport",
    "dataset_info_entry",
    "export_llamafactory_dataset",
    "sharegpt_record",
    "trajectory_problems",
]
