"""Small shared helpers: devices, threads, import by path."""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else CPU; other strings pass to ``torch.device``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available; use device=auto or cpu")
    return dev


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), read from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def fast_bf16(device: torch.device) -> bool:
    """Whether bf16 matmuls run faster than fp32 on ``device`` (native bf16 units)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return device.type == "cpu" and cpu_has_native_bf16()


def set_torch_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads deliberately (default: all cores); returns the count.

    Small batches with the default thread pool can run several times slower on
    a 2-core CPU than with a deliberate setting (measured for the preference ensemble).
    """
    if n is None:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(max(1, int(n or 1)))
    return torch.get_num_threads()



def to_dict(node: Any) -> dict[str, Any]:
    """A plain dict (interpolations resolved) from a config node, a mapping or ``None``."""
    if node is None:
        return {}
    if isinstance(node, DictConfig):
        out = OmegaConf.to_container(node, resolve=True)
        assert isinstance(out, dict)
        return {str(k): v for k, v in out.items()}
    return dict(node)


MOVED_MODULES: dict[str, str] = {
    "rewardlearn.rewards.preference": "rewardlearn.preference.reward",
    "rewardlearn.rewards.vlm": "rewardlearn.vlm.reward",
    "rewardlearn.rewards.vlm_distilled": "rewardlearn.vlm.distilled",
    "rewardlearn.rewards.progress": "rewardlearn.progress.reward",
    "rewardlearn.rewards.perceptual": "rewardlearn.perceptual.reward",
}
"""Old module path -> new one, for classes named in files saved by earlier versions."""


_IMPORT_GUARD: ContextVar[Callable[[str], None] | None] = ContextVar("import_guard",
                                                                     default=None)


@contextlib.contextmanager
def guarded_imports(check: Callable[[str], None]) -> Iterator[None]:
    """Within the block, :func:`import_object` first calls ``check("module:name")``.

    Loading a saved reward model sets a check that admits only registered classes, so
    a dotted path written in a file (a shaping spec, an encoder target) cannot name
    arbitrary code; ``check`` raises to refuse.
    """
    token = _IMPORT_GUARD.set(check)
    try:
        yield
    finally:
        _IMPORT_GUARD.reset(token)


def import_object(path: str) -> Any:
    """The object at ``"package.module:name"`` or ``"package.module.name"``.

    A module that an earlier version of rewardlearn kept elsewhere (:data:`MOVED_MODULES`)
    resolves to its new home, so specs saved in checkpoints before a move still load.
    """
    module, sep, name = path.partition(":")
    if not sep:
        module, _, name = path.rpartition(".")
    module = MOVED_MODULES.get(module, module)
    if not module or not name:
        raise ValueError(f"{path!r} is not a dotted path like 'my_pkg.my_module:my_function'")
    guard = _IMPORT_GUARD.get()
    if guard is not None:
        guard(f"{module}:{name}")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"cannot import {module!r} (from {path!r}): {e}") from e
    for part in name.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportError(f"{module!r} has no attribute {name!r} (from {path!r})") from None
    return obj
