"""Reference rewards ``R(s, a, s')`` to compare learned rewards against.

Reward distances query the reference at arbitrary ``(s, a, s')``, not only at
transitions the env produced, so ``reward=env`` (which echoes the env's reward
for real steps) cannot serve. :func:`reference_reward` returns:

* the env's reward function written out from observations, where it is a
  function of them (``Pendulum-v1``: exact), or
* a regression of the env's reward on ``(s, a, s')`` (an MLP fitted to rollout
  transitions), reporting its held-out R^2 so a poor fit is visible. MuJoCo
  locomotion rewards use the root's x position, which observations exclude,
  so only a regression approximates them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rewardlearn.metrics.sampling import Rollouts
from rewardlearn.rewards.base import RewardModel, RewardOutput, TransitionBatch
from rewardlearn.rewards.mlp import MLPReward


class PendulumReward(RewardModel):
    """``Pendulum-v1``'s reward from the observation before the step and the action."""

    name = "pendulum_true"

    def compute(self, batch: TransitionBatch) -> RewardOutput:
        obs = np.asarray(batch.obs, np.float64)
        theta = np.arctan2(obs[:, 1], obs[:, 0])
        u = np.clip(np.asarray(batch.acts, np.float64).reshape(len(batch), -1)[:, 0], -2.0, 2.0)
        return RewardOutput(-(theta**2 + 0.1 * obs[:, 2] ** 2 + 0.001 * u**2))


ANALYTIC: dict[str, type[RewardModel]] = {"Pendulum-v1": PendulumReward}


def fit_reward_regression(rollouts: Rollouts, observation_space: gym.Space,
                          action_space: gym.Space, epochs: int = 200, seed: int = 0,
                          heldout: float = 0.2) -> tuple[MLPReward, dict[str, Any]]:
    """An ``r(s, a, s')`` MLP fitted (MSE) to the rollouts' env rewards, and its fit report."""
    model = MLPReward(observation_space, action_space, hidden_sizes=(128, 128),
                      output_activation=None, use_next_obs=True, device="cpu", seed=seed)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(rollouts))
    n_test = max(1, int(heldout * len(perm)))
    test, train = perm[:n_test], perm[n_test:]
    model.fit_normalizer(rollouts.batch(train))
    x_train = model.inputs(rollouts.batch(train))
    y_train = torch.as_tensor(rollouts.env_rewards[train], dtype=torch.float32)
    y_mean, y_std = float(y_train.mean()), float(y_train.std()) or 1.0
    opt = torch.optim.Adam(model.net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for rows in torch.randperm(len(train), generator=gen).split(256):
            loss = torch.nn.functional.mse_loss(model.forward(x_train[rows]),
                                                (y_train[rows] - y_mean) / y_std)
            opt.zero_grad()
            loss.backward()
            opt.step()
    # fold the target standardisation into the last layer
    with torch.no_grad():
        last = model.net[-1]
        assert isinstance(last, torch.nn.Linear)
        last.weight.mul_(y_std)
        last.bias.mul_(y_std).add_(y_mean)
    pred = np.asarray(model(rollouts.batch(test)), np.float64)
    true = rollouts.env_rewards[test]
    r2 = 1.0 - float(np.sum((pred - true) ** 2) / max(np.sum((true - true.mean()) ** 2), 1e-12))
    return model, {"kind": "regression", "heldout_r2": r2, "train_transitions": len(train)}


def check_regressable(observation_space: gym.Space) -> None:
    """Refuse image observations for the env-reward regression, naming the alternatives."""
    if isinstance(observation_space, gym.spaces.Box) and observation_space.dtype == np.uint8:
        raise ValueError(
            f"reference=env fits the env's reward on state observations, but this env observes "
            f"images {observation_space}; compare with a saved reward instead "
            "(reference=<reward_model.pt>), or evaluate with obs_mode=state")


def reference_reward(env_id: str, rollouts: Rollouts, observation_space: gym.Space,
                     action_space: gym.Space, regression_epochs: int = 200,
                     seed: int = 0) -> tuple[RewardModel, dict[str, Any]]:
    """The env's reward as a function of ``(s, a, s')`` (see the module doc) and how it was got.

    Image observations (pixel-observation envs) are refused: the regression is an
    MLP on state vectors.
    """
    if env_id in ANALYTIC:
        return ANALYTIC[env_id](observation_space, action_space), {"kind": "analytic"}
    check_regressable(observation_space)
    return fit_reward_regression(rollouts, observation_space, action_space,
                                 regression_epochs, seed)


class Shaped:
    """``scale * (R + gamma Phi(s') - Phi(s)) + shift`` of a reward ``R`` (see :func:`shaped`).

    Reads frames exactly when ``R`` does (``needs_frames``/``frame_size`` are ``R``'s),
    so the metrics pass it the same frames.
    """

    def __init__(self, reward: Callable[[TransitionBatch], np.ndarray],
                 potential: Callable[[Any], np.ndarray], gamma: float, scale: float = 1.0,
                 shift: float = 0.0) -> None:
        self.reward, self.potential = reward, potential
        self.gamma, self.scale, self.shift = float(gamma), float(scale), float(shift)
        self.needs_frames = bool(getattr(reward, "needs_frames", False))
        self.frame_size = getattr(reward, "frame_size", (224, 224))
        self.name = f"shaped({getattr(reward, 'name', 'reward')})"

    def __call__(self, batch: TransitionBatch) -> np.ndarray:
        base = np.asarray(self.reward(batch), np.float64)
        term = (self.gamma * np.asarray(self.potential(batch.next_obs), np.float64)
                - np.asarray(self.potential(batch.obs), np.float64))
        return self.scale * (base + term) + self.shift


def shaped(reward: Callable[[TransitionBatch], np.ndarray], potential: Callable[[Any], np.ndarray],
           gamma: float, scale: float = 1.0, shift: float = 0.0) -> Shaped:
    """``scale * (R + gamma Phi(s') - Phi(s)) + shift``: equivalent to ``R`` for ``scale > 0``
    up to the constant ``shift`` (which EPIC/STARC also remove)."""
    return Shaped(reward, potential, gamma, scale, shift)


__all__ = ["ANALYTIC", "PendulumReward", "Shaped", "check_regressable", "fit_reward_regression",
           "reference_reward", "shaped"]
