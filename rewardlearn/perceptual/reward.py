"""``reward=perceptual``: a perceptual reward learned from a few demos (Sermanet et al. 2016).

Built from ``demos`` (a dataset from ``rewardlearn-collect ... frames=true``)
when the env is known: the encoder (``tcn`` by default: trained self-supervised on
the demos' frames; ``clip``, ``torchvision``, ``state``, ``downsample``, or a dotted
path) embeds every demo frame, the demos are split into steps, and each step gets
its discriminative features. Or from a saved model (``path``).

``mode``:

- ``perceptual``: ``r = scale * (reward(s') - offset)``, the step-weighted score in
  [0, 1] shifted by ``offset`` (1 by default: every step before the task is done costs,
  so on tasks that terminate at success finishing sooner pays; with ``offset=0`` the
  reward is positive and ending the episode by succeeding would forfeit it);
- ``goal``: ``r = scale * similarity(e(s'), goal)`` (goal: the demos' final frames or
  ``goal=<image>``);
- ``potential``: ``r = gamma * Phi(s') - Phi(s)`` with ``Phi = scale * (reward - 1)``
  (policy-invariant shaping alone; use ``reward=env shaping=perceptual`` to add it
  to the env's reward).

With frame ids in the batch (reward evaluation), each distinct frame is embedded
once until :meth:`~PerceptualReward.clear_frame_cache`.

Signals per step (rollout sidecars): ``perceptual_step`` (current step of ``s'``),
``step_score_<i>`` (score of each step), ``perceptual_reward`` and ``goal_similarity``.

Example:
    rewardlearn-collect env=pick_place n_episodes=20 frames=true
    python train.py env=pick_place agent=ppo reward=perceptual \\
        reward.model.demos=data/pick_place-expert-v0
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from rewardlearn.perceptual.configuration import MODES, PerceptualRewardConfig
from rewardlearn.perceptual.modeling import PerceptualModel, PerceptualPrediction
from rewardlearn.perceptual.potential import build_perceptual_model, perceptual_summary
from rewardlearn.rewards.base import FrameCache, Obs, RewardModel, RewardOutput, TransitionBatch
from rewardlearn.shaping.shaped import ShapingGamma, ShapingTerm


class PerceptualReward(ShapingGamma, RewardModel):
    """Reward from a perceptual model fitted on demos.

    Args:
        observation_space, action_space: the env's spaces (the demos' sizes must match).
        config: the :class:`~rewardlearn.perceptual.configuration.PerceptualRewardConfig`
            (demos or a saved model, mode, encoder, fitting settings), or **kwargs: its
            fields.
    """

    name = "perceptual"
    settings_class = PerceptualRewardConfig
    frame_cache: FrameCache

    def __init__(self, observation_space: gym.Space, action_space: gym.Space,
                 config: PerceptualRewardConfig | None = None, **kwargs: Any) -> None:
        super().__init__(observation_space, action_space)
        self.cfg = PerceptualRewardConfig.build(config, **kwargs)
        self.mode = self.cfg.mode
        self.scale = float(self.cfg.scale)
        self.offset = float(self.cfg.offset)
        self.uses_shaping_gamma = self.mode == "potential"
        self.term = ShapingTerm(self.cfg.gamma)
        self.model: PerceptualModel | None = None
        self.frame_cache = FrameCache()
        if self.cfg.demos is not None or self.cfg.path is not None:
            self._set_model(build_perceptual_model(
                observation_space, action_space, self.cfg.demos, self.cfg.path,
                self.cfg.encoder, self.cfg.settings.to_dict(), self.cfg.save, self.cfg.goal,
                where="reward=perceptual"))

    def _set_model(self, model: PerceptualModel) -> None:
        model.check_spaces(self.observation_space, self.action_space,
                           where="reward=perceptual model")
        self.model = model
        self.needs_frames = model.needs_frames
        self.frame_size = model.frame_size
        self.frame_cache.clear()

    def _predict(self, m: PerceptualModel, obs: Obs, frames: np.ndarray | None,
                 ids: np.ndarray | None) -> PerceptualPrediction:
        """``m.predict``; with frame ids, each distinct frame is embedded once (cached)."""
        if ids is None or frames is None or not m.needs_frames:
            return m.predict(obs, frames)
        emb = self.frame_cache.rows(ids, frames, lambda f: m.embed(None, f))
        return m.predict_embedded(np.asarray(emb, np.float64))

    def compute(self, batch: TransitionBatch) -> RewardOutput:
        if self.model is None:
            raise RuntimeError("reward=perceptual has no model: set reward.model.demos=<dataset> "
                               "(rewardlearn-collect env=... frames=true)")
        m = self.model
        nxt = self._predict(m, batch.next_obs, batch.frames, batch.frame_ids)
        signals: dict[str, np.ndarray] = {"perceptual_step": nxt.step.astype(np.float64),
                                          "perceptual_reward": nxt.reward,
                                          "goal_similarity": nxt.goal_similarity}
        for i in range(nxt.scores.shape[1]):
            signals[f"step_score_{i}"] = nxt.scores[:, i]
        if self.mode == "perceptual":
            return RewardOutput(self.scale * (nxt.reward - self.offset), signals)
        if self.mode == "goal":
            return RewardOutput(self.scale * nxt.goal_similarity, signals)
        need = self.term.need_obs(batch)
        phi_obs = np.zeros(len(batch))
        if need.any():
            from rewardlearn.shaping.potentials import take_rows

            rows = np.flatnonzero(need)
            frames = None if batch.obs_frames is None else batch.obs_frames[rows]
            ids = None if batch.obs_frame_ids is None else batch.obs_frame_ids[rows]
            pred = self._predict(m, take_rows(batch.obs, rows), frames, ids)
            phi_obs[rows] = self.scale * (pred.reward - 1.0)
        term, _, phi_used = self.term(batch, phi_obs, self.scale * (nxt.reward - 1.0))
        signals.update(potential=phi_used, shaping=term)
        return RewardOutput(term, signals)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode}
        if self.model is not None:
            out.update(perceptual_summary(self.model))
        return out

    def config(self) -> dict[str, Any]:  # the fitted model is in the state
        return {**self.cfg.to_dict(), "demos": None, "path": None, "save": None,
                "goal": None, "gamma": self.gamma}

    def state_dict(self) -> dict[str, Any]:
        return {} if self.model is None else {"model": self.model.payload()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "model" in state:
            self._set_model(PerceptualModel.from_payload(state["model"]))


__all__ = ["MODES", "PerceptualReward"]
