"""HTTP front of :class:`HFGenerationEngine`: the token endpoint and OpenAI ``/v1/chat/completions``.

Evaluation and synthesis talk to "any OpenAI-compatible server"; this one lets them run
against the tiny model on CPU exactly as they run against ``vllm serve`` (same request and
response shapes for the fields they use: ``messages``, ``max_tokens``, ``temperature``,
``top_p``, ``stop``, ``n``, ``usage``, ``finish_reason``). ``POST /generate`` is the
token-in/token-out route (``prompt_ids`` + ``sampling_params`` → ``token_ids``,
``log_probs``, ``finish_reason``).

A client that disconnects stops its generation (the request's decoding ends at the next
step, the batch goes on without it); the first SIGINT/SIGTERM ends every generation in flight
and stops the server, instead of waiting for them to finish. For tests and laptops only; GPU
users run ``vllm serve`` or SGLang.
"""

# No ``from __future__ import annotations``: FastAPI resolves the handlers' annotations, and
# ``Request`` is imported inside build_app (fastapi is not imported at package import).
import asyncio
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Self

from datamind_ext.generation.engine import HFGenerationEngine
from datamind_ext.ports import free_port

#: How often a request in flight checks whether its client is still connected.
DISCONNECT_POLL_S = 0.1
#: HTTP status logged for a request whose client went away (nginx's convention; nobody reads it).
CLIENT_CLOSED = 499


async def unless_disconnected(request: Any, work: Any) -> tuple[bool, Any]:
    """(True, result) of awaiting ``work``, or (False, None) once the client went away, ``work``
    cancelled: a generation nobody will read is not worth the model's time."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
            if done:
                return True, task.result()
            if await request.is_disconnected():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                return False, None
    finally:
        if not task.done():  # the handler itself was cancelled
            task.cancel()


def build_app(engine: HFGenerationEngine, *, model_name: str | None = None) -> Any:
    """The FastAPI app serving ``engine`` (fastapi is imported here, not at package import)."""
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import JSONResponse, Response

    served_name = model_name or Path(engine.model_path).name
    # Listed as vLLM lists an unnamed model (the path it was given), and by its folder name.
    served_ids = [model_name] if model_name else list(dict.fromkeys([engine.model_path, served_name]))
    app = FastAPI(title="datamind-ext generation server")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list",
                "data": [{"id": name, "object": "model", "owned_by": "datamind-ext"} for name in served_ids]}

    @app.post("/generate")
    async def generate(body: dict[str, Any], request: Request) -> Any:
        ids = body.get("prompt_ids")
        if not isinstance(ids, list) or not all(isinstance(t, int) for t in ids):
            raise HTTPException(400, "prompt_ids must be a list of ints")
        connected, g = await unless_disconnected(request, engine.generate(ids, body.get("sampling_params") or {}))
        if not connected:
            return Response(status_code=CLIENT_CLOSED)
        return {"token_ids": g.token_ids, "log_probs": g.log_probs, "finish_reason": g.finish_reason,
                "stop_matched": g.stop_matched}

    @app.post("/v1/chat/completions")
    async def chat(body: dict[str, Any], request: Request) -> Any:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return JSONResponse({"error": {"message": "messages must be a non-empty list", "type": "invalid_request_error"}},
                                status_code=400)
        if body.get("stream"):
            return JSONResponse({"error": {"message": "stream is not supported", "type": "invalid_request_error"}},
                                status_code=400)
        try:
            prompt_ids = engine.tokenizer.apply_chat_template(
                [{"role": m["role"], "content": m.get("content") or ""} for m in messages],
                tokenize=True, add_generation_prompt=True, return_dict=False,
            )
        except Exception as err:  # noqa: BLE001 - a bad request is the client's error, not a crash
            return JSONResponse({"error": {"message": f"cannot render messages: {err}", "type": "invalid_request_error"}},
                                status_code=400)
        if isinstance(prompt_ids, dict):
            prompt_ids = prompt_ids["input_ids"]
        params: dict[str, Any] = {
            "max_tokens": body.get("max_tokens") or body.get("max_completion_tokens") or 256,
            "temperature": body.get("temperature", 1.0),
            "top_p": body.get("top_p", 1.0),
            "stop": body.get("stop"),
            "logprobs": False,
        }
        for key in ("top_k", "seed"):
            if body.get(key) is not None:
                params[key] = body[key]
        n = max(1, int(body.get("n") or 1))
        connected, gens = await unless_disconnected(
            request, asyncio.gather(*[engine.generate(list(prompt_ids), params) for _ in range(n)]))
        if not connected:
            return Response(status_code=CLIENT_CLOSED)
        choices = []
        for i, g in enumerate(gens):
            text = engine.tokenizer.decode(g.token_ids, skip_special_tokens=True)
            if isinstance(g.stop_matched, str) and g.stop_matched in text:
                # OpenAI/vLLM convention: the content ends before the stop string (which may end
                # inside the last token; the tokens themselves were not cut).
                text = text[: text.find(g.stop_matched)]
            choices.append({"index": i, "message": {"role": "assistant", "content": text},
                            "finish_reason": "length" if g.finish_reason == "length" else "stop",
                            "stop_reason": g.stop_matched if isinstance(g.stop_matched, str) else None})
        completion = sum(len(g.token_ids) for g in gens)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model") or served_name, "choices": choices,
            "usage": {"prompt_tokens": len(prompt_ids), "completion_tokens": completion,
                      "total_tokens": len(prompt_ids) + completion},
        }

    return app


class BackgroundServer:
    """Serve an engine from a thread of this process (tests, notebooks); ``with`` stops it."""

    def __init__(self, engine: HFGenerationEngine, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        import uvicorn

        self.engine = engine
        self.host, self.port = host, port or free_port(host)
        config = uvicorn.Config(build_app(engine), host=self.host, port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="datamind-gen-http", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self, timeout_s: float = 30.0) -> Self:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("generation server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def make_server(engine: HFGenerationEngine, *, host: str, port: int, log_level: str = "info") -> Any:
    """A uvicorn server for ``engine`` whose first SIGINT/SIGTERM also ends the generations in
    flight (uvicorn alone waits for them to finish, which for long generations looks like a
    server that ignores Ctrl-C)."""
    import uvicorn

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            engine.abort_all()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(build_app(engine), host=host, port=port, log_level=log_level, lifespan="off",
                            timeout_graceful_shutdown=5)
    return _Server(config)


def serve(model_path: str | Path, *, host: str = "127.0.0.1", port: int = 8000, max_batch_size: int = 64) -> None:
    """Run the server in the foreground (``datamind-ext serve``-style use) until SIGINT/SIGTERM."""
    engine = HFGenerationEngine(model_path, max_batch_size=max_batch_size)
    try:
        make_server(engine, host=host, port=port).run()
    finally:
        engine.close()


def main(argv: list[str] | None = None) -> None:
    """``python -m datamind_ext.generation.server --model PATH [--port 8000]``."""
    import argparse

    p = argparse.ArgumentParser(description="OpenAI-compatible CPU generation server (tests, laptops)")
    p.add_argument("--model", required=True, help="Hugging Face model folder")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-batch-size", type=int, default=64)
    a = p.parse_args(argv)
    try:
        serve(a.model, host=a.host, port=a.port, max_batch_size=a.max_batch_size)
    except KeyboardInterrupt:  # uvicorn re-raises the SIGINT it handled, once it has shut down
        pass


if __name__ == "__main__":
    main()
