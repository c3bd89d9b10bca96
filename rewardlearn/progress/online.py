"""Online refinement of a progress model on the agent's own rollouts (``online.enabled``).

A demo-trained progress model is accurate on demos and weak on the states a learning
policy visits. Here the policy's recent episodes join the training data while RL runs,
annotated only with the env's stage and success signals (``info["stage"]``,
``info["is_success"]``; never its reward or true progress) and labelled failure-aware
(:func:`~rewardlearn.progress.labels.failure_aware_labels`): a run of equal stages
gets a rising ``tau`` only if it advanced, so a stall or the carry before a drop keeps
``tau = 0``, a dropped object's frames return to the lower stage, and the frames where an
episode got stuck rank below the advancing frames of successful episodes at the same
stage. Each update trains on mixed batches (``demo_fraction`` demos, which stay in for
the whole run, so the model cannot forget the task):

    loss = CE(stage) + tau_weight * sum(w (tau - t)^2) / sum(w) + rank_weight * rank

The updated network is published to the :class:`~rewardlearn.progress.scorer.ProgressScorer`
as a new model version; each env switches to it at its next episode start, so ``Phi`` is
one function over each episode: ``F = gamma * Phi(s') - Phi(s)`` takes ``Phi(s)`` and
``Phi(s')`` from the same version, and the shaping cache's ``Phi(s)`` (computed when
``s`` was entered) always equals a fresh evaluation (dynamic shaping stays exact).
"""

from __future__ import annotations

import copy
import logging
from collections import deque
from typing import Any

import numpy as np
import torch

from rewardlearn.demos import Episode
from rewardlearn.progress.configuration import OnlineConfig
from rewardlearn.progress.labels import failure_aware_labels, frame_windows
from rewardlearn.progress.modeling import ProgressModel
from rewardlearn.progress.scorer import ProgressScorer
from rewardlearn.progress.training import RankPairs, demo_features, fit_loss, rank_loss
from rewardlearn.rewards.base import TransitionBatch
from rewardlearn.stages import PeriodicUpdate

log = logging.getLogger("rewardlearn")


class LabelledWindows:
    """Windows ``(N, W, D)`` with failure-aware labels, ready to sample from."""

    def __init__(self, model: ProgressModel, episodes: list[tuple[np.ndarray, np.ndarray, bool]],
                 stall_weight: float) -> None:
        """``episodes``: ``(features (T+1, D), stages (T+1,), success)`` each."""
        cfg = model.config
        xs, ks, ts, ws, hi, lo = [], [], [], [], [], []
        for feats, stages, success in episodes:
            stage, tau, _, adv = failure_aware_labels(stages, success, model.alpha)
            xs.append(feats[frame_windows(len(feats), cfg.window, cfg.stride)])
            ks.append(stage)
            ts.append(tau)
            ws.append(np.where(adv, 1.0, stall_weight))
            hi.append(adv & success)
            lo.append(~adv)
        dim = model.in_dim
        self.x = model.to_tensor(np.concatenate(xs)) if xs else \
            torch.zeros((0, cfg.window, dim), device=model.device)
        self.stage = np.concatenate(ks) if ks else np.zeros(0, np.int64)
        self.tau = np.concatenate(ts) if ts else np.zeros(0)
        self.weight = np.concatenate(ws) if ws else np.zeros(0)
        self.high = np.concatenate(hi) if hi else np.zeros(0, bool)
        self.low = np.concatenate(lo) if lo else np.zeros(0, bool)

    def __len__(self) -> int:
        return len(self.stage)

    def join(self, other: LabelledWindows) -> LabelledWindows:
        """Both pools in one (``self`` first)."""
        out = copy.copy(self)
        out.x = torch.cat([self.x, other.x])
        for name in ("stage", "tau", "weight", "high", "low"):
            setattr(out, name, np.concatenate([getattr(self, name), getattr(other, name)]))
        return out


class EpisodeRecorder:
    """Per env row: the running episode's features and env stages; finished ones come out.

    The first frame of an episode (its reset observation) takes the stage of the first
    ``s'`` (the batch carries no reset info); every later frame its own ``info`` stage.
    """

    def __init__(self) -> None:
        self._rows: list[dict[str, list[Any]]] = []

    def add(self, f_obs: np.ndarray, f_next: np.ndarray, stages: np.ndarray,
            dones: np.ndarray, success: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, bool]]:
        """Record one step of every env; returns the episodes that ended at it."""
        if len(self._rows) != len(f_obs):
            self._rows = [{"x": [], "k": []} for _ in range(len(f_obs))]
        done: list[tuple[np.ndarray, np.ndarray, bool]] = []
        for i, row in enumerate(self._rows):
            if not row["x"]:
                row["x"].append(np.array(f_obs[i], np.float32))
                row["k"].append(int(stages[i]))
            row["x"].append(np.array(f_next[i], np.float32))
            row["k"].append(int(stages[i]))
            if dones[i]:
                done.append((np.stack(row["x"]), np.array(row["k"], np.int64),
                             bool(success[i])))
                row["x"], row["k"] = [], []
        return done


