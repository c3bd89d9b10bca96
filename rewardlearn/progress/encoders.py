"""Frozen frame encoders for the progress model: the small interface, and a built-in one.

A progress model can read, besides the robot state, an embedding of each
frame from a *frozen* image encoder. Any object with ``dim``, ``frame_size``
and ``__call__(frames) -> (N, dim)`` works; it is named by dotted path plus
keyword arguments, so a saved progress model rebuilds it on load (encoders
hold no trained state here). Precomputed embeddings of the demo frames can be
given to training instead of running the encoder on them.

No text encoder is used: SARM's optional task text (and its mismatched-text
augmentation) needs a language model whose weights this package cannot fetch
offline; one task per model is assumed.

Example:
    >>> import numpy as np
    >>> from rewardlearn.progress.encoders import DownsampleEncoder
    >>> enc = DownsampleEncoder(grid=4)
    >>> enc(np.zeros((2, 84, 84, 3), np.uint8)).shape
    (2, 48)
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from rewardlearn.shaping.potentials import import_object


@runtime_checkable
class FrameEncoder(Protocol):
    """A frozen image encoder: ``(N, H, W, 3)`` uint8 frames to ``(N, dim)`` floats."""

    dim: int
    frame_size: tuple[int, int]

    def __call__(self, frames: np.ndarray) -> np.ndarray: ...


class DownsampleEncoder:
    """Colour means over a ``grid x grid`` partition of the frame, in [0, 1].

    A training-free stand-in for a pretrained encoder (CLIP, DINO...): cheap,
    deterministic and independent of the frame size.
    """

    def __init__(self, grid: int = 8, frame_size: tuple[int, int] | list[int] = (84, 84)) -> None:
        self.grid = int(grid)
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        self.dim = self.grid * self.grid * 3

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        f = np.asarray(frames, dtype=np.float32) / 255.0
        n, h, w, c = f.shape
        rows = np.array_split(np.arange(h), self.grid)
        cols = np.array_split(np.arange(w), self.grid)
        out = np.empty((n, self.grid, self.grid, c), dtype=np.float32)
        for i, r in enumerate(rows):
            band = f[:, r].mean(axis=1)
            for j, cidx in enumerate(cols):
                out[:, i, j] = band[:, cidx].mean(axis=1)
        return out.reshape(n, -1)


def build_encoder(spec: dict[str, Any] | None) -> FrameEncoder | None:
    """An encoder from ``{"target": "pkg.module:Class", "kwargs": {...}}`` (``None``: none)."""
    if not spec:
        return None
    target = spec["target"]
    cls = import_object(target) if isinstance(target, str) else target
    encoder = cls(**dict(spec.get("kwargs") or {}))
    if not isinstance(encoder, FrameEncoder):
        raise TypeError(f"{target} is not a frame encoder: it needs dim, frame_size and "
                        "__call__(frames) -> (N, dim)")
    return encoder


__all__ = ["DownsampleEncoder", "FrameEncoder", "build_encoder"]
