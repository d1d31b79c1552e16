"""The scripted teacher of the LLM-synthesis tests: generator, judge and expert replies decided
from each request (served by :class:`datamind_ext.testing.OpenAITestServer`)."""

from __future__ import annotations


def expert_reply(req, wrong_every: int | None = None) -> str:
    """Generator, judge and expert behaviour, decided from the request."""
    msgs = req.messages
    first = msgs[0]["content"] if msgs else ""
    if first.startswith("You write data-analysis questions"):
        return ("<question>What is the average units per order?</question>\n"
                "<description>mean of units</description>\n<type>aggregation</type>")
    if first.startswith("You check whether several answers"):
        return "<reasoning>They agree.</reasoning><correct>yes</correct><number>2</number>"
    last = msgs[-1]["content"]
    if last.startswith("<interpreter>"):
        value = [ln for ln in last.splitlines() if ln.strip() and not ln.startswith("<")][-1].strip()
        return f"<think>The output shows it.</think>\n<answer>{value}</answer>"
    # first turn: the server strips the stop string, as OpenAI servers do
    col = "units"
    if wrong_every and len(req_log) % wrong_every == 0:
        col = "unit_price"  # a disagreeing sample
    req_log.append(1)
    return ("<think>I load the file and average the column.</think>\n<code>\n```python\nimport pandas as pd\n"
            f"df = pd.read_csv('retail_sales.csv')\nprint(round(df['{col}'].mean(), 2))\n```\n")


req_log: list[int] = []
