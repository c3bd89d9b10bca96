"""Turn transitions into flat feature vectors for state-based reward nets."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from rewardlearn.rewards.base import Obs


def is_image_space(space: gym.Space) -> bool:
    """uint8 Box of rank 3: pixels, which state-based nets skip."""
    return isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3


def state_keys(space: gym.Space) -> list[str] | None:
    """Non-image keys of a Dict space (``None`` for a plain Box)."""
    if isinstance(space, gym.spaces.Dict):
        keys = [k for k, s in space.spaces.items() if not is_image_space(s)]
        if not keys:
            raise ValueError("Dict observation space has no state (non-image) entry")
        return keys
    if isinstance(space, gym.spaces.Box):
        if is_image_space(space):
            raise ValueError(
                "state-based reward nets need state observations; this env's observations are "
                "images (use a frame-based module, or obs_mode=state)"
            )
        return None
    if isinstance(space, gym.spaces.Discrete):
        return None
    raise TypeError(f"unsupported observation space {space}")


def flat_dim(space: gym.Space) -> int:
    keys = state_keys(space)
    if keys is None:
        return int(gym.spaces.flatdim(space))
    assert isinstance(space, gym.spaces.Dict)
    return int(sum(gym.spaces.flatdim(space.spaces[k]) for k in keys))


def flatten_obs(space: gym.Space, obs: Obs) -> np.ndarray:
    """``(B, D)`` float32 features of a batch of observations."""
    keys = state_keys(space)
    if keys is None:
        if isinstance(space, gym.spaces.Discrete):
            idx = np.asarray(obs, dtype=np.int64).reshape(-1)
            return np.eye(int(space.n), dtype=np.float32)[idx]
        arr = np.asarray(obs, dtype=np.float32)
        return arr.reshape(arr.shape[0], -1)
    assert isinstance(obs, dict)
    return np.concatenate(
        [np.asarray(obs[k], dtype=np.float32).reshape(len(obs[k]), -1) for k in keys], axis=1
    )


def flatten_acts(space: gym.Space, acts: np.ndarray) -> np.ndarray:
    if isinstance(space, gym.spaces.Discrete):
        return np.eye(int(space.n), dtype=np.float32)[np.asarray(acts, dtype=np.int64).reshape(-1)]
    arr = np.asarray(acts, dtype=np.float32)
    return arr.reshape(arr.shape[0], -1)


@dataclass
class TransitionFeatures:
    """Which parts of a transition a state-based reward net sees.

    ``r(s)``, ``r(s, a)``, ``r(s, a, s')`` and ``r(s, a, s', done)`` are all
    common; the default ``r(s, a)`` follows PEBBLE.
    """

    observation_space: gym.Space
    action_space: gym.Space
    use_obs: bool = True
    use_action: bool = True
    use_next_obs: bool = False
    use_done: bool = False

    @property
    def dim(self) -> int:
        d_obs = flat_dim(self.observation_space)
        d = d_obs * (int(self.use_obs) + int(self.use_next_obs))
        d += flat_dim_act(self.action_space) * int(self.use_action) + int(self.use_done)
        if d == 0:
            raise ValueError("reward features are empty: enable obs, action or next_obs")
        return d

    def __call__(
        self, obs: Obs, acts: np.ndarray, next_obs: Obs, terminated: np.ndarray
    ) -> torch.Tensor:
        parts = []
        if self.use_obs:
            parts.append(flatten_obs(self.observation_space, obs))
        if self.use_action:
            parts.append(flatten_acts(self.action_space, acts))
        if self.use_next_obs:
            parts.append(flatten_obs(self.observation_space, next_obs))
        if self.use_done:
            parts.append(np.asarray(terminated, dtype=np.float32).reshape(-1, 1))
        return torch.from_numpy(np.concatenate(parts, axis=1))


def flat_dim_act(space: gym.Space) -> int:
    return int(gym.spaces.flatdim(space))
