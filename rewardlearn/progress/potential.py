"""Scoring rollouts with a progress model, and the progress shaping potential.

:class:`ProgressScorer` turns a batch of transitions into model predictions
for ``s`` and ``s'``, keeping each env's recent frames so the model sees the
same windows as in training. :class:`ProgressPotential` is ``shaping=progress``:
``Phi(s) = scale * (progress(s) - offset)``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from rewardlearn.progress.modeling import Prediction, ProgressModel
from rewardlearn.progress.processor import WindowTracker
from rewardlearn.rewards.base import Obs, TransitionBatch
from rewardlearn.rewards.checkpoint import check_spaces, describe_space
from rewardlearn.shaping.potentials import Potential


class ProgressScorer:
    """Predictions for ``obs`` and ``next_obs`` of each batch, with per-env windows."""

    def __init__(self, model: ProgressModel) -> None:
        self.model = model
        self.tracker = WindowTracker(model.config.window, model.config.stride)

    def score(self, batch: TransitionBatch) -> tuple[Prediction, Prediction]:
        """``(prediction for s, prediction for s')`` per row."""
        m = self.model
        f_obs = m.features(batch.obs, batch.obs_frames if m.needs_frames else None)
        f_next = m.features(batch.next_obs, batch.frames if m.needs_frames else None)
        w_obs, w_next = self.tracker.windows(f_obs, f_next, batch.dones)
        pred = m.predict(np.concatenate([w_obs, w_next]))
        n = len(batch)

        def part(sl: slice) -> Prediction:
            return Prediction(pred.stage[sl], pred.stage_probs[sl], pred.tau[sl],
                              pred.progress[sl])

        return part(slice(0, n)), part(slice(n, 2 * n))

    def single(self, obs: Obs, frames: np.ndarray | None = None) -> Prediction:
        """Predictions for observations without history (the frame repeated over the window)."""
        f = self.model.features(obs, frames)
        return self.model.predict(np.repeat(f[:, None], self.model.config.window, axis=1))


def check_model_spaces(model: ProgressModel, observation_space: gym.Space,
                       action_space: gym.Space, where: str) -> None:
    """Refuse a progress model trained for other spaces than the env's."""
    check_spaces(describe_space(model.observation_space), describe_space(model.action_space),
                 observation_space, action_space, where=where)


class ProgressPotential(Potential):
    """``Phi(s) = scale * (progress(s) - offset)`` from a progress model (``shaping=progress``).

    With the default ``offset=1`` the potential is minus the remaining progress:
    0 at completion, so the step into a terminal success state (where ``Phi`` must
    be 0) does not lose the potential built up on the way; any offset is
    policy-invariant, this one keeps the early learning signal pointing at the goal.

    Args:
        path: a ``progress_model.pt`` (from ``rewardlearn-train-progress``);
            ``None`` when the model comes from a saved shaped reward's state.
        scale: multiplies the progress (in [0, 1]).
        offset: subtracted from the progress before scaling.
        device: torch device for the model.

    Signals: ``stage`` and ``progress`` predicted for ``s'``.
    """

    name = "progress"

    def __init__(self, path: str | None = None, scale: float = 1.0, offset: float = 1.0,
                 device: str = "cpu", model: ProgressModel | None = None) -> None:
        self.path = path
        self.scale = float(scale)
        self.offset = float(offset)
        self.device = device
        self._spaces: tuple[gym.Space, gym.Space] | None = None
        self.scorer: ProgressScorer | None = None
        if model is None and path is not None:
            model = ProgressModel.load(path, device=device)
        if model is not None:
            self._set_model(model)

    def _set_model(self, model: ProgressModel) -> None:
        if self._spaces is not None:
            check_model_spaces(model, *self._spaces, where=f"progress model {self.path or ''}")
        self.scorer = ProgressScorer(model)
        self.needs_frames = model.needs_frames
        self.frame_size = model.frame_size

    def _scorer(self) -> ProgressScorer:
        if self.scorer is None:
            raise RuntimeError("ProgressPotential has no model: give path=<progress_model.pt>")
        return self.scorer

    def bind(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        self._spaces = (observation_space, action_space)
        if self.scorer is not None:
            check_model_spaces(self.scorer.model, observation_space, action_space,
                               where=f"progress model {self.path}")

    def __call__(self, obs: Obs, frames: np.ndarray | None = None) -> np.ndarray:
        return self.phi(self._scorer().single(obs, frames).progress)

    def phi(self, progress: np.ndarray) -> np.ndarray:
        """The potential of a progress value."""
        return self.scale * (np.asarray(progress, dtype=np.float64) - self.offset)

    def transition(self, batch: TransitionBatch, need_obs: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        pred_s, pred_next = self._scorer().score(batch)
        signals = {"stage": pred_next.stage.astype(np.float64), "progress": pred_next.progress}
        return self.phi(pred_s.progress), self.phi(pred_next.progress), signals

    def config(self) -> dict[str, Any]:
        return {"path": None, "scale": self.scale, "offset": self.offset, "device": self.device}

    def state_dict(self) -> dict[str, Any]:
        return {"model": self._scorer().model.payload()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "model" in state:
            self._set_model(ProgressModel.from_payload(state["model"], device=self.device))

    def summary(self) -> dict[str, Any]:
        model = self._scorer().model
        held = model.metrics.get("heldout") or {}
        return {"progress_model": self.path, "model_voc": held.get("voc"),
                "model_stage_acc": held.get("stage_acc")}


__all__ = ["ProgressPotential", "ProgressScorer", "check_model_spaces"]
