"""The fitted perceptual reward model: encoder, per-step feature statistics, goal embedding.

A :class:`PerceptualModel` maps observations (and frames) to

- per-step scores ``score_i`` in (0, 1] (Gaussian-style, on the step's selected features),
- the current step (the best-scoring one),
- the reward: step scores weighted so later steps count more, in [0, 1],
- the goal similarity (closeness to the goal embedding).

It saves with its encoder's spec and trained weights, the state/action sizes of
the demos it was fitted on (a model is refused on an env with other sizes), and
the demos' frame size (rollout frames are rendered at that size).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rewardlearn.encoders import EmbeddingCache, Encoder, as_encoder, build_encoder
from rewardlearn.perceptual.configuration import PerceptualConfig
from rewardlearn.perceptual.steps import align_to_means, step_labels
from rewardlearn.rewards.base import Obs
from rewardlearn.rewards.checkpoint import SpaceMismatchError

FORMAT = "rewardlearn.perceptual/1"


@dataclass
class PerceptualPrediction:
    """Per-frame outputs: ``scores`` ``(N, k)``, ``step``, ``reward``, ``goal_similarity``."""

    scores: np.ndarray
    step: np.ndarray
    reward: np.ndarray
    goal_similarity: np.ndarray


@dataclass
class StepModel:
    """Selected feature indices, means and spreads per step (``(k, M)`` each)."""

    features: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray
    weights: np.ndarray
    means: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    """``(k, D)`` step means of all standardised features (for monotone segmentation)."""

    @property
    def k(self) -> int:
        return len(self.weights)


def flat_dim(space: gym.Space) -> int:
    """Size of the state part of a space (a Dict's ``state`` entry)."""
    if isinstance(space, gym.spaces.Dict):
        if "state" not in space.spaces:
            raise SpaceMismatchError(f"observation space {space} has no 'state' entry")
        space = space["state"]
    if space.shape is None:
        raise SpaceMismatchError(f"space {space} has no shape")
    return int(np.prod(space.shape))


class PerceptualModel:
    """A fitted perceptual reward (see :func:`rewardlearn.perceptual.training.fit_perceptual`).

    Args:
        encoder: the encoder (trained if it learns from demos).
        config: the settings it was fitted with.
        mean, std: feature standardisation.
        steps: the per-step model.
        goal: standardised goal embedding ``(D,)`` (for ``l2``) and the raw one (``cosine``).
        state_dim, action_dim: sizes of the demos' states and actions.
        frame_size: ``(height, width)`` of the demos' frames (``None``: no frames).
        metrics: fitting and held-out figures.
    """

    def __init__(self, encoder: Encoder, config: PerceptualConfig, mean: np.ndarray,
                 std: np.ndarray, steps: StepModel, goal_z: np.ndarray, goal_raw: np.ndarray,
                 state_dim: int, action_dim: int, frame_size: tuple[int, int] | None,
                 metrics: dict[str, Any] | None = None,
                 subtask_names: tuple[str, ...] = ()) -> None:
        self.encoder = encoder
        self.cache = EmbeddingCache(encoder)
        self.config = config
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        self.steps = steps
        self.goal_z = np.asarray(goal_z, dtype=np.float64)
        self.goal_raw = np.asarray(goal_raw, dtype=np.float64)
        self.state_dim = int(state_dim)
        self.action_dim = int(action_dim)
        self.demo_frame_size = None if frame_size is None else (int(frame_size[0]),
                                                                int(frame_size[1]))
        self.metrics: dict[str, Any] = dict(metrics or {})
        self.subtask_names = tuple(subtask_names)

    # ------------------------------------------------------------------ inputs
    @property
    def needs_frames(self) -> bool:
        """The encoder reads frames."""
        return self.encoder.needs_frames

    @property
    def frame_size(self) -> tuple[int, int]:
        """Size to render rollout frames at: the demos' frame size."""
        return self.demo_frame_size or self.encoder.frame_size

    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space,
                     where: str = "perceptual model") -> None:
        """Refuse an env whose state or action size differs from the demos'."""
        obs_dim, act_dim = flat_dim(observation_space), flat_dim(action_space)
        if obs_dim != self.state_dim or act_dim != self.action_dim:
            raise SpaceMismatchError(
                f"{where} was fitted on demos with {self.state_dim} state and "
                f"{self.action_dim} action dims; this env has {obs_dim} and {act_dim} "
                "(collect demos of this env)")

    def embed(self, obs: Obs | None, frames: np.ndarray | None = None) -> np.ndarray:
        """Raw encoder features ``(N, D)`` (frames cached per frame)."""
        if self.needs_frames and frames is None:
            raise ValueError(f"this perceptual model's encoder ({self.encoder.name}) reads "
                             "frames, but none were given")
        return np.asarray(self.cache.embed(obs, frames), dtype=np.float64)

    def standardize(self, emb: np.ndarray) -> np.ndarray:
        """Features standardised with the demos' statistics."""
        return (np.asarray(emb, dtype=np.float64) - self.mean) / self.std

    # ------------------------------------------------------------------ outputs
    def step_log_scores(self, z: np.ndarray) -> np.ndarray:
        """``(N, k)`` log of each step's Gaussian-style score on its selected features
        (deviations capped at ``config.max_deviation`` sigmas)."""
        st = self.steps
        sel = z[:, st.features]                                   # (N, k, M)
        dev = np.abs(sel - st.mu[None]) / st.sigma[None]
        if self.config.max_deviation is not None:
            dev = np.minimum(dev, self.config.max_deviation)
        return -0.5 * (dev ** 2).mean(-1)

    def step_scores(self, z: np.ndarray) -> np.ndarray:
        """``(N, k)`` Gaussian-style score of each step, in (0, 1]."""
        return np.exp(self.step_log_scores(z))

    def reward_from_log_scores(self, log_scores: np.ndarray) -> np.ndarray:
        """``sum_i w_i score_i / sum_i w_i`` (sum), ``sum_i w_i p_i / max w`` (normalized),
        or that times ``max_i score_i`` (gated)."""
        w = self.steps.weights
        if self.config.aggregate == "sum":
            return np.exp(log_scores) @ w / w.sum()
        best = log_scores.max(1, keepdims=True)
        p = np.exp(log_scores - best)
        p /= p.sum(1, keepdims=True)
        value = p @ w / w.max()
        if self.config.aggregate == "gated":
            value = value * np.exp(best[:, 0])
        return value

    def goal_similarity(self, emb: np.ndarray) -> np.ndarray:
        """``-||z - z_goal|| / sqrt(D)`` (``l2``, each feature's gap capped at
        ``config.max_deviation`` demo standard deviations) or cosine similarity of raw
        embeddings."""
        if self.config.goal_metric == "cosine":
            g = self.goal_raw
            norms = np.linalg.norm(emb, axis=1) * np.linalg.norm(g) + 1e-12
            return (emb @ g) / norms
        z = self.standardize(emb)
        gap = z - self.goal_z
        if self.config.max_deviation is not None:
            gap = np.clip(gap, -self.config.max_deviation, self.config.max_deviation)
        return -np.linalg.norm(gap, axis=1) / np.sqrt(z.shape[1])

    def predict(self, obs: Obs | None, frames: np.ndarray | None = None
                ) -> PerceptualPrediction:
        """Scores, current step, reward and goal similarity of a batch."""
        emb = self.embed(obs, frames)
        return self.predict_embedded(emb)

    def predict_embedded(self, emb: np.ndarray) -> PerceptualPrediction:
        """:meth:`predict` from precomputed raw features."""
        log_scores = self.step_log_scores(self.standardize(emb))
        return PerceptualPrediction(np.exp(log_scores), log_scores.argmax(1),
                                    self.reward_from_log_scores(log_scores),
                                    self.goal_similarity(emb))

    def segment(self, emb: np.ndarray) -> np.ndarray:
        """Monotone split of one episode's features into the model's steps (cuts)."""
        k = self.steps.k
        min_len = min(self.config.min_step_len, max(1, len(emb) // k))
        return align_to_means(self.standardize(emb), self.steps.means, min_len)[0]

    def segment_labels(self, emb: np.ndarray) -> np.ndarray:
        """Per-frame step of :meth:`segment`."""
        return step_labels(self.segment(emb), len(emb))

    # ------------------------------------------------------------------ saving
    def payload(self) -> dict[str, Any]:
        """Everything needed to rebuild the model (torch-saveable)."""
        st = self.steps
        return {
            "format": FORMAT,
            "encoder": self.encoder.spec(),
            "encoder_state": self.encoder.state_dict(),
            "config": self.config.to_dict(),
            "mean": self.mean, "std": self.std,
            "steps": {"features": st.features, "mu": st.mu, "sigma": st.sigma,
                      "weights": st.weights, "means": st.means},
            "goal_z": self.goal_z, "goal_raw": self.goal_raw,
            "state_dim": self.state_dim, "action_dim": self.action_dim,
            "frame_size": None if self.demo_frame_size is None else list(self.demo_frame_size),
            "metrics": self.metrics,
            "subtask_names": list(self.subtask_names),
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> PerceptualModel:
        """Rebuild from :meth:`payload`."""
        if payload.get("format") != FORMAT:
            raise ValueError(f"not a perceptual model (format {payload.get('format')!r}, "
                             f"expected {FORMAT!r})")
        built = build_encoder(payload["encoder"])
        if built is None:
            raise ValueError("perceptual model without an encoder")
        encoder = as_encoder(built)
        encoder.load_state_dict(payload.get("encoder_state") or {})
        s = payload["steps"]
        steps = StepModel(np.asarray(s["features"]), np.asarray(s["mu"]),
                          np.asarray(s["sigma"]), np.asarray(s["weights"]),
                          np.asarray(s["means"]))
        fs = payload.get("frame_size")
        return cls(encoder, PerceptualConfig.from_kwargs(payload["config"]), payload["mean"],
                   payload["std"], steps, payload["goal_z"], payload["goal_raw"],
                   payload["state_dim"], payload["action_dim"],
                   None if fs is None else (int(fs[0]), int(fs[1])), payload.get("metrics"),
                   tuple(payload.get("subtask_names") or ()))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model to ``path`` (``torch.save``)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self.payload(), p)
        return p

    @classmethod
    def load(cls, path: str | os.PathLike[str], observation_space: gym.Space | None = None,
             action_space: gym.Space | None = None) -> PerceptualModel:
        """Load a saved model, refusing one fitted on other state/action sizes."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"perceptual model {str(p)!r} not found")
        from rewardlearn.rewards.checkpoint import safe_torch_load  # no code from the file
        from rewardlearn.rewards.registry import ReferenceCheck
        from rewardlearn.utils import guarded_imports

        payload = safe_torch_load(p, what="perceptual model")
        with guarded_imports(ReferenceCheck()):  # an encoder it names must be rewardlearn's
            model = cls.from_payload(payload)
        if observation_space is not None and action_space is not None:
            model.check_spaces(observation_space, action_space, where=f"perceptual model {p}")
        return model


__all__ = ["FORMAT", "PerceptualModel", "PerceptualPrediction", "StepModel", "flat_dim"]
