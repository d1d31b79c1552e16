"""Checking an OpenAI-compatible endpoint before a run starts.

Without it a wrong ``--base-url`` (a typo, a server not up, the ``/v1`` left off) or a
``--model`` the server does not serve makes every unit fail one by one. Here one listing of
``/models`` and one one-token chat request turn each of those into a single clear error.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from datamind_ext.errors import UserError


def _v1_hint(base_url: str) -> str:
    path = urlsplit(base_url).path.rstrip("/")
    return "" if path.endswith("/v1") else f" (OpenAI-compatible servers serve under /v1: try {base_url.rstrip('/')}/v1)"


def _http(url: str, *, headers: dict[str, str], timeout_s: float, body: dict[str, Any] | None = None
          ) -> tuple[int, str]:
    """(status, body text) of one GET (or POST of ``body`` as JSON); network errors raise OSError."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={**headers, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")


def check_endpoint(base_url: str, model: str, *, api_key: str | None = None, timeout_s: float = 30.0,
                   what: str = "--base-url") -> None:
    """Raise :class:`UserError` unless ``base_url`` lists ``model`` and answers a one-token request."""
    base = base_url.rstrip("/")
    if not urlsplit(base).scheme.startswith("http"):
        raise UserError(f"{what} {base_url!r}: expected an http(s) URL such as http://localhost:8000/v1")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        status, text = _http(f"{base}/models", headers=headers, timeout_s=timeout_s)
    except (OSError, ValueError) as err:
        raise UserError(f"{what} {base_url}: cannot reach the server ({type(err).__name__}: {err})") from None
    if status in (401, 403):
        raise UserError(f"{what} {base_url}: the server refused the API key (HTTP {status})")
    served = _model_ids(status, text)
    if served is None:
        raise UserError(f"{what} {base_url}: GET {base}/models gave HTTP {status}, not a model list{_v1_hint(base)}")
    if model not in served:
        raise UserError(f"{what} {base_url} does not serve model {model!r} (it serves: {', '.join(served) or 'nothing'})")
    body = {"model": model, "messages": [{"role": "user", "content": "Reply with OK."}], "max_tokens": 1,
            "temperature": 0}
    try:
        status, text = _http(f"{base}/chat/completions", headers=headers, timeout_s=timeout_s, body=body)
    except (OSError, ValueError) as err:
        raise UserError(f"{what} {base_url}: a one-token test request failed ({type(err).__name__}: {err})") from None
    if status != 200 or not _is_completion(text):
        raise UserError(f"{what} {base_url}: a one-token test request to {base}/chat/completions gave HTTP "
                        f"{status}: {text[:200]}{_v1_hint(base)}")


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _model_ids(status: int, text: str) -> list[str] | None:
    """The model ids of a ``/models`` reply; None if it is not one."""
    data = _json(text) if status == 200 else None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        return None
    return [str(m.get("id")) for m in data["data"] if isinstance(m, dict)]


def _is_completion(text: str) -> bool:
    data = _json(text)
    return isinstance(data, dict) and isinstance(data.get("choices"), list) and bool(data["choices"])
