"""The multi-turn turn loop shared by verl's agent loop, the chat-level runner and replay.

One episode: the model writes a turn that ends at ``</code>`` (its code runs in the episode's
interpreter session and the result comes back as an ``<interpreter>`` user turn) or at
``</answer>`` (done). Everything else (a turn that ends without either tag, running out of
turns or of response tokens) makes the trajectory **void**: DataMind masks void trajectories
out of the policy loss.

In token mode (a tokenizer is given) the loop keeps ``response_ids``/``response_mask`` exactly
as the chat template renders the equivalent messages: the model's tokens (mask 1) are kept as
generated, then the template's end-of-turn marker and the observation turn (mask 0) are
appended via :func:`datamind_ext.protocol.render_continuation`, so there is no re-tokenisation
drift at turn boundaries. Without a tokenizer the loop works on messages only (chat runner).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from datamind_ext.agent.config import AgentBudgets
from datamind_ext.agent.session import CodeSession, SessionFactory, open_session
from datamind_ext.protocol import (
    TURN_STOPS,
    chat_text,
    observation_message,
    observation_text,
    parse_response,
    render_continuation,
    render_messages,
)
from datamind_ext.protocol.render import encode
from datamind_ext.protocol.tags import CLOSE, extract_code

FORCE_ANSWER_NOTE = "You have used your last code turn. Reply now with your final answer in <answer></answer>."

# Why a trajectory is void (stable names: metrics and reports use them).
VOID_NO_TAG = "turn_without_code_or_answer"
VOID_LENGTH = "turn_hit_token_limit"
VOID_MAX_TURNS = "max_turns"
VOID_RESPONSE_BUDGET = "response_budget"
VOID_ERROR = "error"


@dataclass
class TurnOutput:
    """What a policy produced for one assistant turn."""

    text: str
    token_ids: list[int] | None = None
    log_probs: list[float] | None = None
    finish_reason: str = "stop"  # stop | length | abort
    n_tokens: int | None = None  # generated tokens when the policy has no token ids (chat servers)


@dataclass
class EpisodeView:
    """Read-only view a policy gets: the conversation so far and, in token mode, its tokens."""

    messages: list[dict[str, str]]
    token_ids: list[int]
    turn: int


class Policy(Protocol):
    async def generate(self, view: EpisodeView, max_tokens: int) -> TurnOutput: ...


@dataclass
class TurnMetrics:
    turn: int
    kind: str  # code | answer | void
    gen_tokens: int
    finish_reason: str
    generation_s: float
    interpreter_s: float = 0.0
    cell_ok: bool | None = None
    cell_timed_out: bool | None = None
    observation_chars: int = 0
    observation_chars_cut: int = 0


@dataclass
class EpisodeMetrics:
    """Per-trajectory numbers returned to verl (all scalars, the same keys for every sample)."""

    turns: int = 0
    code_cells: int = 0
    cells_errored: int = 0
    cells_timed_out: int = 0
    observation_chars_cut: int = 0
    void: int = 0
    failed: int = 0
    generation_s: float = 0.0
    interpreter_s: float = 0.0
    overhead_s: float = 0.0  # loop time that is neither generation nor code execution

    def as_dict(self, prefix: str = "") -> dict[str, float | int]:
        return {f"{prefix}{k}": v for k, v in asdict(self).items()}


@dataclass
class Episode:
    """The result of one trajectory."""

    messages: list[dict[str, str]]
    prompt_ids: list[int] = field(default_factory=list)
    response_ids: list[int] = field(default_factory=list)
    response_mask: list[int] = field(default_factory=list)
    response_logprobs: list[float] | None = None
    answer: str | None = None
    void: bool = False
    void_reason: str | None = None
    error: str | None = None
    metrics: EpisodeMetrics = field(default_factory=EpisodeMetrics)
    turn_metrics: list[TurnMetrics] = field(default_factory=list)

    def to_record(self) -> dict[str, Any]:
        """The JSONL row written by ``datamind-ext rollout``."""
        return {
            "messages": self.messages,
            "prompt_ids": self.prompt_ids,
            "response_ids": self.response_ids,
            "response_mask": self.response_mask,
            "answer": self.answer,
            "void": self.void,
            "void_reason": self.void_reason,
            "error": self.error,
            "metrics": self.metrics.as_dict(),
            "turn_metrics": [asdict(t) for t in self.turn_metrics],
        }


def _classify(text: str) -> tuple[str, str | None]:
    """``("answer", answer)``, ``("code", source)`` or ``("void", None)`` for one model turn.

    The server stops at the first ``</code>``/``</answer>``, so the turn's kind is given by the
    tag it ends with; the one parser reads the block.
    """
    stripped = text.rstrip()
    parsed = parse_response(text, model_turn=True)
    if stripped.endswith(CLOSE["answer"]) and parsed.answer is not None:
        return "answer", parsed.answer
    if stripped.endswith(CLOSE["code"]):
        blocks = parsed.blocks("code")
        if blocks:
            return "code", extract_code(blocks[-1])
    return "void", None


class TurnLoop:
    """Runs episodes with one policy, one session factory and one set of budgets.

    Args:
        policy: produces assistant turns (a model server, a chat endpoint, or a replay).
        session_factory: opens one interpreter session per episode with its data files.
        budgets: turn/token/observation limits.
        tokenizer: given → token mode (prompt/response ids and masks are built).
        max_prompt_tokens: longer prompts keep their last tokens (verl's ``rollout.prompt_length``).
    """

    def __init__(self, policy: Policy, session_factory: SessionFactory, budgets: AgentBudgets | None = None,
                 *, tokenizer: Any = None, max_prompt_tokens: int | None = None) -> None:
        self.policy = policy
        self.session_factory = session_factory
        self.budgets = budgets or AgentBudgets()
        self.tokenizer = tokenizer
        self.max_prompt_tokens = max_prompt_tokens

    def _render_prompt(self, messages: list[dict[str, str]]) -> tuple[list[int], str]:
        rendered = render_messages(self.tokenizer, messages, add_generation_prompt=True)
        return rendered.input_ids, chat_text(self.tokenizer, messages, add_generation_prompt=True)

    async def run(self, messages: Sequence[dict[str, str]], files: Sequence[str] = ()) -> Episode:
        """Run one episode; the session is opened with ``files`` and closed whatever happens.

        Exceptions from the policy or the interpreter are not raised: the episode comes back
        void with ``failed=1`` and the error text, so one trajectory never fails a batch.
        Cancellation propagates (after the session is closed).
        """
        t_start = time.perf_counter()
        ep = Episode(messages=[{"role": m["role"], "content": m["content"]} for m in messages])
        try:
            if self.tokenizer is not None:
                ep.prompt_ids, text_so_far = await asyncio.to_thread(self._render_prompt, ep.messages)
                if self.max_prompt_tokens and len(ep.prompt_ids) > self.max_prompt_tokens:
                    ep.prompt_ids = ep.prompt_ids[-self.max_prompt_tokens :]
                ep.response_logprobs = []
            else:
                text_so_far = ""
            async with open_session(self.session_factory, files) as session:
                await self._turns(ep, session, text_so_far)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - isolate the batch from one bad trajectory
            ep.error = f"{type(err).__name__}: {err}"
            ep.metrics.failed = 1
            self._void(ep, VOID_ERROR)
        m = ep.metrics
        m.overhead_s = max(0.0, time.perf_counter() - t_start - m.generation_s - m.interpreter_s)
        if ep.response_logprobs is not None and len(ep.response_logprobs) != len(ep.response_ids):
            ep.response_logprobs = None
        return ep

    @staticmethod
    def _void(ep: Episode, reason: str) -> None:
        ep.void, ep.void_reason = True, reason
        ep.metrics.void = 1

    def _append(self, ep: Episode, ids: list[int], mask_value: int, logprobs: list[float] | None = None) -> None:
        ep.response_ids += ids
        ep.response_mask += [mask_value] * len(ids)
        if ep.response_logprobs is not None:
            if logprobs is not None and len(logprobs) == len(ids):
                ep.response_logprobs += logprobs
            elif mask_value == 0:
                ep.response_logprobs += [0.0] * len(ids)
            else:
                ep.response_logprobs = None  # a turn without log-probs: none for the episode

    async def _turns(self, ep: Episode, session: CodeSession, text_so_far: str) -> None:
        b, m, tok = self.budgets, ep.metrics, self.tokenizer
        generated_total = 0
        for turn in range(b.max_turns):
            used = len(ep.response_ids) if tok is not None else generated_total
            remaining = b.max_response_tokens - used
            if remaining <= 0:
                self._void(ep, VOID_RESPONSE_BUDGET)
                return
            max_tokens = min(b.max_tokens_per_turn, remaining)
            view = EpisodeView(messages=ep.messages, token_ids=ep.prompt_ids + ep.response_ids, turn=turn)
            t0 = time.perf_counter()
            out = await self.policy.generate(view, max_tokens)
            gen_s = time.perf_counter() - t0
            m.generation_s += gen_s
            m.turns += 1
            n_gen = len(out.token_ids) if out.token_ids is not None else (out.n_tokens or 0)
            generated_total += n_gen
            if tok is not None:
                ids = out.token_ids if out.token_ids is not None else encode(tok, out.text)
                self._append(ep, list(ids), 1, out.log_probs)
            ep.messages.append({"role": "assistant", "content": out.text})
            kind, payload = _classify(out.text)
            tm = TurnMetrics(turn=turn, kind=kind, gen_tokens=n_gen, finish_reason=out.finish_reason, generation_s=gen_s)
            ep.turn_metrics.append(tm)
            if kind == "answer":
                ep.answer = payload
                return
            if kind == "void":
                self._void(ep, VOID_LENGTH if out.finish_reason == "length" else VOID_NO_TAG)
                return
            if turn == b.max_turns - 1:
                self._void(ep, VOID_MAX_TURNS)  # code in the last allowed turn: no turn left to answer
                return
            t1 = time.perf_counter()
            result = await session.run(payload or "")
            tm.interpreter_s = time.perf_counter() - t1
            m.interpreter_s += tm.interpreter_s
            text, cut = observation_text(result, b.max_observation_chars)
            cut += int(getattr(result, "truncated_chars", 0) or 0)  # already cut by the interpreter
            if b.force_final_answer and turn == b.max_turns - 2:
                text = f"{text}\n{FORCE_ANSWER_NOTE}"
            m.code_cells += 1
            tm.cell_ok, tm.cell_timed_out = bool(result.ok), bool(result.timed_out)
            m.cells_timed_out += int(bool(result.timed_out))
            m.cells_errored += int(not result.ok and not result.timed_out)
            tm.observation_chars, tm.observation_chars_cut = len(text), cut
            m.observation_chars_cut += cut
            obs = observation_message(text).model_dump()
            if tok is not None:
                text_so_far = await asyncio.to_thread(self._append_observation, ep, text_so_far, out.text, obs)
                if len(ep.response_ids) >= b.max_response_tokens:
                    # No room to generate another token: cut the (masked) context and stop.
                    del ep.response_ids[b.max_response_tokens :]
                    del ep.response_mask[b.max_response_tokens :]
                    if ep.response_logprobs is not None:
                        del ep.response_logprobs[b.max_response_tokens :]
                    ep.messages.append(obs)
                    self._void(ep, VOID_RESPONSE_BUDGET)
                    return
            ep.messages.append(obs)
        self._void(ep, VOID_MAX_TURNS)

    def _append_observation(self, ep: Episode, text_so_far: str, turn_text: str, obs: dict[str, str]) -> str:
        """Append the template's end-of-turn marker and the observation turn (mask 0).

        ``text_so_far`` is the template text up to the assistant header; the model's own tokens
        were appended as generated. Returns the template text up to the next assistant header.
        """
        tok = self.tokenizer
        history = ep.messages  # ends with the assistant turn just generated
        closed = chat_text(tok, history)
        prefix = text_so_far + turn_text
        if not closed.startswith(prefix):
            raise ValueError("chat template is not prefix-stable for this assistant turn")
        close_ids = encode(tok, closed[len(prefix) :])
        obs_ids = render_continuation(tok, history, [obs], add_generation_prompt=True)
        self._append(ep, close_ids + obs_ids, 0)
        return chat_text(tok, [*history, obs], add_generation_prompt=True)


def stop_params() -> dict[str, Any]:
    """Sampling-parameter entries that make a server stop a turn at ``</code>``/``</answer>``."""
    return {"stop": list(TURN_STOPS), "include_stop_str_in_output": True}
