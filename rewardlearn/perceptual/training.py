"""Fitting a perceptual reward from a few demos, and evaluating it on held-out ones.

:func:`fit_perceptual` encodes the demos (training the encoder first if it learns
from them), discovers the steps, selects each step's discriminative features and
stores their statistics, plus the goal embedding. :func:`evaluate_perceptual`
reports, on other episodes, the Spearman correlation of the reward with time
(true progress of an expert episode), the mean absolute frame error of the step
boundaries against the episodes' true stage labels, and the mean reward per true stage.

Example:
    Demos from ``rewardlearn-collect env=pick_place n_episodes=20 out=data/pick_place-expert-v0``:

    >>> from rewardlearn.perceptual import fit_perceptual
    >>> model = fit_perceptual("data/pick_place-expert-v0", encoder="tcn",
    ...                        n_steps=4)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from rewardlearn.demos import Episode, load_demos
from rewardlearn.encoders import Encoder, FrameEncoder, as_encoder, build_encoder
from rewardlearn.perceptual.configuration import PerceptualConfig
from rewardlearn.perceptual.modeling import PerceptualModel, StepModel
from rewardlearn.perceptual.steps import (
    boundaries_from_stages,
    boundary_error,
    choose_k,
    discover_steps,
    pca_basis,
    select_features,
    standardize_stats,
    step_labels,
    step_means,
)
from rewardlearn.stats import order_correlation

log = logging.getLogger("rewardlearn")

DEFAULT_ENCODER: dict[str, Any] = {"target": "tcn"}

DemoSource = str | os.PathLike[str] | Sequence[Episode]


def as_episodes(demos: DemoSource) -> list[Episode]:
    """Episodes from a dataset path/id or a list of :class:`~rewardlearn.cli.collect.Episode`."""
    episodes = load_demos(demos) if isinstance(demos, (str, os.PathLike)) else list(demos)
    if not episodes:
        raise ValueError(f"no demonstrations in {demos!r}")
    return episodes


def check_demos(episodes: Sequence[Episode], encoder: Encoder, where: str = "demos") -> None:
    """Refuse demos the encoder cannot read (no frames for a frame encoder, empty episodes)."""
    if encoder.needs_frames:
        missing = [i for i, ep in enumerate(episodes) if ep.frames is None]
        if missing:
            raise ValueError(
                f"{where}: the {encoder.name} encoder reads frames but {len(missing)} of "
                f"{len(episodes)} episodes have none (episodes {missing[:5]}); collect them with "
                "frames=true (rewardlearn-collect env=... frames=true) or use "
                "encoder=state")
    short = [i for i, ep in enumerate(episodes) if len(ep.observations) < 2]
    if short:
        raise ValueError(f"{where}: episodes {short[:5]} have fewer than 2 observations")


def embed_episode(model_or_encoder: PerceptualModel | Encoder, ep: Episode) -> np.ndarray:
    """Raw features of every observation of an episode (``T + 1`` rows)."""
    frames = ep.frames if model_or_encoder.needs_frames else None
    if isinstance(model_or_encoder, PerceptualModel):
        return model_or_encoder.embed(ep.observations, frames)
    return np.asarray(model_or_encoder.embed(ep.observations, frames), dtype=np.float64)


def split_heldout(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and held-out episode indices (held-out only with 5+ episodes)."""
    order = np.random.default_rng(seed).permutation(n)
    n_held = max(1, round(fraction * n)) if fraction > 0 and n >= 5 else 0
    return np.sort(order[n_held:]), np.sort(order[:n_held])


