"""Per-stage success classifiers ``D_k(s)`` of DrS: one trunk, a logit per stage."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn


class StageClassifier(nn.Module):
    """``D_k(s)`` for every stage ``k``: an MLP on standardised features, ``K`` logits out.

    The standardisation is fixed once (:meth:`fit_scale`, from the demos or the first data)
    so that the reward does not drift with the agent's state distribution.
    """

    mean: torch.Tensor
    std: torch.Tensor
    trained: torch.Tensor
    scaled: torch.Tensor

    def __init__(self, in_dim: int, num_stages: int, hidden_sizes: Sequence[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for h in hidden_sizes:
            layers += [nn.Linear(d, int(h)), nn.LeakyReLU()]
            d = int(h)
        layers.append(nn.Linear(d, num_stages))
        self.net = nn.Sequential(*layers)
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        self.register_buffer("trained", torch.zeros(num_stages, dtype=torch.bool))
        self.register_buffer("scaled", torch.zeros((), dtype=torch.bool))

    def fit_scale(self, x: np.ndarray, min_std: float = 1e-2) -> None:
        """Set the standardisation from rows ``x`` (std floored at ``min_std``)."""
        t = torch.as_tensor(np.asarray(x, np.float32))
        self.mean.copy_(t.mean(0))
        self.std.copy_(t.std(0).clamp_min(min_std) if len(t) > 1 else torch.ones_like(t[0]))
        self.scaled.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, K)`` logits."""
        out: torch.Tensor = self.net((x - self.mean) / self.std)
        return out


__all__ = ["StageClassifier"]
