"""Checking an OpenAI-compatible endpoint before a run starts.

Without it a wrong ``--base-url`` (a typo, a server not up, the ``/v1`` left off) or a
``--model`` the server does not serve makes every unit fail one by one. Here one listing of
``/models`` and one one-token chat request turn each of those into a single clear error.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from datamind_ext.errors import UserError


def _v1_hint(base_url: str) -> str:
    path = urlsplit(base_url).path.rstrip("/")
    return "" if path.endswith("/v1") else f" (OpenAI-compatible servers serve under /v1: try {base_url.rstrip('/')}/v1)"


def check_endpoint(base_url: str, model: str, *, api_key: str | None = None, timeout_s: float = 30.0,
                   what: str = "--base-url") -> None:
    """Raise :class:`UserError` unless ``base_url`` lists ``model`` and answers a one-token request."""
    import httpx

    base = base_url.rstrip("/")
    if not urlsplit(base).scheme.startswith("http"):
        raise UserError(f"{what} {base_url!r}: expected an http(s) URL such as http://localhost:8000/v1")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(timeout=timeout_s, headers=headers) as client:
        try:
            listing = client.get(f"{base}/models")
        except httpx.HTTPError as err:
            raise UserError(f"{what} {base_url}: cannot reach the server ({type(err).__name__}: {err})") from None
        if listing.status_code in (401, 403):
            raise UserError(f"{what} {base_url}: the server refused the API key (HTTP {listing.status_code})")
        served = _model_ids(listing)
        if served is None:
            raise UserError(f"{what} {base_url}: GET {base}/models gave HTTP {listing.status_code}, not a model "
                            f"list{_v1_hint(base)}")
        if model not in served:
            raise UserError(f"{what} {base_url} does not serve model {model!r} (it serves: "
                            f"{', '.join(served) or 'nothing'})")
        body = {"model": model, "messages": [{"role": "user", "content": "Reply with OK."}], "max_tokens": 1,
                "temperature": 0}
        try:
            reply = client.post(f"{base}/chat/completions", json=body)
        except httpx.HTTPError as err:
            raise UserError(f"{what} {base_url}: a one-token test request failed ({type(err).__name__}: {err})") from None
        if reply.status_code != 200 or not _is_completion(reply):
            raise UserError(f"{what} {base_url}: a one-token test request to {base}/chat/completions gave HTTP "
                            f"{reply.status_code}: {reply.text[:200]}{_v1_hint(base)}")


def _model_ids(resp: Any) -> list[str] | None:
    """The model ids of a ``/models`` reply; None if it is not one."""
    if resp.status_code != 200:
        return None
    try:
        data = resp.json().get("data")
    except (ValueError, AttributeError):
        return None
    if not isinstance(data, list):
        return None
    return [str(m.get("id")) for m in data if isinstance(m, dict)]


def _is_completion(resp: Any) -> bool:
    try:
        choices = resp.json().get("choices")
    except (ValueError, AttributeError):
        return False
    return isinstance(choices, list) and bool(choices)
