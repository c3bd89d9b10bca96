"""Settings of the optimal-transport proxy reward (``conf/reward/ot.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rewardlearn.ot.modeling import METRICS, VARIANTS
from rewardlearn.settings import (
    ENCODER_SPEC_ERROR,
    RewardModelConfig,
    encoder_spec,
    encoder_spec_ok,
)


@RewardModelConfig.register_subclass("ot")
@dataclass
class OTConfig(RewardModelConfig):
    """Knobs of :class:`~rewardlearn.ot.reward.OTReward` (ROT, Haldar et al. CoRL 2022; ADS,
    Liu et al. ICLR 2024; TemporalOT, Fu et al. NeurIPS 2024).

    Demos: ``demos`` (comma-separated datasets from ``rewardlearn-collect``, or Minari ids),
    the first ``max_demos`` episodes (successful ones first); only their observations (or
    frames) are read, never their actions. ``pad_demos``: a demo shorter than the agent's
    episode is extended with its last observation to the episode's length
    (``rewardlearn-collect`` ends a demo at success, Meta-World's training episodes run 500
    steps: the expert then holds its goal state), so the uniform marginals match step ``i``
    with demo step ``i``.

    Features and cost: ``encoder`` ``None`` uses the flat state; an encoder
    (``{target: relative|state|tcn|clip|torchvision|downsample|pkg.mod:Class, kwargs}``,
    :mod:`rewardlearn.encoders`; frame encoders need demos collected with ``frames=true``)
    embeds each ``s'``. ``relative`` (object minus hand, goal minus object) is the one for
    a random object layout per episode: the env config's ``relative_features`` give its
    index ranges. State features (no encoder, or one that reads no frames) are standardised
    by the demos' per-feature mean and standard deviation (floored at ``min_std``) when
    ``standardize``. ``metric``: ``euclidean`` (``||x - y|| / sqrt(D)``), ``cosine``
    (``1 - cos``) or ``auto`` (euclidean on state features, cosine on frame embeddings).

    Transport: ``variant="ot"`` the plan of entropic OT with uniform marginals (``reg``
    the entropic ``epsilon`` in cost units, ``n_iters`` Sinkhorn iterations; ROT's 0.01 and
    100); ``"temporal"`` TemporalOT's context cost over ``context`` steps (``k_c``) and its
    band mask of half-width ``band`` (``k_m``).

    Reward ``r_i = -s * sum_j P_ij C_ij`` against every demo, the best demo's kept. ``s``:
    ``scale``, or (``null``) set once from the first episode scored so that its return is
    ``-target_return`` (ROT's rule, ``|sum_i r_i| = 10``).
    """

    demos: str | None = None
    max_demos: int | None = 10
    pad_demos: bool = True
    encoder: Any = None
    metric: str = "auto"
    standardize: bool = True
    min_std: float = 0.01
    variant: str = "ot"
    reg: float = 0.01
    n_iters: int = 100
    context: int = 3
    band: int = 10
    target_return: float = 10.0
    scale: float | None = None

    def normalize(self) -> None:
        self.encoder = encoder_spec(self.encoder)

    def check_inputs(self) -> None:
        if not self.demos:
            raise ValueError("reward=ot needs demos: reward.model.demos=<dataset> (make them "
                             "with rewardlearn-collect env=<env> n_episodes=10; only their "
                             "observations are read)")
        from rewardlearn.demos import open_dataset

        for demos in str(self.demos).split(","):
            open_dataset(demos.strip())

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (self.max_demos is None or self.max_demos >= 1, "max_demos must be >= 1 or null"),
            (encoder_spec_ok(self.encoder), ENCODER_SPEC_ERROR),
            (self.metric in ("auto", *METRICS), f"metric must be one of auto, "
                                                f"{', '.join(METRICS)}"),
            (self.min_std > 0, "min_std must be > 0"),
            (self.variant in VARIANTS, f"variant must be one of {', '.join(VARIANTS)}"),
            (self.reg > 0, "reg must be > 0"),
            (self.n_iters >= 1, "n_iters must be >= 1"),
            (self.context >= 1, "context must be >= 1"),
            (self.band >= 0, "band must be >= 0"),
            (self.target_return > 0, "target_return must be > 0"),
            (self.scale is None or self.scale > 0, "scale must be > 0 or null"),
        ]


__all__ = ["OTConfig"]
