"""Scoring rollouts with a progress model: :class:`ProgressScorer` turns a batch of
transitions into model predictions for ``s`` and ``s'``, keeping each env's recent frames
so the model sees the same windows as in training, and one model version per episode
(online refinement publishes new versions).
"""

from __future__ import annotations

import numpy as np

from rewardlearn.progress.labels import WindowTracker
from rewardlearn.progress.modeling import Prediction, ProgressModel
from rewardlearn.rewards.base import Obs, TransitionBatch


class ProgressScorer:
    """Predictions for ``obs`` and ``next_obs`` of each batch, with per-env windows.

    Model versions (online refinement): :meth:`publish` adds a new model; each env row
    keeps the version it started its episode with and takes the newest at its next
    episode start, so one episode is scored by one model (``last_versions``: each row's
    version in the last batch).
    """

    def __init__(self, model: ProgressModel) -> None:
        self.model = model
        self.tracker = WindowTracker(model.config.window, model.config.stride)
        self.version = 0
        self.models: dict[int, ProgressModel] = {0: model}
        self.last_versions = np.zeros(0, np.int64)
        self._last: tuple[int, np.ndarray, np.ndarray] | None = None

    def publish(self, model: ProgressModel) -> int:
        """Make ``model`` the newest version (used from each env's next episode); its number."""
        self.version += 1
        self.models[self.version] = model
        self.model = model
        return self.version

    def features_of(self, batch: TransitionBatch) -> tuple[np.ndarray, np.ndarray]:
        """``(features of s, features of s')`` (reused from :meth:`score` of the same batch)."""
        if self._last is not None and self._last[0] == id(batch):
            return self._last[1], self._last[2]
        m = self.model
        return (m.features(batch.obs, batch.obs_frames if m.needs_frames else None),
                m.features(batch.next_obs, batch.frames if m.needs_frames else None))

    def score(self, batch: TransitionBatch, next_stage: np.ndarray | None = None
              ) -> tuple[Prediction, Prediction]:
        """``(prediction for s, prediction for s')`` per row.

        ``next_stage`` (``(B,)`` ints, optional): the known stage of each ``s'`` (``-1``:
        unknown), used in place of the predicted one (:meth:`ProgressModel.predict`).
        """
        self._last = None
        f_obs, f_next = self.features_of(batch)
        self._last = (id(batch), f_obs, f_next)
        n = len(batch)
        fresh = self.tracker.restarts(f_obs)
        if len(self.last_versions) != n:
            self.last_versions = np.full(n, self.version, np.int64)
        self.last_versions[fresh] = self.version
        w_obs, w_next = self.tracker.windows(f_obs, f_next, batch.dones)
        windows = np.concatenate([w_obs, w_next])
        versions = np.concatenate([self.last_versions, self.last_versions])
        known = np.full(2 * n, -1, np.int64)
        if next_stage is not None:
            known[n:] = np.asarray(next_stage, np.int64).reshape(n)
        stage = np.zeros(2 * n, np.int64)
        probs = np.zeros((2 * n, self.model.num_stages))
        tau = np.zeros(2 * n)
        progress = np.zeros(2 * n)
        for v in np.unique(versions):
            rows = versions == v
            p = self.models[int(v)].predict(windows[rows], stage=known[rows])
            stage[rows], probs[rows], tau[rows], progress[rows] = (p.stage, p.stage_probs,
                                                                  p.tau, p.progress)
        for v in [v for v in self.models if v != self.version and v not in self.last_versions]:
            del self.models[v]

        def part(sl: slice) -> Prediction:
            return Prediction(stage[sl], probs[sl], tau[sl], progress[sl])

        return part(slice(0, n)), part(slice(n, 2 * n))

    def single(self, obs: Obs, frames: np.ndarray | None = None) -> Prediction:
        """Predictions for observations without history (the frame repeated over the window)."""
        f = self.model.features(obs, frames)
        return self.model.predict(np.repeat(f[:, None], self.model.config.window, axis=1))


def env_stages(batch: TransitionBatch, key: str | None, num_stages: int) -> np.ndarray | None:
    """Each ``s'``'s stage from ``info[key]`` (the env's stage signal; ``-1`` where an info
    lacks it), for :meth:`ProgressScorer.score`; ``None`` when ``key`` is ``None`` or the
    batch carries no infos (the model's stage head decides).

    Raises ``ValueError`` on a stage outside the model's ``0..num_stages - 1``.
    """
    if key is None or not batch.infos:
        return None
    out = np.full(len(batch), -1, np.int64)
    for i, info in enumerate(batch.infos):
        value = info.get(key) if info else None
        if value is None:
            continue
        stage = int(value)
        if not 0 <= stage < num_stages:
            raise ValueError(
                f"info[{key!r}] = {stage}, outside the progress model's {num_stages} stages "
                f"(0..{num_stages - 1}); the env's stages must be the ones the model was "
                "trained on, or set stage_key=null")
        out[i] = stage
    return out
