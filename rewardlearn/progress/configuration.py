"""Settings of the stage-aware progress model (SARM) and its training."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardlearn.settings import RewardModelConfig, Settings, positive_widths

LABELS = ("spans", "frames", "failure")
RANK_LOSSES = ("logistic", "margin")


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
    ``failure`` is ``frames`` made failure-aware
    (:func:`~rewardlearn.progress.labels.failure_aware_labels`): only a run of equal
    stages that advanced (the next stage is higher, or the episode succeeded at its end)
    gets ``tau`` from the clock; the frames of a run that never advanced (a stall, the
    carry before a drop, a failed episode's last stage) keep ``tau = 0`` and weigh
    ``stall_weight`` in the ``tau`` regression (0: excluded, only ranked). With
    ``failure`` labels a ranking term is added (``rank_weight``): those stalled frames
    rank below the advancing frames of successful episodes at the same stage, on the
    ``tau`` head conditioned on that stage, ``rank_pairs`` pairs per batch:
    ``logistic``: ``softplus(-(z_hi - z_lo))`` on ``tau``'s logits (Bradley-Terry);
    ``margin``: ``relu(rank_margin - (tau_hi - tau_lo))``.
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
    stall_weight: float = 1.0
    rank_weight: float = 1.0
    rank_loss: str = "logistic"
    rank_margin: float = 0.1
    rank_pairs: int = 128

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (self.window >= 1, "window must be >= 1"),
            (positive_widths(self.hidden_sizes), "hidden_sizes must be positive layer widths"),
            (self.stride >= 1, "stride must be >= 1"),
            (self.frame_dim >= 1, "frame_dim must be >= 1"),
            (0.0 <= self.true_stage_prob <= 1.0, "true_stage_prob must be in [0, 1]"),
            (self.rewind_fraction >= 0.0, "rewind_fraction must be >= 0"),
            (self.rewind_max >= 1, "rewind_max must be >= 1"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (0.0 <= self.heldout < 1.0, "heldout must be in [0, 1)"),
            (self.labels in LABELS, f"labels must be one of {LABELS}"),
            (self.stall_weight >= 0.0, "stall_weight must be >= 0"),
            (self.rank_weight >= 0.0, "rank_weight must be >= 0"),
            (self.rank_loss in RANK_LOSSES, f"rank_loss must be one of {RANK_LOSSES}"),
            (0.0 <= self.rank_margin <= 1.0, "rank_margin must be in [0, 1]"),
            (self.rank_pairs >= 1, "rank_pairs must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
        ]


@dataclass
class OnlineConfig(Settings):
    """Online refinement of a progress model on the agent's own rollouts (``online:``).

    Off unless ``enabled``. Each env's episodes are recorded with the env's stage and
    success signals only (``info[stage_key]``, ``info[success_key]``; never its reward or
    true progress) and labelled failure-aware
    (:func:`~rewardlearn.progress.labels.failure_aware_labels`); the last
    ``buffer_episodes`` finished episodes are kept. Every ``update_every`` env steps (once
    ``min_episodes`` have finished), ``train_steps`` Adam steps (``lr``) on mixed batches of
    ``batch_size`` windows, ``demo_fraction`` of them from ``demos`` (comma-separated
    datasets, failure-aware labels too; they stay in for the whole run, so the model cannot
    forget the task) and the rest from the agent's episodes, with the model's own losses
    (stage cross-entropy + ``tau_weight`` x weighted MSE + ``rank_weight`` x ranking: the
    frames where an episode stalled rank below advancing frames of successful episodes
    (demos or the agent's) at the same stage). The updated network becomes a new model
    version; each env switches to it at its next episode start, so within an episode one
    ``Phi`` shapes every transition (dynamic shaping stays exact).
    """

    what = "progress online"

    enabled: bool = False
    demos: str | None = None
    max_demos: int | None = None
    update_every: int = 16384
    train_steps: int = 200
    batch_size: int = 256
    demo_fraction: float = 0.5
    lr: float = 3e-4
    buffer_episodes: int = 400
    min_episodes: int = 16
    stage_key: str = "stage"
    success_key: str = "is_success"
    seed: int = 0

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (not self.enabled or bool(self.demos),
             "demos must name the demo datasets when enabled (they stay in the training "
             "data so the model cannot forget the task)"),
            (self.max_demos is None or self.max_demos >= 1, "max_demos must be >= 1 or null"),
            (self.update_every >= 1, "update_every must be >= 1"),
            (self.train_steps >= 1, "train_steps must be >= 1"),
            (self.batch_size >= 2, "batch_size must be >= 2"),
            (0.0 < self.demo_fraction < 1.0,
             "demo_fraction must be in (0, 1): demos and agent data share each batch"),
            (self.lr > 0, "lr must be > 0"),
            (self.buffer_episodes >= 1, "buffer_episodes must be >= 1"),
            (1 <= self.min_episodes <= self.buffer_episodes,
             "min_episodes must be in [1, buffer_episodes]"),
        ]


REWARD_MODES = ("potential", "delta", "level")


@RewardModelConfig.register_subclass("progress")
@dataclass
class ProgressRewardConfig(RewardModelConfig):
    """Settings of ``reward=progress`` (and its ``progress_delta``/``progress_level`` presets).

    :param path: ``progress_model.pt`` from ``rewardlearn-train-progress``.
    :param mode: ``potential`` (success bonus + shaping with ``Phi = scale * (progress -
        offset)``), ``delta`` (raw progress delta, comparison only) or ``level``
        (``scale * (progress(s') - offset)`` per step).
    :param success_bonus: reward when progress reaches ``1 - delta``.
    :param delta: success threshold margin.
    :param bonus_once: pay the bonus at most once per episode.
    :param scale: ``Phi``'s (or ``level``'s) scale.
    :param offset: ``Phi = scale * (progress - offset)``; 1: 0 at completion.
    :param gamma: shaping discount (``None``: the agent's).
    :param device: torch device of the model.
    :param stage_key: read each ``s'``'s stage from ``info[stage_key]`` (the model then
        gives the within-stage progress); ``None``: the model's stage.
    :param online: :class:`OnlineConfig`: refine the model on the agent's rollouts (off).
    """

    path: str | None = None
    mode: str = "potential"
    success_bonus: float = 1.0
    delta: float = 0.05
    bonus_once: bool = True
    scale: float = 1.0
    offset: float = 1.0
    gamma: float | None = None
    device: str = "cpu"
    stage_key: str | None = None
    online: Any = field(default_factory=OnlineConfig)

    def normalize(self) -> None:
        if self.online is None:
            self.online = OnlineConfig()
        elif not isinstance(self.online, OnlineConfig):
            self.online = OnlineConfig.from_kwargs(dict(self.online))
        self.stage_key = self.stage_key or None

    def check_inputs(self) -> None:
        if self.path is None:
            raise ValueError("reward=progress needs a model: reward.model.path=<progress_model.pt "
                             "from rewardlearn-train-progress>")
        if not Path(self.path).is_file():
            raise FileNotFoundError(f"reward.model.path={self.path}: no such file; train one "
                                    "with rewardlearn-train-progress")
        if self.online.enabled:
            from rewardlearn.demos import open_dataset

            for demos in str(self.online.demos).split(","):
                open_dataset(demos.strip())

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (self.mode in REWARD_MODES, f"mode must be one of {REWARD_MODES}"),
            (0.0 <= self.delta < 1.0, "delta must be in [0, 1)"),
        ]


__all__ = ["LABELS", "RANK_LOSSES", "REWARD_MODES", "OnlineConfig", "ProgressConfig",
           "ProgressRewardConfig"]
