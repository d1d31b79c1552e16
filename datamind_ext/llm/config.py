"""The one description of an OpenAI-compatible chat endpoint, shared by every stage that calls one.

Synthesis (the expert and its consistency judge), the reward's LLM judge and evaluation (the
served checkpoint, the benchmark judge) all reach an endpoint with the same settings, spelled
the same way: stage configs subclass :class:`EndpointConfig` and change only defaults or add
what is theirs (a cache file, a policy).
"""

from __future__ import annotations

import os

from pydantic import Field

from datamind_ext.config import StrictModel


class EndpointConfig(StrictModel):
    """Where to send ``/chat/completions`` requests and how hard to push (vLLM, SGLang, a hosted API)."""

    base_url: str | None = Field(None, description="…/v1 root of the endpoint")
    model: str | None = None
    #: Name of the environment variable holding the API key (the key itself never sits in a config).
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the API key (may be unset)")
    max_concurrency: int = Field(16, ge=1, description="requests in flight at once (per event loop)")
    max_rpm: float | None = Field(None, gt=0, description="request starts per minute (None: unlimited)")
    max_retries: int = Field(4, ge=0, description="retries on 429/5xx/timeouts/connection errors")
    backoff_s: float = Field(0.5, ge=0, description="first backoff; doubles per retry, with jitter")
    backoff_max_s: float = Field(30.0, ge=0, description="longest wait between two attempts")
    timeout_s: float = Field(120.0, gt=0, description="per request")
    temperature: float = 0.7
    max_tokens: int = Field(2048, ge=1, description="per request")
    cost_per_1k_prompt_tokens: float = Field(0.0, ge=0)
    cost_per_1k_completion_tokens: float = Field(0.0, ge=0)

    def resolved_base_url(self) -> str | None:
        """``base_url`` without a trailing slash (subclasses may fall back to the environment)."""
        return self.base_url.rstrip("/") if self.base_url else None

    def resolved_model(self) -> str | None:
        return self.model

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) or None
