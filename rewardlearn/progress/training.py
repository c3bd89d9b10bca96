"""Train and evaluate a stage-aware progress model on annotated demos.

Example:
    >>> import gymnasium as gym, numpy as np
    >>> from rewardlearn.demos import Episode
    >>> from rewardlearn.progress import ProgressConfig, train_progress_model
    >>> rng = np.random.default_rng(0)
    >>> def demo(i):   # a 1-D state moving 0 -> 1 (success at the end); stage 1 from halfway
    ...     x = np.linspace(0, 1, 21)[:, None] + rng.normal(0, 0.01, (21, 1))
    ...     stages = (np.arange(21) >= 10).astype(int)
    ...     done = np.arange(20) == 19
    ...     return Episode(x.astype(np.float32), np.zeros((20, 1)), np.zeros(20), done,
    ...                    np.zeros(20, bool), stages, ("a", "b"), id=i)
    >>> space = gym.spaces.Box(-2, 2, (1,))
    >>> model, report = train_progress_model([demo(i) for i in range(6)], space, space,
    ...                                      ProgressConfig(epochs=150, window=1, heldout=0.34))
    >>> report["heldout"]["voc"] > 0.9
    True
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch.nn import functional as F

from rewardlearn.demos import Episode
from rewardlearn.progress.configuration import ProgressConfig
from rewardlearn.progress.encoders import build_encoder
from rewardlearn.progress.labels import (
    failure_aware_labels,
    frame_stage_labels,
    frame_windows,
    progress_labels,
    rewind_windows,
    spans_from_stages,
    stage_priors,
    validate_spans,
)
from rewardlearn.progress.modeling import ProgressModel, StageProgressNet
from rewardlearn.rewards.features import flat_dim
from rewardlearn.stats import order_correlation

log = logging.getLogger("rewardlearn")


@dataclass
class LabelledDemo:
    """One demo's per-frame features and SARM labels."""

    id: int
    features: np.ndarray
    spans: np.ndarray
    stage: np.ndarray
    tau: np.ndarray
    progress: np.ndarray
    success: bool = True
    weight: np.ndarray | None = None
    """Per-frame weight in the ``tau`` regression (``None``: 1 everywhere)."""
    advancing: np.ndarray | None = None
    """Failure-aware labels only: frames whose run advanced (the others stalled)."""

    def __len__(self) -> int:
        return len(self.features)

    def weights(self) -> np.ndarray:
        """The regression weight of every frame."""
        return np.ones(len(self)) if self.weight is None else self.weight

    def rank_groups(self) -> tuple[np.ndarray, np.ndarray]:
        """``(high, low)`` frame masks for the ranking term: advancing frames of a successful
        episode rank above stalled frames at the same stage (none without failure labels)."""
        if self.advancing is None:
            none = np.zeros(len(self), bool)
            return none, none
        return self.advancing & self.success, ~self.advancing


def demo_features(episodes: Sequence[Episode], observation_space: gym.Space,
                  encoder_spec: dict[str, Any] | None = None,
                  embeddings: dict[int, np.ndarray] | None = None) -> list[np.ndarray]:
    """Per-episode ``(T + 1, D)`` features: state, then frame embeddings if an encoder is set.

    ``embeddings`` (episode id -> ``(T + 1, E)``) replaces running the encoder on
    the demo frames (precomputed embeddings).
    """
    encoder = build_encoder(encoder_spec)
    out = []
    for ep in episodes:
        state = np.asarray(ep.observations, dtype=np.float32).reshape(len(ep.observations), -1)
        feats = [state]
        if encoder is not None:
            if embeddings is not None:
                if ep.id not in embeddings:
                    raise ValueError(f"no precomputed embeddings for episode {ep.id}")
                emb = np.asarray(embeddings[ep.id], dtype=np.float32)
            elif ep.frames is not None:
                emb = np.asarray(encoder(ep.frames), dtype=np.float32)
            else:
                raise ValueError(f"episode {ep.id} has no frames for the frame encoder; collect "
                                 "with frames=true or pass precomputed embeddings")
            if emb.shape != (len(state), encoder.dim):
                raise ValueError(f"episode {ep.id}: embeddings of shape {emb.shape}, expected "
                                 f"{(len(state), encoder.dim)}")
            feats.append(emb)
        out.append(np.concatenate(feats, axis=1))
    expected = flat_dim(observation_space)
    if out and out[0].shape[1] - (encoder.dim if encoder else 0) != expected:
        raise ValueError(f"the demos have {out[0].shape[1] - (encoder.dim if encoder else 0)} "
                         f"state features but the env's observation space {observation_space} "
                         f"has {expected}; collect the demos on the same env and obs_mode")
    return out


