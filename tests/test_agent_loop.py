"""The core turn loop (no verl): tokens vs the chat template, budgets, void flags, metrics,
observation handling, replay diffs, session cleanup, and the chat-level runner."""

from __future__ import annotations

import asyncio

import pytest
from helpers import py_sessions as support

from datamind_ext.agent import (
    AgentBudgets,
    ReplayPolicy,
    TurnLoop,
    replay_trajectory,
    run_chat_episode,
)
from datamind_ext.agent.chat import restore_stop
from datamind_ext.agent.loop import (
    FORCE_ANSWER_NOTE,
    VOID_ERROR,
    VOID_LENGTH,
    VOID_MAX_TURNS,
    VOID_NO_TAG,
    VOID_RESPONSE_BUDGET,
    EpisodeView,
    TurnOutput,
)
from datamind_ext.protocol import (
    Trajectory,
    is_observation,
    observation_message,
    observation_text,
)

SYSTEM = {"role": "system", "content": "You analyse data with python."}
QUESTION = {"role": "user", "content": "What is the total of column x?"}
TURN1 = "<think>load it</think><code>\n```python\nxs = [1, 2, 3]\nprint(sum(xs))\n```\n</code>"
TURN2 = "<think>check</think><code>\n```python\nprint(max(xs))\n```\n</code>"
ANSWER = "<think>done</think><answer>6</answer>"


def obs(output: str, ok: bool = True, error: str | None = None) -> dict[str, str]:
    text, _ = observation_text(support.Result(output, ok, error))
    return observation_message(text).model_dump()


def correct_trajectory() -> Trajectory:
    msgs = [SYSTEM, QUESTION, {"role": "assistant", "content": TURN1}, obs("6\n"),
            {"role": "assistant", "content": TURN2}, obs("3\n"), {"role": "assistant", "content": ANSWER}]
    return Trajectory(id="t1", messages=msgs, files=[])


@pytest.fixture(autouse=True)
def no_leaked_sessions():
    yield
    leaked = [pid for pid in support.PySubprocessSession.live if support.pid_alive(pid)]
    assert not leaked, f"interpreter processes left running: {leaked}"


async def test_replay_of_correct_trajectory_reproduces_observations_and_template_tokens(tiny_tokenizer):
    traj = correct_trajectory()
    ep, diffs = await replay_trajectory(traj, support.py_factory(), tokenizer=tiny_tokenizer)
    assert diffs == []
    assert not ep.void and ep.answer == "6" and ep.error is None
    assert ep.messages == traj.to_openai()
    # Prompt + response are exactly the chat template's tokens for the same messages; only the
    # final end-of-turn marker (never generated: the turn stops at </answer>) is missing.
    full = tiny_tokenizer.apply_chat_template(ep.messages, tokenize=True, return_dict=False)
    tail = tiny_tokenizer.encode("<|im_end|>\n", add_special_tokens=False)
    assert ep.prompt_ids + ep.response_ids + tail == list(full)
    assert len(ep.response_mask) == len(ep.response_ids)
    # Mask 1 exactly on the assistant turns' own tokens; observations and markers are 0.
    trained = [t for t, m in zip(ep.response_ids, ep.response_mask) if m]
    assert tiny_tokenizer.decode(trained) == TURN1 + TURN2 + ANSWER
    context = tiny_tokenizer.decode([t for t, m in zip(ep.response_ids, ep.response_mask) if not m])
    assert "The code ran successfully:\n6" in context and "<interpreter>" in context
    m = ep.metrics
    assert (m.turns, m.code_cells, m.cells_errored, m.cells_timed_out, m.void) == (3, 2, 0, 0, 0)
    assert [t.kind for t in ep.turn_metrics] == ["code", "code", "answer"]


async def test_replay_reports_observation_that_differs(tiny_tokenizer):
    traj = correct_trajectory()
    traj.messages[3] = observation_message("The code ran successfully:\n7\n")
    _, diffs = await replay_trajectory(traj, support.py_factory(), tokenizer=tiny_tokenizer)
    assert [d.index for d in diffs] == [0]
    assert "7" in diffs[0].recorded and "6" in diffs[0].replayed


async def test_state_persists_errors_and_timeouts_are_counted():
    turns = ["<code>a = 41</code>", "<code>print(a + 1)</code>", "<code>raise ValueError('boom')</code>",
             "<code>while True: pass</code>", "<answer>42</answer>"]
    loop = TurnLoop(ReplayPolicy(turns), support.py_factory(timeout_s=1.0), AgentBudgets())
    ep = await loop.run([QUESTION])
    observations = [m["content"] for m in ep.messages if is_observation(m)]
    assert "42" in observations[1]
    assert "ValueError: boom" in observations[2]
    assert "timed out" in observations[3]
    m = ep.metrics
    assert (m.code_cells, m.cells_errored, m.cells_timed_out) == (4, 1, 1)
    assert m.interpreter_s >= 1.0 and not ep.void  # the answer came after the timeout


async def test_turn_without_code_or_answer_is_void(tiny_tokenizer):
    loop = TurnLoop(ReplayPolicy(["I think the answer is 6."]), support.py_factory(), tokenizer=tiny_tokenizer)
    ep = await loop.run([SYSTEM, QUESTION])
    assert ep.void and ep.void_reason == VOID_NO_TAG and ep.metrics.void == 1 and ep.answer is None
    assert ep.response_mask and all(ep.response_mask)


