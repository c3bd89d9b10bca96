"""Entropic optimal transport between an agent's episode and demonstrations.

Everything here works on per-step feature rows (``(T, D)`` arrays: standardised states or
frame embeddings) and is plain numpy, so the reward module (:mod:`rewardlearn.ot.reward`)
and the discount schedule (:mod:`rewardlearn.ads`) share it.

* :func:`sinkhorn_log`: entropic OT (Cuturi 2013) with uniform or given marginals, in the
  log domain (Schmitzer's stabilised scaling: the potentials are kept as logs and absorbed
  into the kernel whenever the scalings leave ``[1/tau, tau]``, so ``reg=0.01`` never
  underflows). It produces the iterates of POT's ``ot.bregman.sinkhorn_log`` (same update
  order, same stopping rule), entries outside ``mask`` exactly 0.
* :func:`pairwise_cost`: ``euclidean`` ``||x_i - y_j|| / sqrt(D)`` (the root-mean-square
  per-feature gap) or ``cosine`` ``1 - cos(x_i, y_j)`` (ROT, Haldar et al. CoRL 2022).
* :func:`context_cost` and :func:`temporal_mask`: TemporalOT (Fu et al., NeurIPS 2024):
  ``C_ij = (1/k_c) sum_{l<k_c} c(o_{i+l}, e_{j+l})`` (indices clipped at the end) and the
  band ``M_ij = 1[|i - j| <= k_m]``, stretched along the diagonal for unequal lengths.
* :class:`OTScorer`: the per-step proxy reward ``r_i = -sum_j P_ij C_ij`` against each
  demo, the demo with the best total kept (ROT; Papagiannis & Li, "Imitation learning with
  Sinkhorn distances", ECML-PKDD 2022).

Example:
    >>> import numpy as np
    >>> C = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> P = sinkhorn_log(np.full(2, 0.5), np.full(2, 0.5), C, reg=0.01)
    >>> np.round(P, 3).tolist()
    [[0.5, 0.0], [0.0, 0.5]]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

METRICS = ("euclidean", "cosine")
VARIANTS = ("ot", "temporal")


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    """``log(sum(exp(x), axis))``, exact for rows of ``-inf`` (gives ``-inf``)."""
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return np.squeeze(out, axis=axis)


def sinkhorn_log(a: np.ndarray, b: np.ndarray, cost: np.ndarray, reg: float,
                 n_iters: int = 100, mask: np.ndarray | None = None, stop_thr: float = 1e-9,
                 tau: float = 1e10) -> np.ndarray:
    """The entropic OT plan ``argmin_P <P, C> - reg * H(P)`` with marginals ``a`` and ``b``.

    Sinkhorn's iterations ``v = b / K^T u``, ``u = a / K v`` with ``K = exp(-C / reg)``
    (zero outside ``mask``), run on the log potentials ``f = log u``, ``g = log v``: the
    first iteration in the log domain (log-sum-exp), then on the kernel
    ``K~ = diag(e^f) K diag(e^g)`` with scalings absorbed into ``f, g`` once they leave
    ``[1/tau, tau]`` (Schmitzer, SIAM J. Sci. Comput. 2019). Every ``10`` iterations (and
    at the first) it stops when ``||P^T 1 - b||_2 < stop_thr``, as POT's
    ``ot.bregman.sinkhorn_log(a, b, C, reg, numItermax=n_iters, stopThr=stop_thr)``, whose
    plan it reproduces.

    Args:
        a, b: ``(n,)`` and ``(m,)`` nonnegative marginals of equal mass.
        cost: ``(n, m)`` costs.
        reg: entropic regularisation ``epsilon`` (> 0), in cost units.
        n_iters: Sinkhorn iterations (at most).
        mask: ``(n, m)`` bool, the allowed entries (TemporalOT's band); every row and column
            needs one. ``None``: all.
        stop_thr: marginal error at which to stop early (0: run ``n_iters``).
        tau: absorption threshold of the scalings.

    Returns:
        ``(n, m)`` float64 plan, exactly 0 outside ``mask``.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    C = np.asarray(cost, np.float64)
    if C.shape != (len(a), len(b)):
        raise ValueError(f"cost is {C.shape} for marginals of sizes {len(a)} and {len(b)}")
    if reg <= 0:
        raise ValueError(f"reg must be > 0, got {reg}")
    log_k = -C / reg
    if mask is not None:
        mask = np.asarray(mask, bool)
        if mask.shape != C.shape:
            raise ValueError(f"mask is {mask.shape} for a {C.shape} cost")
        if not (mask.any(1).all() and mask.any(0).all()):
            raise ValueError("the mask leaves a row or a column without any allowed entry")
        log_k = np.where(mask, log_k, -np.inf)
    with np.errstate(divide="ignore"):
        la, lb = np.log(a), np.log(b)
    # iteration 0 in the log domain (POT's sinkhorn_log starts from u = 1)
    g = lb - _logsumexp(log_k, axis=0)
    f = la - _logsumexp(log_k + g[None, :], axis=1)
    f = np.where(np.isfinite(f), f, -np.inf)
    g = np.where(np.isfinite(g), g, -np.inf)

    def kernel() -> np.ndarray:
        with np.errstate(invalid="ignore"):
            k = np.exp(log_k + f[:, None] + g[None, :])
        return np.nan_to_num(k, nan=0.0)

    K = kernel()
    u = np.ones(len(a))
    v = np.ones(len(b))
    if stop_thr > 0 and np.linalg.norm(K.sum(0) - b) < stop_thr:
        return K
    log_tau = math.log(tau)
    for it in range(1, n_iters):
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            kt_u = K.T @ u
            v = np.where(b > 0, b / kt_u, 0.0)
        if not np.all(np.isfinite(v)):  # a column underflowed: this half-step in logs
            f = f + np.log(u)
            g = lb - _logsumexp(log_k + f[:, None], axis=0)
            u, v = np.ones(len(a)), np.ones(len(b))
            K = kernel()
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            k_v = K @ v
            u = np.where(a > 0, a / k_v, 0.0)
        if not np.all(np.isfinite(u)):
            g = g + np.log(v)
            f = la - _logsumexp(log_k + g[None, :], axis=1)
            u, v = np.ones(len(a)), np.ones(len(b))
            K = kernel()
        with np.errstate(divide="ignore"):
            big = max(np.max(np.abs(np.log(u[u > 0])), initial=0.0),
                      np.max(np.abs(np.log(v[v > 0])), initial=0.0))
        if big > log_tau:
            with np.errstate(divide="ignore"):
                f, g = f + np.log(u), g + np.log(v)
            u, v = np.ones(len(a)), np.ones(len(b))
            K = kernel()
        if stop_thr > 0 and it % 10 == 0:
            err = float(np.linalg.norm(v * (K.T @ u) - b))
            if err < stop_thr:
                break
    return u[:, None] * K * v[None, :]


def pairwise_cost(x: np.ndarray, y: np.ndarray, metric: str = "euclidean") -> np.ndarray:
    """``(n, m)`` costs between feature rows: ``euclidean`` ``||x_i - y_j|| / sqrt(D)`` or
    ``cosine`` ``1 - x_i . y_j / (|x_i| |y_j|)`` (in ``[0, 2]``; a zero row counts as
    orthogonal to everything)."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    y = np.asarray(y, np.float64).reshape(len(y), -1)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"features of size {x.shape[1]} against {y.shape[1]}")
    if metric == "euclidean":
        sq = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
        return np.sqrt(np.maximum(sq, 0.0) / max(x.shape[1], 1))
    if metric == "cosine":
        nx = np.linalg.norm(x, axis=1)
        ny = np.linalg.norm(y, axis=1)
        denom = nx[:, None] * ny[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            cos = np.where(denom > 0, (x @ y.T) / denom, 0.0)
        return 1.0 - np.clip(cos, -1.0, 1.0)
    raise ValueError(f"unknown cost metric {metric!r}; choose from {METRICS}")


def context_cost(base: np.ndarray, k_c: int) -> np.ndarray:
    """TemporalOT's context cost ``C_ij = (1/k_c) sum_{l<k_c} base[min(i+l, n-1),
    min(j+l, m-1)]``: step ``i`` matched with step ``j`` only when the next ``k_c - 1``
    steps match too."""
    base = np.asarray(base, np.float64)
    if k_c < 1:
        raise ValueError(f"k_c must be >= 1, got {k_c}")
    n, m = base.shape
    i, j = np.arange(n), np.arange(m)
    out = np.zeros_like(base)
    for shift in range(k_c):
        out += base[np.minimum(i + shift, n - 1)][:, np.minimum(j + shift, m - 1)]
    return out / k_c


def temporal_mask(n: int, m: int, k_m: int) -> np.ndarray:
    """TemporalOT's band ``M_ij = 1[|i - j| <= k_m]`` for ``n == m``; for unequal lengths the
    band follows the stretched diagonal ``j = i (m - 1) / (n - 1)`` (ORCA's "bordered
    identity"), with a half-width of at least ``ceil(max(n, m) / min(n, m))`` so that a plan
    with uniform marginals exists inside it."""
    if n < 1 or m < 1:
        raise ValueError("temporal_mask needs n, m >= 1")
    if k_m < 0:
        raise ValueError(f"k_m must be >= 0, got {k_m}")
    width = max(k_m, math.ceil(max(n, m) / min(n, m))) if n != m else k_m
    centre = np.arange(n) * ((m - 1) / (n - 1) if n > 1 else 0.0)
    return np.abs(np.arange(m)[None, :] - centre[:, None]) <= width + 1e-9


@dataclass
class EpisodeScore:
    """The OT proxy reward of one episode (unscaled)."""

    rewards: np.ndarray
    """``(T,)`` ``-sum_j P_ij C_ij`` against the best demo."""
    demo: int
    """Index of the best demo (the highest total)."""
    totals: np.ndarray
    """``(n_demos,)`` the total ``sum_i r_i`` against each demo."""


@dataclass
class OTScorer:
    """Scores episodes (feature rows) against demos (feature rows) by entropic OT.

    ``variant="ot"``: the plan of :func:`sinkhorn_log` on ``C = pairwise_cost`` (ROT).
    ``variant="temporal"``: on TemporalOT's :func:`context_cost` (``k_c``) restricted to the
    :func:`temporal_mask` band (``k_m``). Uniform marginals ``1/T`` and ``1/T'``. The reward
    of step ``i`` is ``r_i = -sum_j P_ij C_ij`` against each demo; the demo with the best
    total ``sum_i r_i`` is kept (ROT's rule). ``pad``: a demo shorter than the episode is
    extended with its last row to the episode's length (demos that end at success, episodes
    that run to the time limit: the expert then stays at its goal).
    """

    demos: Sequence[np.ndarray]
    metric: str = "euclidean"
    variant: str = "ot"
    reg: float = 0.01
    n_iters: int = 100
    k_c: int = 3
    k_m: int = 10
    pad: bool = True

    def __post_init__(self) -> None:
        if not self.demos:
            raise ValueError("OTScorer needs at least one demo")
        if self.metric not in METRICS:
            raise ValueError(f"unknown cost metric {self.metric!r}; choose from {METRICS}")
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown OT variant {self.variant!r}; choose from {VARIANTS}")
        self.demos = [np.asarray(d, np.float64) for d in self.demos]

    def cost(self, x: np.ndarray, demo: np.ndarray) -> np.ndarray:
        """The cost matrix the plan and the reward use (context cost for ``temporal``)."""
        base = pairwise_cost(x, demo, self.metric)
        return context_cost(base, self.k_c) if self.variant == "temporal" else base

    def plan(self, cost: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        """The entropic plan for a cost matrix, uniform marginals unless ``b`` is given (with
        the band for ``temporal``)."""
        n, m = cost.shape
        mask = temporal_mask(n, m, self.k_m) if self.variant == "temporal" else None
        b = np.full(m, 1.0 / m) if b is None else b
        return sinkhorn_log(np.full(n, 1.0 / n), b, cost, self.reg, self.n_iters, mask=mask)

    def target(self, demo: np.ndarray, n: int, prefix: bool = False
               ) -> tuple[np.ndarray, np.ndarray]:
        """The demo rows an episode of ``n`` steps is matched with, and their marginal.

        ``prefix``: the demo's first ``n`` rows. ``pad`` and a demo shorter than ``n``: its
        last row repeated to ``n`` rows; for ``variant="ot"`` that is the same plan, row for
        row, as the unpadded demo with its last row weighted ``(n - m + 1) / n`` (identical
        columns share their mass in proportion to their marginals), so the padding is not
        built. The band of ``temporal`` tells the repeated rows apart: they are built.
        """
        d = demo[:n] if prefix else demo
        m = len(d)
        if self.pad and m < n:
            if self.variant == "ot":
                b = np.full(m, 1.0 / n)
                b[-1] = (n - m + 1) / n
                return d, b
            d = np.concatenate([d, np.repeat(d[-1:], n - m, axis=0)])
        return d, np.full(len(d), 1.0 / len(d))

    def score(self, x: np.ndarray, prefix: bool = False) -> EpisodeScore:
        """Per-step rewards of an episode's features ``x`` (``(T, D)``). ``prefix``: ``x`` is
        an episode still running, matched with each demo's first ``T`` steps (time-aligned)."""
        x = np.asarray(x, np.float64)
        if len(x) == 0:
            raise ValueError("cannot score an empty episode")
        per_demo = []
        for demo in self.demos:
            d, b = self.target(demo, len(x), prefix)
            C = self.cost(x, d)
            per_demo.append(-(self.plan(C, b) * C).sum(1))
        totals = np.array([r.sum() for r in per_demo])
        best = int(np.argmax(totals))
        return EpisodeScore(per_demo[best], best, totals)


__all__ = ["METRICS", "VARIANTS", "EpisodeScore", "OTScorer", "context_cost", "pairwise_cost",
           "sinkhorn_log", "temporal_mask"]
