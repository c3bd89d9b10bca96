"""The agent conditioned on the user latent: ``z`` appended to every observation.

VPL (Poddar et al. 2024, §4) trains one policy ``pi(a | s, z)`` for every user: each
training trajectory is relabelled with a ``z ~ p(z) = N(0, I)`` and the reward
``r(s, a, z)``, with ``z`` part of the observation; at test time ``z`` is the posterior mean
``q(z | a new user's labelled pairs)``. :class:`AppendLatent` does the observation part
for any flat ``Box`` env: ``obs -> [obs, z]`` with ``z`` drawn from the prior at every reset
(training), or held fixed (a given user). ``reward=vpl`` adds it to the run's env config
(its settings' :meth:`~rewardlearn.vpl.configuration.VPLConfig.env_wrappers`), so the
training envs, evaluation and videos all see ``[s, z]``, and the reward module reads ``z``
back from the observation.

Example:
    >>> import gymnasium as gym, numpy as np
    >>> env = AppendLatent(gym.make("Pendulum-v1"), latent_dim=2, z=[0.5, -1.0])
    >>> obs, _ = env.reset(seed=0)
    >>> obs.shape, obs[-2:].tolist()
    ((5,), [0.5, -1.0])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

WRAPPER_TARGET = "rewardlearn.vpl.latent.AppendLatent"


def split_latent(obs: np.ndarray, latent_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """``(s, z)`` of observations ``[s, z]`` ``(B, D + d)``."""
    obs = np.asarray(obs)
    return obs[..., : obs.shape[-1] - latent_dim], obs[..., obs.shape[-1] - latent_dim:]


class AppendLatent(gym.ObservationWrapper[np.ndarray, Any, np.ndarray]):
    """``obs -> [obs, z]`` for a flat ``Box`` observation.

    Args:
        env: the env (flat ``Box`` observations).
        latent_dim: ``d``, the width of ``z``.
        z: a fixed latent (a user's posterior mean); ``None``: a fresh ``z ~ N(0, I)`` at
            every reset (VPL's relabelling with the prior), or, once
            :meth:`set_latent_bank` gave them, one of a bank of latents drawn uniformly (the
            users' posterior means of ``reward.model.policy_latents=posterior``).
        seed: seeds the prior draws; a ``reset(seed=...)`` reseeds them from that seed, so
            seeded evaluation episodes see the same ``z`` every time.
    """

    def __init__(self, env: gym.Env, latent_dim: int, z: Sequence[float] | None = None,
                 seed: int | None = None) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"AppendLatent (reward=vpl) needs flat Box observations, got "
                             f"{space}")
        if isinstance(latent_dim, bool) or int(latent_dim) < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        self.latent_dim = int(latent_dim)
        self.fixed = None if z is None else np.asarray(z, np.float32).reshape(-1)
        if self.fixed is not None and len(self.fixed) != self.latent_dim:
            raise ValueError(f"z has {len(self.fixed)} entries, latent_dim is {latent_dim}")
        self._rng = np.random.default_rng(seed)
        self.z = np.zeros(self.latent_dim, np.float32) if self.fixed is None else self.fixed
        self.bank: np.ndarray | None = None
        inf = np.full(self.latent_dim, np.inf, np.float32)
        self.observation_space = gym.spaces.Box(
            np.concatenate([space.low.astype(np.float32), -inf]),
            np.concatenate([space.high.astype(np.float32), inf]), dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None:
            self._rng = np.random.default_rng([int(seed), 7919])
        if self.fixed is None:
            if self.bank is None:
                self.z = self._rng.standard_normal(self.latent_dim).astype(np.float32)
            else:
                self.z = self.bank[int(self._rng.integers(len(self.bank)))].copy()
        return super().reset(seed=seed, options=options)

    def set_latent_bank(self, latents: np.ndarray) -> None:
        """Start later episodes with one of ``latents`` ``(M, d)``, drawn uniformly, instead
        of a prior draw; a fixed ``z`` stays fixed."""
        bank = np.array(latents, np.float32)
        if bank.ndim != 2 or bank.shape[1] != self.latent_dim or len(bank) == 0:
            raise ValueError(f"a latent bank is (M, {self.latent_dim}) latents with M >= 1, "
                             f"got {bank.shape}")
        if not np.isfinite(bank).all():
            raise ValueError("a latent bank needs finite latents")
        self.bank = bank

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(observation, np.float32).reshape(-1), self.z])


def latent_wrapper(latent_dim: int, z: Sequence[float] | None = None) -> dict[str, Any]:
    """The env-config ``wrappers:`` entry of :class:`AppendLatent`."""
    spec: dict[str, Any] = {"_target_": WRAPPER_TARGET, "latent_dim": int(latent_dim)}
    if z is not None:
        spec["z"] = [float(v) for v in z]
    return spec


__all__ = ["WRAPPER_TARGET", "AppendLatent", "latent_wrapper", "split_latent"]
