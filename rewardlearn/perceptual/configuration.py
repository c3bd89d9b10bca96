"""Settings of the perceptual reward (Sermanet et al. 2016) and its goal-embedding variant."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewardlearn.settings import RewardModelConfig, Settings

AUTO = "auto"


@dataclass
class PerceptualConfig(Settings):
    """Step discovery, feature selection and reward knobs.

    Step discovery splits every demo into ``n_steps`` ordered segments minimising
    the within-segment sum of squared deviations of the standardised features
    (exact dynamic programme per demo, segments at least ``min_step_len`` frames),
    then refines the split jointly over the demos ``joint_iters`` times: each demo
    is re-aligned (monotonically) to the step means shared by all demos, and the
    means recomputed. ``n_steps="auto"`` (or ``None``) picks the smallest ``k`` in
    ``[k_min, k_max]`` after which one more step explains less than
    ``auto_threshold`` of the total feature variance (elbow of ``J(k) / J(1)``).
    Features with more than ``pca_dim`` dimensions are projected on their top
    ``pca_dim`` principal components for the split only.

    Per step, the ``n_features`` features whose in-step vs out-of-step mean gap
    divided by the summed spreads is largest are kept; a frame's step score is
    ``exp(-0.5 * mean_j min(|f_j - mu_j| / sigma_j, max_deviation)^2)`` over them. The
    cap (a truncated quadratic, ``None`` for none) keeps one feature far off the demos
    from deciding the step: a feature the demos held nearly constant (a cube that never
    tilts) is thousands of sigmas off as soon as a policy tilts it, and without the cap
    tiny differences of its step means then pick the step. Later steps weigh
    more: ``w_i = step_weight_base ** i`` (``step_weights="exponential"``, base 2 as in
    the paper) or ``w_i = i + 1`` (``"linear"``). ``aggregate="sum"`` is the paper's
    total ``sum_i w_i score_i / sum_i w_i``; ``"normalized"`` first turns the scores
    into a distribution over steps (``p_i = score_i / sum_j score_j``, the posterior of
    the per-step Gaussians) and gives ``sum_i w_i p_i / max_i w_i``: a frame far from
    every step no longer scores low everywhere. ``"gated"`` multiplies the normalized
    value by the best step's score, so a frame far from every demo step scores near 0
    (an out-of-distribution guard against policies that find such frames). All are in
    [0, 1].

    The goal embedding is the mean embedding of the demos' final frames
    (``goal_frames`` of them) unless a goal image is given; ``goal_metric`` is
    ``l2`` (``-||z - z_goal|| / sqrt(D)`` on standardised features, each feature's gap
    capped at ``max_deviation``) or ``cosine``.
    ``heldout`` of the demos (by episode, at least one when there are 5 or more)
    are kept out of fitting to report the boundary error and the Spearman
    correlation with time.
    """

    what = "perceptual"

    n_steps: int | str | None = AUTO
    k_min: int = 2
    k_max: int = 8
    auto_threshold: float = 0.03
    min_step_len: int = 2
    joint_iters: int = 10
    pca_dim: int | None = 64
    n_features: int = 32
    min_sigma: float = 0.05
    max_deviation: float | None = 5.0
    step_weights: str = "linear"
    step_weight_base: float = 2.0
    aggregate: str = "normalized"
    goal_frames: int = 1
    goal_metric: str = "l2"
    heldout: float = 0.0
    seed: int = 0

    def normalize(self) -> None:
        if self.n_steps is None:
            self.n_steps = AUTO
        if isinstance(self.n_steps, str) and self.n_steps != AUTO:
            self.n_steps = int(self.n_steps)

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (self.n_steps == AUTO or (isinstance(self.n_steps, int) and self.n_steps >= 1),
             "n_steps must be >= 1 or 'auto'"),
            (1 <= self.k_min <= self.k_max, "need 1 <= k_min <= k_max"),
            (self.auto_threshold > 0.0, "auto_threshold must be > 0"),
            (self.min_step_len >= 1, "min_step_len must be >= 1"),
            (self.joint_iters >= 0, "joint_iters must be >= 0"),
            (self.pca_dim is None or self.pca_dim >= 1, "pca_dim must be >= 1 or null"),
            (self.n_features >= 1, "n_features must be >= 1"),
            (self.min_sigma > 0.0, "min_sigma must be > 0"),
            (self.max_deviation is None or self.max_deviation > 0.0,
             "max_deviation must be > 0 or null"),
            (self.step_weight_base >= 1.0, "step_weight_base must be >= 1"),
            (self.step_weights in ("exponential", "linear"),
             "step_weights must be 'exponential' or 'linear'"),
            (self.aggregate in ("sum", "normalized", "gated"),
             "aggregate must be 'sum', 'normalized' or 'gated'"),
            (self.goal_frames >= 1, "goal_frames must be >= 1"),
            (self.goal_metric in ("l2", "cosine"), "goal_metric must be 'l2' or 'cosine'"),
            (0.0 <= self.heldout < 1.0, "heldout must be in [0, 1)"),
        ]

    @property
    def auto_k(self) -> bool:
        """Whether the number of steps is chosen from the data."""
        return self.n_steps == AUTO

    def weights(self, k: int) -> np.ndarray:
        """Per-step weights ``w_0..w_{k-1}`` (increasing)."""
        if self.step_weights == "linear":
            return np.arange(1, k + 1, dtype=np.float64)
        return self.step_weight_base ** np.arange(k, dtype=np.float64)


MODES = ("perceptual", "goal", "potential")


@RewardModelConfig.register_subclass("perceptual")
@dataclass
class PerceptualRewardConfig(RewardModelConfig):
    """Settings of ``reward=perceptual``.

    :param demos: demo dataset(s) to fit on (frames for frame encoders).
    :param path: a saved perceptual model instead of ``demos``.
    :param save: write the fitted model there (reusable as ``path``).
    :param mode: ``perceptual`` (``scale * (score - offset)``), ``goal`` (``scale *``
        similarity to the goal) or ``potential`` (shaping alone).
    :param scale: multiplies the score.
    :param offset: subtracted from the score in ``perceptual`` mode (1: every step before
        the task is done costs).
    :param goal: a goal image or ``.npy`` for ``goal`` mode (``None``: the demos' last
        frames).
    :param gamma: the shaping discount in ``potential`` mode (``None``: the agent's).
    :param encoder: ``{"target": <tcn|clip|torchvision|state|downsample|pkg.mod:Class>,
        "kwargs": {...}}``.
    :param settings: :class:`PerceptualConfig`: step discovery, features and scoring.
    """

    demos: str | None = None
    path: str | None = None
    save: str | None = None
    mode: str = "perceptual"
    scale: float = 1.0
    offset: float = 1.0
    goal: str | None = None
    gamma: float | None = None
    encoder: Any = field(default_factory=lambda: {"target": "tcn", "kwargs": {}})
    settings: Any = field(default_factory=PerceptualConfig)

    def normalize(self) -> None:
        if self.settings is None:
            self.settings = PerceptualConfig()
        elif not isinstance(self.settings, PerceptualConfig):
            self.settings = PerceptualConfig.from_kwargs(dict(self.settings))
        if isinstance(self.encoder, str):
            self.encoder = {"target": self.encoder, "kwargs": {}}

    def check_inputs(self) -> None:
        if self.demos is None and self.path is None:
            raise ValueError("reward=perceptual needs demos: reward.model.demos=<dataset from "
                             "rewardlearn-collect ... frames=true> (or reward.model.path=<a saved "
                             "perceptual model>)")
        if self.path is not None and not Path(self.path).is_file():
            raise FileNotFoundError(f"reward.model.path={self.path}: no such file")

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (self.mode in MODES, f"mode must be one of {MODES}"),
            (self.encoder is None or isinstance(self.encoder, dict),
             "encoder must be {target: <name or pkg.module:Class>, kwargs: {...}}"),
        ]


__all__ = ["AUTO", "MODES", "PerceptualConfig", "PerceptualRewardConfig"]
