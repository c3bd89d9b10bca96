"""Recent experience, kept per episode, from which query segments are drawn.

Segments are windows of consecutive steps inside *one* episode: a window never
spans an episode end (B-Pref samples fixed offsets into a flat buffer and so
pairs steps of different episodes when lengths vary). Episodes of any length
are kept; the in-progress episode of each env is usable up to its last step.

Absorbing padding (``absorbing=True`` in :meth:`SegmentBuffer.sample`): a window
may also run past a *termination*; the steps after it are absorbing steps
(zero features, true reward 0, flagged in ``Segments.absorbing``), so every
segment keeps the full length and a segment that falls early is compared with
one that lives on. A truncated episode (time limit) is never padded: the agent
would have lived on, so nothing is known about the steps after it.

Each step also keeps its next state (``next_states`` in :meth:`SegmentBuffer.add`,
the flattened ``next_obs``), so a segment knows ``s_L``, the state reached after
its last action (the regret model's ``V(s_L)``, Knox et al.).

Example:
    >>> import numpy as np
    >>> from rewardlearn.preference.buffer import SegmentBuffer
    >>> buf = SegmentBuffer(n_envs=1, feature_dim=2, capacity=100)
    >>> for t in range(7):
    ...     buf.add(np.full((1, 2), t, np.float32), np.array([t], np.float32),
    ...             terminated=np.array([t == 2]), truncated=np.array([False]))
    >>> buf.num_windows(3)  # episode [0, 1, 2] has 1 window, the running [3..6] has 2
    3
    >>> seg = buf.sample(4, 3, np.random.default_rng(0))
    >>> bool((np.diff(seg.true_rewards, axis=1) == 1).all())  # never crosses the end
    True
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass
class Segments:
    """``N`` segments of ``L`` steps: model inputs, true rewards (teacher only) and origin."""

    features: np.ndarray  # (N, L, D) float32 reward-net inputs per step
    true_rewards: np.ndarray  # (N, L) the env's reward: only synthetic teachers read it
    terminated: np.ndarray  # (N, L) bool: the step ended the episode by termination
    episode: np.ndarray  # (N,) episode serial number
    start: np.ndarray  # (N,) first step index within the episode
    states: np.ndarray | None = None  # (N, L, S) simulator states, for rendering clips
    next_state: np.ndarray | None = None  # (N, S) the state after the last real step's action
    absorbing: np.ndarray | None = None  # (N, L) bool: absorbing steps after a termination

    def __len__(self) -> int:
        return len(self.features)

    @property
    def length(self) -> int:
        return int(self.features.shape[1])

    def take(self, idx: np.ndarray) -> Segments:
        """The segments at ``idx``."""
        return Segments(
            self.features[idx], self.true_rewards[idx], self.terminated[idx], self.episode[idx],
            self.start[idx], None if self.states is None else self.states[idx],
            None if self.next_state is None else self.next_state[idx],
            None if self.absorbing is None else self.absorbing[idx],
        )

    def real_lengths(self) -> np.ndarray:
        """``(N,)`` steps before the absorbing padding (``L`` for unpadded segments)."""
        if self.absorbing is None:
            return np.full(len(self), self.length, np.int64)
        return (~self.absorbing).sum(1).astype(np.int64)


@dataclass
class _Episode:
    serial: int
    features: np.ndarray
    true_rewards: np.ndarray
    terminated: np.ndarray
    states: np.ndarray | None
    next_states: np.ndarray | None

    @property
    def ended_by_termination(self) -> bool:
        return bool(len(self.terminated) and self.terminated[-1])


class _Running:
    """Rows of one env's current episode, appended step by step."""

    def __init__(self, serial: int) -> None:
        self.serial = serial
        self.features: list[np.ndarray] = []
        self.rewards: list[float] = []
        self.terminated: list[bool] = []
        self.states: list[np.ndarray] = []
        self.next_states: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.rewards)

    def freeze(self) -> _Episode:
        return _Episode(
            self.serial,
            np.stack(self.features).astype(np.float32),
            np.asarray(self.rewards, dtype=np.float32),
            np.asarray(self.terminated, dtype=bool),
            np.stack(self.states) if self.states else None,
            np.stack(self.next_states).astype(np.float32) if self.next_states else None,
        )


