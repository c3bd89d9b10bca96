"""Tiny deterministic envs whose observations and frames encode the step count."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class CountEnv(gym.Env):
    """obs = [t, episode]; terminates at t == terminate_at (every other episode), else runs on.

    Reward is ``t``; ``render()`` returns a frame filled with ``t`` so tests can
    tell the terminal frame from the next episode's first frame.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, terminate_at: int = 3, render_mode: str | None = "rgb_array") -> None:
        self.observation_space = gym.spaces.Box(-1e6, 1e6, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1, 1, (1,), np.float32)
        self.terminate_at = terminate_at
        self.render_mode = render_mode
        self.t = 0
        self.episode = -1

    def _obs(self) -> np.ndarray:
        return np.array([self.t, self.episode], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.t = 0
        self.episode += 1
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.t += 1
        terminated = self.episode % 2 == 0 and self.t == self.terminate_at
        return self._obs(), float(self.t), terminated, False, {"t": self.t}

    def render(self) -> np.ndarray:
        return np.full((8, 8, 3), self.t, dtype=np.uint8)


class LineEnv(gym.Env):
    """A point on a line with two stages: stage 0 left of ``x = 1``, stage 1 right of it;
    success (terminal) at ``x >= 1.8``. ``info`` has ``stage``, ``is_success`` and
    ``num_stages``, as multi-stage robot envs report them. The reward is the success flag."""

    def __init__(self, max_steps: int = 40) -> None:
        self.observation_space = gym.spaces.Box(-5, 5, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1, 1, (1,), np.float32)
        self.max_steps = max_steps
        self.x, self.t = 0.0, 0

    def _obs(self) -> np.ndarray:
        return np.array([self.x, 1.0], np.float32)

    def _info(self) -> dict[str, Any]:
        success = self.x >= 1.8
        return {"stage": int(self.x >= 1.0), "is_success": bool(success), "num_stages": 2}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.x, self.t = 0.0, 0
        return self._obs(), self._info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.x = float(np.clip(self.x + 0.2 * float(np.asarray(action).reshape(-1)[0]), -2, 2))
        self.t += 1
        info = self._info()
        return (self._obs(), float(info["is_success"]), info["is_success"], False
                if info["is_success"] else self.t >= self.max_steps, info)
