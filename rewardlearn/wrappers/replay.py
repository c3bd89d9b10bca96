"""A replay buffer whose rows wait for their deferred reward (trajectory-level rewards).

With an off-policy agent and a reward known only at an episode's end
(:class:`~rewardlearn.wrappers.episodic.EpisodicReward`), SB3 stores each step at once with
a placeholder reward; :class:`~rewardlearn.wrappers.vec.DeferredRewardCallback` writes the
real reward into that row when the episode ends. Until then the row must not be trained on:
:class:`DeferredReplayBuffer` samples only rows marked ready.

Rows are found by *stamp*: the ``k``-th ``add`` (from 0) goes to row ``k % buffer_size``
(SB3 fills rows in order and wraps around), and a stamp whose row was overwritten since is
skipped, so a write after a wrap-around never lands on a newer transition. The ``n_envs``
rows of one ``add`` share a stamp (one row, one column per env).

Example:
    >>> import numpy as np, gymnasium as gym
    >>> box = gym.spaces.Box(-1, 1, (1,), np.float32)
    >>> rb = DeferredReplayBuffer(3, box, box, device="cpu", n_envs=1)
    >>> for t in range(4):   # the 4th add wraps around onto row 0 (stamp 0 is gone)
    ...     rb.add(np.zeros((1, 1)), np.zeros((1, 1)), np.zeros((1, 1)), np.zeros(1),
    ...            np.zeros(1), [{}])
    >>> rb.write([0, 1, 2, 3], np.arange(4.0).reshape(4, 1))
    3
    >>> rb.rewards[:, 0].tolist(), rb.n_ready
    ([3.0, 1.0, 2.0], 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize


class DeferredReplayBuffer(ReplayBuffer):
    """SB3's :class:`ReplayBuffer` sampling only rows whose (deferred) reward was written.

    ``adds`` is the stamp the next :meth:`add` gets; :meth:`write` sets the rewards of the
    rows of given stamps (``(k, n_envs)`` values) and makes them ready.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("optimize_memory_usage"):
            raise ValueError("deferred rewards do not support optimize_memory_usage")
        super().__init__(*args, **kwargs)
        self.ready = np.zeros((self.buffer_size, self.n_envs), dtype=bool)
        self.stamps = np.full(self.buffer_size, -1, dtype=np.int64)
        self.adds = 0
        self.n_ready = 0

    def add(self, obs: np.ndarray, next_obs: np.ndarray, action: np.ndarray,
            reward: np.ndarray, done: np.ndarray, infos: list[dict[str, Any]]) -> None:
        row = self.pos
        self.n_ready -= int(np.count_nonzero(self.ready[row]))
        self.ready[row] = False
        self.stamps[row] = self.adds
        self.adds += 1
        super().add(obs, next_obs, action, reward, done, infos)

    def write(self, stamps: Sequence[int], rewards: np.ndarray) -> int:
        """Set the rewards of the rows stored with ``stamps`` (``rewards``: ``(k, n_envs)``)
        and make them ready; returns how many steps were written (a row overwritten since
        is skipped)."""
        stamps_arr = np.asarray(stamps, np.int64)
        rewards = np.asarray(rewards, np.float32).reshape(len(stamps_arr), self.n_envs)
        rows = stamps_arr % self.buffer_size
        alive = self.stamps[rows] == stamps_arr
        rows, rewards = rows[alive], rewards[alive]
        self.rewards[rows] = rewards
        self.n_ready += int(np.count_nonzero(~self.ready[rows]))
        self.ready[rows] = True
        return int(alive.sum())

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> ReplayBufferSamples:
        """``batch_size`` (row, env) pairs drawn uniformly among the ready ones."""
        stored = self.buffer_size if self.full else self.pos
        if self.n_ready == 0:
            raise RuntimeError("no replay rows have their reward yet (no episode has ended); "
                               "DeferredRewardCallback holds training until one has")
        ready = self.ready[:stored].reshape(-1)
        if self.n_ready * 2 >= stored * self.n_envs:  # mostly ready: draw and redraw
            picks = np.empty(0, np.int64)
            while len(picks) < batch_size:
                draw = np.random.randint(0, stored * self.n_envs, size=2 * batch_size)
                picks = np.concatenate([picks, draw[ready[draw]]])
            picks = picks[:batch_size]
        else:
            flat = np.flatnonzero(ready)
            picks = flat[np.random.randint(0, len(flat), size=batch_size)]
        rows, envs = np.divmod(picks, self.n_envs)
        return self._samples(rows, envs, env)

    def _samples(self, rows: np.ndarray, envs: np.ndarray, env: VecNormalize | None
                 ) -> ReplayBufferSamples:
        """SB3's ``_get_samples`` for given env columns (SB3 draws them at random)."""
        data = (
            self._normalize_obs(self.observations[rows, envs, :], env),
            self.actions[rows, envs, :],
            self._normalize_obs(self.next_observations[rows, envs, :], env),
            (self.dones[rows, envs] * (1 - self.timeouts[rows, envs])).reshape(-1, 1),
            self._normalize_reward(self.rewards[rows, envs].reshape(-1, 1), env),
        )
        return ReplayBufferSamples(*tuple(map(self.to_torch, data)))


__all__ = ["DeferredReplayBuffer"]
