"""Observation and reward normalisation for the agent (SB3's ``VecNormalize``), deferrable.

PPO on returns of hundreds to thousands (Meta-World's dense reward pays up to 10 per step
over 500 steps) fits its value function slowly: SB3's rl-zoo normalises rewards by a
running standard deviation of the discounted return (``VecNormalize(norm_reward=True)``).
:class:`AgentNormalize` is that wrapper, placed *above* the reward wrapper so the agent sees
every reward (the env's or a learned one) on one scale, with one addition: when the
learned rewards of a rollout are computed at its end (``reward_timing=rollout``,
:class:`~rewardlearn.wrappers.vec.DeferredRewardCallback`), the return statistics are fed
that rollout's rewards at its end (:meth:`AgentNormalize.update_rollout`) instead of the
placeholders ``step`` returned, and the rewards written into the rollout buffer are
scaled by the same factor (:func:`normalized_delta`). Saved as a plain ``VecNormalize``
(``vecnormalize.pkl``), so SB3 and rl-zoo load it as they load their own.

Example:
    >>> import numpy as np
    >>> from stable_baselines3.common.env_util import make_vec_env
    >>> venv = AgentNormalize(make_vec_env("Pendulum-v1", n_envs=2, seed=0), norm_obs=True,
    ...                       norm_reward=True, defer_rewards=True)
    >>> _ = venv.reset()
    >>> _ = venv.step(np.zeros((2, 1), np.float32))
    >>> venv.ret_rms.count  # nothing learned from a placeholder reward
    0.0001
    >>> venv.update_rollout(np.full((1, 2), -5.0, np.float32))
    >>> round(float(venv.ret_rms.count), 4)
    2.0001
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn


class AgentNormalize(VecNormalize):
    """``VecNormalize`` whose reward statistics can come from a rollout's deferred rewards.

    Args:
        venv: the (reward-wrapped) vector env.
        norm_obs, norm_reward, gamma: as ``VecNormalize``.
        defer_rewards: the rewards ``step`` returns are placeholders completed at the
            rollout's end; the return statistics are then updated by :meth:`update_rollout`.
    """

    def __init__(self, venv: VecEnv, norm_obs: bool = True, norm_reward: bool = False,
                 gamma: float = 0.99, defer_rewards: bool = False) -> None:
        super().__init__(venv, norm_obs=norm_obs, norm_reward=norm_reward, gamma=gamma)
        self.defer_rewards = bool(defer_rewards)
        self._deferred_returns = np.zeros(self.num_envs)
        self._rollout_dones: list[np.ndarray] = []

    def _update_reward(self, reward: np.ndarray) -> None:
        if not self.defer_rewards:
            super()._update_reward(reward)

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = super().step_wait()
        if self.defer_rewards and self.training:
            self._rollout_dones.append(np.asarray(dones, bool).copy())
        return obs, rewards, dones, infos

    def update_rollout(self, rewards: np.ndarray, dones: np.ndarray | None = None) -> None:
        """Feed the return statistics the rollout's final rewards ``(T, n_envs)`` (raw, as
        the agent would have had them step by step), with the episode ends ``step`` saw.
        ``dones`` (``(T, n_envs)``): the oldest ``T`` steps only (an off-policy agent's
        flush), with their episode ends."""
        rewards = np.asarray(rewards, np.float64)
        if dones is not None:
            self._rollout_dones = self._rollout_dones[len(rewards):]
            dones_list = list(np.asarray(dones, bool).reshape(len(rewards), -1))
        else:
            dones_list, self._rollout_dones = self._rollout_dones, []
        if not self.training or not self.norm_reward:
            return
        if len(dones_list) != len(rewards):
            dones_list = [np.zeros(self.num_envs, bool)] * len(rewards)
        for r, d in zip(rewards, dones_list, strict=True):
            self._deferred_returns = self._deferred_returns * self.gamma + r
            self.ret_rms.update(self._deferred_returns)
            self._deferred_returns[d] = 0.0

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        for key in ("defer_rewards", "_deferred_returns", "_rollout_dones"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.defer_rewards = False
        self._rollout_dones = []

    def set_venv(self, venv: VecEnv) -> None:
        super().set_venv(venv)
        self._deferred_returns = np.zeros(self.num_envs)

    def save(self, save_path: str) -> None:
        """Pickle the statistics as a plain ``VecNormalize`` (loads without rewardlearn)."""
        plain = VecNormalize.__new__(VecNormalize)
        plain.__setstate__(self.__getstate__())
        plain.class_attributes = {}
        plain.returns = np.zeros(self.num_envs)
        with open(save_path, "wb") as f:
            pickle.dump(plain, f)


def reward_normalizer(agent: BaseAlgorithm) -> VecNormalize | None:
    """The agent's ``VecNormalize`` when it normalises rewards, else ``None``."""
    norm = agent.get_vec_normalize_env()
    return norm if norm is not None and norm.norm_reward else None


def normalized_delta(agent: BaseAlgorithm, total: np.ndarray, returned: np.ndarray
                     ) -> np.ndarray:
    """What to add to a rollout buffer's rewards so they hold ``total`` instead of the
    ``returned`` ones ``step`` gave (both raw, ``(T, n_envs)``), on the agent's reward
    scale; the statistics are then updated with ``total`` (deferred rewards)."""
    norm = reward_normalizer(agent)
    if norm is None:
        return np.asarray(total - returned, np.float32)
    delta = norm.normalize_reward(np.asarray(total)) - norm.normalize_reward(np.asarray(returned))
    if isinstance(norm, AgentNormalize):
        norm.update_rollout(total)
    return delta.astype(np.float32)


def scaled_change(agent: BaseAlgorithm, change: np.ndarray) -> np.ndarray:
    """A change of raw rewards (a relabelled rollout) on the agent's reward scale."""
    norm = reward_normalizer(agent)
    if norm is None:
        return np.asarray(change, np.float32)
    return (np.asarray(change) / np.sqrt(norm.ret_rms.var + norm.epsilon)).astype(np.float32)


__all__ = ["AgentNormalize", "normalized_delta", "reward_normalizer", "scaled_change"]