class OnlineRefiner:
    """Trains a copy of the scorer's model on demos + the agent's episodes and publishes it.

    Args:
        scorer: the scorer whose model is refined (and which gets each new version).
        settings: :class:`~rewardlearn.progress.configuration.OnlineConfig` fields.
        demos: the demo episodes (default: loaded from ``settings["demos"]``).
    """

    def __init__(self, scorer: ProgressScorer, settings: dict[str, Any] | OnlineConfig,
                 demos: list[Episode] | None = None) -> None:
        self.cfg = settings if isinstance(settings, OnlineConfig) else \
            OnlineConfig.from_kwargs(dict(settings))
        self.scorer = scorer
        model = scorer.model
        if demos is None:
            from rewardlearn.demos import load_demo_sets

            demos = load_demo_sets(str(self.cfg.demos))
        if self.cfg.max_demos is not None:
            demos = demos[: self.cfg.max_demos]
        if not demos:
            raise ValueError("online refinement needs demos (online.demos=...)")
        feats = demo_features(demos, model.observation_space, model.encoder_spec)
        self.demo = LabelledWindows(model, [(f, ep.stages, ep.success)
                                            for f, ep in zip(feats, demos, strict=True)],
                                    model.config.stall_weight)
        self.episodes: deque[tuple[np.ndarray, np.ndarray, bool]] = deque(
            maxlen=self.cfg.buffer_episodes)
        self.recorder = EpisodeRecorder()
        self.net = copy.deepcopy(model.net)
        self.optim = torch.optim.Adam(self.net.parameters(), lr=self.cfg.lr,
                                      weight_decay=model.config.weight_decay)
        self.rng = np.random.default_rng(self.cfg.seed)
        self.gen = torch.Generator().manual_seed(self.cfg.seed)
        self.updates = 0
        self.finished = 0
        self.history: list[dict[str, float]] = []

    def observe(self, batch: TransitionBatch) -> None:
        """Record each env's step; a finished episode joins the agent data."""
        infos = batch.infos or []
        key = self.cfg.stage_key
        if not infos or key not in infos[0]:
            have = sorted(infos[0]) if infos else []
            raise ValueError(f"online progress refinement reads the stage from info[{key!r}], "
                             f"which this batch lacks (info keys: {have}); set online.stage_key "
                             "to the env's stage entry")
        stages = np.array([int(i[key]) for i in infos], np.int64)
        success = np.array([bool(i.get(self.cfg.success_key, False)) for i in infos])
        f_obs, f_next = self.scorer.features_of(batch)
        for ep in self.recorder.add(f_obs, f_next, stages, batch.dones, success):
            self.episodes.append(ep)
            self.finished += 1

    def ready(self) -> bool:
        """Enough finished agent episodes for an update."""
        return len(self.episodes) >= self.cfg.min_episodes

    def update(self) -> dict[str, float]:
        """``train_steps`` steps on mixed batches; publishes the new model version."""
        if not self.ready():
            return {}
        model = self.scorer.model
        cfg = model.config
        agent = LabelledWindows(model, list(self.episodes), cfg.stall_weight)
        pool = self.demo.join(agent)
        n_demo = round(self.cfg.batch_size * self.cfg.demo_fraction)
        n_agent = self.cfg.batch_size - n_demo
        pairs = RankPairs(pool.stage, pool.high, pool.low)
        rank = cfg.rank_weight > 0 and bool(pairs)
        dev = model.device
        stage_t = torch.as_tensor(pool.stage, device=dev)
        tau_t = torch.as_tensor(pool.tau, dtype=torch.float32, device=dev)
        w_t = torch.as_tensor(pool.weight, dtype=torch.float32, device=dev)
        sums = {"loss": 0.0, "stage_ce": 0.0, "tau_mse": 0.0, "rank": 0.0}
        self.net.train()
        for _ in range(self.cfg.train_steps):
            rows = np.concatenate([self.rng.integers(0, len(self.demo), n_demo),
                                   len(self.demo) + self.rng.integers(0, len(agent), n_agent)])
            r = torch.as_tensor(rows, device=dev)
            loss, ce, mse = fit_loss(self.net, pool.x[r], stage_t[r], tau_t[r], w_t[r], cfg,
                                     self.gen)
            if rank:
                hi, lo, k = pairs.sample(cfg.rank_pairs, self.rng)
                rl = rank_loss(self.net, pool.x[torch.as_tensor(hi, device=dev)],
                               pool.x[torch.as_tensor(lo, device=dev)],
                               torch.as_tensor(k, device=dev), cfg)
                loss = loss + cfg.rank_weight * rl
                sums["rank"] += rl.item()
            self.optim.zero_grad()
            loss.backward()
            self.optim.step()
            sums["loss"] += loss.item()
            sums["stage_ce"] += ce.item()
            sums["tau_mse"] += mse.item()
        self.net.eval()
        new = copy.copy(model)
        new.net = copy.deepcopy(self.net)
        version = self.scorer.publish(new)
        self.updates += 1
        metrics = {k: v / self.cfg.train_steps for k, v in sums.items()}
        metrics.update(version=float(version), agent_episodes=float(len(self.episodes)),
                       agent_successes=float(sum(ep[2] for ep in self.episodes)),
                       agent_frames=float(len(agent)))
        self.history.append(metrics)
        return metrics

    def callback(self) -> PeriodicUpdate:
        """The SB3 callback that runs :meth:`update` every ``update_every`` env steps."""
        return PeriodicUpdate(self.cfg.update_every, self.update, "progress_online",
                              ready=self.ready, report=_report)

    def summary(self) -> dict[str, Any]:
        last = self.history[-1] if self.history else {}
        return {"online_updates": self.updates, "online_episodes": self.finished,
                **{f"online_{k}": last[k] for k in ("loss", "tau_mse", "rank") if k in last}}


def _report(metrics: dict[str, float], steps: int) -> None:
    log.info("progress online update %d at %d steps: loss %.3f (mse %.4f, rank %.3f), "
             "%d agent episodes (%d successes)", metrics["version"], steps, metrics["loss"],
             metrics["tau_mse"], metrics["rank"], metrics["agent_episodes"],
             metrics["agent_successes"])


__all__ = ["EpisodeRecorder", "LabelledWindows", "OnlineRefiner"]
