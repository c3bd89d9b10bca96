"""Hydra's defaults for every reward module's settings, from the settings dataclasses.

Each :class:`~rewardlearn.settings.RewardModelConfig` subclass (one per method, every
default in one place) is stored in Hydra's ``ConfigStore`` as ``reward_schema/<name>``, and
``conf/reward/<name>.yaml`` pulls it in under ``reward.model``
(``defaults: [/reward_schema/<name>@model, _self_]``). So ``reward.model.<setting>=...``
overrides any setting from the command line, and the yaml lists only what differs on
purpose (with a comment saying why) and the run's wiring (``device: ${device}``).
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from rewardlearn.rewards.registry import REWARD_CLASSES
from rewardlearn.settings import RewardModelConfig

SCHEMA_GROUP = "reward_schema"


def register_reward_schemas() -> list[str]:
    """Store every registered reward settings class's defaults; returns their names."""
    for name in REWARD_CLASSES:  # importing a reward class registers its settings
        REWARD_CLASSES[name]
    store = ConfigStore.instance()
    names = []
    for name, cls in sorted(RewardModelConfig.registered().items()):
        store.store(group=SCHEMA_GROUP, name=name, node=cls.defaults())
        names.append(name)
    return names


__all__ = ["SCHEMA_GROUP", "register_reward_schemas"]
