"""The one session provider and the one interpreter config: settings reach the pool, owners close it."""

from __future__ import annotations

import pytest

from datamind_ext.config import parse_config
from datamind_ext.errors import UserError
from datamind_ext.evaluation.config import EvalConfig
from datamind_ext.interpreter import InterpreterConfig, Limits, SessionProvider
from datamind_ext.synthesis.config import SynthConfig
from datamind_ext.synthesis.execute import close_providers, provider_for


def test_one_config_block_everywhere_unknown_keys_named() -> None:
    assert isinstance(SynthConfig().interpreter, InterpreterConfig)
    assert isinstance(EvalConfig().interpreter, InterpreterConfig)
    cfg = parse_config(InterpreterConfig, {"limits": {"timeout_s": 5}, "max_sessions": 3}, "datamind.interpreter")
    assert cfg.pool_kwargs()["limits"] == Limits(timeout_s=5) and cfg.pool_kwargs()["max_sessions"] == 3
    with pytest.raises(UserError, match=r"unknown key 'limits.timeout'"):
        parse_config(InterpreterConfig, {"limits": {"timeout": 5}}, "datamind.interpreter")
    with pytest.raises(UserError, match=r"unknown key 'interpreter.timeout_s'"):
        parse_config(EvalConfig, {"interpreter": {"timeout_s": 5}}, "eval")


async def test_synthesis_providers_follow_each_config() -> None:
    """A later stage with other settings gets sessions with those settings (the old global did not)."""
    fast = InterpreterConfig(limits=Limits(timeout_s=3), spare_sessions=0)
    slow = InterpreterConfig(limits=Limits(timeout_s=7), spare_sessions=0)
    try:
        assert provider_for(fast) is provider_for(fast.model_copy())
        assert provider_for(fast) is not provider_for(slow)
        async with provider_for(slow).session([]) as s:
            assert (await s.run("print(6 * 7)")).output.strip() == "42"
        assert (await provider_for(slow).pool()).limits.timeout_s == 7
    finally:
        await close_providers()


async def test_owner_closes_pool_and_sessions() -> None:
    async with SessionProvider(InterpreterConfig(spare_sessions=0, max_sessions=2)) as sessions:
        pool = await sessions.pool()
        async with sessions([]) as s:
            await s.run("x = 1")
            assert len(pool.sessions) == 1
        assert not pool.sessions and pool.max_sessions == 2
    assert pool.processes() == []
