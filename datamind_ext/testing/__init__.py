"""Test utilities shipped with the project (used by its tests, benchmarks and by users' own tests)."""

from datamind_ext.testing.openai_server import OpenAITestServer, RecordedRequest, Reply

__all__ = ["OpenAITestServer", "RecordedRequest", "Reply"]
