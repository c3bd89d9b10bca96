"""Recorded rollouts: an H.264 mp4 plus a JSON sidecar with per-step data.

The sidecar is what the rollout-review page plots under the video: the env
reward, the learned reward and every per-step signal a reward module exposes
(stage, progress, VLM score...), aligned with the video's frames (frame ``t``
shows the state after step ``t``; frame 0 is the reset state, so a rollout of
``T`` steps has ``T + 1`` frames).

Both files are written atomically (:func:`rewardlearn.files.atomic_output`): to a unique temp name
in the same folder, renamed into place only once complete. A failed write (a
full disk, ffmpeg exiting with an error, Ctrl-C) raises and leaves no partial
file under the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
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

    The file appears under ``path`` only once ffmpeg has finished it without
    error; otherwise an ``OSError`` names ``path`` and ffmpeg's message, and no
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


def _ffmpeg_command(path: Path, width: int, height: int, fps: float) -> list[str]:
    """ffmpeg reading raw RGB frames on stdin, writing a faststart H.264 mp4 to ``path``."""
    import imageio_ffmpeg

    return [
        imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error",
        "-f", "rawvideo", "-vcodec", "rawvideo", "-s", f"{width}x{height}",
        "-pix_fmt", "rgb24", "-r", str(Fraction(fps).limit_denominator()), "-i", "-", "-an",
        "-vcodec", "libx264", "-pix_fmt", "yuv420p", "-crf", "15",
        "-movflags", "+faststart", "-f", "mp4", str(path),
    ]


def _encode_mp4(tmp: Path, frames: list[np.ndarray], fps: float, final: Path) -> None:
    """Run ffmpeg on ``frames`` into ``tmp``; raise (naming ``final``) unless it exits 0."""
    h, w = frames[0].shape[:2]
    with tempfile.TemporaryFile() as err:
        # Own session: Ctrl-C reaches Python, which stops ffmpeg, not ffmpeg mid-file.
        proc = subprocess.Popen(_ffmpeg_command(tmp, w, h, fps), stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        try:
            assert proc.stdin is not None
            try:
                for frame in frames:
                    proc.stdin.write(frame.tobytes())
                proc.stdin.close()
            except BrokenPipeError:
                pass  # ffmpeg stopped early: its status and message below say why
            status = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
        if status != 0:
            err.seek(0)
            lines = err.read().decode(errors="replace").strip().splitlines()
            detail = "; ".join(line.strip() for line in lines[-3:] if line.strip())
            raise OSError(f"writing video {final} failed: ffmpeg exited with status {status}"
                          + (f" ({detail})" if detail else ""))


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
