"""The format check of a whole response, on top of the one protocol parser.

Valid means: tags balanced and not nested, in protocol order, exactly one non-empty final
``<answer>`` with nothing tagged after it, no ``<interpreter>`` text the model wrote itself
(an interpreter block must follow a code block), and, for file tasks, at least one code block.
The violations are the parser's names, so a reward log says exactly what was wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

from datamind_ext.protocol import parse_response


@dataclass(frozen=True)
class FormatResult:
    """Whether a response is well-formed, why not, and the parts the reward needs."""

    ok: bool
    violations: tuple[str, ...]
    answer: str | None
    n_code: int

    @property
    def reason(self) -> str:
        return "format_ok" if self.ok else "format:" + ",".join(self.violations)


def score_format(response: object, *, require_code: bool = True) -> FormatResult:
    """Check a response's tag structure (never raises); ``require_code`` for file tasks."""
    parsed = parse_response(response)
    violations = tuple(parsed.format_violations(require_code=require_code))
    return FormatResult(
        ok=not violations,
        violations=violations,
        answer=parsed.answer,
        n_code=len(parsed.blocks("code")),
    )
