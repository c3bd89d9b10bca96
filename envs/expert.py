"""Scripted experts for the rewardlearn tasks.

The expert reads the simulator state of the *unwrapped* env instead of the observation,
so the same policy drives state, pixel and state+pixel envs (demos for image-based
reward models need it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from rewardlearn_envs.pick_place import ACTION_SCALE, CUBE_HALF, TARGET_RADIUS, PickPlaceEnv

HOVER = 0.05
"""Height (m) above the cube top at which the pad lines up before descending."""
CARRY_PAD_Z = 0.13
"""Pad height (m) while carrying: the cube bottom then clears the table by ~9 cm."""
ALIGN_TOL = 0.006
"""xy error (m) under which the pad or the carried cube counts as lined up."""
PLACE_TOL = 0.5 * TARGET_RADIUS
"""The carried cube is lowered once it is this close (m) to the target centre in xy."""
PRESS = 0.004
"""How far (m) the pad is commanded below the cube top to make firm contact."""

SUPPORTED_ENVS: dict[str, str] = {"pick_place": "rewardlearn/PickPlace-v0"}
"""Short names of the envs that have a scripted expert, mapped to their gymnasium ids."""


class PickPlaceExpert:
    """Waypoint controller that solves :class:`~rewardlearn_envs.pick_place.PickPlaceEnv`.

    Each call looks at the physical state (not at a hidden phase counter, so it
    recovers from a dropped cube): line up over the cube, descend with suction on,
    lift to carrying height, move over the target, lower until the cube touches the
    table, release. Actions move the servo command toward the waypoint by at most one
    step's worth (:data:`ACTION_SCALE`).

    Args:
        env: the env (any wrapper around a :class:`PickPlaceEnv`).
        noise: std of Gaussian noise added to the xyz action components (then clipped).
        seed: seed of the noise generator.

    Example:
        >>> import gymnasium as gym
        >>> import rewardlearn_envs
        >>> env = gym.make("rewardlearn/PickPlace-v0")
        >>> obs, _ = env.reset(seed=1)
        >>> action = PickPlaceExpert(env, noise=0.1, seed=1)(obs)
        >>> action.shape, action.dtype
        ((4,), dtype('float32'))
    """

    def __init__(self, env: gym.Env[Any, Any], noise: float = 0.0, seed: int | None = None):
        base = env.unwrapped
        if not isinstance(base, PickPlaceEnv):
            raise TypeError(f"PickPlaceExpert needs a PickPlaceEnv, got {type(base).__name__}")
        self.env: PickPlaceEnv = base
        self.noise = float(noise)
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: Any = None) -> np.ndarray:
        """Action for the env's current state (``obs`` is accepted and ignored)."""
        goal, suction = self._waypoint()
        delta = (goal - self.env.command_pos) / ACTION_SCALE
        action = np.empty(4, dtype=np.float64)
        action[:3] = delta
        if self.noise > 0.0:
            action[:3] += self.rng.normal(0.0, self.noise, size=3)
        action[3] = 1.0 if suction else -1.0
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def _waypoint(self) -> tuple[np.ndarray, bool]:
        """Next pad position to head for and whether suction should be on."""
        env = self.env
        grip, cube, target = env.gripper_pos, env.cube_pos, env.target_pos
        cube_top = cube[2] + CUBE_HALF
        if env.grasped:
            to_target = target[:2] - cube[:2]
            height = cube[2] - CUBE_HALF
            if np.linalg.norm(to_target) > PLACE_TOL:
                xy = grip[:2] + to_target if height > 0.03 else grip[:2]
                return np.array([*xy, CARRY_PAD_Z]), True
            if height > 0.002:
                return np.array([*(grip[:2] + to_target), 2 * CUBE_HALF - PRESS]), True
            return grip, False
        to_cube = cube[:2] - grip[:2]
        if np.linalg.norm(to_cube) > ALIGN_TOL:
            z = cube_top + HOVER if np.linalg.norm(to_cube) > 0.02 else grip[2]
            return np.array([*cube[:2], z]), False
        suction = grip[2] - cube_top < 0.02
        return np.array([*cube[:2], cube_top - PRESS]), suction


def expert_for(
    env: gym.Env[Any, Any], noise: float = 0.0, seed: int | None = None
) -> Callable[[Any], np.ndarray]:
    """The scripted expert for ``env`` (raises ``ValueError`` for envs without one)."""
    if isinstance(env.unwrapped, PickPlaceEnv):
        return PickPlaceExpert(env, noise=noise, seed=seed)
    try:  # e.g. metaworld_expert.MetaWorldStages, anywhere in the wrapper stack
        make = env.get_wrapper_attr("make_expert")
    except AttributeError:
        make = None
    if callable(make):
        expert: Callable[[Any], np.ndarray] = make(noise=noise, seed=seed)
        return expert
    spec = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    supported = ", ".join(f"{name} ({env_id})" for name, env_id in sorted(SUPPORTED_ENVS.items()))
    raise ValueError(f"no scripted expert for {spec!r}; supported envs: {supported} and every "
                     "Meta-World task (env=metaworld env.task=<task>)")


def success_rate(
    env: gym.Env[Any, Any], n_episodes: int = 100, noise: float = 0.0, seed: int = 0
) -> tuple[float, float]:
    """Fraction of seeded episodes (seeds ``seed .. seed+n-1``) the expert solves, mean length."""
    successes, steps = 0, 0
    for i in range(n_episodes):
        obs, info = env.reset(seed=seed + i)
        expert = expert_for(env, noise=noise, seed=seed + i)
        terminated = truncated = False
        while not (terminated or truncated):
            obs, _, terminated, truncated, info = env.step(expert(obs))
            steps += 1
        successes += bool(info["is_success"])
    return successes / n_episodes, steps / n_episodes
