"""Active queries for a new user: the pairs whose answers most reduce the uncertainty in ``z``.

VPL §4.2 picks the query set ``Q`` that maximises the mutual information between the
user's latent and their answers, ``I(z; y_Q) = H(z) - E_{y ~ p(y_Q)}[H(z | y_Q)]``, with
the Gaussian posterior of the encoder, ``H(z | y_Q) = 1/2 sum_d log(2 pi e sigma_d^2(Q,
y))``, and every label assignment ``y in {0, 1}^|Q|`` enumerated. The answers' marginal
is estimated with ``M`` prior samples,
``p(y_Q) = 1/M sum_m prod_i sigmoid(+-(R(A_i, z_m) - R(B_i, z_m)))``. With the prior
``H(z) = d/2 log(2 pi e)`` fixed, the best set has the smallest expected posterior
entropy. :func:`select_queries` builds the set greedily, one pair at a time (``2^q``
assignments for a set of ``q``; ``q <= 10``).

Example:
    >>> import numpy as np
    >>> label_assignments(2).tolist()
    [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
    >>> round(mutual_information(np.zeros((4, 1)), np.zeros((2, 3))), 6)  # no information
    0.0
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from rewardlearn.vpl.reward import VPLReward

MAX_QUERIES = 10
"""Largest query set (``2^10`` label assignments are enumerated)."""


def label_assignments(q: int) -> np.ndarray:
    """``(2^q, q)`` every 0/1 labelling of ``q`` pairs (1: first preferred)."""
    grid = (np.arange(2 ** q)[:, None] >> np.arange(q - 1, -1, -1)[None, :]) & 1
    return grid.astype(np.float32)


def gaussian_entropy(logvar: np.ndarray) -> np.ndarray:
    """Entropy of ``N(mu, diag(exp(logvar)))``: ``1/2 sum_d (log(2 pi e) + logvar_d)``."""
    logvar = np.asarray(logvar, np.float64)
    return 0.5 * (logvar.shape[-1] * math.log(2 * math.pi * math.e) + logvar.sum(-1))


def mutual_information(delta: np.ndarray, logvar: np.ndarray) -> float:
    """``I(z; y_Q)`` of one query set (module docstring).

    Args:
        delta: ``(M, q)`` ``R(A_i, z_m) - R(B_i, z_m)`` for ``M`` prior samples ``z_m``.
        logvar: ``(2^q, d)`` posterior ``log sigma^2`` for each assignment of
            :func:`label_assignments` ``(q)``, in that order.
    """
    delta = np.asarray(delta, np.float64)
    y = label_assignments(delta.shape[1]).astype(np.float64)
    sign = 2.0 * y - 1.0  # (2^q, q)
    # log p(y | z_m) = sum_i log sigmoid(sign_i * delta_mi): (2^q, M)
    logp = -np.logaddexp(0.0, -(sign[:, None, :] * delta[None, :, :])).sum(-1)
    p_y = np.exp(logp).mean(1)
    prior = gaussian_entropy(np.zeros((1, np.shape(logvar)[-1])))[0]
    return float(prior - (p_y * gaussian_entropy(logvar)).sum())


@torch.no_grad()
def select_queries(reward: VPLReward, x1: np.ndarray, x2: np.ndarray, n_queries: int,
                   n_samples: int = 256, seed: int = 0) -> tuple[np.ndarray, list[float]]:
    """Indices of ``n_queries`` candidate pairs to ask a new user, chosen greedily by the
    mutual information of the growing set, and that information after each pick.

    ``x1``, ``x2``: ``(C, L, [s, a, s'])`` candidate pairs (full-length segments).
    """
    if not 1 <= n_queries <= min(MAX_QUERIES, len(x1)):
        raise ValueError(f"n_queries must be in [1, {min(MAX_QUERIES, len(x1))}], got "
                         f"{n_queries}")
    model, device = reward.model, reward.device
    cols = torch.as_tensor(reward.columns, device=device)
    a = torch.as_tensor(np.asarray(x1, np.float32), device=device)[..., cols]
    b = torch.as_tensor(np.asarray(x2, np.float32), device=device)[..., cols]
    ones = torch.ones(a.shape[:2], device=device)
    diff = model.segment_embedding(a, ones) - model.segment_embedding(b, ones)  # (C, E)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    z = torch.randn((n_samples, reward.cfg.latent_dim), generator=gen, device=device)
    delta = torch.stack([
        (model.rewards(a[None, c], z[:, None, :]).sum(-1)
         - model.rewards(b[None, c], z[:, None, :]).sum(-1)) for c in range(len(a))
    ], dim=1).cpu().numpy()  # (M, C)
    chosen: list[int] = []
    gains: list[float] = []
    for _ in range(n_queries):
        q = len(chosen) + 1
        y = torch.as_tensor(label_assignments(q), device=device)  # (2^q, q)
        best, best_mi = -1, -math.inf
        for c in range(len(a)):
            if c in chosen:
                continue
            idx = [*chosen, c]
            d = diff[idx][None].expand(len(y), q, diff.shape[-1])
            _, logvar = model.encode_differences(d, y, torch.ones_like(y))
            mi = mutual_information(delta[:, idx], logvar.cpu().numpy())
            if mi > best_mi:
                best, best_mi = c, mi
        chosen.append(best)
        gains.append(best_mi)
    return np.asarray(chosen, np.int64), gains


__all__ = ["MAX_QUERIES", "gaussian_entropy", "label_assignments", "mutual_information",
           "select_queries"]
