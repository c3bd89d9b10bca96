"""Unsupervised step discovery and per-step feature selection (Sermanet et al. 2016).

Sequences are ``(T, D)`` feature arrays, one per demo (lengths may differ).
A split of a sequence into ``k`` ordered steps is its ``k + 1`` cut indices
``[0, b_1, ..., b_{k-1}, T]``: frame ``t`` is in step ``i`` when
``b_i <= t < b_{i+1}``.

Example:
    >>> import numpy as np
    >>> from rewardlearn.perceptual.steps import segment_sequence
    >>> x = np.repeat(np.array([[0.0], [5.0], [9.0]]), [4, 3, 5], axis=0)
    >>> segment_sequence(x, 3).tolist()
    [0, 4, 7, 12]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


def standardize_stats(sequences: Sequence[np.ndarray], eps: float = 1e-6
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std over every frame of every sequence (std floored at ``eps``)."""
    allx = np.concatenate([np.asarray(s, dtype=np.float64) for s in sequences])
    return allx.mean(0), np.maximum(allx.std(0), eps)


def pca_basis(sequences: Sequence[np.ndarray], dim: int) -> np.ndarray:
    """``(D, dim)`` top principal directions of the (centred) frames."""
    allx = np.concatenate(sequences)
    allx = allx - allx.mean(0)
    _, _, vt = np.linalg.svd(allx, full_matrices=False)
    return vt[:dim].T


def segment_costs(x: np.ndarray) -> np.ndarray:
    """``C[i, j]``: sum of squared deviations from the mean of frames ``i..j-1`` (``i < j``)."""
    x = np.asarray(x, dtype=np.float64)
    t = len(x)
    s1 = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, 0)])
    s2 = np.concatenate([[0.0], np.cumsum((x * x).sum(1))])
    costs = np.full((t + 1, t + 1), np.inf)
    for i in range(t):
        n = np.arange(1, t - i + 1, dtype=np.float64)
        d1 = s1[i + 1:] - s1[i]
        costs[i, i + 1:] = (s2[i + 1:] - s2[i]) - (d1 * d1).sum(1) / n
    return np.maximum(costs, 0.0)


def _dp_split(seg_cost: Callable[[int, np.ndarray, int], np.ndarray], k: int, t: int,
              min_len: int) -> tuple[np.ndarray, float]:
    """Cuts of ``t`` frames into ``k`` segments minimising the summed segment costs.

    ``seg_cost(s, i, j)`` is the cost of frames ``i..j-1`` (an array of starts ``i``) as
    segment ``s`` (0-based).
    """
    if k * min_len > t:
        raise ValueError(f"cannot split {t} frames into {k} steps of at least {min_len} frames")
    best = np.full((k + 1, t + 1), np.inf)
    arg = np.zeros((k + 1, t + 1), dtype=np.int64)
    best[0, 0] = 0.0
    for s in range(1, k + 1):
        for j in range(s * min_len, t + 1):
            i = np.arange((s - 1) * min_len, j - min_len + 1)
            total = best[s - 1, i] + seg_cost(s - 1, i, j)
            m = int(np.argmin(total))
            best[s, j], arg[s, j] = total[m], i[m]
    cuts = [t]
    for s in range(k, 0, -1):
        cuts.append(int(arg[s, cuts[-1]]))
    return np.asarray(cuts[::-1], dtype=np.int64), float(best[k, t])


def _split_with_costs(costs: np.ndarray, k: int, min_len: int) -> tuple[np.ndarray, float]:
    """Optimal split for a segment-cost matrix ``costs[i, j]`` (any step)."""
    return _dp_split(lambda _s, i, j: costs[i, j], k, costs.shape[0] - 1, min_len)


def segment_sequence(x: np.ndarray, k: int, min_len: int = 1) -> np.ndarray:
    """Exact split of one sequence into ``k`` steps minimising the within-step variance."""
    return _split_with_costs(segment_costs(x), k, min_len)[0]


def align_to_means(x: np.ndarray, means: np.ndarray, min_len: int = 1) -> tuple[np.ndarray, float]:
    """Monotone split of ``x`` whose step ``i`` is closest to ``means[i]`` (cuts, cost)."""
    x = np.asarray(x, dtype=np.float64)
    d = ((x[:, None, :] - means[None]) ** 2).sum(-1)          # (T, k)
    prefix = np.concatenate([np.zeros((1, len(means))), np.cumsum(d, 0)])
    return _dp_split(lambda s, i, j: prefix[j, s] - prefix[i, s], len(means), len(x), min_len)


def step_labels(cuts: np.ndarray, length: int | None = None) -> np.ndarray:
    """Per-frame step index of a split."""
    cuts = np.asarray(cuts)
    n = int(cuts[-1]) if length is None else length
    return np.searchsorted(cuts[1:-1], np.arange(n), side="right")


def step_means(sequences: Sequence[np.ndarray], splits: Sequence[np.ndarray], k: int
               ) -> np.ndarray:
    """``(k, D)`` mean feature of each step over every sequence."""
    sums = np.zeros((k, sequences[0].shape[1]))
    counts = np.zeros(k)
    for x, cuts in zip(sequences, splits, strict=True):
        lab = step_labels(cuts, len(x))
        np.add.at(sums, lab, x)
        np.add.at(counts, lab, 1)
    return sums / np.maximum(counts, 1)[:, None]


