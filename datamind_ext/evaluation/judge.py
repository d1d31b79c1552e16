"""The LLM judge used by evaluation: the rewards package's :class:`JudgeClient`, adapted.

The client (cache, retries, bounded concurrency) is shared with RL rewards so a benchmark is
judged with the same prompt as training. Evaluation adds the label recorded with every score
(model, endpoint, prompt version) and maps the client's verdict states onto
:class:`JudgeVerdict`. A judge that cannot be reached follows ``on_unreachable``: ``error``
(the default here) records the unit as failed so a rerun retries it; ``fallback_rule`` scores
by the rule and says so; ``exclude`` leaves it unscored.
"""

from __future__ import annotations

from pathlib import Path

from datamind_ext.evaluation.benchmark import JudgeVerdict
from datamind_ext.rewards import JudgeClient, JudgeConfig
from datamind_ext.rewards.judge_prompt import PROMPT_VERSION


class JudgeUnreachable(RuntimeError):
    """The judge gave no verdict and the policy is ``error``: the unit is retried on rerun."""


class EvalJudge:
    """Adapts :class:`JudgeClient` to the evaluation's :class:`~datamind_ext.evaluation.benchmark.Judge`."""

    def __init__(self, client: JudgeClient) -> None:
        self.client = client
        self.policy = client.config.on_unreachable
        self.label = f"{client.model} @ {client.base_url} (prompt {PROMPT_VERSION})"

    async def judge(self, *, question: str, reference: str, answer: str) -> JudgeVerdict:
        v = await self.client.judge(question, reference, answer)
        if v.score is not None:
            return JudgeVerdict(correct=v.score >= 0.5, reason=f"judge: {v.status}", judge=self.label)
        if self.policy == "error":
            raise JudgeUnreachable(f"judge gave no verdict ({v.status}: {v.detail})")
        return JudgeVerdict(correct=None, reason=f"judge {v.status}: {v.detail}", judge=self.label,
                            fallback=self.policy == "fallback_rule")

    async def aclose(self) -> None:
        await self.client.aclose()


def make_judge(config: JudgeConfig, *, cache_dir: Path) -> EvalJudge | None:
    """The judge for a run, or None when no judge model is configured (rule-based scoring).

    Verdicts are cached in ``cache_dir`` unless the config names its own cache file, so a
    resumed or repeated run never asks twice.
    """
    if not config.resolved_model():
        return None
    if config.cache_path is None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        config = config.model_copy(update={"cache_path": str(cache_dir / "verdicts.sqlite")})
    client = JudgeClient(config)
    if not client.configured:
        from datamind_ext.errors import UserError

        raise UserError("the judge needs an endpoint: pass --judge-base-url (or set DATAMIND_JUDGE_BASE_URL)")
    return EvalJudge(client)
