"""The VLM-RM reward (Rocamonde et al. 2023) on CLIP embeddings.

With ``x`` the normalised image embedding, ``g`` the mean of the normalised
goal-prompt embeddings and ``b`` that of the baseline prompts (means are not
renormalised), ``d = g - b``::

    P = alpha * d d^T / ||d||^2 + (1 - alpha) * I
    R = 1 - 0.5 * ||(x - g) P||^2

``alpha = 0`` gives ``R = x.g + 0.5 * (1 - ||g||^2)``: the cosine similarity to
the goal up to an affine map (exactly the cosine similarity for one goal
prompt). ``alpha = 1`` keeps only the component of ``x - g`` along ``d``.

Example:
    >>> import torch
    >>> from rewardlearn.vlm.vlmrm import VLMRMScorer
    >>> goal, base = torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.0, 1.0, 0.0]])
    >>> s = VLMRMScorer(goal, base, alpha=0.0)
    >>> s(torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])).tolist()
    [1.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from rewardlearn.vlm.loading import ClipBundle, encode_images, encode_texts


def as_prompts(value: str | Iterable[str] | None) -> list[str]:
    """A prompt set from a string, a list (or Hydra ListConfig) or ``None`` (empty)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    prompts = [str(v) for v in value]
    if any(not p.strip() for p in prompts):
        raise ValueError(f"empty prompt in {prompts}")
    return prompts


def projection_matrix(goal: torch.Tensor, baseline: torch.Tensor | None,
                      alpha: float) -> torch.Tensor:
    """``P = alpha * d d^T / ||d||^2 + (1 - alpha) I`` with ``d = goal - baseline`` (``(D, D)``)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    eye = torch.eye(goal.shape[-1], dtype=goal.dtype, device=goal.device)
    if alpha == 0.0:
        return eye
    if baseline is None:
        raise ValueError(f"alpha={alpha} projects onto goal - baseline and needs baseline "
                         "prompts; give a baseline (e.g. 'a humanoid robot') or set alpha=0")
    d = goal - baseline
    norm2 = torch.dot(d, d)
    if float(norm2) < 1e-12:
        raise ValueError("goal and baseline prompts have the same embedding; alpha > 0 needs "
                         "them to differ")
    return alpha * torch.outer(d, d) / norm2 + (1.0 - alpha) * eye


def vlmrm_reward(x: torch.Tensor, goal: torch.Tensor, projection: torch.Tensor) -> torch.Tensor:
    """``R = 1 - 0.5 * ||(x - g) P||^2`` for image embeddings ``x`` ``(N, D)``."""
    return 1.0 - 0.5 * ((x - goal) @ projection).pow(2).sum(-1)


class VLMRMScorer:
    """The VLM-RM reward for fixed goal/baseline prompt embeddings.

    Args:
        goal_embeddings: ``(G, D)`` normalised goal-prompt embeddings.
        baseline_embeddings: ``(B, D)`` normalised baseline-prompt embeddings, or
            ``None`` (only with ``alpha = 0``).
        alpha: projection strength in ``[0, 1]``.
    """

    def __init__(self, goal_embeddings: torch.Tensor, baseline_embeddings: torch.Tensor | None,
                 alpha: float) -> None:
        if goal_embeddings.ndim != 2 or len(goal_embeddings) == 0:
            raise ValueError("need at least one goal prompt embedding, shape (G, D)")
        self.alpha = float(alpha)
        self.goal = goal_embeddings.float().mean(0)
        has_base = baseline_embeddings is not None and len(baseline_embeddings) > 0
        self.baseline = baseline_embeddings.float().mean(0) \
            if has_base and baseline_embeddings is not None else None
        self.projection = projection_matrix(self.goal, self.baseline, self.alpha)

    @classmethod
    def from_prompts(cls, bundle: ClipBundle, goal: str | Sequence[str],
                     baseline: str | Sequence[str] | None, alpha: float) -> VLMRMScorer:
        """Embed the prompt sets with ``bundle`` (cached per prompt) and build the scorer."""
        goals, bases = as_prompts(goal), as_prompts(baseline)
        if not goals:
            raise ValueError("the VLM reward needs at least one goal prompt")
        emb = encode_texts(bundle, goals + bases)
        return cls(emb[:len(goals)], emb[len(goals):] if bases else None, alpha)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Rewards ``(N,)`` for normalised image embeddings ``(N, D)``."""
        x = x.float().to(self.goal.device)
        return vlmrm_reward(x, self.goal, self.projection)


class FrameScorer:
    """Frames in, VLM-RM scores out: one batched encode for all frames given.

    Args:
        bundle: the CLIP model (:func:`rewardlearn.vlm.loading.load_clip`).
        scorer: the prompt-specific :class:`VLMRMScorer`.
        batch_size: images per forward pass.
        threads: CPU threads per call; ``None`` lets the bundle's
            :class:`~rewardlearn.vlm.loading.ThreadTuner` choose by measuring.
    """

    def __init__(self, bundle: ClipBundle, scorer: VLMRMScorer, batch_size: int = 64,
                 threads: int | None = None) -> None:
        self.bundle = bundle
        self.scorer = scorer
        self.batch_size = int(batch_size)
        self.threads = threads
        self.frames_scored = 0

    def __call__(self, frames: np.ndarray | torch.Tensor) -> np.ndarray:
        """``(N,)`` float32 scores for uint8 frames ``(N, H, W, 3)``."""
        if len(frames) == 0:
            return np.zeros(0, np.float32)
        emb = encode_images(self.bundle, frames, self.batch_size, self.threads)
        self.frames_scored += len(frames)
        return self.scorer(emb).cpu().numpy().astype(np.float32)

    def describe(self) -> dict[str, Any]:
        return {"clip_model": self.bundle.name, "pretrained": self.bundle.pretrained,
                "device": str(self.bundle.device), "dtype": str(self.bundle.dtype),
                "image_size": list(self.bundle.image_size)}


__all__ = ["FrameScorer", "VLMRMScorer", "as_prompts", "projection_matrix", "vlmrm_reward"]
