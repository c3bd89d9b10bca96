"""Small shared helpers: devices, threads, import by path."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, Protocol

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


def cpu_cores() -> int:
    """Cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def auto_threads(device: torch.device, heavy: bool) -> int:
    """``torch_threads=auto``: one thread for small networks on the CPU (measured: two runs
    side by side each trained 9-33x faster with one thread than with all cores,
    bench/results/threads.md), all cores when a GPU trains or a module encodes images on
    the CPU (``heavy``: a frame encoder such as CLIP)."""
    return cpu_cores() if device.type != "cpu" or heavy else 1


def set_torch_threads(n: int | str | None = None) -> int:
    """Set torch's intra-op threads deliberately; returns the count. ``None`` or ``"all"``:
    every core; an integer: that many.

    Small batches with the default thread pool can run several times slower on
    a 2-core CPU than with a deliberate setting (measured for the preference ensemble).
    """
    if n is None or n == "all":
        n = cpu_cores()
    torch.set_num_threads(max(1, int(n)))
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


class ImportGuard(Protocol):
    """What :func:`import_object` asks while a saved file's settings are being built."""

    def before_import(self, module: str, qualified: str) -> None:
        """Refuse (raise) before ``module`` is imported for ``qualified`` (``module:name``)."""

    def after_resolve(self, qualified: str, obj: Any) -> None:
        """Refuse (raise) the object ``qualified`` resolved to."""

    def check_file(self, path: str, what: str) -> None:
        """Refuse (raise) a file the settings name whose loading can run code (``what``)."""


_IMPORT_GUARD: ContextVar[ImportGuard | None] = ContextVar("import_guard", default=None)


@contextlib.contextmanager
def guarded_imports(guard: ImportGuard) -> Iterator[None]:
    """Within the block, :func:`import_object` asks ``guard`` before importing a module and
    about the object it resolved to, and :func:`check_code_file` asks it about files.

    Loading a saved reward model sets a guard that admits only registered classes and
    functions defined in trusted modules (:class:`rewardlearn.rewards.registry.ReferenceCheck`),
    so a dotted path written in a file (a shaping spec, an encoder target) cannot name
    arbitrary code; the guard raises to refuse.
    """
    token = _IMPORT_GUARD.set(guard)
    try:
        yield
    finally:
        _IMPORT_GUARD.reset(token)


def guard_active() -> bool:
    """Whether a saved file's settings are being built (:func:`guarded_imports`)."""
    return _IMPORT_GUARD.get() is not None


def check_code_file(path: str, what: str) -> None:
    """Ask the active guard (a saved model being loaded) whether ``path``, a file whose
    loading runs code (``what``), may be read; outside a guard nothing is refused."""
    guard = _IMPORT_GUARD.get()
    if guard is not None:
        guard.check_file(path, what)


def split_reference(path: str) -> tuple[str, str]:
    """``(module, name)`` of ``"package.module:name"`` or ``"package.module.name"``, with a
    module that an earlier version kept elsewhere (:data:`MOVED_MODULES`) moved."""
    module, sep, name = str(path).partition(":")
    if not sep:
        module, _, name = module.rpartition(".")
    module = MOVED_MODULES.get(module, module)
    if not module or not name:
        raise ValueError(f"{path!r} is not a dotted path like 'my_pkg.my_module:my_function'")
    return module, name


def defined_in(obj: Any, module: str, name: str) -> bool:
    """Whether ``obj`` is a class or function *defined* in ``module`` under ``name`` (not one
    the module imported from elsewhere)."""
    return ((inspect.isclass(obj) or inspect.isfunction(obj))
            and getattr(obj, "__module__", None) == module
            and getattr(obj, "__qualname__", None) == name)


def import_object(path: str, base: type | tuple[type, ...] | None = None,
                  what: str = "reference") -> Any:
    """The object at ``"package.module:name"`` or ``"package.module.name"``: the one resolver
    of dotted paths in the package (configs, saved settings, registered classes).

    The name after the module is looked up attribute by attribute but never through a
    module (``pkg.mod:os.system`` is refused: name the module before the colon) nor a
    dunder attribute. ``base``: the object must be a subclass of it. While a saved file is
    loaded (:func:`guarded_imports`) the guard is asked before the module is imported and
    about the object found.
    """
    module, name = split_reference(path)
    qualified = f"{module}:{name}"
    guard = _IMPORT_GUARD.get()
    if guard is not None:
        guard.before_import(module, qualified)
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"cannot import {module!r} (from {what} {path!r}): {e}") from e
    for part in name.split("."):
        if part.startswith("__"):
            raise ValueError(f"{what} {path!r}: {part!r} is not a name a dotted path may use")
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportError(f"{module!r} has no attribute {name!r} (from {what} "
                              f"{path!r})") from None
        if inspect.ismodule(obj):
            raise ValueError(f"{what} {path!r} reaches the module {obj.__name__!r} through "
                             f"{module!r}: name the module before the colon "
                             f"('{obj.__name__}:...')")
    if base is not None and not (inspect.isclass(obj) and issubclass(obj, base)):
        names = " or ".join(b.__name__ for b in (base if isinstance(base, tuple) else (base,)))
        raise TypeError(f"{what} {path!r} is not a {names} subclass")
    if guard is not None:
        guard.after_resolve(qualified, obj)
    return obj
