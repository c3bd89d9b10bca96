"""Robust reward learning (RRL, PEARL): each step's reward is a Gaussian, not a number.

Transferred labels are noisy, so the reward models ``r(x) ~ N(mu(x), sigma(x)^2)`` and
trains through samples (the reparameterisation ``r = mu + sigma * eps``, ``eps ~ N(0,
1)``) with the Bradley-Terry loss on the (soft) labels,

    L_BT = -w [z log sigmoid(R_1 - R_2) + (1 - z) log sigmoid(R_2 - R_1)],
    R = sum_t (mu(x_t) + sigma(x_t) eps_t),

plus a regulariser pulling ``sigma`` towards a preset ``sigma_0``,

    L_sigma = KL(N(mu, sigma^2) || N(mu, sigma_0^2)) = log(sigma_0 / sigma)
              + sigma^2 / (2 sigma_0^2) - 1/2,

which is 0 at ``sigma = sigma_0`` and grows on either side (without it ``sigma`` would
shrink to 0 on clean labels and the model would be plain Bradley-Terry). The agent's
reward is ``mu``. The exact RRL loss is not confirmed (REFERENCE.md 10.3); this is the
form the reviews of its predecessor describe.

Example:
    >>> import torch
    >>> sigma_regularizer(torch.log(torch.tensor([0.1, 0.2])), 0.1).tolist()[0]
    0.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from rewardlearn.rewards.mlp import RunningNorm

LOG_SIGMA_RANGE = (-7.0, 3.0)


class GaussianReward(nn.Module):
    """``(mu(x), log sigma(x))`` per step from an MLP over standardised features.

    Args:
        in_dim: per-step feature width.
        hidden_sizes: hidden widths (LeakyReLU).
        seed: initialisation seed.
    """

    norm: RunningNorm

    def __init__(self, in_dim: int, hidden_sizes: Sequence[int] = (256, 256),
                 seed: int | None = 0) -> None:
        super().__init__()
        if seed is not None:
            torch.manual_seed(seed)
        self.norm = RunningNorm(in_dim)
        layers: list[nn.Module] = []
        d = in_dim
        for h in hidden_sizes:
            layers += [nn.Linear(d, int(h)), nn.LeakyReLU()]
            d = int(h)
        layers.append(nn.Linear(d, 2))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(self.norm(x))
        return out[..., 0], out[..., 1].clamp(*LOG_SIGMA_RANGE)


def sample_rewards(mu: torch.Tensor, log_sigma: torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """``mu + sigma * eps``, ``eps ~ N(0, 1)``: a reparameterised sample (gradients reach
    both ``mu`` and ``sigma``)."""
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(log_sigma) * eps


def sigma_regularizer(log_sigma: torch.Tensor, sigma0: float) -> torch.Tensor:
    """``KL(N(mu, sigma^2) || N(mu, sigma_0^2)) = log(sigma_0 / sigma) + sigma^2 /
    (2 sigma_0^2) - 1/2``, elementwise."""
    return (math.log(sigma0) - log_sigma + torch.exp(2.0 * log_sigma) / (2.0 * sigma0 ** 2)
            - 0.5)


def robust_loss(model: GaussianReward, batch: dict[str, torch.Tensor], sigma0: float,
                sigma_weight: float, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, dict[str, float]]:
    """``L_BT + sigma_weight * L_sigma`` (module docstring) of a batch: ``x1``, ``x2``
    ``(B, L, F)``, ``m1``, ``m2`` ``(B, L)`` real-step masks, ``labels`` ``(B,)`` in
    ``[0, 1]``, ``weights`` ``(B,)``."""
    returns = []
    reg = []
    for side in ("1", "2"):
        mu, log_sigma = model(batch["x" + side])
        mask = batch["m" + side]
        returns.append((sample_rewards(mu, log_sigma, generator) * mask).sum(-1))
        reg.append((sigma_regularizer(log_sigma, sigma0) * mask).sum() / mask.sum().clamp(min=1))
    logits = returns[0] - returns[1]
    bt = (F.binary_cross_entropy_with_logits(logits, batch["labels"], reduction="none")
          * batch["weights"]).sum() / batch["weights"].sum().clamp(min=1e-8)
    reg_term = 0.5 * (reg[0] + reg[1])
    loss = bt + sigma_weight * reg_term
    return loss, {"loss": float(loss.detach()), "bt": float(bt.detach()),
                  "sigma_reg": float(reg_term.detach())}


__all__ = ["GaussianReward", "robust_loss", "sample_rewards", "sigma_regularizer"]
