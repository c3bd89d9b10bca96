"""PPO policies whose Gaussian mean stays inside the action bounds (``agent.mean_bound``).

SB3's PPO samples ``a ~ N(mu(s), sigma)`` and clips ``a`` to the Box bounds, with ``mu``
unbounded. Once ``mu`` runs past a bound, the samples beyond it all act the same, so their
advantages carry no gradient back, and a threshold action (a gripper or suction command
that switches at 0) is never sampled on the other side again: measured on ``pick_place``
with ``reward=drs``, every failing run held the cube with a suction mean of 2.0-4.0
(std 0.4-0.7, so release odds ~0 per step) and clamping that mean to [-1, 1] at evaluation
alone took them from 0 to 8-10 successes in 20 episodes (``bench/results/drs.md``).
Chou et al. (ICML 2017, the Beta policy) name the same bias; rl_games/IsaacGym's PPO adds a
bound loss on ``mu`` for it. Here the mean is squashed softly instead::

    mu = c + m * h * tanh((raw - c) / (m * h))       c, h: the Box's centre and half-width

so ``|mu - c| < m * h`` always (``m = mean_bound``; 1: inside the bounds) while the noise,
the log-probabilities and the clipping are SB3's own. A squash alone lets ``raw`` run deep
into ``tanh``'s flat tail, where the mean sits at the bound with no gradient left to move
it (measured: a run whose place-stage suction mean sat at +1.00 released only by noise,
95% stochastic success, 0% deterministic); training therefore also minimises
``0.5 * relu(|z| - 1)^2`` per component, ``z = (raw - c) / (m * h)`` (rl_games' bound loss).

Example:
    >>> import gymnasium as gym, torch
    >>> from stable_baselines3 import PPO
    >>> env = gym.make("Pendulum-v1")
    >>> agent = PPO(BoundedMeanPolicy, env, policy_kwargs={"mean_bound": 1.0}, n_steps=64)
    >>> mu = agent.policy.get_distribution(torch.full((1, 3), 50.0)).distribution.mean
    >>> bool((mu.abs() < 2.0).all())                    # Pendulum's torque is in [-2, 2]
    True
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.policies import (
    ActorCriticCnnPolicy,
    ActorCriticPolicy,
    MultiInputActorCriticPolicy,
)
from torch import nn


class BoundedMean(nn.Module):
    """``c + m h tanh((net(x) - c) / (m h))``: the wrapped layer's output kept in ``c +- m h``."""

    def __init__(self, net: nn.Module, low: np.ndarray, high: np.ndarray, bound: float) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("centre", torch.as_tensor((high + low) / 2.0, dtype=torch.float32))
        self.register_buffer("radius",
                             torch.as_tensor(bound * (high - low) / 2.0, dtype=torch.float32))

    centre: torch.Tensor
    radius: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (self.net(x) - self.centre) / self.radius
        if z.requires_grad:
            z.register_hook(_pull_inside(z.detach()))
        return self.centre + self.radius * torch.tanh(z)


def _pull_inside(z: torch.Tensor) -> Any:
    """Gradient hook adding ``d/dz`` of ``mean_batch(sum 0.5 relu(|z| - 1)^2)``: the raw
    output is pulled back to ``|z| <= 1``, where ``tanh`` still passes at least 42% of the
    gradient, so a mean held at a bound can still be moved off it by the policy loss (the
    bound loss of rl_games' PPO, applied before the squash)."""
    push = torch.sign(z) * torch.relu(z.abs() - 1.0) / max(1, z.shape[0])
    return lambda grad: grad + push


def check_mean_bound(bound: float, action_space: gym.Space) -> None:
    """Refuse a bound that is not positive, or an action space it cannot apply to."""
    if not np.isfinite(bound) or bound <= 0:
        raise ValueError(f"agent.mean_bound must be a positive number (1.0: the mean stays "
                         f"inside the action bounds), got {bound}")
    if not isinstance(action_space, gym.spaces.Box) or not action_space.is_bounded():
        raise ValueError(f"agent.mean_bound needs a bounded Box action space; this env's is "
                         f"{action_space}: set agent.mean_bound=null")


class _BoundedMeanMixin:
    """Wraps ``action_net`` in :class:`BoundedMean` after SB3 builds it."""

    action_space: gym.Space
    action_net: nn.Module

    def __init__(self, *args: Any, mean_bound: float = 1.0, **kwargs: Any) -> None:
        self.mean_bound = float(mean_bound)
        check_mean_bound(self.mean_bound, args[1] if len(args) > 1 else kwargs["action_space"])
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)  # type: ignore[misc]
        space = self.action_space
        assert isinstance(space, gym.spaces.Box)
        # the optimizer already holds action_net's parameters; wrapping keeps the same tensors
        self.action_net = BoundedMean(self.action_net, space.low.astype(np.float64),
                                      space.high.astype(np.float64), self.mean_bound)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data: dict[str, Any] = super()._get_constructor_parameters()  # type: ignore[misc]
        data["mean_bound"] = self.mean_bound
        return data


class BoundedMeanPolicy(_BoundedMeanMixin, ActorCriticPolicy):
    """``MlpPolicy`` with the Gaussian mean kept inside the action bounds."""


class BoundedMeanCnnPolicy(_BoundedMeanMixin, ActorCriticCnnPolicy):
    """``CnnPolicy`` with the Gaussian mean kept inside the action bounds."""


class BoundedMeanMultiInputPolicy(_BoundedMeanMixin, MultiInputActorCriticPolicy):
    """``MultiInputPolicy`` with the Gaussian mean kept inside the action bounds."""


BOUNDED_POLICIES: dict[str, type[ActorCriticPolicy]] = {
    "MlpPolicy": BoundedMeanPolicy,
    "CnnPolicy": BoundedMeanCnnPolicy,
    "MultiInputPolicy": BoundedMeanMultiInputPolicy,
}
"""SB3's policy names and their bounded-mean counterparts."""


__all__ = ["BOUNDED_POLICIES", "BoundedMean", "BoundedMeanCnnPolicy",
           "BoundedMeanMultiInputPolicy", "BoundedMeanPolicy", "check_mean_bound"]
