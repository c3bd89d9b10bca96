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
* ``defer=rollout`` (on-policy agents): frames are queued and scored in
  batches of ``batch_size`` while the rollout is collected, and the rollout's
  rewards are written into PPO's buffer before its advantages are computed.
  The step-time reward is then 0, so the training log's
  ``rollout/ep_learned_rew_mean`` reads 0; ``reward/vlm_score_mean`` has the
  scores. Evaluation always scores at once.

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
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

from rewardlearn.rewards.base import (
    FrameCache,
    Obs,
    RewardModel,
    RewardOutput,
    TransitionBatch,
)
from rewardlearn.vlm.loading import ClipBundle, ClipWeightsError, load_clip
from rewardlearn.vlm.vlmrm import FrameScorer, VLMRMScorer, as_prompts
from rewardlearn.wrappers.normalize import scaled_change
from rewardlearn.wrappers.vec import find_reward_wrapper, write_rollout_rewards

log = logging.getLogger("rewardlearn")

DEFER_MODES = ("none", "rollout")


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
        goal: goal prompt or list of prompts (embeddings averaged, not renormalised).
        baseline: baseline prompt(s); needed when ``alpha > 0``.
        alpha: projection onto the goal-baseline direction, in ``[0, 1]``;
            ``0`` is plain CLIP cosine similarity (up to an affine map).
        clip_model: open_clip model name, ``local-dir:/path`` or ``hf-hub:org/repo``.
        pretrained: open_clip tag, weights file, or ``None`` (random weights).
        device: ``auto``, ``cpu``, ``cuda``...
        precision: ``auto`` (fp16 autocast on CUDA; bf16 on CPUs with native bf16,
            else fp32), ``fp32``, ``fp16``, ``bf16``.
        threads: CPU threads for encoding; ``None`` measures 1 thread vs all cores per
            batch size and uses the faster (:class:`~rewardlearn.vlm.loading.ThreadTuner`).
        frame_stride: score every ``k``-th step and hold the score in between.
        batch_size: images per forward pass (and per flush with ``defer=rollout``).
        defer: ``none`` (score every step) or ``rollout`` (on-policy agents).
        cache_dir: download/cache folder for weights.
        quick_gelu: force QuickGELU (OpenAI weights from a file); ``None`` decides.
    """

    name = "vlm"
    needs_frames = True
    frame_cache: FrameCache

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        goal: str | Sequence[str],
        baseline: str | Sequence[str] | None = None,
        alpha: float = 0.5,
        clip_model: str = "ViT-bigG-14",
        pretrained: str | None = "laion2b_s39b_b160k",
        device: str = "auto",
        precision: str = "auto",
        threads: int | None = None,
        frame_stride: int = 1,
        batch_size: int = 64,
        defer: str = "none",
        cache_dir: str | None = None,
        quick_gelu: bool | None = None,
    ) -> None:
        super().__init__(observation_space, action_space)
        if defer not in DEFER_MODES:
            raise ValueError(f"unknown defer {defer!r}; choose from {', '.join(DEFER_MODES)}")
        goals, bases = as_prompts(goal), as_prompts(baseline)
        if not goals:
            raise ValueError("reward=vlm needs a goal prompt, e.g. "
                             "reward.goal='a humanoid robot kneeling'")
        if alpha > 0 and not bases:
            raise ValueError(f"alpha={alpha} needs baseline prompts (reward.baseline='a humanoid "
                             "robot'), or set reward.alpha=0 for plain CLIP similarity")
        self._config: dict[str, Any] = dict(
            goal=goals, baseline=bases, alpha=float(alpha), clip_model=clip_model,
            pretrained=pretrained, device=device, precision=precision, threads=threads,
            frame_stride=int(frame_stride), batch_size=int(batch_size), defer=defer,
            cache_dir=cache_dir, quick_gelu=quick_gelu)
        self.bundle = load_vlm(clip_model, pretrained, device, precision, cache_dir, quick_gelu,
                               self.name)
        self.frame_size = self.bundle.image_size
        self.scorer = FrameScorer(self.bundle,
                                  VLMRMScorer.from_prompts(self.bundle, goals, bases, alpha),
                                  batch_size=batch_size, threads=threads)
        self.defer = defer
        self.schedule = StrideSchedule(frame_stride)
        self.deferring = False
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

    def compute(self, batch: TransitionBatch) -> RewardOutput:
        if batch.frames is None:
            raise RuntimeError("reward=vlm needs frames; wrap the envs in FrameCapture "
                               "(rewardlearn.env_factory.make_vec_env(..., frame_size=...))")
        if batch.frame_ids is not None:
            return self._score_by_id(batch.frames, batch.frame_ids)
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
        if self.deferring:
            self._rollout_ids.append(self._held.copy())
            if sum(len(p) for p in self._pending) >= self.scorer.batch_size:
                self._flush()
            return RewardOutput(np.zeros(n, np.float32))
        self._flush()
        scores = self._store()
        rewards = scores[self._held]
        self._compact(scores)
        signals = {"vlm_score": rewards}
        if self.schedule.stride > 1:
            signals["vlm_fresh"] = score.astype(np.float32)
        return RewardOutput(rewards, signals)

    def _score_by_id(self, frames: np.ndarray, ids: np.ndarray) -> RewardOutput:
        """Every row scored at once, each distinct frame id encoded once (evaluation queries)."""
        t = time.perf_counter()
        rewards = self.frame_cache.rows(ids, frames, self.scorer).astype(np.float32)
        self.encode_s += time.perf_counter() - t
        self.transitions += len(rewards)
        return RewardOutput(rewards, {"vlm_score": rewards})

    # -- deferred (rollout) scoring --------------------------------------------------------

    def begin_rollout(self) -> None:
        """Queue frames from now on; :meth:`end_rollout` scores them."""
        self.deferring = True
        self._rollout_ids.clear()

    def end_rollout(self) -> np.ndarray:
        """Score what is queued; ``(n_steps, n_envs)`` rewards of the rollout's transitions."""
        self._flush()
        scores = self._store()
        rewards = scores[np.stack(self._rollout_ids)] if self._rollout_ids \
            else np.zeros((0, 0), np.float32)
        if self._held is not None:
            self._compact(scores)
        self._rollout_ids.clear()
        return rewards

    def stop_deferring(self) -> None:
        """Back to scoring at once (evaluation after training)."""
        if self.deferring:
            self.end_rollout()
        self.deferring = False

    def callbacks(self) -> list[Any]:
        return [VLMRolloutCallback(self)] if self.defer == "rollout" else []

    # -- bookkeeping -----------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        frames = self.scorer.frames_scored
        return {
            **self.scorer.describe(),
            "goal": self._config["goal"], "baseline": self._config["baseline"],
            "alpha": self._config["alpha"], "frame_stride": self.schedule.stride,
            "transitions": self.transitions, "frames_scored": frames,
            "encode_s": round(self.encode_s, 2),
            "encode_frames_per_s": round(frames / self.encode_s, 2) if self.encode_s else None,
        }

    def config(self) -> dict[str, Any]:
        return dict(self._config)