def demo_spans(episodes: Sequence[Episode], num_stages: int,
               annotations: dict[int, np.ndarray] | None = None) -> list[np.ndarray]:
    """Subtask spans per episode: from an annotation file, else from per-frame stages."""
    spans = []
    for ep in episodes:
        n = len(ep.observations)
        if annotations is not None:
            if ep.id not in annotations:
                raise ValueError(f"the annotation file has no spans for episode {ep.id}")
            s = validate_spans(annotations[ep.id], n, where=f"annotation of episode {ep.id}")
            if len(s) != num_stages:
                raise ValueError(f"annotation of episode {ep.id} has {len(s)} subtasks, "
                                 f"expected {num_stages}")
            spans.append(s)
        else:
            spans.append(spans_from_stages(ep.stages, num_stages))
    return spans


def label_demos(episodes: Sequence[Episode], features: Sequence[np.ndarray],
                spans: Sequence[np.ndarray], alpha: np.ndarray,
                per_frame: bool = False, failure: bool = False,
                stall_weight: float = 1.0) -> list[LabelledDemo]:
    """Attach SARM labels (with priors ``alpha``) to each demo.

    ``per_frame``: label from each frame's own stage (:func:`frame_stage_labels`) instead
    of the subtask spans, for stages read from the env that can go back. ``failure``:
    failure-aware per-frame labels (:func:`failure_aware_labels`), stalled frames weighing
    ``stall_weight`` in the regression.
    """
    out = []
    for ep, f, s in zip(episodes, features, spans, strict=True):
        if failure:
            stage, tau, prog, adv = failure_aware_labels(ep.stages, ep.success, alpha)
            out.append(LabelledDemo(ep.id, f, s, stage, tau, prog, ep.success,
                                    np.where(adv, 1.0, stall_weight), adv))
            continue
        if per_frame:
            stage, tau, prog = frame_stage_labels(ep.stages, alpha)
        else:
            stage, tau, prog = progress_labels(s, len(f), alpha)
        out.append(LabelledDemo(ep.id, f, s, stage, tau, prog, ep.success))
    return out


def predict_demo(model: ProgressModel, features: np.ndarray) -> Any:
    """Model predictions for every frame of one demo (windows as at rollout time)."""
    idx = frame_windows(len(features), model.config.window, model.config.stride)
    return model.predict(features[idx])


def rate_states(model: ProgressModel, observations: np.ndarray,
                frames: np.ndarray | None = None) -> np.ndarray:
    """Predicted progress of each state of one trajectory (windows as at rollout time)."""
    episode = Episode(observations=np.asarray(observations), actions=np.zeros((0, 1)),
                      rewards=np.zeros(0), terminations=np.zeros(0, bool),
                      truncations=np.zeros(0, bool), stages=np.zeros(len(observations), int),
                      subtask_names=(), frames=frames)
    feats = demo_features([episode], model.observation_space, model.encoder_spec)[0]
    return np.asarray(predict_demo(model, feats).progress, np.float64)


