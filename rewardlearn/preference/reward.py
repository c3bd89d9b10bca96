"""``reward=preference``: a reward learned from segment comparisons while the agent trains.

PEBBLE-style (Lee et al. 2021) for off-policy agents and the same loop for
on-policy ones: the module stores the experience it is called on, and its SB3
callback runs feedback rounds on schedule (queries -> teacher labels ->
ensemble training), then relabels what the agent learns from: the whole
replay buffer (SAC), or the current rollout before its advantages are used
(PPO). Teachers come from the ``teacher`` config group; synthetic ones read the
env's true reward of the queried segments and nothing else.

After every round the module saves itself (ensemble and every label) to
``<run>/reward_model.pt`` when it knows its run directory, so a crash loses no
label, and ``reward.model.resume=<path>`` continues from such a file.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

from rewardlearn.preference.buffer import SegmentBuffer
from rewardlearn.preference.configuration import PreferenceConfig, read_resume_file
from rewardlearn.preference.learner import PreferenceDataset, PreferenceLearner
from rewardlearn.preference.modeling import RewardEnsemble
from rewardlearn.preference.schedule import FeedbackPlan, plan_rounds
from rewardlearn.rewards.base import RewardModel, RewardOutput, TransitionBatch
from rewardlearn.rewards.checkpoint import check_spaces
from rewardlearn.rewards.features import TransitionFeatures, flat_dim
from rewardlearn.utils import resolve_device
from rewardlearn.wrappers.relabel import bind_reward_wrapper, relabel_replay, relabel_rollout

log = logging.getLogger("rewardlearn")


class PreferenceReward(RewardModel):
    """Ensemble reward ``mean - k * std`` learned from a teacher's preferences.

    Args:
        observation_space, action_space: the env's spaces.
        teacher: labels queries (``conf/teacher``); ``None`` for a model that
            is only used, not trained (e.g. loaded from a checkpoint).
        config: the :class:`PreferenceConfig` (a run builds and checks it once), or
        **kwargs: its fields (``resume``: a saved ``reward_model.pt`` of this module to
            continue from: weights, labels and the budget already spent).
    """

    name = "preference"
    settings_class = PreferenceConfig
    runtime_params = ("teacher",)

    def __init__(self, observation_space: gym.Space, action_space: gym.Space,
                 teacher: Any = None, config: PreferenceConfig | None = None,
                 **kwargs: Any) -> None:
        super().__init__(observation_space, action_space)
        self.cfg = PreferenceConfig.build(config, **kwargs)
        self.teacher = teacher
        if callable(getattr(teacher, "validate", None)):
            teacher.validate()  # a teacher's own settings, refused before anything runs
        self.needs_sim_states = bool(getattr(teacher, "needs_sim_states", False))
        self.device = resolve_device(self.cfg.device)
        self.features = TransitionFeatures(observation_space, action_space, True,
                                           self.cfg.use_action, self.cfg.use_next_obs)
        value_dim = flat_dim(observation_space) if self.cfg.preference_model == "regret" else 0
        self.ensemble = RewardEnsemble(
            self.features.dim, self.cfg.ensemble_size, self.cfg.hidden_sizes,
            self.cfg.activation, self.cfg.output_activation, value_dim, self.cfg.seed,
        ).to(self.device)
        self.ensemble.eval()
        self.learner = PreferenceLearner(self.cfg, self.ensemble, teacher, self.device)
        if self.cfg.demos:
            if self.needs_sim_states:
                raise ValueError(f"reward.model.demos: teacher {teacher.name} is shown clips "
                                 "rendered from simulator states, which demos do not carry; "
                                 "use a synthetic teacher or drop the demos")
            self.learner.demo_buffer = self.demo_segments(self.cfg.demos)
        #: the agent's reward while a round trains in the background (``background_lag``)
        self.serving: RewardEnsemble | None = None
        self.buffer: SegmentBuffer | None = None
        self.history: list[dict[str, float]] = []
        self.unsupervised = self.cfg.unsup_steps > 0
        self.deferrable = not self.unsupervised  # the entropy bonus reads the growing buffer
        self._entropy_std = _RunningStd()
        self._rollout_feats: list[np.ndarray] = []
        self._rollout_rewards: list[np.ndarray] = []
        if self.cfg.resume:
            self._resume(self.cfg.resume)

    def demo_segments(self, demos: str) -> SegmentBuffer:
        """The demos' transitions as a :class:`SegmentBuffer` of reward-net inputs and the
        demos' stored rewards (what a synthetic teacher reads), one episode each."""
        from rewardlearn.demos import load_demo_sets

        episodes = load_demo_sets(demos)
        if not episodes:
            raise ValueError(f"reward.model.demos={demos}: no episodes")
        obs_dim = flat_dim(self.observation_space)
        buf = SegmentBuffer(1, self.features.dim, sum(len(ep.actions) for ep in episodes))
        for ep in episodes:
            obs = np.asarray(ep.observations, np.float32).reshape(len(ep.observations), -1)
            if obs.shape[1] != obs_dim or np.shape(ep.actions)[1:] != \
                    tuple(self.action_space.shape or ()):
                raise ValueError(f"reward.model.demos={demos}: observations of size "
                                 f"{obs.shape[1]} and actions {np.shape(ep.actions)[1:]} do "
                                 f"not match the env's ({obs_dim}, "
                                 f"{tuple(self.action_space.shape or ())})")
            n = len(ep.actions)
            term = np.asarray(ep.terminations, bool).reshape(n)
            trunc = np.asarray(ep.truncations, bool).reshape(n).copy()
            trunc[-1] = not term[-1]  # every demo ends here, whatever it was recorded with
            x = self.features(obs[:-1], np.asarray(ep.actions), obs[1:], term).numpy()
            buf.add_steps(x[:, None], np.asarray(ep.rewards, np.float32).reshape(n, 1),
                          term[:, None], trunc[:, None], None, obs[1:, None])
        log.info("preference: %d demo episodes (%d steps) queried against the agent's "
                 "segments (demo_fraction %.2f)", len(episodes), len(buf),
                 self.cfg.demo_fraction)
        return buf

    def _resume(self, path: str) -> None:
        payload = read_resume_file(path)
        check_spaces(payload["observation_space"], payload["action_space"],
                     self.observation_space, self.action_space, where=f"resume file {path}")
        self.load_state_dict(payload["state"])
        self.unsupervised = False
        log.info("resumed preference reward from %s: %d labels, %d queries asked",
                 path, self.learner.labels_used, self.learner.queries_asked)

    @torch.no_grad()
    def member_rewards(self, x: torch.Tensor) -> torch.Tensor:
        """``(E, N)`` rewards of each member for raw features ``(N, D)``.

        With absorbing padding active (an env that terminates), each member's reward
        is taken relative to its absorbing-step reward, ``r_e(x) - a_e``: after a
        termination the agent collects 0, so living pays exactly when the learned
        comparison says a living step beats being dead.
        """
        ens = self.serving if self.serving is not None else self.ensemble
        r = ens.predict(x.to(self.device))
        if self.learner.absorbing_active:
            r = r - ens.absorbing.detach()[:, None]
        return r

    @torch.no_grad()
    def reward_from_features(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Agent reward (``mean - k * std``) and ensemble std for raw features."""
        r = self.member_rewards(torch.as_tensor(x, dtype=torch.float32))
        mean, std = r.mean(0), r.std(0) if r.shape[0] > 1 else torch.zeros_like(r[0])
        return (mean - self.cfg.conservative_k * std).cpu().numpy(), std.cpu().numpy()

    def compute(self, batch: TransitionBatch) -> RewardOutput:
        x = self.features(batch.obs, batch.acts, batch.next_obs, batch.terminated)
        if self.unsupervised:
            r = self.entropy_reward(batch)
            return RewardOutput(r, {"intrinsic": r})
        rewards, std = self.reward_from_features(x.numpy())
        return RewardOutput(rewards, {"ensemble_std": std})

    def entropy_reward(self, batch: TransitionBatch) -> np.ndarray:
        """PEBBLE's state-entropy bonus: k-th nearest stored state's distance, std-normalised."""
        from rewardlearn.rewards.features import flatten_obs

        s = flatten_obs(self.observation_space, batch.next_obs)
        if self.buffer is None or len(self.buffer) < self.cfg.entropy_k + 1:
            return np.zeros(len(s), np.float32)
        obs_dim = s.shape[1]
        ref = self.buffer.features_sample(5000, self.learner.rng)[:, :obs_dim]
        d = np.linalg.norm(s[:, None, :] - ref[None, :, :], axis=-1)
        k = min(self.cfg.entropy_k, ref.shape[0] - 1)
        knn = np.partition(d, k, axis=1)[:, k]
        self._entropy_std.update(knn)
        return (knn / max(self._entropy_std.std, 1e-8)).astype(np.float32)

    def observe(self, batch: TransitionBatch, rewards: np.ndarray) -> None:
        self.observe_steps([batch], np.asarray(rewards)[None], batch)

    def observe_steps(self, batches: Sequence[TransitionBatch], rewards: np.ndarray,
                      joined: TransitionBatch | None = None) -> None:
        """Consecutive steps in one pass (one step, or a deferred rollout): features once,
        episodes stored by slices (:meth:`SegmentBuffer.add_steps`)."""
        from rewardlearn.rewards.features import flatten_obs

        if not batches:
            return
        batch = joined if joined is not None else TransitionBatch.concat(list(batches))
        if batch.env_rewards is None:
            raise ValueError("preference learning needs the env reward in the batch (teachers)")
        t = len(batches)
        x = self.features(batch.obs, batch.acts, batch.next_obs, batch.terminated).numpy()
        n = len(x) // t
        if self.buffer is None:
            self.buffer = SegmentBuffer(n, self.features.dim, self.cfg.buffer_capacity)
        states = None
        if self.needs_sim_states:
            from rewardlearn.wrappers.state import STATE_KEY

            if not batch.infos or STATE_KEY not in batch.infos[0]:
                raise RuntimeError(f"teacher {self.teacher.name} needs simulator states; make "
                                   "the envs with make_vec_env(..., sim_state=True)")
            states = np.stack([info[STATE_KEY] for info in batch.infos])
            states = states.reshape(t, n, *states.shape[1:])
        x = x.reshape(t, n, -1)
        next_states = flatten_obs(self.observation_space, batch.next_obs).reshape(t, n, -1)
        self.buffer.add_steps(x, np.reshape(batch.env_rewards, (t, n)),
                              np.reshape(batch.terminated, (t, n)),
                              np.reshape(batch.truncated, (t, n)), states, next_states)
        self._rollout_feats.extend(x)
        self._rollout_rewards.extend(np.asarray(rewards, np.float32).reshape(t, n))

    def callbacks(self) -> list[Any]:
        if self.teacher is None:
            return []
        return [PreferenceCallback(self)]

    def agent_kwargs(self, algo: str) -> dict[str, Any]:
        """SB3 settings for the agent: QPA's hybrid replay buffer for SAC when
        ``replay_recent_fraction > 0`` (read by :func:`rewardlearn.agents.build_agent`)."""
        if algo != "sac" or self.cfg.replay_recent_fraction <= 0:
            return {}
        from rewardlearn.preference.hybrid_replay import HybridReplayBuffer

        return {"replay_buffer_class": HybridReplayBuffer,
                "replay_buffer_kwargs": {"recent_fraction": self.cfg.replay_recent_fraction,
                                         "recent_window": self.cfg.replay_recent_window,
                                         "seed": self.cfg.seed}}

    def config(self) -> dict[str, Any]:
        return {**self.cfg.to_dict(), "resume": None}  # the state holds what resume gave

    def state_dict(self) -> dict[str, Any]:
        """Weights and every label. While a round trains in the background: its labels
        with the model the agent is using (the round's training is redone on resume)."""
        ens = self.serving if self.serving is not None else self.ensemble
        return {
            "ensemble": {k: v.cpu() for k, v in ens.state_dict().items()},
            "dataset": self.learner.dataset.state_dict(),
            "rounds_done": self.learner.rounds_done,
            "queries_asked": self.learner.queries_asked,
            "history": self.history,
            "teacher": self.teacher.state_dict() if hasattr(self.teacher, "state_dict") else None,
            "absorbing_active": self.learner.absorbing_active,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ensemble.load_state_dict(state["ensemble"])
        self.learner.dataset = PreferenceDataset.from_state(state["dataset"])
        self.learner.rounds_done = int(state["rounds_done"])
        self.learner.queries_asked = int(state["queries_asked"])
        self.history = list(state.get("history", []))
        self.learner.absorbing_active = bool(state.get("absorbing_active",
                                                       self.learner.absorbing_active))
        if state.get("teacher") is not None and hasattr(self.teacher, "load_state_dict"):
            self.teacher.load_state_dict(state["teacher"])

    def summary(self) -> dict[str, Any]:
        last = self.history[-1] if self.history else {}
        return {"labels_used": self.learner.labels_used,
                "queries_asked": self.learner.queries_asked,
                "feedback_rounds": self.learner.rounds_done,
                **{k: last[k] for k in ("heldout_acc", "train_acc", "pearson", "spearman")
                   if k in last}}

    def begin_rollout(self) -> None:
        """Forget the last rollout's features and rewards (kept to relabel a PPO rollout
        when a round changes the reward before the agent learns from it)."""
        self._rollout_feats.clear()
        self._rollout_rewards.clear()

    def rollout_record(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The current rollout's ``(T, n_envs, D)`` features and ``(T, n_envs)`` rewards."""
        if not self._rollout_feats:
            return None
        return np.stack(self._rollout_feats), np.stack(self._rollout_rewards)

    def save_progress(self) -> None:
        """Checkpoint to ``<run_dir>/reward_model.pt`` (after each round)."""
        if self.run_dir is None:
            return
        from rewardlearn.rewards.checkpoint import save_reward_model

        save_reward_model(self, self.run_dir / "reward_model.pt")


class _RunningStd:
    """Running standard deviation (Welford) of a stream of scalars."""

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def update(self, xs: np.ndarray) -> None:
        for x in np.asarray(xs, float).reshape(-1):
            self.n += 1
            d = x - self.mean
            self.mean += d / self.n
            self.m2 += d * (x - self.mean)

    @property
    def std(self) -> float:
        return float(np.sqrt(self.m2 / self.n)) if self.n > 1 else 1.0


class PreferenceCallback(BaseCallback):
    """Runs feedback rounds on schedule and relabels what the agent learns from."""

    def __init__(self, reward: PreferenceReward, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.reward = reward
        self.plan = FeedbackPlan(())
        self.total = 1
        self.lag_steps = 0
        self.install_at = 0
        self._k = 0
        self._start = 0
        self._pending: dict[str, float] = {}
        self._scale = 1.0
        self._std_sum = 0.0
        self._std_n = 0

    def _on_training_start(self) -> None:
        cfg, learner = self.reward.cfg, self.reward.learner
        self.total = int(self.locals.get("total_timesteps", self.model._total_timesteps))
        # planned afresh on every learn() call: a resumed run plans its remaining budget
        self.plan = plan_rounds(cfg, self.total, learner.budget_left, learner.rounds_done)
        self._k = 0
        self._start = self.num_timesteps
        self._set_lag(self._gap_after(0))
        if self.reward.run_dir is not None and hasattr(self.reward.teacher, "bind"):
            self.reward.teacher.bind(self.reward.run_dir)
        self._scale = bind_reward_wrapper(self.training_env, self.model, self.reward,
                                          "preference")
        log.info("preference feedback plan: %s", self.plan.describe())

    def _gap_after(self, k: int) -> int:
        """Steps between round ``k`` and the next (sets the background lag); after the last
        round, the gap that led to it."""
        this, nxt, prev = self.plan.due(k), self.plan.due(k + 1), self.plan.due(k - 1)
        if this is not None and nxt is not None:
            return max(1, nxt.at - this.at)
        if this is not None and prev is not None:
            return max(1, this.at - prev.at)
        return max(1, self.total - (this.at if this is not None else 0))

    def _set_lag(self, gap: int) -> None:
        lag = self.reward.cfg.background_lag
        self.lag_steps = 0 if lag is None else max(1, int(lag * gap))

    def _on_rollout_start(self) -> None:
        if isinstance(self.model, OnPolicyAlgorithm):
            self.reward.begin_rollout()

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            std = info.get("reward_signals", {}).get("ensemble_std")
            if std is not None:
                self._std_sum += std
                self._std_n += 1
        return True

    def _on_rollout_end(self) -> None:
        if self._std_n:
            self.logger.record("reward/ensemble_std", self._std_sum / self._std_n)
            self._std_sum, self._std_n = 0.0, 0
        learner = self.reward.learner
        if learner.training_in_background and self.num_timesteps >= self.install_at:
            self._install()
        planned = self.plan.due(self._k)
        due = (planned is not None and self.num_timesteps - self._start >= planned.at
               and learner.budget_left > 0)
        if due and planned is not None and self.reward.buffer is not None:
            if learner.training_in_background:
                self._install()  # the next round's queries need the last round's model
            background = self.lag_steps > 0 and learner.rounds_done > 0
            if background:
                self.reward.serving = copy.deepcopy(self.reward.ensemble)
            metrics = learner.run_round(self.reward.buffer,
                                        min(planned.queries, learner.budget_left),
                                        background=background)
            if metrics:
                self._set_lag(self._gap_after(self._k))
                self._k += 1
                self.reward.unsupervised = False
                metrics["timesteps"] = float(self.num_timesteps)
                if learner.training_in_background:
                    self._pending = metrics
                    self.install_at = self.num_timesteps + self.lag_steps
                    self.reward.save_progress()  # the new labels, before they train
                else:
                    self._report(metrics)
            else:
                self.reward.serving = None
        if isinstance(self.model, OnPolicyAlgorithm):
            self.reward.begin_rollout()

    def _on_training_end(self) -> None:
        if self.reward.learner.training_in_background:
            self._install(relabel=False)  # nothing left to learn from; saved for the user

    def _install(self, relabel: bool = True) -> None:
        """Collect a background round and make its model the agent's reward."""
        metrics = self._pending
        metrics.update(self.reward.learner.finish_background())
        self.reward.serving = None
        metrics["installed_at"] = float(self.num_timesteps)
        self._report(metrics, relabel)

    def _report(self, metrics: dict[str, float], relabel: bool = True) -> None:
        """Log a finished round, relabel what the agent learns from, save the labels."""
        self.reward.history.append(metrics)
        for k, v in metrics.items():
            self.logger.record(f"reward/{k}", v)
        log.info("feedback round %d at %d steps: %s", len(self.reward.history),
                 int(metrics["timesteps"]), _fmt(metrics))
        if relabel:
            self.relabel(self.model)
        self.reward.save_progress()

    def relabel(self, agent: BaseAlgorithm) -> None:
        """Recompute the learned rewards the agent is about to learn from."""
        if isinstance(agent, OffPolicyAlgorithm):
            relabel_replay_buffer(agent, self.reward, self._scale)
        elif isinstance(agent, OnPolicyAlgorithm):
            self._relabel_rollout(agent)

    def _relabel_rollout(self, agent: OnPolicyAlgorithm) -> None:
        relabel_rollout(agent, self.reward.rollout_record(),
                        lambda x: self.reward.reward_from_features(x)[0], self._scale,
                        self.locals["values"], self.locals["dones"])


def relabel_replay_buffer(agent: OffPolicyAlgorithm, reward: PreferenceReward,
                          scale: float = 1.0) -> int:
    """Overwrite every stored reward with the current model's; returns how many.

    Only ``reward.mode=replace``: in add mode the replay buffer does not keep
    the env's reward apart from the learned one, so it cannot be recombined.
    """
    if scale != 1.0:
        raise ValueError("replay-buffer relabelling supports reward.mode=replace only")

    def rewards_of(obs: Any, acts: np.ndarray, nxt: Any, term: np.ndarray) -> np.ndarray:
        return reward.reward_from_features(reward.features(obs, acts, nxt, term).numpy())[0]

    return relabel_replay(agent, rewards_of)


def _fmt(metrics: dict[str, float]) -> str:
    keys = ("labels_used", "demo_share", "heldout_acc", "train_acc", "pearson", "spearman",
            "epochs", "round_s", "background_s", "wait_s", "installed_at")
    return ", ".join(f"{k}={metrics[k]:.3g}" for k in keys if k in metrics)
