"""rewardlearn_envs: MuJoCo tasks of our own (installed from envs/).

Importing this package registers ``rewardlearn/PickPlace-v0`` and
``rewardlearn/HumanoidTextured-v5`` with gymnasium; without an explicit import,
``gym.make("rewardlearn_envs:rewardlearn/PickPlace-v0")`` imports it first.
"""

from __future__ import annotations

import gymnasium
from rewardlearn_envs.expert import SUPPORTED_ENVS, PickPlaceExpert, expert_for
from rewardlearn_envs.pick_place import STATE_DIM, STATE_LAYOUT, PickPlaceEnv
from rewardlearn_envs.textured import textured_xml

PICK_PLACE_ID = "rewardlearn/PickPlace-v0"
PICK_PLACE_MAX_STEPS = 150
"""Time limit of PickPlace-v0 (steps of 40 ms); the noise-free expert needs ~31 steps."""

if PICK_PLACE_ID not in gymnasium.registry:
    gymnasium.register(
        id=PICK_PLACE_ID,
        entry_point="rewardlearn_envs.pick_place:PickPlaceEnv",
        max_episode_steps=PICK_PLACE_MAX_STEPS,
    )

HUMANOID_TEXTURED_ID = "rewardlearn/HumanoidTextured-v5"
"""Humanoid-v5 with realistic floor, sky and body textures (VLM-RM's look, generated)."""

if HUMANOID_TEXTURED_ID not in gymnasium.registry:
    gymnasium.register(
        id=HUMANOID_TEXTURED_ID,
        entry_point="rewardlearn_envs.textured:make_textured_humanoid",
        max_episode_steps=1000,
    )

__all__ = [
    "HUMANOID_TEXTURED_ID",
    "PICK_PLACE_ID",
    "PICK_PLACE_MAX_STEPS",
    "STATE_DIM",
    "STATE_LAYOUT",
    "SUPPORTED_ENVS",
    "PickPlaceEnv",
    "PickPlaceExpert",
    "expert_for",
    "textured_xml",
]
