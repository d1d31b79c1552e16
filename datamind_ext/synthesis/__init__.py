"""Synthesis: data files → tasks (taxonomy, easy-to-hard composition) → trajectories → filters → datasets.

Stages (each resumable, each a ``datamind-ext synth`` sub-command), in :mod:`.pipeline`:

* :mod:`.profile` — profiles of every table in a folder of csv/tsv/xlsx/json/jsonl/parquet/sqlite files
* :mod:`.programs` — the programmatic generator (executable pandas programs, composed 1–5 deep)
* :mod:`.expert` — ground truth and expert trajectories by running those programs in the interpreter
* :mod:`.llm_pipeline` — LLM task generation, knowledge-augmented sampling, consistency, judge, critique
* :mod:`.filters` — rule filters and self-consistency, with a reason for every drop
* :mod:`.export` — LLaMA-Factory SFT dataset, verl RL parquet, dataset card

This package never imports verl or LLaMA-Factory.
"""