@dataclass
class StepSplit:
    """Result of :func:`discover_steps`: per-sequence cuts, the objective, the means."""

    k: int
    splits: list[np.ndarray]
    cost: float
    means: np.ndarray


def discover_steps(sequences: Sequence[np.ndarray], k: int, min_len: int = 1,
                   joint_iters: int = 10) -> StepSplit:
    """Split every sequence into ``k`` ordered steps with minimal within-step variance.

    Each sequence is first split on its own (exact DP); then ``joint_iters`` rounds
    re-align every sequence to the step means shared across sequences, so that step
    ``i`` means the same thing in every demo. The objective is the total squared
    distance of frames to their step's mean; a round that does not lower it stops.
    """
    seqs = [np.asarray(s, dtype=np.float64) for s in sequences]
    splits = [segment_sequence(x, k, min_len) for x in seqs]
    means = step_means(seqs, splits, k)
    cost = _total_cost(seqs, splits, means)
    for _ in range(joint_iters):
        new = [align_to_means(x, means, min_len)[0] for x in seqs]
        new_means = step_means(seqs, new, k)
        new_cost = _total_cost(seqs, new, new_means)
        if new_cost >= cost - 1e-9:
            break
        splits, means, cost = new, new_means, new_cost
    return StepSplit(k, splits, cost, means)


def _total_cost(seqs: Sequence[np.ndarray], splits: Sequence[np.ndarray], means: np.ndarray
                ) -> float:
    return float(sum(((x - means[step_labels(c, len(x))]) ** 2).sum()
                     for x, c in zip(seqs, splits, strict=True)))


def choose_k(sequences: Sequence[np.ndarray], k_min: int, k_max: int, threshold: float,
             min_len: int = 1) -> tuple[int, list[float]]:
    """Smallest ``k`` after which one more step explains less than ``threshold`` of the variance.

    ``J(k)`` is the summed per-sequence optimal within-step squared deviation, ``J(1)``
    the total variance; returns ``k`` and the curve ``J(k) / J(1)`` for ``k = 1..k_max+1``
    (as far as the shortest sequence allows).
    """
    seqs = [np.asarray(s, dtype=np.float64) for s in sequences]
    costs = [segment_costs(x) for x in seqs]
    k_cap = min(k_max + 1, min(len(x) for x in seqs) // min_len)
    if k_cap < max(k_min, 1):
        raise ValueError(f"the shortest demo ({min(len(x) for x in seqs)} frames) is too short "
                         f"for {k_min} steps of at least {min_len} frames")
    curve = [sum(_split_with_costs(c, k, min_len)[1] for c in costs) for k in range(1, k_cap + 1)]
    total = max(curve[0], 1e-12)
    ratio = [c / total for c in curve]
    for k in range(k_min, k_cap):
        if ratio[k - 1] - ratio[k] < threshold:
            return k, ratio
    return min(k_max, k_cap), ratio


def select_features(inside: np.ndarray, outside: np.ndarray, m: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The ``m`` most discriminative features of a step, and every feature's score.

    Score of feature ``d``: ``|mean_in - mean_out| / (std_in + std_out)``, a z-score-like
    separation of the in-step frames from the other frames.
    """
    if len(inside) == 0:
        raise ValueError("a step without frames has no features to select")
    gap = np.abs(inside.mean(0) - (outside.mean(0) if len(outside) else 0.0))
    spread = inside.std(0) + (outside.std(0) if len(outside) else 0.0) + 1e-6
    score = gap / spread
    order = np.argsort(-score, kind="stable")
    return np.sort(order[:min(m, len(score))]), score


def boundaries_from_stages(stages: np.ndarray, n_stages: int) -> np.ndarray:
    """Cuts of the true stage labels: ``b_i`` = first frame whose stage is ``>= i``."""
    stages = np.asarray(stages)
    t = len(stages)
    run = np.maximum.accumulate(stages)
    cuts = [0]
    for i in range(1, n_stages):
        hit = np.flatnonzero(run >= i)
        cuts.append(int(hit[0]) if len(hit) else t)
    cuts.append(t)
    return np.asarray(cuts, dtype=np.int64)


def boundary_error(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean absolute frame error of the inner cuts (same number of steps)."""
    pred, true = np.asarray(pred), np.asarray(true)
    if len(pred) != len(true):
        raise ValueError(f"{len(pred) - 1} discovered steps vs {len(true) - 1} true stages")
    if len(pred) <= 2:
        return 0.0
    return float(np.abs(pred[1:-1] - true[1:-1]).mean())


__all__ = [
    "StepSplit",
    "align_to_means",
    "boundaries_from_stages",
    "boundary_error",
    "choose_k",
    "discover_steps",
    "pca_basis",
    "segment_costs",
    "segment_sequence",
    "select_features",
    "standardize_stats",
    "step_labels",
    "step_means",
]
