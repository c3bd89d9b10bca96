"""STARC distances (Skalse et al., ICLR 2024): canonicalise, normalise, then measure.

``d(R1, R2) = 0.5 * m(s(R1), s(R2))`` with ``s(R) = c(R) / n(c(R))`` (``s(R) = c(R)``
when ``n(c(R)) = 0``), the paper's recipe with its factor 0.5 so the distance
lies in ``[0, 1]``.

The variant implemented here:

* ``c`` is the EPIC canonicalisation (:func:`~rewardlearn.metrics.epic.epic_canonicalize`,
  same coverage samples). STARC's value-adjusted levelling needs the value function
  of a reference policy under the true dynamics, which is exact for small tabular MDPs
  but for continuous control would need a fitted value per reward; the EPIC
  canonicalisation needs only reward queries, is one of the canonicalisations the
  paper admits, and removes exactly potential shaping and constant shifts.
* ``n`` is the L2 norm under the evaluation distribution ``D`` estimated by the
  root mean square over the evaluation transitions (the paper's continuous
  experiments estimate norms by sampling too), and ``m`` the same L2 norm of the
  difference. Any positive rescaling of ``R`` then cancels, and
  ``0.5 * ||u - v||`` with ``||u|| = ||v|| = 1`` lies in ``[0, 1]``: 1 for ``R`` vs ``-R``.

With these choices STARC differs from EPIC only in not centring the canonicalised
rewards before comparing them (EPIC's Pearson distance is
``0.5 * ||u - v||`` of the *centred* normalised vectors); both are pseudometrics
on the sampled transitions.
"""

from __future__ import annotations

import numpy as np

from rewardlearn.metrics.epic import RewardFn, Transitions, epic_canonicalize
from rewardlearn.metrics.sampling import Coverage


def l2_norm(x: np.ndarray) -> float:
    """RMS of ``x``: the L2 norm under the empirical evaluation distribution."""
    x = np.asarray(x, np.float64)
    return float(np.sqrt(np.mean(x * x))) if len(x) else 0.0


def standardise(canonical: np.ndarray, rtol: float = 1e-12) -> np.ndarray:
    """``c / n(c)``, or ``c`` unchanged where its norm is zero (a trivial reward)."""
    c = np.asarray(canonical, np.float64)
    norm = l2_norm(c)
    scale = max(float(np.abs(c).max(initial=0.0)), 1e-300)
    return c if norm <= rtol * scale else c / norm


def starc_from_canonical(ca: np.ndarray, cb: np.ndarray) -> float:
    """``0.5 * ||s(a) - s(b)||_2`` of two canonicalised reward vectors."""
    return 0.5 * l2_norm(standardise(ca) - standardise(cb))


def starc_distance(reward_a: RewardFn, reward_b: RewardFn, transitions: Transitions,
                   coverage: Coverage, gamma: float) -> float:
    """STARC distance in ``[0, 1]`` (EPIC canonicalisation, L2 norm, L2 metric)."""
    ca = epic_canonicalize(reward_a, transitions, coverage, gamma)
    cb = epic_canonicalize(reward_b, transitions, coverage, gamma)
    return starc_from_canonical(ca, cb)


__all__ = ["l2_norm", "standardise", "starc_distance", "starc_from_canonical"]
