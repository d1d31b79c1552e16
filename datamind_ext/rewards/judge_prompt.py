"""The LLM-judge prompt, written for this project, and its version.

The version is part of the judge cache key: change it whenever the wording changes, so a cached
verdict is never reused for a different prompt. The judge must end with ``<verdict>correct</verdict>``
or ``<verdict>incorrect</verdict>``; :func:`parse_verdict` reads only that (the last one), so a
reply without it is "unparsed", never a silent 0.
"""

from __future__ import annotations

import re

PROMPT_VERSION = "datamind-judge-v1"

SYSTEM_PROMPT = """\
You grade answers to data-analysis questions. You compare a candidate answer with a reference \
answer and decide whether the candidate is correct. You do not solve the question yourself and \
you do not reward effort: only the final answer counts."""

USER_TEMPLATE = """\
Decide whether the candidate answer to the question below is correct, using the reference \
answer as the truth.

Rules:
1. Numbers: the candidate is correct if every number the question asks for is within 3% \
(relative) of the reference value. Differences in rounding, units written or omitted, \
thousands separators, and a percentage written as a fraction (45% vs 0.45) do not matter.
2. Categories, names, labels and yes/no: the meaning must be the same; wording, case and \
order of a list do not matter unless the question asks for an order.
3. Multiple choice: the chosen option must be the reference option (letter or option text).
4. The candidate must answer everything the reference answers. Missing parts, or several \
conflicting answers, make it incorrect. Extra explanation is fine if it does not contradict \
the reference.
5. A description of a method or a calculation without its final result is incorrect.

Question:
<question>
{question}
</question>

Reference answer:
<reference>
{reference}
</reference>

Candidate answer:
<candidate>
{answer}
</candidate>

Think briefly about the rules that apply, then end with exactly one line:
<verdict>correct</verdict> or <verdict>incorrect</verdict>"""

_VERDICT_RE = re.compile(r"<verdict>\s*(correct|incorrect)\s*</verdict>", re.IGNORECASE)


def build_messages(question: str, reference: str, answer: str) -> list[dict[str, str]]:
    """The chat messages sent to the judge for one (question, reference, answer)."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": USER_TEMPLATE.format(question=question, reference=reference, answer=answer)},
    ]


def parse_verdict(text: str) -> float | None:
    """1.0 for correct, 0.0 for incorrect (the last verdict tag), ``None`` if there is none."""
    found = _VERDICT_RE.findall(text or "")
    if not found:
        return None
    return 1.0 if found[-1].lower() == "correct" else 0.0