def fit_perceptual(demos: DemoSource,
                   encoder: dict[str, Any] | str | Encoder | FrameEncoder | None = None,
                   config: PerceptualConfig | None = None, fit_encoder: bool = True,
                   **overrides: Any) -> PerceptualModel:
    """Fit a perceptual reward on demos.

    Args:
        demos: a dataset (``load_demos`` path or id) or a list of episodes; lengths may vary.
        encoder: an :class:`~rewardlearn.encoders.Encoder`, or its spec / short name
            (default ``tcn``: self-supervised on the demos' frames).
        fit_encoder: train a trainable encoder on these demos first (``False``: reuse
            an encoder already trained, e.g. to compare settings).
        config: settings; ``overrides`` replace single fields (``n_steps=4``...).
    """
    cfg = config or PerceptualConfig()
    if overrides:
        cfg = PerceptualConfig.from_kwargs({**cfg.to_dict(), **overrides})
    episodes = as_episodes(demos)
    enc = encoder if isinstance(encoder, (Encoder, FrameEncoder)) else \
        build_encoder(encoder or DEFAULT_ENCODER)
    if enc is None:
        raise ValueError("no encoder given")
    enc = as_encoder(enc)
    check_demos(episodes, enc)
    train_idx, held_idx = split_heldout(len(episodes), cfg.heldout, cfg.seed)
    train = [episodes[i] for i in train_idx]
    start = time.perf_counter()
    metrics: dict[str, Any] = {"n_demos": len(train), "n_heldout": len(held_idx),
                               "encoder": enc.name}
    if enc.trainable and fit_encoder:
        metrics.update(enc.fit([ep.observations for ep in train],
                               [ep.frames for ep in train] if enc.needs_frames else None))
    raw = [embed_episode(enc, ep) for ep in train]
    mean, std = standardize_stats(raw)
    zs = [(x - mean) / std for x in raw]
    seg = zs
    if cfg.pca_dim is not None and zs[0].shape[1] > cfg.pca_dim:
        basis = pca_basis(zs, cfg.pca_dim)
        seg = [z @ basis for z in zs]
    shortest = min(len(z) for z in zs)
    if cfg.auto_k:
        k, curve = choose_k(seg, cfg.k_min, cfg.k_max, cfg.auto_threshold,
                            min(cfg.min_step_len, max(1, shortest // cfg.k_max)))
        metrics["auto_k_curve"] = [round(c, 5) for c in curve]
    else:
        k = int(cfg.n_steps)  # type: ignore[arg-type]
    if k > shortest:
        raise ValueError(f"cannot split demos into {k} steps: the shortest has {shortest} frames")
    min_len = min(cfg.min_step_len, max(1, shortest // k))
    split = discover_steps(seg, k, min_len, cfg.joint_iters)
    labels = [step_labels(c, len(z)) for c, z in zip(split.splits, zs, strict=True)]
    allz, alllab = np.concatenate(zs), np.concatenate(labels)
    feats, mus, sigmas = [], [], []
    for i in range(k):
        inside, outside = allz[alllab == i], allz[alllab != i]
        idx, _ = select_features(inside, outside, cfg.n_features)
        feats.append(idx)
        mus.append(inside[:, idx].mean(0))
        sigmas.append(np.maximum(inside[:, idx].std(0), cfg.min_sigma))
    m = min(len(f) for f in feats)
    steps = StepModel(np.stack([f[:m] for f in feats]), np.stack([x[:m] for x in mus]),
                      np.stack([x[:m] for x in sigmas]),
                      cfg.weights(k),
                      step_means(zs, split.splits, k))
    goal_raw = np.mean([x[-cfg.goal_frames:].mean(0) for x in raw], axis=0)
    metrics.update(k=k, fit_s=round(time.perf_counter() - start, 2),
                   train_boundaries=[c.tolist() for c in split.splits])
    n_true = _n_stages(train)
    if n_true == k:
        errs = [boundary_error(c, boundaries_from_stages(ep.stages, n_true))
                for c, ep in zip(split.splits, train, strict=True)]
        metrics["train_boundary_mae"] = float(np.mean(errs))
    frames0 = train[0].frames
    model = PerceptualModel(
        enc, cfg, mean, std, steps, (goal_raw - mean) / std, goal_raw,
        state_dim=int(np.prod(train[0].observations.shape[1:])),
        action_dim=int(np.prod(train[0].actions.shape[1:])),
        frame_size=None if frames0 is None else (int(frames0.shape[1]), int(frames0.shape[2])),
        metrics=metrics, subtask_names=train[0].subtask_names)
    if len(held_idx):
        model.metrics["heldout"] = evaluate_perceptual(model, [episodes[i] for i in held_idx])
    return model


def _n_stages(episodes: Sequence[Episode]) -> int | None:
    """Number of true stages (from the subtask names, else the labels), ``None`` if unlabelled."""
    names = episodes[0].subtask_names
    if names:
        return len(names)
    top = max(int(ep.stages.max()) for ep in episodes)
    return top + 1 if top > 0 else None


def evaluate_perceptual(model: PerceptualModel, demos: DemoSource) -> dict[str, Any]:
    """Held-out figures: Spearman of reward (and goal similarity) with time, boundary error.

    ``spearman``: mean over episodes of the rank correlation between the reward of
    each observation and its time index (expert episodes progress with time);
    ``boundary_mae``: mean absolute frame error of the model's monotone segmentation
    against the true stage boundaries (when the model has as many steps as there are
    stages); ``reward_by_stage``: mean reward per true stage; ``reward_by_step``:
    mean reward per segmented step.
    """
    episodes = as_episodes(demos)
    check_demos(episodes, model.encoder, where="evaluation episodes")
    n_true = _n_stages(episodes)
    k = model.steps.k
    rho, rho_goal, errs = [], [], []
    by_stage: list[list[float]] = [[] for _ in range(n_true or 0)]
    by_step: list[list[float]] = [[] for _ in range(k)]
    for ep in episodes:
        emb = embed_episode(model, ep)
        pred = model.predict_embedded(emb)
        t = np.arange(len(emb))
        rho.append(order_correlation(pred.reward, t))
        rho_goal.append(order_correlation(pred.goal_similarity, t))
        cuts = model.segment(emb)
        for i, lab in enumerate(step_labels(cuts, len(emb)) == s for s in range(k)):
            if lab.any():
                by_step[i].append(float(pred.reward[lab].mean()))
        if n_true:
            for s in range(n_true):
                sel = ep.stages == s
                if sel.any():
                    by_stage[s].append(float(pred.reward[sel].mean()))
            if n_true == k:
                errs.append(boundary_error(cuts, boundaries_from_stages(ep.stages, n_true)))
    out: dict[str, Any] = {
        "n_episodes": len(episodes),
        "spearman": float(np.mean(rho)),
        "spearman_min": float(np.min(rho)),
        "goal_spearman": float(np.mean(rho_goal)),
        "reward_by_step": [float(np.mean(v)) if v else None for v in by_step],
        "reward_by_stage": [float(np.mean(v)) if v else None for v in by_stage],
    }
    if errs:
        out["boundary_mae"] = float(np.mean(errs))
    return out


__all__ = ["DEFAULT_ENCODER", "as_episodes", "check_demos", "embed_episode",
           "evaluate_perceptual", "fit_perceptual", "split_heldout"]
