"""Settings of the stage-indexed learned dense reward (``conf/reward/drs.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rewardlearn.drs.modeling import ACTIVATIONS
from rewardlearn.settings import (
    ENCODER_SPEC_ERROR,
    RewardModelConfig,
    encoder_spec,
    encoder_spec_ok,
    positive_widths,
)

FORMS = ("negative", "stage")
STANDARDIZE = ("demos", "none")
LABELINGS = ("state", "trajectory")


@RewardModelConfig.register_subclass("drs")
@dataclass
class DrSConfig(RewardModelConfig):
    """Knobs of :class:`~rewardlearn.drs.reward.DrSReward` (DrS, Mu et al., ICLR 2024).

    Annotations: ``stage_key`` and ``success_key`` name the env's ``info`` entries with the
    stage index (0, 1, ..., ``num_stages - 1``) and task success; ``num_stages`` ``None``
    reads ``info["num_stages"]`` (or the demos' highest stage + 1). Nothing else of the env
    is read: no reward, no progress.

    Reward: ``r = k + alpha * tanh(D_k(s'))`` for a state ``s'`` in stage ``k``, and
    ``r = num_stages`` at success. ``alpha < 0.5`` keeps the stage ranges apart, so reaching
    a later stage always pays more than polishing an earlier one. ``form="negative"``
    returns ``r / num_stages - 1`` (in ``[-1 - alpha / K, 0]``, 0 at success) so that an env
    that ends on success makes success the best outcome; ``"stage"`` returns ``r`` as is (for envs
    with a fixed horizon).

    Classifiers: one MLP per stage (``hidden_sizes``, ``activation``) over the flat ``s'``
    or a state ``encoder``'s features of it (``{target: relative, kwargs: {pairs, keep}}``:
    object minus hand and goal minus object, the same wherever an episode's random layout
    puts the object; an env config's ``relative_features`` names them; frame encoders are
    refused),
    or one trunk with a logit per stage (``shared_trunk``); ``lipschitz`` (``L``, default 1;
    null: unbounded, as published) bounds each logit's slope to ``L`` per standard
    deviation of the states (spectral norm, :class:`~rewardlearn.drs.modeling.StageClassifier`),
    so the score ramps towards the demos over the agent's states instead of falling to
    -1 a few centimetres off their path (docs/drs.md); ``standardize`` ``"demos"``
    standardises the inputs by the demos' mean and std (or the first data's), ``"none"``
    feeds raw states. Every ``update_every`` env steps, ``train_steps`` Adam steps
    (``lr``, ``batch_size`` states per stage, half positive, half negative) on the
    per-stage buffers (``buffer_size`` states per stage and label, oldest dropped).
    ``demos`` (comma-separated datasets, at most ``max_demos`` episodes) seed the
    positives and stay in for the whole run; ``min_negatives`` agent failures are needed
    before a stage's classifier is trained (until then its term is 0).
    ``mixup`` > 0 adds, per stage and step, a loss of that weight on blends
    ``lam * pos + (1 - lam) * neg`` (``lam ~ U(0, 1)``) with the soft label ``lam``
    (mixup, Zhang et al., ICLR 2018), so the score rises from the agent's states toward
    the demos' before the agent first succeeds at a stage (off by default; docs/drs.md).
    ``labels`` picks the training sets: ``"state"`` labels each state of stage ``k`` by
    whether its episode later advanced (:func:`~rewardlearn.drs.labels.episode_labels`);
    ``"trajectory"`` is the published code's rule: every state of an episode that got
    past stage ``k`` is a positive of ``D_k``, every state of one that did not a negative
    (:class:`~rewardlearn.drs.labels.TrajectoryBuffers`).
    ``positive_tail`` < 1 (``labels="state"`` only) keeps, of each episode's positives of
    a stage, only the last fraction in time (the states near the stage's exit; 1 = every
    one, as published).
    """

    demos: str | None = None
    max_demos: int | None = 50
    stage_key: str = "stage"
    success_key: str = "is_success"
    num_stages: int | None = None
    alpha: float = 0.3
    form: str = "negative"
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])
    activation: str = "leaky_relu"
    shared_trunk: bool = True
    lipschitz: float | None = 1.0
    standardize: str = "demos"
    lr: float = 3e-4
    weight_decay: float = 1e-4
    batch_size: int = 256
    train_steps: int = 100
    update_every: int = 4096
    buffer_size: int = 100_000
    min_negatives: int = 256
    labels: str = "state"
    positive_tail: float = 1.0
    mixup: float = 0.0
    encoder: Any = None
    device: str = "cpu"
    seed: int = 0

    def check_inputs(self) -> None:
        if self.demos:
            from rewardlearn.demos import open_dataset

            for demos in str(self.demos).split(","):
                open_dataset(demos.strip())

    def normalize(self) -> None:
        self.encoder = encoder_spec(self.encoder)

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (encoder_spec_ok(self.encoder), ENCODER_SPEC_ERROR),
            (0.0 < self.alpha < 0.5, f"alpha must be in (0, 0.5), got {self.alpha}"),
            (positive_widths(self.hidden_sizes), "hidden_sizes must be positive layer widths"),
            (self.activation in ACTIVATIONS,
             f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}"),
            (self.lipschitz is None or self.lipschitz > 0,
             f"lipschitz must be > 0 or null, got {self.lipschitz}"),
            (self.standardize in STANDARDIZE,
             f"standardize must be one of {STANDARDIZE}, got {self.standardize!r}"),
            (self.form in FORMS, f"form must be one of {FORMS}, got {self.form!r}"),
            (self.num_stages is None or self.num_stages >= 1, "num_stages must be >= 1"),
            (self.max_demos is None or self.max_demos >= 1, "max_demos must be >= 1 or null"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.batch_size >= 2, f"batch_size must be >= 2, got {self.batch_size}"),
            (self.train_steps >= 1, "train_steps must be >= 1"),
            (self.update_every >= 1, "update_every must be >= 1"),
            (self.buffer_size >= self.batch_size, "buffer_size must be >= batch_size"),
            (self.min_negatives >= 1, "min_negatives must be >= 1"),
            (self.mixup >= 0.0, f"mixup must be >= 0, got {self.mixup}"),
            (self.labels in LABELINGS,
             f"labels must be one of {LABELINGS}, got {self.labels!r}"),
            (self.labels == "state" or self.positive_tail == 1.0,
             "positive_tail applies to labels=state only; leave it at 1.0 with "
             "labels=trajectory"),
            (0.0 < self.positive_tail <= 1.0,
             f"positive_tail must be in (0, 1], got {self.positive_tail}"),
        ]


__all__ = ["FORMS", "LABELINGS", "STANDARDIZE", "DrSConfig"]
