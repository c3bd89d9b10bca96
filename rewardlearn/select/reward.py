"""``reward=action_preference``: a reward ``r(s, a)`` learned from preferences over two
candidate actions at the same state (DeformPAM's data, Chen et al., ICRA 2025).

Bradley-Terry over the two candidates of each labelled pair (:mod:`rewardlearn.select.pairs`)::

    P(a_A > a_B | s) = sigmoid(r(s, a_A) - r(s, a_B))
    loss = - y log P - (1 - y) log(1 - P)          (y = 1, 0, or 0.5 for "equal")

with ``r`` the mean of an ensemble of MLPs over standardised ``[s, a]``. The state is the
same on both sides, so only the action-dependent part of ``r`` is learned: the reward
ranks actions at a state (what best-of-n selection needs, ``eval.select.scorer=reward``),
and says nothing about how good a state is. DeformPAM learns the same comparison
implicitly, as a DPO-finetuned policy's log-ratio against its reference,
``r(a) = -beta E[||eps - eps_PL||^2 - ||eps - eps_SL||^2]`` (Diffusion-DPO), then ranks
the reference policy's candidates by it; here the reward is an explicit network and the
policy is left as it is.

Example:
    >>> import gymnasium as gym, numpy as np
    >>> from rewardlearn.select.pairs import ActionPair, save_pairs
    >>> import tempfile
    >>> rng = np.random.default_rng(0)
    >>> pairs = []
    >>> for i in range(200):   # the action closer to 0.5 is better
    ...     a, b = rng.uniform(-1, 1, 2)
    ...     pairs.append(ActionPair(f"p{i}", [0.0], [a], [b], float(abs(a - .5) < abs(b - .5))))
    >>> folder = tempfile.mkdtemp()
    >>> _ = save_pairs(folder, pairs)
    >>> box = gym.spaces.Box(-1, 1, (1,), np.float32)
    >>> r = ActionPreferenceReward(box, box, labels=folder, epochs=300, hidden_sizes=[32])
    >>> from rewardlearn.rewards.base import TransitionBatch
    >>> acts = np.array([[-1.0], [0.0], [0.5], [1.0]])
    >>> int(np.argmax(r(TransitionBatch.from_arrays(np.zeros((4, 1)), acts, np.zeros((4, 1))))))
    2
"""

from __future__ import annotations

import logging
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rewardlearn.preference.modeling import (
    RewardEnsemble,
    preference_accuracy,
    preference_loss,
)
from rewardlearn.rewards.base import RewardModel, RewardOutput, TransitionBatch
from rewardlearn.rewards.features import TransitionFeatures
from rewardlearn.select.configuration import ActionPreferenceConfig
from rewardlearn.select.pairs import label_arrays, label_temperature, load_pairs, pairs_file
from rewardlearn.utils import resolve_device

log = logging.getLogger("rewardlearn")


