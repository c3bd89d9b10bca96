"""Ranking metrics: preference accuracy, return correlations, VOC.

* :func:`preference_accuracy`: the fraction of labelled segment pairs whose
  preferred segment the reward gives the higher return (pairs labelled equal or
  skipped are not counted; ties in predicted return count as half right).
* :func:`return_correlation`: Pearson and Spearman correlation of learned vs
  true episode returns over rollouts.
* :func:`progress_voc`: VOC and stage accuracy of a progress model on demos,
  through :func:`rewardlearn.progress.training.evaluate_progress`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from rewardlearn.metrics.epic import RewardFn
from rewardlearn.metrics.sampling import (
    FrameSize,
    FrameTable,
    FrameTables,
    Rollouts,
    reads_frames,
    reward_on,
)
from rewardlearn.stats import pearson, spearman


@dataclass
class LabelledPairs:
    """``N`` pairs of segments (per-step ``obs``, ``acts``, ``next_obs``) and labels.

    ``labels[i]`` is 1 (first preferred), 0 (second) or 0.5 (equal).
    """

    first: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    second: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    labels: np.ndarray
    first_ids: list[tuple[np.ndarray, np.ndarray]] | None = None
    """Rollout state indices ``(obs_ids, next_ids)`` of each first segment's steps."""
    second_ids: list[tuple[np.ndarray, np.ndarray]] | None = None
    """The same for the second segments."""
    frames: dict[FrameSize, FrameTable] = field(default_factory=dict)
    """The rollouts' frame tables the ids index (rewards that read frames)."""

    def __len__(self) -> int:
        return len(self.labels)


def segment_return(reward: RewardFn, segment: tuple[np.ndarray, np.ndarray, np.ndarray],
                   ids: tuple[np.ndarray, np.ndarray] | None = None,
                   frames: FrameTables | None = None) -> float:
    """Sum of ``reward`` over one segment's transitions (``ids``/``frames``: see ``reward_on``)."""
    obs, acts, nxt = segment
    obs_ids, next_ids = ids if ids is not None else (None, None)
    return float(reward_on(reward, obs, acts, nxt, obs_ids=obs_ids, next_ids=next_ids,
                           frames=frames).sum())


def preference_accuracy(reward: RewardFn, pairs: LabelledPairs) -> dict[str, Any]:
    """Accuracy on the strictly labelled pairs (``nan`` if there are none)."""
    strict = np.flatnonzero(np.isin(pairs.labels, (0.0, 1.0)))
    if len(strict) == 0:
        return {"pairs": 0, "accuracy": float("nan")}
    if reads_frames(reward) and (pairs.first_ids is None or pairs.second_ids is None):
        raise ValueError(f"{getattr(reward, 'name', 'this reward')} reads frames, but these "
                         "labelled pairs have no rendered frames (labels from a preference "
                         "checkpoint hold states only); use oracle pairs from the rollouts")
    right = 0.0
    for i in strict:
        ids1 = pairs.first_ids[i] if pairs.first_ids is not None else None
        ids2 = pairs.second_ids[i] if pairs.second_ids is not None else None
        r1 = segment_return(reward, pairs.first[i], ids1, pairs.frames)
        r2 = segment_return(reward, pairs.second[i], ids2, pairs.frames)
        if r1 == r2:
            right += 0.5
        else:
            right += float((r1 > r2) == (pairs.labels[i] == 1.0))
    return {"pairs": len(strict), "accuracy": right / len(strict)}


def oracle_pairs(rollouts: Rollouts, n_pairs: int, length: int, seed: int = 0) -> LabelledPairs:
    """Segment pairs from rollouts, labelled by their true return (an oracle teacher).

    Segments are ``length`` consecutive steps inside one episode; pairs with
    equal true returns are labelled 0.5 (and so not scored).
    """
    rng = np.random.default_rng(seed)
    starts = [i for i in range(len(rollouts) - length + 1)
              if rollouts.episode[i] == rollouts.episode[i + length - 1]]
    if len(starts) < 2:
        raise ValueError(f"no two segments of {length} steps in {len(rollouts)} transitions; "
                         "collect more steps or use a shorter segment_length")
    first, second, labels = [], [], []
    first_ids: list[tuple[np.ndarray, np.ndarray]] = []
    second_ids: list[tuple[np.ndarray, np.ndarray]] = []
    has_ids = rollouts.obs_ids is not None and rollouts.next_ids is not None
    for _ in range(n_pairs):
        a, b = rng.choice(starts, size=2, replace=False)
        seg_a, seg_b = slice(a, a + length), slice(b, b + length)
        first.append((rollouts.obs[seg_a], rollouts.acts[seg_a], rollouts.next_obs[seg_a]))
        second.append((rollouts.obs[seg_b], rollouts.acts[seg_b], rollouts.next_obs[seg_b]))
        if rollouts.obs_ids is not None and rollouts.next_ids is not None:
            first_ids.append((rollouts.obs_ids[seg_a], rollouts.next_ids[seg_a]))
            second_ids.append((rollouts.obs_ids[seg_b], rollouts.next_ids[seg_b]))
        ra, rb = rollouts.env_rewards[seg_a].sum(), rollouts.env_rewards[seg_b].sum()
        labels.append(0.5 if ra == rb else float(ra > rb))
    return LabelledPairs(first, second, np.asarray(labels), first_ids if has_ids else None,
                         second_ids if has_ids else None, dict(rollouts.frames))


