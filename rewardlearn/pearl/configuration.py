"""Settings of PEARL, cross-task preference transfer (``conf/reward/pearl.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rewardlearn.pearl.transport import SOLVERS
from rewardlearn.settings import (
    ENCODER_SPEC_ERROR,
    RewardModelConfig,
    encoder_spec,
    encoder_spec_ok,
    positive_widths,
)


@RewardModelConfig.register_subclass("pearl")
@dataclass
class PEARLConfig(RewardModelConfig):
    """Settings of ``reward=pearl`` (Liu et al., ICML 2024; its exact settings are not
    confirmed, REFERENCE.md 10.3, so these are this package's choices).

    :param source: the labelled source run: a ``reward=preference`` run's folder or its
        ``reward_model.pt`` (its labels, synthetic or human). Required.
    :param source_pairs: source labelled pairs used at most (both their segments are GW
        points; drawn at random when the run has more).
    :param segment_length: steps per target segment (``None``: the source's).
    :param target_segments: target segments per round, drawn from the agent's experience
        (GW points on the target side).
    :param labels_per_round: transferred target labels kept per round: the distinct pairs
        with the highest coverage among ``candidates_factor`` times as many candidates, drawn
        where the labelled source pairs send their transport mass
        (:func:`~rewardlearn.pearl.transport.candidate_pairs`).
    :param candidates_factor: candidate target pairs drawn per kept label.
    :param min_coverage: transferred labels with less labelled transport mass are dropped.
    :param rounds: transfer rounds (each with fresh target segments; labels accumulate).
    :param first_round_at: env steps before the first round.
    :param feedback_until: share of training by which the rounds are done.
    :param align_encoder: the features the alignment compares, per step: ``null`` every
        per-step feature as it is; a state encoder of :mod:`rewardlearn.encoders`, applied
        to the observation columns of both tasks' steps (so both tasks must lay their
        observation out alike, as all Meta-World v3 tasks do). ``{target: distances,
        kwargs: ${env.relative_features}}``: hand-to-object and object-to-goal distances
        and the gripper, which stay alike when the target turns or mirrors the source's
        geometry. Only the alignment reads it; the reward still sees every feature.
    :param structure_weight: ``1.0``: pure GW (PEARL as published: only each task's
        internal distances). Below 1: fused GW, which adds the source-to-target
        feature distance with weight ``1 - structure_weight`` (needs the same features on
        both sides: an ``align_encoder``).
    :param solver: ``exact`` (``ot.gromov.gromov_wasserstein``) or ``entropic``.
    :param epsilon: entropic regularisation (normalised distances).
    :param gw_max_iter: GW solver iterations at most.
    :param target_budget: real target labels from the teacher on top (0: none, the
        zero-label setting), spread over the rounds and asked on the round's best-covered
        transferred pairs; they also check the transferred labels' orientation (GW's mirror
        ambiguity): when most disagree with the transferred ones, the round's transferred
        labels are flipped.
    :param use_action, use_next_obs: the reward's per-step inputs ``r(s, a)`` by default.
    :param hidden_sizes: hidden widths of the Gaussian reward.
    :param sigma0: the preset per-step reward std the regulariser pulls ``sigma`` to.
    :param sigma_weight: weight of that regulariser.
    :param lr: Adam learning rate.
    :param batch_size: label pairs per step.
    :param epochs: epochs over every label so far, per round.
    :param buffer_capacity: transitions kept for target segments.
    :param device: torch device (``auto``: CUDA when present).
    :param seed: initialisation and sampling seed.
    """

    source: str | None = None
    source_pairs: int = 300
    segment_length: int | None = None
    target_segments: int = 200
    labels_per_round: int = 1000
    candidates_factor: int = 4
    min_coverage: float = 0.0
    rounds: int = 3
    first_round_at: int = 2000
    feedback_until: float = 0.5
    align_encoder: Any = None
    structure_weight: float = 1.0
    solver: str = "exact"
    epsilon: float = 0.01
    gw_max_iter: int = 1000
    target_budget: int = 0
    use_action: bool = True
    use_next_obs: bool = False
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])
    sigma0: float = 0.1
    sigma_weight: float = 0.1
    lr: float = 3e-4
    batch_size: int = 128
    epochs: int = 20
    buffer_capacity: int = 100_000
    device: str = "auto"
    seed: int | None = 0

    def normalize(self) -> None:
        self.align_encoder = encoder_spec(self.align_encoder)

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (encoder_spec_ok(self.align_encoder), "align_" + ENCODER_SPEC_ERROR),
            (0.0 < self.structure_weight <= 1.0,
             f"structure_weight must be in (0, 1] (1: pure GW), got {self.structure_weight}"),
            (bool(self.source), "source must name a labelled run (reward.model.source=runs/"
             "<run> of a reward=preference run, or its reward_model.pt)"),
            (self.source_pairs >= 2, "source_pairs must be >= 2"),
            (self.segment_length is None or self.segment_length >= 2,
             "segment_length must be >= 2 or null (the source's)"),
            (self.target_segments >= 3, "target_segments must be >= 3"),
            (self.labels_per_round >= 1, "labels_per_round must be >= 1"),
            (self.candidates_factor >= 1, "candidates_factor must be >= 1"),
            (0 <= self.min_coverage <= 1, "min_coverage must be in [0, 1]"),
            (self.rounds >= 1, "rounds must be >= 1"),
            (self.first_round_at >= 0, "first_round_at must be >= 0"),
            (0 < self.feedback_until <= 1, "feedback_until must be in (0, 1]"),
            (self.solver in SOLVERS, f"solver must be one of {SOLVERS}"),
            (self.epsilon > 0, "epsilon must be > 0"),
            (self.gw_max_iter >= 1, "gw_max_iter must be >= 1"),
            (self.target_budget >= 0, "target_budget must be >= 0"),
            (positive_widths(self.hidden_sizes), "hidden_sizes must be positive layer widths"),
            (self.sigma0 > 0, "sigma0 must be > 0"),
            (self.sigma_weight >= 0, "sigma_weight must be >= 0"),
            (self.lr > 0, "lr must be > 0"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.buffer_capacity >= (self.segment_length or 2),
             "buffer_capacity must be >= segment_length"),
        ]

    def check_inputs(self) -> None:
        from rewardlearn.pearl.source import read_source

        read_source(str(self.source), max_pairs=2)

    def run_warnings(self, algo: str, total_timesteps: int) -> list[str]:
        if self.first_round_at >= total_timesteps:
            return [f"first_round_at={self.first_round_at} >= total_timesteps="
                    f"{total_timesteps}: no round will run, so the agent trains on an "
                    "untrained reward"]
        return []


__all__ = ["PEARLConfig"]
