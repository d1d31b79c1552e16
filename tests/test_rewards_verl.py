"""verl 0.9.1's own reward-loop code, on CPU, calling our compute_score and our manager.

The batch is a real ``DataProto`` with token ids from the tiny tokenizer; verl's
``RewardLoopWorker`` (used as a plain object, without Ray) loads the reward manager from the
config exactly as in training, and ``assemble_rm_scores`` places the scores.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("verl")

from omegaconf import OmegaConf

from datamind_ext.rewards import RESULT_KEYS

RESP_OK = (
    "<think>load the file</think>\n<code>\n```python\nprint(df.x.mean())\n```\n</code>\n"
    "<interpreter>29.1389</interpreter>\n<answer>The mean is 29.14</answer>"
)
RESP_WRONG = RESP_OK.replace("29.14</answer>", "31.5</answer>")
RESP_BAD = "<answer>no idea"


def _config(model_path, *, manager: str, fn_path: str | None, reward_kwargs: dict | None = None):
    return OmegaConf.create(
        {
            "actor_rollout_ref": {"model": {"path": str(model_path), "tokenizer_path": None}},
            "reward": {
                "num_workers": 1,
                "custom_reward_function": {
                    "path": fn_path,
                    "name": "compute_score",
                    "reward_kwargs": reward_kwargs or {},
                },
                "reward_manager": {"source": "register", "name": manager, "module": {"path": None, "name": None}},
                "reward_model": {"enable": False, "model_path": None},
            },
        }
    )


def _batch(tokenizer, responses: list[str], *, extra: list[dict] | None = None):
    from verl import DataProto

    prompt_len, resp_len = 8, 96
    prompts, resps, masks = [], [], []
    for text in responses:
        ids = tokenizer.encode(text, add_special_tokens=False)[:resp_len]
        pad = tokenizer.pad_token_id or 0
        prompts.append([pad] * prompt_len)
        resps.append(ids + [pad] * (resp_len - len(ids)))
        masks.append([1] * prompt_len + [1] * len(ids) + [0] * (resp_len - len(ids)))
    n = len(responses)
    extra = extra or [{} for _ in range(n)]
    return DataProto.from_dict(
        tensors={
            "prompts": torch.tensor(prompts),
            "responses": torch.tensor(resps),
            "attention_mask": torch.tensor(masks),
        },
        non_tensors={
            "data_source": np.array(["file_qa"] * n, dtype=object),
            "reward_model": np.array([{"ground_truth": "29.14"} for _ in range(n)], dtype=object),
            "extra_info": np.array(extra, dtype=object),
        },
    )


@pytest.fixture(scope="module", autouse=True)
def _registered():
    from datamind_ext.integrations.verl.registration import register_all

    register_all()  # what the plugin entry point does in every verl process


async def _worker_scores(config, data):
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

    worker = RewardLoopWorker(config)
    outputs = await worker.compute_score_batch(data)
    return worker, outputs


@pytest.mark.parametrize("manager", ["naive", "datamind"])
async def test_verl_reward_loop_calls_our_function(tiny_model_path, tiny_tokenizer, manager) -> None:
    config = _config(tiny_model_path, manager=manager, fn_path="pkg://datamind_ext.integrations.verl.rewards")
    data = _batch(tiny_tokenizer, [RESP_OK, RESP_WRONG, RESP_BAD], extra=[{}, {}, {"dm_void": 1}])
    worker, outputs = await _worker_scores(config, data)
    scores = [o["reward_score"] for o in outputs]
    assert scores == pytest.approx([1.0, 0.0, -0.1])
    infos = [o["reward_extra_info"] for o in outputs]
    assert all(list(i) == list(RESULT_KEYS) for i in infos)  # same keys for every sample
    assert [i["void"] for i in infos] == [0.0, 0.0, 1.0]
    assert [i["mask_out"] for i in infos] == [0.0, 0.0, 1.0]
    rm = type(worker.reward_manager).assemble_rm_scores(data, scores)
    last = data.batch["attention_mask"][:, 8:].sum(-1) - 1
    assert rm[torch.arange(3), last].tolist() == pytest.approx(scores)
    if manager == "datamind":
        assert type(worker.reward_manager).__name__ == "DataMindRewardManager"


async def test_datamind_manager_runs_a_user_function(tiny_model_path, tiny_tokenizer) -> None:
    config = _config(tiny_model_path, manager="datamind", fn_path="pkg://tests_user_reward_fn_for_datamind")
    import sys
    import types

    mod = types.ModuleType("tests_user_reward_fn_for_datamind")
    mod.compute_score = lambda data_source, solution_str, ground_truth, extra_info, **kw: 0.25  # type: ignore[attr-defined]
    sys.modules[mod.__name__] = mod
    try:
        _, outputs = await _worker_scores(config, _batch(tiny_tokenizer, [RESP_OK]))
    finally:
        del sys.modules[mod.__name__]
    assert outputs[0]["reward_score"] == 0.25


async def test_reward_kwargs_reach_the_scorer(tiny_model_path, tiny_tokenizer) -> None:
    kwargs = {"reward": {"wrong_reward": -0.5, "format_penalty": -0.3}}
    config = _config(tiny_model_path, manager="naive", fn_path="pkg://datamind_ext.integrations.verl.rewards",
                     reward_kwargs=kwargs)
    _, outputs = await _worker_scores(config, _batch(tiny_tokenizer, [RESP_WRONG, RESP_BAD]))
    assert [o["reward_score"] for o in outputs] == pytest.approx([-0.5, -0.3])


def test_registered_in_verl_registry_via_plugin() -> None:
    from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls

    from datamind_ext.integrations.verl import registration, rewards

    assert get_reward_manager_cls("datamind") is rewards.DataMindRewardManager
    assert registration.register_all() == {}  # idempotent, nothing failed


def test_compute_score_direct_and_unknown_kwargs() -> None:
    from datamind_ext.errors import UserError
    from datamind_ext.integrations.verl.rewards import compute_score

    out = compute_score(data_source="file_qa", solution_str=RESP_OK, ground_truth="29.14", extra_info=None)
    assert out["score"] == 1.0 and list(out) == list(RESULT_KEYS)
    with pytest.raises(UserError, match="unknown key"):
        compute_score(data_source="x", solution_str="", ground_truth="", extra_info={}, rel_tol=0.1)


def test_compute_score_reads_a_config_file(tmp_path) -> None:
    from datamind_ext.errors import UserError
    from datamind_ext.integrations.verl.rewards import compute_score

    cfg = tmp_path / "reward.yaml"
    cfg.write_text("reward:\n  wrong_reward: -0.5\n  default_kind: file_qa\n")
    wrong = RESP_OK.replace("29.14</answer>", "99</answer>")
    out = compute_score(data_source="x", solution_str=wrong, ground_truth="29.14", extra_info={}, config_path=str(cfg))
    assert out["score"] == -0.5
    (tmp_path / "bad.yaml").write_text("reward:\n  wrong: 1\n")
    with pytest.raises(UserError, match="unknown key 'reward.wrong'"):
        compute_score(data_source="x", solution_str="", ground_truth="", extra_info={},
                      config_path=str(tmp_path / "bad.yaml"))


async def test_datamind_manager_judges_with_bounded_concurrency(tiny_model_path, tiny_tokenizer) -> None:
    from datamind_ext.testing import OpenAITestServer

    def verdict(req):
        ok = "<candidate>\nThe mean is 29.14" in req.last_user_text
        return "<verdict>correct</verdict>" if ok else "<verdict>incorrect</verdict>"

    with OpenAITestServer(verdict, latency_s=0.05) as srv:
        kwargs = {"judge": {"base_url": srv.base_url, "model": "judge-x", "max_concurrency": 2},
                  "reward": {"kind_by_data_source": {"open_judge": "judged"}}}  # rows without task_kind
        config = _config(tiny_model_path, manager="datamind", fn_path=None, reward_kwargs=kwargs)
        data = _batch(tiny_tokenizer, [RESP_OK, RESP_WRONG, RESP_OK, RESP_WRONG])
        data.non_tensor_batch["data_source"] = np.array(["open_judge"] * 4, dtype=object)
        _, outputs = await _worker_scores(config, data)
        assert [o["reward_score"] for o in outputs] == pytest.approx([1.0, 0.0, 1.0, 0.0])
        assert all(o["reward_extra_info"]["judged"] == 1.0 for o in outputs)
        assert srv.request_count == 4 and srv.max_in_flight <= 2
