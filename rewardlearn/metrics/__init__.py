"""Reward evaluation: EPIC and STARC distances, preference accuracy, return correlation, VOC.

Library entry point: :func:`rewardlearn.cli.evaluate.evaluate_reward`; command line:
``rewardlearn-evaluate``.
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
from rewardlearn.metrics.reference import ANALYTIC, check_regressable, reference_reward
from rewardlearn.metrics.sampling import (
    Coverage,
    FrameTable,
    Rollouts,
    collect_rollouts,
    coverage_samples,
    frame_size_of,
    frame_table,
    reads_frames,
    reward_on,
)
from rewardlearn.metrics.starc import starc_distance, starc_from_canonical

__all__ = [
    "ANALYTIC",
    "Coverage",
    "FrameTable",
    "LabelledPairs",
    "Rollouts",
    "Transitions",
    "check_regressable",
    "collect_rollouts",
    "coverage_samples",
    "epic_canonicalize",
    "epic_distance",
    "frame_size_of",
    "frame_table",
    "oracle_pairs",
    "pairs_from_preference_checkpoint",
    "pearson_distance",
    "preference_accuracy",
    "progress_voc",
    "reads_frames",
    "reference_reward",
    "return_correlation",
    "reward_on",
    "starc_distance",
    "starc_from_canonical",
]
