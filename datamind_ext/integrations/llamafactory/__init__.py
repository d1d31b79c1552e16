"""LLaMA-Factory 0.9.5 integration: in-process registration (LLaMA-Factory has no plugin discovery)."""
