"""``reward=pearl``: a target-task reward from another task's preference labels.

PEARL (Liu et al., ICML 2024): no (or a few) labels on the target task. Each round
(:mod:`rewardlearn.vpl.online`) draws ``target_segments`` segments from the agent's
target-task experience, aligns them with the source run's labelled segments by
Gromov-Wasserstein, gives target pairs the transport-weighted source labels
(:mod:`rewardlearn.pearl.transport`), and trains a Gaussian reward on every label so far
(:mod:`rewardlearn.pearl.robust`); the agent's reward is its mean. ``target_budget`` > 0
adds that many real target labels from the ``teacher`` (hard labels, trained on with the
transferred ones), which also fix the orientation of the transferred labels.

The env's reward is read for one diagnostic only: ``transfer_acc``, the share of kept
transferred labels that agree with the target task's true returns (the scripted oracle);
it never reaches the reward model.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rewardlearn.encoders import build_state_encoder
from rewardlearn.pearl.configuration import PEARLConfig
from rewardlearn.pearl.robust import GaussianReward, robust_loss
from rewardlearn.pearl.source import SourceLabels, read_source
from rewardlearn.pearl.transport import (
    candidate_pairs,
    cross_segment_distances,
    gw_plan,
    segment_distances,
    transfer_labels,
)
from rewardlearn.preference.configuration import PreferenceConfig
from rewardlearn.preference.schedule import FeedbackPlan, plan_rounds
from rewardlearn.rewards.base import Obs
from rewardlearn.rewards.features import TransitionFeatures, flat_dim
from rewardlearn.utils import resolve_device
from rewardlearn.vpl.dataset import UserPairs
from rewardlearn.vpl.online import OnlineRoundReward

log = logging.getLogger("rewardlearn")

TRANSFERRED, REAL = "transferred", "target"
"""Who labelled a pair: the transport plan, or the target task's teacher."""


