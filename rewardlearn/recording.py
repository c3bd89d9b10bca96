"""Recorded rollouts: an H.264 mp4 plus a JSON sidecar with per-step data.

The sidecar is what the rollout-review page plots under the video: the env
reward, the learned reward and every per-step signal a reward module exposes
(stage, progress, VLM score...), aligned with the video's frames (frame ``t``
shows the state after step ``t``; frame 0 is the reset state, so a rollout of
``T`` steps has ``T + 1`` frames).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SIDECAR_VERSION = 1


@dataclass
class RolloutRecord:
    """Everything recorded about one evaluation episode (besides its frames)."""

    episode: int
    seed: int | None
    length: int
    env_return: float
    learned_return: float | None
    success: bool | None
    terminated: bool
    truncated: bool
    env_reward: list[float] = field(default_factory=list)
    learned_reward: list[float] | None = None
    signals: dict[str, list[float]] = field(default_factory=dict)
    env_info: dict[str, list[float]] = field(default_factory=dict)
    video: str | None = None
    fps: float | None = None


def write_video(path: str | os.PathLike[str], frames: list[np.ndarray] | np.ndarray,
                fps: float) -> Path:
    """Write ``(T, H, W, 3)`` uint8 frames as H.264/yuv420p mp4 (plays in every browser)."""
    import imageio.v2 as imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = [np.asarray(f, dtype=np.uint8) for f in frames]
    if not frames:
        raise ValueError("no frames to write")
    h, w = frames[0].shape[:2]
    if h % 2 or w % 2:
        frames = [f[: h - h % 2, : w - w % 2] for f in frames]
    writer = imageio.get_writer(
        str(path), fps=fps, codec="libx264", pixelformat="yuv420p", quality=7,
        macro_block_size=2, ffmpeg_log_level="error",
        output_params=["-movflags", "+faststart"],
    )
    try:
        for f in frames:
            writer.append_data(f)
    finally:
        writer.close()
    return path


def write_sidecar(path: str | os.PathLike[str], record: RolloutRecord,
                  meta: dict[str, Any] | None = None) -> Path:
    """Write the rollout's per-step data as JSON next to its video."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"version": SIDECAR_VERSION, **(meta or {}), **asdict(record)}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, default=_jsonable))
    os.replace(tmp, path)
    return path


def read_sidecar(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a sidecar written by :func:`write_sidecar`."""
    data: dict[str, Any] = json.loads(Path(path).read_text())
    return data


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"cannot serialise {type(x).__name__}")