def label_for_model(model: ProgressModel, episodes: Sequence[Episode],
                    embeddings: dict[int, np.ndarray] | None = None,
                    annotations: dict[int, Any] | None = None) -> list[LabelledDemo]:
    """Features and progress labels of ``episodes`` the way ``model`` was trained on them
    (its encoder, stage count, stage priors and label kind)."""
    feats = demo_features(episodes, model.observation_space, model.encoder_spec, embeddings)
    spans = demo_spans(episodes, model.num_stages, annotations)
    per_frame = model.config.labels in ("frames", "failure") and annotations is None
    return label_demos(episodes, feats, spans, model.alpha, per_frame=per_frame,
                       failure=per_frame and model.config.labels == "failure",
                       stall_weight=model.config.stall_weight)


def evaluate_progress(model: ProgressModel, demos: Sequence[LabelledDemo]) -> dict[str, Any]:
    """VOC (Spearman of predicted progress vs time) and stage accuracy.

    VOC averages over the *successful* demos only (nan if there are none); stage
    accuracy and progress MAE over every frame of every demo.
    """
    vocs, correct, total, errors = [], 0, 0, []
    per_episode = []
    for d in demos:
        pred = predict_demo(model, d.features)
        voc = order_correlation(pred.progress, np.arange(len(d)))
        acc = float(np.mean(pred.stage == d.stage))
        if d.success:
            vocs.append(voc)
        correct += int(np.sum(pred.stage == d.stage))
        total += len(d)
        errors.append(np.abs(pred.progress - d.progress))
        per_episode.append({"id": d.id, "voc": round(voc, 4), "stage_acc": round(acc, 4),
                            "frames": len(d)})
    err = np.concatenate(errors) if errors else np.zeros(0)
    return {
        "episodes": len(demos),
        "voc": float(np.mean(vocs)) if vocs else float("nan"),
        "voc_min": float(np.min(vocs)) if vocs else float("nan"),
        "stage_acc": correct / max(total, 1),
        "progress_mae": float(err.mean()) if len(err) else float("nan"),
        "per_episode": per_episode,
    }


