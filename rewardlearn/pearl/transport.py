"""Cross-task preference alignment (CPA): Gromov-Wasserstein between source and target
segments, and target labels as transport-weighted source labels (PEARL, Liu et al. 2024).

GW compares the two tasks' segment sets through their *internal* distances only, so the
tasks may differ in observation meaning or even size:

    T* = argmin_{T in U(u, v)} sum_{k,l,i,j} (C_S[k,l] - C_T[i,j])^2 T[k,i] T[l,j],

with ``C_S``, ``C_T`` each divided by its largest entry (REFERENCE.md 10.3: normalise
before choosing ``epsilon``), ``u``, ``v`` uniform; POT's
``ot.gromov.gromov_wasserstein`` (exact, conditional gradient) or
``entropic_gromov_wasserstein``. A target pair ``(i, j)`` then gets

    z_T(i, j) = sum_{(k,l) in P} T[k,i] T[l,j] z_S(k,l) / sum_{(k,l) in P} T[k,i] T[l,j],

over the labelled source pairs ``P`` (each also counted reversed, ``z_S(l,k) = 1 -
z_S(k,l)``). With every ordered source pair labelled the denominator is
``sum_{k,l} T[k,i] T[l,j] = v_i v_j``, the normalisation that keeps the labels in
``[0, 1]``; with a partial labelling, dividing by ``v_i v_j`` would shrink the labels
towards 0 by the unlabelled mass, so the labelled mass is divided out instead and
returned as ``coverage = sum_P T[k,i] T[l,j] / (v_i v_j)`` (1: fully covered).

Pitfall (REFERENCE.md 10.3): GW cannot tell a structure from its mirror image; check the
transferred labels against a few real ones (:mod:`rewardlearn.pearl.reward` flips them
when those disagree).

Example:
    >>> import numpy as np
    >>> T = np.eye(3) / 3  # source segment k is target segment k
    >>> z, cov = transfer_labels(T, np.array([[0, 1], [1, 2]]), np.array([1.0, 0.0]),
    ...                          np.array([0, 2, 0]), np.array([1, 1, 2]))
    >>> z.tolist(), cov.tolist()
    ([1.0, 1.0, 0.5], [1.0, 1.0, 0.0])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SOLVERS = ("exact", "entropic")


def resample(segment: np.ndarray, length: int) -> np.ndarray:
    """``(L, F)`` steps linearly interpolated in time to ``(length, F)``."""
    seg = np.asarray(segment, np.float64)
    if len(seg) == length:
        return seg
    if len(seg) == 1:
        return np.repeat(seg, length, axis=0)
    src = np.linspace(0.0, 1.0, len(seg))
    dst = np.linspace(0.0, 1.0, length)
    return np.stack([np.interp(dst, src, seg[:, f]) for f in range(seg.shape[1])], axis=1)


def segment_distances(segments: Sequence[np.ndarray], length: int | None = None) -> np.ndarray:
    """``(n, n)`` distances within one task's segments: each resampled to ``length`` steps
    (default: the longest), every feature standardised over all the task's steps, then the
    root-mean-square per-step Euclidean distance between two segments."""
    if not segments:
        raise ValueError("no segments to compare")
    length = int(length or max(len(s) for s in segments))
    x = np.stack([resample(s, length) for s in segments])  # (n, L, F)
    steps = x.reshape(-1, x.shape[-1])
    x = (x - steps.mean(0)) / (steps.std(0) + 1e-8)
    flat = x.reshape(len(x), -1)
    sq = (flat ** 2).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * flat @ flat.T, 0.0)
    np.fill_diagonal(d2, 0.0)
    return np.sqrt(d2 / length)


def cross_segment_distances(source: Sequence[np.ndarray], target: Sequence[np.ndarray],
                            length: int) -> np.ndarray:
    """``(n_S, n_T)`` distances between the two tasks' segments, for fused GW: each
    resampled to ``length`` steps, every feature standardised over both tasks' steps
    together (so the two share one scale), then the RMS per-step Euclidean distance.
    Both sides need the same features (a shared ``align_encoder``)."""
    xs = np.stack([resample(seg, length) for seg in source])
    xt = np.stack([resample(seg, length) for seg in target])
    if xs.shape[-1] != xt.shape[-1]:
        raise ValueError(f"fused GW compares source and target features directly, but the "
                         f"source has {xs.shape[-1]} per step and the target {xt.shape[-1]}; "
                         "give reward.model.align_encoder (the same features for both), or "
                         "structure_weight=1.0 (pure GW)")
    steps = np.concatenate([xs, xt]).reshape(-1, xs.shape[-1])
    mean, std = steps.mean(0), steps.std(0) + 1e-8
    a = ((xs - mean) / std).reshape(len(xs), -1)
    b = ((xt - mean) / std).reshape(len(xt), -1)
    d2 = (a ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(d2, 0.0) / length)


def normalise(c: np.ndarray) -> np.ndarray:
    """``C / max(C)`` (unchanged when all zero)."""
    c = np.asarray(c, np.float64)
    top = float(c.max()) if c.size else 0.0
    return c / top if top > 0 else c


def gw_plan(c_source: np.ndarray, c_target: np.ndarray, solver: str = "exact",
            epsilon: float = 0.01, max_iter: int = 1000, cross: np.ndarray | None = None,
            structure_weight: float = 1.0) -> tuple[np.ndarray, float]:
    """The GW transport plan ``T`` ``(n_S, n_T)`` between two tasks' distance matrices
    (each normalised by its maximum; uniform marginals) and the GW discrepancy.

    With ``cross`` (source-to-target distances, :func:`cross_segment_distances`) and
    ``structure_weight`` ``a < 1``: fused GW (Vayer et al., ICML 2019), minimising
    ``(1 - a) <M, T> + a * GW(T)`` with ``M = cross / max(cross)`` (POT's
    ``fused_gromov_wasserstein``, its ``alpha`` = ``a``); ``a = 1`` is pure GW."""
    import ot

    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    c1, c2 = normalise(c_source), normalise(c_target)
    p = np.full(len(c1), 1.0 / len(c1))
    q = np.full(len(c2), 1.0 / len(c2))
    if cross is not None and structure_weight < 1.0:
        m = normalise(cross)
        if solver == "exact":
            plan, log = ot.gromov.fused_gromov_wasserstein(
                m, c1, c2, p, q, loss_fun="square_loss", alpha=structure_weight,
                max_iter=max_iter, log=True)
        else:
            plan, log = ot.gromov.entropic_fused_gromov_wasserstein(
                m, c1, c2, p, q, loss_fun="square_loss", alpha=structure_weight,
                epsilon=epsilon, max_iter=max_iter, log=True)
        return np.asarray(plan, np.float64), float(log["fgw_dist"])
    if solver == "exact":
        plan, log = ot.gromov.gromov_wasserstein(c1, c2, p, q, loss_fun="square_loss",
                                                 max_iter=max_iter, log=True)
    else:
        plan, log = ot.gromov.entropic_gromov_wasserstein(c1, c2, p, q, loss_fun="square_loss",
                                                          epsilon=epsilon, max_iter=max_iter,
                                                          log=True)
    return np.asarray(plan, np.float64), float(log["gw_dist"])


def transfer_labels(plan: np.ndarray, pairs: np.ndarray, labels: np.ndarray,
                    target_i: np.ndarray, target_j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Target labels ``z_T(i, j)`` and their coverage for target pairs ``(target_i,
    target_j)`` from source pairs ``pairs`` ``(P, 2)`` with labels ``(P,)`` (1: first
    preferred) under the plan ``T`` ``(n_S, n_T)`` (module docstring). A pair with no
    labelled mass gets ``z = 0.5`` and coverage 0."""
    plan = np.asarray(plan, np.float64)
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    labels = np.asarray(labels, np.float64)
    distinct = pairs[:, 0] != pairs[:, 1]
    k = np.concatenate([pairs[:, 0], pairs[distinct, 1]])
    ell = np.concatenate([pairs[:, 1], pairs[distinct, 0]])
    y = np.concatenate([labels, 1.0 - labels[distinct]])
    ti, tj = np.asarray(target_i, np.int64), np.asarray(target_j, np.int64)
    num = np.zeros(len(ti))
    den = np.zeros(len(ti))
    for s in range(0, len(ti), 4096):  # (2P, chunk) weights at a time
        w = plan[k][:, ti[s:s + 4096]] * plan[ell][:, tj[s:s + 4096]]
        num[s:s + 4096] = y @ w
        den[s:s + 4096] = w.sum(0)
    v = plan.sum(0)
    mass = v[ti] * v[tj]
    z = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.5)
    coverage = np.where(mass > 0, den / np.where(mass > 0, mass, 1.0), 0.0)
    return np.clip(z, 0.0, 1.0), coverage


def candidate_pairs(plan: np.ndarray, pairs: np.ndarray, n: int, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` target pairs ``(i, j)``, ``i != j``, drawn where labelled source pairs send their
    mass: a source pair ``(k, l)`` uniformly, then ``i ~ T[k, :]``, ``j ~ T[l, :]``. With an
    exact (sparse) plan only such pairs have any coverage; uniform pairs would almost never
    hit them. Draws with ``i = j`` are dropped, so fewer than ``n`` may come back."""
    plan = np.asarray(plan, np.float64)
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    rows = plan / np.maximum(plan.sum(1, keepdims=True), 1e-300)
    cum = np.cumsum(rows, axis=1)
    pick = pairs[rng.integers(0, len(pairs), n)]

    def draw(k: np.ndarray) -> np.ndarray:
        u = rng.random(len(k))[:, None]
        return np.minimum((cum[k] < u).sum(1), plan.shape[1] - 1)

    ti, tj = draw(pick[:, 0]), draw(pick[:, 1])
    keep = ti != tj
    return ti[keep], tj[keep]


__all__ = ["SOLVERS", "candidate_pairs", "cross_segment_distances", "gw_plan", "normalise",
           "resample",
           "segment_distances", "transfer_labels"]
