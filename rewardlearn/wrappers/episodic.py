"""Trajectory-level rewards: a step's reward is known only when its episode ends.

An OT proxy reward (ROT, ADS, TemporalOT: :mod:`rewardlearn.ot`) scores a whole episode
against the demos, so the reward of step ``t`` depends on the steps after it. Such a module
subclasses :class:`EpisodicReward` and implements two methods:

* :meth:`EpisodicReward.episode_features`: one feature row per transition (of ``s'``),
  taken as the steps come in (frames are encoded then, so the wrapper keeps none);
* :meth:`EpisodicReward.score_episodes`: the per-step rewards of whole episodes (or of an
  episode still running, ``complete=False``).

It then runs on the package's one deferral mechanism (:meth:`~rewardlearn.rewards.base.
RewardModel.defer_step` / :meth:`~rewardlearn.rewards.base.RewardModel.compute_deferred`,
:class:`~rewardlearn.wrappers.vec.RewardVecEnvWrapper` with ``defer=True``) with every
agent (``reward_timing=step`` is refused):

* PPO: the rollout's rewards at its end (:class:`~rewardlearn.wrappers.vec.
  DeferredRewardCallback`). An episode that ended is scored whole; one still running at the
  rollout's end is scored on its steps so far (``complete=False``), and its later steps when
  it ends. With rollouts of whole episodes (Meta-World: ``n_steps=500``) every step is
  scored on its whole episode.
* SAC/TD3: the wrapper is flushed once an episode ends (:attr:`~rewardlearn.wrappers.vec.
  RewardVecEnvWrapper.complete_steps`); the callback writes the rewards into the replay
  buffer rows where those steps were stored (:class:`~rewardlearn.wrappers.replay.
  DeferredReplayBuffer`, which keeps rows whose reward is not known yet out of training
  batches; wrap-around and ``n_envs`` handled by row stamps).

Step by step (evaluation rollouts, :class:`~rewardlearn.wrappers.gym.LearnedRewardWrapper`)
:meth:`EpisodicReward.compute` follows each env's stream: 0 on the steps of a running
episode, then the whole episode's return on its last step, so the episode's learned return
is right (the per-step split is not).

Example:
    >>> import gymnasium as gym, numpy as np
    >>> from rewardlearn.rewards.base import RewardOutput, TransitionBatch
    >>> class Length(EpisodicReward):   # each step pays the episode's length
    ...     def episode_features(self, batch):
    ...         return np.zeros((len(batch), 1))
    ...     def score_episodes(self, episodes, complete):
    ...         return [RewardOutput(np.full(len(x), float(len(x)))) for x in episodes]
    >>> box = gym.spaces.Box(-1, 1, (1,))
    >>> r = Length(box, box)
    >>> for t in range(3):   # one env, an episode of 3 steps, deferred
    ...     r.defer_step(TransitionBatch.from_arrays(np.full((1, 1), t), np.zeros((1, 1)),
    ...                  np.full((1, 1), t + 1), terminated=np.array([t == 2])))
    >>> b = TransitionBatch.from_arrays(np.zeros((3, 1)), np.zeros((3, 1)), np.zeros((3, 1)),
    ...                                 terminated=np.array([False, False, True]))
    >>> r.compute_deferred(b).rewards.tolist()
    [3.0, 3.0, 3.0]
"""

from __future__ import annotations

import abc
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import gymnasium as gym
import numpy as np

from rewardlearn.rewards.base import Obs, RewardModel, RewardOutput, TransitionBatch


@dataclass
class _Episode:
    """A finished episode waiting for its rows to be handed out."""

    features: np.ndarray
    given: int = 0
    """Rows already answered (scored on a prefix in an earlier rollout)."""
    out: RewardOutput | None = None


@dataclass
class _Column:
    """One env's episodes in the deferral: finished ones (oldest first) and the running one."""

    finished: deque[_Episode] = field(default_factory=deque)
    running: list[np.ndarray] = field(default_factory=list)
    given: int = 0
    """Rows of the running episode already answered (scored on its prefix)."""


