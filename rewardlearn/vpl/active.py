"""Active queries for a new user: the pairs whose answers most reduce the uncertainty in ``z``.

VPL §4.2 picks the query set ``Q`` that maximises the mutual information between the
user's latent and their answers, ``I(z; y_Q) = H(z) - E_{y ~ p(y_Q)}[H(z | y_Q)]``, with
the Gaussian posterior of the encoder, ``H(z | y_Q) = 1/2 sum_d log(2 pi e sigma_d^2(Q,
y))``, and every label assignment ``y in {0, 1}^|Q|`` enumerated. The answers' marginal
is estimated with ``M`` prior samples,
``p(y_Q) = 1/M sum_m prod_i sigmoid(+-(R(A_i, z_m) - R(B_i, z_m)))``. With the prior
``H(z) = d/2 log(2 pi e)`` fixed, the best set has the smallest expected posterior
entropy. :func:`select_queries` builds the set greedily, one pair at a time (``2^q``
assignments for a set of ``q``; ``q <= 10``), before any answer: every user gets the same set.

:func:`next_query` and :func:`ask_adaptively` choose each next pair *after* the user's
answers so far, from the posterior ``q(z | answers)`` (sequential experimental design). Two
criteria for the pair's information ``I(z; y | D)``:

- ``"bald"`` (default): ``H[E_z p(y | z)] - E_z H[p(y | z)]`` with ``z`` drawn from the
  posterior (Houlsby et al. 2011, "Bayesian Active Learning for Classification and
  Preference Learning"): high where the answer is uncertain overall but each ``z`` is sure,
  i.e. where the plausible users disagree. It reads only the reward ``r(x, z)``.
- ``"posterior"``: VPL's form for one more pair, ``H(z | D) - E_y[H(z | D, y)]`` with the
  encoder's Gaussian entropies, as :func:`select_queries`.

A fixed set asked of everyone cannot follow a user's earlier answers: two users whose goals
lie on the same side of every pair in the set answer it alike and get the same ``z``.

Example:
    >>> import numpy as np
    >>> label_assignments(2).tolist()
    [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
    >>> round(mutual_information(np.zeros((4, 1)), np.zeros((2, 3))), 6)  # no information
    0.0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

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
    cands = _Candidates(reward, x1, x2)
    model, device, diff = reward.model, reward.device, cands.diff
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    z = torch.randn((n_samples, reward.cfg.latent_dim), generator=gen, device=device)
    delta = cands.deltas(z, list(range(len(cands))))  # (M, C)
    chosen: list[int] = []
    gains: list[float] = []
    for _ in range(n_queries):
        q = len(chosen) + 1
        y = torch.as_tensor(label_assignments(q), device=device)  # (2^q, q)
        best, best_mi = -1, -math.inf
        for c in range(len(cands)):
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


Criterion = Literal["bald", "posterior"]
CRITERIA: tuple[str, ...] = ("bald", "posterior")


def binary_entropy(p: np.ndarray) -> np.ndarray:
    """``-p log p - (1 - p) log(1 - p)`` in nats, 0 at ``p`` in ``{0, 1}``."""
    p = np.clip(np.asarray(p, np.float64), 1e-12, 1 - 1e-12)
    return -(p * np.log(p) + (1 - p) * np.log1p(-p))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + e^-x)`` without overflow for large ``|x|``."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, np.float64)))


def bald_information(delta: np.ndarray) -> np.ndarray:
    """``I(z; y)`` per pair from posterior samples: ``H[mean_m p_m] - mean_m H[p_m]`` with
    ``p_m = sigmoid(delta_m)``; ``delta``: ``(M, C)`` ``R(A, z_m) - R(B, z_m)`` -> ``(C,)``.

    Example:
        >>> import numpy as np
        >>> bald_information(np.array([[20.0, 0.0], [-20.0, 0.0]])).round(3).tolist()
        [0.693, 0.0]
    """
    p = _sigmoid(delta)
    return binary_entropy(p.mean(0)) - binary_entropy(p).mean(0)


@dataclass
class QueryResult:
    """What :func:`ask_adaptively` asked and learned: the candidate ``indices`` in the order
    asked, the user's ``labels`` (1: first preferred, 0: second, 0.5: equal), the expected
    information ``gains`` (nats) of each pick when it was made, and the posterior
    ``mu``, ``logvar`` of ``z`` after the last answer."""

    indices: np.ndarray
    labels: np.ndarray
    gains: list[float]
    mu: np.ndarray
    logvar: np.ndarray


class _Candidates:
    """The candidate pairs in the model's columns, their embedding differences, and the
    segment returns under a batch of latents."""

    def __init__(self, reward: VPLReward, x1: np.ndarray, x2: np.ndarray) -> None:
        self.model, self.device = reward.model, reward.device
        cols = torch.as_tensor(reward.columns, device=self.device)
        self.a = torch.as_tensor(np.asarray(x1, np.float32), device=self.device)[..., cols]
        self.b = torch.as_tensor(np.asarray(x2, np.float32), device=self.device)[..., cols]
        ones = torch.ones(self.a.shape[:2], device=self.device)
        self.diff = (self.model.segment_embedding(self.a, ones)
                     - self.model.segment_embedding(self.b, ones))  # (C, E)

    def __len__(self) -> int:
        return len(self.a)

    def posterior(self, asked: list[int], labels: list[float]
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` ``(d,)`` of ``q(z | answers)``; the prior with none."""
        d = self.model.latent_dim
        if not asked:
            zero = torch.zeros(d, device=self.device)
            return zero, zero.clone()
        y = torch.as_tensor([labels], dtype=torch.float32, device=self.device)
        mu, logvar = self.model.encode_differences(self.diff[asked][None], y,
                                                   torch.ones_like(y))
        return mu[0], logvar[0]

    def deltas(self, z: torch.Tensor, idx: list[int]) -> np.ndarray:
        """``(M, len(idx))`` ``R(A_c, z_m) - R(B_c, z_m)``."""
        cols = [(self.model.rewards(self.a[None, c], z[:, None, :]).sum(-1)
                 - self.model.rewards(self.b[None, c], z[:, None, :]).sum(-1)) for c in idx]
        return torch.stack(cols, dim=1).cpu().numpy()