class RankPairs:
    """Pairs for the ranking term: a high frame and a low frame of the same stage.

    ``stage``, ``high`` and ``low`` are per-row arrays over one pool of windows; a pair
    takes a low row at random (stages with both groups only) and a high row of its stage.

    Example:
        >>> import numpy as np
        >>> pairs = RankPairs(np.array([0, 0, 1, 1]), np.array([True, False, True, False]),
        ...                   np.array([False, True, False, False]))
        >>> hi, lo, k = pairs.sample(3, np.random.default_rng(0))
        >>> hi.tolist(), lo.tolist(), k.tolist()     # only stage 0 has both groups
        ([0, 0, 0], [1, 1, 1], [0, 0, 0])
    """

    def __init__(self, stage: np.ndarray, high: np.ndarray, low: np.ndarray) -> None:
        stage = np.asarray(stage, np.int64)
        self.high = {int(k): np.flatnonzero(high & (stage == k)) for k in np.unique(stage)}
        lows = np.flatnonzero(low)
        self.low = lows[np.isin(stage[lows], [k for k, v in self.high.items() if len(v)])]
        self.stage = stage

    def __bool__(self) -> bool:
        return bool(len(self.low))

    def sample(self, n: int, rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(high rows, low rows, stage)`` of ``n`` pairs."""
        lo = self.low[rng.integers(0, len(self.low), n)]
        k = self.stage[lo]
        hi = np.array([self.high[int(s)][rng.integers(0, len(self.high[int(s)]))] for s in k],
                      np.int64)
        return hi, lo, k


def fit_loss(net: StageProgressNet, x: torch.Tensor, stage: torch.Tensor, tau: torch.Tensor,
             weight: torch.Tensor, cfg: ProgressConfig, gen: torch.Generator
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(ce + tau_weight * mse, ce, mse)``: stage cross-entropy and the weighted ``tau``
    regression ``sum(w (tau - t)^2) / sum(w)``, ``tau`` conditioned on the true stage with
    probability ``true_stage_prob`` (else the predicted one)."""
    h = net.encode(x)
    logits = net.stage_head(h)
    use_true = torch.rand(len(x), generator=gen).to(x.device) < cfg.true_stage_prob
    cond = torch.where(use_true, stage, logits.argmax(1).detach())
    pred = net.tau(h, cond)
    ce = F.cross_entropy(logits, stage)
    mse = (weight * (pred - tau) ** 2).sum() / weight.sum().clamp_min(1e-8)
    return ce + cfg.tau_weight * mse, ce, mse


def rank_loss(net: StageProgressNet, x_high: torch.Tensor, x_low: torch.Tensor,
              stage: torch.Tensor, cfg: ProgressConfig) -> torch.Tensor:
    """Ranking term on ``tau`` (conditioned on the shared stage) of high over low windows:
    ``logistic``: ``mean softplus(-(z_hi - z_lo))`` with ``z`` the logit of ``tau``;
    ``margin``: ``mean relu(rank_margin - (tau_hi - tau_lo))``."""
    tau = net.tau(net.encode(torch.cat([x_high, x_low])), torch.cat([stage, stage]))
    hi, lo = tau[:len(x_high)], tau[len(x_high):]
    if cfg.rank_loss == "margin":
        return F.relu(cfg.rank_margin - (hi - lo)).mean()
    z_hi, z_lo = torch.logit(hi, eps=1e-6), torch.logit(lo, eps=1e-6)
    return F.softplus(-(z_hi - z_lo)).mean()


def _split(n: int, heldout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_held = round(heldout * n)
    if heldout > 0 and n >= 2:
        n_held = min(max(n_held, 1), n - 1)
    return np.sort(order[n_held:]), np.sort(order[:n_held])


def train_progress_model(
    episodes: Sequence[Episode],
    observation_space: gym.Space,
    action_space: gym.Space,
    config: ProgressConfig | None = None,
    annotations: dict[int, np.ndarray] | None = None,
    subtask_names: Sequence[str] | None = None,
    encoder: dict[str, Any] | None = None,
    embeddings: dict[int, np.ndarray] | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> tuple[ProgressModel, dict[str, Any]]:
    """Train on ``episodes`` (held-out split by episode); returns the model and a report.

    Args:
        episodes: demos (``rewardlearn.cli.collect.load_demos``), with per-frame
            ``stages`` unless ``annotations`` gives subtask spans per episode id.
        observation_space, action_space: the env's spaces (stored in the model).
        config: model/training settings.
        annotations: episode id -> ``(K, 2)`` subtask ``[start, end]`` frames.
        subtask_names: names of the subtasks (default: the demos').
        encoder: frozen frame encoder spec ``{"target": ..., "kwargs": ...}``.
        embeddings: precomputed frame embeddings per episode id (with ``encoder``).
        on_epoch: called with ``(epoch, losses)`` after each epoch.
    """
    cfg = config or ProgressConfig()
    if not episodes:
        raise ValueError("no demos to train the progress model on")
    names = tuple(subtask_names or episodes[0].subtask_names)
    if annotations is not None:
        num_stages = len(next(iter(annotations.values())))
    elif names:
        num_stages = len(names)
    else:
        num_stages = int(max(int(np.max(ep.stages)) for ep in episodes)) + 1
    if num_stages < 1:
        raise ValueError("the demos have no stages")
    t0 = time.perf_counter()
    feats = demo_features(episodes, observation_space, encoder, embeddings)
    spans = demo_spans(episodes, num_stages, annotations)
    train_idx, held_idx = _split(len(episodes), cfg.heldout, cfg.seed)
    alpha = stage_priors([spans[i] for i in train_idx],
                         [len(feats[i]) for i in train_idx])
    per_frame = cfg.labels in ("frames", "failure") and annotations is None
    demos = label_demos(episodes, feats, spans, alpha, per_frame=per_frame,
                        failure=per_frame and cfg.labels == "failure",
                        stall_weight=cfg.stall_weight)
    train = [demos[i] for i in train_idx]
    held = [demos[i] for i in held_idx]

    all_train = np.concatenate([d.features for d in train])
    mean = all_train.mean(0)
    std = all_train.std(0)
    std = np.where(std < 1e-6, 1.0, std)
    model = ProgressModel(observation_space, action_space, num_stages, alpha, cfg, mean, std,
                          names or tuple(f"stage_{k}" for k in range(num_stages)), encoder)

    nat_x = np.concatenate([d.features[frame_windows(len(d), cfg.window, cfg.stride)]
                            for d in train])
    nat_stage = np.concatenate([d.stage for d in train])
    nat_tau = np.concatenate([d.tau for d in train])
    nat_w = np.concatenate([d.weights() for d in train])
    groups = [d.rank_groups() for d in train]
    pairs = RankPairs(nat_stage, np.concatenate([g[0] for g in groups]),
                      np.concatenate([g[1] for g in groups]))
    rank = cfg.rank_weight > 0 and bool(pairs)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(model.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    history = []
    nat_t = model.to_tensor(nat_x) if rank else torch.zeros(0)
    for epoch in range(cfg.epochs):
        xs, stages, taus, ws = [nat_x], [nat_stage], [nat_tau], [nat_w]
        for d in train:
            count = round(cfg.rewind_fraction * len(d))
            idx, label = rewind_windows(len(d), count, cfg.window, cfg.stride, cfg.rewind_max,
                                        rng)
            if len(idx):
                xs.append(d.features[idx])
                stages.append(d.stage[label])
                taus.append(d.tau[label])
                ws.append(d.weights()[label])
        x_all = model.to_tensor(np.concatenate(xs))
        s_all = torch.as_tensor(np.concatenate(stages), device=model.device)
        t_all = torch.as_tensor(np.concatenate(taus), dtype=torch.float32, device=model.device)
        w_all = torch.as_tensor(np.concatenate(ws), dtype=torch.float32, device=model.device)
        perm = torch.randperm(len(x_all), generator=gen).to(model.device)
        model.net.train()
        sums = {"loss": 0.0, "stage_ce": 0.0, "tau_mse": 0.0, **({"rank": 0.0} if rank else {})}
        batches = 0
        for b in range(0, len(perm), cfg.batch_size):
            rows = perm[b:b + cfg.batch_size]
            loss, ce, mse = fit_loss(model.net, x_all[rows], s_all[rows], t_all[rows],
                                     w_all[rows], cfg, gen)
            if rank:
                hi, lo, k = pairs.sample(cfg.rank_pairs, rng)
                rl = rank_loss(model.net, nat_t[hi], nat_t[lo],
                               torch.as_tensor(k, device=model.device), cfg)
                loss = loss + cfg.rank_weight * rl
                sums["rank"] += rl.item()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sums["loss"] += loss.item()
            sums["stage_ce"] += ce.item()
            sums["tau_mse"] += mse.item()
            batches += 1
        losses = {k: v / max(batches, 1) for k, v in sums.items()}
        history.append(losses)
        if on_epoch is not None:
            on_epoch(epoch, losses)

    report: dict[str, Any] = {
        "num_stages": num_stages,
        "subtask_names": list(model.subtask_names),
        "alpha": [round(float(a), 4) for a in alpha],
        "train_episodes": [int(episodes[i].id) for i in train_idx],
        "heldout_episodes": [int(episodes[i].id) for i in held_idx],
        "train_frames": len(nat_x),
        "train": {k: v for k, v in evaluate_progress(model, train).items()
                  if k != "per_episode"},
        "heldout": evaluate_progress(model, held) if held else None,
        "final_losses": history[-1],
        "train_s": round(time.perf_counter() - t0, 2),
        "config": cfg.to_dict(),
    }
    model.metrics = {k: v for k, v in report.items() if k != "config"}
    return model, report


__all__ = [
    "LabelledDemo",
    "RankPairs",
    "demo_features",
    "demo_spans",
    "evaluate_progress",
    "fit_loss",
    "label_demos",
    "label_for_model",
    "predict_demo",
    "rank_loss",
    "rate_states",
    "train_progress_model",
]
