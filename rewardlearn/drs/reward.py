"""``reward=drs``: a stage-indexed dense reward learned with the agent (DrS).

Mu et al., "DrS: Learning Reusable Dense Rewards for Multi-Stage Tasks", ICLR 2024. For a
state ``s'`` in stage ``k`` (the env's stage signal; success counts as stage ``K``)::

    r = k + alpha * tanh(D_k(s'))        (alpha < 0.5: stage ranges never overlap)

``D_k`` is a classifier trained online to tell states of stage ``k`` from trajectories that
went on to reach a later stage (demos and the agent's own successes: positives) from
those of trajectories that got no further (the agent's failures: negatives); see
:mod:`rewardlearn.drs.labels` for the labelling rule.

Why hovering or stalling does not pay: a state the policy learns to farm without
advancing ends up among its stage's negatives within one update, so ``D_k`` falls there;
and since the stage term dominates (``k`` vs ``alpha < 0.5``), no within-stage polish is
worth more than reaching the next stage. The env's reward and progress are never read.

Example:
    >>> import gymnasium as gym, numpy as np
    >>> from rewardlearn.rewards.base import TransitionBatch
    >>> space = gym.spaces.Box(-1, 1, (3,), np.float32)
    >>> r = DrSReward(space, space, num_stages=2)
    >>> b = TransitionBatch.from_arrays(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)))
    >>> b.infos = [{"stage": 0, "is_success": False}, {"stage": 1, "is_success": True}]
    >>> r(b).tolist()                          # untrained: the stage alone; 0 at success
    [-1.0, 0.0]
"""

from __future__ import annotations

import logging
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch.nn import functional as F

from rewardlearn.drs.configuration import DrSConfig
from rewardlearn.drs.labels import (
    StageBuffers,
    TrajectoryBuffers,
    episode_labels,
    positive_tail,
    trajectory_outcome,
)
from rewardlearn.drs.modeling import StageClassifier
from rewardlearn.encoders import build_state_encoder
from rewardlearn.rewards.base import RewardModel, RewardOutput, TransitionBatch
from rewardlearn.rewards.features import flat_dim, flatten_obs
from rewardlearn.stages import PeriodicUpdate
from rewardlearn.utils import resolve_device

log = logging.getLogger("rewardlearn")


