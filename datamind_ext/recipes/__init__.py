"""Recipes: a folder of per-stage configs chained by ``datamind-ext run`` (synth → SFT → RL → eval)."""
