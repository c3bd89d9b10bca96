"""Reward evaluation: EPIC and STARC distances, preference accuracy, return correlation, VOC.

Library entry point: :func:`rewardlearn.evaluate.evaluate_reward`; command line:
``python -m rewardlearn.evaluate``.
"""

from rewardlearn.metrics.epic import (
    Transitions,
    epic_canonicalize,
    epic_distance,
    pearson_distance,
)
from rewardlearn.metrics.ranking import (
    LabelledPairs,
    oracle_pairs,
    pairs_from_preference_checkpoint,
    preference_accuracy,
    progress_voc,
    return_correlation,
)
from rewardlearn.metrics.reference import reference_reward
from rewardlearn.metrics.sampling import Coverage, Rollouts, collect_rollouts, coverage_samples
from rewardlearn.metrics.starc import starc_distance, starc_from_canonical

__all__ = [
    "Coverage",
    "LabelledPairs",
    "Rollouts",
    "Transitions",
    "collect_rollouts",
    "coverage_samples",
    "epic_canonicalize",
    "epic_distance",
    "oracle_pairs",
    "pairs_from_preference_checkpoint",
    "pearson_distance",
    "preference_accuracy",
    "progress_voc",
    "reference_reward",
    "return_correlation",
    "starc_distance",
    "starc_from_canonical",
]
