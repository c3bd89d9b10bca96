"""Read rewardlearn's ``.pt`` reward checkpoints without running code from them.

A checkpoint is a ``torch.save`` dict (:data:`FORMAT`): the registered class name, its
settings, the learned state and the spaces. It is read with ``torch.load(weights_only=True)``
(:func:`safe_torch_load`): tensors, numpy arrays and plain values load; a pickle that names
other code is refused with the conversion command, never unpickled.
"""

from __future__ import annotations

import os
import pickle
import pickletools
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = "rewardlearn.reward_model/1"
_KEYS = ("class", "config", "state", "observation_space", "action_space")


class UnsafeCheckpointError(ValueError):
    """A ``.pt`` file that only loads by running code named in it (refused)."""


CONVERT_COMMAND = "rewardlearn-convert {path} <out> --trust"
"""How a user turns a trusted old pickle into a file that loads safely."""


def _numpy_globals() -> list[Any]:
    """The numpy functions/types that rebuild plain numeric arrays and scalars."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    dtypes = [type(np.dtype(c)) for c in "?bBhHiIlLqQefdgFDGUS"]
    return [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype, *dtypes]


def pickle_globals(path: str | os.PathLike[str]) -> list[str]:
    """The ``module.name`` globals a pickle (or a ``torch.save`` zip) names, read from its
    opcodes without unpickling; ``[]`` when it cannot be parsed."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                name = next((n for n in z.namelist() if n.endswith("data.pkl")), None)
                data = z.read(name) if name else b""
        else:
            data = Path(path).read_bytes()
        found: list[str] = []
        strings: list[str] = []
        for op, arg, _ in pickletools.genops(data):
            if op.name in ("GLOBAL", "INST") and isinstance(arg, str):
                found.append(arg.replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
            elif isinstance(arg, str):
                strings.append(arg)
        return sorted(set(found))
    except Exception:
        return []


def safe_torch_load(path: str | os.PathLike[str], what: str = "reward checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` allowing numpy arrays and scalars too.

    A file that names other code (what a malicious or foreign pickle does) is refused
    with :class:`UnsafeCheckpointError`, which names the safe format and the conversion
    command; it is never unpickled. Other failures (damaged bytes) propagate.
    """
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Weights only load failed" not in str(err):
            raise
        allowed = {f"{g.__module__}.{g.__qualname__}" for g in _numpy_globals()}
        allowed |= {"torch._utils._rebuild_tensor_v2", "collections.OrderedDict",
                    "torch.FloatStorage"}
        named = [g for g in pickle_globals(path) if g not in allowed
                 and not g.startswith(("torch.", "numpy.dtypes."))]
        blocked = re.search(r"(?:unsupported GLOBAL|Unsupported global:?) ([\w.]+)", str(err))
        if blocked:
            named = sorted({*named, blocked.group(1)})
        if not named:
            raise
        raise UnsafeCheckpointError(
            f"refusing to load {what} {path}: it is a pickle naming {', '.join(named[:5])}, "
            "and unpickling it could run code from the file. rewardlearn loads reward models "
            "from the Hub format (config.json + model.safetensors) and old .pt files only when "
            "they hold tensors, arrays and plain values. If you trust this file, convert it "
            f"once: {CONVERT_COMMAND.format(path=path)}") from None


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The payload of a file written by :func:`save_reward_model`, checked.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming
    the file for anything that is not such a checkpoint (a truncated file,
    random bytes, another program's pickle).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"reward checkpoint {str(path)!r} not found; pass the reward_model.pt of a run "
            "(runs/<run>/reward_model.pt)"
        )
    try:
        payload = safe_torch_load(path)
    except UnsafeCheckpointError:
        raise
    except OSError as e:
        raise OSError(f"cannot read reward checkpoint {path}: {e.strerror or e}") from e
    except Exception as e:  # unpickling/zip errors: truncated or foreign bytes
        reason = (str(e).strip().splitlines() or [""])[0].split(". ")[0].rstrip(".")[:200]
        reason = reason or "the file ends early"
        raise ValueError(
            f"cannot read reward checkpoint {path}: not a rewardlearn checkpoint "
            f"({type(e).__name__}: {reason}); expected a reward_model.pt saved by rewardlearn"
        ) from None
    found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
    if not isinstance(payload, dict) or found != FORMAT:
        raise ValueError(f"cannot read reward checkpoint {path}: not a rewardlearn checkpoint "
                         f"(expected format {FORMAT!r}, found {found!r}); expected a "
                         "reward_model.pt saved by rewardlearn")
    missing = [k for k in _KEYS if k not in payload]
    if missing:
        raise ValueError(f"cannot read reward checkpoint {path}: not a rewardlearn checkpoint "
                         f"(format {FORMAT} but no {', '.join(missing)})")
    return payload
