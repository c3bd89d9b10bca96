"""How well one reward serves many users: per-user preference accuracy, VPL vs one BT.

A single Bradley-Terry reward fitted to everyone's pooled labels (what ``reward=preference``
learns from a crowd) must give every user the same answer on a pair; where users
disagree it is right for at most some of them. VPL infers each user's ``z`` from a few of
their labels and answers per user. :func:`user_accuracies` scores both on the same
held-out pairs, each labelled by every user; ``conflicting`` marks the pairs the users
disagree on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from rewardlearn.preference.modeling import RewardEnsemble, preference_logits, preference_loss

if TYPE_CHECKING:
    from rewardlearn.vpl.reward import VPLReward


def fit_bradley_terry(x1: np.ndarray, x2: np.ndarray, labels: np.ndarray,
                      hidden_sizes: tuple[int, ...] = (256, 256), epochs: int = 200,
                      lr: float = 1e-3, batch_size: int = 128, seed: int = 0
                      ) -> RewardEnsemble:
    """One Bradley-Terry reward (a one-member :class:`RewardEnsemble`) fitted to pairs
    ``(P, L, F)`` with labels ``(P,)`` (1: first preferred): every user's labels pooled."""
    x1t, x2t = torch.as_tensor(x1, dtype=torch.float32), torch.as_tensor(x2, dtype=torch.float32)
    y = torch.as_tensor(labels, dtype=torch.float32)
    ens = RewardEnsemble(x1t.shape[-1], 1, hidden_sizes, seed=seed)
    ens.norm.update(torch.cat([x1t, x2t]).reshape(-1, x1t.shape[-1]))
    opt = torch.optim.Adam(ens.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    ens.train()
    for _ in range(epochs):
        perm = rng.permutation(len(y))
        for s in range(0, len(perm), batch_size):
            idx = torch.as_tensor(perm[s:s + batch_size])
            loss = preference_loss(preference_logits(ens, x1t[idx], x2t[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    ens.eval()
    return ens


@torch.no_grad()
def bt_probabilities(ens: RewardEnsemble, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """``P(first preferred)`` ``(P,)`` under a Bradley-Terry ensemble (its members' mean)."""
    logits = preference_logits(ens, torch.as_tensor(x1, dtype=torch.float32),
                               torch.as_tensor(x2, dtype=torch.float32))
    return torch.sigmoid(logits).mean(0).numpy()


def conflicting(labels: np.ndarray) -> np.ndarray:
    """``(P,)`` pairs on which the users' decided labels ``(K, P)`` disagree."""
    lab = np.asarray(labels, np.float64)
    decided = lab != 0.5
    first = (lab == 1.0) & decided
    second = (lab == 0.0) & decided
    return first.any(0) & second.any(0)


def _accuracy(p: np.ndarray, labels: np.ndarray, mask: np.ndarray) -> float:
    keep = mask & (labels != 0.5)
    return float(((p > 0.5) == (labels > 0.5))[keep].mean()) if keep.any() else float("nan")


def user_accuracies(reward: VPLReward, context: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                    x1: np.ndarray, x2: np.ndarray, labels: np.ndarray,
                    bt: RewardEnsemble | None = None) -> dict[str, list[float]]:
    """Per-user accuracy on held-out pairs ``(P, L, F)`` labelled by every user
    (``labels`` ``(K, P)``), VPL's ``z`` for user ``k`` inferred from ``context[k]``
    (``(x1, x2, labels)`` of a few other pairs that user labelled).

    Returns ``vpl``, ``vpl_conflicting`` (on the pairs the users disagree on) and, with a
    Bradley-Terry reward ``bt`` fitted to the pooled labels (on the VPL model's columns,
    ``x[..., reward.columns]``), ``bt`` and ``bt_conflicting``: one value per user.
    """
    clash = conflicting(labels)
    everything = np.ones(len(x1), bool)
    out: dict[str, list[float]] = {"vpl": [], "vpl_conflicting": [], "bt": [],
                                   "bt_conflicting": []}
    cols = reward.columns
    p_bt = bt_probabilities(bt, x1[..., cols], x2[..., cols]) if bt is not None else None
    for k, (c1, c2, cy) in enumerate(context):
        mu, _ = reward.infer_latent(c1, c2, cy)
        p = reward.pair_probabilities(x1, x2, mu)
        out["vpl"].append(_accuracy(p, labels[k], everything))
        out["vpl_conflicting"].append(_accuracy(p, labels[k], clash))
        if p_bt is not None:
            out["bt"].append(_accuracy(p_bt, labels[k], everything))
            out["bt_conflicting"].append(_accuracy(p_bt, labels[k], clash))
    return {k: v for k, v in out.items() if v}


__all__ = ["bt_probabilities", "conflicting", "fit_bradley_terry", "user_accuracies"]
