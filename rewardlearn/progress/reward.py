"""``reward=progress``: a stage-aware progress model (SARM) used the policy-invariant way.

``mode="potential"`` (default, Robo-Dopamine's scheme): a success bonus when the
predicted progress of ``s'`` reaches ``1 - delta`` (``delta = 0.05``; once per
episode by default), plus potential-based shaping with
``Phi = scale * (progress - offset)`` (``offset = 1``: minus the remaining progress):
``r = bonus + gamma * Phi(s') - Phi(s)``, ``Phi = 0`` at terminal states, the
agent's ``gamma``, and each ``Phi(s)`` as computed when ``s`` was entered
(:class:`rewardlearn.shaping.ShapingTerm`). Using progress itself, or its
difference, as the reward invites the "semantic trap" (the agent parks in
high-progress states instead of finishing; Robo-Dopamine 2025 lost 43.7% without
policy-invariant shaping);
``mode="delta"`` gives the raw ``progress(s') - progress(s)`` and ``mode="level"``
the per-step ``scale * (progress(s') - offset)`` (with ``offset = 1`` a cost of the
remaining progress, the form of ``PickPlace``'s hand-written dense reward), both for
comparison only: neither is policy-invariant.

Signals per step: ``stage`` and ``progress`` predicted for ``s'`` (they land in
the rollout sidecars), ``success_pred``, and in potential mode ``potential`` and
``shaping``.

Example:
    rewardlearn-train-progress demos=data/pick_place-expert-v0 \\
        out=runs/progress/pick_place/progress_model.pt
    python train.py env=pick_place agent=ppo reward=progress \\
        reward.model.path=runs/progress/pick_place/progress_model.pt
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from rewardlearn.progress.configuration import REWARD_MODES, OnlineConfig, ProgressRewardConfig
from rewardlearn.progress.modeling import ProgressModel
from rewardlearn.progress.potential import (
    ProgressScorer,
    check_model_spaces,
    make_refiner,
    saved_online,
)
from rewardlearn.progress.scorer import env_stages
from rewardlearn.rewards.base import RewardModel, RewardOutput, TransitionBatch
from rewardlearn.shaping.shaped import ShapingGamma, ShapingTerm

if TYPE_CHECKING:
    from rewardlearn.progress.online import OnlineRefiner

MODES = REWARD_MODES


class ProgressReward(ShapingGamma, RewardModel):
    """Reward from a trained progress model.

    Args:
        observation_space, action_space: the env's spaces (the model must match them).
        config: the :class:`~rewardlearn.progress.configuration.ProgressRewardConfig`
            (the model's path, mode, bonus, shaping scale, online refinement), or
            **kwargs: its fields. The default ``offset`` 1 makes ``Phi`` 0 at completion,
            so entering the terminal success state costs nothing.
    """

    name = "progress"
    settings_class = ProgressRewardConfig
    uses_shaping_gamma = True
    shapes_with_progress = True

    def __init__(self, observation_space: gym.Space, action_space: gym.Space,
                 config: ProgressRewardConfig | None = None, **kwargs: Any) -> None:
        super().__init__(observation_space, action_space)
        self.cfg = cfg = ProgressRewardConfig.build(config, **kwargs)
        self.path = cfg.path
        self.stage_key = cfg.stage_key
        self.mode = cfg.mode
        self.success_bonus = float(cfg.success_bonus)
        self.delta = float(cfg.delta)
        self.bonus_once = bool(cfg.bonus_once)
        self.scale = float(cfg.scale)
        self.offset = float(cfg.offset)
        self.device = cfg.device
        self.online: OnlineConfig = cfg.online
        self.refiner: OnlineRefiner | None = None
        self.uses_shaping_gamma = cfg.mode == "potential"
        self.shapes_with_progress = cfg.mode == "potential"
        self.name = "progress" if cfg.mode == "potential" else f"progress_{cfg.mode}"
        self.term = ShapingTerm(cfg.gamma)
        self.scorer: ProgressScorer | None = None
        self._bonus_paid = np.zeros(0, dtype=bool)
        if cfg.path is not None:
            self._set_model(ProgressModel.load(cfg.path, observation_space, action_space,
                                               device=cfg.device))

    def _set_model(self, model: ProgressModel) -> None:
        check_model_spaces(model, self.observation_space, self.action_space,
                           where=f"progress model {self.path or ''}")
        self.scorer = ProgressScorer(model)
        self.needs_frames = model.needs_frames
        self.frame_size = model.frame_size
        self.refiner = make_refiner(self.scorer, self.online)

    def compute(self, batch: TransitionBatch) -> RewardOutput:
        if self.scorer is None:
            raise RuntimeError("reward=progress has no model: set reward.model.path=<progress "
                               "model .pt> (rewardlearn-train-progress makes one)")
        new_episode = self.term.need_obs(batch)
        pred_s, pred_next = self.scorer.score(
            batch, env_stages(batch, self.stage_key, self.scorer.model.num_stages))
        reached = pred_next.progress >= 1.0 - self.delta
        signals: dict[str, np.ndarray] = {
            "stage": pred_next.stage.astype(np.float64), "progress": pred_next.progress,
            "success_pred": reached.astype(np.float64),
            "model_version": self.scorer.last_versions.astype(np.float64)}
        if self.mode == "delta":
            return RewardOutput(pred_next.progress - pred_s.progress, signals)
        if self.mode == "level":
            return RewardOutput(self.scale * (pred_next.progress - self.offset), signals)

        n = len(batch)
        if len(self._bonus_paid) != n:
            self._bonus_paid = np.zeros(n, dtype=bool)
        self._bonus_paid[new_episode] = False
        pay = reached & ~self._bonus_paid if self.bonus_once else reached
        self._bonus_paid |= pay
        self._bonus_paid[batch.dones] = False
        term, _, phi_used = self.term(batch, self.scale * (pred_s.progress - self.offset),
                                      self.scale * (pred_next.progress - self.offset))
        bonus = self.success_bonus * pay
        signals.update(potential=phi_used, shaping=term, bonus=bonus.astype(np.float64))
        return RewardOutput(bonus + term, signals)

    def observe(self, batch: TransitionBatch, rewards: np.ndarray) -> None:
        if self.refiner is not None:
            self.refiner.observe(batch)

    def callbacks(self) -> list[Any]:
        return [self.refiner.callback()] if self.refiner is not None else []

    def summary(self) -> dict[str, Any]:
        held = (self.scorer.model.metrics.get("heldout") or {}) if self.scorer else {}
        return {"progress_model": self.path, "mode": self.mode, "gamma": self.gamma,
                "model_voc": held.get("voc"), "model_stage_acc": held.get("stage_acc"),
                **(self.refiner.summary() if self.refiner is not None else {})}

    def config(self) -> dict[str, Any]:  # the model is in the state
        return {**self.cfg.to_dict(), "path": None, "gamma": self.gamma,
                "online": saved_online(self.online)}

    def state_dict(self) -> dict[str, Any]:
        if self.scorer is None:
            return {}
        return {"model": self.scorer.model.payload()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "model" in state:
            self._set_model(ProgressModel.from_payload(state["model"], device=self.device))


__all__ = ["MODES", "ProgressReward"]
