"""Reward-aligned behaviour cloning (RA-BC) weights from a progress model (SARM).

Each demo sample ``(o_t, a_t)`` is weighted by its progress gain
``r_t = phi(o_{t+d}) - phi(o_t)`` (``d`` = ``horizon``, clipped at the last frame):
weight 1 when ``r_t > kappa``, the soft weight
``clip((r_t - (mu - 2 sigma)) / (4 sigma), 0, 1)`` when ``0 <= r_t <= kappa``, and
0 when ``r_t < 0``; ``mu`` and ``sigma`` are the mean and std of ``r`` over the
whole dataset (RA-BC of SARM, Chen et al. 2025, with ``kappa = 0.01``).

Example:
    >>> import numpy as np
    >>> from rewardlearn.progress.rabc import rabc_weights
    >>> w = rabc_weights([np.array([0.0, 0.5, 0.5, 0.4, 0.9])], horizon=1, kappa=0.01)
    >>> np.round(w[0], 3).tolist()   # gains 0.5, 0, -0.1, 0.5 (mu 0.225, sigma 0.277)
    [1.0, 0.297, 0.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def progress_gains(progress: Sequence[np.ndarray], horizon: int = 1) -> list[np.ndarray]:
    """Per episode, ``phi(o_{min(t + d, T)}) - phi(o_t)`` for ``t = 0..T-1`` (``T`` actions)."""
    if horizon < 1:
        raise ValueError("horizon must be >= 1")
    out = []
    for p in progress:
        p = np.asarray(p, dtype=np.float64).reshape(-1)
        n = len(p) - 1
        ahead = p[np.minimum(np.arange(n) + horizon, n)]
        out.append(ahead - p[:n])
    return out


def rabc_weights(progress: Sequence[np.ndarray], horizon: int = 1, kappa: float = 0.01
                 ) -> list[np.ndarray]:
    """RA-BC weights per demo sample, from the predicted progress of each demo's frames.

    Args:
        progress: per episode, predicted progress of its ``T + 1`` observations.
        horizon: ``d``, how many steps ahead the gain is measured (the action chunk).
        kappa: gains above it get weight 1.
    """
    gains = progress_gains(progress, horizon)
    flat = np.concatenate(gains) if gains else np.zeros(0)
    mu = float(flat.mean()) if len(flat) else 0.0
    sigma = float(flat.std()) if len(flat) else 0.0
    sigma = max(sigma, 1e-8)
    out = []
    for r in gains:
        soft = np.clip((r - (mu - 2.0 * sigma)) / (4.0 * sigma), 0.0, 1.0)
        w = np.where(r > kappa, 1.0, np.where(r >= 0.0, soft, 0.0))
        out.append(w)
    return out


__all__ = ["progress_gains", "rabc_weights"]