class PEARLReward(OnlineRoundReward):
    """Gaussian reward ``N(mu(x), sigma(x)^2)`` trained on labels transferred from a source
    task (module docstring); the agent gets ``mu``.

    Args:
        observation_space, action_space: the target env's spaces.
        teacher: labels real target pairs when ``target_budget`` > 0 (``teacher=oracle``...).
        config: the :class:`PEARLConfig`, or
        **kwargs: its fields.
    """

    name = "pearl"
    settings_class = PEARLConfig
    runtime_params = ("teacher",)

    def __init__(self, observation_space: gym.Space, action_space: gym.Space,
                 teacher: Any = None, config: PEARLConfig | None = None,
                 **kwargs: Any) -> None:
        cfg = PEARLConfig.build(config, **kwargs)
        super().__init__(observation_space, action_space, cfg.buffer_capacity)
        self.cfg = cfg
        self.teacher = teacher
        if cfg.target_budget > 0 and teacher is not None and not hasattr(teacher, "label"):
            raise ValueError("reward.model.target_budget > 0 needs a synthetic teacher "
                             "(teacher=oracle, noisy...) for the real target labels")
        self.features = TransitionFeatures(observation_space, action_space, True,
                                           cfg.use_action, cfg.use_next_obs)
        self.device = resolve_device(cfg.device)
        self.model = GaussianReward(self.features.dim, cfg.hidden_sizes, cfg.seed).to(self.device)
        self.model.eval()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.align = build_state_encoder(cfg.align_encoder, "reward.model.align_encoder")
        self.obs_dim = flat_dim(observation_space)
        if self.align is not None:
            self.align.embed(np.zeros((1, self.obs_dim), np.float32))  # its indices fit
        self.dataset: UserPairs | None = None
        self.source: SourceLabels | None = None
        self._source_rows: list[np.ndarray] = []
        self._c_source: np.ndarray | None = None
        self.real_asked = 0
        self.rng = np.random.default_rng(cfg.seed)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(0 if cfg.seed is None else int(cfg.seed))

    @property
    def learns(self) -> bool:
        return self.rounds_done < self.cfg.rounds

    # -- features ---------------------------------------------------------------------------

    def step_features(self, obs: Obs, acts: np.ndarray, next_obs: Obs) -> np.ndarray:
        return self.features(obs, acts, next_obs, np.zeros(len(acts), bool)).numpy()

    def reward_inputs(self, obs: Obs, acts: np.ndarray, next_obs: Obs) -> np.ndarray:
        return self.step_features(obs, acts, next_obs)

    @torch.no_grad()
    def reward_from_inputs(self, x: np.ndarray) -> np.ndarray:
        mu, _ = self.model(torch.as_tensor(np.asarray(x, np.float32), device=self.device))
        return mu.cpu().numpy().astype(np.float32)

    # -- rounds -----------------------------------------------------------------------------

    def aligned(self, segment: np.ndarray) -> np.ndarray:
        """What the alignment compares of one segment's steps: all its features, or the
        ``align_encoder``'s features of the observation columns (the first ones)."""
        if self.align is None:
            return np.asarray(segment)
        if segment.shape[1] < self.obs_dim:
            raise ValueError(f"reward.model.align_encoder reads the first {self.obs_dim} "
                             f"features of each step (this env's observation), but the source "
                             f"run's segments have {segment.shape[1]} per step")
        return np.asarray(self.align.embed(np.asarray(segment[:, :self.obs_dim])))

    def load_source(self) -> SourceLabels:
        """The source labels and their distance matrix (read once)."""
        if self.source is None:
            self.source = read_source(str(self.cfg.source), self.cfg.source_pairs, self.cfg.seed)
            self._source_rows = [self.aligned(seg) for seg in self.source.segments]
            self._c_source = segment_distances(self._source_rows)
            log.info("pearl: %d source pairs over %d segments from %s", len(self.source),
                     len(self.source.segments), self.source.path)
        return self.source

    def plan(self, total_timesteps: int) -> FeedbackPlan:
        left = self.cfg.rounds - self.rounds_done
        if left <= 0:
            return FeedbackPlan(())
        spread = PreferenceConfig(budget=left * self.cfg.labels_per_round, rounds=left,
                                  first_round_at=self.cfg.first_round_at,
                                  feedback_until=self.cfg.feedback_until)
        return plan_rounds(spread, total_timesteps)

    def run_round(self, n_labels: int) -> dict[str, float]:
        cfg, buf = self.cfg, self.buffer
        if buf is None or self.rounds_done >= cfg.rounds:
            return {}
        source = self.load_source()
        assert self._c_source is not None
        length = buf.longest_feasible(cfg.segment_length or source.segment_length,
                                      needed=cfg.target_segments)
        if length == 0:
            return {}
        t0 = time.perf_counter()
        segs = buf.sample(cfg.target_segments, length, self.rng)
        if self.dataset is None:
            self.dataset = UserPairs.empty(length, self.features.dim)
            self._fit_normalizer()
        rows = [self.aligned(f) for f in segs.features]
        cross = (cross_segment_distances(self._source_rows, rows, length)
                 if cfg.structure_weight < 1.0 else None)
        plan, gw = gw_plan(self._c_source, segment_distances(rows, length), cfg.solver,
                           cfg.epsilon, cfg.gw_max_iter, cross, cfg.structure_weight)
        ti, tj = candidate_pairs(plan, source.pairs,
                                 cfg.labels_per_round * cfg.candidates_factor, self.rng)
        ti, tj = _distinct(ti, tj)
        z, cover = transfer_labels(plan, source.pairs, source.labels, ti, tj)
        order = np.argsort(-cover, kind="stable")[: cfg.labels_per_round]
        keep = order[cover[order] > cfg.min_coverage]
        metrics: dict[str, float] = {"gw_distance": gw, "segment_length": float(length),
                                     "transferred": float(len(keep)),
                                     "coverage": float(cover[keep].mean()) if len(keep) else 0.0}
        labels = z[keep]
        real = self._ask_teacher(segs, length, ti[keep], tj[keep])
        if real is not None:
            ri, rj, ry = real
            rz, rcover = transfer_labels(plan, source.pairs, source.labels, ri, rj)
            check = (ry != 0.5) & (rcover > 0) & (rz != 0.5)
            if check.any():
                agree = float(((rz[check] > 0.5) == (ry[check] > 0.5)).mean())
                metrics["real_agreement"] = agree
                if agree < 0.5:  # GW's mirror image: the transferred labels run backwards
                    labels = 1.0 - labels
                    metrics["flipped"] = 1.0
            self.dataset.add(segs.features[ri], segs.features[rj], ry, REAL, self.rounds_done)
            metrics["real_labels"] = float(len(ry))
        returns = segs.true_rewards.sum(1)
        gap = returns[ti[keep]] - returns[tj[keep]]
        decided = (gap != 0) & (labels != 0.5)
        if decided.any():
            metrics["transfer_acc"] = float(((labels > 0.5) == (gap > 0))[decided].mean())
        if len(keep):
            self.dataset.add(segs.features[ti[keep]], segs.features[tj[keep]], labels,
                             TRANSFERRED, self.rounds_done)
        if len(self.dataset):
            metrics.update(self.train())
        metrics.update({"labels_used": float(len(self.dataset)),
                        "round_s": time.perf_counter() - t0})
        return metrics

    def _fit_normalizer(self) -> None:
        assert self.buffer is not None
        feats = self.buffer.features_sample(20_000, self.rng)
        if len(feats) >= 2:
            norm = self.model.norm
            norm.count.zero_()
            norm.mean.zero_()
            norm.var.fill_(1.0)
            norm.update(torch.as_tensor(feats, device=self.device))

    def _ask_teacher(self, segs: Any, length: int, ti: np.ndarray, tj: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """This round's share of ``target_budget`` real labels: on the best-covered
        transferred pairs ``(ti, tj)`` first (so the two can be compared: the mirror check),
        then on random target pairs."""
        cfg = self.cfg
        n = min(cfg.target_budget - self.real_asked, math.ceil(cfg.target_budget / cfg.rounds))
        if n <= 0 or self.teacher is None:
            return None
        assert self.buffer is not None
        m, extra = len(segs), max(0, n - len(ti))
        ri = np.r_[ti[:n], self.rng.integers(0, m, extra)].astype(np.int64)
        rj = self.rng.integers(0, m - 1, extra)
        rj = np.r_[tj[:n], rj + (rj >= ri[len(ri) - extra:])].astype(np.int64)
        if getattr(self.teacher, "needs_thresholds", False):
            self.teacher.update_thresholds(self.buffer.recent_true_reward_mean(), length)
        answer = self.teacher.label(segs.true_rewards[ri], segs.true_rewards[rj])
        self.real_asked += n
        kept = answer.kept_indices
        return ri[kept], rj[kept], answer.labels[kept]

    def train(self) -> dict[str, float]:
        """``epochs`` passes over every label so far (transferred and real)."""
        cfg, data = self.cfg, self.dataset
        assert data is not None
        self.model.train()
        stats: list[dict[str, float]] = []
        for _ in range(cfg.epochs):
            perm = self.rng.permutation(len(data))
            for s in range(0, len(perm), cfg.batch_size):
                idx = perm[s:s + cfg.batch_size]
                m1, m2 = data.step_masks(idx)
                batch = {k: torch.as_tensor(v, device=self.device) for k, v in {
                    "x1": data.x1[idx], "x2": data.x2[idx], "m1": m1, "m2": m2,
                    "labels": data.labels[idx],
                    "weights": np.ones(len(idx), np.float32)}.items()}
                loss, parts = robust_loss(self.model, batch, cfg.sigma0, cfg.sigma_weight,
                                          self.generator)
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                stats.append(parts)
        self.model.eval()
        last = stats[-max(1, len(stats) // cfg.epochs):]  # the last epoch
        with torch.no_grad():
            _, log_sigma = self.model(torch.as_tensor(data.x1[:256], device=self.device))
        return {"train_loss": float(np.mean([s["loss"] for s in last])),
                "bt_loss": float(np.mean([s["bt"] for s in last])),
                "sigma_mean": float(torch.exp(log_sigma).mean())}

    # -- saving -----------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        last = self.history[-1] if self.history else {}
        accs = [h["transfer_acc"] for h in self.history if "transfer_acc" in h]
        return {"labels_used": 0 if self.dataset is None else len(self.dataset),
                "real_labels": self.real_asked, "feedback_rounds": self.rounds_done,
                "transfer_acc_mean": float(np.mean(accs)) if accs else None,
                **{k: last[k] for k in ("transfer_acc", "coverage", "gw_distance") if k in last}}

    def state_dict(self) -> dict[str, Any]:
        return {"model": {k: v.cpu() for k, v in self.model.state_dict().items()},
                "dataset": None if self.dataset is None else self.dataset.state_dict(),
                "rounds_done": self.rounds_done, "real_asked": self.real_asked,
                "history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        data = state.get("dataset")
        self.dataset = None if data is None else UserPairs.from_state(data)
        self.rounds_done = int(state["rounds_done"])
        self.real_asked = int(state.get("real_asked", 0))
        self.history = list(state.get("history", []))


def _distinct(ti: np.ndarray, tj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each unordered target pair once (the first draw of ``(i, j)`` or ``(j, i)``)."""
    key = np.minimum(ti, tj) * (max(int(ti.max(initial=0)), int(tj.max(initial=0))) + 1) \
        + np.maximum(ti, tj)
    _, first = np.unique(key, return_index=True)
    first = np.sort(first)
    return ti[first], tj[first]


__all__ = ["REAL", "TRANSFERRED", "PEARLReward"]
