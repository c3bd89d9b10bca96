"""``reward=env``: the environment's own reward, through the common protocol.

The ground-truth baseline. Train.py skips the reward wrapper entirely for it
(nothing to learn, no cost) unless shaping is stacked on top, where the shaped
module needs the env reward as its base.
"""

from __future__ import annotations

import numpy as np

from rewardlearn.rewards.base import RewardModel, RewardOutput, TransitionBatch


class EnvReward(RewardModel):
    """Returns ``batch.env_rewards`` unchanged."""

    name = "env"
    is_ground_truth = True

    def compute(self, batch: TransitionBatch) -> RewardOutput:
        if batch.env_rewards is None:
            raise ValueError("EnvReward needs batch.env_rewards (the wrappers fill it in)")
        return RewardOutput(np.asarray(batch.env_rewards, dtype=np.float32))
