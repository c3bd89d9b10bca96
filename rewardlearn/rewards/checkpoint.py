"""Save and load reward modules; ``reward=checkpoint`` loads any saved one.

A checkpoint stores the module's class, constructor config, learned state and
a description of the observation/action spaces it was trained on. Loading
against an env refuses a checkpoint whose spaces do not match and says which
space differs and how.

Checkpoints are ``torch.save`` files, read with ``torch.load(weights_only=True)``
(:func:`safe_torch_load`): tensors, numpy arrays and plain values load, anything
else (a pickle that names other code) is refused with the conversion command. The
class a checkpoint names must be registered (:mod:`rewardlearn.rewards.registry`);
it is never imported from the file. ``path`` may also be a Hub-format folder, a run
folder or a Hub repo id (:mod:`rewardlearn.rewards.pretrained`).

Example:
    >>> import gymnasium as gym, tempfile, os
    >>> from rewardlearn.rewards.mlp import MLPReward
    >>> from rewardlearn.rewards.checkpoint import save_reward_model, load_reward_model
    >>> env = gym.make("Pendulum-v1")
    >>> m = MLPReward(env.observation_space, env.action_space, hidden_sizes=(8,))
    >>> path = os.path.join(tempfile.mkdtemp(), "reward.pt")
    >>> _ = save_reward_model(m, path)
    >>> type(load_reward_model(path, env.observation_space, env.action_space)).__name__
    'MLPReward'
"""

from __future__ import annotations

import os
import pickle
import pickletools
import re
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rewardlearn.files import atomic_output
from rewardlearn.rewards.base import RewardModel
from rewardlearn.rewards.registry import reward_class

FORMAT = "rewardlearn.reward_model/1"
_KEYS = ("class", "config", "state", "observation_space", "action_space")


class SpaceMismatchError(ValueError):
    """A reward checkpoint was trained on different spaces than the env's."""


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


def describe_space(space: gym.Space) -> dict[str, Any]:
    """JSON-able description of a space (type, shape, dtype, bounds, keys)."""
    if isinstance(space, gym.spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": str(space.dtype),
            "low": np.asarray(space.low).tolist(),
            "high": np.asarray(space.high).tolist(),
        }
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n)}
    if isinstance(space, gym.spaces.Dict):
        return {"type": "Dict", "spaces": {k: describe_space(s) for k, s in space.spaces.items()}}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": np.asarray(space.nvec).tolist()}
    raise TypeError(f"unsupported space {space}")


def space_from_description(desc: dict[str, Any]) -> gym.Space:
    """Inverse of :func:`describe_space`."""
    kind = desc["type"]
    if kind == "Box":
        dtype = np.dtype(desc["dtype"])
        return gym.spaces.Box(
            np.asarray(desc["low"], dtype=dtype), np.asarray(desc["high"], dtype=dtype), dtype=dtype
        )
    if kind == "Discrete":
        return gym.spaces.Discrete(desc["n"])
    if kind == "Dict":
        return gym.spaces.Dict({k: space_from_description(v) for k, v in desc["spaces"].items()})
    if kind == "MultiDiscrete":
        return gym.spaces.MultiDiscrete(desc["nvec"])
    raise ValueError(f"unknown space type {kind!r} in checkpoint")


def _short(desc: dict[str, Any]) -> str:
    if desc["type"] == "Box":
        return f"Box(shape={tuple(desc['shape'])}, dtype={desc['dtype']})"
    if desc["type"] == "Discrete":
        return f"Discrete({desc['n']})"
    if desc["type"] == "Dict":
        return "Dict(" + ", ".join(f"{k}: {_short(v)}" for k, v in desc["spaces"].items()) + ")"
    return str(desc)


def space_mismatch(saved: dict[str, Any], actual: dict[str, Any]) -> str | None:
    """Why two space descriptions are incompatible, or ``None`` if they match.

    Type, shape, dtype, ``n`` and Dict keys must match; Box bounds may differ
    (envs often widen them) and are not compared.
    """
    if saved["type"] != actual["type"]:
        return f"{_short(saved)} vs {_short(actual)}"
    if saved["type"] == "Box":
        if saved["shape"] != actual["shape"] or saved["dtype"] != actual["dtype"]:
            return f"{_short(saved)} vs {_short(actual)}"
        return None
    if saved["type"] == "Dict":
        if set(saved["spaces"]) != set(actual["spaces"]):
            return f"keys {sorted(saved['spaces'])} vs {sorted(actual['spaces'])}"
        for k in saved["spaces"]:
            why = space_mismatch(saved["spaces"][k], actual["spaces"][k])
            if why:
                return f"key {k!r}: {why}"
        return None
    return None if saved == actual else f"{_short(saved)} vs {_short(actual)}"


def check_spaces(
    saved_obs: dict[str, Any],
    saved_act: dict[str, Any],
    observation_space: gym.Space | None,
    action_space: gym.Space | None,
    where: str = "reward checkpoint",
) -> None:
    """Raise :class:`SpaceMismatchError` naming the space that differs."""
    problems = []
    for label, saved, space in (
        ("observation space", saved_obs, observation_space),
        ("action space", saved_act, action_space),
    ):
        if space is None:
            continue
        why = space_mismatch(saved, describe_space(space))
        if why:
            problems.append(f"{label} differs (checkpoint vs env): {why}")
    if problems:
        raise SpaceMismatchError(
            f"{where} does not match this env's spaces -- " + "; ".join(problems)
            + ". Train or pick a reward model for this env (and the same obs_mode)."
        )


def save_reward_model(model: RewardModel, path: str | os.PathLike[str],
                      extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` to ``path`` atomically; returns the path.

    The checkpoint goes to a temp name unique to this writer in the same folder
    and is renamed onto ``path`` once complete, so concurrent writers never
    share a temp file and a failed or interrupted save leaves no partial file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cls = type(model)
    payload = {
        "format": FORMAT,
        "class": f"{cls.__module__}:{cls.__qualname__}",
        "config": model.config(),
        "state": model.state_dict(),
        "observation_space": describe_space(model.observation_space),
        "action_space": describe_space(model.action_space),
        "extra": extra or {},
    }
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)
    return path


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


def import_class(qualified: str) -> type[RewardModel]:
    """The registered reward class a checkpoint names (``module:QualName``, old module paths
    included); an unregistered name is refused, never imported
    (:class:`~rewardlearn.rewards.registry.UnknownRewardClassError`)."""
    return reward_class(qualified)


def load_reward_model(
    path: str | os.PathLike[str],
    observation_space: gym.Space | None = None,
    action_space: gym.Space | None = None,
    **overrides: Any,
) -> RewardModel:
    """Load a saved reward module, refusing it if its spaces differ from the given ones.

    Args:
        path: a file written by :func:`save_reward_model` (e.g. a run's ``reward_model.pt``),
            a folder written by :func:`~rewardlearn.rewards.pretrained.save_pretrained`, a run
            folder, or a Hub repo id (``user/name``).
        observation_space, action_space: the env's spaces; ``None`` skips the check.
        overrides: constructor kwargs to change (e.g. ``device="cpu"``); ``trust=[...]``
            lists dotted paths its settings may import besides rewardlearn's (a shaping
            function of yours), ``revision``/``token``/``cache_dir`` go to the Hub.
    """
    from rewardlearn.rewards.pretrained import load_pretrained

    return load_pretrained(path, observation_space, action_space, **overrides)
