"""The progress shaping potential: :class:`ProgressPotential` is ``shaping=progress``,
``Phi(s) = scale * (progress(s) - offset)``, scored by
:class:`~rewardlearn.progress.scorer.ProgressScorer` and refined online by
:class:`~rewardlearn.progress.online.OnlineRefiner` when enabled.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from rewardlearn.progress.configuration import OnlineConfig
from rewardlearn.progress.modeling import ProgressModel
from rewardlearn.progress.online import OnlineRefiner
from rewardlearn.progress.scorer import ProgressScorer, env_stages
from rewardlearn.rewards.base import Obs, TransitionBatch
from rewardlearn.rewards.checkpoint import check_spaces, describe_space
from rewardlearn.shaping.potentials import Potential
from rewardlearn.utils import to_dict


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
        stage_key: read the stage of each ``s'`` from ``info[stage_key]`` (the env's stage
            signal, as ``reward=drs`` and online refinement use it) instead of the model's
            stage head; the model then supplies only the within-stage progress ``tau``,
            conditioned on that stage. ``Phi(s)`` of an episode's first state (no info yet)
            and rows whose info lacks the key use the predicted stage. ``None`` (default):
            the model predicts both. A stage flip of the head moves ``Phi`` by a whole
            stage share; with the env's stage the per-step change follows the true progress
            far better on a learner's own states (``pick_place``: Pearson 0.19 -> 0.75),
            though PPO from a cloned start measured no gain (``docs/progress.md``).

        online: :class:`~rewardlearn.progress.configuration.OnlineConfig` fields: refine
            the model on the agent's own rollouts while RL runs (off by default;
            :mod:`rewardlearn.progress.online`). Each env keeps a model version for a
            whole episode, so ``Phi(s)`` and ``Phi(s')`` of a transition come from one
            version.

    Signals: ``stage`` and ``progress`` predicted for ``s'``, and ``model_version``
    (the model version that scored the transition).
    """

    name = "progress"

    def __init__(self, path: str | None = None, scale: float = 1.0, offset: float = 1.0,
                 device: str = "cpu", model: ProgressModel | None = None,
                 online: Mapping[str, Any] | None = None, stage_key: str | None = None
                 ) -> None:
        self.path = path
        self.stage_key = stage_key or None
        self.scale = float(scale)
        self.offset = float(offset)
        self.device = device
        self.online = OnlineConfig.from_kwargs(to_dict(online))
        self.refiner: OnlineRefiner | None = None
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
        self.refiner = make_refiner(self.scorer, self.online)

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
        scorer = self._scorer()
        pred_s, pred_next = scorer.score(
            batch, env_stages(batch, self.stage_key, scorer.model.num_stages))
        signals = {"stage": pred_next.stage.astype(np.float64), "progress": pred_next.progress,
                   "model_version": scorer.last_versions.astype(np.float64)}
        return self.phi(pred_s.progress), self.phi(pred_next.progress), signals

    def observe(self, batch: TransitionBatch) -> None:
        if self.refiner is not None:
            self.refiner.observe(batch)

    def callbacks(self) -> list[Any]:
        return [self.refiner.callback()] if self.refiner is not None else []

    def config(self) -> dict[str, Any]:
        return {"path": None, "scale": self.scale, "offset": self.offset, "device": self.device,
                "online": saved_online(self.online), "stage_key": self.stage_key}

    def state_dict(self) -> dict[str, Any]:
        return {"model": self._scorer().model.payload()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "model" in state:
            self._set_model(ProgressModel.from_payload(state["model"], device=self.device))

    def summary(self) -> dict[str, Any]:
        model = self._scorer().model
        held = model.metrics.get("heldout") or {}
        return {"progress_model": self.path, "model_voc": held.get("voc"),
                "model_stage_acc": held.get("stage_acc"),
                **(self.refiner.summary() if self.refiner is not None else {})}


def make_refiner(scorer: ProgressScorer, online: OnlineConfig) -> OnlineRefiner | None:
    """The online refiner of ``scorer``'s model when ``online.enabled``, else ``None``."""
    if not online.enabled:
        return None
    return OnlineRefiner(scorer, online)


def saved_online(online: OnlineConfig) -> dict[str, Any]:
    """The online settings as saved with a reward module: refinement off (a saved module
    scores with its last model version; its demos need not exist where it is loaded)."""
    return {**online.to_dict(), "enabled": False}


__all__ = ["ProgressPotential", "ProgressScorer", "check_model_spaces", "make_refiner",
           "saved_online"]
