"""Getting the final answer out of a response, through the one protocol parser.

Responses from this project's agent carry an ``<answer>`` block; responses from other
harnesses are often the bare final answer. Both must score the same way, so a text with no
protocol tags at all is taken as the answer itself.
"""

from __future__ import annotations

import re

from datamind_ext.evaluation.items import Response
from datamind_ext.protocol import parse_response

_ANY_TAG = re.compile(r"</?(think|code|interpreter|answer)>")


def has_protocol_tags(response: Response) -> bool:
    """Whether the response speaks this project's tag protocol (else it is another harness's raw text)."""
    return response.trajectory is not None or bool(_ANY_TAG.search(response.text or ""))


def final_answer(response: Response) -> str | None:
    """The final answer of ``response``; None if the agent produced none."""
    if response.trajectory:
        for msg in reversed(response.trajectory):
            if msg.get("role") == "assistant":
                return parse_response(msg.get("content", ""), model_turn=True).answer
        return None
    text = response.text or ""
    if _ANY_TAG.search(text):
        answers = parse_response(text).blocks("answer")
        return answers[-1].strip() if answers else None
    return text.strip() or None


def strip_final_answer_prefix(answer: str) -> str:
    """Drop a leading 'Final Answer:' (TableBench's and many harnesses' answer line)."""
    lines = [ln for ln in answer.strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        m = re.match(r"\s*\**final answer\**\s*[:：]\s*(.*)$", ln, flags=re.IGNORECASE)
        if m:
            return m.group(1).strip()
    return answer.strip()
