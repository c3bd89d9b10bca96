"""Per-env frame capture, so the terminal frame is the real last frame.

SB3 vector envs reset an env inside ``step`` when its episode ends; a frame
rendered after ``step_wait`` would show the *next* episode's first state
(SB3's auto-reset). :class:`FrameCapture` renders inside the per-env wrapper
stack, before any auto-reset, and puts the frame in ``info["frame"]`` on every
``step`` and ``reset``.

Example:
    >>> import gymnasium as gym
    >>> from rewardlearn.wrappers import FrameCapture
    >>> env = FrameCapture(gym.make("Hopper-v5"), width=32, height=32)
    >>> _, info = env.reset(seed=0)
    >>> info["frame"].shape
    (32, 32, 3)
    >>> env.close()
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from rewardlearn.rendering import CameraConfig, FastRenderer

FRAME_KEY = "frame"


def resize_frame(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of an ``(H, W, 3)`` uint8 frame (no-op at the same size)."""
    if frame.shape[:2] == (height, width):
        return frame
    from PIL import Image

    return np.asarray(Image.fromarray(frame).resize((width, height), Image.Resampling.BILINEAR))


class EnvFrameSource:
    """Renders frames of one env: fast MuJoCo path, else ``env.render()`` + resize."""

    def __init__(
        self,
        env: gym.Env,
        width: int,
        height: int,
        camera: CameraConfig | dict[str, Any] | str | None = None,
    ) -> None:
        self.env = env
        self.width, self.height = int(width), int(height)
        self._fast: FastRenderer | None = None
        base = env.unwrapped
        if hasattr(base, "model") and hasattr(base, "data"):
            self._fast = FastRenderer(base.model, base.data, self.width, self.height, camera)
        elif env.render_mode != "rgb_array":
            raise ValueError(
                f"{env.spec.id if env.spec else type(base).__name__} is not a MuJoCo env and "
                f"was made with render_mode={env.render_mode!r}; frames need "
                "render_mode='rgb_array'."
            )

    def render(self) -> np.ndarray:
        if self._fast is not None:
            return self._fast.render()
        frame = self.env.render()
        if frame is None:
            raise RuntimeError(
                "env.render() returned None; make the env with render_mode='rgb_array'"
            )
        return resize_frame(np.asarray(frame, dtype=np.uint8), self.height, self.width)

    def close(self) -> None:
        if self._fast is not None:
            self._fast.close()


class FrameCapture(gym.Wrapper):
    """Adds ``info["frame"]`` (``(height, width, 3)`` uint8) after every step and reset.

    Args:
        env: the env to render; MuJoCo envs use :class:`FastRenderer` (shadows,
            reflections and skybox off) at exactly ``width`` x ``height``.
        width, height: frame size, normally the reward model's input size.
        camera: camera name or free-camera settings (see :class:`CameraConfig`).
    """

    def __init__(
        self,
        env: gym.Env,
        width: int = 224,
        height: int = 224,
        camera: CameraConfig | dict[str, Any] | str | None = None,
    ) -> None:
        super().__init__(env)
        self.source = EnvFrameSource(env, width, height, camera)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        info[FRAME_KEY] = self.source.render()
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info[FRAME_KEY] = self.source.render()
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        self.source.close()
        super().close()
