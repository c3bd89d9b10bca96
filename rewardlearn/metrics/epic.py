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

Rewards that read rendered frames get the frames of the states involved: the
transitions and coverage carry state indices into the rollouts' frame tables,
and each reward call's ``frames``/``obs_frames`` are indexed from the table (or
are read-only views of it), so the ``N x M`` grid never materialises more than
:data:`~rewardlearn.metrics.sampling.FRAME_ROWS` rows of frames or image
observations at a time, and the frame ids let the reward encode each distinct
frame once.

The distance is the Pearson distance ``sqrt((1 - rho) / 2)`` of the two
canonicalised rewards over the evaluation transitions ``(s_i, a_i, s'_i) ~ D``,
in ``[0, 1]``: 0 for equivalent rewards, 1 for a reward and its negation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rewardlearn.metrics.sampling import (
    Coverage,
    FrameSize,
    FrameTable,
    frame_table,
    is_image,
    reward_on,
    rows_per_call,
)
from rewardlearn.rewards.base import RewardModel, TransitionBatch

RewardFn = RewardModel | Callable[[TransitionBatch], np.ndarray]

GRID_ROWS = 1 << 18
"""Most rows of the ``N x M`` grid built at once for flat state observations."""


@dataclass
class Transitions:
    """Evaluation transitions ``(s, a, s')`` from ``D`` (state vectors or uint8 images).

    ``obs_ids``/``next_ids`` index the rollout states (and ``frames``, the
    rollouts' frame tables), needed only for rewards that read frames.
    """

    obs: np.ndarray
    acts: np.ndarray
    next_obs: np.ndarray
    obs_ids: np.ndarray | None = None
    next_ids: np.ndarray | None = None
    frames: dict[FrameSize, FrameTable] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.acts)


def _mean_over_pairs(reward: RewardFn, states: np.ndarray, cov: Coverage,
                     state_ids: np.ndarray | None = None,
                     table: FrameTable | None = None) -> np.ndarray:
    """``E_j[R(x, A_j, S'_j)]`` for every row ``x`` of ``states`` (``(N,)``)."""
    n, m = len(states), len(cov.actions)
    out = np.empty(n, np.float64)
    if table is None and not is_image(states):
        block = max(1, GRID_ROWS // max(m, 1))  # vectorised grid, a block of states at a time
        for s in range(0, n, block):
            st = states[s:s + block]
            b = len(st)
            obs = np.repeat(st, m, axis=0)
            acts = np.tile(cov.actions, (b,) + (1,) * (cov.actions.ndim - 1))
            nxt = np.tile(cov.next_states, (b,) + (1,) * (cov.next_states.ndim - 1))
            out[s:s + b] = reward_on(reward, obs, acts, nxt).reshape(b, m).mean(axis=1)
        return out
    # frames or images: one state x at a time, in calls of at most rows_per_call rows; the
    # repeated x (observation and frame) is a read-only broadcast view, the pairs' S'_j
    # frames are indexed from the table once and sliced
    rows = rows_per_call(m, states, table)
    extra: dict[str, Any] = {}
    if table is not None:
        if state_ids is None or cov.next_state_ids is None:
            raise ValueError(f"{getattr(reward, 'name', 'this reward')} reads frames: the "
                             "states and coverage need their rollout state indices")
        next_frames = table.frames[cov.next_state_ids]
        next_frames.setflags(write=False)
        next_fids = table.ids(cov.next_state_ids)
    for i in range(n):
        total = 0.0
        for j in range(0, m, rows):
            sl = slice(j, j + rows)
            k = len(cov.actions[sl])
            obs = (np.broadcast_to(states[i], (k, *states.shape[1:])) if is_image(states)
                   else np.repeat(states[i:i + 1], k, axis=0))
            if table is not None:
                assert state_ids is not None
                sid = int(state_ids[i])
                extra = {"frames": next_frames[sl], "frame_ids": next_fids[sl],
                         "obs_frames": np.broadcast_to(table.frames[sid],
                                                       (k, *table.frames.shape[1:])),
                         "obs_frame_ids": np.full(k, table.ids(sid), np.int64)}
            batch = TransitionBatch.from_arrays(obs, cov.actions[sl], cov.next_states[sl],
                                                **extra)
            total += float(np.sum(np.asarray(reward(batch), np.float64)))
        out[i] = total / m
    return out


def epic_canonicalize(reward: RewardFn, transitions: Transitions, coverage: Coverage,
                      gamma: float) -> np.ndarray:
    """``C(R)`` at each evaluation transition (``(N,)`` float64); see the module doc."""
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    t = transitions
    table = frame_table(reward, t.frames)
    raw = reward_on(reward, t.obs, t.acts, t.next_obs, obs_ids=t.obs_ids, next_ids=t.next_ids,
                    frames=t.frames)
    mean_next = _mean_over_pairs(reward, t.next_obs, coverage, t.next_ids, table)
    mean_curr = _mean_over_pairs(reward, t.obs, coverage, t.obs_ids, table)
    mean_all = float(_mean_over_pairs(reward, coverage.states, coverage, coverage.state_ids,
                                      table).mean())
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
