"""The 18-category task taxonomy and the per-category workflow knowledge, read from data/.

Both live as YAML written for this project (``datamind_ext/data/taxonomy/categories.yaml``,
``datamind_ext/data/knowledge/workflows.yaml``, package data) so they can be edited or extended without code changes; a
user may point ``--taxonomy``/``--knowledge`` at their own files.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel

from datamind_ext.data import PACKAGE_DATA
from datamind_ext.errors import UserError

TAXONOMY_PATH = PACKAGE_DATA / "taxonomy" / "categories.yaml"
KNOWLEDGE_PATH = PACKAGE_DATA / "knowledge" / "workflows.yaml"


class Category(BaseModel):
    slug: str
    name: str
    definition: str
    examples: list[str]


@lru_cache(maxsize=8)
def load_taxonomy(path: str | None = None) -> dict[str, Category]:
    p = Path(path) if path else TAXONOMY_PATH
    if not p.is_file():
        raise UserError(f"taxonomy file not found: {p}")
    return {c["slug"]: Category(**c) for c in yaml.safe_load(p.read_text(encoding="utf-8"))}


@lru_cache(maxsize=8)
def load_knowledge(path: str | None = None) -> dict[str, str]:
    p = Path(path) if path else KNOWLEDGE_PATH
    if not p.is_file():
        raise UserError(f"knowledge file not found: {p}")
    return {k: str(v).strip() for k, v in yaml.safe_load(p.read_text(encoding="utf-8")).items()}


def workflow_hint(category: str, path: str | None = None) -> str:
    """The workflow knowledge for a category (the default workflow when it has none)."""
    k = load_knowledge(path)
    return k.get(category) or k["_default"]
