"""``reward=mlp``: a state-based MLP reward network ``r(s, a[, s', done])``.

The building block of learned state-based rewards (the preference ensemble
trains members of this shape), and a cheap learned reward to measure wrapper
overhead with. Inputs are standardised with stored running statistics; the
output can be squashed with ``tanh`` as in PEBBLE.

Example:
    >>> import gymnasium as gym, numpy as np
    >>> from rewardlearn.rewards.mlp import MLPReward
    >>> from rewardlearn.rewards.base import TransitionBatch
    >>> env = gym.make("Pendulum-v1")
    >>> m = MLPReward(env.observation_space, env.action_space, hidden_sizes=(32, 32))
    >>> b = TransitionBatch.from_arrays(np.zeros((5, 3)), np.zeros((5, 1)), np.zeros((5, 3)))
    >>> m(b).shape
    (5,)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import torch
from torch import nn

from rewardlearn.rewards.base import RewardModel, RewardOutput, TransitionBatch
from rewardlearn.rewards.features import TransitionFeatures
from rewardlearn.settings import RewardModelConfig, positive_widths
from rewardlearn.utils import resolve_device

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "silu": nn.SiLU,
}


def check_hidden_sizes(hidden_sizes: Sequence[int], name: str = "hidden_sizes") -> None:
    """Refuse layer widths that are not positive integers, in one line."""
    if not positive_widths(list(hidden_sizes)):
        raise ValueError(f"{name} must be positive layer widths, got {list(hidden_sizes)}")


def build_mlp(
    in_dim: int,
    hidden_sizes: Sequence[int],
    activation: str = "leaky_relu",
    output_activation: str | None = None,
) -> nn.Sequential:
    """MLP ``in_dim -> hidden... -> 1`` with an optional output squashing."""
    if activation not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose from {sorted(_ACTIVATIONS)}")
    check_hidden_sizes(hidden_sizes)
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden_sizes:
        layers += [nn.Linear(d, int(h)), _ACTIVATIONS[activation]()]
        d = int(h)
    layers.append(nn.Linear(d, 1))
    if output_activation is not None:
        if output_activation not in _ACTIVATIONS:
            raise ValueError(
                f"unknown output_activation {output_activation!r}; "
                f"choose from {sorted(_ACTIVATIONS)}"
            )
        layers.append(_ACTIVATIONS[output_activation]())
    return nn.Sequential(*layers)


class RunningNorm(nn.Module):
    """Feature standardisation with running mean/variance kept as buffers."""

    mean: torch.Tensor
    var: torch.Tensor
    count: torch.Tensor

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("count", torch.tensor(0.0))
        self.eps = eps

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Fold a batch ``(N, dim)`` into the statistics (Chan et al.)."""
        n = float(x.shape[0])
        if n == 0:
            return
        b_mean, b_var = x.mean(0), x.var(0, unbiased=False)
        total = self.count + n
        delta = b_mean - self.mean
        self.mean += delta * n / total
        self.var = (self.var * self.count + b_var * n + delta**2 * self.count * n / total) / total
        self.count = total

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if float(self.count) == 0.0:
            return x
        return (x - self.mean) / torch.sqrt(self.var + self.eps)


@RewardModelConfig.register_subclass("mlp")
@dataclass
class MLPConfig(RewardModelConfig):
    """Settings of ``reward=mlp``.

    :param hidden_sizes: hidden layer widths (PEBBLE: 3 x 256).
    :param activation: hidden activation name.
    :param output_activation: ``tanh`` bounds rewards to [-1, 1]; ``None`` leaves them free.
    :param use_action: the action is an input.
    :param use_next_obs: ``s'`` is an input.
    :param use_done: the termination flag is an input.
    :param normalize_inputs: standardise inputs with running statistics.
    :param device: ``auto`` (CUDA when present), ``cpu``, ``cuda``...
    :param seed: initialisation seed.
    """

    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256, 256])
    activation: str = "leaky_relu"
    output_activation: str | None = "tanh"
    use_action: bool = True
    use_next_obs: bool = False
    use_done: bool = False
    normalize_inputs: bool = True
    device: str = "auto"
    seed: int | None = 0

    def checks(self) -> list[tuple[bool, str]]:
        return [(positive_widths(self.hidden_sizes), "hidden_sizes must be positive layer widths"),
                (self.activation in _ACTIVATIONS, f"activation must be one of "
                 f"{sorted(_ACTIVATIONS)}"),
                (self.output_activation is None or self.output_activation in _ACTIVATIONS,
                 f"output_activation must be null or one of {sorted(_ACTIVATIONS)}")]


class MLPReward(RewardModel):
    """MLP reward over state features (an untrained one, or trained by a method that
    builds models of this shape).

    Args:
        observation_space, action_space: the env's spaces (checked on load).
        config: the :class:`MLPConfig`, or **kwargs: its fields.
    """

    name = "mlp"
    settings_class = MLPConfig

    def __init__(self, observation_space: gym.Space, action_space: gym.Space,
                 config: MLPConfig | None = None, **kwargs: Any) -> None:
        super().__init__(observation_space, action_space)
        self.cfg = cfg = MLPConfig.build(config, **kwargs)
        self.features = TransitionFeatures(observation_space, action_space, True,
                                           cfg.use_action, cfg.use_next_obs, cfg.use_done)
        self.device = resolve_device(cfg.device)
        if cfg.seed is not None:
            torch.manual_seed(cfg.seed)
        self.norm = RunningNorm(self.features.dim).to(self.device)
        self.normalize_inputs = cfg.normalize_inputs
        self.net = build_mlp(self.features.dim, cfg.hidden_sizes, cfg.activation,
                             cfg.output_activation).to(self.device)

    def inputs(self, batch: TransitionBatch) -> torch.Tensor:
        """Raw (unnormalised) input features of a batch, on the model's device."""
        return self.features(batch.obs, batch.acts, batch.next_obs, batch.terminated).to(
            self.device
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rewards ``(N,)`` for raw features ``(N, D)`` (differentiable)."""
        if self.normalize_inputs:
            x = self.norm(x)
        return self.net(x).squeeze(-1)

    @torch.no_grad()
    def compute(self, batch: TransitionBatch) -> RewardOutput:
        return RewardOutput(self.forward(self.inputs(batch)).float().cpu().numpy())

    def state_dict(self) -> dict[str, Any]:
        return {
            "net": {k: v.cpu() for k, v in self.net.state_dict().items()},
            "norm": {k: v.cpu() for k, v in self.norm.state_dict().items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.norm.load_state_dict(state["norm"])

    def fit_normalizer(self, batch: TransitionBatch) -> None:
        """Fold a batch of transitions into the input statistics."""
        self.norm.update(self.inputs(batch))


__all__ = ["MLPReward", "RunningNorm", "build_mlp"]
