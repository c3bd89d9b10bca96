"""``reward=vlm_distilled``: the VLM-RM reward distilled into a cheap reward model.

ONI-style (2024) asynchronous labelling: during training a random
``label_fraction`` of the transitions is handed to a background thread that
scores their frames with the VLM (:class:`AsyncLabeler`); the agent's step
never waits for it (when the VLM falls behind, the oldest queued frames are
dropped and counted). A cheap model is fitted to those scores every
``train_every`` steps (in the training loop, a few hundred Adam steps) and
gives the reward on *every* step: by default a small CNN on the frame
downsampled to ``pixel_size`` (``inputs=pixels``; it sees what the VLM sees),
or an MLP on the next observation's state (``inputs=state``). A
``heldout_fraction`` of the labels is kept out of training to report the
Spearman correlation between the distilled and the VLM reward.

What the agent gets: 0 until ``min_labels`` labels have been fitted, then the
distilled reward. After each fit the rewards the agent learns from are
recomputed with the new model: PPO's current rollout (before its advantages),
or SAC's whole replay buffer (``inputs=state`` and ``reward.mode=replace``
only; otherwise SAC keeps the reward of the model version at each step).

With frame ids in the batch (reward evaluation), the pixel model's reward of
each distinct frame is computed once until
:meth:`~VLMDistilledReward.clear_frame_cache` (and after each fit).

Example (random-weight CLIP; labels arrive in the background):
    >>> import gymnasium as gym
    >>> from rewardlearn.vlm.distilled import VLMDistilledReward
    >>> env = gym.make("Pendulum-v1")
    >>> r = VLMDistilledReward(env.observation_space, env.action_space, goal="a pendulum upright",
    ...                        alpha=0.0, clip_model="ViT-B-32", pretrained=None, device="cpu")
    >>> r.frame_size
    (224, 224)
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from torch import nn

from rewardlearn.rewards.base import (
    FrameCache,
    Obs,
    RewardModel,
    RewardOutput,
    TransitionBatch,
)
from rewardlearn.rewards.features import flat_dim, flatten_obs
from rewardlearn.rewards.mlp import build_mlp
from rewardlearn.stats import spearman
from rewardlearn.vlm.configuration import VLMDistilledConfig
from rewardlearn.vlm.reward import load_vlm as _load_vlm
from rewardlearn.vlm.vlmrm import FrameScorer, VLMRMScorer
from rewardlearn.wrappers.relabel import relabel_replay, relabel_rollout
from rewardlearn.wrappers.vec import find_reward_wrapper

log = logging.getLogger("rewardlearn")


class AsyncLabeler:
    """Scores queued frames with the VLM in a background thread; :meth:`offer` never blocks.

    Args:
        scorer: frames -> VLM scores.
        batch_size: frames per VLM call.
        max_pending: queue bound; beyond it the oldest queued frames are dropped.
        threads: torch CPU threads of the labelling thread (``None``: leave as is).
    """

    def __init__(self, scorer: FrameScorer, batch_size: int = 32, max_pending: int = 512,
                 threads: int | None = 1) -> None:
        self.scorer = scorer
        self.batch_size = int(batch_size)
        self.threads = threads
        self._queue: deque[tuple[np.ndarray, np.ndarray]] = deque()
        self.max_pending = int(max_pending)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._x: list[np.ndarray] = []
        self._y: list[np.ndarray] = []
        self.offered = 0
        self.dropped = 0
        self.error: BaseException | None = None

    def start(self) -> None:
        """Start the labelling thread (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="vlm-labeler", daemon=True)
            self._thread.start()

    def offer(self, features: np.ndarray, frames: np.ndarray) -> None:
        """Queue ``(features, frame)`` pairs for labelling; returns at once."""
        with self._lock:
            for x, f in zip(features, frames, strict=True):
                self._queue.append((np.array(x, np.float32), np.array(f, copy=True)))
            self.offered += len(features)
            while len(self._queue) > self.max_pending:
                self._queue.popleft()
                self.dropped += 1
        self._wake.set()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def _label_one_batch(self) -> bool:
        with self._lock:
            items = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
        if not items:
            return False
        scores = self.scorer(np.stack([f for _, f in items]))
        with self._lock:
            self._x.append(np.stack([x for x, _ in items]))
            self._y.append(scores)
        return True

    def _run(self) -> None:
        if self.threads is not None:
            torch.set_num_threads(max(1, int(self.threads)))
        try:
            while not self._stop.is_set():
                if not self._label_one_batch():
                    self._wake.wait(timeout=0.1)
                    self._wake.clear()
        except BaseException as e:
            self.error = e
            log.exception("VLM labelling thread failed")

    def drain(self) -> None:
        """Label everything queued, in the calling thread (tests, benchmarks)."""
        while self._label_one_batch():
            pass

    def take(self) -> tuple[np.ndarray, np.ndarray]:
        """Labels that arrived since the last call: features ``(n, D)`` and scores ``(n,)``."""
        with self._lock:
            xs, ys = self._x, self._y
            self._x, self._y = [], []
        if not xs:
            return np.zeros((0, 0), np.float32), np.zeros(0, np.float32)
        return np.concatenate(xs), np.concatenate(ys)

    def stop(self) -> None:
        """Stop the thread (what is still queued is discarded)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._lock:
            self._queue.clear()


def downsample_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 ``(N, H, W, 3)`` frames -> uint8 ``(N, 3, size, size)`` by area averaging."""
    x = torch.as_tensor(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="area")
    return x.round_().clamp_(0, 255).to(torch.uint8).numpy()


