"""Reward modules. Every module implements :class:`RewardModel` (batched over transitions)."""

from rewardlearn.rewards.base import (
    NonFiniteRewardError,
    RewardModel,
    RewardOutput,
    TransitionBatch,
)
from rewardlearn.rewards.checkpoint import (
    SpaceMismatchError,
    load_reward_model,
    save_reward_model,
)
from rewardlearn.rewards.env import EnvReward
from rewardlearn.rewards.mlp import MLPReward
from rewardlearn.rewards.pretrained import load_pretrained, push_to_hub, save_pretrained

__all__ = [
    "EnvReward",
    "MLPReward",
    "NonFiniteRewardError",
    "RewardModel",
    "RewardOutput",
    "SpaceMismatchError",
    "TransitionBatch",
    "load_pretrained",
    "load_reward_model",
    "push_to_hub",
    "save_pretrained",
    "save_reward_model",
]
