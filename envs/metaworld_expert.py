"""Scripted Meta-World experts (metaworld's own policies) with stage labels for demos.

:data:`METAWORLD_TASKS` maps a Meta-World v3 task to its scripted policy class in
``metaworld.policies`` and to its subtasks. :class:`MetaWorldStages` wraps a
Meta-World env so collected demos look like ``PickPlace-v0``'s: ``info["stage"]`` /
``info["subtask"]`` (derived from the env's ``near_object`` and ``grasp_success``:
``reach`` until the gripper is near the object, ``grasp`` until it holds it (or the
task succeeds), then the last subtask; stages never go back), ``is_success``, ``grasped``,
``dense_reward``/``sparse_reward``, and, for ``obs_mode="state_pixels"``, dict
observations ``{"state", "pixels"}`` with the frame an inner
``rewardlearn.wrappers.FrameCapture`` rendered (so demo frames match training's).

A seeded reset gives the same task layout whatever ran before (``Meta-World/MT1``
picks the layout from its RNG before reseeding it, so the wrapper seeds it first).
Needs the ``metaworld`` extra (imported lazily).
"""

from __future__ import annotations

from typing import Any, ClassVar, SupportsFloat

import gymnasium as gym
import numpy as np

METAWORLD_TASKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "pick-place-v3": ("SawyerPickPlaceV3Policy", ("reach", "grasp", "place")),
    "pick-place-wall-v3": ("SawyerPickPlaceWallV3Policy", ("reach", "grasp", "place")),
    "shelf-place-v3": ("SawyerShelfPlaceV3Policy", ("reach", "grasp", "place")),
    "bin-picking-v3": ("SawyerBinPickingV3Policy", ("reach", "grasp", "place")),
    "push-v3": ("SawyerPushV3Policy", ("reach", "grasp", "push")),
    "reach-v3": ("SawyerReachV3Policy", ("reach",)),
}
"""Meta-World task -> (scripted policy class in ``metaworld.policies``, subtask names)."""


def metaworld_policy(task: str) -> Any:
    """A fresh scripted policy for ``task`` (``ValueError`` listing the supported tasks)."""
    if task not in METAWORLD_TASKS:
        raise ValueError(f"no scripted Meta-World expert for {task!r}; supported: "
                         f"{', '.join(sorted(METAWORLD_TASKS))}")
    import metaworld.policies as policies

    return getattr(policies, METAWORLD_TASKS[task][0])()


def metaworld_stage(info: dict[str, Any], n_stages: int) -> int:
    """Raw stage of one step's info: 0 reach, 1 near the object, 2 holding it (capped).

    Success counts as the last stage even when ``grasp_success`` never fired (the
    scripted policy sometimes nudges the object onto the goal without a firm grasp).
    """
    if n_stages <= 1:
        return 0
    if float(info.get("grasp_success", 0.0)) > 0.5 or float(info.get("success", 0.0)) > 0.5:
        return min(2, n_stages - 1)
    return 1 if float(info.get("near_object", 0.0)) > 0.5 else 0


class MetaWorldExpert:
    """Meta-World's scripted policy for a task, with optional Gaussian action noise."""

    def __init__(self, task: str, noise: float = 0.0, seed: int | None = None) -> None:
        self.policy = metaworld_policy(task)
        self.noise = float(noise)
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: Any) -> np.ndarray:
        state = obs["state"] if isinstance(obs, dict) else obs
        action = np.asarray(self.policy.get_action(np.asarray(state, dtype=np.float64)),
                            dtype=np.float64)
        if self.noise > 0.0:
            action[:3] += self.rng.normal(0.0, self.noise, size=3)
        return np.clip(action, -1.0, 1.0).astype(np.float32)


class MetaWorldStages(gym.Wrapper):
    """Stage labels (and optionally frames in the observation) for a Meta-World task.

    Args:
        env: a Meta-World env (``Meta-World/MT1``), wrapped in ``FrameCapture`` when
            ``obs_mode="state_pixels"``.
        task: the Meta-World task name (``pick-place-v3``...).
        obs_mode: ``state`` or ``state_pixels`` (reads ``info["frame"]``).
        reward_type: ``dense`` (Meta-World's own shaped reward) or ``sparse`` (1 on a
            step where the task succeeds, else 0: the success signal alone).
    """

    SUBTASKS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, env: gym.Env, task: str, obs_mode: str = "state",
                 reward_type: str = "dense") -> None:
        super().__init__(env)
        if reward_type not in ("dense", "sparse"):
            raise ValueError(f"reward_type must be 'dense' or 'sparse', got {reward_type!r}")
        self.reward_type = reward_type
        if task not in METAWORLD_TASKS:
            raise ValueError(f"no scripted Meta-World expert for {task!r}; supported: "
                             f"{', '.join(sorted(METAWORLD_TASKS))}")
        if obs_mode not in ("state", "state_pixels"):
            raise ValueError(f"obs_mode must be 'state' or 'state_pixels', got {obs_mode!r}")
        self.task = task
        self.SUBTASKS = METAWORLD_TASKS[task][1]  # type: ignore[misc]
        self.obs_mode = obs_mode
        self._stage = 0
        state_space = env.observation_space
        if obs_mode == "state_pixels":
            _, info = env.reset(seed=0)
            if "frame" not in info:
                raise ValueError("obs_mode='state_pixels' needs a FrameCapture inside the wrapper")
            shape = info["frame"].shape
            self.observation_space = gym.spaces.Dict({
                "state": gym.spaces.Box(-np.inf, np.inf, state_space.shape, np.float64),
                "pixels": gym.spaces.Box(0, 255, shape, np.uint8)})
        else:
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, state_space.shape,
                                                    np.float64)

    def make_expert(self, noise: float = 0.0, seed: int | None = None) -> MetaWorldExpert:
        """The task's scripted expert (used by ``rewardlearn_envs.expert_for``)."""
        return MetaWorldExpert(self.task, noise=noise, seed=seed)

    def _obs(self, obs: Any, info: dict[str, Any]) -> Any:
        state = np.asarray(obs, dtype=np.float64)
        if self.obs_mode == "state_pixels":
            return {"state": state, "pixels": np.asarray(info.pop("frame"), dtype=np.uint8)}
        return state

    def _label(self, info: dict[str, Any], reward: float) -> dict[str, Any]:
        self._stage = max(self._stage, metaworld_stage(info, len(self.SUBTASKS)))
        success = float(info.get("success", 0.0))
        info.update(stage=self._stage, subtask=self.SUBTASKS[self._stage], success=success,
                    is_success=success > 0.5,
                    grasped=float(info.get("grasp_success", 0.0)) > 0.5,
                    dense_reward=float(reward), sparse_reward=success)
        return info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[Any, dict[str, Any]]:
        if seed is not None:
            # MT1 draws the task layout from the env's RNG *before* reseeding it: seed it
            # first, so that a seed gives the same layout whatever ran before
            self.env.reset(seed=seed, options=options)
        obs, info = self.env.reset(options=options)
        self._stage = 0
        info = self._label(info, 0.0)
        return self._obs(obs, info), info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = self._label(info, float(reward))
        if self.reward_type == "sparse":
            reward = info["sparse_reward"]
        return self._obs(obs, info), reward, terminated, truncated, info


__all__ = ["METAWORLD_TASKS", "MetaWorldExpert", "MetaWorldStages", "metaworld_policy",
           "metaworld_stage"]