class DistilledNet(nn.Module):
    """Predicts standardised VLM scores from standardised inputs.

    ``pixel_size=None``: an MLP on state features ``(N, dim)``; otherwise a
    small CNN (three strided convolutions, 4x4 pooling, MLP head) on uint8
    frames ``(N, 3, pixel_size, pixel_size)``. Input and target statistics
    are buffers, set by :meth:`set_stats`, so a checkpoint is self-contained.
    """

    x_mean: torch.Tensor
    x_std: torch.Tensor
    y_mean: torch.Tensor
    y_std: torch.Tensor

    def __init__(self, dim: int, hidden_sizes: Sequence[int], pixel_size: int | None = None
                 ) -> None:
        super().__init__()
        self.pixels = pixel_size is not None
        if self.pixel_size_ok(pixel_size):
            self.net: nn.Module = nn.Sequential(
                nn.Conv2d(3, 32, 5, 2, 2), nn.SiLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.SiLU(),
                nn.Conv2d(64, 64, 3, 2, 1), nn.SiLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                build_mlp(64 * 16, hidden_sizes, "silu", None))
            shape: tuple[int, ...] = (3, 1, 1)
        else:
            self.net = build_mlp(dim, hidden_sizes, "silu", None)
            shape = (dim,)
        self.register_buffer("x_mean", torch.zeros(shape))
        self.register_buffer("x_std", torch.ones(shape))
        self.register_buffer("y_mean", torch.zeros(()))
        self.register_buffer("y_std", torch.ones(()))

    @staticmethod
    def pixel_size_ok(pixel_size: int | None) -> bool:
        if pixel_size is None:
            return False
        if pixel_size < 16:
            raise ValueError(f"pixel_size must be >= 16, got {pixel_size}")
        return True

    def as_input(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Float tensor of raw inputs (uint8 frames scaled to [0, 1])."""
        t = torch.as_tensor(x)
        return t.float() / 255.0 if self.pixels else t.float()

    @torch.no_grad()
    def set_stats(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Input (per feature or per channel) and target standardisation from training data."""
        dims = (0, 2, 3) if self.pixels else (0,)
        self.x_mean.copy_(x.mean(dims).reshape(self.x_mean.shape))
        self.x_std.copy_(x.std(dims).clamp_min(1e-6).reshape(self.x_std.shape))
        self.y_mean.copy_(y.mean())
        self.y_std.copy_(y.std().clamp_min(1e-8))

    def standardised(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.x_mean) / self.x_std).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.standardised(x) * self.y_std + self.y_mean




