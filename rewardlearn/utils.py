"""Small shared helpers: devices, threads, command-line settings, import by path."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else CPU; other strings pass to ``torch.device``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available; use device=auto or cpu")
    return dev


def set_torch_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads deliberately (default: all cores); returns the count.

    Small batches with the default thread pool can run several times slower on
    a 2-core CPU (REFERENCE section 2).
    """
    if n is None:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(max(1, int(n or 1)))
    return torch.get_num_threads()


def run_cli(main: Callable[[], Any]) -> None:
    """Run a command's ``main``; input errors exit with ``error: <message>``, no trace."""
    try:
        main()
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}") from None


def dataclass_from_kwargs(cls: Any, kwargs: dict[str, Any], what: str) -> Any:
    """``cls(**kwargs)`` for a dataclass, naming unknown keys and listing the valid ones."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(kwargs) - names)
    if unknown:
        raise ValueError(f"unknown {what} setting(s) {unknown}; valid: {sorted(names)}")
    return cls(**kwargs)


def cli_args(argv: Sequence[str] | None, doc: str | None) -> list[str]:
    """The command-line tokens (``sys.argv[1:]`` by default); ``-h``/``help`` prints ``doc``
    and exits."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help", "help") for a in args):
        print(doc)
        raise SystemExit(0)
    return args


def parse_key_values(tokens: Sequence[str], types: Mapping[str, Callable[[str], Any]]
                     ) -> dict[str, Any]:
    """``key=value`` tokens parsed by ``types[key]``; unknown keys and bad values say so."""
    values: dict[str, Any] = {}
    for token in tokens:
        key, sep, raw = token.partition("=")
        key = key.lstrip("-").replace("-", "_")
        if not sep:
            raise ValueError(f"expected key=value, got {token!r}")
        if key not in types:
            raise ValueError(f"unknown option {key!r}; options: {', '.join(sorted(types))}")
        try:
            values[key] = types[key](raw)
        except ValueError as err:
            raise ValueError(f"bad value for {key}: {raw!r} ({err})") from None
    return values



MOVED_MODULES: dict[str, str] = {}
"""Old module path -> new one, for classes named in files saved by earlier versions."""


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
