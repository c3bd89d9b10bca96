"""Scoring rollouts with a progress model: :class:`ProgressScorer` turns a batch of
transitions into model predictions for ``s`` and ``s'``, keeping each env's recent frames
so the model sees the same windows as in training, and one model version per episode
(online refinement publishes new versions).
"""

from __future__ import annotations

import numpy as np

from rewardlearn.progress.modeling import Prediction, ProgressModel
from rewardlearn.progress.processor import WindowTracker
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

    def score(self, batch: TransitionBatch) -> tuple[Prediction, Prediction]:
        """``(prediction for s, prediction for s')`` per row."""
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
        stage = np.zeros(2 * n, np.int64)
        probs = np.zeros((2 * n, self.model.num_stages))
        tau = np.zeros(2 * n)
        progress = np.zeros(2 * n)
        for v in np.unique(versions):
            rows = versions == v
            p = self.models[int(v)].predict(windows[rows])
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