class VLMDistilledReward(RewardModel):
    """VLM-RM labels from a background thread, distilled into a cheap reward model.

    Args:
        observation_space, action_space: the env's spaces.
        config: the :class:`~rewardlearn.vlm.configuration.VLMDistilledConfig` (prompts,
            VLM, labelling share, distilled model and its fits), or **kwargs: its fields.
    """

    name = "vlm_distilled"
    settings_class = VLMDistilledConfig
    needs_frames = True
    frame_cache: FrameCache

    def __init__(self, observation_space: gym.Space, action_space: gym.Space,
                 config: VLMDistilledConfig | None = None, **kwargs: Any) -> None:
        super().__init__(observation_space, action_space)
        self.cfg = self.settings = cfg = VLMDistilledConfig.build(config, **kwargs)
        self.pixels = cfg.inputs == "pixels"
        self.pixel_size = int(cfg.pixel_size)
        if cfg.seed is not None:
            torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.net = DistilledNet(0 if self.pixels else flat_dim(observation_space),
                                cfg.hidden_sizes, self.pixel_size if self.pixels else None)
        self.optim = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        self.fitted = False
        self.frame_cache = FrameCache()
        self.labeler: AsyncLabeler | None = None
        if cfg.load_vlm:
            bundle = _load_vlm(cfg.clip_model, cfg.pretrained, cfg.device, cfg.precision,
                               cfg.cache_dir, cfg.quick_gelu, self.name)
            self.frame_size = bundle.image_size
            scorer = FrameScorer(bundle, VLMRMScorer.from_prompts(bundle, cfg.goal,
                                                                  cfg.baseline, cfg.alpha),
                                 batch_size=cfg.vlm_batch_size, threads=cfg.vlm_threads)
            self.labeler = AsyncLabeler(scorer, cfg.vlm_batch_size, cfg.max_pending,
                                        cfg.vlm_threads)
        elif not self.pixels:
            self.needs_frames = False
        self.train_x: list[np.ndarray] = []
        self.train_y: list[np.ndarray] = []
        self.held_x: list[np.ndarray] = []
        self.held_y: list[np.ndarray] = []
        self.steps_seen = 0
        self.history: list[dict[str, float]] = []
        self._rollout_x: list[np.ndarray] = []
        self._rollout_r: list[np.ndarray] = []

    # -- reward --------------------------------------------------------------------------

    def state_features(self, next_obs: Obs) -> np.ndarray:
        """``(B, D)`` float32 state features of the next observations."""
        return flatten_obs(self.observation_space, next_obs)

    def features(self, batch: TransitionBatch) -> np.ndarray:
        """The distilled model's inputs: low-res uint8 frames or state features."""
        if not self.pixels:
            return self.state_features(batch.next_obs)
        if batch.frames is None:
            raise RuntimeError("reward=vlm_distilled with inputs=pixels needs frames; wrap the "
                               "envs in FrameCapture (make_vec_env(..., frame_size=...))")
        return downsample_frames(batch.frames, self.pixel_size)

    @torch.no_grad()
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Distilled rewards for model inputs (0 before the first fit)."""
        if not self.fitted:
            return np.zeros(len(x), np.float32)
        out = np.empty(len(x), np.float32)
        for s in range(0, len(x), 4096):
            out[s:s + 4096] = self.net(self.net.as_input(x[s:s + 4096])).numpy()
        return out

    def compute(self, batch: TransitionBatch) -> RewardOutput:
        if self.pixels and batch.frames is not None and batch.frame_ids is not None:
            r = self.frame_cache.rows(batch.frame_ids, batch.frames, self._predict_frames)
        else:
            r = self.predict(self.features(batch))
        return RewardOutput(r, {"vlm_score_distilled": r})

    def _predict_frames(self, frames: np.ndarray) -> np.ndarray:
        """Distilled rewards of full-size frames (downsampled first)."""
        return self.predict(downsample_frames(frames, self.pixel_size))

    def observe(self, batch: TransitionBatch, rewards: np.ndarray) -> None:
        x = self.features(batch)
        self.steps_seen += len(batch)
        self._rollout_x.append(x)
        self._rollout_r.append(np.asarray(rewards, np.float32))
        if self.labeler is None or batch.frames is None:
            return
        if self.labeler.error is not None:
            raise RuntimeError("the VLM labelling thread failed") from self.labeler.error
        self.labeler.start()
        pick = np.flatnonzero(self.rng.random(len(batch)) < self.settings.label_fraction)
        if len(pick):
            self.labeler.offer(x[pick], batch.frames[pick])

    # -- distillation --------------------------------------------------------------------

    def collect_labels(self) -> int:
        """Move labels from the labeller into the training and held-out sets; returns how many."""
        if self.labeler is None:
            return 0
        x, y = self.labeler.take()
        if len(y) == 0:
            return 0
        held = self.rng.random(len(y)) < self.settings.heldout_fraction
        self.train_x.append(x[~held])
        self.train_y.append(y[~held])
        self.held_x.append(x[held])
        self.held_y.append(y[held])
        cap = self.settings.max_labels
        if self.n_train > cap:
            self.train_x = [np.concatenate(self.train_x)[-cap:]]
            self.train_y = [np.concatenate(self.train_y)[-cap:]]
        return len(y)

    @property
    def n_train(self) -> int:
        return int(sum(len(y) for y in self.train_y))

    def fit(self) -> dict[str, float] | None:
        """One fit on all training labels so far; ``None`` below ``min_labels``."""
        self.collect_labels()
        if self.n_train < max(2, self.settings.min_labels):
            return None
        x = self.net.as_input(np.concatenate(self.train_x))
        y = torch.as_tensor(np.concatenate(self.train_y))
        net = self.net
        net.set_stats(x, y)
        target = (y - net.y_mean) / net.y_std
        bs = min(self.settings.train_batch_size, len(y))
        gen = torch.Generator().manual_seed(int(self.rng.integers(2**31)))
        loss = torch.zeros(())
        for _ in range(self.settings.train_steps):
            idx = torch.randint(len(y), (bs,), generator=gen)
            loss = torch.mean((net.standardised(x[idx]) - target[idx]) ** 2)
            self.optim.zero_grad()
            loss.backward()
            self.optim.step()
        self.fitted = True
        self.frame_cache.clear()  # cached rewards came from the previous weights
        metrics = {"labels_train": float(len(y)), "loss": loss.item(),
                   **self.heldout_metrics(), **self.call_metrics()}
        self.history.append(metrics)
        return metrics

    def heldout_metrics(self) -> dict[str, float]:
        """Spearman (and size) of distilled vs VLM scores on the held-out labels."""
        if not self.held_y or sum(len(y) for y in self.held_y) < 3:
            return {}
        y = np.concatenate(self.held_y)
        pred = self.predict(np.concatenate(self.held_x))
        return {"heldout_spearman": spearman(pred, y), "heldout_labels": float(len(y))}

    def call_metrics(self) -> dict[str, float]:
        """VLM calls made against transitions seen."""
        calls = self.labeler.scorer.frames_scored if self.labeler is not None else 0
        return {"vlm_calls": float(calls), "steps_seen": float(self.steps_seen),
                "vlm_calls_saved": 1.0 - calls / self.steps_seen if self.steps_seen else 0.0,
                "labels_dropped": float(self.labeler.dropped if self.labeler else 0)}

    def callbacks(self) -> list[Any]:
        return [DistillCallback(self)] if self.labeler is not None else []

    def stop(self) -> None:
        """Stop the labelling thread."""
        if self.labeler is not None:
            self.labeler.stop()

    # -- bookkeeping ---------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        last = self.history[-1] if self.history else {}
        return {**self.call_metrics(), "inputs": self.settings.inputs,
                "fits": len(self.history), "labels_train": self.n_train,
                "heldout_spearman": last.get("heldout_spearman"),
                "heldout_labels": last.get("heldout_labels")}

    def config(self) -> dict[str, Any]:
        return self.cfg.to_dict()

    def state_dict(self) -> dict[str, Any]:
        return {"net": {k: v.cpu() for k, v in self.net.state_dict().items()},
                "fitted": self.fitted, "history": list(self.history),
                "frame_size": list(self.frame_size)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.fitted = bool(state.get("fitted", True))
        self.frame_cache.clear()
        self.history = list(state.get("history", []))
        if "frame_size" in state:  # frames at the size the model was trained on
            h, w = state["frame_size"]
            self.frame_size = (int(h), int(w))


class DistillCallback(BaseCallback):
    """Fits the distilled model on schedule and refreshes the rewards the agent learns from."""

    def __init__(self, reward: VLMDistilledReward, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.reward = reward
        self.next_fit_at = 0
        self._scale = 1.0
        self._can_relabel_buffer = True

    def _on_training_start(self) -> None:
        wrapper = find_reward_wrapper(self.training_env)
        if wrapper is None:
            raise RuntimeError("reward=vlm_distilled needs the env wrapped in RewardVecEnvWrapper")
        self._scale = 1.0 if wrapper.mode == "replace" else wrapper.weight
        self._can_relabel_buffer = wrapper.mode == "replace" and not self.reward.pixels
        if isinstance(self.model, OffPolicyAlgorithm) and not self._can_relabel_buffer:
            log.warning("reward=vlm_distilled with an off-policy agent and %s: the replay buffer "
                        "keeps the reward of the model version at each step (no relabelling; "
                        "that needs inputs=state and mode=replace)",
                        "inputs=pixels" if self.reward.pixels else "mode=add")
        self.next_fit_at = self.num_timesteps + self.reward.settings.train_every
        if self.reward.labeler is not None:
            self.reward.labeler.start()

    def _on_rollout_start(self) -> None:
        self.reward._rollout_x.clear()
        self.reward._rollout_r.clear()

    def _fit_due(self) -> bool:
        if self.num_timesteps < self.next_fit_at:
            return False
        self.next_fit_at = self.num_timesteps + self.reward.settings.train_every
        metrics = self.reward.fit()
        if metrics is None:
            return False
        for k, v in metrics.items():
            self.logger.record(f"reward/{k}", v)
        log.info("distilled VLM reward: %d labels, held-out spearman %.3f, VLM calls saved %.1f%%",
                 int(metrics["labels_train"]), metrics.get("heldout_spearman", float("nan")),
                 100 * metrics["vlm_calls_saved"])
        return True

    def _on_step(self) -> bool:
        if isinstance(self.model, OffPolicyAlgorithm) and self._fit_due() \
                and self._can_relabel_buffer:
            self._relabel_replay_buffer(self.model)
        return True

    def _on_rollout_end(self) -> None:
        if isinstance(self.model, OnPolicyAlgorithm) and self._fit_due():
            self._relabel_rollout(self.model)

    def _relabel_rollout(self, agent: OnPolicyAlgorithm) -> None:
        xs, old = self.reward._rollout_x, self.reward._rollout_r
        record = (np.stack(xs), np.stack(old)) if xs else None
        relabel_rollout(agent, record, self.reward.predict, self._scale,
                        self.locals["values"], self.locals["dones"])

    def _relabel_replay_buffer(self, agent: OffPolicyAlgorithm) -> None:
        relabel_replay(agent, lambda _obs, _acts, nxt, _term: self.reward.predict(
            self.reward.state_features(nxt)))

    def _on_training_end(self) -> None:
        self.reward.stop()
        self.reward.fit()


__all__ = ["AsyncLabeler", "DistillCallback", "DistilledNet", "VLMDistilledReward",
           "downsample_frames"]
