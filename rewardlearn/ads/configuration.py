"""Settings of the discount schedule (``agent.discount_schedule``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rewardlearn.ot.modeling import METRICS
from rewardlearn.settings import ENCODER_SPEC_ERROR, Settings, encoder_spec, encoder_spec_ok

SCHEDULES = ("ads",)
"""Valid ``agent.discount_schedule`` names (``null``: the agent's fixed ``gamma``)."""


@dataclass
class ADSConfig(Settings):
    """Automatic Discount Scheduling (Liu et al., ICLR 2024, arXiv 2310.07433).

    The agent's discount follows the progress ``k`` it has made along the demos:
    ``gamma = alpha ** (1 / k)`` (so ``gamma ** k = alpha``), ``k0 = floor(start * H)``.
    Every ``update_every`` env steps the progress recognizer compares the agent's last
    ``episodes`` finished training episodes with the demos: for a cost matrix ``C`` and a
    prefix ``k``, ``m_i = argmin_{j<k} C_ij`` (``i < k``) and the score is the length of the
    longest strictly increasing subsequence of ``m``. The reference ``ref(k)`` is the
    ``ref_percentile`` (median) of that score over ordered pairs of distinct demos; the
    agent's score is the ``agent_percentile`` (90th) over (episode, demo) pairs; while it
    is ``>= floor(threshold * ref(k))``, ``k += 1``, at most ``max_increments`` times per
    update, up to the horizon ``H``.

    ``demos``: the demos (comma-separated datasets; ``null``: the reward's
    ``reward.model.demos``), the first ``max_demos``; only observations are read. Cost on
    the flat state, or on a state ``encoder``'s features (``{target: relative, kwargs:
    {pairs, keep}}``: object minus hand and goal minus object, for a random layout per
    episode; frame encoders are refused, the recognizer reads states), standardised by the
    demos' mean and std (floored at ``min_std``) when ``standardize``, with ``metric``
    (``euclidean``: ``||x - y|| / sqrt(D)``, the paper's state-feature cost up to that
    constant; ``cosine``). ``horizon`` ``null``: the env's
    time limit (else the longest demo). ``pad_demos``: demos shorter than the longest are held
    at their last state to its length, so every ``ref(k)`` is the median over all pairs (the
    paper's demos are fixed-length episodes); ``false`` is the rule before 2026-12-07, where
    ``ref(k)`` past the shortest demo came from the longer ones alone.
    """

    what = "discount_schedule"

    name: str = "ads"
    demos: str | None = None
    max_demos: int | None = 10
    alpha: float = 0.2
    start: float = 0.2
    horizon: int | None = None
    threshold: float = 0.9
    max_increments: int = 5
    ref_percentile: float = 50.0
    agent_percentile: float = 90.0
    episodes: int = 10
    update_every: int = 10_000
    metric: str = "euclidean"
    encoder: Any = None
    standardize: bool = True
    min_std: float = 0.01
    pad_demos: bool = True

    def normalize(self) -> None:
        self.encoder = encoder_spec(self.encoder)

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (self.name in SCHEDULES, f"name must be one of {', '.join(SCHEDULES)}"),
            (self.max_demos is None or self.max_demos >= 2,
             "max_demos must be >= 2 or null (the reference compares pairs of demos)"),
            (0.0 < self.alpha < 1.0, "alpha must be in (0, 1)"),
            (0.0 < self.start <= 1.0, "start must be in (0, 1]"),
            (self.horizon is None or self.horizon >= 1, "horizon must be >= 1 or null"),
            (0.0 < self.threshold <= 1.0, "threshold must be in (0, 1]"),
            (self.max_increments >= 1, "max_increments must be >= 1"),
            (0.0 <= self.ref_percentile <= 100.0, "ref_percentile must be in [0, 100]"),
            (0.0 <= self.agent_percentile <= 100.0, "agent_percentile must be in [0, 100]"),
            (self.episodes >= 1, "episodes must be >= 1"),
            (self.update_every >= 1, "update_every must be >= 1"),
            (self.metric in METRICS, f"metric must be one of {', '.join(METRICS)}"),
            (encoder_spec_ok(self.encoder), ENCODER_SPEC_ERROR),
            (self.min_std > 0, "min_std must be > 0"),
        ]


def schedule_settings(value: Any) -> ADSConfig | None:
    """The settings of ``agent.discount_schedule``: ``null``, a schedule name (``ads``) or a
    mapping (``{name: ads, alpha: 0.3, ...}``); anything else is refused in one line that
    lists the valid choices."""
    if value is None:
        return None
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, Mapping):
        raise ValueError(f"agent.discount_schedule={value!r}: give a schedule name "
                         f"({', '.join(SCHEDULES)}), a mapping of its settings, or null")
    if isinstance(value, DictConfig):
        value = OmegaConf.to_container(value, resolve=True)
    kwargs = {str(k): v for k, v in value.items()}
    name = kwargs.setdefault("name", SCHEDULES[0])
    if name not in SCHEDULES:
        raise ValueError(f"agent.discount_schedule={name!r}: unknown schedule; valid choices: "
                         f"{', '.join(SCHEDULES)} (or null for a fixed agent.gamma)")
    try:
        return ADSConfig.from_kwargs(kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"agent.discount_schedule: {err}") from None


__all__ = ["SCHEDULES", "ADSConfig", "schedule_settings"]
