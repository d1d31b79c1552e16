"""Every shim verl 0.9.1 needs to run its actor worker (TrainingWorker, FSDP2 engine) on CPU.

verl 0.9.1 assumes an accelerator in three places; each shim below says which and why. They are
for tests, laptops and CI only: nothing here runs unless a caller opts in, either by calling
:func:`activate_cpu_shims` or by setting ``DATAMIND_VERL_CPU=1`` before ``import verl`` (the
plugin entry point then activates them in every process, Ray workers included). With CUDA
present and no opt-in, verl is left untouched. Activation is idempotent.
"""

from __future__ import annotations

import os
import types
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

ENV_FLAG = "DATAMIND_VERL_CPU"
_active = False


def cpu_requested() -> bool:
    """True when the user opted in with ``DATAMIND_VERL_CPU=1``."""
    return os.environ.get(ENV_FLAG, "").strip().lower() in ("1", "true", "yes")


def _cpu_device_module() -> types.ModuleType:
    """A stand-in for ``torch.cuda`` with the calls verl makes on its device module.

    Why: verl calls ``get_torch_device().max_memory_allocated()``, ``.empty_cache()``,
    ``.set_device()`` etc. unconditionally; ``torch.cpu`` lacks most of them. Memory figures are
    reported as 0 (no accelerator memory); anything else falls through to ``torch.cpu``.
    """
    import torch

    mod = types.ModuleType("datamind_cpu_device")
    noop = lambda *a, **k: None
    zero = lambda *a, **k: 0
    for name in ("set_device", "synchronize", "empty_cache", "reset_peak_memory_stats", "ipc_collect"):
        setattr(mod, name, noop)
    for name in ("max_memory_allocated", "max_memory_reserved", "memory_allocated", "memory_reserved"):
        setattr(mod, name, zero)
    mod.is_available = lambda: True
    mod.current_device = lambda: torch.device("cpu")
    mod.device_count = lambda: 1
    mod.manual_seed = torch.manual_seed
    mod.manual_seed_all = torch.manual_seed
    mod.mem_get_info = lambda *a, **k: (0, 0)
    mod.get_device_name = lambda *a, **k: "CPU"  # flops counter: unknown device -> mfu 0, no crash
    mod.__getattr__ = lambda name: getattr(torch.cpu, name)  # type: ignore[method-assign]
    return mod


def _register_platform() -> None:
    """Shim 1: a ``cpu`` platform in verl's PlatformRegistry, selected with ``VERL_PLATFORM=cpu``.

    Why: verl resolves device name, device module and collective backend through its platform
    singleton; only cuda/npu/rocm are registered, and the fallback is "nvidia". This is a public
    registry, so no verl code is patched.
    """
    import torch
    from verl.plugin.platform import PlatformBase, PlatformRegistry

    if PlatformRegistry.get("cpu") is not None:
        return
    cpu_device = _cpu_device_module()

    @PlatformRegistry.register(platform="cpu")
    class PlatformCPU(PlatformBase):
        device_name = "cpu"  # type: ignore[assignment]
        vendor_name = "cpu"  # type: ignore[assignment]
        device_module = cpu_device  # type: ignore[assignment]

        def is_available(self) -> bool:
            return True

        def is_platform_available(self, use_smi_check: bool = False) -> bool:
            # never auto-detected: CPU is selected only through VERL_PLATFORM=cpu (the opt-in)
            return False

        def current_device(self) -> Any:
            # verl passes get_device_id() straight to .to(...) and torch.device(...): an int would
            # mean "cuda:<int>", so on CPU the device id is the cpu device itself
            return torch.device("cpu")

        def device_count(self) -> int:
            return 1

        def set_device(self, device_index: int) -> None:
            return None

        def synchronize(self, device_index: int | None = None) -> None:
            return None

        def manual_seed(self, seed: int) -> None:
            torch.manual_seed(seed)

        def manual_seed_all(self, seed: int) -> None:
            torch.manual_seed(seed)

        def set_allocator_settings(self, settings: str) -> None:
            return None

        def empty_cache(self) -> None:
            return None

        def get_device_capability(self, device_index: int = 0) -> tuple[int | None, int | None]:
            return (None, None)

        def communication_backend_name(self) -> str:
            return "gloo"

        def visible_devices_envvar(self) -> str:
            return "CUDA_VISIBLE_DEVICES"

        @contextmanager
        def nvtx_range(self, msg: str):  # type: ignore[override]
            yield

        def profiler_start(self) -> None:
            return None

        def profiler_stop(self) -> None:
            return None

        def ray_resource_name(self) -> str:
            return "GPU"  # verl's resource pools ask Ray for "GPU"; a logical num_gpus satisfies it

        def ray_noset_envvars(self) -> list[str]:
            return []

        def is_ipc_supported(self) -> bool:
            return False

        def cudart(self) -> Any:
            return None


