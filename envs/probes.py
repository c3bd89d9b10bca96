"""Scripted exploit probes for PickPlace: states a reward must not rate above their progress.

A learned progress model or reward trained on demos is at risk exactly where a learning
policy can park: near the goal of a stage without finishing it. Each probe drives the
env with a small scripted controller and records the visited states with the env's own
``info`` (its true ``progress`` and ``stage``), so any model's rating of those states can be
compared with the truth (:func:`rewardlearn.metrics.outcomes.exploit_probe`):

* ``hover``: the pad hovers 10 cm above the untouched cube (reach nearly done, no grasp);
* ``stall``: no motion at all from the reset state, for the whole probe;
* ``drop``: the expert grasps and lifts the cube, then lets it fall short of the target
  and stays there.

Example:
    >>> probes = pick_place_probes(seeds=[0], steps=60)
    >>> sorted(probes), len(probes["stall"][0]["observations"])
    (['drop', 'hover', 'stall'], 61)
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from rewardlearn_envs.expert import CUBE_HALF, PickPlaceExpert
from rewardlearn_envs.pick_place import ACTION_SCALE, PickPlaceEnv

PROBES = ("hover", "stall", "drop")


def _toward(env: PickPlaceEnv, goal: np.ndarray, suction: bool) -> np.ndarray:
    action = np.empty(4, np.float32)
    action[:3] = np.clip((goal - env.command_pos) / ACTION_SCALE, -1, 1)
    action[3] = 1.0 if suction else -1.0
    return action


def _run(seed: int, steps: int, policy: str) -> dict[str, Any]:
    env = gym.make("rewardlearn/PickPlace-v0", reward_type="sparse",
                   max_episode_steps=steps + 1)
    base = env.unwrapped
    assert isinstance(base, PickPlaceEnv)
    expert = PickPlaceExpert(env)
    obs, info = env.reset(seed=seed)
    rows, infos = [obs], [info]
    released_at: np.ndarray | None = None
    for _ in range(steps):
        if policy == "stall":
            action = np.zeros(4, np.float32)
            action[3] = -1.0
        elif policy == "hover":
            goal = np.array([*base.cube_pos[:2], base.cube_pos[2] + CUBE_HALF + 0.10])
            action = _toward(base, goal, suction=False)
        else:  # drop: the expert until the cube is carried high, then release and stay
            if released_at is None and base.grasped and base.cube_pos[2] - CUBE_HALF > 0.05:
                released_at = base.gripper_pos.copy()
            action = (expert(obs) if released_at is None
                      else _toward(base, released_at, suction=False))
        obs, _, terminated, truncated, info = env.step(action)
        rows.append(obs)
        infos.append(info)
        if terminated or truncated:
            break
    env.close()
    return {"observations": np.asarray(rows, np.float32),
            "progress": np.array([float(i["progress"]) for i in infos]),
            "stage": np.array([int(i["stage"]) for i in infos]),
            "success": bool(infos[-1]["is_success"]), "infos": infos, "seed": seed}


def pick_place_probes(seeds: list[int] | range = range(5), steps: int = 150
                      ) -> dict[str, list[dict[str, Any]]]:
    """``{probe: [episode, ...]}`` with each episode's ``observations`` (``T + 1`` rows),
    true ``progress`` and ``stage`` per state, ``success`` and ``infos``."""
    return {name: [_run(int(s), steps, name) for s in seeds] for name in PROBES}


__all__ = ["PROBES", "pick_place_probes"]
