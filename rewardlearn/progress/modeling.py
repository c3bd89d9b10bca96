"""The stage-aware progress network and the saved progress model.

:class:`StageProgressNet` maps a window of frame features to stage logits and
a within-stage progress ``tau`` conditioned on a stage. :class:`ProgressModel`
bundles the net with everything needed to use it on an env: the feature
normalisation, the stage priors ``alpha``, the subtask names, the optional
frozen frame encoder and the observation/action spaces it was trained for
(a checkpoint for other spaces is refused on load, through
:mod:`rewardlearn.rewards.checkpoint`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rewardlearn.files import atomic_output
from rewardlearn.progress.configuration import ProgressConfig
from rewardlearn.progress.encoders import FrameEncoder, build_encoder
from rewardlearn.rewards.base import Obs
from rewardlearn.rewards.checkpoint import (
    check_spaces,
    describe_space,
    space_from_description,
)
from rewardlearn.rewards.features import flat_dim, flatten_obs
from rewardlearn.utils import resolve_device

FORMAT = "rewardlearn.progress_model/1"


class StageProgressNet(nn.Module):
    """Window of features ``(B, W, D)`` -> stage logits ``(B, K)`` and ``tau`` ``(B,)``.

    Each frame is projected (shared ``Linear + LayerNorm + ReLU``) and tagged
    with a learned position embedding; the flattened window goes through an
    MLP trunk. ``tau = sigmoid(head([trunk, onehot(stage)]))``.
    """

    def __init__(self, in_dim: int, window: int, num_stages: int, frame_dim: int = 64,
                 hidden_sizes: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        self.num_stages = num_stages
        self.frame = nn.Sequential(nn.Linear(in_dim, frame_dim), nn.LayerNorm(frame_dim),
                                   nn.ReLU())
        self.position = nn.Parameter(torch.zeros(window, frame_dim))
        layers: list[nn.Module] = []
        d = window * frame_dim
        for h in hidden_sizes:
            layers += [nn.Linear(d, int(h)), nn.ReLU()]
            d = int(h)
        self.trunk = nn.Sequential(*layers)
        self.stage_head = nn.Linear(d, num_stages)
        self.tau_head = nn.Sequential(nn.Linear(d + num_stages, d), nn.ReLU(), nn.Linear(d, 1))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Trunk features of a window batch."""
        z = self.frame(x) + self.position
        return self.trunk(z.flatten(1))

    def tau(self, h: torch.Tensor, stage: torch.Tensor) -> torch.Tensor:
        """Within-stage progress in [0, 1] given trunk features and stage indices."""
        onehot = F.one_hot(stage.long(), self.num_stages).to(h.dtype)
        return torch.sigmoid(self.tau_head(torch.cat([h, onehot], dim=1))).squeeze(1)

    def forward(self, x: torch.Tensor, stage: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(stage logits, tau)``; ``tau`` conditioned on ``stage`` where it is given and
        ``>= 0``, else on the predicted stage."""
        h = self.encode(x)
        logits = self.stage_head(h)
        cond = logits.argmax(1)
        if stage is not None:
            cond = torch.where(stage >= 0, stage.long(), cond)
        return logits, self.tau(h, cond)


@dataclass
class Prediction:
    """Per-row model outputs."""

    stage: np.ndarray
    stage_probs: np.ndarray
    tau: np.ndarray
    progress: np.ndarray


class ProgressModel:
    """A trained stage + progress model, ready to score observations.

    Args:
        observation_space, action_space: spaces of the env it is used on.
        num_stages: number of subtasks ``K``.
        alpha: stage priors ``(K,)`` summing to 1.
        config: the :class:`ProgressConfig` it was built with.
        feature_mean, feature_std: input standardisation ``(D,)``.
        subtask_names: names of the ``K`` subtasks.
        encoder: optional frozen frame encoder spec (``{"target", "kwargs"}``).
    """

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, num_stages: int,
                 alpha: np.ndarray, config: ProgressConfig,
                 feature_mean: np.ndarray | None = None, feature_std: np.ndarray | None = None,
                 subtask_names: Sequence[str] = (),
                 encoder: dict[str, Any] | None = None) -> None:
        self.observation_space = observation_space
        self.action_space = action_space
        self.num_stages = int(num_stages)
        self.alpha = np.asarray(alpha, dtype=np.float64).reshape(self.num_stages)
        self.cum = np.concatenate([[0.0], np.cumsum(self.alpha)])
        self.config = config
        self.subtask_names = tuple(subtask_names)
        self.encoder_spec = encoder
        self.encoder: FrameEncoder | None = build_encoder(encoder)
        self.state_dim = flat_dim(observation_space)
        self.in_dim = self.state_dim + (self.encoder.dim if self.encoder else 0)
        self.feature_mean = np.zeros(self.in_dim, np.float32) if feature_mean is None \
            else np.asarray(feature_mean, np.float32)
        self.feature_std = np.ones(self.in_dim, np.float32) if feature_std is None \
            else np.asarray(feature_std, np.float32)
        self.device = resolve_device(config.device)  # "auto": CUDA when present
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.net = StageProgressNet(self.in_dim, config.window, self.num_stages,
                                        config.frame_dim, config.hidden_sizes).to(self.device)
        self.metrics: dict[str, Any] = {}

    @property
    def needs_frames(self) -> bool:
        """Whether features include frame embeddings (the env must render)."""
        return self.encoder is not None

    @property
    def frame_size(self) -> tuple[int, int]:
        return self.encoder.frame_size if self.encoder else (84, 84)

    def features(self, obs: Obs, frames: np.ndarray | None = None) -> np.ndarray:
        """``(B, D)`` raw features: flattened state, then the frame embedding if any."""
        state = flatten_obs(self.observation_space, obs)
        if self.encoder is None:
            return state
        if frames is None:
            raise ValueError("this progress model reads frames (it has a frame encoder) but "
                             "none were given; wrap the env in FrameCapture")
        return np.concatenate([state, np.asarray(self.encoder(frames), np.float32)], axis=1)

    def to_tensor(self, windows: np.ndarray) -> torch.Tensor:
        """Standardised ``(B, W, D)`` float tensor on the model's device."""
        x = (np.asarray(windows, np.float32) - self.feature_mean) / self.feature_std
        return torch.as_tensor(x, dtype=torch.float32, device=self.device)

    def progress_from(self, stage: np.ndarray, tau: np.ndarray) -> np.ndarray:
        """``P_{k-1} + alpha_k * tau``."""
        return self.cum[stage] + self.alpha[stage] * np.asarray(tau, dtype=np.float64)

    @torch.no_grad()
    def predict(self, windows: np.ndarray, batch_size: int = 4096,
                stage: np.ndarray | None = None) -> Prediction:
        """Stage, stage probabilities, ``tau`` and progress for windows ``(B, W, D)``.

        ``stage`` (``(B,)`` ints, optional): a known stage per row (``-1``: unknown). Where
        it is known, ``tau`` is conditioned on it and progress is ``P_{k-1} + alpha_k * tau``
        of that stage; elsewhere the predicted stage is used.
        """
        self.net.eval()
        n = len(windows)
        if n == 0:
            empty = np.zeros(0)
            return Prediction(empty.astype(np.int64), np.zeros((0, self.num_stages)), empty,
                              empty)
        given = None if stage is None else np.asarray(stage, np.int64).reshape(n)
        if given is not None and (given >= self.num_stages).any():
            raise ValueError(f"stage {int(given.max())} given for a model of "
                             f"{self.num_stages} stages (0..{self.num_stages - 1})")
        probs_l, stage_l, tau_l = [], [], []
        for s in range(0, n, batch_size):
            known = (None if given is None
                     else torch.as_tensor(given[s:s + batch_size], device=self.device))
            logits, tau = self.net(self.to_tensor(windows[s:s + batch_size]), known)
            cond = logits.argmax(1)
            if known is not None:
                cond = torch.where(known >= 0, known, cond)
            probs_l.append(torch.softmax(logits.float(), 1).cpu())
            stage_l.append(cond.cpu())
            tau_l.append(tau.cpu())
        probs = torch.cat(probs_l).numpy().astype(np.float64)
        stages = torch.cat(stage_l).numpy().astype(np.int64)
        tau = torch.cat(tau_l).numpy().astype(np.float64)
        return Prediction(stages, probs, tau, self.progress_from(stages, tau))

    # ------------------------------------------------------------------ save / load
    def payload(self) -> dict[str, Any]:
        """Everything :meth:`from_payload` needs (torch-saveable)."""
        return {
            "format": FORMAT,
            "config": self.config.to_dict(),
            "num_stages": self.num_stages,
            "alpha": self.alpha.tolist(),
            "subtask_names": list(self.subtask_names),
            "encoder": self.encoder_spec,
            "feature_mean": self.feature_mean.tolist(),
            "feature_std": self.feature_std.tolist(),
            "state": {k: v.cpu() for k, v in self.net.state_dict().items()},
            "observation_space": describe_space(self.observation_space),
            "action_space": describe_space(self.action_space),
            "metrics": self.metrics,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model atomically; returns the path."""
        path = Path(path)
        with atomic_output(path) as tmp:
            torch.save(self.payload(), tmp)
        return path

    @classmethod
    def from_payload(cls, payload: dict[str, Any], observation_space: gym.Space | None = None,
                     action_space: gym.Space | None = None, where: str = "progress model",
                     device: str | None = None) -> ProgressModel:
        """Rebuild from :meth:`payload`, refusing it if its spaces differ from the given ones."""
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ValueError(f"{where} is not a rewardlearn progress model (format {FORMAT}); "
                             "train one with rewardlearn-train-progress")
        check_spaces(payload["observation_space"], payload["action_space"], observation_space,
                     action_space, where=where)
        config = ProgressConfig.from_kwargs({**payload["config"],
                                             **({"device": device} if device else {})})
        model = cls(space_from_description(payload["observation_space"]),
                    space_from_description(payload["action_space"]),
                    payload["num_stages"], np.asarray(payload["alpha"]), config,
                    np.asarray(payload["feature_mean"]), np.asarray(payload["feature_std"]),
                    payload.get("subtask_names", ()), payload.get("encoder"))
        model.net.load_state_dict(payload["state"])
        model.metrics = dict(payload.get("metrics", {}))
        return model

    @classmethod
    def load(cls, path: str | os.PathLike[str], observation_space: gym.Space | None = None,
             action_space: gym.Space | None = None, device: str | None = None) -> ProgressModel:
        """Load a saved model (``progress_model.pt``); spaces are checked when given."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"progress model {str(path)!r} not found; train one with "
                                    "rewardlearn-train-progress")
        from rewardlearn.rewards.checkpoint import safe_torch_load  # no code from the file
        from rewardlearn.rewards.registry import ReferenceCheck
        from rewardlearn.utils import guarded_imports

        payload = safe_torch_load(path, what="progress model")
        with guarded_imports(ReferenceCheck()):  # an encoder it names must be rewardlearn's
            return cls.from_payload(payload, observation_space, action_space,
                                    where=f"progress model {path}", device=device)


__all__ = ["FORMAT", "Prediction", "ProgressModel", "StageProgressNet"]
