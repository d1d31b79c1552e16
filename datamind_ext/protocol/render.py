"""The one renderer from messages to token ids + loss mask, used by SFT, RL and replay.

Rendering is incremental over the tokenizer's own chat template: each message contributes the
tokens of the text the template adds for it, tokenized on its own (as LLaMA-Factory and the
rollout do, turn by turn). An assistant message's trained part is everything after its
``<|im_start|>assistant\\n`` header, ``<|im_end|>`` and newline included, which is what
LLaMA-Factory trains with its default flags; system, user and observation turns are masked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from datamind_ext.protocol.trajectory import Message


class ChatTokenizer(Protocol):
    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any: ...
    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...


@dataclass
class Rendered:
    input_ids: list[int]
    loss_mask: list[int]  # 1 = trained (assistant content and its end marker), 0 = context

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def n_trained(self) -> int:
        return sum(self.loss_mask)


def _as_dicts(messages: Sequence[Message | dict[str, Any]]) -> list[dict[str, str]]:
    return [m.model_dump() if isinstance(m, Message) else {"role": m["role"], "content": m["content"]} for m in messages]


def chat_text(tokenizer: ChatTokenizer, messages: Sequence[Message | dict[str, Any]], *, add_generation_prompt: bool = False) -> str:
    """The template's text for ``messages`` (empty for no messages)."""
    if not messages:
        return ""
    return tokenizer.apply_chat_template(_as_dicts(messages), tokenize=False, add_generation_prompt=add_generation_prompt)


def _delta(longer: str, shorter: str) -> str:
    if not longer.startswith(shorter):
        raise ValueError("chat template is not prefix-stable: rendering a message changed earlier text")
    return longer[len(shorter) :]


def encode(tokenizer: ChatTokenizer, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False)) if text else []


def render_messages(
    tokenizer: ChatTokenizer,
    messages: Sequence[Message | dict[str, Any]],
    *,
    add_generation_prompt: bool = False,
) -> Rendered:
    """Token ids and loss mask for a whole conversation."""
    msgs = _as_dicts(messages)
    ids: list[int] = []
    mask: list[int] = []
    prev_text = ""
    for k, m in enumerate(msgs):
        if m["role"] == "assistant":
            header = _delta(chat_text(tokenizer, msgs[:k], add_generation_prompt=True), prev_text)
            full = chat_text(tokenizer, msgs[: k + 1])
            body = _delta(full, prev_text + header)
            h, b = encode(tokenizer, header), encode(tokenizer, body)
            ids += h + b
            mask += [0] * len(h) + [1] * len(b)
        else:
            full = chat_text(tokenizer, msgs[: k + 1])
            t = encode(tokenizer, _delta(full, prev_text))
            ids += t
            mask += [0] * len(t)
        prev_text = full
    if add_generation_prompt:
        t = encode(tokenizer, _delta(chat_text(tokenizer, msgs, add_generation_prompt=True), prev_text))
        ids += t
        mask += [0] * len(t)
    return Rendered(ids, mask)


def render_continuation(
    tokenizer: ChatTokenizer,
    history: Sequence[Message | dict[str, Any]],
    new_messages: Sequence[Message | dict[str, Any]],
    *,
    add_generation_prompt: bool = True,
) -> list[int]:
    """Tokens the template adds after ``history`` for ``new_messages`` (+ the next assistant header).

    This is how the rollout appends an observation: exactly the chat template's tokens for the
    observation turn, with no re-tokenization of what came before.
    """
    hist = _as_dicts(history)
    before = chat_text(tokenizer, hist)
    after = chat_text(tokenizer, hist + _as_dicts(new_messages), add_generation_prompt=add_generation_prompt)
    return encode(tokenizer, _delta(after, before))
