"""ADS's progress recognizer: how far along the demos the agent's episodes get.

Liu et al., "Imitation Learning from Observation with Automatic Discount Scheduling",
ICLR 2024 (arXiv 2310.07433; code ``dwjshift/IL_ADS``, ``IL/modules/ads.py``). For a cost
matrix ``C`` between an episode and a demo and a prefix length ``k``::

    m_i = argmin_{j<k} C_ij   (i < k)          score(C, k) = LIS(m)

(the longest strictly increasing subsequence: how many of the first ``k`` steps are matched
with the demo in order). ``ref(k)`` is the median score over ordered pairs of distinct
demos; the agent's score the 90th percentile over (episode, demo) pairs; ``k`` grows by one
while the agent's score is ``>= floor(0.9 * ref(k))``, at most 5 times per update, and the
discount is ``gamma = alpha ** (1 / k)``.

Example:
    >>> lis_length([3, 1, 2, 1, 4])
    3
    >>> round(discount(0.2, 10) ** 10, 12)
    0.2
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rewardlearn.ot.modeling import pairwise_cost


def lis_length(seq: Sequence[int] | np.ndarray) -> int:
    """Length of the longest strictly increasing subsequence (patience sorting)."""
    tails: list[int] = []
    for x in np.asarray(seq).tolist():
        pos = bisect.bisect_left(tails, x)
        if pos == len(tails):
            tails.append(x)
        else:
            tails[pos] = x
    return len(tails)


def prefix_argmin(cost: np.ndarray) -> np.ndarray:
    """``A[i, k-1] = argmin_{j<k} cost[i, j]`` (first index on ties) for every prefix ``k``."""
    c = np.asarray(cost, np.float64)
    run = np.minimum.accumulate(c, axis=1)
    new = np.ones_like(c, dtype=bool)
    new[:, 1:] = c[:, 1:] < run[:, :-1]
    idx = np.where(new, np.arange(c.shape[1])[None, :], 0)
    return np.maximum.accumulate(idx, axis=1)


def progress_score(cost: np.ndarray, k: int) -> int:
    """``LIS(m)`` with ``m_i = argmin_{j<k} C_ij`` for ``i < k`` (rows beyond the episode's
    length are left out)."""
    c = np.asarray(cost)[:k, :k]
    if c.size == 0:
        return 0
    return lis_length(c.argmin(1))


def prefix_scores(cost: np.ndarray) -> np.ndarray:
    """``score(C, k)`` for every ``k = 1..min(n, m)`` at once (``out[k-1]``): a patience
    sort per prefix, the binary searches vectorised over the prefixes."""
    a = prefix_argmin(cost)
    kmax = min(a.shape)
    if kmax == 0:
        return np.zeros(0, np.int64)
    big = np.iinfo(np.int64).max
    tails = np.full((kmax, kmax + 1), big, np.int64)  # row k-1: the tails of prefix k
    lengths = np.zeros(kmax, np.int64)
    for i in range(kmax):  # position i of every prefix k > i
        rows = np.arange(i, kmax)
        x = a[i, rows]  # m_i for prefix k = rows + 1
        lo = np.zeros(len(rows), np.int64)
        hi = lengths[rows].copy()
        active = lo < hi
        while active.any():  # bisect_left in each row's tails
            mid = (lo + hi) // 2
            less = tails[rows, mid] < x
            lo = np.where(active & less, mid + 1, lo)
            hi = np.where(active & ~less, mid, hi)
            active = lo < hi
        tails[rows, lo] = x
        lengths[rows] = np.maximum(lengths[rows], lo + 1)
    return lengths


def discount(alpha: float, k: int) -> float:
    """``gamma = alpha ** (1 / k)`` (``gamma ** k = alpha``)."""
    return float(math.exp(math.log(alpha) / max(int(k), 1)))


@dataclass
class ProgressRecognizer:
    """The recognised progress ``k`` and the reference curve of a set of demos.

    Args:
        demos: each demo's feature rows ``(T_d, D)`` (standardised states).
        horizon: the episode horizon ``H``; ``k`` starts at ``max(1, floor(start * H))`` and
            never exceeds ``H`` nor the longest prefix two demos share.
        pad: hold each demo at its last row up to the longest demo's length, so ``ref(k)``
            is the median over *every* pair of demos at every ``k``. Without it, demos that
            end at success (of different lengths) leave ``ref(k)`` past the shortest one to
            the few longest, whose pairs may match badly: on sweep-into-v3's 10 scripted
            demos (47-63 steps) ``ref`` rises to 22 at ``k = 50`` and falls to 6 at
            ``k = 60`` (2 pairs left), and ``k`` then runs to the horizon. The paper's demos
            are full fixed-length episodes, in which a finished expert holds its goal.
    """

    demos: Sequence[np.ndarray]
    horizon: int
    alpha: float = 0.2
    start: float = 0.2
    threshold: float = 0.9
    max_increments: int = 5
    ref_percentile: float = 50.0
    agent_percentile: float = 90.0
    metric: str = "euclidean"
    pad: bool = True
    k: int = field(init=False)
    reference: np.ndarray = field(init=False)
    """``reference[k-1] = ref(k)``."""

    def __post_init__(self) -> None:
        if len(self.demos) < 2:
            raise ValueError(f"the progress recognizer compares pairs of demos: it needs at "
                             f"least 2, got {len(self.demos)}")
        self.demos = [np.asarray(d, np.float64) for d in self.demos]
        if self.pad:
            n = max(len(d) for d in self.demos)
            self.demos = [d if len(d) == n or len(d) == 0 else
                          np.concatenate([d, np.repeat(d[-1:], n - len(d), 0)])
                          for d in self.demos]
        curves: list[np.ndarray] = []
        for p, first in enumerate(self.demos):
            for q, second in enumerate(self.demos):
                if p != q:
                    curves.append(prefix_scores(pairwise_cost(first, second, self.metric)))
        longest = max(len(c) for c in curves)
        ref = np.zeros(longest)
        for k in range(1, longest + 1):
            at_k = [c[k - 1] for c in curves if len(c) >= k]
            ref[k - 1] = float(np.percentile(at_k, self.ref_percentile))
        self.reference = ref
        self.horizon = int(min(self.horizon, longest))
        self.k = max(1, min(self.horizon, math.floor(self.start * self.horizon)))

    @property
    def gamma(self) -> float:
        """The current discount ``alpha ** (1 / k)``."""
        return discount(self.alpha, self.k)

    def agent_score(self, costs: Sequence[np.ndarray], k: int) -> float:
        """The ``agent_percentile`` of ``score(C, k)`` over the (episode, demo) matrices."""
        return float(np.percentile([progress_score(c, k) for c in costs],
                                   self.agent_percentile))

    def costs(self, episodes: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Cost matrices of each episode against each demo, cut to the prefixes an update
        can reach (``k + max_increments``)."""
        cut = self.k + self.max_increments
        return [pairwise_cost(np.asarray(ep, np.float64)[:cut], demo[:cut], self.metric)
                for ep in episodes for demo in self.demos]

    def update(self, episodes: Sequence[np.ndarray]) -> dict[str, float]:
        """One update from the agent's episodes (feature rows): ``k += 1`` while the agent's
        score reaches ``floor(threshold * ref(k))``, at most ``max_increments`` times.
        Returns ``k``, ``gamma``, and the last agent and reference scores compared."""
        if not episodes:
            raise ValueError("an update needs at least one agent episode")
        costs = self.costs(episodes)
        start = self.k
        agent = ref = 0.0
        for _ in range(self.max_increments):
            agent = self.agent_score(costs, self.k)
            ref = float(self.reference[self.k - 1])
            if self.k >= self.horizon or agent < math.floor(self.threshold * ref):
                break
            self.k += 1
        return {"k": float(self.k), "gamma": self.gamma, "agent_score": agent,
                "reference_score": ref, "increments": float(self.k - start)}


__all__ = ["ProgressRecognizer", "discount", "lis_length", "prefix_argmin", "prefix_scores",
           "progress_score"]
