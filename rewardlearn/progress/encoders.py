"""Frozen frame encoders for the progress model (now shared: :mod:`rewardlearn.encoders`).

A progress model can read, besides the robot state, an embedding of each
frame from a *frozen* image encoder. Any object with ``dim``, ``frame_size``
and ``__call__(frames) -> (N, dim)`` works; it is named by dotted path (or a
short name of :mod:`rewardlearn.encoders`) plus keyword arguments, so a saved
progress model rebuilds it on load. Encoders trained on the demos (``tcn``) and
state encoders are not accepted here: a progress model stores no encoder weights.

Example:
    >>> import numpy as np
    >>> from rewardlearn.progress.encoders import DownsampleEncoder
    >>> enc = DownsampleEncoder(grid=4)
    >>> enc(np.zeros((2, 84, 84, 3), np.uint8)).shape
    (2, 48)
"""

from __future__ import annotations

from typing import Any

from rewardlearn.encoders import DownsampleEncoder, Encoder, FrameEncoder
from rewardlearn.encoders import build_encoder as _build_any


def build_encoder(spec: dict[str, Any] | None) -> FrameEncoder | None:
    """A frozen frame encoder from ``{"target": "pkg.module:Class", "kwargs": {...}}``."""
    encoder = _build_any(spec)
    if encoder is None:
        return None
    if isinstance(encoder, Encoder) and (not encoder.needs_frames or encoder.trainable):
        raise TypeError(f"{spec!r}: a progress model needs a frozen frame encoder (not "
                        f"{encoder.name}, which reads the state or is trained on demos)")
    return encoder


__all__ = ["DownsampleEncoder", "FrameEncoder", "build_encoder"]
