"""``reward=vpl``: one reward ``r(s, a, z)`` for many users, learned with VPL's ELBO.

Variational preference learning (Poddar et al., NeurIPS 2024): every user is a latent
``z``; the encoder infers ``q(z | N pairs the user labelled)`` and the reward explains
the labels given ``z`` (:mod:`rewardlearn.vpl.modeling`). While the agent trains, rounds
(:mod:`rewardlearn.vpl.online`) draw segment pairs from its experience and ask the users
in turn, one annotation set of ``annotation_size`` pairs each: ``teacher=population``
(synthetic users with hidden goals, :mod:`rewardlearn.vpl.population`) or
``teacher=human`` (each review-page annotator is a user). The agent is conditioned on
``z``: ``train.py`` appends ``z ~ N(0, I)`` to every observation
(:class:`~rewardlearn.vpl.latent.AppendLatent`), and this module reads it back, so the
agent learns ``pi(a | s, z)`` on ``r(s, a, z)``; at test time ``z`` is the posterior mean
of a new user's few labels (:meth:`VPLReward.infer_latent`, chosen actively with
:func:`~rewardlearn.vpl.active.select_queries`).

Each round's new labels are first scored with ``z`` inferred from the same user's earlier
labels (``heldout_acc``: labels the model has not trained on), then the model trains
``train_steps`` ELBO steps on every label so far.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rewardlearn.preference.configuration import PreferenceConfig
from rewardlearn.preference.schedule import FeedbackPlan, plan_rounds
from rewardlearn.rewards.base import Obs
from rewardlearn.rewards.features import flat_dim_act, flatten_acts
from rewardlearn.utils import resolve_device
from rewardlearn.vpl.configuration import VPLConfig
from rewardlearn.vpl.dataset import UserPairs, set_batch
from rewardlearn.vpl.modeling import VPLModel, elbo_loss, spo_rewards
from rewardlearn.vpl.online import OnlineRoundReward
from rewardlearn.vpl.population import Side

log = logging.getLogger("rewardlearn")

ANONYMOUS = "anonymous"
"""The user id of a human label whose annotator is unknown."""


class VPLReward(OnlineRoundReward):
    """Latent-conditioned reward ``r(s, a, z)`` learned from many users (module docstring).

    Args:
        observation_space: ``[s, z]``: the env's flat observation with ``latent_dim``
            entries of ``z`` appended (:class:`~rewardlearn.vpl.latent.AppendLatent`).
        action_space: the env's actions.
        teacher: ``teacher=population`` (synthetic users) or ``teacher=human`` (people, each
            annotator a user); ``None`` for a model that is only used.
        config: the :class:`VPLConfig` (a run builds and checks it once), or
        **kwargs: its fields.
    """

    name = "vpl"
    settings_class = VPLConfig
    runtime_params = ("teacher",)

    def __init__(self, observation_space: gym.Space, action_space: gym.Space,
                 teacher: Any = None, config: VPLConfig | None = None, **kwargs: Any) -> None:
        cfg = VPLConfig.build(config, **kwargs)
        super().__init__(observation_space, action_space, cfg.buffer_capacity)
        self.cfg = cfg
        d = cfg.latent_dim
        if not isinstance(observation_space, gym.spaces.Box) or \
                len(observation_space.shape) != 1 or observation_space.shape[0] <= d:
            raise ValueError(f"reward=vpl reads z from the last reward.model.latent_dim={d} "
                             f"entries of a flat observation [s, z] (rewardlearn.vpl.latent."
                             f"AppendLatent, which train.py adds); got {observation_space}")
        if not isinstance(action_space, gym.spaces.Box):
            raise ValueError(f"reward=vpl needs Box actions, got {action_space}")
        self.obs_dim = int(observation_space.shape[0]) - d
        self.act_dim = flat_dim_act(action_space)
        self.teacher = teacher
        self._check_teacher(teacher)
        self.needs_sim_states = bool(getattr(teacher, "needs_sim_states", False))
        s, a = self.obs_dim, self.act_dim
        cols = list(range(s))
        if cfg.use_action:
            cols += list(range(s, s + a))
        if cfg.use_next_obs:
            cols += list(range(s + a, 2 * s + a))
        self.columns = np.asarray(cols, np.int64)
        """The step-feature columns ``[s, a, s']`` the model reads."""
        self.device = resolve_device(cfg.device)
        self.model = VPLModel(len(cols), d, cfg.hidden_sizes, cfg.embed_dim,
                              cfg.seed, cfg.reward_form).to(self.device)
        self.model.eval()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.dataset = UserPairs.empty(cfg.segment_length, 2 * s + a)
        self.rng = np.random.default_rng(cfg.seed)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(0 if cfg.seed is None else int(cfg.seed))
        self.spo_reference: np.ndarray | None = None
        self.queries_asked = 0
        self._next_user = 0
        self._cols_t = torch.as_tensor(self.columns, device=self.device)

    def _check_teacher(self, teacher: Any) -> None:
        if teacher is None:
            return
        if hasattr(teacher, "label_user"):
            teacher.check_space(gym.spaces.Box(-np.inf, np.inf, (self.obs_dim,), np.float32))
        elif not (hasattr(teacher, "ask") and hasattr(teacher, "collect")):
            raise ValueError(f"reward=vpl learns from many users: use teacher=population "
                             f"(synthetic users) or teacher=human (each annotator a user), not "
                             f"teacher={getattr(teacher, 'name', type(teacher).__name__)}")

    @property
    def learns(self) -> bool:
        return self.teacher is not None

    # -- features ---------------------------------------------------------------------------

    def _state(self, obs: Obs) -> np.ndarray:
        arr = np.asarray(obs, np.float32)
        return arr.reshape(len(arr), -1)[:, : self.obs_dim]

    def step_features(self, obs: Obs, acts: np.ndarray, next_obs: Obs) -> np.ndarray:
        """``[s, a, s']`` without ``z`` (what the users and the encoder see)."""
        return np.concatenate([self._state(obs), flatten_acts(self.action_space, acts),
                               self._state(next_obs)], axis=1)

    def reward_inputs(self, obs: Obs, acts: np.ndarray, next_obs: Obs) -> np.ndarray:
        """The model's columns of ``[s, a, s']`` followed by ``z`` (read from ``obs``)."""
        z = np.asarray(obs, np.float32).reshape(len(acts), -1)[:, self.obs_dim:]
        return np.concatenate([self.step_features(obs, acts, next_obs)[:, self.columns], z],
                              axis=1)

    @torch.no_grad()
    def reward_from_inputs(self, x: np.ndarray) -> np.ndarray:
        t = torch.as_tensor(np.asarray(x, np.float32), device=self.device)
        d = self.cfg.latent_dim
        feats, z = t[:, :-d], t[:, -d:]
        if self.cfg.scaling == "spo" and self.spo_reference is not None:
            ref = torch.as_tensor(self.spo_reference, device=self.device)
            r = spo_rewards(self.model, feats, z, ref)
        else:
            r = self.model.rewards(feats, z)
        return r.cpu().numpy().astype(np.float32)

    def split_side(self, features: np.ndarray) -> Side:
        """Step features ``(..., [s, a, s'])`` -> ``(s, a, s')`` (what a user labels from)."""
        s, a = self.obs_dim, self.act_dim
        return features[..., :s], features[..., s:s + a], features[..., s + a:]

    # -- inference --------------------------------------------------------------------------

    @torch.no_grad()
    def infer_latent(self, x1: np.ndarray, x2: np.ndarray, labels: np.ndarray,
                     len1: np.ndarray | None = None, len2: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
        """``(mu, logvar)`` ``(d,)`` of ``q(z | pairs)``: one user's labelled pairs, as step
        features ``(n, L, [s, a, s'])`` (``labels``: 1 first preferred, 0 second, 0.5 equal)."""
        if len(labels) == 0:
            zero = np.zeros(self.cfg.latent_dim, np.float32)
            return zero, zero.copy()
        b = self._model_batch(set_batch(x1, x2, labels, self.device, len1, len2))
        mu, logvar = self.model.encode(b["x1"], b["m1"], b["x2"], b["m2"], b["labels"],
                                       b["set_mask"])
        return mu[0].cpu().numpy(), logvar[0].cpu().numpy()

    @torch.no_grad()
    def policy_latents(self) -> np.ndarray | None:
        """With ``policy_latents=posterior`` and labels: the posterior means ``E[z | C]`` of
        ``latent_bank_size`` random annotation sets ``C`` (a random user each),
        ``(latent_bank_size, d)``: the statistic a new user's ``z`` is at test time
        (:meth:`infer_latent`'s mean), so the agent trains on the latents it will be given.
        (A prior draw in ``d = 8`` has norm about ``sqrt(d)``; the posterior means of a
        few labels sit much nearer the origin, where prior draws almost never fall.)"""
        cfg = self.cfg
        if cfg.policy_latents != "posterior" or len(self.dataset) == 0:
            return None
        idx, mask = self.dataset.sample_sets(cfg.latent_bank_size, cfg.annotation_size,
                                             self.rng)
        b = self._model_batch(self.dataset.tensors(idx, mask, self.device))
        mu, _ = self.model.encode(b["x1"], b["m1"], b["x2"], b["m2"], b["labels"],
                                  b["set_mask"])
        return mu.cpu().numpy()

    @torch.no_grad()
    def pair_probabilities(self, x1: np.ndarray, x2: np.ndarray, z: np.ndarray,
                           len1: np.ndarray | None = None, len2: np.ndarray | None = None
                           ) -> np.ndarray:
        """``P(first preferred | z)`` ``(n,)`` of pairs ``(n, L, [s, a, s'])`` for a user ``z``."""
        b = self._model_batch(set_batch(x1, x2, np.zeros(len(x1)), self.device, len1, len2))
        zt = torch.as_tensor(np.asarray(z, np.float32), device=self.device).reshape(1, -1)
        return torch.sigmoid(self.model.logits(b["x1"], b["m1"], b["x2"], b["m2"], zt))[0] \
            .cpu().numpy()

    def _model_batch(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Keep the model's columns of the step features."""
        return {**batch, "x1": batch["x1"][..., self._cols_t], "x2": batch["x2"][..., self._cols_t]}

    # -- rounds -----------------------------------------------------------------------------

    def plan(self, total_timesteps: int) -> FeedbackPlan:
        cfg = self.cfg
        spread = PreferenceConfig(budget=max(0, cfg.budget - self.queries_asked) or 1,
                                  rounds=max(1, cfg.rounds - self.rounds_done),
                                  first_round_at=cfg.first_round_at,
                                  feedback_until=cfg.feedback_until,
                                  segment_length=cfg.segment_length)
        if self.queries_asked >= cfg.budget:
            return FeedbackPlan(())
        return plan_rounds(spread, total_timesteps)

    def run_round(self, n_labels: int) -> dict[str, float]:
        cfg, buf = self.cfg, self.buffer
        n = min(int(n_labels), cfg.budget - self.queries_asked)
        if buf is None or n <= 0:
            return {}
        length = buf.longest_feasible(cfg.segment_length, needed=2 * cfg.annotation_size)
        if length == 0:
            return {}
        t0 = time.perf_counter()
        if len(self.dataset) == 0:
            self._fit_normalizer()
        start = len(self.dataset)
        if hasattr(self.teacher, "label_user"):
            self._ask_population(n, length)
        else:
            self._ask_people(n, length)
        metrics: dict[str, float] = {"new_labels": float(len(self.dataset) - start),
                                     "segment_length": float(length)}
        metrics.update(self._score_new(start))
        if len(self.dataset):
            metrics.update(self.train())
        if cfg.scaling == "spo":
            ref = buf.features_sample(cfg.spo_samples, self.rng)
            self.spo_reference = ref[:, self.columns].astype(np.float32)
        metrics.update({"labels_used": float(len(self.dataset)),
                        "users": float(len(self.dataset.user_names())),
                        "round_s": time.perf_counter() - t0})
        return metrics

    def _fit_normalizer(self) -> None:
        assert self.buffer is not None
        feats = self.buffer.features_sample(20_000, self.rng)[:, self.columns]
        if len(feats) < 2:
            return
        norm = self.model.norm
        norm.count.zero_()
        norm.mean.zero_()
        norm.var.fill_(1.0)
        norm.update(torch.as_tensor(feats, device=self.device))

    def _ask_population(self, n: int, length: int) -> None:
        """The users in turn, one annotation set of ``annotation_size`` pairs each: about ``n``
        labels (``n / annotation_size`` sets, rounded, within the budget)."""
        assert self.buffer is not None
        size = self.cfg.annotation_size
        sets = max(1, round(n / size))
        sets = min(sets, max(1, (self.cfg.budget - self.queries_asked) // size))
        for _ in range(sets):
            k = self._next_user % self.teacher.n_users
            self._next_user += 1
            a = self.buffer.sample(size, length, self.rng)
            b = self.buffer.sample(size, length, self.rng)
            answer = self.teacher.label_user(k, self.split_side(a.features),
                                             self.split_side(b.features))
            self.queries_asked += size
            keep = answer.kept_indices
            if len(keep):
                self.dataset.add(a.features[keep], b.features[keep], answer.labels[keep],
                                 self.teacher.user_ids[k], self.rounds_done)

    def _ask_people(self, n: int, length: int) -> None:
        """An asynchronous teacher (the review page): ask ``n`` pairs, take the answers that
        came back, each labelled by its annotator (the user)."""
        assert self.buffer is not None
        a = self.buffer.sample(n, length, self.rng)
        b = self.buffer.sample(n, length, self.rng)
        self.queries_asked += int(self.teacher.ask(a, b, self.rounds_done))
        for pair in self.teacher.collect(expected=n):
            user = str(pair.annotator or ANONYMOUS)
            self.dataset.add(np.asarray(pair.x1)[None], np.asarray(pair.x2)[None],
                             np.array([pair.label]), user, self.rounds_done)

    @torch.no_grad()
    def _score_new(self, start: int) -> dict[str, float]:
        """Accuracy of the labels added since ``start``, each user's ``z`` inferred from their
        earlier labels (the new ones are not trained on yet): ``heldout_acc``."""
        right = total = 0
        for user in dict.fromkeys(self.dataset.users[start:]):
            idx = self.dataset.indices(user)
            old, new = idx[idx < start], idx[idx >= start]
            new = new[self.dataset.labels[new] != 0.5]
            if len(old) == 0 or len(new) == 0:
                continue
            context = old[-4 * self.cfg.annotation_size:]
            d = self.dataset
            mu, _ = self.infer_latent(d.x1[context], d.x2[context], d.labels[context],
                                      d.len1[context], d.len2[context])
            p = self.pair_probabilities(d.x1[new], d.x2[new], mu, d.len1[new], d.len2[new])
            right += int(((p > 0.5) == (d.labels[new] > 0.5)).sum())
            total += len(new)
        return {"heldout_acc": right / total} if total else {}

    def train(self) -> dict[str, float]:
        """``train_steps`` Adam steps on ``-ELBO`` of ``batch_sets`` random annotation sets."""
        cfg = self.cfg
        self.model.train()
        stats: list[dict[str, float]] = []
        for _ in range(cfg.train_steps):
            idx, mask = self.dataset.sample_sets(cfg.batch_sets, cfg.annotation_size, self.rng)
            batch = self._model_batch(self.dataset.tensors(idx, mask, self.device))
            loss, parts = elbo_loss(self.model, batch, cfg.kl_weight, self.generator)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            stats.append(parts)
        self.model.eval()
        last = stats[-max(1, len(stats) // 10):]  # the last tenth of the steps
        return {"elbo_loss": float(np.mean([s["loss"] for s in last])),
                "bce": float(np.mean([s["bce"] for s in last])),
                "kl": float(np.mean([s["kl"] for s in last])),
                "train_acc": float(np.mean([s["acc"] for s in last]))}

    # -- saving -----------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        last = self.history[-1] if self.history else {}
        return {"labels_used": len(self.dataset), "queries_asked": self.queries_asked,
                "users": len(self.dataset.user_names()), "feedback_rounds": self.rounds_done,
                **{k: last[k] for k in ("heldout_acc", "train_acc", "kl") if k in last}}

    def state_dict(self) -> dict[str, Any]:
        return {"model": {k: v.cpu() for k, v in self.model.state_dict().items()},
                "dataset": self.dataset.state_dict(), "queries_asked": self.queries_asked,
                "rounds_done": self.rounds_done, "next_user": self._next_user,
                "history": list(self.history), "spo_reference": self.spo_reference}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.dataset = UserPairs.from_state(state["dataset"])
        self.queries_asked = int(state["queries_asked"])
        self.rounds_done = int(state["rounds_done"])
        self._next_user = int(state.get("next_user", 0))
        self.history = list(state.get("history", []))
        ref = state.get("spo_reference")
        self.spo_reference = None if ref is None else np.asarray(ref, np.float32)


__all__ = ["ANONYMOUS", "VPLReward"]