def pairs_from_preference_checkpoint(path: str | Path, observation_space: gym.Space,
                                     action_space: gym.Space,
                                     rounds: Sequence[int] | None = None) -> LabelledPairs:
    """The labelled pairs saved in a ``reward=preference`` run's ``reward_model.pt``.

    Saved segments hold the reward-net features ``[obs, act(, next_obs)]`` per
    step; they are split back into transitions. Where ``next_obs`` was not
    stored, step ``t``'s next observation is step ``t+1``'s observation and the
    last step repeats its own (exact for ``r(s, a)`` models). ``rounds`` keeps
    only the labels of those feedback rounds (e.g. the last one, held out from
    a model trained on the earlier ones).
    """
    from rewardlearn.rewards.checkpoint import check_spaces
    from rewardlearn.rewards.features import flat_dim, flat_dim_act
    from rewardlearn.rewards.pretrained import read_any

    payload = read_any(path)
    state = payload.get("state", {}) if isinstance(payload, dict) else {}
    if "dataset" not in state:
        raise ValueError(f"{path} holds no preference labels (not a reward=preference checkpoint)")
    check_spaces(payload["observation_space"], payload["action_space"], observation_space,
                 action_space, where=f"label checkpoint {path}")
    if not isinstance(observation_space, gym.spaces.Box):
        raise ValueError("labels from a preference checkpoint need a flat Box observation space")
    cfg = payload.get("config", {})
    d_obs, d_act = flat_dim(observation_space), flat_dim_act(action_space)
    use_action, use_next = bool(cfg.get("use_action", True)), bool(cfg.get("use_next_obs", False))
    data = state["dataset"]
    keep = [i for i, r in enumerate(data["rounds"]) if rounds is None or r in set(rounds)]

    def split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = np.asarray(x, np.float32)
        obs = x[:, :d_obs]
        acts = x[:, d_obs:d_obs + d_act] if use_action else np.zeros((len(x), d_act), np.float32)
        if use_next:
            off = d_obs + d_act * int(use_action)
            nxt = x[:, off:off + d_obs]
        else:
            nxt = np.concatenate([obs[1:], obs[-1:]])
        shape = observation_space.shape
        return obs.reshape(-1, *shape), acts, nxt.reshape(-1, *shape)

    return LabelledPairs([split(data["x1"][i]) for i in keep], [split(data["x2"][i]) for i in keep],
                         np.asarray([data["labels"][i] for i in keep], np.float64))


def episode_returns(reward: RewardFn, rollouts: Rollouts) -> tuple[np.ndarray, np.ndarray]:
    """``(learned, true)`` return of every episode in the rollouts."""
    learned = reward_on(reward, rollouts.obs, rollouts.acts, rollouts.next_obs, rollouts.terminated,
                        truncated=rollouts.truncated, obs_ids=rollouts.obs_ids,
                        next_ids=rollouts.next_ids, frames=rollouts.frames)
    eps = np.unique(rollouts.episode)
    idx = np.searchsorted(eps, rollouts.episode)
    return (np.bincount(idx, weights=learned, minlength=len(eps)),
            np.bincount(idx, weights=rollouts.env_rewards, minlength=len(eps)))


def return_correlation(reward: RewardFn, rollouts: Rollouts) -> dict[str, Any]:
    """Pearson and Spearman of learned vs true episode returns."""
    learned, true = episode_returns(reward, rollouts)
    return {"episodes": len(true), "pearson": pearson(learned, true),
            "spearman": spearman(learned, true)}


def progress_voc(model_path: str | Path, demos: str) -> dict[str, Any]:
    """VOC, stage accuracy and progress MAE of a progress model on demo datasets
    (comma-separated paths or Minari ids)."""
    from rewardlearn.demos import load_demo_sets
    from rewardlearn.progress.modeling import ProgressModel
    from rewardlearn.progress.training import evaluate_progress, label_for_model

    model = ProgressModel.load(model_path)
    metrics = evaluate_progress(model, label_for_model(model, load_demo_sets(demos)))
    return {"voc": metrics["voc"], "voc_min": metrics["voc_min"],
            "stage_acc": metrics["stage_acc"], "progress_mae": metrics["progress_mae"],
            "voc_demos": metrics["episodes"]}


__all__ = ["LabelledPairs", "episode_returns", "oracle_pairs", "pairs_from_preference_checkpoint",
           "preference_accuracy", "progress_voc", "return_correlation", "segment_return"]
