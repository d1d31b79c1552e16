"""Answering benchmark items with the agent against an OpenAI-compatible server.

The same turn loop, system prompt, budgets and interpreter as training
(:func:`datamind_ext.agent.run_chat_episode`), so a checkpoint is evaluated exactly as it was
trained to act. The sampling defaults are the paper's evaluation settings (temperature 0.7,
top-p 0.95, 10 turns). Inline tables (TableBench) are written to files first, since the
interpreter session is given files by path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from datamind_ext.evaluation.items import EvalItem, Response
from datamind_ext.interpreter import InterpreterConfig, SessionProvider
from datamind_ext.llm import ChatClient, EndpointConfig


def materialize_inline_files(item: EvalItem, root: Path) -> list[str]:
    """Write the item's inline files under ``root/<item id>/`` (once) and return their paths."""
    if not item.inline_files:
        return []
    folder = root / re.sub(r"[^\w.-]", "_", item.item_id)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in item.inline_files.items():
        path = folder / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        paths.append(str(path))
    return paths


class AgentGenerator:
    """``await gen(item, run)`` -> one :class:`Response` with the whole trajectory.

    One shared chat client and one interpreter session provider (a fresh session per episode,
    the run's :class:`InterpreterConfig`) for all concurrent episodes, both owned by this
    generator: close them with :meth:`aclose`.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        budgets: Any,
        sampling: dict[str, Any],
        interpreter: InterpreterConfig | None = None,
        files_dir: Path,
        session_factory: Any = None,
        api_key: str | None = None,
        request_timeout_s: float = 600.0,
        max_concurrency: int = 64,
    ) -> None:
        self.base_url = base_url
        self.model = model
        self.budgets = budgets
        self.sampling = dict(sampling)
        self.files_dir = files_dir
        self._sessions = None if session_factory is not None else SessionProvider(interpreter)
        self.session_factory = session_factory or self._sessions
        self.api_key = api_key
        # Episodes in flight are bounded by the runner; the client bounds requests the same way.
        self.client = ChatClient(EndpointConfig(base_url=base_url, model=model, timeout_s=request_timeout_s,
                                                max_concurrency=max_concurrency), api_key=api_key)

    async def __call__(self, item: EvalItem, run: int) -> Response:
        from datamind_ext.agent import run_chat_episode, with_system_prompt

        files = [*item.files, *materialize_inline_files(item, self.files_dir)]
        if item.database:
            files.append(item.database)
        messages = with_system_prompt(
            [{"role": "user", "content": item.question}], files, max_turns=self.budgets.max_turns, system=item.system
        )
        episode = await run_chat_episode(
            self.base_url,
            self.model,
            messages,
            self.session_factory,
            files=files,
            budgets=self.budgets,
            sampling=self.sampling,
            api_key=self.api_key,
            client=self.client,
        )
        last = next((m["content"] for m in reversed(episode.messages) if m["role"] == "assistant"), "")
        return Response(
            item_id=item.item_id,
            run=run,
            text=last,
            trajectory=episode.messages,
            error=episode.error,
            void_reason=episode.void_reason if episode.void and episode.error is None else None,
            meta={
                "turns": episode.metrics.turns,
                "void": episode.void,
                "void_reason": episode.void_reason,
                "generation_s": round(episode.metrics.generation_s, 3),
                "interpreter_s": round(episode.metrics.interpreter_s, 3),
            },
        )

    async def aclose(self) -> None:
        await self.client.aclose()
        if self._sessions is not None:
            await self._sessions.aclose()
