"""The tag protocol, its one parser, the trajectory format and the one renderer to tokens."""

from datamind_ext.atomic_files import read_jsonl, write_jsonl
from datamind_ext.protocol.observation import observation_text, truncate_middle
from datamind_ext.protocol.render import Rendered, chat_text, render_continuation, render_messages
from datamind_ext.protocol.tags import TURN_STOPS, ParsedResponse, Segment, extract_code, parse_response
from datamind_ext.protocol.trajectory import (
    Message,
    Trajectory,
    is_observation,
    observation_message,
    validate_structure,
)

__all__ = [
    "TURN_STOPS",
    "Message",
    "ParsedResponse",
    "Rendered",
    "Segment",
    "Trajectory",
    "chat_text",
    "extract_code",
    "is_observation",
    "observation_message",
    "observation_text",
    "parse_response",
    "read_jsonl",
    "render_continuation",
    "render_messages",
    "truncate_middle",
    "validate_structure",
    "write_jsonl",
]