class SegmentBuffer:
    """The most recent ``capacity`` transitions of ``n_envs`` envs, grouped by episode.

    Args:
        n_envs: number of parallel envs feeding :meth:`add`.
        feature_dim: width of the per-step reward-net input.
        capacity: transitions kept (oldest whole episodes are evicted first).
    """

    def __init__(self, n_envs: int, feature_dim: int, capacity: int = 100_000) -> None:
        self.n_envs = n_envs
        self.feature_dim = feature_dim
        self.capacity = int(capacity)
        self._episodes: deque[_Episode] = deque()
        self._stored = 0
        self._serial = 0
        self._running = [self._new_running() for _ in range(n_envs)]
        self._frozen_running: dict[int, tuple[int, _Episode]] = {}
        self.total_steps = 0
        self.seen_termination = False

    def _new_running(self) -> _Running:
        run = _Running(self._serial)
        self._serial += 1
        return run

    def add(self, features: np.ndarray, true_rewards: np.ndarray, terminated: np.ndarray,
            truncated: np.ndarray, states: np.ndarray | None = None,
            next_states: np.ndarray | None = None) -> None:
        """Append one step of every env (``(n_envs, ...)`` arrays).

        ``next_states`` (``(n_envs, S)``): the flattened true next observation of
        each step (the last one of an episode, not the reset observation).
        """
        self.add_steps(np.asarray(features)[None], np.asarray(true_rewards)[None],
                       np.asarray(terminated)[None], np.asarray(truncated)[None],
                       None if states is None else np.asarray(states)[None],
                       None if next_states is None else np.asarray(next_states)[None])

    def add_steps(
        self,
        features: np.ndarray,
        true_rewards: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        states: np.ndarray | None = None,
        next_states: np.ndarray | None = None,
    ) -> None:
        """Append ``T`` consecutive steps of every env (``(T, n_envs, ...)`` arrays) at once.

        The same as ``T`` calls of :meth:`add`, with per-episode slices in place of
        per-step appends (one PPO rollout's steps, when the rewards are deferred).
        """
        n_steps = len(true_rewards)
        rewards = np.asarray(true_rewards, dtype=np.float32)
        term = np.asarray(terminated, bool)
        ends = term | np.asarray(truncated, bool)
        feats = np.asarray(features, dtype=np.float32)
        nxt = None if next_states is None else np.asarray(next_states, dtype=np.float32)
        start = [0] * self.n_envs

        def extend(i: int, stop: int) -> None:
            run, sl = self._running[i], slice(start[i], stop)
            run.features.extend(feats[sl, i])
            run.rewards.extend(rewards[sl, i].tolist())
            run.terminated.extend(term[sl, i].tolist())
            if states is not None:
                run.states.extend(np.asarray(states[sl, i]))
            if nxt is not None:
                run.next_states.extend(nxt[sl, i])
            start[i] = stop

        # episodes end in time order (then env order), as step-by-step add() pushes them
        for t, i in zip(*np.nonzero(ends), strict=True):
            extend(int(i), int(t) + 1)
            self._push(self._running[i].freeze())
            self._running[i] = self._new_running()
        for i in range(self.n_envs):
            if start[i] < n_steps:
                extend(i, n_steps)
        self.seen_termination |= bool(np.asarray(terminated, bool).any())
        self.total_steps += n_steps * self.n_envs
        self._frozen_running.clear()

    def _push(self, ep: _Episode) -> None:
        self._episodes.append(ep)
        self._stored += len(ep.true_rewards)
        while self._stored > self.capacity and len(self._episodes) > 1:
            old = self._episodes.popleft()
            self._stored -= len(old.true_rewards)

    def _all_episodes(self) -> list[_Episode]:
        eps = list(self._episodes)
        for i, run in enumerate(self._running):
            if len(run) == 0:
                continue
            cached = self._frozen_running.get(i)
            if cached is None or cached[0] != len(run):
                cached = (len(run), run.freeze())
                self._frozen_running[i] = cached
            eps.append(cached[1])
        return eps

    def __len__(self) -> int:
        return self._stored + sum(len(r) for r in self._running)

    def _episodes_for(self, recent: int | None) -> list[_Episode]:
        eps = self._all_episodes()
        return eps if recent is None else eps[-int(recent):]

    @staticmethod
    def _window_counts(eps: list[_Episode], length: int, absorbing: bool) -> np.ndarray:
        """Valid window starts per episode: ``n - L + 1``; with ``absorbing``, a terminated
        episode allows every start ``0..n-1`` (windows past its end are padded)."""
        n = np.array([len(e.true_rewards) for e in eps], dtype=np.int64)
        counts = np.maximum(n - length + 1, 0)
        if absorbing and len(eps):
            term = np.array([e.ended_by_termination for e in eps])
            counts = np.where(term, n, counts)
        return counts

    def num_windows(self, length: int, absorbing: bool = False, recent: int | None = None) -> int:
        """How many distinct ``length``-step windows lie inside single episodes."""
        return int(self._window_counts(self._episodes_for(recent), length, absorbing).sum())

    def longest_feasible(self, length: int, needed: int, min_length: int = 2,
                         absorbing: bool = False, recent: int | None = None) -> int:
        """The largest ``L <= length`` with at least ``needed`` windows (``0`` if none).

        Early in training (agents that fall fast) episodes can be shorter than
        the configured segment length; shorter segments beat pairing across
        episode ends. With ``absorbing`` padding a terminated episode gives
        full-length windows whatever its length.
        """
        eps = self._episodes_for(recent)
        for cand in range(length, min_length - 1, -1):
            if int(self._window_counts(eps, cand, absorbing).sum()) >= needed:
                return cand
        return 0

    def sample(self, n: int, length: int, rng: np.random.Generator, absorbing: bool = False,
               recent: int | None = None) -> Segments:
        """``n`` windows of ``length`` steps, uniform over all valid windows.

        Args:
            absorbing: also draw windows that run past a termination, padded with
                absorbing steps (see the module docstring); truncations are never padded.
            recent: draw only from the ``recent`` most recent episodes (the running
                ones count), QPA's policy-aligned query pool (Hu et al., ICLR 2024).
        """
        eps = self._episodes_for(recent)
        counts = self._window_counts(eps, length, absorbing)
        total = int(counts.sum())
        if total == 0:
            raise ValueError(f"no episode has {length} steps yet; cannot sample segments")
        flat = rng.integers(0, total, size=n)
        cum = np.cumsum(counts)
        which = np.searchsorted(cum, flat, side="right")
        starts = flat - (cum[which] - counts[which])
        feats = np.zeros((n, length, self.feature_dim), np.float32)
        rews = np.zeros((n, length), np.float32)
        term = np.zeros((n, length), bool)
        absorb = np.zeros((n, length), bool)
        has_states = all(e.states is not None for e in eps)
        has_next = all(e.next_states is not None for e in eps)
        states = None
        nxt = None
        for k, (w, s) in enumerate(zip(which, starts, strict=True)):
            ep = eps[int(w)]
            end = min(int(s) + length, len(ep.true_rewards))
            real = end - int(s)
            sl = slice(int(s), end)
            feats[k, :real] = ep.features[sl]
            rews[k, :real] = ep.true_rewards[sl]
            term[k, :real] = ep.terminated[sl]
            absorb[k, real:] = True
            if has_states and ep.states is not None:
                if states is None:
                    states = np.empty((n, length, *ep.states.shape[1:]), ep.states.dtype)
                states[k, :real] = ep.states[sl]
                states[k, real:] = ep.states[end - 1]  # the fallen pose, held
            if has_next and ep.next_states is not None:
                if nxt is None:
                    nxt = np.empty((n, ep.next_states.shape[1]), np.float32)
                nxt[k] = ep.next_states[end - 1]
        serials = np.array([eps[int(w)].serial for w in which], dtype=np.int64)
        return Segments(feats, rews, term, serials, starts.astype(np.int64), states, nxt,
                        absorb if absorbing else None)

    def recent_true_reward_mean(self, last: int = 10_000) -> float:
        """Mean true reward per step over the most recent ``last`` stored steps."""
        vals: list[np.ndarray] = []
        n = 0
        for ep in reversed(self._all_episodes()):
            vals.append(ep.true_rewards)
            n += len(ep.true_rewards)
            if n >= last:
                break
        return float(np.concatenate(vals)[-last:].mean()) if vals else 0.0

    def features_sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``(<= n, D)`` stored per-step features drawn uniformly (for entropy and statistics)."""
        eps = self._all_episodes()
        if not eps:
            return np.empty((0, self.feature_dim), np.float32)
        allf = np.concatenate([e.features for e in eps])
        if len(allf) <= n:
            return allf
        return allf[rng.choice(len(allf), size=n, replace=False)]
