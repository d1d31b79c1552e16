"""The CPU generation server stops work nobody will read: a client that disconnects ends its
generation, and the first SIGINT ends every generation in flight and the server."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

from datamind_ext.generation import HFGenerationEngine
from datamind_ext.generation.server import BackgroundServer
from datamind_ext.ports import free_port

LONG = {"messages": [{"role": "user", "content": "Describe the table."}], "max_tokens": 4000, "temperature": 0}


def _wait_for(condition, what: str, limit_s: float = 120.0) -> None:
    """Poll until ``condition()`` (a generous safety limit, not a timing assertion)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def test_a_disconnected_client_stops_its_generation(tiny_model_path):
    engine = HFGenerationEngine(tiny_model_path, max_batch_size=4)
    try:
        # greedy decoding is deterministic: this prompt runs the full 4000 tokens when nobody stops it
        assert engine.generate_blocking(engine.tokenizer.apply_chat_template(
            LONG["messages"], tokenize=True, add_generation_prompt=True, return_dict=False),
            {"max_tokens": 200, "temperature": 0}).finish_reason == "length"
        with BackgroundServer(engine) as srv:
            body = json.dumps(LONG).encode()
            sock = socket.create_connection((srv.host, srv.port))
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            before = engine.batches_run
            _wait_for(lambda: engine.batches_run > before, "the generation to start")
            sock.close()  # the client goes away mid-generation
            _wait_for(lambda: engine.requests_cancelled == 1, "the engine to drop the request")
    finally:
        engine.close()


def test_first_sigint_stops_the_server_and_its_generations(tiny_model_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "datamind_ext.generation.server", "--model", str(tiny_model_path),
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        def up() -> bool:
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=5):
                    return True
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                return False

        _wait_for(up, "the server to start")
        reply: dict = {}

        def ask() -> None:
            req = urllib.request.Request(f"{url}/chat/completions", data=json.dumps(LONG).encode(),
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=600) as resp:
                    reply["body"] = json.loads(resp.read())
            except OSError as err:
                reply["error"] = err

        client = threading.Thread(target=ask, daemon=True)
        client.start()
        time.sleep(1.0)  # let the request reach the engine (ordering only; nothing is asserted on time)
        proc.send_signal(signal.SIGINT)  # once
        assert proc.wait(timeout=300) == 0, proc.stdout.read().decode() if proc.stdout else ""
        client.join(timeout=60)
        # the generation in flight was ended, not run to its 4000 tokens
        assert "error" in reply or reply["body"]["usage"]["completion_tokens"] < LONG["max_tokens"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
