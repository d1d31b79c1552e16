"""Integration layers: the only places that import verl or LLaMA-Factory."""
