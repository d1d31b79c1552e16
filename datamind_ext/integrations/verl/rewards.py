"""The data-analytic reward inside verl 0.9.1: a ``compute_score`` function and a reward manager.

Two ways in, both through verl's public config (``reward.*``; the old top-level
``custom_reward_function`` / ``reward_model.reward_manager`` keys are silently ignored by 0.9.1):

* ``reward.custom_reward_function.path=pkg://datamind_ext.integrations.verl.rewards`` (name
  ``compute_score``, the default) with any manager (``naive``, ``remote``...). Options go in
  ``reward.custom_reward_function.reward_kwargs``: ``reward`` (a :class:`RewardConfig` dict),
  ``judge`` (a :class:`JudgeConfig` dict), ``require_code_kinds``, ``scorers`` (task kind ->
  import path of a user scorer), or ``config_path`` (a YAML file holding those blocks).
  ``compute_score_async`` is the same for async managers such as ``rate_limited`` (it is the
  core; ``compute_score`` is its synchronous wrapper).
* ``reward.reward_manager.name=datamind``: our manager (registered in verl's reward-loop
  registry by ``registration.TABLE``), which scores on the event loop, passes the tokenizer so the
  length penalty counts tokens, and awaits the judge with bounded concurrency and an optional
  requests-per-minute limit. If ``reward.custom_reward_function.path`` is also set, the manager
  calls that user function instead of ours (one config line swaps the reward).

Every result dict has the same keys (:data:`RESULT_KEYS`), including ``void`` and ``mask_out``
read from the rollout's ``extra_fields`` (which verl merges into ``extra_info``).
"""

from __future__ import annotations

import inspect
import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase

from datamind_ext.config import load_config, parse_config
from datamind_ext.integrations.verl import registration
from datamind_ext.rewards.judge import JudgeClient
from datamind_ext.rewards.scoring import ScoringConfig, score_sample, score_sample_async

log = logging.getLogger("datamind_ext.verl.rewards")

MANAGER_NAME = "datamind"  # registered by registration.TABLE
_OPTION_KEYS = {"reward", "judge", "require_code_kinds", "scorers", "config_path"}
_IGNORED_KWARGS = {"reward_router_address", "reward_model_tokenizer"}
_lock = threading.Lock()
_configs: dict[str, ScoringConfig] = {}
_judges: dict[str, JudgeClient] = {}


def _plain(value: Any) -> Any:
    """OmegaConf containers (what verl passes as reward_kwargs) as plain dicts/lists."""
    if hasattr(value, "_content") or type(value).__name__ in {"DictConfig", "ListConfig"}:
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def scoring_config(options: Mapping[str, Any] | None) -> ScoringConfig:
    """The :class:`ScoringConfig` for a set of reward kwargs (cached: built once per process)."""
    opts = {k: _plain(v) for k, v in (options or {}).items() if k not in _IGNORED_KWARGS}
    key = json.dumps(opts, sort_keys=True, default=str)
    with _lock:
        cfg = _configs.get(key)
        if cfg is None:
            unknown = set(opts) - _OPTION_KEYS
            if unknown:
                from datamind_ext.errors import UserError

                raise UserError(f"reward.custom_reward_function.reward_kwargs: unknown key(s) {sorted(unknown)}")
            path = opts.pop("config_path", None)
            cfg = load_config(ScoringConfig, path) if path else parse_config(ScoringConfig, opts, "reward_kwargs")
            _configs[key] = cfg
        return cfg


def judge_client(cfg: ScoringConfig) -> JudgeClient:
    """One judge client per judge config and process, so its cache and limits are shared."""
    key = cfg.judge.model_dump_json()
    with _lock:
        client = _judges.get(key)
        if client is None:
            client = _judges[key] = JudgeClient(cfg.judge)
        return client


async def compute_score_async(
    data_source: Any = None,
    solution_str: Any = None,
    ground_truth: Any = None,
    extra_info: Any = None,
    **kwargs: Any,
) -> dict[str, float]:
    """verl's ``compute_score`` for async managers: the reward dict of one trajectory."""
    cfg = scoring_config(kwargs)
    res = await score_sample_async(
        data_source, solution_str, ground_truth, extra_info, config=cfg, judge=judge_client(cfg)
    )
    log.debug("reward %s: %s", res.kind, res.reason)
    return res.values


def compute_score(
    data_source: Any = None,
    solution_str: Any = None,
    ground_truth: Any = None,
    extra_info: Any = None,
    **kwargs: Any,
) -> dict[str, float]:
    """verl's ``compute_score`` for sync managers: :func:`compute_score_async`, run to completion."""
    cfg = scoring_config(kwargs)
    return score_sample(data_source, solution_str, ground_truth, extra_info, config=cfg, judge=judge_client(cfg)).values


class DataMindRewardManager(RewardManagerBase):
    """Scores trajectories with the data-analytic reward on verl's reward loop.

    Rule-based kinds are scored inline (about 0.1 ms each); judged kinds await the judge,
    whose client bounds concurrency (``judge.max_concurrency``) and rate (``judge.max_rpm``).
    """

    def __init__(
        self,
        config: Any,
        tokenizer: Any,
        compute_score: Any,
        reward_router_address: str | None = None,
        reward_model_tokenizer: Any = None,
    ) -> None:
        super().__init__(config, tokenizer, compute_score)
        fn_cfg = config.reward.get("custom_reward_function") or {}
        self.options = _plain(fn_cfg.get("reward_kwargs") or {})
        user_path = fn_cfg.get("path")
        # A user function named in the config replaces ours; verl already bound its kwargs.
        self.user_fn = compute_score if user_path and "datamind_ext.integrations.verl.rewards" not in str(
            user_path
        ) else None
        self.user_is_async = self.user_fn is not None and inspect.iscoroutinefunction(self.user_fn)
        self.scoring = scoring_config(self.options)
        self.judge = judge_client(self.scoring)

    async def run_single(self, data: Any) -> dict[str, Any]:
        item = data[-1:][0]  # multi-output trajectories: score the last output
        response_ids = item.batch["responses"]
        n_valid = int(item.batch["attention_mask"][-response_ids.shape[-1] :].sum())
        solution_str = self.tokenizer.decode(response_ids[:n_valid], skip_special_tokens=True)
        ntb = item.non_tensor_batch
        extra_info = dict(ntb.get("extra_info") or {})
        extra_info.update(dict(ntb.get("tool_extra_fields") or {}))
        extra_info["num_turns"] = ntb.get("__num_turns__")
        kwargs = {
            "data_source": ntb.get("data_source"),
            "solution_str": solution_str,
            "ground_truth": (ntb.get("reward_model") or {}).get("ground_truth"),
            "extra_info": extra_info,
        }
        if self.user_fn is not None:
            if self.user_is_async:
                result = await self.user_fn(**kwargs)
            else:
                result = await self.loop.run_in_executor(None, lambda: self.user_fn(**kwargs))
            if isinstance(result, Mapping):
                return {"reward_score": float(result["score"]), "reward_extra_info": dict(result)}
            return {"reward_score": float(result), "reward_extra_info": {"acc": float(result)}}
        res = await score_sample_async(**kwargs, config=self.scoring, tokenizer=self.tokenizer, judge=self.judge)
        return {"reward_score": res.values["score"], "reward_extra_info": dict(res.values)}


registration.loaded(__name__)
