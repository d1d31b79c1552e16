"""The one OpenAI-compatible endpoint config and chat client, used by synthesis, rewards and evaluation.

A core part like ``protocol``: it imports only pydantic, aiohttp and :mod:`datamind_ext.config`,
and every other core part may import it.
"""

from datamind_ext.llm.client import ChatClient, ChatResult, LLMError, RateLimiter, ReplyCache, UsageLedger
from datamind_ext.llm.config import EndpointConfig

__all__ = ["ChatClient", "ChatResult", "EndpointConfig", "LLMError", "RateLimiter", "ReplyCache", "UsageLedger"]
