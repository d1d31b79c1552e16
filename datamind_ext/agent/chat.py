"""The turn loop against any OpenAI-compatible ``/v1/chat/completions`` endpoint.

Synthesis (expert trajectories from a teacher model) and evaluation (a served checkpoint)
run the same loop as RL, at message level: ``vllm serve``, SGLang, a hosted API, or
``datamind_ext.generation.server`` on CPU. Turns stop at ``</code>``/``</answer>`` through
the request's ``stop`` list; OpenAI servers drop the matched stop string from the content,
so it is put back (from vLLM's ``stop_reason`` or from the unclosed tag).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datamind_ext.agent.config import AgentBudgets
from datamind_ext.agent.loop import Episode, EpisodeView, TurnLoop, TurnOutput
from datamind_ext.agent.session import SessionFactory
from datamind_ext.llm import ChatClient, EndpointConfig
from datamind_ext.protocol import TURN_STOPS
from datamind_ext.protocol.tags import CLOSE, OPEN


def restore_stop(content: str, finish_reason: str | None, stop_reason: Any) -> str:
    """Put back the stop string an OpenAI-compatible server removed from ``content``."""
    if finish_reason != "stop":
        return content
    if isinstance(stop_reason, str) and stop_reason in TURN_STOPS:
        return content if content.endswith(stop_reason) else content + stop_reason
    for tag in ("code", "answer"):  # no stop_reason: close the tag left open, if any
        if content.rfind(OPEN[tag]) > content.rfind(CLOSE[tag]):
            return content + CLOSE[tag]
    return content


class ChatCompletionsPolicy:
    """A TurnLoop policy: one request per assistant turn through the shared :class:`ChatClient`
    (its concurrency bound, retries and usage ledger), stopping at ``</code>``/``</answer>``."""

    def __init__(self, client: ChatClient, *, model: str | None = None, sampling: dict[str, Any] | None = None,
                 seed: int | None = None) -> None:
        self.client = client
        self.model = model
        self.sampling = dict(sampling or {})
        self.seed = seed

    async def generate(self, view: EpisodeView, max_tokens: int) -> TurnOutput:
        r = await self.client.chat(view.messages, model=self.model, stop=TURN_STOPS, max_tokens=max_tokens,
                                   seed=self.seed, **self.sampling)
        text = restore_stop(r.content, r.finish_reason, r.stop_reason)
        return TurnOutput(text=text, finish_reason="length" if r.finish_reason == "length" else "stop",
                          n_tokens=r.usage.get("completion_tokens"))


async def run_chat_episode(
    base_url: str,
    model: str,
    messages: Sequence[dict[str, str]],
    session_factory: SessionFactory,
    *,
    files: Sequence[str] = (),
    budgets: AgentBudgets | None = None,
    sampling: dict[str, Any] | None = None,
    api_key: str | None = None,
    client: ChatClient | None = None,
) -> Episode:
    """Run one multi-turn episode against an OpenAI-compatible server.

    ``budgets.max_response_tokens`` counts generated tokens here (from ``usage``), since
    observation tokens are the server's business. Pass a shared :class:`ChatClient` as
    ``client`` when running many episodes concurrently (then ``base_url``/``api_key`` are its own).
    """
    own = client is None
    if client is None:
        client = ChatClient(EndpointConfig(base_url=base_url, model=model), api_key=api_key)
    try:
        policy = ChatCompletionsPolicy(client, model=model, sampling=sampling)
        return await TurnLoop(policy, session_factory, budgets).run(messages, files)
    finally:
        if own:
            await client.aclose()
