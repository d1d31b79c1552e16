"""The tag protocol and its one parser.

A trajectory's text uses four tags: ``<think>`` (reasoning), ``<code>`` (a fenced python block,
or SQL tool calls), ``<interpreter>`` (execution output, written by the environment only) and
one final ``<answer>``. Every stage (rewards, rollout, synthesis filters, evaluation) parses
through :func:`parse_response`; nothing else may re-implement it.

The parser never raises: any string (empty, binary garbage, megabytes long, unbalanced or
nested tags) gives a :class:`ParsedResponse` whose ``violations`` name what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

TagName = Literal["think", "code", "interpreter", "answer"]
TAG_NAMES: tuple[TagName, ...] = ("think", "code", "interpreter", "answer")

OPEN = {t: f"<{t}>" for t in TAG_NAMES}
CLOSE = {t: f"</{t}>" for t in TAG_NAMES}
#: Strings on which generation of one assistant turn stops.
TURN_STOPS: tuple[str, ...] = (CLOSE["code"], CLOSE["answer"])

_TAG_RE = re.compile(r"<(/?)(think|code|interpreter|answer)>")
_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
# Role words that survive when chat markers are decoded with skip_special_tokens=True.
_ROLE_WORDS = {"user", "assistant", "system"}

# Violation names (stable: rewards and filters report them, tests assert on them).
UNCLOSED = "unclosed_tag"  # an opening tag with no closing tag
UNOPENED = "unopened_tag"  # a closing tag with no opening tag
NESTED = "nested_tag"  # a tag opened inside another
NO_ANSWER = "no_answer"
MULTIPLE_ANSWERS = "multiple_answers"
AFTER_ANSWER = "content_after_answer"
NO_CODE = "no_code"
EMPTY_CODE = "empty_code"
EMPTY_ANSWER = "empty_answer"
MODEL_INTERPRETER = "model_wrote_interpreter"  # an <interpreter> not right after a <code> block
TEXT_OUTSIDE_TAGS = "text_outside_tags"  # soft: reported, not a format failure by default


@dataclass(frozen=True)
class Segment:
    """One tagged block, or free text between blocks (``tag=None``)."""

    tag: TagName | None
    content: str
    start: int  # character offset of the opening tag (or of the text) in the parsed string


@dataclass
class ParsedResponse:
    """The structure of one response, as the one parser sees it."""

    segments: list[Segment] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def blocks(self, tag: TagName) -> list[str]:
        return [s.content for s in self.segments if s.tag == tag]

    @property
    def answer(self) -> str | None:
        """The content of the first ``<answer>`` block, stripped; ``None`` if there is none."""
        answers = self.blocks("answer")
        return answers[0].strip() if answers else None

    @property
    def code_cells(self) -> list[str]:
        """The executable source of every ``<code>`` block, fences removed."""
        return [extract_code(c) for c in self.blocks("code")]

    def format_ok(self, *, require_code: bool = False, soft: tuple[str, ...] = (TEXT_OUTSIDE_TAGS,)) -> bool:
        """Whether the response is well-formed; ``soft`` violations do not count."""
        bad = [v for v in self.violations if v not in soft]
        if require_code and not self.blocks("code"):
            bad.append(NO_CODE)
        return not bad

    def format_violations(self, *, require_code: bool = False) -> list[str]:
        out = [v for v in self.violations if v != TEXT_OUTSIDE_TAGS]
        if require_code and not self.blocks("code"):
            out.append(NO_CODE)
        return out


def extract_code(block: str) -> str:
    """The code inside a ``<code>`` block: the fenced block(s) if any, else the raw text."""
    fences = _FENCE_RE.findall(block)
    if fences:
        return "\n".join(body.rstrip() for _lang, body in fences).strip("\n")
    return block.strip("\n").strip()


def _is_ignorable(text: str) -> bool:
    """Whitespace and bare role words (left by decoding chat markers) carry no content."""
    return all(line.strip() in _ROLE_WORDS or not line.strip() for line in text.splitlines())


def parse_response(text: object, *, model_turn: bool = False) -> ParsedResponse:
    """Parse a response (or a whole trajectory's decoded text) into tagged segments.

    Args:
        text: anything; non-strings are parsed as their ``str`` (never raises).
        model_turn: the text is one assistant turn only, so any ``<interpreter>`` in it was
            written by the model (a violation). Otherwise an ``<interpreter>`` block is legal
            right after a ``<code>`` block (the environment put it there).
    """
    if not isinstance(text, str):
        try:
            text = text.decode("utf-8", "replace") if isinstance(text, (bytes, bytearray)) else str(text)
        except Exception:  # noqa: BLE001 - a scorer input must never raise
            text = ""
    res = ParsedResponse()
    violations: list[str] = []
    pos = 0
    open_tag: TagName | None = None
    open_at = 0
    content_start = 0
    for m in _TAG_RE.finditer(text):
        closing, name = m.group(1) == "/", m.group(2)
        if open_tag is None:
            if closing:
                violations.append(f"{UNOPENED}:{name}")
                continue
            between = text[pos : m.start()]
            if between and not _is_ignorable(between):
                res.segments.append(Segment(None, between, pos))
            open_tag, open_at, content_start = name, m.start(), m.end()  # type: ignore[assignment]
        elif closing and name == open_tag:
            res.segments.append(Segment(open_tag, text[content_start : m.start()], open_at))
            open_tag = None
            pos = m.end()
        elif not closing and name == open_tag == "code":
            # "<code>" can legitimately appear inside python source (a string); keep scanning.
            continue
        elif open_tag == "interpreter" or open_tag == "code":
            # Tool output and source code may quote tags; only the matching close ends them.
            continue
        else:
            violations.append(f"{NESTED}:{name}")
    if open_tag is not None:
        violations.append(f"{UNCLOSED}:{open_tag}")
        res.segments.append(Segment(open_tag, text[content_start:], open_at))
    else:
        tail = text[pos:]
        if tail and not _is_ignorable(tail):
            res.segments.append(Segment(None, tail, pos))

    _check_order(res, violations, model_turn=model_turn)
    res.violations = list(dict.fromkeys(violations))  # de-duplicate, keep order
    return res


def _check_order(res: ParsedResponse, violations: list[str], *, model_turn: bool) -> None:
    tags = [s.tag for s in res.segments]
    n_answers = tags.count("answer")
    if n_answers == 0:
        violations.append(NO_ANSWER)
    elif n_answers > 1:
        violations.append(MULTIPLE_ANSWERS)
    else:
        if not res.answer:
            violations.append(EMPTY_ANSWER)
        last = tags.index("answer")
        if any(t is not None for t in tags[last + 1 :]):
            violations.append(AFTER_ANSWER)
    if any(not extract_code(c).strip() for c in res.blocks("code")):
        violations.append(EMPTY_CODE)
    if any(t is None for t in tags):
        violations.append(TEXT_OUTSIDE_TAGS)
    prev: TagName | None = None
    for t in tags:
        if t == "interpreter" and (model_turn or prev != "code"):
            violations.append(MODEL_INTERPRETER)
        if t is not None:
            prev = t
