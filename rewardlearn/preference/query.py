"""Query selection: which candidate segment pairs to ask the teacher about.

B-Pref's six "feed types": ``uniform``; ``disagreement`` (top by the ensemble's
std of ``P(first preferred)``); ``entropy`` (top by the binary entropy of the
mean ``P``); ``kcenter`` (greedy coverage of pair features, counting pairs
already labelled as covered); and the hybrids ``kcenter_disagreement`` /
``kcenter_entropy`` (pre-select the top ``n * hybrid_factor`` by the
uncertainty score, then k-center among them).

Example:
    >>> import numpy as np
    >>> from rewardlearn.preference.query import select_queries
    >>> probs = np.array([[0.5, 0.9, 0.1, 0.5], [0.5, 0.1, 0.9, 0.5]])  # (members, candidates)
    >>> select_queries("disagreement", 2, 4, probs=probs).tolist()
    [1, 2]
"""

from __future__ import annotations

import numpy as np

QUERY_METHODS = (
    "uniform",
    "disagreement",
    "entropy",
    "kcenter",
    "kcenter_disagreement",
    "kcenter_entropy",
)


def disagreement_scores(probs: np.ndarray) -> np.ndarray:
    """Std across members of ``P(first preferred)``: ``(E, M) -> (M,)``."""
    return np.asarray(probs).std(axis=0)


def entropy_scores(probs: np.ndarray) -> np.ndarray:
    """Binary entropy of the members' mean ``P``: ``(E, M) -> (M,)``."""
    p = np.clip(np.asarray(probs).mean(axis=0), 1e-7, 1 - 1e-7)
    return np.asarray(-(p * np.log(p) + (1 - p) * np.log(1 - p)))


def kcenter_greedy(points: np.ndarray, n: int, centers: np.ndarray | None = None) -> np.ndarray:
    """Indices of ``n`` points chosen greedily to maximise the distance to the nearest center.

    ``centers`` (already-labelled pairs' features) count as covered from the
    start; with none, the first pick is the point farthest from the mean.
    """
    points = np.asarray(points, dtype=np.float64)
    n = min(n, len(points))
    if centers is not None and len(centers):
        d = _min_dist(points, np.asarray(centers, dtype=np.float64))
    else:
        d = np.linalg.norm(points - points.mean(0), axis=1)
    chosen: list[int] = []
    for _ in range(n):
        k = int(np.argmax(d))
        chosen.append(k)
        d = np.minimum(d, np.linalg.norm(points - points[k], axis=1))
        d[chosen] = -np.inf
    return np.asarray(chosen, dtype=np.int64)


def _min_dist(points: np.ndarray, centers: np.ndarray, chunk: int = 1024) -> np.ndarray:
    out = np.full(len(points), np.inf)
    p2 = (points**2).sum(1)
    for s in range(0, len(centers), chunk):
        c = centers[s : s + chunk]
        d2 = p2[:, None] - 2 * points @ c.T + (c**2).sum(1)[None, :]
        out = np.minimum(out, np.sqrt(np.maximum(d2, 0)).min(1))
    return out


def select_queries(
    method: str,
    n: int,
    n_candidates: int,
    probs: np.ndarray | None = None,
    pair_features: np.ndarray | None = None,
    labelled_features: np.ndarray | None = None,
    hybrid_factor: int = 5,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Indices of the ``n`` candidates to query.

    Args:
        method: one of :data:`QUERY_METHODS`.
        n: how many to pick.
        n_candidates: how many candidates there are.
        probs: ``(E, M)`` each member's ``P(first preferred)`` per candidate
            (uncertainty methods).
        pair_features: ``(M, F)`` a vector per candidate pair (k-center methods).
        labelled_features: ``(K, F)`` vectors of pairs labelled before.
        hybrid_factor: hybrids pre-select ``n * hybrid_factor`` by uncertainty.
        rng: for ``uniform``; candidates are already random, so ``None`` takes the first ``n``.
    """
    if method not in QUERY_METHODS:
        raise ValueError(f"unknown query selection {method!r}; choose from {QUERY_METHODS}")
    if method == "uniform":
        m = n_candidates
        return rng.choice(m, size=min(n, m), replace=False) if rng is not None \
            else np.arange(min(n, m))
    if method in ("disagreement", "entropy"):
        if probs is None:
            raise ValueError(f"{method} needs the ensemble's probabilities")
        score = disagreement_scores(probs) if method == "disagreement" else entropy_scores(probs)
        return np.argsort(-score, kind="stable")[:n]
    if pair_features is None:
        raise ValueError(f"{method} needs pair features")
    if method == "kcenter":
        return kcenter_greedy(pair_features, n, labelled_features)
    if probs is None:
        raise ValueError(f"{method} needs the ensemble's probabilities")
    score = disagreement_scores(probs) if method == "kcenter_disagreement" \
        else entropy_scores(probs)
    pre = np.argsort(-score, kind="stable")[: max(n, n * hybrid_factor)]
    return pre[kcenter_greedy(pair_features[pre], n, labelled_features)]
