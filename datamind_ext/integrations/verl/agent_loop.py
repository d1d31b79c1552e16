"""DataMind's multi-turn code-interpreter rollout as a verl 0.9.1 agent loop.

Registered as ``datamind_code_agent`` with verl's ``@register``; select it with
``actor_rollout_ref.rollout.agent.default_agent_loop=datamind_code_agent`` or a per-row
``agent_name`` column. verl's stock ``tool_agent`` is not used: it creates and releases a tool
per call (no state across turns) and caps tool output at 256 characters.

One instance runs one trajectory (verl builds one per row); all the logic is the core
:class:`datamind_ext.agent.TurnLoop` (one interpreter session per trajectory, stops on the
server, observation tokens as the chat template renders them with ``response_mask`` 0,
budgets, void flag). This class only adapts verl's inputs and outputs.

Configuration (all optional), in the trainer config::

    +datamind.agent.max_turns=10  +datamind.agent.max_observation_chars=2048  ...   # AgentBudgets keys
    +datamind.interpreter.<key>=...                                                # InterpreterConfig keys

``max_response_tokens`` defaults to ``rollout.response_length`` and can only be lowered.
Per-row inputs: ``raw_prompt`` (messages), ``extra_info.files`` (data file paths; a
``.sqlite``/``.db`` file makes it a database task). Without a system turn, the project's system
prompt for the task kind is prepended.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar
from uuid import uuid4

from omegaconf import DictConfig, OmegaConf
from verl.experimental.agent_loop.agent_loop import (
    AgentLoopBase,
    AgentLoopMetrics,
    AgentLoopOutput,
)

from datamind_ext.agent.config import AgentBudgets
from datamind_ext.agent.loop import Episode, TurnLoop
from datamind_ext.agent.policies import TokenServerPolicy
from datamind_ext.agent.prompts import with_system_prompt
from datamind_ext.agent.session import SessionFactory
from datamind_ext.config import parse_config
from datamind_ext.interpreter import InterpreterConfig, SessionProvider
from datamind_ext.records import ROLLOUT_EXTRA_KEYS, RLExtraInfo, RolloutExtraFields

log = logging.getLogger(__name__)

AGENT_NAME = "datamind_code_agent"  # registered by registration.TABLE (by import path)

#: extra_fields keys, identical for every sample (V1 stores them per row in TransferQueue).
EXTRA_KEYS = ROLLOUT_EXTRA_KEYS


def _plain(value: Any) -> Any:
    """numpy arrays / 0-d objects / DictConfig from verl's non-tensor batch → plain Python."""
    if isinstance(value, DictConfig):
        return OmegaConf.to_container(value, resolve=True)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return value.tolist()
    return value


def row_files(extra_info: Any, tools_kwargs: Any = None) -> list[str]:
    """The row's data files: ``extra_info.files`` (or ``tools_kwargs.files``)."""
    for src in (extra_info, tools_kwargs):
        files = RLExtraInfo.read(src).files
        if files:
            return [str(f) for f in files]
    return []


def episode_output(ep: Episode, *, with_logprobs: bool, filler_token_id: int,
                   weight_versions: tuple[int, int] | None = None) -> AgentLoopOutput:
    """verl's output for an episode: token lists, masks, scalar metrics (same keys every time).

    ``weight_versions``: the (first, last) ``global_steps`` the server reported over the episode's
    turns; verl 0.9.1's v1 trainer reads them as ``min_global_steps``/``max_global_steps`` for its
    staleness metrics and fails on None, so an episode that never generated records -1.

    An episode that failed before its first token (a missing data file, a server error) gets one
    ``filler_token_id`` response token with mask 0: verl's v1 agent loop writes the reward on the
    last response token (``rm_scores[-1]``) and raises on an empty response, which then fails the
    whole step ("no materializable trajectories"). Masked, the token trains nothing.
    """
    m = ep.metrics
    response_ids, response_mask = ep.response_ids, ep.response_mask
    response_logprobs = ep.response_logprobs
    if not response_ids:
        response_ids, response_mask, response_logprobs = [filler_token_id], [0], [0.0]
    lo, hi = weight_versions if weight_versions is not None else (-1, -1)
    extra = RolloutExtraFields(
        min_global_steps=lo, max_global_steps=hi,
        dm_turns=m.turns, dm_code_cells=m.code_cells, dm_cells_errored=m.cells_errored,
        dm_cells_timed_out=m.cells_timed_out, dm_obs_chars_cut=m.observation_chars_cut, dm_void=m.void,
        dm_failed=m.failed, dm_generation_s=round(m.generation_s, 6),
        dm_interpreter_s=round(m.interpreter_s, 6), dm_overhead_s=round(m.overhead_s, 6),
    ).to_dict()
    logprobs = response_logprobs if with_logprobs and response_logprobs is not None else None
    return AgentLoopOutput(
        prompt_ids=ep.prompt_ids,
        response_ids=response_ids,
        response_mask=response_mask,
        response_logprobs=logprobs,
        num_turns=len(ep.messages) - sum(1 for x in ep.messages if x["role"] == "system"),
        metrics=AgentLoopMetrics(generate_sequences=m.generation_s, tool_calls=m.interpreter_s),
        extra_fields=extra,
    )


