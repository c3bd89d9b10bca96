"""Simulator-state capture, so any step can be re-rendered later.

Rendering every training step to keep video for a possible query would cost
most of the step time; a MuJoCo physics state is a few hundred floats.
:class:`SimStateCapture` puts the state after each step in
``info["sim_state"]``; :func:`restore_sim_state` puts an env back into it so a
segment can be drawn as a clip when a human is asked about it.

Example:
    >>> import gymnasium as gym, numpy as np
    >>> from rewardlearn.wrappers.state import SimStateCapture, restore_sim_state
    >>> env = SimStateCapture(gym.make("Hopper-v5"))
    >>> _ = env.reset(seed=0)
    >>> s = env.step(env.action_space.sample())[-1]["sim_state"]
    >>> other = gym.make("Hopper-v5"); _ = other.reset(seed=1)
    >>> restore_sim_state(other, s)
    >>> bool(np.allclose(other.unwrapped.data.qpos, env.unwrapped.data.qpos))
    True
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

STATE_KEY = "sim_state"


def _is_mujoco(env: gym.Env) -> bool:
    base = env.unwrapped
    return hasattr(base, "model") and hasattr(base, "data")


def get_sim_state(env: gym.Env) -> np.ndarray:
    """The env's full simulator state as a flat float64 array."""
    base: Any = env.unwrapped
    if _is_mujoco(env):
        import mujoco

        spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
        state = np.empty(mujoco.mj_stateSize(base.model, spec), np.float64)
        mujoco.mj_getState(base.model, base.data, state, spec)
        return state
    if getattr(base, "state", None) is not None:
        return np.array(base.state, dtype=np.float64).reshape(-1)
    raise TypeError(f"{type(base).__name__} exposes no simulator state (not MuJoCo, no .state)")


def restore_sim_state(env: gym.Env, state: np.ndarray) -> None:
    """Put ``env`` into ``state`` (from :func:`get_sim_state` of the same env type)."""
    base: Any = env.unwrapped
    if _is_mujoco(env):
        import mujoco

        mujoco.mj_setState(base.model, base.data, np.asarray(state, np.float64),
                           mujoco.mjtState.mjSTATE_FULLPHYSICS)
        mujoco.mj_forward(base.model, base.data)
        return
    shape = np.shape(base.state)
    base.state = np.asarray(state, dtype=np.float64).reshape(shape)


class SimStateCapture(gym.Wrapper):
    """Adds ``info["sim_state"]`` (the state after the step, or after the reset)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        info[STATE_KEY] = get_sim_state(self.env)
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info[STATE_KEY] = get_sim_state(self.env)
        return obs, reward, terminated, truncated, info