def ensure_gloo_process_group(timeout_second: int | None = None) -> None:
    """Initialise a plain gloo process group from the usual env vars if none exists yet."""
    import torch.distributed as dist

    if dist.is_initialized():
        return
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29511")
    dist.init_process_group(
        backend="gloo",
        rank=int(os.environ.get("RANK", "0")),
        world_size=int(os.environ.get("WORLD_SIZE", "1")),
        timeout=timedelta(seconds=timeout_second) if timeout_second else None,
    )


def _patch_process_group_init() -> None:
    """Shim 2 (the only patch of verl internals): plain gloo process-group initialisation.

    Why: ``verl.utils.distributed.initialize_global_process_group[_ray]`` build the backend string
    ``"cpu:gloo,<device>:<backend>"``, which on CPU becomes ``"cpu:gloo,cpu:gloo"`` and torch
    rejects it. Both functions are replaced, in verl.utils.distributed and in the modules that
    imported them by name, with a gloo initialisation; an upstream fix would be two lines.
    """
    import importlib

    import verl.utils.distributed as vdist

    def init_ray(timeout_second: int | None = None, backend: str | None = None) -> None:
        ensure_gloo_process_group(timeout_second)

    def init_global(timeout_second: int = 36000) -> tuple[int, int, int]:
        ensure_gloo_process_group(timeout_second)
        return int(os.environ.get("LOCAL_RANK", "0")), int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])

    vdist.initialize_global_process_group_ray = init_ray
    vdist.initialize_global_process_group = init_global
    for mod_name in ("verl.workers.engine_workers", "verl.trainer.sft_trainer"):
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:
            continue
        for attr, fn in (("initialize_global_process_group_ray", init_ray), ("initialize_global_process_group", init_global)):
            if hasattr(mod, attr):
                setattr(mod, attr, fn)


def _register_cpu_engines() -> None:
    """Shim 3: the FSDP language-model engine registered for ``device="cpu"`` (public registry).

    Why: ``EngineRegistry`` has FSDP engines for cuda/npu only, so ``EngineRegistry.new`` raises
    "No engine registered for device='cpu'". FSDP2 itself works on CPU with gloo; FSDP1 does not
    (configure ``strategy=fsdp2``, ``use_remove_padding=False``, attention ``sdpa``).
    """
    from verl.workers.engine.base import EngineRegistry
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead

    lm = EngineRegistry._engines.get("language_model", {})
    if "cpu" in lm.get("fsdp2", {}):
        return
    EngineRegistry.register(model_type="language_model", backend=["fsdp", "fsdp2"], device="cpu")(FSDPEngineWithLMHead)


def activate_cpu_shims() -> None:
    """Make verl's actor worker run on CPU in this process (explicit opt-in; idempotent)."""
    global _active
    if _active:
        return
    os.environ[ENV_FLAG] = "1"  # so Ray workers started from here activate too, via the plugin
    os.environ.setdefault("VERL_PLATFORM", "cpu")
    _register_platform()
    _patch_process_group_init()
    _register_cpu_engines()
    _active = True


def register() -> None:
    """Plugin hook: activate the shims only when the user opted in with ``DATAMIND_VERL_CPU=1``."""
    if cpu_requested():
        activate_cpu_shims()
