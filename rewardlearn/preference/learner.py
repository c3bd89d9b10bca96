"""One feedback round: sample candidates, select queries, get labels, train the ensemble.

:class:`PreferenceDataset` keeps every labelled pair (model inputs, label,
round) and is saved with the reward model, so resuming keeps every label.
:class:`PreferenceLearner` runs rounds against a :class:`SegmentBuffer` and a
teacher, and reports the metrics of each round: held-out preference accuracy
(the new labels, scored *before* the ensemble trains on them), training
accuracy, and Pearson/Spearman correlation of learned vs true segment returns.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rewardlearn.preference.augment import (
    bootstrap_indices,
    crop_batch,
    crop_windows,
    pseudo_labels,
)
from rewardlearn.preference.buffer import SegmentBuffer, Segments
from rewardlearn.preference.configuration import PreferenceConfig
from rewardlearn.preference.modeling import (
    RewardEnsemble,
    preference_accuracy,
    preference_loss,
    segment_scores,
)
from rewardlearn.preference.query import select_queries
from rewardlearn.preference.teachers import PreferenceLabels
from rewardlearn.stats import pearson, spearman
from rewardlearn.utils import fast_bf16

log = logging.getLogger("rewardlearn")


@dataclass
class PreferenceDataset:
    """All labelled pairs so far; segments of different rounds may differ in length.

    ``x1``/``x2`` hold the *real* steps of each side; ``pad1``/``pad2`` count the
    absorbing steps after a termination (both sides then have the same total
    length); ``next1``/``next2`` the state after the last real step's action
    (``None``: unknown, labels saved before it was kept).
    """

    x1: list[np.ndarray] = field(default_factory=list)
    x2: list[np.ndarray] = field(default_factory=list)
    term1: list[np.ndarray] = field(default_factory=list)
    term2: list[np.ndarray] = field(default_factory=list)
    labels: list[float] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)
    pad1: list[int] = field(default_factory=list)
    pad2: list[int] = field(default_factory=list)
    next1: list[np.ndarray | None] = field(default_factory=list)
    next2: list[np.ndarray | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def add(self, first: Segments, second: Segments, labels: np.ndarray, round_: int) -> None:
        """Add labelled segment pairs (``labels[k]`` for ``first[k]`` vs ``second[k]``)."""
        n1, n2 = first.real_lengths(), second.real_lengths()
        self.add_pairs(
            [f[:n] for f, n in zip(first.features, n1, strict=True)],
            [f[:n] for f, n in zip(second.features, n2, strict=True)],
            [t[:n] for t, n in zip(first.terminated, n1, strict=True)],
            [t[:n] for t, n in zip(second.terminated, n2, strict=True)],
            list(labels), round_,
            pad1=[first.length - int(n) for n in n1], pad2=[second.length - int(n) for n in n2],
            next1=None if first.next_state is None else list(first.next_state),
            next2=None if second.next_state is None else list(second.next_state))

    def add_pairs(self, x1: list[np.ndarray], x2: list[np.ndarray], term1: list[np.ndarray],
                  term2: list[np.ndarray], labels: list[float], round_: int,
                  pad1: list[int] | None = None, pad2: list[int] | None = None,
                  next1: list[np.ndarray | None] | None = None,
                  next2: list[np.ndarray | None] | None = None) -> None:
        """Add pairs given as per-pair arrays (segments may differ in length between pairs)."""
        k = len(labels)
        self.x1 += [np.asarray(x, np.float32) for x in x1]
        self.x2 += [np.asarray(x, np.float32) for x in x2]
        self.term1 += [np.asarray(t, bool) for t in term1]
        self.term2 += [np.asarray(t, bool) for t in term2]
        self.labels += [float(v) for v in labels]
        self.rounds += [round_] * k
        self.pad1 += [int(v) for v in pad1] if pad1 is not None else [0] * k
        self.pad2 += [int(v) for v in pad2] if pad2 is not None else [0] * k
        self.next1 += [None if v is None else np.asarray(v, np.float32) for v in next1] \
            if next1 is not None else [None] * k
        self.next2 += [None if v is None else np.asarray(v, np.float32) for v in next2] \
            if next2 is not None else [None] * k

    def total_length(self, i: int) -> int:
        """Steps of pair ``i`` per side, absorbing steps included."""
        return len(self.x1[i]) + self.pad1[i]

    def tensors(self, idx: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
        """Padded batch of pairs ``idx``.

        Keys: ``x1``, ``x2`` ``(B, L, D)`` (absorbing and padding rows are zero);
        ``real1``/``real2`` and ``abs1``/``abs2`` ``(B, L)`` 0/1 masks of real and
        absorbing steps; ``term1``/``term2``; ``next1``/``next2`` ``(B, D)`` feature rows
        whose state columns hold ``s_L`` (the last observed row when unknown);
        ``last1``/``last2`` index of the last real step; ``length`` ``(B,)`` total steps;
        ``labels``.
        """
        idx = np.asarray(idx, dtype=np.int64)
        lengths = [self.total_length(int(i)) for i in idx]
        L, D = max(lengths), self.x1[int(idx[0])].shape[1]
        out: dict[str, np.ndarray] = {"length": np.asarray(lengths, np.int64),
                                      "labels": np.asarray([self.labels[i] for i in idx],
                                                           np.float32)}
        for side, xs, ts, pads, nxts in ((1, self.x1, self.term1, self.pad1, self.next1),
                                         (2, self.x2, self.term2, self.pad2, self.next2)):
            x = np.zeros((len(idx), L, D), np.float32)
            real = np.zeros((len(idx), L), np.float32)
            absorb = np.zeros((len(idx), L), np.float32)
            term = np.zeros((len(idx), L), bool)
            nxt = np.zeros((len(idx), D), np.float32)
            for b, i in enumerate(idx):
                n = len(xs[i])
                x[b, :n], real[b, :n], term[b, :n] = xs[i], 1.0, ts[i]
                absorb[b, n:n + pads[i]] = 1.0
                s_next = nxts[i]
                if s_next is None:
                    nxt[b] = xs[i][n - 1]
                else:
                    nxt[b, : len(s_next)] = s_next
            out.update({f"x{side}": x, f"real{side}": real, f"abs{side}": absorb,
                        f"term{side}": term, f"next{side}": nxt})
        return {k: torch.as_tensor(v, device=device) for k, v in out.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"x1": self.x1, "x2": self.x2, "term1": self.term1, "term2": self.term2,
                "labels": self.labels, "rounds": self.rounds, "pad1": self.pad1,
                "pad2": self.pad2, "next1": self.next1, "next2": self.next2}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PreferenceDataset:
        """Rebuild from :meth:`state_dict`; older states lack pads and next states."""
        n = len(state["labels"])
        return cls(list(state["x1"]), list(state["x2"]), list(state["term1"]),
                   list(state["term2"]), list(state["labels"]), list(state["rounds"]),
                   list(state.get("pad1", [0] * n)), list(state.get("pad2", [0] * n)),
                   list(state.get("next1", [None] * n)), list(state.get("next2", [None] * n)))


class PreferenceLearner:
    """Runs feedback rounds and trains a :class:`RewardEnsemble` on all labels so far.

    The ensemble is warm-started: each round continues from the previous
    round's weights (and Adam state) on the grown label set.
    """

    def __init__(self, cfg: PreferenceConfig, ensemble: RewardEnsemble, teacher: Any,
                 device: torch.device) -> None:
        self.cfg = cfg
        self.ensemble = ensemble
        self.teacher = teacher
        self.device = device
        self.dataset = PreferenceDataset()
        self.rounds_done = 0
        self.queries_asked = 0
        self.absorbing_active = cfg.absorbing == "on"
        self.rng = np.random.default_rng(cfg.seed)
        self.optimizer = torch.optim.Adam(ensemble.parameters(), lr=cfg.lr,
                                          weight_decay=cfg.weight_decay)
        self.unlabelled: PreferenceDataset | None = None
        self.last_member_indices: list[np.ndarray] = []
        self.train_dtype = train_dtype(cfg.train_precision, device)
        self._background: _BackgroundFit | None = None
        self.demo_buffer: SegmentBuffer | None = None
        """Demo segments (``cfg.demos``) mixed into both sides of the candidate pairs."""

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bf16 autocast for the ensemble's training and query passes (``train_precision``)."""
        if self.train_dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.train_dtype)

    @property
    def labels_used(self) -> int:
        return len(self.dataset)

    @property
    def budget_left(self) -> int:
        return max(0, self.cfg.budget - self.queries_asked)

    @property
    def _use_next(self) -> bool:
        return self.cfg.regret_end_state == "next_obs"

    def update_absorbing(self, buffer: SegmentBuffer) -> bool:
        """Turn absorbing padding on once a termination is seen (``absorbing=auto``), in the
        agent's steps or in the demos (the same env)."""
        seen = buffer.seen_termination or (self.demo_buffer is not None
                                           and self.demo_buffer.seen_termination)
        if self.cfg.absorbing == "auto" and seen and not self.absorbing_active:
            self.absorbing_active = True
            log.info("preference: the env terminates; segments that run into a termination "
                     "are padded with absorbing steps (reward.model.absorbing=off disables)")
        return self.absorbing_active

    def _segments_batch(self, segs: Segments, sl: slice) -> dict[str, torch.Tensor]:
        """A :meth:`PreferenceDataset.tensors`-style side of ``segs[sl]`` (keys without side)."""
        x = segs.features[sl]
        n = len(x)
        absorb = np.zeros(x.shape[:2], np.float32) if segs.absorbing is None \
            else segs.absorbing[sl].astype(np.float32)
        real = 1.0 - absorb
        last = np.maximum(real.sum(1).astype(np.int64) - 1, 0)
        nxt = x[np.arange(n), last].copy()
        if segs.next_state is not None:
            nxt[:] = 0.0
            nxt[:, : segs.next_state.shape[1]] = segs.next_state[sl]
        arrays = {"x": x, "real": real, "abs": absorb, "term": segs.terminated[sl], "next": nxt}
        return {k: torch.as_tensor(v, device=self.device) for k, v in arrays.items()}

    def _side_scores(self, e: int, side: dict[str, torch.Tensor], model: str) -> torch.Tensor:
        return segment_scores(self.ensemble, e, side["x"], side["real"], side["term"], model,
                              side["abs"], side["next"] if self._use_next else None)

    @torch.no_grad()
    def member_probs(self, first: Segments, second: Segments) -> np.ndarray:
        """``(E, N)`` each member's ``P(first preferred)``."""
        out = []
        model = self.cfg.preference_model
        for s in range(0, len(first), 512):
            sl = slice(s, s + 512)
            b1, b2 = self._segments_batch(first, sl), self._segments_batch(second, sl)
            with self._autocast():
                logits = torch.stack([self._side_scores(e, b1, model)
                                      - self._side_scores(e, b2, model)
                                      for e in range(self.ensemble.n_members)])
            out.append(torch.sigmoid(logits).cpu().numpy())
        return np.concatenate(out, axis=1)

    @torch.no_grad()
    def segment_returns(self, segs: Segments) -> np.ndarray:
        """Ensemble-mean learned return of each segment (absorbing steps included)."""
        out = []
        for s in range(0, len(segs), 512):
            side = self._segments_batch(segs, slice(s, s + 512))
            out.append(torch.stack([self._side_scores(e, side, "bradley_terry")
                                    for e in range(self.ensemble.n_members)]).mean(0))
        return torch.cat(out).cpu().numpy()

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
        if hasattr(self.teacher, "label_segments"):  # teachers that look at the segments
            seg_labels: PreferenceLabels = self.teacher.label_segments(first, second)
            return seg_labels
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
                                   [p.label for p in pairs], self.rounds_done,
                                   pad1=[p.pad1 for p in pairs], pad2=[p.pad2 for p in pairs],
                                   next1=[p.next1 for p in pairs], next2=[p.next2 for p in pairs])
            metrics["heldout_acc"] = self.accuracy_on(np.arange(start, len(self.dataset)))

    @torch.no_grad()
    def accuracy_on(self, idx: np.ndarray) -> float:
        """Ensemble-mean accuracy on the dataset pairs ``idx`` (non-equal labels)."""
        batch = self.dataset.tensors(idx, self.device)
        logits = self._logits(batch)
        return preference_accuracy(logits, batch["labels"])

    def _logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack([_member_logits(self.ensemble, e, batch, self.cfg.preference_model,
                                           self._use_next)
                            for e in range(self.ensemble.n_members)])

    def _sample(self, buffer: SegmentBuffer, n: int, length: int) -> Segments:
        return buffer.sample(n, length, self.rng, absorbing=self.absorbing_active,
                             recent=self._pool)

    def run_round(self, buffer: SegmentBuffer, n_queries: int,
                  background: bool = False) -> dict[str, float]:
        """One round of at most ``n_queries`` queries; returns its metrics (``{}``: no round).

        ``background``: the queries and labels are taken here, the ensemble trains on a
        worker thread (metrics ``background=1``); :meth:`finish_background` waits for it
        and returns the training metrics. Until then the ensemble, the labels and
        :attr:`rng` belong to that thread: the agent's reward must come from a copy.
        """
        if self._background is not None:
            raise RuntimeError("a feedback round is still training; call finish_background()")
        t0 = time.perf_counter()
        n_queries = min(n_queries, self.budget_left)
        first_round = self.rounds_done == 0
        method = "uniform" if first_round else self.cfg.query_selection
        n_cand = n_queries if method == "uniform" else n_queries * self.cfg.candidates_factor
        absorbing = self.update_absorbing(buffer)
        needed = max(2 * n_cand, 2)
        self._pool = self.cfg.query_pool_episodes
        length = buffer.longest_feasible(self.cfg.segment_length, needed=needed,
                                         absorbing=absorbing, recent=self._pool)
        if self._pool is not None and length < self.cfg.segment_length:
            # too few steps in the recent episodes for full segments: the whole buffer
            full = buffer.longest_feasible(self.cfg.segment_length, needed, absorbing=absorbing)
            if full > length:
                self._pool, length = None, full
        if n_queries <= 0 or length == 0:
            return {}
        if first_round or len(self.dataset) == 0:
            self.fit_normalizer(buffer)
        a = self._with_demos(self._sample(buffer, n_cand, length), length)
        b = self._with_demos(self._sample(buffer, n_cand, length), length)
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
        if self.demo_buffer is not None:  # of the queried segments, both sides
            metrics["demo_share"] = float(np.mean(np.r_[a.episode, b.episode] < 0))
        if a.absorbing is not None and b.absorbing is not None:
            metrics["padded_share"] = float(np.mean(np.r_[a.absorbing.any(1),
                                                          b.absorbing.any(1)]))
        self._draw_unlabelled(buffer, length)
        if hasattr(self.teacher, "ask"):
            self._run_async_round(a, b, metrics)
            return self._finish_round(buffer, length, metrics, t0, background)
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
        return self._finish_round(buffer, length, metrics, t0, background)

    _pool: int | None = None

    def _with_demos(self, segs: Segments, length: int) -> Segments:
        """``segs`` with a ``demo_fraction`` share of its rows replaced by demo segments of
        the same length (episode numbers ``-1 - k``), when the demos have such windows.
        Applied to both sides of the candidate pairs: demo-vs-agent pairs teach that the
        demos' states are better, demo-vs-demo pairs (``demo_fraction**2`` of them) order
        the demos' own stages, the end of the episode at success included."""
        demos = self.demo_buffer
        if demos is None or demos.num_windows(length, self.absorbing_active) == 0:
            return segs
        k = round(self.cfg.demo_fraction * len(segs))
        if k == 0:
            return segs
        rows = self.rng.choice(len(segs), size=k, replace=False)
        d = demos.sample(k, length, self.rng, absorbing=self.absorbing_active)
        out = segs.take(np.arange(len(segs)))  # a copy
        out.features[rows], out.true_rewards[rows] = d.features, d.true_rewards
        out.terminated[rows], out.start[rows] = d.terminated, d.start
        out.episode[rows] = -1 - d.episode
        if out.absorbing is not None and d.absorbing is not None:
            out.absorbing[rows] = d.absorbing
        if out.next_state is not None and d.next_state is not None:
            out.next_state[rows] = d.next_state
        return out

    def _draw_unlabelled(self, buffer: SegmentBuffer, length: int) -> None:
        """SURF: a fresh pool of unlabelled pairs for this round's pseudo-labels."""
        surf = self.cfg.surf
        if not surf.enabled or surf.unlabelled_ratio <= 0:
            self.unlabelled = None
            return
        n = max(1, int(surf.unlabelled_ratio * (len(self.dataset) + self.cfg.queries_per_round)))
        n = min(n, surf.max_unlabelled)
        pool = PreferenceDataset()
        a, b = self._sample(buffer, n, length), self._sample(buffer, n, length)
        pool.add(a, b, np.full(n, 0.5), self.rounds_done)
        self.unlabelled = pool

    def _finish_round(self, buffer: SegmentBuffer, length: int, metrics: dict[str, float],
                      t0: float, background: bool = False) -> dict[str, float]:
        self.rounds_done += 1
        metrics["labels_used"] = float(len(self.dataset))
        if background and len(self.dataset):
            metrics["background"] = 1.0
            metrics["round_s"] = time.perf_counter() - t0  # the foreground part
            self._background = _BackgroundFit(self.train, buffer, length)
            return metrics
        if len(self.dataset):
            metrics.update(self.train())
        metrics.update(self.correlation(buffer, length))
        metrics["round_s"] = time.perf_counter() - t0
        return metrics

    @property
    def training_in_background(self) -> bool:
        """Whether a round's ensemble training is running (or finished, not yet collected)."""
        return self._background is not None

    def finish_background(self) -> dict[str, float]:
        """Wait for the background round, then its training metrics, correlations and
        ``background_s`` (the training's own time) and ``wait_s`` (how long this waited)."""
        bg, self._background = self._background, None
        if bg is None:
            return {}
        t0 = time.perf_counter()
        out = bg.result()
        out["wait_s"] = time.perf_counter() - t0
        out.update(self.correlation(bg.buffer, bg.length))
        return out

    def _labelled_pair_features(self, length: int) -> np.ndarray | None:
        rows = [np.concatenate([x1.reshape(-1), x2.reshape(-1)])
                for x1, x2, p1, p2 in zip(self.dataset.x1, self.dataset.x2, self.dataset.pad1,
                                          self.dataset.pad2, strict=True)
                if len(x1) == length and p1 == 0 and p2 == 0]
        return np.stack(rows) if rows else None

    def _split_holdout(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Training and held-out label indices (``early_stop=heldout``; else no held-out).

        ``round(holdout_frac * n)`` labels are held out once that is at least
        ``holdout_min`` (from about 50 labels with the defaults); below, none: a few dozen
        labels are too precious to set aside (holding out 5 of 10 halved the training set),
        and those rounds are short under the train-accuracy rule anyway.
        """
        cfg = self.cfg
        k = round(cfg.holdout_frac * n)
        if cfg.early_stop != "heldout" or k < cfg.holdout_min:
            return np.arange(n), np.empty(0, np.int64)
        perm = self.rng.permutation(n)
        return np.sort(perm[k:]), np.sort(perm[:k])

    def train(self) -> dict[str, float]:
        """Train every member on its own shuffle (or bootstrap resample) of the labels.

        Stops at ``early_stop_acc`` train accuracy (PEBBLE); with ``early_stop=heldout``
        also when the held-out labels' loss has not improved for ``patience`` epochs
        (the best epoch's weights are kept), which bounds the rounds whose labels
        never reach ``early_stop_acc`` (near ties, noisy teachers) and used to run
        all ``max_epochs``.
        """
        cfg = self.cfg
        n = len(self.dataset)
        train_idx, held = self._split_holdout(n)
        full = self.dataset.tensors(np.arange(n), self.device)
        n_members = self.ensemble.n_members
        if cfg.bagging:
            self.last_member_indices = bootstrap_indices(train_idx, n_members, self.rng)
        else:
            self.last_member_indices = [train_idx] * n_members
        m = len(train_idx)
        bs = min(cfg.batch_size, m)
        acc, loss_v, epochs = 0.0, float("nan"), 0
        best_loss, best_state, stale = math.inf, None, 0
        pseudo_n = 0.0
        self.ensemble.train()
        for epochs in range(1, cfg.max_epochs + 1):  # noqa: B007  (the count is reported)
            perms = [idx[self.rng.permutation(m)] for idx in self.last_member_indices]
            pseudo = self._pseudo_batches(-(-m // bs))
            pseudo_n += sum(len(p[0]) for p in pseudo)
            correct = decided = 0.0
            losses = []
            for k, s in enumerate(range(0, m, bs)):
                self.optimizer.zero_grad()
                total = torch.zeros((), device=self.device)
                for e, perm in enumerate(perms):
                    batch = self._take(full, perm[s : s + bs])
                    with self._autocast():
                        logit = _member_logits(self.ensemble, e, batch, cfg.preference_model,
                                               self._use_next)
                    total = total + preference_loss(logit, batch["labels"])
                    dec = batch["labels"] != 0.5
                    correct += float(((logit > 0).float() == batch["labels"])[dec].sum())
                    decided += float(dec.sum())
                    if pseudo and len(pseudo[k][0]):
                        ub = pseudo[k][1]
                        with self._autocast():
                            ul = _member_logits(self.ensemble, e, ub, cfg.preference_model,
                                                self._use_next)
                        total = total + cfg.surf.weight * preference_loss(ul, ub["labels"])
                total.backward()
                self.optimizer.step()
                losses.append(float(total.detach()) / n_members)
            acc = correct / decided if decided else 1.0
            loss_v = float(np.mean(losses))
            if len(held):
                with torch.no_grad():  # float32, as every reported metric
                    hb = _select(full, torch.as_tensor(held, device=self.device))
                    h_loss = float(preference_loss(self._logits(hb), hb["labels"]))
                if h_loss < best_loss - 1e-4:
                    best_loss, stale = h_loss, 0
                    best_state = copy.deepcopy(self.ensemble.state_dict())
                else:
                    stale += 1
                    if stale >= cfg.patience:
                        break
            if acc >= cfg.early_stop_acc:
                break
        if best_state is not None:
            self.ensemble.load_state_dict(best_state)
        self.ensemble.eval()
        out = {"train_acc": acc, "train_loss": loss_v, "epochs": float(epochs)}
        if len(held):
            out["holdout_loss"] = best_loss
            out["holdout_acc"] = self.accuracy_on(held)
        if self.unlabelled is not None:
            out["pseudo_labels"] = pseudo_n / max(epochs, 1)
        return out

    def _take(self, full: dict[str, torch.Tensor], idx: np.ndarray) -> dict[str, torch.Tensor]:
        """Rows ``idx`` of the padded label tensors, SURF-cropped when cropping is on."""
        batch = _select(full, torch.as_tensor(idx, device=self.device))
        surf = self.cfg.surf
        if surf.enabled and surf.crop:
            c, s1, s2 = crop_windows(batch["length"].cpu().numpy(), surf.crop_min, self.rng)
            batch = crop_batch(batch, c, s1, s2)
        return batch

    @torch.no_grad()
    def _pseudo_batches(self, n_batches: int) -> list[tuple[np.ndarray, dict[str, torch.Tensor]]]:
        """SURF: this epoch's confident unlabelled pairs, pseudo-labelled, split per minibatch."""
        pool = self.unlabelled
        if pool is None or len(pool) == 0 or not self.cfg.surf.enabled:
            return []
        full = pool.tensors(np.arange(len(pool)), self.device)
        with self._autocast():
            probs = torch.sigmoid(self._logits(full).float()).mean(0).cpu().numpy()
        idx, labels = pseudo_labels(probs, self.cfg.surf.tau)
        target = np.full(len(pool), 0.5, np.float32)  # unused: only confident pairs are taken
        target[idx] = labels
        full["labels"] = torch.as_tensor(target, device=self.device)
        chunks = np.array_split(self.rng.permutation(idx), max(1, n_batches))
        return [(c, _select(full, torch.as_tensor(c, dtype=torch.long, device=self.device)))
                for c in chunks]

    def correlation(self, buffer: SegmentBuffer, length: int, n: int = 256) -> dict[str, float]:
        """Pearson/Spearman of learned vs true returns on fresh segments."""
        segs = buffer.sample(n, length, self.rng, absorbing=self.absorbing_active)
        learned = self.segment_returns(segs)
        true = segs.true_rewards.sum(-1)
        return {"pearson": pearson(learned, true), "spearman": spearman(learned, true)}


class _BackgroundFit:
    """One round's ensemble training on a worker thread (``background_lag``).

    Torch releases the GIL inside its kernels, so the training overlaps with the
    agent's env steps on a second core (Hopper, 1000 labels: 25 s of training, the agent
    waited 0 s for it; ``bench/results/preference_wall_hopper.md``).
    """

    def __init__(self, fit: Callable[[], dict[str, float]], buffer: SegmentBuffer,
                 length: int) -> None:
        self.buffer, self.length = buffer, length
        self._out: dict[str, float] = {}
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fit,), daemon=True,
                                        name="rewardlearn-preference-fit")
        self._thread.start()

    def _run(self, fit: Callable[[], dict[str, float]]) -> None:
        t0 = time.perf_counter()
        try:
            self._out = fit()
        except BaseException as err:  # re-raised in the caller's thread by result()
            self._error = err
        self._out["background_s"] = time.perf_counter() - t0

    def result(self) -> dict[str, float]:
        self._thread.join()
        if self._error is not None:
            raise RuntimeError("preference ensemble training failed on its background "
                               "thread") from self._error
        return dict(self._out)


def train_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The autocast dtype of ``train_precision`` on ``device`` (float32: no autocast)."""
    if precision == "bf16" or (precision == "auto" and fast_bf16(device)):
        return torch.bfloat16
    return torch.float32


def _select(full: dict[str, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: v[idx] for k, v in full.items()}


def _member_logits(ens: RewardEnsemble, e: int, batch: dict[str, torch.Tensor],
                   model: str, use_next: bool = True) -> torch.Tensor:
    s1 = segment_scores(ens, e, batch["x1"], batch["real1"], batch["term1"], model,
                        batch["abs1"], batch["next1"] if use_next else None)
    s2 = segment_scores(ens, e, batch["x2"], batch["real2"], batch["term2"], model,
                        batch["abs2"], batch["next2"] if use_next else None)
    return s1 - s2
