"""Describe, rebuild and compare Gymnasium spaces, so a saved reward model can refuse an
env whose observation or action space differs (and say which and how).

Example:
    >>> import gymnasium as gym
    >>> from rewardlearn.rewards.spaces import describe_space, space_mismatch
    >>> a = describe_space(gym.spaces.Box(-1, 1, (3,)))
    >>> space_mismatch(a, describe_space(gym.spaces.Box(-1, 1, (4,))))
    'Box(shape=(3,), dtype=float32) vs Box(shape=(4,), dtype=float32)'
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class SpaceMismatchError(ValueError):
    """A reward checkpoint was trained on different spaces than the env's."""


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


MAX_SPACE_SIZE = 1 << 24
"""Most elements a saved Box may have (checked before anything is allocated)."""

_SPACE_TYPES = ("Box", "Discrete", "Dict", "MultiDiscrete")


def numeric_dtype(name: Any, what: str) -> np.dtype:
    """``np.dtype(name)`` if it is a bool, integer or float dtype of at most 16 bytes, else
    ``ValueError`` (a saved file's dtype, checked before any array of it is made)."""
    try:
        dtype = np.dtype(str(name))
    except TypeError:
        raise ValueError(f"{what}: {name!r} is not a numpy dtype") from None
    if dtype.kind not in "biuf" or dtype.itemsize > 16:
        raise ValueError(f"{what}: dtype {name!r} is not a number type (bool, int, uint or "
                         "float of at most 16 bytes)")
    return dtype


def check_description(desc: Any, what: str = "space", depth: int = 0) -> None:
    """Refuse a malformed space description (from a file) with ``ValueError`` before any
    space or array is built from it: its type, shape (at most :data:`MAX_SPACE_SIZE`
    elements), dtype (numbers only) and, for a Dict, its keys."""
    if depth > 8:
        raise ValueError(f"{what}: Dict spaces nested deeper than 8 levels")
    if not isinstance(desc, dict) or desc.get("type") not in _SPACE_TYPES:
        kind = desc.get("type") if isinstance(desc, dict) else type(desc).__name__
        raise ValueError(f"{what}: not a space description (type {kind!r}; expected one of "
                         f"{', '.join(_SPACE_TYPES)})")
    kind = desc["type"]
    if kind == "Box":
        shape = desc.get("shape")
        if (not isinstance(shape, list) or len(shape) > 8
                or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                           for n in shape)):
            raise ValueError(f"{what}: Box shape {shape!r} is not a list of sizes")
        if int(np.prod(shape, dtype=np.float64)) > MAX_SPACE_SIZE:
            raise ValueError(f"{what}: Box of shape {tuple(shape)} is larger than "
                             f"{MAX_SPACE_SIZE} elements")
        numeric_dtype(desc.get("dtype"), f"{what} dtype")
        for bound in ("low", "high"):
            if not isinstance(desc.get(bound), (list, int, float)):
                raise ValueError(f"{what}: Box {bound} is missing or not numbers")
    elif kind == "Discrete":
        if not isinstance(desc.get("n"), int) or desc["n"] < 1:
            raise ValueError(f"{what}: Discrete n {desc.get('n')!r} is not a positive integer")
    elif kind == "MultiDiscrete":
        nvec = desc.get("nvec")
        if not isinstance(nvec, list) or len(nvec) > MAX_SPACE_SIZE:
            raise ValueError(f"{what}: MultiDiscrete nvec is not a list")
    else:
        spaces = desc.get("spaces")
        if not isinstance(spaces, dict):
            raise ValueError(f"{what}: Dict spaces is not a mapping")
        for key, sub in spaces.items():
            check_description(sub, f"{what}[{key!r}]", depth + 1)


def space_from_description(desc: dict[str, Any]) -> gym.Space:
    """Inverse of :func:`describe_space` (the description is checked first)."""
    check_description(desc)
    kind = desc["type"]
    if kind == "Box":
        dtype = numeric_dtype(desc["dtype"], "space dtype")
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
    for label, saved in (("observation space", saved_obs), ("action space", saved_act)):
        check_description(saved, f"{where}: saved {label}")
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
