"""``reward=vlm``: zero-shot reward from rendered frames and text prompts (VLM-RM).

Rocamonde et al. 2023: a CLIP model scores each frame against goal prompts,
optionally projected onto the goal-baseline direction (``alpha``); see
:mod:`rewardlearn.vlm.vlmrm` for the formula. Frames come from
:class:`~rewardlearn.wrappers.FrameCapture` at the model's input size (fast
renderer, the env config's camera; the terminal frame is the real one), and
the frames of all envs are encoded in one batch per step.

Options:

* ``frame_stride=k``: score the first step of each episode, every ``k``-th step
  after it and the episode's last step; on the other steps the agent gets the
  most recent score of the same episode (zero-order hold). ``info`` then
  carries ``vlm_fresh`` (1 where the frame was scored).
* ``reward_timing=rollout`` (``auto`` with PPO): frames are queued and scored in
  batches of ``batch_size`` while the rollout is collected (:meth:`VLMReward.defer_step`;
  the wrapper keeps no frames), and the rollout's rewards reach PPO's buffer before its
  advantages are computed (:class:`~rewardlearn.wrappers.vec.DeferredRewardCallback`).
  Evaluation always scores at once.

The per-step score is in ``info["reward_signals"]["vlm_score"]`` and in every
recorded rollout's sidecar.

Batches with ``frame_ids`` (reward evaluation, :mod:`rewardlearn.cli.evaluate`) are
independent queries: every row is scored (no stride hold, no deferral), and each
distinct frame id is encoded once until :meth:`~VLMReward.clear_frame_cache`.

Example (random weights: runs anywhere, scores are not meaningful):
    >>> import numpy as np, gymnasium as gym
    >>> from rewardlearn.vlm.reward import VLMReward
    >>> from rewardlearn.rewards.base import TransitionBatch
    >>> space = gym.spaces.Box(-1, 1, (3,))
    >>> r = VLMReward(space, space, goal="a humanoid robot kneeling",
    ...               baseline="a humanoid robot", alpha=0.5, clip_model="ViT-B-32",
    ...               pretrained=None, device="cpu")
    >>> b = TransitionBatch.from_arrays(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)),
    ...                                 frames=np.zeros((2, *r.frame_size, 3), np.uint8))
    >>> r(b).shape
    (2,)
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gymnasium as gym
import numpy as np

from rewardlearn.rewards.base import (
    FrameCache,
    Obs,
    RewardModel,
    RewardOutput,
    TransitionBatch,
)
from rewardlearn.vlm.configuration import VLMConfig
from rewardlearn.vlm.loading import ClipBundle, ClipWeightsError, load_clip
from rewardlearn.vlm.vlmrm import FrameScorer, VLMRMScorer

log = logging.getLogger("rewardlearn")

def load_vlm(clip_model: str, pretrained: str | None, device: str, precision: str,
             cache_dir: str | None, quick_gelu: bool | None, who: str) -> ClipBundle:
    """:func:`load_clip`, naming the config keys to change when the weights are missing."""
    try:
        return load_clip(clip_model, pretrained, device=device, precision=precision,
                         cache_dir=cache_dir, quick_gelu=quick_gelu)
    except ClipWeightsError as e:
        raise ClipWeightsError(
            f"reward={who}: {e}\nConfig keys: reward.model.clip_model, reward.model.pretrained, "
            "reward.model.cache_dir, reward.model.quick_gelu.") from e


def _rows_equal(a: Obs, b: Obs) -> np.ndarray:
    """Per-row equality of two batched observations (arrays or dicts of arrays)."""
    if isinstance(a, dict) and isinstance(b, dict):
        eq = np.ones(len(next(iter(a.values()))), dtype=bool)
        for k in a:
            eq &= _rows_equal(a[k], b[k])
        return eq
    a_arr, b_arr = np.asarray(a), np.asarray(b)
    if a_arr.shape != b_arr.shape:
        return np.zeros(len(a_arr), dtype=bool)
    return (a_arr == b_arr).reshape(len(a_arr), -1).all(axis=1)


def _copy_obs(obs: Obs) -> Obs:
    if isinstance(obs, dict):
        return {k: np.array(v, copy=True) for k, v in obs.items()}
    return np.array(obs, copy=True)


class StrideSchedule:
    """Which rows of each batch get a fresh score under a frame stride.

    A row is scored on the first step of an episode (after a done, or when its
    ``obs`` is not the previous call's ``next_obs``: a new env, or evaluation
    after training), every ``stride``-th step after it, and on the step that
    ends the episode.
    """

    def __init__(self, stride: int) -> None:
        if stride < 1:
            raise ValueError(f"frame_stride must be >= 1, got {stride}")
        self.stride = int(stride)
        self._age: np.ndarray | None = None
        self._prev_done: np.ndarray | None = None
        self._prev_next: Obs | None = None

    def __call__(self, batch: TransitionBatch) -> np.ndarray:
        """Boolean mask of the rows to score now."""
        n = len(batch)
        if self._age is None or len(self._age) != n or self._prev_next is None \
                or self._prev_done is None:
            new = np.ones(n, dtype=bool)
            age = np.zeros(n, dtype=np.int64)
        else:
            new = self._prev_done | ~_rows_equal(batch.obs, self._prev_next)
            age = self._age
        score = new | (age + 1 >= self.stride) | batch.dones if self.stride > 1 \
            else np.ones(n, dtype=bool)
        self._age = np.where(score, 0, age + 1)
        self._prev_done = batch.dones.copy()
        self._prev_next = _copy_obs(batch.next_obs) if self.stride > 1 else batch.next_obs
        return score


class VLMReward(RewardModel):
    """VLM-RM reward: CLIP score of each frame against goal (and baseline) prompts.

    Args:
        observation_space, action_space: the env's spaces (frames come from the wrapper).
        config: the :class:`~rewardlearn.vlm.configuration.VLMConfig` (prompts, alpha,
            CLIP model, encoding), or **kwargs: its fields.
    """

    name = "vlm"
    settings_class = VLMConfig
    needs_frames = True
    deferrable = True  # the score of a frame never changes
    defer_consumes_frames = True
    frame_cache: FrameCache

    def __init__(self, observation_space: gym.Space, action_space: gym.Space,
                 config: VLMConfig | None = None, **kwargs: Any) -> None:
        super().__init__(observation_space, action_space)
        self.cfg = cfg = VLMConfig.build(config, **kwargs)
        self.bundle = load_vlm(cfg.clip_model, cfg.pretrained, cfg.device, cfg.precision,
                               cfg.cache_dir, cfg.quick_gelu, self.name)
        self.frame_size = self.bundle.image_size
        self.scorer = FrameScorer(
            self.bundle, VLMRMScorer.from_prompts(self.bundle, cfg.goal, cfg.baseline, cfg.alpha),
            batch_size=cfg.batch_size, threads=cfg.threads)
        self.schedule = StrideSchedule(cfg.frame_stride)
        self._held: np.ndarray | None = None
        self._scores: list[np.ndarray] = []
        self._n_scores = 0
        self._pending: list[np.ndarray] = []
        self._rollout_ids: list[np.ndarray] = []
        self.transitions = 0
        self.encode_s = 0.0
        self.frame_cache = FrameCache()

    # -- scoring -------------------------------------------------------------------------

    def _flush(self) -> None:
        """Score the queued frames (one batched encode) and append them to the store."""
        if not self._pending:
            return
        frames = np.concatenate(self._pending)
        self._pending.clear()
        t = time.perf_counter()
        self._scores.append(self.scorer(frames))
        self.encode_s += time.perf_counter() - t

    def _store(self) -> np.ndarray:
        return np.concatenate(self._scores) if self._scores else np.zeros(0, np.float32)

    def _compact(self, scores: np.ndarray) -> None:
        """Keep only the scores that rows still hold (ids become the row numbers)."""
        assert self._held is not None
        held = scores[self._held]
        self._scores = [held]
        self._n_scores = len(held)
        self._held = np.arange(len(held))

    def _queue(self, batch: TransitionBatch) -> np.ndarray:
        """Queue the frames this step scores (the stride); returns that mask."""
        if batch.frames is None:
            raise RuntimeError("reward=vlm needs frames; wrap the envs in FrameCapture "
                               "(rewardlearn.env_factory.make_vec_env(..., frame_size=...))")
        n = len(batch)
        score = self.schedule(batch)
        if self._held is None or len(self._held) != n:
            self._held = np.zeros(n, dtype=np.int64)
        idx = np.flatnonzero(score)
        if len(idx):
            self._pending.append(np.array(batch.frames[idx], copy=True))
            self._held[idx] = self._n_scores + np.arange(len(idx))
            self._n_scores += len(idx)
        self.transitions += n
        return score

    def compute(self, batch: TransitionBatch) -> RewardOutput:
        if batch.frames is not None and batch.frame_ids is not None:
            return self._score_by_id(batch.frames, batch.frame_ids)
        score = self._queue(batch)
        self._flush()
        scores = self._store()
        assert self._held is not None
        rewards = scores[self._held]
        self._compact(scores)
        signals = {"vlm_score": rewards}
        if self.schedule.stride > 1:
            signals["vlm_fresh"] = score.astype(np.float32)
        return RewardOutput(rewards, signals)

    def defer_step(self, batch: TransitionBatch) -> None:
        """A deferred step: queue its frames, encoding whenever ``batch_size`` are queued."""
        self._queue(batch)
        assert self._held is not None
        self._rollout_ids.append(self._held.copy())
        if sum(len(p) for p in self._pending) >= self.scorer.batch_size:
            self._flush()

    def compute_deferred(self, batch: TransitionBatch) -> RewardOutput:
        """The deferred steps' scores, in their order (``batch``: them, frames dropped)."""
        self._flush()
        scores = self._store()
        ids = np.concatenate(self._rollout_ids) if self._rollout_ids else np.zeros(0, np.int64)
        rewards = scores[ids].astype(np.float32)
        if self._held is not None:
            self._compact(scores)
        self._rollout_ids.clear()
        return RewardOutput(rewards, {"vlm_score": rewards})

    def _score_by_id(self, frames: np.ndarray, ids: np.ndarray) -> RewardOutput:
        """Every row scored at once, each distinct frame id encoded once (evaluation queries)."""
        t = time.perf_counter()
        rewards = self.frame_cache.rows(ids, frames, self.scorer).astype(np.float32)
        self.encode_s += time.perf_counter() - t
        self.transitions += len(rewards)
        return RewardOutput(rewards, {"vlm_score": rewards})

    # -- bookkeeping -----------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        frames = self.scorer.frames_scored
        return {
            **self.scorer.describe(),
            "goal": self.cfg.goal, "baseline": self.cfg.baseline,
            "alpha": self.cfg.alpha, "frame_stride": self.schedule.stride,
            "transitions": self.transitions, "frames_scored": frames,
            "encode_s": round(self.encode_s, 2),
            "encode_frames_per_s": round(frames / self.encode_s, 2) if self.encode_s else None,
        }

__all__ = ["StrideSchedule", "VLMReward", "load_vlm"]
