"""A local OpenAI-compatible chat server for tests and benchmarks (no network, no model).

It serves ``POST /v1/chat/completions`` and ``GET /v1/models`` on 127.0.0.1 at a free port,
answering from a script (a list, cycled) or a callback, after a fixed latency, and can inject
429/5xx errors or hang past a client's timeout. Every request is logged. It is bounded: it
refuses requests past ``max_requests`` and stops itself after ``max_lifetime_s``, so a test
that forgets to stop it cannot leave a server behind.

    with OpenAITestServer(respond=["<score>1</score>"], latency_s=0.2) as srv:
        client = SomeClient(base_url=srv.base_url, api_key="test")
        ...
        assert srv.request_count == 3
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    """One scripted reply: a chat message, or an HTTP error, optionally after an extra delay."""

    content: str = ""
    status: int = 200
    delay_s: float = 0.0
    #: A raw JSON body to send instead of a chat completion (malformed-response tests).
    raw_body: str | None = None


@dataclass
class RecordedRequest:
    """What the server received: path, parsed JSON body, headers and arrival time."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    received_at: float = field(default_factory=time.monotonic)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or [])

    @property
    def last_user_text(self) -> str:
        users = [m.get("content", "") for m in self.messages if m.get("role") == "user"]
        return str(users[-1]) if users else ""


Responder = Callable[[RecordedRequest], "str | Reply"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # many concurrent clients connect at once (benchmarks use 64)
    allow_reuse_address = True


class OpenAITestServer:
    """A scripted OpenAI-compatible server on 127.0.0.1; use it as a context manager."""

    def __init__(
        self,
        respond: Sequence[str | Reply] | Responder | None = None,
        *,
        latency_s: float = 0.0,
        errors: Iterable[int | None] = (),
        api_key: str | None = None,
        model: str = "test-model",
        max_requests: int = 1_000_000,
        max_lifetime_s: float = 900.0,
    ) -> None:
        """
        Args:
            respond: replies in order (cycled), or a callback from the request to a reply;
                default replies ``"ok"``.
            latency_s: fixed delay before every reply (the upstream model's latency).
            errors: HTTP statuses injected for the first requests, in order (``None`` = serve
                normally), e.g. ``[429, 503]`` makes the first two requests fail.
            api_key: if set, requests without ``Authorization: Bearer <api_key>`` get 401.
            model: the model id listed by ``/v1/models``.
            max_requests: requests past this many get 503 (a runaway client cannot spin forever).
            max_lifetime_s: the server stops itself after this long.
        """
        if respond is None:
            respond = ["ok"]
        if callable(respond):
            self._respond: Responder = respond
        else:
            replies = list(respond)
            if not replies:
                raise ValueError("respond: give at least one reply")
            cycle = itertools.cycle(replies)
            self._respond = lambda _req: next(cycle)
        self.latency_s = float(latency_s)
        self._errors = list(errors)
        self.api_key = api_key
        self.model = model
        self.max_requests = int(max_requests)
        self.max_lifetime_s = float(max_lifetime_s)
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None
        self._in_flight = 0
        self.max_in_flight = 0
        #: Set once the server has stopped (by ``stop``, ``with`` or its lifetime): wait on it, don't poll.
        self.stopped = threading.Event()

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (ends in ``/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def start(self) -> OpenAITestServer:
        handler = _make_handler(self)
        self.stopped.clear()
        self._httpd = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="openai-test-server", daemon=True
        )
        self._thread.start()
        self._timer = threading.Timer(self.max_lifetime_s, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if self._timer is not None and self._timer is not threading.current_thread():
            self._timer.cancel()
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.stopped.set()

    def __enter__(self) -> OpenAITestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request handling (called from handler threads) ---------------------------------------
    def _next_reply(self, req: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(req)
            n = len(self.requests)
            injected = self._errors.pop(0) if self._errors else None
        if n > self.max_requests:
            return Reply(status=503, content="request budget of the test server exhausted")
        if self.api_key is not None and req.headers.get("authorization") != f"Bearer {self.api_key}":
            return Reply(status=401, content="invalid api key")
        if injected is not None:
            return Reply(status=int(injected), content=f"injected error {injected}")
        out = self._respond(req)
        return out if isinstance(out, Reply) else Reply(content=str(out))

    def _completion(self, req: RecordedRequest, content: str) -> dict[str, Any]:
        with self._lock:
            n = len(self.requests)
        return {
            "id": f"chatcmpl-test-{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.body.get("model", self.model),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 0, "completion_tokens": len(content.split()), "total_tokens": 0},
        }


def _make_handler(server: OpenAITestServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real OpenAI clients expect
        disable_nagle_algorithm = True  # headers and body go out at once (no 40 ms delayed-ACK stall)

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, body: dict[str, Any] | str) -> None:
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (its timeout); nothing to do

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
            else:
                self._send(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, {"error": {"message": f"unknown path {self.path}"}})
                return
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                self._send(400, {"error": {"message": "body is not JSON"}})
                return
            req = RecordedRequest(self.path, body, {k.lower(): v for k, v in self.headers.items()})
            with server._lock:
                server._in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server._in_flight)
            try:
                reply = server._next_reply(req)
                delay = server.latency_s + reply.delay_s
                if delay > 0:
                    time.sleep(delay)
                if reply.raw_body is not None:
                    self._send(reply.status, reply.raw_body)
                elif reply.status != 200:
                    self._send(reply.status, {"error": {"message": reply.content, "code": reply.status}})
                else:
                    self._send(200, server._completion(req, reply.content))
            finally:
                with server._lock:
                    server._in_flight -= 1

    return Handler