class VLMRolloutCallback(BaseCallback):
    """``defer=rollout``: score each PPO rollout in batches before its advantages are used."""

    def __init__(self, reward: VLMReward, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.reward = reward
        self._scale = 1.0

    def _on_training_start(self) -> None:
        if not isinstance(self.model, OnPolicyAlgorithm):
            raise ValueError("reward.model.defer=rollout needs an on-policy agent (agent=ppo); "
                             "off-policy agents store each reward when the step happens")
        wrapper = find_reward_wrapper(self.training_env)
        if wrapper is None:
            raise RuntimeError("defer=rollout needs the env wrapped in RewardVecEnvWrapper")
        self._scale = 1.0 if wrapper.mode == "replace" else wrapper.weight

    def _on_rollout_start(self) -> None:
        self.reward.begin_rollout()

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        rewards = self.reward.end_rollout()
        assert isinstance(self.model, OnPolicyAlgorithm)
        buf = self.model.rollout_buffer
        if rewards.shape != buf.rewards.shape:
            log.warning("defer=rollout: %s scores for a %s buffer; rollout left unscored",
                        rewards.shape, buf.rewards.shape)
            return
        write_rollout_rewards(self.model, scaled_change(self.model, self._scale * rewards),
                              self.locals["values"], self.locals["dones"])
        self.logger.record("reward/vlm_score_mean", float(rewards.mean()))

    def _on_training_end(self) -> None:
        self.reward.stop_deferring()


__all__ = ["StrideSchedule", "VLMReward", "VLMRolloutCallback", "load_vlm"]
