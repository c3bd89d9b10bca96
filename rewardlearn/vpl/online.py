"""Feedback rounds during RL for reward modules that learn from segment pairs (VPL, PEARL).

:class:`OnlineRoundReward` keeps the agent's experience per episode (the preference
package's :class:`~rewardlearn.preference.buffer.SegmentBuffer`: segments never cross an
episode end) and :class:`RoundCallback` runs the module's rounds on a plan made up front
(:func:`~rewardlearn.preference.schedule.plan_rounds`), then relabels what the agent is
about to learn from, as ``reward=preference`` does: the current rollout (PPO: its rewards
recomputed with the new model, the advantages redone) or the whole replay buffer (SAC).
A subclass says what a step stores (:meth:`OnlineRoundReward.step_features`), what its
reward reads (:meth:`~OnlineRoundReward.reward_inputs`,
:meth:`~OnlineRoundReward.reward_from_inputs`), its plan and one round
(:meth:`~OnlineRoundReward.run_round`).
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

from rewardlearn.preference.buffer import SegmentBuffer
from rewardlearn.preference.schedule import FeedbackPlan
from rewardlearn.rewards.base import Obs, RewardModel, RewardOutput, TransitionBatch
from rewardlearn.wrappers.relabel import bind_reward_wrapper, relabel_replay, relabel_rollout

log = logging.getLogger("rewardlearn")


class OnlineRoundReward(RewardModel):
    """A reward learned in rounds from the agent's own segments (see the module docstring).

    The reward of a transition depends on the transition and on the model, which changes
    only at rollout ends, so a whole rollout's rewards may be computed at its end
    (``deferrable``).
    """

    deferrable = True

    def __init__(self, observation_space: gym.Space, action_space: gym.Space,
                 buffer_capacity: int = 100_000) -> None:
        super().__init__(observation_space, action_space)
        self.buffer_capacity = int(buffer_capacity)
        self.teacher: Any = None
        """Who labels (or checks) the queries; set by the subclass."""
        self.buffer: SegmentBuffer | None = None
        self.history: list[dict[str, float]] = []
        self.rounds_done = 0
        self._rollout_x: list[np.ndarray] = []
        self._rollout_r: list[np.ndarray] = []

    # -- what a subclass provides ---------------------------------------------------------

    @abc.abstractmethod
    def step_features(self, obs: Obs, acts: np.ndarray, next_obs: Obs) -> np.ndarray:
        """``(B, F)`` what the buffer keeps of each step (what teachers and rounds read)."""

    @abc.abstractmethod
    def reward_inputs(self, obs: Obs, acts: np.ndarray, next_obs: Obs) -> np.ndarray:
        """``(B, G)`` what :meth:`reward_from_inputs` reads."""

    @abc.abstractmethod
    def reward_from_inputs(self, x: np.ndarray) -> np.ndarray:
        """``(B,)`` the agent's reward under the current model."""

    @abc.abstractmethod
    def plan(self, total_timesteps: int) -> FeedbackPlan:
        """Every round of a run of ``total_timesteps`` steps (the plan's ``queries``: labels)."""

    @abc.abstractmethod
    def run_round(self, n_labels: int) -> dict[str, float]:
        """One round asking (or making) about ``n_labels`` labels; its metrics (``{}``: no
        round, e.g. too little experience yet)."""

    def policy_latents(self) -> np.ndarray | None:
        """``(M, d)`` latents the training envs start their episodes with, one drawn
        uniformly at each reset (``AppendLatent.set_latent_bank``); ``None`` (the default):
        the envs keep their own draws."""
        return None

    @property
    def learns(self) -> bool:
        """Whether rounds run in this run (a loaded model without a teacher does not)."""
        return True

    # -- the shared machinery -------------------------------------------------------------

    def compute(self, batch: TransitionBatch) -> RewardOutput:
        x = self.reward_inputs(batch.obs, batch.acts, batch.next_obs)
        return RewardOutput(self.reward_from_inputs(x))

    def observe(self, batch: TransitionBatch, rewards: np.ndarray) -> None:
        self.observe_steps([batch], np.asarray(rewards)[None], batch)

    def observe_steps(self, batches: Sequence[TransitionBatch], rewards: np.ndarray,
                      joined: TransitionBatch | None = None) -> None:
        """Store consecutive steps (one step, or a deferred rollout) and record the
        rollout's reward inputs and rewards (to relabel it after a round)."""
        if not batches:
            return
        batch = joined if joined is not None else TransitionBatch.concat(list(batches))
        if batch.env_rewards is None:
            raise ValueError(f"reward={self.name} needs the env reward in the batch (its "
                             "synthetic teacher labels from it)")
        t = len(batches)
        n = len(batch) // t
        f = self.step_features(batch.obs, batch.acts, batch.next_obs).reshape(t, n, -1)
        if self.buffer is None:
            self.buffer = SegmentBuffer(n, f.shape[-1], self.buffer_capacity)
        states = None
        if self.needs_sim_states:
            from rewardlearn.wrappers.state import STATE_KEY

            if not batch.infos or STATE_KEY not in batch.infos[0]:
                raise RuntimeError(f"reward={self.name}: the teacher needs simulator states; "
                                   "make the envs with make_vec_env(..., sim_state=True)")
            states = np.stack([info[STATE_KEY] for info in batch.infos]).reshape(t, n, -1)
        self.buffer.add_steps(f, np.reshape(batch.env_rewards, (t, n)),
                              np.reshape(batch.terminated, (t, n)),
                              np.reshape(batch.truncated, (t, n)), states)
        x = self.reward_inputs(batch.obs, batch.acts, batch.next_obs)
        self._rollout_x.extend(x.reshape(t, n, -1))
        self._rollout_r.extend(np.asarray(rewards, np.float32).reshape(t, n))

    def begin_rollout(self) -> None:
        """Forget the last rollout's record."""
        self._rollout_x.clear()
        self._rollout_r.clear()

    def rollout_record(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The current rollout's ``(T, n_envs, G)`` reward inputs and ``(T, n_envs)`` rewards."""
        if not self._rollout_x:
            return None
        return np.stack(self._rollout_x), np.stack(self._rollout_r)

    def callbacks(self) -> list[Any]:
        return [RoundCallback(self)] if self.learns else []

    def save_progress(self) -> None:
        """Checkpoint to ``<run_dir>/reward_model.pt`` (after each round: no label is lost)."""
        if self.run_dir is None:
            return
        from rewardlearn.rewards.checkpoint import save_reward_model

        save_reward_model(self, self.run_dir / "reward_model.pt")


class RoundCallback(BaseCallback):
    """Runs an :class:`OnlineRoundReward`'s rounds on plan and relabels the agent's data."""

    def __init__(self, reward: OnlineRoundReward, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.reward = reward
        self.plan = FeedbackPlan(())
        self._k = 0
        self._start = 0
        self._scale = 1.0

    def _on_training_start(self) -> None:
        total = int(self.locals.get("total_timesteps", self.model._total_timesteps))
        self.plan = self.reward.plan(total)
        self._k, self._start = 0, self.num_timesteps
        self._scale = bind_reward_wrapper(self.training_env, self.model, self.reward,
                                          self.reward.name)
        if hasattr(self.reward.teacher, "bind") and self.reward.run_dir is not None:
            self.reward.teacher.bind(self.reward.run_dir)
        log.info("%s feedback plan: %s", self.reward.name, self.plan.describe())
        self.push_latents()

    def _on_rollout_start(self) -> None:
        if isinstance(self.model, OnPolicyAlgorithm):
            self.reward.begin_rollout()

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        planned = self.plan.due(self._k)
        if planned is not None and self.num_timesteps - self._start >= planned.at:
            metrics = self.reward.run_round(planned.queries)
            if metrics:
                self._k += 1
                self.reward.rounds_done += 1
                metrics["timesteps"] = float(self.num_timesteps)
                self.relabel()
                metrics.update(self.push_latents())
                self.reward.history.append(metrics)
                for key, value in metrics.items():
                    self.logger.record(f"reward/{key}", value)
                log.info("%s round %d at %d steps: %s", self.reward.name, self._k,
                         self.num_timesteps, ", ".join(f"{k}={v:.3g}" for k, v in
                                                      metrics.items()))
                self.reward.save_progress()
        if isinstance(self.model, OnPolicyAlgorithm):
            self.reward.begin_rollout()

    def push_latents(self) -> dict[str, float]:
        """Hand the reward's latent bank (if it has one) to the training envs; its mean
        ``||z||`` as ``policy_z_norm`` (else ``{}``)."""
        bank = self.reward.policy_latents()
        if bank is None:
            return {}
        self.training_env.env_method("set_latent_bank", bank)
        return {"policy_z_norm": float(np.linalg.norm(bank, axis=-1).mean())}

    def relabel(self) -> None:
        """Recompute the learned rewards the agent is about to learn from."""
        if isinstance(self.model, OnPolicyAlgorithm):
            relabel_rollout(self.model, self.reward.rollout_record(),
                            self.reward.reward_from_inputs, self._scale,
                            self.locals["values"], self.locals["dones"])
        elif isinstance(self.model, OffPolicyAlgorithm):
            relabel_replay(self.model, lambda obs, acts, nxt, _term: self.reward.reward_from_inputs(
                self.reward.reward_inputs(obs, acts, nxt)))


__all__ = ["OnlineRoundReward", "RoundCallback"]