@dataclass
class _Stream:
    """One env's running episode when rewards are asked step by step."""

    rows: list[np.ndarray] = field(default_factory=list)
    last_next: np.ndarray | None = None


def _row(obs: Obs, i: int) -> np.ndarray:
    """Observation ``i`` of a batch as one flat array (to follow an episode's continuity)."""
    if isinstance(obs, dict):
        return np.concatenate([np.asarray(v[i]).ravel() for _, v in sorted(obs.items())])
    return np.asarray(obs[i]).ravel()


class EpisodicReward(RewardModel):
    """Base of the trajectory-level reward modules (see the module docstring).

    Subclasses implement :meth:`episode_features` and :meth:`score_episodes`; every output
    of :meth:`score_episodes` must carry the signals :meth:`signal_names` lists. The signal
    ``episode_partial`` (1 on a step scored on its episode's prefix, or not scored yet) is
    added here.
    """

    deferrable = True
    defer_consumes_frames = True

    def __init__(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        super().__init__(observation_space, action_space)
        self._columns: list[_Column] = []
        self._streams: list[_Stream] = []
        self.deferred_s = 0.0
        """Seconds spent in :meth:`defer_step` and :meth:`compute_deferred`: the reward's
        cost to training (evaluation, step by step, is not counted)."""

    @abc.abstractmethod
    def episode_features(self, batch: TransitionBatch) -> np.ndarray:
        """``(B, ...)`` features of each row's ``s'`` (the next observation or its frame)."""

    @abc.abstractmethod
    def score_episodes(self, episodes: Sequence[np.ndarray],
                       complete: Sequence[bool]) -> list[RewardOutput]:
        """Per-step rewards ``(T_k,)`` (and signals) of each episode's feature rows
        ``(T_k, ...)``; ``complete[k]`` is false for an episode still running."""

    def signal_names(self) -> tuple[str, ...]:
        """Names of the signals :meth:`score_episodes` returns (filled with 0 on rows of a
        running episode when rewards are asked step by step)."""
        return ()

    def compute(self, batch: TransitionBatch) -> RewardOutput:
        """Step by step: each row is the next step of env ``i``'s stream (a row whose ``s``
        is not the last ``s'`` starts a new episode). 0 while an episode runs, its whole
        return on its last step."""
        feats = self.episode_features(batch)
        if len(self._streams) != len(batch):
            self._streams = [_Stream() for _ in range(len(batch))]
        rewards = np.zeros(len(batch))
        names = self.signal_names()
        signals = {name: np.zeros(len(batch)) for name in names}
        signals["episode_partial"] = np.ones(len(batch))
        ended: list[int] = []
        for i, stream in enumerate(self._streams):
            if stream.last_next is not None and not np.array_equal(_row(batch.obs, i),
                                                                   stream.last_next):
                stream.rows = []  # not the same episode: a new one starts here
            stream.rows.append(feats[i])
            stream.last_next = _row(batch.next_obs, i)
            if batch.dones[i]:
                ended.append(i)
        if ended:
            outs = self.score_episodes([np.stack(self._streams[i].rows) for i in ended],
                                       [True] * len(ended))
            for i, out in zip(ended, outs, strict=True):
                rewards[i] = float(np.sum(out.rewards))
                for name in names:
                    signals[name][i] = float(np.asarray(out.signals[name])[-1])
                signals["episode_partial"][i] = 0.0
                self._streams[i] = _Stream()
        return RewardOutput(rewards, signals)

    # -- the deferral --------------------------------------------------------------------

    def clear_episodes(self) -> None:
        """Forget the deferred episodes (the wrapper was reset: its pending steps are gone)."""
        self._columns = []

    def defer_step(self, batch: TransitionBatch) -> None:
        """Add each env's step to its running episode; an env whose episode ended starts a
        new one."""
        t0 = time.perf_counter()
        feats = self.episode_features(batch)
        if len(self._columns) != len(batch):
            self._columns = [_Column() for _ in range(len(batch))]
        for i, col in enumerate(self._columns):
            col.running.append(np.asarray(feats[i]))
            if batch.dones[i]:
                col.finished.append(_Episode(np.stack(col.running), given=col.given))
                col.running, col.given = [], 0
        self.deferred_s += time.perf_counter() - t0

    def compute_deferred(self, batch: TransitionBatch) -> RewardOutput:
        """The rewards of the oldest deferred steps, ``T`` steps of ``n_envs`` rows each in
        step order (the wrapper's flush): rows of finished episodes from their whole
        episode, rows of a running episode from its prefix."""
        t0 = time.perf_counter()
        n = len(self._columns)
        if n == 0 or len(batch) % n:
            raise RuntimeError(f"{len(batch)} deferred rows for {n} envs: the steps did not all "
                               "go through defer_step")
        steps = len(batch) // n
        dones = batch.dones.reshape(steps, n)
        todo: list[tuple[int, _Episode | None, np.ndarray]] = []
        for i, col in enumerate(self._columns):
            todo += [(i, ep, ep.features) for ep in col.finished if ep.out is None]
            avail = sum(len(ep.features) - ep.given for ep in col.finished)
            wanted = steps - avail
            if wanted > len(col.running) - col.given:
                raise RuntimeError(f"env {i}: {steps} deferred steps do not match the "
                                   f"{avail + len(col.running) - col.given} it was given")
            if wanted > 0:
                todo.append((i, None, np.stack(col.running)))
        outs = self.score_episodes([x for _, _, x in todo],
                                   [ep is not None for _, ep, _ in todo]) if todo else []
        prefixes: dict[int, RewardOutput] = {}
        for (i, ep, _), out in zip(todo, outs, strict=True):
            if ep is not None:
                ep.out = out
            else:
                prefixes[i] = out
        names = list(self.signal_names())
        rewards = np.zeros((steps, n))
        signals = {name: np.zeros((steps, n)) for name in names}
        signals["episode_partial"] = np.zeros((steps, n))
        for i, col in enumerate(self._columns):
            t = 0
            while t < steps and col.finished:
                ep = col.finished[0]
                assert ep.out is not None
                take = min(len(ep.features) - ep.given, steps - t)
                sl = slice(ep.given, ep.given + take)
                rewards[t:t + take, i] = np.asarray(ep.out.rewards)[sl]
                for name in names:
                    signals[name][t:t + take, i] = np.asarray(ep.out.signals[name])[sl]
                ep.given += take
                t += take
                if ep.given == len(ep.features):
                    if not dones[t - 1, i]:
                        raise RuntimeError(f"env {i}: an episode's last step is not marked done "
                                           "in the deferred steps")
                    col.finished.popleft()
            if t < steps:
                out = prefixes[i]
                take = steps - t
                sl = slice(col.given, col.given + take)
                rewards[t:, i] = np.asarray(out.rewards)[sl]
                for name in names:
                    signals[name][t:, i] = np.asarray(out.signals[name])[sl]
                signals["episode_partial"][t:, i] = 1.0
                col.given += take
        self.deferred_s += time.perf_counter() - t0
        return RewardOutput(rewards.reshape(-1), {k: v.reshape(-1) for k, v in signals.items()})

    def agent_kwargs(self, algo: str) -> dict[str, Any]:
        """An off-policy agent stores the steps in a :class:`~rewardlearn.wrappers.replay.
        DeferredReplayBuffer` (rows trained on once their episode has its rewards)."""
        from rewardlearn.agents import on_policy

        if on_policy(algo):
            return {}
        from rewardlearn.wrappers.replay import DeferredReplayBuffer

        return {"replay_buffer_class": DeferredReplayBuffer}


def is_episodic(model: RewardModel) -> TypeGuard[EpisodicReward]:
    """Whether ``model`` scores whole episodes (its rewards must be deferred)."""
    return isinstance(model, EpisodicReward)


def holds_episodic(model: RewardModel) -> bool:
    """Whether ``model`` is, or shapes (``ShapedReward.base``), a reward that scores whole
    episodes: a run refuses the shaped one (it could only be scored step by step)."""
    return is_episodic(model) or isinstance(getattr(model, "base", None), EpisodicReward)


__all__ = ["EpisodicReward", "holds_episodic", "is_episodic"]
