"""A small Hugging Face transformers generation engine: token ids in, token ids + log-probs out.

It exists so the rollout, evaluation and synthesis run on CPU (tests, laptops, CI) with the
tiny model, through the same token-in/token-out contract as vLLM/SGLang. It is not a serving
engine: GPU users keep vLLM or SGLang.

Requests that arrive while a batch is running wait for the next one; every request pending at
the start of a batch is decoded together (left-padded, one KV cache, per-row sampling
parameters and stops), so N concurrent trajectories cost about one forward pass per token
instead of N. Generation stops *on the server* at EOS, ``stop_token_ids`` or a ``stop``
string (the token completing it is kept, nothing after it is generated), so the tokens
returned are exactly the tokens the model produced and its KV state saw.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datamind_ext.generation.sampling import SamplingSpec

log = logging.getLogger(__name__)


@dataclass
class Generation:
    """One request's result. ``finish_reason`` is ``stop`` (EOS, stop token or stop string),
    ``length`` (``max_tokens`` or the model's context) or ``abort``."""

    token_ids: list[int]
    log_probs: list[float] | None
    finish_reason: str
    stop_matched: str | int | None = None
    prompt_tokens: int = 0


@dataclass
class _Request:
    prompt_ids: list[int]
    spec: SamplingSpec
    future: asyncio.Future[Generation]
    loop: asyncio.AbstractEventLoop
    out_ids: list[int] = field(default_factory=list)
    out_logprobs: list[float] = field(default_factory=list)
    done: Generation | None = None
    generator: Any = None
    #: The caller stopped waiting (its task was cancelled: a client went away); decoding it stops.
    cancelled: bool = False


class HFGenerationEngine:
    """Batched autoregressive decoding over a ``transformers`` causal LM.

    Args:
        model_path: a Hugging Face model folder (config, weights, tokenizer).
        max_batch_size: most sequences decoded together; later requests wait for the next batch.
        max_model_len: prompt + generated tokens never exceed this (default: the model's
            ``max_position_embeddings``).
        seed: seed of the sampling generator (sampling is reproducible for a fixed arrival order).
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        max_batch_size: int = 64,
        max_model_len: int | None = None,
        seed: int = 0,
        torch_threads: int | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if torch_threads:
            torch.set_num_threads(torch_threads)
        self.model_path = str(model_path)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=torch.float32)
        self.model.eval()
        self.max_batch_size = max_batch_size
        cfg_len = int(getattr(self.model.config, "max_position_embeddings", 4096) or 4096)
        self.max_model_len = min(max_model_len or cfg_len, cfg_len)
        eos = self.model.generation_config.eos_token_id if self.model.generation_config else None
        eos_ids = {eos} if isinstance(eos, int) else set(eos or [])
        if self.tokenizer.eos_token_id is not None:
            eos_ids.add(self.tokenizer.eos_token_id)
        self.eos_token_ids = frozenset(eos_ids)
        self.pad_token_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self._generator = torch.Generator().manual_seed(seed)
        # One thread owns the model: batches never run concurrently, the event loop never blocks.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="datamind-gen")
        self._pending: list[_Request] = []
        self._lock = threading.Lock()
        self._running = False
        self._abort = threading.Event()
        self.batches_run = 0
        self.max_batch_seen = 0
        #: Requests whose decoding was stopped because their caller went away.
        self.requests_cancelled = 0

    # ---- public API -------------------------------------------------------------------------
    async def generate(self, prompt_ids: list[int], sampling_params: dict[str, Any] | SamplingSpec | None = None) -> Generation:
        """Generate a continuation of ``prompt_ids``; batched with every other pending request."""
        spec = sampling_params if isinstance(sampling_params, SamplingSpec) else SamplingSpec.from_params(sampling_params)
        loop = asyncio.get_running_loop()
        req = _Request(list(map(int, prompt_ids)), spec, loop.create_future(), loop)
        with self._lock:
            self._pending.append(req)
            start = not self._running
            if start:
                self._running = True
        if start:
            self._executor.submit(self._drain)
        try:
            return await req.future
        except asyncio.CancelledError:
            req.cancelled = True  # read by the model thread at its next step
            with self._lock:
                if req in self._pending:
                    self._pending.remove(req)
            raise

    def generate_blocking(self, prompt_ids: list[int], sampling_params: dict[str, Any] | None = None) -> Generation:
        """Synchronous, unbatched helper (scripts and tests without an event loop)."""
        spec = SamplingSpec.from_params(sampling_params)
        req = _Request(list(map(int, prompt_ids)), spec, None, None)  # type: ignore[arg-type]
        self._executor.submit(self._run_batch, [req]).result()
        assert req.done is not None
        return req.done

    def abort_all(self) -> None:
        """Finish every running request now with ``finish_reason='abort'`` (tokens so far kept)."""
        self._abort.set()

    def resume(self) -> None:
        self._abort.clear()

    def load_weights(self, named_tensors: Any) -> int:
        """Copy ``(name, tensor)`` pairs into the model (weight sync from the trainer); returns how many.

        Runs on the model's thread so no batch sees half-updated weights.
        """
        return self._executor.submit(self._load_weights, list(named_tensors)).result()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ---- internals --------------------------------------------------------------------------
    def _load_weights(self, pairs: list[tuple[str, Any]]) -> int:
        import torch

        params = dict(self.model.named_parameters())
        params.update(dict(self.model.named_buffers()))
        n = 0
        with torch.no_grad():
            for name, tensor in pairs:
                key = name if name in params else name.removeprefix("module.")
                if key not in params:
                    log.warning("load_weights: unknown parameter %s ignored", name)
                    continue
                params[key].copy_(tensor.to(params[key].dtype).view_as(params[key]))
                n += 1
        if getattr(self.model.config, "tie_word_embeddings", False):
            self.model.tie_weights()
        return n

    def _drain(self) -> None:
        """Run batches until no request is pending (executes on the model thread)."""
        while True:
            with self._lock:
                batch, self._pending = self._pending[: self.max_batch_size], self._pending[self.max_batch_size :]
                if not batch:
                    self._running = False
                    return
            try:
                self._run_batch(batch)
            except BaseException as err:
                log.exception("generation batch failed")
                for r in batch:
                    if r.future is not None and not r.future.done():
                        r.loop.call_soon_threadsafe(_set_exception, r.future, err)
                continue
            for r in batch:
                if r.future is not None:
                    r.loop.call_soon_threadsafe(_set_result, r.future, r.done)

    def _finish(self, r: _Request, reason: str, matched: str | int | None = None) -> None:
        r.done = Generation(
            token_ids=list(r.out_ids),
            log_probs=list(r.out_logprobs) if r.spec.logprobs else None,
            finish_reason=reason,
            stop_matched=matched,
            prompt_tokens=len(r.prompt_ids),
        )

    def _check_stop(self, r: _Request, token: int) -> None:
        if token in r.spec.stop_token_ids or token in self.eos_token_ids:
            self._finish(r, "stop", token)
        elif r.spec.stop:
            longest = max(len(s) for s in r.spec.stop)
            tail = self.tokenizer.decode(r.out_ids[-(longest + 1) :], skip_special_tokens=False)
            for s in r.spec.stop:
                if s in tail:
                    self._finish(r, "stop", s)
                    return
        if r.done is None and (len(r.out_ids) >= r.spec.max_tokens or len(r.prompt_ids) + len(r.out_ids) >= self.max_model_len):
            self._finish(r, "length")

    def _run_batch(self, batch: list[_Request]) -> None:
        import torch

        self.batches_run += 1
        self.max_batch_seen = max(self.max_batch_seen, len(batch))
        live: list[_Request] = []
        for r in batch:
            if not r.prompt_ids:
                r.done = Generation([], [] if r.spec.logprobs else None, "length")
            elif len(r.prompt_ids) >= self.max_model_len:
                self._finish(r, "length")
            else:
                live.append(r)
        if not live:
            return
        for r in live:
            r.generator = self._generator if r.spec.seed is None else torch.Generator().manual_seed(r.spec.seed)
        width = max(len(r.prompt_ids) for r in live)
        ids = torch.full((len(live), width), self.pad_token_id, dtype=torch.long)
        attn = torch.zeros((len(live), width), dtype=torch.long)
        for i, r in enumerate(live):
            ids[i, width - len(r.prompt_ids) :] = torch.tensor(r.prompt_ids)
            attn[i, width - len(r.prompt_ids) :] = 1
        pos = (attn.cumsum(-1) - 1).clamp(min=0)
        past = None
        step_input, step_pos = ids, pos
        with torch.inference_mode():
            while True:
                out = self.model(input_ids=step_input, attention_mask=attn, position_ids=step_pos,
                                 past_key_values=past, use_cache=True)
                past = out.past_key_values
                logits = out.logits[:, -1, :].float()
                next_tokens = torch.full((len(live),), self.pad_token_id, dtype=torch.long)
                aborting = self._abort.is_set()
                for i, r in enumerate(live):
                    if r.done is not None:
                        continue
                    if aborting or r.cancelled:
                        self._finish(r, "abort")
                        self.requests_cancelled += r.cancelled
                        continue
                    tok, lp = self._sample(logits[i], r.spec, r.generator)
                    r.out_ids.append(tok)
                    r.out_logprobs.append(lp)
                    next_tokens[i] = tok
                    self._check_stop(r, tok)
                if all(r.done is not None for r in live):
                    return
                attn = torch.cat([attn, torch.ones((len(live), 1), dtype=torch.long)], dim=1)
                step_pos = step_pos[:, -1:] + 1
                step_input = next_tokens[:, None]

    def _sample(self, logits: Any, spec: SamplingSpec, generator: Any) -> tuple[int, float]:
        """Pick a token; its log-prob is taken under the temperature-scaled distribution (what
        verl's actor recomputes), before top-k/top-p truncation."""
        import torch

        if spec.greedy:
            logp = torch.log_softmax(logits, dim=-1)
            tok = int(torch.argmax(logits))
            return tok, float(logp[tok])
        scaled = logits / spec.temperature
        logp = torch.log_softmax(scaled, dim=-1)
        probs = logp.exp()
        if spec.top_k and spec.top_k > 0 and spec.top_k < probs.numel():
            kth = torch.topk(probs, spec.top_k).values[-1]
            probs = torch.where(probs < kth, torch.zeros_like(probs), probs)
        if spec.top_p < 1.0:
            sorted_p, idx = torch.sort(probs, descending=True)
            cum = sorted_p.cumsum(-1)
            drop = cum - sorted_p > spec.top_p
            sorted_p = torch.where(drop, torch.zeros_like(sorted_p), sorted_p)
            probs = torch.zeros_like(probs).scatter(0, idx, sorted_p)
        tok = int(torch.multinomial(probs / probs.sum(), 1, generator=generator))
        return tok, float(logp[tok])


def _set_result(fut: asyncio.Future[Generation], value: Generation | None) -> None:
    if not fut.done():
        fut.set_result(value)  # type: ignore[arg-type]


def _set_exception(fut: asyncio.Future[Generation], err: BaseException) -> None:
    if not fut.done():
        fut.set_exception(err)
