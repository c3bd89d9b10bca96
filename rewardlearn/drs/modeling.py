"""Per-stage success classifiers ``D_k(s)`` of DrS."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU}
"""Hidden-layer activations by name (``reward.model.activation``)."""


def _linear(d_in: int, d_out: int, lipschitz: bool) -> nn.Module:
    layer = nn.Linear(d_in, d_out)
    return nn.utils.parametrizations.spectral_norm(layer) if lipschitz else layer


def _mlp(in_dim: int, hidden_sizes: Sequence[int], out_dim: int, activation: str,
         lipschitz: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden_sizes:
        layers += [_linear(d, int(h), lipschitz), ACTIVATIONS[activation]()]
        d = int(h)
    layers.append(_linear(d, out_dim, lipschitz))
    return nn.Sequential(*layers)


class StageClassifier(nn.Module):
    """``D_k(s)`` for every stage ``k``: ``K`` logits from the flat state.

    ``shared=True`` (the default) gives one trunk with a logit per stage; ``shared=False``
    (as published: Mu et al. 2024's code has one net per stage, ``Linear(d, 32) -> Sigmoid
    -> Linear(32, 1)``) each stage its own MLP. Inputs are ``(x - mean) / std``; with
    ``standardize`` off both stay 0 and 1 (raw states, as published), otherwise they are
    fixed once (:meth:`fit_scale`, from the demos or the first data) so that the reward
    does not drift with the agent's state distribution.

    ``lipschitz=L`` bounds every logit's slope: each linear layer is spectrally normalised
    (Miyato et al., ICLR 2018; every activation here is at most 1-Lipschitz) and the output
    scaled by ``L``, so ``|D_k(x) - D_k(y)| <= L * ||z(x) - z(y)||`` for the standardised
    states ``z``. A classifier trained to certainty can then not fall from +1 to -1 within
    a few centimetres of the demos' path; its score ramps over ``~2 / L`` standard
    deviations of the states, the region where the agent is (Lipschitz discriminators for
    adversarial imitation: Blondé et al., Machine Learning 2022). Spectral norm's power
    iteration runs in training mode only: scoring runs the net in ``eval()`` mode.

    Example:
        >>> net = StageClassifier(5, 3, [32], activation="sigmoid", shared=False)
        >>> tuple(net(torch.zeros(4, 5)).shape)
        (4, 3)
    """

    mean: torch.Tensor
    std: torch.Tensor
    trained: torch.Tensor
    scaled: torch.Tensor

    def __init__(self, in_dim: int, num_stages: int, hidden_sizes: Sequence[int],
                 activation: str = "leaky_relu", shared: bool = True,
                 lipschitz: float | None = None) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, "
                             f"got {activation!r}")
        if lipschitz is not None and not lipschitz > 0:
            raise ValueError(f"lipschitz must be > 0 or None, got {lipschitz}")
        self.shared = bool(shared)
        self.lipschitz = lipschitz
        sn = lipschitz is not None
        if self.shared:
            self.net: nn.Module = _mlp(in_dim, hidden_sizes, num_stages, activation, sn)
        else:
            self.net = nn.ModuleList(_mlp(in_dim, hidden_sizes, 1, activation, sn)
                                     for _ in range(num_stages))
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

    def _standardize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, K)`` logits."""
        z = self._standardize(x)
        if self.shared:
            out: torch.Tensor = self.net(z)
        else:
            assert isinstance(self.net, nn.ModuleList)
            out = torch.cat([head(z) for head in self.net], dim=1)
        return out * self.lipschitz if self.lipschitz is not None else out

    def stage_logit(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """``(B,)`` logits of stage ``k`` alone (with separate nets, only ``k``'s runs, so
        training one stage leaves the others' weights untouched)."""
        if self.shared:
            return self(x)[:, k]
        assert isinstance(self.net, nn.ModuleList)
        out: torch.Tensor = self.net[k](self._standardize(x))[:, 0]
        return out * self.lipschitz if self.lipschitz is not None else out


__all__ = ["ACTIVATIONS", "StageClassifier"]
