"""Failure-aware reading of an episode's per-step stage signal (shared by DrS and progress).

The env reports a stage index per state (``info["stage"]``) and success at the end; no
clock and no true progress are read. Two questions are answered per state:

* :func:`best_after`: the best stage the episode reached *strictly after* a state (success
  counts as stage ``num_stages``); DrS calls a state positive when this exceeds its stage.
* :func:`run_advances`: whether the state's *run* (maximal span of equal stages) ended by
  going up: the next run has a higher stage, or it is the last run of a successful
  episode. A run that ended by going down (a dropped object) or by the episode's end
  without success (a stall) did not advance, however long it lasted.

Example:
    >>> import numpy as np
    >>> stages = np.array([0, 0, 1, 1, 2, 1, 1])     # grasp, carry, drop, never regrasped
    >>> best_after(stages, success=False, num_stages=3).tolist()
    [2, 2, 2, 2, 1, 1, -1]
    >>> run_advances(stages, success=False).tolist()
    [True, True, True, True, False, False, False]
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback


def stage_runs(stages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, run)``: first index of each maximal run of equal stages, and each state's
    run index."""
    k = np.asarray(stages, np.int64).reshape(-1)
    if not len(k):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    run = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(k)]))
    return starts, run


def best_after(stages: np.ndarray, success: bool, num_stages: int) -> np.ndarray:
    """Best stage reached strictly after each state (-1 after the last one); the last state
    of a successful episode counts as stage ``num_stages``."""
    k = np.asarray(stages, np.int64).reshape(-1)
    reached = k.copy()
    if success and len(reached):
        reached[-1] = num_stages
    after = np.full(len(k), -1, np.int64)
    if len(k) > 1:
        after[:-1] = np.maximum.accumulate(reached[::-1])[::-1][1:]
    return after


def run_advances(stages: np.ndarray, success: bool) -> np.ndarray:
    """Per state: its run ended by going up (next run's stage higher, or the episode's last
    run when it succeeded)."""
    k = np.asarray(stages, np.int64).reshape(-1)
    starts, run = stage_runs(k)
    if not len(k):
        return np.zeros(0, bool)
    run_stage = k[starts]
    up = np.r_[run_stage[1:] > run_stage[:-1], bool(success)]
    return up[run]


class PeriodicUpdate(BaseCallback):
    """Runs ``update()`` between rollouts once ``every`` env steps have passed since the last
    one (and ``ready()``), logging its metrics as ``prefix/<key>``; ``report(metrics, steps)``
    may log more. For rewards learned with the agent (DrS, online progress refinement).
    ``update_s``: the seconds spent in ``update()``, part of the reward's cost in a run's
    ``summary.json`` (``reward_update_s``)."""

    def __init__(self, every: int, update: Callable[[], dict[str, float]], prefix: str,
                 ready: Callable[[], bool] = lambda: True,
                 report: Callable[[dict[str, float], int], None] | None = None) -> None:
        super().__init__()
        self.every = int(every)
        self.next_update = self.every
        self._update, self._ready, self._report = update, ready, report
        self.prefix = prefix
        self.update_s = 0.0

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        if self.num_timesteps < self.next_update or not self._ready():
            return
        self.next_update = self.num_timesteps + self.every
        t0 = time.perf_counter()
        metrics = self._update()
        self.update_s += time.perf_counter() - t0
        for key, value in metrics.items():
            self.logger.record(f"{self.prefix}/{key}", value)
        if metrics and self._report is not None:
            self._report(metrics, self.num_timesteps)


__all__ = ["PeriodicUpdate", "best_after", "run_advances", "stage_runs"]
