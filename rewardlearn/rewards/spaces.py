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
