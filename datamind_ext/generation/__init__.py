"""A small transformers-backed generation backend for CPU (tests, laptops, CI).

:class:`HFGenerationEngine` batches concurrent requests (token ids in, token ids + log-probs
out, stop strings and stop token ids applied on the server); :mod:`.server` serves it over
HTTP, including OpenAI ``/v1/chat/completions``. GPU users keep vLLM/SGLang. Importing this
package does not import torch or transformers.
"""

from datamind_ext.generation.sampling import SamplingSpec

__all__ = ["Generation", "HFGenerationEngine", "SamplingSpec"]


def __getattr__(name: str):  # lazy: torch/transformers load only when the engine is used
    if name in ("HFGenerationEngine", "Generation"):
        from datamind_ext.generation import engine

        return getattr(engine, name)
    raise AttributeError(name)
