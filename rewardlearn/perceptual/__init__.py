"""Perceptual rewards from a few demonstrations (Sermanet et al. 2016) and goal embeddings.

Split like :mod:`rewardlearn.progress`: :mod:`~rewardlearn.perceptual.configuration`
(settings), :mod:`~rewardlearn.perceptual.steps` (step discovery, feature
selection, boundary metrics), :mod:`~rewardlearn.perceptual.modeling` (the fitted
model, saving), :mod:`~rewardlearn.perceptual.training` (fitting on demos, held-out
evaluation) and :mod:`~rewardlearn.perceptual.potential` (``shaping=perceptual``).
Encoders live in :mod:`rewardlearn.encoders`. ``reward=perceptual`` is
:class:`rewardlearn.perceptual.reward.PerceptualReward`.
"""

from rewardlearn.perceptual.configuration import PerceptualConfig
from rewardlearn.perceptual.modeling import PerceptualModel, PerceptualPrediction, StepModel
from rewardlearn.perceptual.potential import (
    PerceptualPotential,
    build_perceptual_model,
    load_goal_frames,
    set_goal,
)
from rewardlearn.perceptual.steps import (
    boundaries_from_stages,
    boundary_error,
    choose_k,
    discover_steps,
    segment_sequence,
    select_features,
)
from rewardlearn.perceptual.training import evaluate_perceptual, fit_perceptual

__all__ = [
    "PerceptualConfig",
    "PerceptualModel",
    "PerceptualPotential",
    "PerceptualPrediction",
    "StepModel",
    "boundaries_from_stages",
    "boundary_error",
    "build_perceptual_model",
    "choose_k",
    "discover_steps",
    "evaluate_perceptual",
    "fit_perceptual",
    "load_goal_frames",
    "segment_sequence",
    "select_features",
    "set_goal",
]
