"""Reward ensemble and preference models (Bradley-Terry and regret).

The ensemble holds ``E`` MLPs ``r_e(x)`` over the same per-step features,
behind one input standardiser. A pair of segments ``(sigma_1, sigma_2)`` is
compared through logits ``z = score(sigma_1) - score(sigma_2)``:

* Bradley-Terry (Christiano et al. 2017): ``score = sum_t r(x_t)``, so
  ``P(sigma_1 > sigma_2) = sigmoid(z)``, the two-way softmax of the returns.
* Regret (Knox et al. 2024): ``score = -regret = sum_t r(x_t) + V(s_L) - V(s_0)``
  with a learned state value ``V`` per member, ``s_L`` the state reached after
  the segment's last action (the last transition's ``next_obs``) and
  ``V(s_L) = 0`` when that step terminated (not when it was truncated). The
  true model uses the optimal value; a value head trained jointly on the
  preferences is the practical approximation. Without ``s_L`` (labels saved
  before it was kept, or ``regret_end_state=last_obs``) the value is taken at
  the last observed state instead.

Absorbing steps (segments padded after a termination, see
:mod:`rewardlearn.preference.buffer`) score a learned per-member constant
``a_e`` (:attr:`RewardEnsemble.absorbing`) instead of ``r(x)``: the comparison
then pins the level of ``r`` against "being dead", which Bradley-Terry on
equal-length living segments cannot see (a constant offset cancels).

Labels are soft targets: ``1`` first preferred, ``0`` second, ``0.5`` equal.

Example:
    >>> import torch
    >>> from rewardlearn.preference.modeling import RewardEnsemble, preference_logits
    >>> ens = RewardEnsemble(in_dim=3, n_members=2, hidden_sizes=(8,), seed=0)
    >>> x1, x2 = torch.zeros(4, 5, 3), torch.ones(4, 5, 3)
    >>> preference_logits(ens, x1, x2).shape   # (members, pairs)
    torch.Size([2, 4])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from rewardlearn.rewards.mlp import RunningNorm, build_mlp

PREFERENCE_MODELS = ("bradley_terry", "regret")


class RewardEnsemble(nn.Module):
    """``n_members`` reward MLPs (and, for the regret model, value MLPs) with shared input norm.

    Args:
        in_dim: per-step feature width.
        n_members: ensemble size (PEBBLE: 3).
        hidden_sizes, activation, output_activation: member MLP shape (PEBBLE:
            3 x 256, LeakyReLU, tanh; the default output here is linear, see
            :class:`~rewardlearn.preference.configuration.PreferenceConfig`).
        value_dim: width of the state part of the features (the first
            ``value_dim`` columns) for the regret model's value heads; ``0`` = none.
        seed: initialisation seed.
    """

    norm: RunningNorm

    def __init__(
        self,
        in_dim: int,
        n_members: int = 3,
        hidden_sizes: Sequence[int] = (256, 256, 256),
        activation: str = "leaky_relu",
        output_activation: str | None = None,
        value_dim: int = 0,
        seed: int | None = 0,
    ) -> None:
        super().__init__()
        if n_members < 1:
            raise ValueError(f"ensemble size must be >= 1, got {n_members}")
        if seed is not None:
            torch.manual_seed(seed)
        self.in_dim = in_dim
        self.value_dim = value_dim
        self.norm = RunningNorm(in_dim)
        self.members = nn.ModuleList(
            [build_mlp(in_dim, hidden_sizes, activation, output_activation)
             for _ in range(n_members)]
        )
        self.values = nn.ModuleList(
            [build_mlp(value_dim, hidden_sizes, activation, None) for _ in range(n_members)]
            if value_dim > 0 else []
        )
        #: reward of an absorbing step (after a termination), one per member
        self.absorbing = nn.Parameter(torch.zeros(n_members))
        self._stacked: tuple[tuple[tuple[int, int], ...], list[Any]] | None = None
        self._watched: list[torch.Tensor] | None = None

    @property
    def n_members(self) -> int:
        return len(self.members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-member rewards ``(E, *batch)`` for raw features ``(*batch, D)``."""
        z = self.norm(x)
        return torch.stack([m(z).squeeze(-1) for m in self.members])

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` for inference, with every layer one batched matmul for all members.

        For a few rows per call (a preference run asks once per env step with ``n_envs``
        rows) the members' ``Linear`` weights run stacked as ``(E, in, out)`` tensors, one
        ``torch.baddbmm`` per layer, with the input standardisation folded into the first
        layer; elementwise layers run once on the stacked activations. About 2-3x faster
        than :meth:`forward`'s ``E`` module calls at one row
        (``bench/results/preference_inference.md``); above :attr:`STACKED_MAX_ROWS` rows
        the separate calls are faster and are used. The stack is rebuilt when a weight or
        the input statistics change (training steps, :meth:`RunningNorm.update` and
        ``load_state_dict`` write tensors in place, which bumps their version counters).
        Members whose layers are not ``Linear`` or parameter-free use :meth:`forward`.
        """
        if x.numel() > self.STACKED_MAX_ROWS * x.shape[-1]:
            return self.forward(x)
        layers = self._stacked_layers()
        if layers is None:
            return self.forward(x)
        lead = x.shape[:-1]
        h = x.reshape(1, -1, x.shape[-1]).expand(self.n_members, -1, -1)
        for layer in layers:
            h = torch.baddbmm(layer[1], h, layer[0]) if isinstance(layer, tuple) else layer(h)
        return h.reshape(self.n_members, *lead)

    #: :meth:`predict` stacks the members up to this many rows per call
    STACKED_MAX_ROWS = 32

    def _stacked_layers(self) -> list[Any] | None:
        if self._watched is None:
            self._watched = [p for m in self.members for p in m.parameters()]
            self._stacked = None
        # the norm's buffers are read afresh: RunningNorm.update replaces var and count
        norm = (self.norm.mean, self.norm.var, self.norm.count)
        key = tuple((t.data_ptr(), t._version) for t in (*self._watched, *norm))
        if self._stacked is not None and self._stacked[0] == key:
            return self._stacked[1]
        layers: list[Any] = []
        for group in zip(*(list(m.children()) for m in self.members), strict=True):
            first = group[0]
            if isinstance(first, nn.Linear) and first.bias is not None:
                weight = torch.stack([g.weight.detach().t() for g in group])
                bias = torch.stack([g.bias.detach() for g in group])[:, None, :]
                if not layers and float(self.norm.count) > 0.0:
                    # fold (x - mean) / sqrt(var + eps) into the first layer
                    inv = torch.rsqrt(self.norm.var + self.norm.eps)
                    bias = bias - (self.norm.mean * inv)[None, None, :] @ weight
                    weight = weight * inv[None, :, None]
                layers.append((weight.contiguous(), bias.contiguous()))
            elif next(first.parameters(), None) is None and all(
                    type(g) is type(first) and repr(g) == repr(first) for g in group):
                layers.append(first)
            else:
                return None
        self._stacked = (key, layers)
        return layers

    def member_reward(self, e: int, x: torch.Tensor) -> torch.Tensor:
        """Rewards of member ``e`` only (training one member at a time)."""
        return self.members[e](self.norm(x)).squeeze(-1)

    def member_value(self, e: int, x: torch.Tensor) -> torch.Tensor:
        """State value of member ``e`` from the state columns of features ``x``."""
        z = self.norm(x)[..., : self.value_dim]
        return self.values[e](z).squeeze(-1)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        """Load weights; state dicts saved before absorbing steps existed get ``a_e = 0``."""
        state = dict(state_dict)
        state.setdefault("absorbing", torch.zeros(self.n_members))
        self._watched = None  # assign=True swaps the tensors predict() watches
        return super().load_state_dict(state, strict=strict, assign=assign)


def segment_scores(
    ens: RewardEnsemble,
    e: int,
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    terminated: torch.Tensor | None = None,
    model: str = "bradley_terry",
    absorbing: torch.Tensor | None = None,
    next_x: torch.Tensor | None = None,
) -> torch.Tensor:
    """Score of each segment under member ``e``: return (BT) or negative regret.

    Args:
        x: ``(N, L, D)`` features; ``mask`` ``(N, L)`` marks the real steps (padding
            of shorter pairs and absorbing steps are 0).
        terminated: ``(N, L)`` bool, read at the last real step (``V(s_L) = 0``).
        absorbing: ``(N, L)`` 0/1, absorbing steps, each worth ``ens.absorbing[e]``.
        next_x: ``(N, D)`` feature rows whose state columns hold ``s_L``, the state after
            the last real step's action (regret only; ``None``: the last observed state).
    """
    r = ens.member_reward(e, x).float()  # sums in float32 under bf16 autocast
    if mask is not None:
        r = r * mask
    score = r.sum(-1)
    if absorbing is not None:
        score = score + ens.absorbing[e] * absorbing.float().sum(-1)
    if model == "regret":
        v = ens.member_value(e, x).float()  # (N, L)
        if mask is None:
            last = torch.full((v.shape[0],), v.shape[1] - 1, dtype=torch.long, device=v.device)
        else:
            last = (mask.sum(-1).long() - 1).clamp(min=0)
        if next_x is not None:
            v_end = ens.member_value(e, next_x).float()
        else:
            v_end = v.gather(1, last[:, None]).squeeze(1)
        if terminated is not None:
            ended = terminated.gather(1, last[:, None]).squeeze(1)
            v_end = torch.where(ended, torch.zeros_like(v_end), v_end)
        score = score + v_end - v[:, 0]
    elif model != "bradley_terry":
        raise ValueError(f"unknown preference model {model!r}; choose from {PREFERENCE_MODELS}")
    return score


def preference_logits(
    ens: RewardEnsemble,
    x1: torch.Tensor,
    x2: torch.Tensor,
    model: str = "bradley_terry",
    mask: torch.Tensor | None = None,
    term1: torch.Tensor | None = None,
    term2: torch.Tensor | None = None,
    absorbing1: torch.Tensor | None = None,
    absorbing2: torch.Tensor | None = None,
    next1: torch.Tensor | None = None,
    next2: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(E, N)`` logits of ``P(first preferred)`` for ``N`` segment pairs ``(N, L, D)``.

    With absorbing steps, ``mask`` is taken per side as ``1 - absorbing``.
    """
    m1 = mask if absorbing1 is None else (1.0 - absorbing1.float()) * (1 if mask is None else mask)
    m2 = mask if absorbing2 is None else (1.0 - absorbing2.float()) * (1 if mask is None else mask)
    return torch.stack([
        segment_scores(ens, e, x1, m1, term1, model, absorbing1, next1)
        - segment_scores(ens, e, x2, m2, term2, model, absorbing2, next2)
        for e in range(ens.n_members)
    ])


def preference_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``sigmoid(logits)`` against soft labels (0, 0.5 or 1)."""
    return F.binary_cross_entropy_with_logits(logits, labels.expand_as(logits))


def preference_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of non-equal labels whose preferred side has the larger score (ensemble mean)."""
    decided = labels != 0.5
    if not bool(decided.any()):
        return float("nan")
    pred = (logits.mean(0) > 0).float()
    return float((pred[decided] == labels[decided]).float().mean())


