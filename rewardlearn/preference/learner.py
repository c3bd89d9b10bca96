"""One feedback round: sample candidates, select queries, get labels, train the ensemble.

:class:`PreferenceDataset` keeps every labelled pair (model inputs, label,
round) and is saved with the reward model, so resuming keeps every label.
:class:`PreferenceLearner` runs rounds against a :class:`SegmentBuffer` and a
teacher, and reports the metrics of each round: held-out preference accuracy
(the new labels, scored *before* the ensemble trains on them), training
accuracy, and Pearson/Spearman correlation of learned vs true segment returns.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rewardlearn.preference.buffer import SegmentBuffer, Segments
from rewardlearn.preference.configuration import PreferenceConfig
from rewardlearn.preference.modeling import (
    RewardEnsemble,
    preference_accuracy,
    preference_logits,
    preference_loss,
    segment_scores,
)
from rewardlearn.preference.query import select_queries
from rewardlearn.preference.teachers import PreferenceLabels
from rewardlearn.stats import pearson, spearman


@dataclass
class PreferenceDataset:
    """All labelled pairs so far; segments of different rounds may differ in length."""

    x1: list[np.ndarray] = field(default_factory=list)
    x2: list[np.ndarray] = field(default_factory=list)
    term1: list[np.ndarray] = field(default_factory=list)
    term2: list[np.ndarray] = field(default_factory=list)
    labels: list[float] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def add(self, first: Segments, second: Segments, labels: np.ndarray, round_: int) -> None:
        """Add labelled segment pairs (``labels[k]`` for ``first[k]`` vs ``second[k]``)."""
        self.add_pairs(list(first.features), list(second.features), list(first.terminated),
                       list(second.terminated), list(labels), round_)

    def add_pairs(self, x1: list[np.ndarray], x2: list[np.ndarray], term1: list[np.ndarray],
                  term2: list[np.ndarray], labels: list[float], round_: int) -> None:
        """Add pairs given as per-pair arrays (segments may differ in length between pairs)."""
        self.x1 += [np.asarray(x, np.float32) for x in x1]
        self.x2 += [np.asarray(x, np.float32) for x in x2]
        self.term1 += [np.asarray(t, bool) for t in term1]
        self.term2 += [np.asarray(t, bool) for t in term2]
        self.labels += [float(v) for v in labels]
        self.rounds += [round_] * len(labels)

    def tensors(self, idx: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
        """Padded batch of pairs ``idx``: x1, x2 ``(B, L, D)``, mask ``(B, L)``, terms, labels."""
        lengths = [len(self.x1[i]) for i in idx]
        L, D = max(lengths), self.x1[idx[0]].shape[1]
        x1 = np.zeros((len(idx), L, D), np.float32)
        x2 = np.zeros_like(x1)
        mask = np.zeros((len(idx), L), np.float32)
        t1 = np.zeros((len(idx), L), bool)
        t2 = np.zeros_like(t1)
        for b, i in enumerate(idx):
            n = lengths[b]
            x1[b, :n], x2[b, :n], mask[b, :n] = self.x1[i], self.x2[i], 1.0
            t1[b, :n], t2[b, :n] = self.term1[i], self.term2[i]
        out = {"x1": x1, "x2": x2, "mask": mask, "term1": t1, "term2": t2,
               "labels": np.asarray([self.labels[i] for i in idx], np.float32)}
        return {k: torch.as_tensor(v, device=device) for k, v in out.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"x1": self.x1, "x2": self.x2, "term1": self.term1, "term2": self.term2,
                "labels": self.labels, "rounds": self.rounds}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PreferenceDataset:
        return cls(list(state["x1"]), list(state["x2"]), list(state["term1"]),
                   list(state["term2"]), list(state["labels"]), list(state["rounds"]))


class PreferenceLearner:
    """Runs feedback rounds and trains a :class:`RewardEnsemble` on all labels so far."""

    def __init__(self, cfg: PreferenceConfig, ensemble: RewardEnsemble, teacher: Any,
                 device: torch.device) -> None:
        self.cfg = cfg
        self.ensemble = ensemble
        self.teacher = teacher
        self.device = device
        self.dataset = PreferenceDataset()
        self.rounds_done = 0
        self.queries_asked = 0
        self.rng = np.random.default_rng(cfg.seed)
        self.optimizer = torch.optim.Adam(ensemble.parameters(), lr=cfg.lr,
                                          weight_decay=cfg.weight_decay)

    @property
    def labels_used(self) -> int:
        return len(self.dataset)

    @property
    def budget_left(self) -> int:
        return max(0, self.cfg.budget - self.queries_asked)

    @torch.no_grad()
    def member_probs(self, first: Segments, second: Segments) -> np.ndarray:
        """``(E, N)`` each member's ``P(first preferred)``."""
        out = []
        for s in range(0, len(first), 512):
            x1 = torch.as_tensor(first.features[s : s + 512], device=self.device)
            x2 = torch.as_tensor(second.features[s : s + 512], device=self.device)
            t1 = torch.as_tensor(first.terminated[s : s + 512], device=self.device)
            t2 = torch.as_tensor(second.terminated[s : s + 512], device=self.device)
            logits = preference_logits(self.ensemble, x1, x2, self.cfg.preference_model,
                                       term1=t1, term2=t2)
            out.append(torch.sigmoid(logits).cpu().numpy())
        return np.concatenate(out, axis=1)

    @torch.no_grad()
    def segment_returns(self, segs: Segments) -> np.ndarray:
        """Ensemble-mean learned return of each segment."""
        x = torch.as_tensor(segs.features, device=self.device)
        return self.ensemble(x).mean(0).sum(-1).cpu().numpy()

    def fit_normalizer(self, buffer: SegmentBuffer, n: int = 20_000) -> None:
        """Re-estimate input statistics from recent experience."""
        feats = buffer.features_sample(n, self.rng)
        if len(feats) < 2:
            return
        norm = self.ensemble.norm
        norm.count.zero_()
        norm.mean.zero_()
        norm.var.fill_(1.0)
        norm.update(torch.as_tensor(feats, device=self.device))

    def _label(self, first: Segments, second: Segments) -> PreferenceLabels:
        labels: PreferenceLabels = self.teacher.label(first.true_rewards, second.true_rewards)
        return labels

    def _run_async_round(self, a: Segments, b: Segments, metrics: dict[str, float]) -> None:
        """Teachers that answer later (people): ask, then fold in whatever answers arrived."""
        self.queries_asked += self.teacher.ask(a, b, self.rounds_done)
        pairs = self.teacher.collect(expected=len(a))
        metrics["kept"] = float(len(pairs))
        if pairs:
            start = len(self.dataset)
            self.dataset.add_pairs([p.x1 for p in pairs], [p.x2 for p in pairs],
                                   [p.term1 for p in pairs], [p.term2 for p in pairs],
                                   [p.label for p in pairs], self.rounds_done)
            metrics["heldout_acc"] = self.accuracy_on(np.arange(start, len(self.dataset)))

    @torch.no_grad()
    def accuracy_on(self, idx: np.ndarray) -> float:
        """Ensemble-mean accuracy on the dataset pairs ``idx`` (non-equal labels)."""
        batch = self.dataset.tensors(idx, self.device)
        logits = torch.stack([_member_logits(self.ensemble, e, batch, self.cfg.preference_model)
                              for e in range(self.ensemble.n_members)])
        return preference_accuracy(logits, batch["labels"])

    def run_round(self, buffer: SegmentBuffer, n_queries: int) -> dict[str, float]:
        """One round of at most ``n_queries`` queries; returns its metrics."""
        t0 = time.perf_counter()
        n_queries = min(n_queries, self.budget_left)
        first_round = self.rounds_done == 0
        method = "uniform" if first_round else self.cfg.query_selection
        n_cand = n_queries if method == "uniform" else n_queries * self.cfg.candidates_factor
        length = buffer.longest_feasible(self.cfg.segment_length, needed=max(2 * n_cand, 2))
        if n_queries <= 0 or length == 0:
            return {}
        if first_round or len(self.dataset) == 0:
            self.fit_normalizer(buffer)
        a = buffer.sample(n_cand, length, self.rng)
        b = buffer.sample(n_cand, length, self.rng)
        probs = self.member_probs(a, b) if method != "uniform" else None
        feats = None
        if method.startswith("kcenter"):
            feats = np.concatenate([a.features.reshape(n_cand, -1),
                                    b.features.reshape(n_cand, -1)], axis=1)
        labelled = self._labelled_pair_features(length) if feats is not None else None
        idx = select_queries(method, n_queries, n_cand, probs=probs, pair_features=feats,
                             labelled_features=labelled, hybrid_factor=self.cfg.hybrid_factor)
        a, b = a.take(idx), b.take(idx)
        metrics: dict[str, float] = {"queries": float(len(idx)), "segment_length": float(length)}
        if hasattr(self.teacher, "ask"):
            self._run_async_round(a, b, metrics)
            return self._finish_round(buffer, length, metrics, t0)
        if hasattr(self.teacher, "update_thresholds") and getattr(
                self.teacher, "needs_thresholds", False):
            self.teacher.update_thresholds(buffer.recent_true_reward_mean(), length)
        answer = self._label(a, b)
        self.queries_asked += len(idx)
        keep = answer.kept_indices
        new_labels = answer.labels[keep]
        metrics["kept"] = float(len(keep))
        if len(keep):
            start = len(self.dataset)
            self.dataset.add(a.take(keep), b.take(keep), new_labels, self.rounds_done)
            metrics["heldout_acc"] = self.accuracy_on(np.arange(start, len(self.dataset)))
        return self._finish_round(buffer, length, metrics, t0)

    def _finish_round(self, buffer: SegmentBuffer, length: int, metrics: dict[str, float],
                      t0: float) -> dict[str, float]:
        self.rounds_done += 1
        if len(self.dataset):
            metrics.update(self.train())
        metrics.update(self.correlation(buffer, length))
        metrics["labels_used"] = float(len(self.dataset))
        metrics["round_s"] = time.perf_counter() - t0
        return metrics

    def _labelled_pair_features(self, length: int) -> np.ndarray | None:
        rows = [np.concatenate([x1.reshape(-1), x2.reshape(-1)])
                for x1, x2 in zip(self.dataset.x1, self.dataset.x2, strict=True)
                if len(x1) == length]
        return np.stack(rows) if rows else None

    def train(self) -> dict[str, float]:
        """Train every member on its own shuffle of all labels; stop at ``early_stop_acc``."""
        cfg = self.cfg
        n = len(self.dataset)
        bs = min(cfg.batch_size, n)
        acc, loss_v, epochs = 0.0, float("nan"), 0
        self.ensemble.train()
        for epochs in range(1, cfg.max_epochs + 1):  # noqa: B007  (the count is reported)
            perms = [self.rng.permutation(n) for _ in range(self.ensemble.n_members)]
            correct = decided = 0.0
            losses = []
            for s in range(0, n, bs):
                self.optimizer.zero_grad()
                total = torch.zeros((), device=self.device)
                for e, perm in enumerate(perms):
                    batch = self.dataset.tensors(perm[s : s + bs], self.device)
                    logit = _member_logits(self.ensemble, e, batch, cfg.preference_model)
                    total = total + preference_loss(logit, batch["labels"])
                    dec = batch["labels"] != 0.5
                    correct += float(((logit > 0).float() == batch["labels"])[dec].sum())
                    decided += float(dec.sum())
                total.backward()
                self.optimizer.step()
                losses.append(float(total.detach()) / self.ensemble.n_members)
            acc = correct / decided if decided else 1.0
            loss_v = float(np.mean(losses))
            if acc >= cfg.early_stop_acc:
                break
        self.ensemble.eval()
        return {"train_acc": acc, "train_loss": loss_v, "epochs": float(epochs)}

    def correlation(self, buffer: SegmentBuffer, length: int, n: int = 256) -> dict[str, float]:
        """Pearson/Spearman of learned vs true returns on fresh segments."""
        segs = buffer.sample(n, length, self.rng)
        learned = self.segment_returns(segs)
        true = segs.true_rewards.sum(-1)
        return {"pearson": pearson(learned, true), "spearman": spearman(learned, true)}

    def queries_for_round(self, progress: float) -> int:
        """Queries this round under the schedule (``progress`` in [0, 1] of training)."""
        q = self.cfg.queries_per_round
        if self.cfg.schedule == "linear_decay":
            q = max(1, math.ceil(q * (1.0 - min(max(progress, 0.0), 1.0))))
        return min(q, self.budget_left)


def _member_logits(ens: RewardEnsemble, e: int, batch: dict[str, torch.Tensor],
                   model: str) -> torch.Tensor:
    s1 = segment_scores(ens, e, batch["x1"], batch["mask"], batch["term1"], model)
    s2 = segment_scores(ens, e, batch["x2"], batch["mask"], batch["term2"], model)
    return s1 - s2
