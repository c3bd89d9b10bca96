"""Stage-aware progress models (SARM, Chen et al. 2025) for rewards, shaping and RA-BC.

Split like LeRobot's policies: :mod:`~rewardlearn.progress.configuration`
(settings), :mod:`~rewardlearn.progress.labels` (labels from annotations,
windows, rewind augmentation), :mod:`~rewardlearn.progress.modeling` (the
network and the saved model), :mod:`~rewardlearn.progress.training` (training
and VOC / stage-accuracy evaluation), :mod:`~rewardlearn.progress.rabc`
(reward-aligned behaviour-cloning weights), :mod:`~rewardlearn.progress.encoders`
(frozen frame encoders) and :mod:`~rewardlearn.progress.potential` (scoring
rollouts, the ``shaping=progress`` potential). ``reward=progress`` is
:class:`rewardlearn.progress.reward.ProgressReward`; the command is
``rewardlearn-train-progress``.
"""

from rewardlearn.progress.configuration import ProgressConfig
from rewardlearn.progress.encoders import DownsampleEncoder, FrameEncoder
from rewardlearn.progress.labels import (
    WindowTracker,
    load_annotations,
    progress_labels,
    rewind_sequence,
    spans_from_stages,
    stage_priors,
)
from rewardlearn.progress.modeling import Prediction, ProgressModel, StageProgressNet
from rewardlearn.progress.potential import ProgressPotential, ProgressScorer
from rewardlearn.progress.rabc import progress_gains, rabc_weights
from rewardlearn.progress.training import evaluate_progress, train_progress_model

__all__ = [
    "DownsampleEncoder",
    "FrameEncoder",
    "Prediction",
    "ProgressConfig",
    "ProgressModel",
    "ProgressPotential",
    "ProgressScorer",
    "StageProgressNet",
    "WindowTracker",
    "evaluate_progress",
    "load_annotations",
    "progress_gains",
    "progress_labels",
    "rabc_weights",
    "rewind_sequence",
    "spans_from_stages",
    "stage_priors",
    "train_progress_model",
]
