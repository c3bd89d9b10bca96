"""Transition distributions for reward evaluation: rollouts and coverage samples.

Distances between rewards are measured over transitions ``(s, a, s')`` drawn
from an evaluation distribution ``D`` (:func:`collect_rollouts`: episodes of a
policy in the env, random actions by default). EPIC's canonicalisation also
needs a *coverage* distribution of states ``D_S`` and actions ``D_A``
(:func:`coverage_samples`): states are drawn from the states visited in the
rollouts (both ``s`` and ``s'``, uniformly), actions either uniformly from the
action space (``actions="uniform"``, the default) or from the actions taken in
the rollouts (``actions="rollout"``). ``E[R(x, A, S')]`` is estimated over ``M``
pairs ``(A_j, S'_j)`` and ``E[R(S, A, S')]`` over the ``M x M`` grid of the same
state draws ``S_k`` with those pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from rewardlearn.rewards.base import RewardModel, TransitionBatch

Policy = Callable[[np.ndarray], np.ndarray]


@dataclass
class Rollouts:
    """Flat transitions of several episodes with their env rewards and episode ids."""

    obs: np.ndarray
    acts: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    env_rewards: np.ndarray
    episode: np.ndarray

    def __len__(self) -> int:
        return len(self.acts)

    def batch(self, idx: np.ndarray | slice | None = None) -> TransitionBatch:
        """The transitions (all, or rows ``idx``) as a :class:`TransitionBatch`."""
        sel = slice(None) if idx is None else idx
        b = TransitionBatch(self.obs[sel], self.acts[sel], self.next_obs[sel],
                            self.terminated[sel], self.truncated[sel])
        b.env_rewards = self.env_rewards[sel]
        return b

    @property
    def n_episodes(self) -> int:
        return len(np.unique(self.episode))


def _box_obs(env: gym.Env) -> None:
    space = env.observation_space
    if not isinstance(space, gym.spaces.Box) or space.dtype == np.uint8:
        raise ValueError(
            f"reward evaluation samples flat state observations; this env's observation space "
            f"is {space} (use a state obs_mode)"
        )


def collect_rollouts(env: gym.Env, n_steps: int, seed: int = 0, policy: Policy | None = None,
                     max_episode_steps: int | None = None) -> Rollouts:
    """Run ``policy`` (uniform random actions if ``None``) for ``n_steps`` transitions.

    ``next_obs`` is the true next observation (also at episode ends), and
    ``terminated``/``truncated`` are kept apart. ``max_episode_steps`` cuts
    episodes short (truncation) so short budgets still see several episodes.
    """
    _box_obs(env)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    rows: dict[str, list[Any]] = {k: [] for k in ("obs", "acts", "next_obs", "term", "trunc",
                                                  "rew", "ep")}
    ep, t = 0, 0
    for _ in range(int(n_steps)):
        act = env.action_space.sample() if policy is None else policy(np.asarray(obs))
        nxt, rew, term, trunc, _ = env.step(act)
        t += 1
        trunc = bool(trunc) or (max_episode_steps is not None and t >= max_episode_steps)
        for key, value in (("obs", obs), ("acts", act), ("next_obs", nxt), ("term", term),
                           ("trunc", trunc and not term), ("rew", rew), ("ep", ep)):
            rows[key].append(value)
        obs = nxt
        if term or trunc:
            ep, t = ep + 1, 0
            obs, _ = env.reset()
    return Rollouts(
        np.asarray(rows["obs"], np.float32), np.asarray(rows["acts"], np.float32),
        np.asarray(rows["next_obs"], np.float32), np.asarray(rows["term"], bool),
        np.asarray(rows["trunc"], bool), np.asarray(rows["rew"], np.float64),
        np.asarray(rows["ep"], np.int64),
    )


@dataclass
class Coverage:
    """``M`` action/next-state pairs from ``D_A x D_S`` and ``M`` states ``S ~ D_S``.

    :func:`coverage_samples` uses the same state draws for ``S`` and ``S'`` (as
    the EPIC authors' code does): then ``E[gamma Phi(S') - gamma Phi(S)]`` cancels
    exactly on the samples, so a potential-shaped reward canonicalises to exactly
    the same values as the original (not only up to a constant).
    """

    states: np.ndarray
    actions: np.ndarray
    next_states: np.ndarray


def coverage_samples(rollouts: Rollouts, action_space: gym.Space, n_samples: int = 256,
                     actions: str = "uniform", seed: int = 0) -> Coverage:
    """Independent draws of ``S ~ D_S``, ``A ~ D_A``, ``S' ~ D_S`` (see module doc)."""
    if actions not in ("uniform", "rollout"):
        raise ValueError(f"unknown coverage actions {actions!r}; choose 'uniform' or 'rollout'")
    rng = np.random.default_rng(seed)
    pool = np.concatenate([rollouts.obs, rollouts.next_obs])
    s2 = pool[rng.integers(len(pool), size=n_samples)]
    if actions == "rollout":
        a = rollouts.acts[rng.integers(len(rollouts), size=n_samples)]
    else:
        action_space.seed(int(rng.integers(2**31)))
        a = np.stack([np.asarray(action_space.sample(), np.float32) for _ in range(n_samples)])
    return Coverage(s2, a.astype(np.float32), s2)


def reward_on(model: RewardModel | Callable[[TransitionBatch], np.ndarray], obs: np.ndarray,
              acts: np.ndarray, next_obs: np.ndarray, terminated: np.ndarray | None = None,
              chunk: int = 65536) -> np.ndarray:
    """Rewards of ``model`` for arrays of transitions, in chunks (float64)."""
    n = len(acts)
    out = np.empty(n, np.float64)
    term = np.zeros(n, bool) if terminated is None else np.asarray(terminated, bool)
    for i in range(0, n, chunk):
        sl = slice(i, i + chunk)
        out[sl] = np.asarray(model(TransitionBatch.from_arrays(obs[sl], acts[sl], next_obs[sl],
                                                               term[sl])), np.float64)
    return out


__all__ = ["Coverage", "Rollouts", "collect_rollouts", "coverage_samples", "reward_on"]
