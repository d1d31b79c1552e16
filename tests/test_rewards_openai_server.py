"""The local OpenAI-compatible test server: scripted replies, errors, auth, latency, bounds."""

from __future__ import annotations


import httpx
import pytest

from datamind_ext.testing import OpenAITestServer, Reply


def _chat(base_url: str, text: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{base_url}/chat/completions",
        json={"model": "judge-x", "messages": [{"role": "user", "content": text}]},
        headers=headers,
        timeout=10,
    )


def test_scripted_replies_cycle_and_requests_are_logged() -> None:
    with OpenAITestServer(["one", "two"]) as srv:
        assert srv.base_url.startswith("http://127.0.0.1:")
        got = [_chat(srv.base_url, f"q{i}").json()["choices"][0]["message"]["content"] for i in range(3)]
        assert got == ["one", "two", "one"]
        assert [r.last_user_text for r in srv.requests] == ["q0", "q1", "q2"]
        assert srv.requests[0].body["model"] == "judge-x"
        assert httpx.get(f"{srv.base_url}/models").json()["data"][0]["id"] == "test-model"


def test_callback_errors_and_auth() -> None:
    def respond(req):
        return Reply(status=500) if "boom" in req.last_user_text else req.last_user_text.upper()

    with OpenAITestServer(respond, errors=[429, None, 503], api_key="k") as srv:
        auth = {"Authorization": "Bearer k"}
        assert _chat(srv.base_url, "a", **auth).status_code == 429
        assert _chat(srv.base_url, "b", **auth).json()["choices"][0]["message"]["content"] == "B"
        assert _chat(srv.base_url, "c", **auth).status_code == 503
        assert _chat(srv.base_url, "boom", **auth).status_code == 500
        assert _chat(srv.base_url, "d").status_code == 401
        assert srv.request_count == 5


def test_bounds_and_stop() -> None:
    with OpenAITestServer(["x"], latency_s=0.05, max_requests=1) as srv:
        url = srv.base_url
        assert _chat(url, "a").status_code == 200
        assert _chat(url, "b").status_code == 503  # over max_requests
    with pytest.raises(httpx.HTTPError):
        _chat(url, "after stop")


def test_stops_itself_after_lifetime() -> None:
    srv = OpenAITestServer(["x"], max_lifetime_s=0.2).start()
    url = srv.base_url
    assert srv.stopped.wait(timeout=30), "the server did not stop itself"
    with pytest.raises(httpx.HTTPError):
        _chat(url, "late")
