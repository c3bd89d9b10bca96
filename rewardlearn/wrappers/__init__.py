"""Environment wrappers: frame capture, and the reward wrappers for SB3 and Gymnasium."""

from rewardlearn.wrappers.frames import FrameCapture
from rewardlearn.wrappers.gym import LearnedRewardWrapper
from rewardlearn.wrappers.vec import (
    DeferredRewardCallback,
    RewardLoggingCallback,
    RewardVecEnvWrapper,
)

__all__ = ["DeferredRewardCallback", "FrameCapture", "LearnedRewardWrapper",
           "RewardLoggingCallback", "RewardVecEnvWrapper"]
