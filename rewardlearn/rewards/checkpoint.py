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
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from rewardlearn.files import atomic_output
from rewardlearn.rewards.base import RewardModel
from rewardlearn.rewards.pretrained import load_pretrained
from rewardlearn.rewards.registry import reward_class
from rewardlearn.rewards.spaces import (
    SpaceMismatchError,
    check_spaces,
    describe_space,
    space_from_description,
    space_mismatch,
)
from rewardlearn.rewards.torchfile import (
    CONVERT_COMMAND,
    FORMAT,
    UnsafeCheckpointError,
    pickle_globals,
    read_checkpoint,
    safe_torch_load,
)

__all__ = [
    "CONVERT_COMMAND",
    "FORMAT",
    "SpaceMismatchError",
    "UnsafeCheckpointError",
    "check_spaces",
    "describe_space",
    "import_class",
    "load_reward_model",
    "pickle_globals",
    "read_checkpoint",
    "safe_torch_load",
    "save_reward_model",
    "space_from_description",
    "space_mismatch",
]

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


def import_class(qualified: str) -> type[RewardModel]:
    """The registered reward class a checkpoint names (``module:QualName``, old module paths
    included); an unregistered name is refused, never imported
    (:class:`~rewardlearn.rewards.registry.UnknownRewardClassError`)."""
    cls = reward_class(qualified)
    if not issubclass(cls, RewardModel):
        raise TypeError(f"{qualified!r} is registered but is not a RewardModel subclass")
    return cls


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
    model = load_pretrained(path, observation_space, action_space, **overrides)
    if not isinstance(model, RewardModel):
        raise TypeError(f"{path}: {type(model).__name__} is not a RewardModel")
    return model