class DataMindAgentLoop(AgentLoopBase):
    """Multi-turn think → code → interpreter → … → answer rollout for one row."""

    #: Session factory shared by every trajectory of this process (one interpreter pool per
    #: AgentLoopWorker). Tests and embedders may replace it.
    session_factory: ClassVar[SessionFactory | None] = None

    def __init__(self, trainer_config: Any, server_manager: Any, tokenizer: Any, processor: Any,
                 dataset_cls: Any, data_config: Any, hf_model_type: str | None = None, **kwargs: Any) -> None:
        super().__init__(trainer_config, server_manager, tokenizer, processor, dataset_cls, data_config,
                         hf_model_type=hf_model_type, **kwargs)
        dm = _plain(self.config.get("datamind")) or {}
        budgets = parse_config(AgentBudgets, dm.get("agent") or {}, "datamind.agent")
        response_length = int(self.rollout_config.response_length)
        self.budgets = budgets.model_copy(update={
            "max_response_tokens": min(budgets.max_response_tokens, response_length)
            if "max_response_tokens" in (dm.get("agent") or {}) else response_length,
            "max_tokens_per_turn": min(budgets.max_tokens_per_turn, response_length),
        })
        cls = type(self)
        if cls.session_factory is None:
            interpreter = parse_config(InterpreterConfig, dm.get("interpreter") or {}, "datamind.interpreter")
            cls.session_factory = SessionProvider(interpreter)

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        messages = [dict(m) for m in _plain(kwargs["raw_prompt"])]
        files = row_files(kwargs.get("extra_info"), kwargs.get("tools_kwargs"))
        messages = with_system_prompt(messages, files, max_turns=self.budgets.max_turns)
        request_id = uuid4().hex  # one id per trajectory: sticky routing to one server
        versions: list[int] = []  # weight version (global step) of each turn's server reply

        async def generate(prompt_ids: list[int], params: dict[str, Any]) -> tuple[list[int], list[float] | None, str]:
            out = await self.server_manager.generate(request_id=request_id, prompt_ids=prompt_ids,
                                                     sampling_params=params)
            finish = (out.extra_fields or {}).get("finish_reason")
            for key in ("min_global_steps", "max_global_steps", "global_steps"):
                if (out.extra_fields or {}).get(key) is not None:
                    versions.append(int(out.extra_fields[key]))
            if finish is None:
                finish = "abort" if out.stop_reason in ("aborted", "abort") else "stop"
            return list(out.token_ids), out.log_probs, finish

        policy = TokenServerPolicy(generate, self.tokenizer, sampling_params)
        loop = TurnLoop(policy, type(self).session_factory, self.budgets, tokenizer=self.tokenizer,
                        max_prompt_tokens=int(self.rollout_config.prompt_length))
        episode = await loop.run(messages, files)
        if episode.error:
            log.warning("datamind trajectory failed (kept in the batch as void): %s", episode.error)
        filler = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        return episode_output(episode, with_logprobs=bool(sampling_params.get("logprobs")), filler_token_id=filler,
                              weight_versions=(min(versions), max(versions)) if versions else None)