class DrSReward(RewardModel):
    """Stage index plus a bounded, online-trained per-stage classifier score.

    Args:
        observation_space, action_space: the env's spaces.
        config: the :class:`~rewardlearn.drs.configuration.DrSConfig`, or **kwargs: its fields.
    """

    name = "drs"
    settings_class = DrSConfig
    deferrable = True  # the classifiers change only in DrSCallback, between rollouts
    legacy_settings = {"lipschitz": None}  # checkpoints from before the Lipschitz default

    def __init__(self, observation_space: gym.Space, action_space: gym.Space,
                 config: DrSConfig | None = None, **kwargs: Any) -> None:
        super().__init__(observation_space, action_space)
        self.cfg = DrSConfig.build(config, **kwargs)
        self.info_keys = (self.cfg.stage_key, self.cfg.success_key)  # the env signals it reads
        self.device = resolve_device(self.cfg.device)
        self.encoder = build_state_encoder(self.cfg.encoder, "reward.model.encoder")
        self.state_dim = flat_dim(observation_space)
        self.dim = self.state_dim if self.encoder is None else int(
            self._features(np.zeros((1, self.state_dim), np.float32), flat=True).shape[1])
        """The classifiers' input size (the state's, or the encoder's features')."""
        self.rng = np.random.default_rng(self.cfg.seed)
        torch.manual_seed(self.cfg.seed)
        demos = self._load_demos() if self.cfg.demos else []
        self.num_stages = self.cfg.num_stages or self._stages_from_demos(demos) or 0
        """The number of stages; 0 until known (from the settings, the demos or the env)."""
        self.net: StageClassifier | None = None
        self.buffers: StageBuffers | TrajectoryBuffers | None = None
        self.optim: torch.optim.Optimizer | None = None
        self.updates = 0
        self.history: list[dict[str, float]] = []
        self._episodes: list[dict[str, list[Any]]] = []
        if self.num_stages:
            self._build(self.num_stages)
            if demos:
                self._add_demos(demos)

    # -- set-up -------------------------------------------------------------------------

    def _load_demos(self) -> list[Any]:
        from rewardlearn.demos import load_demo_sets

        episodes = load_demo_sets(str(self.cfg.demos))
        episodes = [ep for ep in episodes if ep.success] or episodes
        if self.cfg.max_demos is not None:
            episodes = episodes[: self.cfg.max_demos]
        for ep in episodes:
            if ep.observations.shape[-1] != self.state_dim:
                raise ValueError(f"demos {self.cfg.demos} have {ep.observations.shape[-1]}-dim "
                                 f"observations; this env's are {self.state_dim}-dim")
        return episodes

    @staticmethod
    def _stages_from_demos(demos: list[Any]) -> int:
        if not demos:
            return 0
        names = demos[0].subtask_names
        return len(names) if names else int(max(int(ep.stages.max()) for ep in demos)) + 1

    def _build(self, num_stages: int) -> None:
        self.num_stages = int(num_stages)
        self.net = StageClassifier(self.dim, self.num_stages, self.cfg.hidden_sizes,
                                   self.cfg.activation, self.cfg.shared_trunk,
                                   self.cfg.lipschitz).to(self.device)
        self.net.eval()  # scoring; update() trains in train() mode
        if self.cfg.standardize == "none":
            self.net.scaled.fill_(True)  # raw states: mean 0, std 1 stay
        self.optim = torch.optim.Adam(self.net.parameters(), lr=self.cfg.lr,
                                      weight_decay=self.cfg.weight_decay)
        kind = TrajectoryBuffers if self.cfg.labels == "trajectory" else StageBuffers
        self.buffers = kind(self.num_stages, self.dim, self.cfg.buffer_size)

    def _add_demos(self, demos: list[Any]) -> None:
        assert self.net is not None and self.buffers is not None
        rows = []
        for ep in demos:
            feats = self._features(ep.observations[1:])
            if isinstance(self.buffers, TrajectoryBuffers):
                level, n = trajectory_outcome(ep.stages[1:], ep.success, self.num_stages)
                self.buffers.add_demo(feats[:n], level)
            else:
                stages, positive = episode_labels(ep.stages[1:], ep.success, self.num_stages)
                keep = positive_tail(stages, positive, self.cfg.positive_tail)
                self.buffers.add_demo(feats[keep], stages[keep], positive[keep])
            rows.append(feats)
        if self.cfg.standardize == "demos":
            self.net.fit_scale(np.concatenate(rows))
        log.info("drs: %d demos, %d stages, %s labels, demo rows %s", len(demos),
                 self.num_stages, self.cfg.labels, [len(p) for p in self.buffers.demo_pos])

    def _features(self, obs: Any, flat: bool = False) -> np.ndarray:
        """The classifiers' input rows: the flat state, or the encoder's features of it."""
        x = np.asarray(obs, np.float32) if flat else flatten_obs(self.observation_space, obs)
        if self.encoder is None:
            return x
        return np.asarray(self.encoder.embed(x), np.float32)

    # -- the reward ---------------------------------------------------------------------

    def annotations(self, batch: TransitionBatch) -> tuple[np.ndarray, np.ndarray]:
        """``(stage, success)`` of each ``s'`` from the batch's infos."""
        if not batch.infos or self.cfg.stage_key not in batch.infos[0]:
            have = sorted(batch.infos[0]) if batch.infos else []
            raise ValueError(
                f"reward=drs reads the stage from info[{self.cfg.stage_key!r}], which this "
                f"batch lacks (info keys: {have}); set reward.model.stage_key to the env's "
                "stage entry, or use an env that reports its stage")
        stages = np.array([int(i[self.cfg.stage_key]) for i in batch.infos], np.int64)
        success = np.array([bool(i.get(self.cfg.success_key, False)) for i in batch.infos])
        if self.net is None:
            num = batch.infos[0].get("num_stages")
            if num is None:
                raise ValueError("reward=drs needs the number of stages: set "
                                 "reward.model.num_stages, or give demos")
            self._build(int(num))
        return stages, success

    def scores(self, next_obs: Any, stages: np.ndarray) -> np.ndarray:
        """``tanh(D_k(s'))`` for each row's stage; 0 where that classifier is untrained."""
        assert self.net is not None
        x = torch.as_tensor(self._features(next_obs), device=self.device)
        k = torch.as_tensor(np.clip(stages, 0, self.num_stages - 1), device=self.device)
        with torch.no_grad():
            logit = self.net(x).gather(1, k[:, None])[:, 0]
            score = torch.tanh(logit) * self.net.trained[k]
        return score.cpu().numpy().astype(np.float64)

    def progress(self, observations: Any, infos: list[dict[str, Any]]) -> np.ndarray:
        """The reward's level as a progress in [0, 1]: ``(k + alpha * tanh(D_k(s))) / K``,
        1 at success (for outcome rankings and exploit probes)."""
        b = TransitionBatch.from_arrays(observations, np.zeros((len(infos), 1)), observations)
        b.infos = infos
        stages, success = self.annotations(b)
        level = stages + self.cfg.alpha * self.scores(observations, stages)
        return np.where(success, 1.0, np.clip(level / self.num_stages, 0.0, 1.0))

    def compute(self, batch: TransitionBatch) -> RewardOutput:
        stages, success = self.annotations(batch)
        score = self.scores(batch.next_obs, stages)
        level = np.where(success, float(self.num_stages), stages + self.cfg.alpha * score)
        rewards = level / self.num_stages - 1.0 if self.cfg.form == "negative" else level
        return RewardOutput(rewards.astype(np.float32),
                            {"stage": stages.astype(np.float32),
                             "stage_score": score.astype(np.float32)})

    # -- learning with the agent --------------------------------------------------------

    def observe(self, batch: TransitionBatch, rewards: np.ndarray) -> None:
        """Collect each env's episode; at its end, label its states and store them."""
        stages, success = self.annotations(batch)
        feats = self._features(batch.next_obs)
        if len(self._episodes) != len(batch):
            self._episodes = [{"x": [], "k": []} for _ in range(len(batch))]
        for i, ep in enumerate(self._episodes):
            ep["x"].append(feats[i])
            ep["k"].append(int(stages[i]))
            if batch.terminated[i] or batch.truncated[i]:
                self._finish(ep, bool(success[i]))

    def _finish(self, episode: dict[str, list[Any]], success: bool) -> None:
        assert self.buffers is not None
        x = np.stack(episode["x"])
        if isinstance(self.buffers, TrajectoryBuffers):
            level, n = trajectory_outcome(np.array(episode["k"]), success, self.num_stages)
            self.buffers.add_episode(x[:n], level)
        else:
            k, positive = episode_labels(np.array(episode["k"]), success, self.num_stages)
            keep = positive_tail(k, positive, self.cfg.positive_tail)
            self.buffers.add(x[keep], k[keep], positive[keep])
        episode["x"], episode["k"] = [], []

    def update(self) -> dict[str, float]:
        """``train_steps`` balanced BCE steps on every stage with enough negatives."""
        assert self.net is not None and self.buffers is not None and self.optim is not None
        ready = [k for k in range(self.num_stages)
                 if self.buffers.counts(k)[0] > 0
                 and self.buffers.counts(k)[1] >= self.cfg.min_negatives]
        if not ready:
            return {}
        if not bool(self.net.scaled):
            rows = [self.buffers.sample(k, 1000, lab, self.rng)
                    for k in ready for lab in (True, False)]
            self.net.fit_scale(np.concatenate(rows))
        self.net.train()
        half = self.cfg.batch_size // 2
        target = torch.cat([torch.ones(half), torch.zeros(half)]).to(self.device)
        losses, accs = [], []
        for _ in range(self.cfg.train_steps):
            loss = torch.zeros((), device=self.device)
            acc = []
            for k in ready:
                x = np.concatenate([self.buffers.sample(k, half, True, self.rng),
                                    self.buffers.sample(k, half, False, self.rng)])
                logit = self.net.stage_logit(torch.as_tensor(x, device=self.device), k)
                loss = loss + F.binary_cross_entropy_with_logits(logit, target)
                acc.append(((logit > 0).float() == target).float().mean().item())
                if self.cfg.mixup > 0:
                    lam = self.rng.random(half).astype(np.float32)
                    mixed = lam[:, None] * x[:half] + (1 - lam[:, None]) * x[half:]
                    mix_logit = self.net.stage_logit(
                        torch.as_tensor(mixed, device=self.device), k)
                    loss = loss + self.cfg.mixup * F.binary_cross_entropy_with_logits(
                        mix_logit, torch.as_tensor(lam, device=self.device))
            self.optim.zero_grad()
            (loss / len(ready)).backward()
            self.optim.step()
            losses.append(loss.item() / len(ready))
            accs.append(float(np.mean(acc)))
        self.net.eval()
        for k in ready:
            self.net.trained[k] = True
        self.updates += 1
        metrics = {"loss": float(np.mean(losses[-10:])), "acc": float(np.mean(accs[-10:])),
                   "stages_trained": float(len(ready))}
        for k in range(self.num_stages):
            pos, neg = self.buffers.counts(k)
            metrics[f"pos_{k}"], metrics[f"neg_{k}"] = float(pos), float(neg)
        self.history.append(metrics)
        return metrics

    def callbacks(self) -> list[Any]:
        return [DrSCallback(self)]

    # -- saving -------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        return {**self.cfg.to_dict(), "demos": None, "num_stages": self.num_stages}

    def state_dict(self) -> dict[str, Any]:
        if self.net is None or self.buffers is None:
            return {}
        return {"net": {k: v.cpu() for k, v in self.net.state_dict().items()},
                "demo_pos": [torch.as_tensor(p) for p in self.buffers.demo_pos],
                "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        if self.net is None or self.buffers is None:
            raise ValueError("a drs checkpoint needs num_stages in its config")
        saved, here = set(state["net"]), set(self.net.state_dict())
        if saved != here:
            shapes = {k: tuple(v.shape) for k, v in state["net"].items()
                      if k.endswith(("weight", "weight.original"))}
            raise ValueError(
                "this drs checkpoint's classifier does not match the settings it is loaded "
                f"with (shared_trunk={self.cfg.shared_trunk}, hidden_sizes="
                f"{list(self.cfg.hidden_sizes)}, lipschitz={self.cfg.lipschitz}): it has "
                f"layers {shapes}; load it with the "
                "settings it was trained with (a checkpoint from before the per-stage "
                "default: shared_trunk=true hidden_sizes=[256,256] activation=leaky_relu "
                "standardize=demos)")
        if len(state["demo_pos"]) != len(self.buffers.demo_pos):
            raise ValueError(
                f"this drs checkpoint holds demos for {len(state['demo_pos'])} label sets, "
                f"these settings (labels={self.cfg.labels!r}) use {len(self.buffers.demo_pos)}: "
                "load it with the labels setting it was trained with")
        self.net.load_state_dict(state["net"])
        self.buffers.demo_pos = [np.asarray(p, np.float32) for p in state["demo_pos"]]
        self.updates = int(state.get("updates", 0))

    def summary(self) -> dict[str, Any]:
        last = self.history[-1] if self.history else {}
        return {"updates": self.updates, "num_stages": self.num_stages,
                **{k: last[k] for k in ("loss", "acc") if k in last}}


class DrSCallback(PeriodicUpdate):
    """Updates the classifiers every ``update_every`` env steps, between rollouts."""

    def __init__(self, reward: DrSReward) -> None:
        super().__init__(reward.cfg.update_every, reward.update, "reward",
                         ready=lambda: reward.net is not None, report=self._log)
        self.reward = reward

    def _log(self, metrics: dict[str, float], steps: int) -> None:
        if self.reward.updates % 10 == 1:
            log.info("drs update %d at %d steps: loss %.3f, acc %.3f, %d stages trained",
                     self.reward.updates, steps, metrics["loss"], metrics["acc"],
                     metrics["stages_trained"])


__all__ = ["DrSCallback", "DrSReward"]
