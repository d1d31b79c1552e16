"""Where assistant turns come from: a token server (verl's server manager, our HF engine) or a
recorded trajectory (replay, for validating expert/synthesized data)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from datamind_ext.agent.loop import EpisodeView, TurnOutput, stop_params
from datamind_ext.protocol.render import encode

#: ``(prompt_ids, sampling_params) -> (token_ids, log_probs | None, finish_reason)``
GenerateFn = Callable[[list[int], dict[str, Any]], Awaitable[tuple[list[int], list[float] | None, str]]]


def decode_turn(tokenizer: Any, token_ids: Sequence[int]) -> str:
    """The message text of a generated turn: special tokens kept (they are what the model wrote),
    except a trailing EOS, which the chat template adds back as the end-of-turn marker."""
    ids = list(token_ids)
    eos = getattr(tokenizer, "eos_token_id", None)
    if ids and eos is not None and ids[-1] == eos:
        ids = ids[:-1]
    return tokenizer.decode(ids, skip_special_tokens=False)


class TokenServerPolicy:
    """Generate each turn on a token-in/token-out server, stopping at ``</code>``/``</answer>``.

    Stops are sent to the server (strings, and the tags' token ids when they are single
    tokens, plus EOS), so no token is generated past the end of a turn and nothing is cut
    afterwards: the server's KV state and the tokens kept always agree.
    """

    def __init__(self, generate: GenerateFn, tokenizer: Any, sampling_params: dict[str, Any] | None = None) -> None:
        self._generate = generate
        self.tokenizer = tokenizer
        self.sampling_params = dict(sampling_params or {})
        self.stop_token_ids = stop_token_ids(tokenizer)

    async def generate(self, view: EpisodeView, max_tokens: int) -> TurnOutput:
        params = {**self.sampling_params, **stop_params(), "max_tokens": max_tokens}
        params["stop_token_ids"] = sorted(set(params.get("stop_token_ids") or []) | set(self.stop_token_ids))
        ids, logprobs, finish = await self._generate(list(view.token_ids), params)
        return TurnOutput(text=decode_turn(self.tokenizer, ids), token_ids=list(ids), log_probs=logprobs,
                          finish_reason=finish)


def stop_token_ids(tokenizer: Any) -> list[int]:
    """Token ids of ``</code>``/``</answer>`` when each is one token (as in the tiny tokenizer and
    tokenizers extended with the tags), plus EOS."""
    from datamind_ext.protocol import TURN_STOPS

    out: set[int] = set()
    for s in TURN_STOPS:
        ids = encode(tokenizer, s)
        if len(ids) == 1:
            out.add(ids[0])
    if getattr(tokenizer, "eos_token_id", None) is not None:
        out.add(int(tokenizer.eos_token_id))
    return sorted(out)


class ReplayPolicy:
    """Replays the assistant turns of a recorded trajectory, in order.

    Token mode gets each turn's canonical tokens (what the chat template renders for that
    message), truncated to the turn's token budget like a real generation would be.
    """

    def __init__(self, assistant_turns: Sequence[str], tokenizer: Any = None) -> None:
        self.turns = list(assistant_turns)
        self.tokenizer = tokenizer

    async def generate(self, view: EpisodeView, max_tokens: int) -> TurnOutput:
        if view.turn >= len(self.turns):
            return TurnOutput(text="", token_ids=[] if self.tokenizer is not None else None, finish_reason="stop")
        text = self.turns[view.turn]
        if self.tokenizer is None:
            return TurnOutput(text=text)
        ids = encode(self.tokenizer, text)
        if len(ids) > max_tokens:
            ids = ids[:max_tokens]
            return TurnOutput(text=self.tokenizer.decode(ids, skip_special_tokens=False), token_ids=ids,
                              finish_reason="length")
        return TurnOutput(text=text, token_ids=ids)


def engine_generate_fn(engine: Any) -> GenerateFn:
    """Adapt :class:`datamind_ext.generation.HFGenerationEngine` to :data:`GenerateFn`."""

    async def generate(prompt_ids: list[int], params: dict[str, Any]) -> tuple[list[int], list[float] | None, str]:
        g = await engine.generate(prompt_ids, params)
        return g.token_ids, g.log_probs, g.finish_reason

    return generate
