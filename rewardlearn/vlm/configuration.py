"""Settings of the VLM rewards (``conf/reward/vlm.yaml``, ``vlm_distilled.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rewardlearn.settings import RewardModelConfig, positive_widths

INPUTS = ("pixels", "state")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def prompts(value: Any) -> list[str]:
    """A prompt set from a string, a list of strings or ``None`` (empty)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    out = [str(v) for v in value]
    if any(not p.strip() for p in out):
        raise ValueError(f"empty prompt in {out}")
    return out


@dataclass
class PromptConfig(RewardModelConfig):
    """The VLM-RM prompts and CLIP model shared by ``reward=vlm`` and ``vlm_distilled``.

    :param goal: goal prompt or list of prompts (embeddings averaged, not renormalised).
    :param baseline: baseline prompt(s); needed when ``alpha > 0``.
    :param alpha: projection onto the goal-baseline direction in ``[0, 1]`` (0: plain
        CLIP cosine similarity, up to an affine map).
    :param clip_model: open_clip model name, ``local-dir:/path`` or ``hf-hub:org/repo``
        (the paper's ViT-bigG-14 is a GPU model; on a CPU use e.g. ViT-B-32).
    :param pretrained: open_clip tag, weights file, or ``None`` (random weights).
    :param device: ``auto``, ``cpu``, ``cuda``...
    :param precision: ``auto`` (fp16 on CUDA; bf16 on CPUs with native bf16, else fp32),
        ``fp32``, ``fp16`` (CUDA), ``bf16``.
    :param cache_dir: download/cache folder for weights.
    :param quick_gelu: force QuickGELU (OpenAI weights from a file); ``None`` decides.
    """

    goal: Any = None
    baseline: Any = None
    alpha: float = 0.5
    clip_model: str = "ViT-bigG-14"
    pretrained: str | None = "laion2b_s39b_b160k"
    device: str = "auto"
    precision: str = "auto"
    cache_dir: str | None = None
    quick_gelu: bool | None = None

    def normalize(self) -> None:
        self.goal = prompts(self.goal)
        self.baseline = prompts(self.baseline)

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (bool(self.goal), f"goal must be a prompt, e.g. reward.model.goal='a humanoid "
             f"robot kneeling' (reward={self.reward_name})"),
            (0.0 <= self.alpha <= 1.0, "alpha must be in [0, 1]"),
            (self.alpha == 0 or bool(self.baseline),
             "alpha > 0 needs baseline prompts (reward.model.baseline='a humanoid robot'), or "
             "set reward.model.alpha=0 for plain CLIP similarity"),
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}"),
        ]


@RewardModelConfig.register_subclass("vlm")
@dataclass
class VLMConfig(PromptConfig):
    """Settings of ``reward=vlm`` (VLM-RM, Rocamonde et al. 2023): :class:`PromptConfig` and

    :param threads: CPU threads for encoding; ``None`` measures 1 thread vs all cores per
        batch size and uses the faster.
    :param batch_size: images per forward pass.
    :param frame_stride: score every ``k``-th step (and each episode's first and last) and
        hold the score in between.
    """

    threads: int | None = None
    batch_size: int = 64
    frame_stride: int = 1

    def checks(self) -> list[tuple[bool, str]]:
        return [*super().checks(),
                (self.batch_size >= 1, "batch_size must be >= 1"),
                (self.frame_stride >= 1, "frame_stride must be >= 1"),
                (self.threads is None or self.threads >= 1, "threads must be >= 1 or null")]


@RewardModelConfig.register_subclass("vlm_distilled")
@dataclass
class VLMDistilledConfig(PromptConfig):
    """Settings of ``reward=vlm_distilled`` (ONI-style distillation): :class:`PromptConfig`
    and

    :param vlm_threads: CPU threads of the labelling thread (the rest: the agent).
    :param vlm_batch_size: frames per VLM call.
    :param label_fraction: share of training transitions sent to the VLM.
    :param max_pending: labelling queue bound (the oldest frames are dropped beyond it).
    :param inputs: ``pixels`` (a small CNN on frames of ``pixel_size``) or ``state`` (an
        MLP on the next observation).
    :param pixel_size: side of the frames the CNN reads.
    :param hidden_sizes: hidden layers of the MLP (``state``) or of the CNN's head.
    :param lr: Adam learning rate of the distilled model.
    :param train_every: env steps between fits.
    :param train_steps: Adam steps per fit.
    :param train_batch_size: labels per step.
    :param min_labels: labels needed before the first fit (reward 0 until then).
    :param max_labels: training labels kept (the oldest dropped).
    :param heldout_fraction: labels kept out of training for the Spearman check.
    :param load_vlm: ``False``: the saved distilled model only (no VLM, no labelling).
    :param seed: sampling and initialisation seed.
    """

    vlm_threads: int | None = 1
    vlm_batch_size: int = 16
    label_fraction: float = 0.1
    max_pending: int = 512
    inputs: str = "pixels"
    pixel_size: int = 56
    hidden_sizes: list[int] = field(default_factory=lambda: [256])
    lr: float = 1e-3
    train_every: int = 2000
    train_steps: int = 200
    train_batch_size: int = 128
    min_labels: int = 200
    max_labels: int = 50_000
    heldout_fraction: float = 0.1
    load_vlm: bool = True
    seed: int | None = 0

    def checks(self) -> list[tuple[bool, str]]:
        prompt_checks = super().checks() if self.load_vlm else []
        return [
            *prompt_checks,
            (0.0 < self.label_fraction <= 1.0, "label_fraction must be in (0, 1]"),
            (0.0 <= self.heldout_fraction < 1.0, "heldout_fraction must be in [0, 1)"),
            (self.inputs in INPUTS, f"inputs must be one of {INPUTS}"),
            (self.vlm_batch_size >= 1, "vlm_batch_size must be >= 1"),
            (self.train_batch_size >= 1, "train_batch_size must be >= 1"),
            (self.train_every >= 1, "train_every must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (positive_widths(self.hidden_sizes), "hidden_sizes must be positive layer widths"),
            (self.pixel_size >= 8, "pixel_size must be >= 8"),
        ]


__all__ = ["INPUTS", "PRECISIONS", "PromptConfig", "VLMConfig", "VLMDistilledConfig",
           "prompts"]
