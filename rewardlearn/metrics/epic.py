"""EPIC: the Equivalent-Policy Invariant Comparison pseudometric (Gleave et al., 2021).

Canonicalisation (their Definition 4.1), with ``S, S' ~ D_S`` and ``A ~ D_A``
independent::

    C(R)(s, a, s') = R(s, a, s') + E[gamma R(s', A, S') - R(s, A, S') - gamma R(S, A, S')]

The expectations are estimated by sampling as in the authors' code
(``evaluating_rewards``'s ``sample_canon_shaping``): ``M`` pairs ``(A_j, S'_j)``
and ``M`` states ``S_k`` from :func:`~rewardlearn.metrics.sampling.coverage_samples`;
``E[R(x, A, S')]`` is the mean over the ``M`` pairs for each ``x`` in ``{s_i, s'_i}``,
and ``E[R(S, A, S')]`` the mean over the ``M x M`` grid of ``S_k`` with the pairs.
The same samples are used for every reward compared, so the canonicalisation
of ``R + gamma Phi(s') - Phi(s)`` equals that of ``R`` exactly (not only in
expectation), and any positive rescaling leaves the distance unchanged.

The distance is the Pearson distance ``sqrt((1 - rho) / 2)`` of the two
canonicalised rewards over the evaluation transitions ``(s_i, a_i, s'_i) ~ D``,
in ``[0, 1]``: 0 for equivalent rewards, 1 for a reward and its negation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rewardlearn.metrics.sampling import Coverage, reward_on
from rewardlearn.rewards.base import RewardModel, TransitionBatch

RewardFn = RewardModel | Callable[[TransitionBatch], np.ndarray]


@dataclass
class Transitions:
    """Evaluation transitions ``(s, a, s')`` from ``D`` (flat state observations)."""

    obs: np.ndarray
    acts: np.ndarray
    next_obs: np.ndarray

    def __len__(self) -> int:
        return len(self.acts)


def _mean_over_pairs(reward: RewardFn, states: np.ndarray, cov: Coverage) -> np.ndarray:
    """``E_j[R(x, A_j, S'_j)]`` for every row ``x`` of ``states`` (``(N,)``)."""
    n, m = len(states), len(cov.actions)
    obs = np.repeat(states, m, axis=0)
    acts = np.tile(cov.actions, (n,) + (1,) * (cov.actions.ndim - 1))
    nxt = np.tile(cov.next_states, (n,) + (1,) * (cov.next_states.ndim - 1))
    return reward_on(reward, obs, acts, nxt).reshape(n, m).mean(axis=1)


def epic_canonicalize(reward: RewardFn, transitions: Transitions, coverage: Coverage,
                      gamma: float) -> np.ndarray:
    """``C(R)`` at each evaluation transition (``(N,)`` float64); see the module doc."""
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    raw = reward_on(reward, transitions.obs, transitions.acts, transitions.next_obs)
    mean_next = _mean_over_pairs(reward, transitions.next_obs, coverage)
    mean_curr = _mean_over_pairs(reward, transitions.obs, coverage)
    mean_all = float(_mean_over_pairs(reward, coverage.states, coverage).mean())
    return raw + gamma * mean_next - mean_curr - gamma * mean_all


def pearson_distance(x: np.ndarray, y: np.ndarray) -> float:
    """``sqrt((1 - rho) / 2)``; a constant input (no ordering information) gives nan."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    xc, yc = x - x.mean(), y - y.mean()
    nx, ny = np.linalg.norm(xc), np.linalg.norm(yc)
    scale = max(np.abs(x).max(initial=0.0), np.abs(y).max(initial=0.0), 1e-300)
    if nx <= 1e-12 * scale * np.sqrt(len(x)) or ny <= 1e-12 * scale * np.sqrt(len(y)):
        return float("nan")
    rho = float(np.clip(np.dot(xc, yc) / (nx * ny), -1.0, 1.0))
    return float(np.sqrt((1.0 - rho) / 2.0))


def epic_distance(reward_a: RewardFn, reward_b: RewardFn, transitions: Transitions,
                  coverage: Coverage, gamma: float) -> float:
    """EPIC distance in ``[0, 1]`` between two rewards (same samples for both)."""
    ca = epic_canonicalize(reward_a, transitions, coverage, gamma)
    cb = epic_canonicalize(reward_b, transitions, coverage, gamma)
    return pearson_distance(ca, cb)


__all__ = ["RewardFn", "Transitions", "epic_canonicalize", "epic_distance", "pearson_distance"]
