"""datamind_ext: the DataMind recipe as plugins for verl (RL) and LLaMA-Factory (SFT).

The top-level package imports nothing heavy: the core parts (protocol, interpreter, rewards,
synthesis, evaluation) work without verl or LLaMA-Factory, and the CLI must start fast.
"""

__version__ = "0.1.0"