class ActionPreferenceReward(RewardModel):
    """``r(s, a)`` fitted to labelled action pairs with Bradley-Terry (see module docstring).

    Args:
        observation_space, action_space: the env's spaces.
        config: the :class:`~rewardlearn.select.configuration.ActionPreferenceConfig`, or
            **kwargs: its fields. With ``labels`` the model is fitted at construction.
    """

    name = "action_preference"
    settings_class = ActionPreferenceConfig
    deferrable = True  # fitted once, before any rollout
    has_support = True  # its labelled states (false: not fitted, or saved without them)

    def __init__(self, observation_space: gym.Space, action_space: gym.Space,
                 config: ActionPreferenceConfig | None = None, **kwargs: Any) -> None:
        super().__init__(observation_space, action_space)
        self.cfg = cfg = ActionPreferenceConfig.build(config, **kwargs)
        self.features = TransitionFeatures(observation_space, action_space, use_obs=True,
                                           use_action=True)
        self.device = resolve_device(cfg.device)
        self.ensemble = RewardEnsemble(self.features.dim, cfg.n_members, cfg.hidden_sizes,
                                       cfg.activation, None, seed=cfg.seed).to(self.device)
        self.report: dict[str, Any] = {}
        self.support_obs: torch.Tensor | None = None
        """The fitted pairs' states, flattened ``(P, D)``: the reward's support."""
        self._support_ref: torch.Tensor | None = None  # the same, standardised (cached)
        if cfg.labels is not None:
            self.fit_folder(cfg.labels)
        self.has_support = self.support_obs is not None

    # -- features -----------------------------------------------------------------------

    def inputs(self, obs: Any, acts: np.ndarray) -> torch.Tensor:
        """``[s, a]`` features on the model's device."""
        return self.features(obs, acts, obs, np.zeros(len(acts), bool)).to(self.device)

    @torch.no_grad()
    def compute(self, batch: TransitionBatch) -> RewardOutput:
        x = self.inputs(batch.obs, batch.acts)
        per_member = self.ensemble.predict(x)
        return RewardOutput(per_member.mean(0).float().cpu().numpy(),
                            {"reward_std": per_member.std(0, unbiased=False).float()
                             .cpu().numpy()})

    @torch.no_grad()
    def pair_disagreement(self, obs: Any, act_a: np.ndarray, act_b: np.ndarray) -> np.ndarray:
        """``(P,)`` the members' disagreement on each pair: the standard deviation over members
        of ``P_e(a_A > a_B | s) = sigmoid(r_e(s, a_A) - r_e(s, a_B))``, PEBBLE's disagreement
        (Lee et al., ICML 2021) on candidate actions; high where the labels so far do not
        pin the ranking down."""
        x_a, x_b = self.inputs(obs, np.asarray(act_a)), self.inputs(obs, np.asarray(act_b))
        prob = torch.sigmoid(self.ensemble.predict(x_a) - self.ensemble.predict(x_b))
        return prob.std(0, unbiased=False).float().cpu().numpy()

    # -- fitting ------------------------------------------------------------------------

    def fit_folder(self, folder: str) -> dict[str, Any]:
        """Fit to the labelled pairs of ``folder`` (comma-separated folders: all of them, in
        order, e.g. the rounds of labels collected on each round's selector), the first
        ``max_labels`` of them, with each folder's review-page answers folded in
        (:mod:`rewardlearn.select.review`)."""
        from rewardlearn.select.review import apply_answers, review_db

        pairs = []
        temperatures = []
        for one in [f.strip() for f in str(folder).split(",") if f.strip()]:
            root = pairs_file(one).parent
            temperatures.append(label_temperature(root))
            got, answered = apply_answers(root, load_pairs(one))
            if answered:
                log.info("action_preference: %d label(s) from the review page (%s)", answered,
                         review_db(root))
            pairs += got
        obs, act_a, act_b, labels = label_arrays(pairs)
        if self.cfg.max_labels is not None:
            obs, act_a, act_b, labels = (x[: self.cfg.max_labels]
                                         for x in (obs, act_a, act_b, labels))
        if len(labels) == 0:
            raise ValueError(f"reward.model.labels={folder}: no labelled pairs (every label is "
                             "null); label them first")
        report = self.fit(obs, act_a, act_b, labels, source=str(folder))
        report["label_temperature"] = sorted(set(temperatures))
        return report

    def fit(self, obs: np.ndarray, act_a: np.ndarray, act_b: np.ndarray, labels: np.ndarray,
            source: str | None = None) -> dict[str, Any]:
        """Bradley-Terry fit on ``P`` pairs (``obs`` ``(P, D)``, actions ``(P, A)``, labels in
        {0, 0.5, 1}); returns (and keeps for :meth:`summary`) the fit's figures."""
        cfg = self.cfg
        d_obs = int(np.prod(self.observation_space.shape or (1,)))
        if obs.ndim != 2 or obs.shape[1] != d_obs or len({len(obs), len(act_a), len(act_b),
                                                          len(labels)}) != 1:
            raise ValueError(f"action pairs do not match the env: observations {obs.shape} "
                             f"(env {d_obs}), actions {act_a.shape} / {act_b.shape}, "
                             f"{len(labels)} labels")
        self.support_obs = torch.as_tensor(np.asarray(obs, np.float32)).reshape(len(obs), -1)
        self._support_ref = None
        self.has_support = True
        xa, xb = self.inputs(obs, act_a), self.inputs(obs, act_b)
        y = torch.as_tensor(labels, dtype=torch.float32, device=self.device)
        gen = torch.Generator().manual_seed(cfg.seed)
        order = torch.randperm(len(y), generator=gen).to(self.device)
        n_held = round(cfg.heldout * len(y)) if len(y) >= 20 else 0
        held, train = order[:n_held], order[n_held:]
        ens = self.ensemble
        ens.norm.update(torch.cat([xa[train], xb[train]]))
        opt = torch.optim.Adam(ens.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        losses: list[float] = []
        ens.train()
        for _ in range(cfg.epochs):
            perm = train[torch.randperm(len(train), generator=gen).to(self.device)]
            total = 0.0
            for i in range(0, len(perm), cfg.batch_size):
                idx = perm[i:i + cfg.batch_size]
                logits = ens(xa[idx]) - ens(xb[idx])  # (E, B): r(s, a_A) - r(s, a_B)
                loss = preference_loss(logits, y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            losses.append(total / max(len(perm), 1))
        ens.eval()
        with torch.no_grad():
            def acc(rows: torch.Tensor) -> float | None:
                if len(rows) == 0:
                    return None
                value = preference_accuracy(ens(xa[rows]) - ens(xb[rows]), y[rows])
                return None if np.isnan(value) else round(value, 4)

            self.report = {"labels": len(y), "source": source,
                           "train_pairs": len(train), "heldout_pairs": int(n_held),
                           "loss_first": round(losses[0], 5), "loss_last": round(losses[-1], 5),
                           "train_acc": acc(train), "heldout_acc": acc(held)}
        log.info("action_preference: %d labelled pairs, loss %.4f -> %.4f, train acc %s, "
                 "held-out acc %s", len(y), losses[0], losses[-1], self.report["train_acc"],
                 self.report["heldout_acc"])
        return self.report

    # -- support ------------------------------------------------------------------------

    def _standardised(self, flat: torch.Tensor) -> torch.Tensor:
        """States standardised as the model's input norm standardises them."""
        norm = self.ensemble.norm
        d = flat.shape[1]
        if float(norm.count) == 0.0:
            return flat
        return (flat - norm.mean[:d].cpu()) / torch.sqrt(norm.var[:d].cpu() + norm.eps)

    def _nearest(self, query: torch.Tensor, exclude_self: bool = False) -> torch.Tensor:
        assert self.support_obs is not None
        if self._support_ref is None:  # once per fit or load, not once per decision
            self._support_ref = self._standardised(self.support_obs)
        ref = self._support_ref
        out = []
        for i in range(0, len(query), 2048):
            dist = torch.cdist(query[i:i + 2048], ref)
            if exclude_self:
                rows = torch.arange(i, min(i + 2048, len(query)))
                dist[rows - i, rows] = float("inf")
            out.append(dist.min(1).values)
        return torch.cat(out) if out else torch.zeros(0)

    def support_distance(self, obs: Any) -> np.ndarray:
        """``(N,)`` Euclidean distance, in the model's standardised state features, from each
        state to the nearest labelled pair's state."""
        if self.support_obs is None:
            raise NotImplementedError("this action-preference reward keeps no labelled states "
                                      "(saved before they were kept): refit it from its labels")
        from rewardlearn.rewards.features import flatten_obs

        flat = torch.as_tensor(flatten_obs(self.observation_space, obs), dtype=torch.float32)
        return self._nearest(self._standardised(flat.reshape(len(flat), -1))).numpy()

    def support_radius(self, quantile: float) -> float:
        """The ``quantile`` of the labelled states' distances to their nearest other labelled
        state (leave-one-out)."""
        if not 0.0 < quantile <= 1.0:
            raise ValueError(f"support quantile must be in (0, 1], got {quantile}")
        if self.support_obs is None or len(self.support_obs) < 2:
            raise NotImplementedError("the support needs at least 2 labelled states")
        loo = self._nearest(self._standardised(self.support_obs), exclude_self=True)
        return float(torch.quantile(loo, quantile))

    # -- saving -------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        return {**self.cfg.to_dict(), "labels": None}  # a saved model is not refitted

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "ensemble": {k: v.cpu() for k, v in self.ensemble.state_dict().items()},
            "report": {k: v for k, v in self.report.items() if v is not None}}
        if self.support_obs is not None:
            state["support_obs"] = self.support_obs.cpu()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ensemble.load_state_dict(state["ensemble"])
        self.report = dict(state.get("report", {}))
        support = state.get("support_obs")
        self.support_obs = None if support is None else torch.as_tensor(support)
        self._support_ref = None
        self.has_support = support is not None

    def summary(self) -> dict[str, Any]:
        return dict(self.report)


__all__ = ["ActionPreferenceReward"]
