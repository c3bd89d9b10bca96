"""Save and load reward modules; ``reward=checkpoint`` loads any saved one.

A checkpoint stores the module's class, constructor config, learned state and
a description of the observation/action spaces it was trained on. Loading
against an env refuses a checkpoint whose spaces do not match and says which
space differs and how.

Checkpoints are pickles (``torch.save``): load only files you trust.

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
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rewardlearn.files import atomic_output
from rewardlearn.rewards.base import RewardModel
from rewardlearn.utils import import_object

FORMAT = "rewardlearn.reward_model/1"
_KEYS = ("class", "config", "state", "observation_space", "action_space")


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
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except OSError as e:
        raise OSError(f"cannot read reward checkpoint {path}: {e.strerror or e}") from e
    except Exception as e:  # unpickling/zip errors: truncated or foreign bytes
        reason = (str(e).strip().splitlines() or [""])[0].split(". ")[0].rstrip(".")[:200]
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
    """The reward class a checkpoint names (``module:QualName``; old module paths resolve
    through :data:`rewardlearn.utils.MOVED_MODULES`)."""
    obj = import_object(qualified)
    if not (isinstance(obj, type) and issubclass(obj, RewardModel)):
        raise TypeError(f"{qualified} is not a RewardModel class")
    return obj


def load_reward_model(
    path: str | os.PathLike[str],
    observation_space: gym.Space | None = None,
    action_space: gym.Space | None = None,
    **overrides: Any,
) -> RewardModel:
    """Load a saved reward module, refusing it if its spaces differ from the given ones.

    Args:
        path: a file written by :func:`save_reward_model` (e.g. a run's ``reward_model.pt``).
        observation_space, action_space: the env's spaces; ``None`` skips the check.
        overrides: constructor kwargs to change (e.g. ``device="cpu"``).
    """
    path = Path(path)
    payload = read_checkpoint(path)
    check_spaces(payload["observation_space"], payload["action_space"], observation_space,
                 action_space, where=f"reward checkpoint {path}")
    cls = import_class(payload["class"])
    config = {**payload["config"], **overrides}
    model = cls(
        space_from_description(payload["observation_space"]),
        space_from_description(payload["action_space"]),
        **config,
    )
    model.load_state_dict(payload["state"])
    return model
