"""Recorded rollouts: an H.264 mp4 plus a JSON sidecar with per-step data.

The sidecar is what the rollout-review page plots under the video: the env
reward, the learned reward and every per-step signal a reward module exposes
(stage, progress, VLM score...), aligned with the video's frames (frame ``t``
shows the state after step ``t``; frame 0 is the reset state, so a rollout of
``T`` steps has ``T + 1`` frames).

Both files are written atomically (:func:`rewardlearn.files.atomic_output`): to a unique temp name
in the same folder, renamed into place only once complete. A failed write (a
full disk, an encoder error, Ctrl-C) raises and leaves no partial file under the final
name. Videos are encoded with PyAV (FFmpeg's libraries; no ffmpeg process).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from rewardlearn.files import atomic_output, write_text_atomic

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




def write_video(path: str | os.PathLike[str], frames: Sequence[np.ndarray] | np.ndarray,
                fps: float, overwrite: bool = True) -> Path:
    """Write ``(T, H, W, 3)`` uint8 frames as H.264/yuv420p mp4 (plays in every browser).

    The file appears under ``path`` only once the encoder has finished it without
    error; otherwise an ``OSError`` names ``path`` and the encoder's message, and no
    file is left (see :func:`atomic_output`, which also explains ``overwrite``).
    """
    path = Path(path)
    clips = [_rgb(f) for f in frames]
    if not clips:
        raise ValueError(f"no frames to write to {path}")
    if not fps or fps <= 0:
        raise ValueError(f"fps must be > 0 to write {path}, got {fps}")
    h, w = clips[0].shape[:2]
    h, w = h - h % 2, w - w % 2  # yuv420p needs even sizes
    if h == 0 or w == 0:
        raise ValueError(f"frames of {clips[0].shape[:2]} pixels are too small for {path}")
    if any(c.shape[:2] != clips[0].shape[:2] for c in clips):
        raise ValueError(f"frames of different sizes cannot go into one video ({path})")
    with atomic_output(path, overwrite) as tmp:
        _encode_mp4(tmp, [np.ascontiguousarray(c[:h, :w]) for c in clips], fps, path)
    return path


def _rgb(frame: np.ndarray) -> np.ndarray:
    """A frame as ``(H, W, 3)`` uint8 (grey is repeated, an alpha channel dropped)."""
    f = np.asarray(frame, dtype=np.uint8)
    if f.ndim == 2:
        f = np.repeat(f[:, :, None], 3, axis=2)
    if f.ndim != 3 or f.shape[2] not in (3, 4):
        raise ValueError(f"expected (H, W, 3) frames, got shape {f.shape}")
    return f[:, :, :3]


def _open_container(path: Path) -> Any:
    """An mp4 container for writing at ``path`` (PyAV), moov atom first (``faststart``)."""
    import av

    return av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"})


def _encode_mp4(tmp: Path, frames: list[np.ndarray], fps: float, final: Path) -> None:
    """Encode ``frames`` as H.264 (yuv420p, crf 15) into ``tmp`` with PyAV (FFmpeg's
    libraries); any failure (a full disk, an encoder error) raises ``OSError`` naming
    ``final``, and ``KeyboardInterrupt`` passes through (:func:`atomic_output` then removes
    the temp file)."""
    import av
    from av.video.frame import VideoFrame

    h, w = frames[0].shape[:2]
    try:
        with _open_container(tmp) as container:
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator())
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.options = {"crf": "15"}
            for frame in frames:
                container.mux(stream.encode(VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode())  # flush the encoder
    except (av.FFmpegError, OSError, ValueError) as err:
        detail = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise OSError(f"writing video {final} failed: {detail}") from err


def write_sidecar(path: str | os.PathLike[str], record: RolloutRecord,
                  meta: dict[str, Any] | None = None, overwrite: bool = True) -> Path:
    """Write the rollout's per-step data as JSON next to its video (atomically)."""
    payload = {"version": SIDECAR_VERSION, **(meta or {}), **asdict(record)}
    return write_text_atomic(path, json.dumps(payload, default=_jsonable), overwrite)


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