async def test_max_turns_without_answer_is_void(tiny_tokenizer):
    loop = TurnLoop(ReplayPolicy([TURN1] * 5), support.py_factory(), AgentBudgets(max_turns=3), tokenizer=tiny_tokenizer)
    ep = await loop.run([SYSTEM, QUESTION])
    assert ep.void and ep.void_reason == VOID_MAX_TURNS
    assert ep.metrics.turns == 3 and ep.metrics.code_cells == 2  # the last turn's code is not run


async def test_turn_token_limit_is_void_and_per_turn_cap_is_sent(tiny_tokenizer):
    seen: list[int] = []

    class Recording(ReplayPolicy):
        async def generate(self, view: EpisodeView, max_tokens: int) -> TurnOutput:
            seen.append(max_tokens)
            return await super().generate(view, max_tokens)

    loop = TurnLoop(Recording([TURN1], tiny_tokenizer), support.py_factory(),
                    AgentBudgets(max_tokens_per_turn=5), tokenizer=tiny_tokenizer)
    ep = await loop.run([SYSTEM, QUESTION])
    assert seen == [5] and len(ep.response_ids) == 5
    assert ep.void and ep.void_reason == VOID_LENGTH


async def test_response_budget_cuts_and_voids(tiny_tokenizer):
    budget = 60
    loop = TurnLoop(ReplayPolicy([TURN1, TURN2, ANSWER], tiny_tokenizer), support.py_factory(),
                    AgentBudgets(max_response_tokens=budget), tokenizer=tiny_tokenizer)
    ep = await loop.run([SYSTEM, QUESTION])
    assert ep.void and ep.void_reason in (VOID_RESPONSE_BUDGET, VOID_LENGTH)
    assert len(ep.response_ids) <= budget and len(ep.response_mask) == len(ep.response_ids)


async def test_long_observation_keeps_head_and_tail(tiny_tokenizer):
    code = "<code>print('H' + 'x' * 10000 + 'T')</code>"
    loop = TurnLoop(ReplayPolicy([code, ANSWER]), support.py_factory(),
                    AgentBudgets(max_observation_chars=256, force_final_answer=True, max_turns=2))
    ep = await loop.run([QUESTION])
    text = next(m["content"] for m in ep.messages if is_observation(m))
    assert "successfully:\nH" in text and "T\n" in text and "characters cut" in text
    assert FORCE_ANSWER_NOTE in text  # next turn is the last one
    assert ep.metrics.observation_chars_cut > 9000 and ep.turn_metrics[0].observation_chars <= 256 + len(FORCE_ANSWER_NOTE) + 1
    assert not ep.void


class Exploding:
    async def generate(self, view: EpisodeView, max_tokens: int) -> TurnOutput:
        if view.turn == 1:
            raise RuntimeError("server went away")
        return TurnOutput(text=TURN1)


class Hanging:
    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def generate(self, view: EpisodeView, max_tokens: int) -> TurnOutput:
        self.started.set()
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


async def test_failure_is_isolated_and_session_closed():
    ep = await TurnLoop(Exploding(), support.py_factory()).run([QUESTION])
    assert ep.void and ep.void_reason == VOID_ERROR and ep.metrics.failed == 1
    assert "server went away" in (ep.error or "")
    assert not support.PySubprocessSession.live


async def test_cancellation_closes_session():
    policy = Hanging()
    task = asyncio.create_task(TurnLoop(policy, support.py_factory()).run([QUESTION]))
    await asyncio.wait_for(policy.started.wait(), 30)
    assert len(support.PySubprocessSession.live) == 1
    pid = next(iter(support.PySubprocessSession.live))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not support.pid_alive(pid)


async def test_concurrent_episodes_overlap_code_execution():
    """Two trajectories each sleeping 1 s in code finish in well under 2 s of loop time:
    execution never blocks the event loop (measured as overlap, not a speed threshold)."""
    turns = ["<code>import time; time.sleep(1.0); print('ok')</code>", "<answer>ok</answer>"]
    loop = TurnLoop(ReplayPolicy(turns), support.py_factory())
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    t = asyncio.create_task(ticker())
    eps = await asyncio.gather(loop.run([QUESTION]), loop.run([QUESTION]))
    t.cancel()
    assert all(e.answer == "ok" for e in eps)
    assert ticks >= 10  # the loop kept running while both cells slept


def test_restore_stop_puts_back_the_removed_tag():
    assert restore_stop("<code>print(1)", "stop", "</code>") == "<code>print(1)</code>"
    assert restore_stop("<answer>4", "stop", None) == "<answer>4</answer>"
    assert restore_stop("<code>print(1)", "length", None) == "<code>print(1)"


async def test_chat_episode_against_openai_compatible_server():
    from datamind_ext.testing import OpenAITestServer

    # Like an OpenAI server, the scripted replies omit the matched stop string.
    replies = ["<think>a</think><code>\nprint(2 + 2)\n", "<answer>4"]
    with OpenAITestServer(respond=replies) as srv:
        ep = await run_chat_episode(srv.base_url, "test-model", [SYSTEM, QUESTION], support.py_factory())
        bodies = [r.body for r in srv.requests]
    assert ep.answer == "4" and not ep.void
    assert ep.messages[2]["content"].endswith("</code>")
    assert "4" in ep.messages[3]["content"] and is_observation(ep.messages[3])
    assert bodies[0]["stop"] == ["</code>", "</answer>"] and bodies[0]["max_tokens"] == 1024
    assert bodies[1]["messages"][-1] == ep.messages[3]
