"""Sampling parameters as the generation server understands them.

The agent loop sends verl/vLLM-style ``sampling_params`` dicts (``temperature``, ``top_p``,
``top_k``, ``max_tokens``, ``stop``, ``stop_token_ids``, ``logprobs``); the OpenAI endpoint sends
the same names. One parser keeps both paths identical. Unknown keys that only tune a real
engine (``repetition_penalty`` at 1.0, ``seed``…) are accepted and ignored where harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Keys a vLLM/SGLang caller may send that do not change what this backend computes.
_IGNORED_KEYS = frozenset(
    {"repetition_penalty", "presence_penalty", "frequency_penalty", "n", "skip_special_tokens",
     "spaces_between_special_tokens", "detokenize", "include_stop_str_in_output", "min_tokens", "ignore_eos"}
)


@dataclass(frozen=True)
class SamplingSpec:
    """What one request asks for. ``temperature <= 0`` means greedy."""

    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    logprobs: bool = True
    seed: int | None = None  # per-request sampling seed (as vLLM's): same seed, same tokens
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    @classmethod
    def from_params(cls, params: dict[str, Any] | None, *, default_max_tokens: int = 256) -> SamplingSpec:
        """Build from a vLLM-style dict; ``max_new_tokens`` is accepted as an alias of ``max_tokens``."""
        p = dict(params or {})
        max_tokens = p.pop("max_tokens", None)
        if max_tokens is None:
            max_tokens = p.pop("max_new_tokens", default_max_tokens)
        else:
            p.pop("max_new_tokens", None)
        stop = p.pop("stop", None) or ()
        if isinstance(stop, str):
            stop = (stop,)
        top_k = p.pop("top_k", -1)
        logprobs = p.pop("logprobs", True)
        seed = p.pop("seed", None)
        spec = cls(
            max_tokens=max(1, int(max_tokens)),
            temperature=float(p.pop("temperature", 1.0) or 0.0),
            top_p=float(p.pop("top_p", 1.0) or 1.0),
            top_k=-1 if top_k is None else int(top_k),
            stop=tuple(str(s) for s in stop if s),
            stop_token_ids=tuple(int(t) for t in (p.pop("stop_token_ids", None) or ())),
            logprobs=bool(logprobs is not False and logprobs is not None),
            seed=None if seed is None else int(seed),
            extra={k: v for k, v in p.items() if k not in _IGNORED_KEYS},
        )
        return spec
