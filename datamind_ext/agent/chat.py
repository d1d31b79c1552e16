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
    """One ``POST {base_url}/chat/completions`` per assistant turn."""

    def __init__(self, base_url: str, model: str, *, client: Any, api_key: str | None = None,
                 sampling: dict[str, Any] | None = None, timeout_s: float = 600.0) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.client = client
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.sampling = dict(sampling or {})
        self.timeout_s = timeout_s

    async def generate(self, view: EpisodeView, max_tokens: int) -> TurnOutput:
        body = {"model": self.model, "messages": view.messages, "max_tokens": max_tokens,
                "stop": list(TURN_STOPS), **self.sampling}
        resp = await self.client.post(self.url, json=body, headers=self.headers, timeout=self.timeout_s)
        resp.raise_for_status()
        data = resp.json()
        choice = data["choices"][0]
        finish = choice.get("finish_reason") or "stop"
        text = restore_stop(choice["message"].get("content") or "", finish, choice.get("stop_reason"))
        n_tokens = (data.get("usage") or {}).get("completion_tokens")
        return TurnOutput(text=text, finish_reason="length" if finish == "length" else "stop", n_tokens=n_tokens)


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
    client: Any = None,
) -> Episode:
    """Run one multi-turn episode against an OpenAI-compatible server.

    ``budgets.max_response_tokens`` counts generated tokens here (from ``usage``), since
    observation tokens are the server's business. Pass a shared ``httpx.AsyncClient`` as
    ``client`` when running many episodes concurrently.
    """
    import httpx

    own = client is None
    client = client or httpx.AsyncClient()
    try:
        policy = ChatCompletionsPolicy(base_url, model, client=client, api_key=api_key, sampling=sampling)
        return await TurnLoop(policy, session_factory, budgets).run(messages, files)
    finally:
        if own:
            await client.aclose()
