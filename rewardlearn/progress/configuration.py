"""Settings of the stage-aware progress model (SARM) and its training."""

from __future__ import annotations

from dataclasses import dataclass, field

from rewardlearn.settings import Settings


@dataclass
class ProgressConfig(Settings):
    """Model and training knobs, with defaults that reach the targets on ``pick_place``.

    Model: each of the ``window`` frames (``stride`` frames apart, ending at the
    current one; the episode's first frame repeats before it starts) is
    projected to ``frame_dim`` features, the window goes through an MLP trunk
    (``hidden_sizes``), then a stage classifier and a within-stage progress
    head ``tau`` (sigmoid) conditioned on the stage (one-hot). Progress is
    ``P_{k-1} + alpha_k * tau`` with ``k`` the predicted stage.

    Training: Adam (``lr``, ``weight_decay``) for ``epochs`` over every frame of
    the training demos, ``batch_size`` windows per step; the ``tau`` head is
    conditioned on the true stage with probability ``true_stage_prob`` and on the
    predicted one otherwise (SARM: 0.75); loss = cross-entropy + ``tau_weight`` x
    MSE. Rewind augmentation adds ``rewind_fraction`` x (number of frames)
    windows per epoch that play the episode to ``t`` and then back ``r`` frames
    (``r`` up to ``rewind_max``), labelled with the progress of the frame they end
    on. ``heldout`` of the demos (by episode) are kept for evaluation.

    Labels (``labels``): ``spans`` is SARM's subtask-span labelling (per-frame stages
    become spans through their running maximum); ``frames`` keeps each frame's own
    stage when the stages come from the env and can go back (a dropped cube), with
    ``tau`` over each run of equal stages. Annotation files always use spans.
    """

    what = "progress"

    window: int = 4
    stride: int = 2
    frame_dim: int = 64
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])
    true_stage_prob: float = 0.75
    tau_weight: float = 1.0
    rewind_fraction: float = 0.3
    rewind_max: int = 20
    lr: float = 1e-3
    weight_decay: float = 1e-5
    epochs: int = 60
    batch_size: int = 256
    heldout: float = 0.2
    device: str = "cpu"
    seed: int = 0
    labels: str = "frames"

    def normalize(self) -> None:
        self.hidden_sizes = [int(h) for h in self.hidden_sizes]

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (self.window >= 1, "window must be >= 1"),
            (self.stride >= 1, "stride must be >= 1"),
            (self.frame_dim >= 1, "frame_dim must be >= 1"),
            (0.0 <= self.true_stage_prob <= 1.0, "true_stage_prob must be in [0, 1]"),
            (self.rewind_fraction >= 0.0, "rewind_fraction must be >= 0"),
            (self.rewind_max >= 1, "rewind_max must be >= 1"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (0.0 <= self.heldout < 1.0, "heldout must be in [0, 1)"),
            (self.labels in ("spans", "frames"), "labels must be 'spans' or 'frames'"),
            (self.lr > 0, "lr must be > 0"),
        ]


__all__ = ["ProgressConfig"]