@torch.no_grad()
def query_information(reward: VPLReward, x1: np.ndarray, x2: np.ndarray, asked: list[int],
                      labels: list[float], criterion: Criterion = "bald",
                      n_samples: int = 128, seed: int = 0, exclude: Sequence[int] = (),
                      _cands: _Candidates | None = None) -> np.ndarray:
    """``(C,)`` each candidate pair's expected information about ``z`` (nats) given the
    user's answers so far (``asked``: indices into ``x1``/``x2``, ``labels``: their answers);
    ``-inf`` for the pairs already asked and those in ``exclude`` (skipped).
    ``x1``, ``x2``: ``(C, L, [s, a, s'])``."""
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; valid: {', '.join(CRITERIA)}")
    if len(asked) != len(labels):
        raise ValueError(f"{len(asked)} pairs asked but {len(labels)} answers")
    cands = _cands if _cands is not None else _Candidates(reward, x1, x2)
    done = set(asked) | set(exclude)
    rest = [c for c in range(len(cands)) if c not in done]
    out = np.full(len(cands), -np.inf)
    if not rest:
        return out
    mu, logvar = cands.posterior(list(asked), list(labels))
    gen = torch.Generator(device=cands.device)
    gen.manual_seed(seed + len(asked))
    eps = torch.randn((n_samples, len(mu)), generator=gen, device=cands.device)
    delta = cands.deltas(mu + torch.exp(0.5 * logvar) * eps, rest)  # (M, |rest|)
    if criterion == "bald":
        out[rest] = bald_information(delta)
        return out
    p1 = _sigmoid(delta).mean(0)  # P(first preferred | answers)
    now = float(gaussian_entropy(logvar.cpu().numpy()[None])[0])
    sets = torch.stack([cands.diff[[*asked, c]] for c in rest])  # (R, q, E)
    before = torch.as_tensor(list(labels), dtype=torch.float32, device=cands.device)
    after = []
    for y in (1.0, 0.0):
        lab = torch.cat([before.expand(len(rest), len(asked)),
                         torch.full((len(rest), 1), y, device=cands.device)], 1)
        _, lv = cands.model.encode_differences(sets, lab, torch.ones_like(lab))
        after.append(gaussian_entropy(lv.cpu().numpy()))
    out[rest] = now - (p1 * after[0] + (1 - p1) * after[1])
    return out


def next_query(reward: VPLReward, x1: np.ndarray, x2: np.ndarray, asked: list[int],
               labels: list[float], criterion: Criterion = "bald", n_samples: int = 128,
               seed: int = 0, exclude: Sequence[int] = (),
               _cands: _Candidates | None = None) -> tuple[int, float]:
    """The candidate pair to ask next given the user's answers so far, and its expected
    information (:func:`query_information`'s largest). Stateless, so a labelling page can
    call it between answers."""
    info = query_information(reward, x1, x2, asked, labels, criterion, n_samples, seed,
                             exclude, _cands)
    if not np.isfinite(info).any():
        raise ValueError(f"every one of the {len(info)} candidate pairs was asked or skipped "
                         "already")
    best = int(np.argmax(info))
    return best, float(info[best])


@torch.no_grad()
def ask_adaptively(reward: VPLReward, x1: np.ndarray, x2: np.ndarray,
                   answer: Callable[[int], float | None], n_queries: int,
                   criterion: Criterion = "bald", n_samples: int = 128,
                   seed: int = 0) -> QueryResult:
    """Ask one user ``n_queries`` pairs, each chosen by :func:`next_query` after the answers
    before it; ``answer(i)`` returns the user's label of candidate pair ``i``, or None for a
    skip (that pair is not asked again and does not count).

    Example (a user who always prefers the first segment):
        >>> # res = ask_adaptively(reward, x1, x2, lambda i: 1.0, n_queries=10)
        >>> # res.indices, res.mu   # what was asked, and the user's z
    """
    if not 1 <= n_queries <= len(x1):
        raise ValueError(f"n_queries must be in [1, {len(x1)}] (the candidates), got "
                         f"{n_queries}")
    cands = _Candidates(reward, x1, x2)
    asked: list[int] = []
    labels: list[float] = []
    gains: list[float] = []
    skipped: list[int] = []
    while len(asked) < n_queries:
        c, gain = next_query(reward, x1, x2, asked, labels, criterion, n_samples, seed,
                             skipped, _cands=cands)
        got = answer(c)
        if got is None:
            skipped.append(c)
            continue
        label = float(got)
        if label not in (0.0, 0.5, 1.0):
            raise ValueError(f"answer({c}) returned {label}; labels are 1 (first preferred), "
                             "0 (second) or 0.5 (equal)")
        asked.append(c)
        labels.append(label)
        gains.append(gain)
    mu, logvar = cands.posterior(asked, labels)
    return QueryResult(np.asarray(asked, np.int64), np.asarray(labels, np.float32), gains,
                       mu.cpu().numpy(), logvar.cpu().numpy())


__all__ = ["CRITERIA", "MAX_QUERIES", "QueryResult", "ask_adaptively", "bald_information",
           "binary_entropy", "gaussian_entropy", "label_assignments", "mutual_information",
           "next_query", "query_information", "select_queries"]
