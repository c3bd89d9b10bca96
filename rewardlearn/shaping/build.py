"""Build the shaped reward module from the ``shaping`` config group.

``conf/shaping/<name>.yaml`` holds ``name``, ``gamma`` (``null``: the agent's
discount, which train.py reads from the agent config) and ``potential`` (a
Hydra ``_target_`` building a :class:`~rewardlearn.shaping.potentials.Potential`).
``shaping=none`` returns the base module unchanged.

Example:
    >>> import gymnasium as gym
    >>> from rewardlearn.rewards.env import EnvReward
    >>> from rewardlearn.shaping import build_shaping
    >>> space = gym.spaces.Box(-1, 1, (2,))
    >>> cfg = {"name": "function", "gamma": None,
    ...        "potential": {"_target_": "rewardlearn.shaping.FunctionPotential",
    ...                      "function": "numpy:sum"}}
    >>> shaped = build_shaping(cfg, EnvReward(space, space), space, space, agent_gamma=0.99)
    >>> shaped.name, shaped.gamma
    ('env+shaping[function]', 0.99)
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from rewardlearn.rewards.base import RewardModel
from rewardlearn.shaping.potentials import Potential
from rewardlearn.shaping.shaped import ShapedReward
from rewardlearn.utils import to_dict

log = logging.getLogger("rewardlearn")


class GammaMismatchWarning(UserWarning):
    """A shaping discount differs from the agent's: shaping is no longer policy-invariant."""


def resolve_gamma(configured: float | None, agent_gamma: float, where: str = "shaping") -> float:
    """The shaping discount: the agent's, or ``configured`` with a warning if they differ."""
    if configured is None:
        return float(agent_gamma)
    if abs(float(configured) - float(agent_gamma)) > 1e-12:
        msg = (f"{where} gamma {float(configured):g} differs from the agent's discount "
               f"{float(agent_gamma):g}: the shaped reward is then not policy-invariant "
               "(Ng et al. 1999). Leave it null to use the agent's discount.")
        warnings.warn(msg, GammaMismatchWarning, stacklevel=3)
        log.warning(msg)
    return float(configured)


def bind_gamma(model: RewardModel, agent_gamma: float) -> RewardModel:
    """Give every shaping inside ``model`` the agent's discount (warn where one differs).

    Modules that shape internally (``ShapedReward``, ``reward=progress``) set
    :attr:`RewardModel.uses_shaping_gamma`; their :attr:`RewardModel.gamma` ``None``
    means "the agent's".
    """
    if isinstance(model, ShapedReward):
        bind_gamma(model.base, agent_gamma)
    if model.uses_shaping_gamma:
        model.gamma = resolve_gamma(model.gamma, agent_gamma, where=f"reward {model.name}")
    return model


def build_potential(cfg: Mapping[str, Any] | DictConfig) -> Potential:
    """Instantiate ``cfg["potential"]`` (a Hydra ``_target_`` node)."""
    node = cfg.get("potential")
    if node is None:
        raise ValueError(f"shaping={cfg.get('name')} has no 'potential' entry")
    try:
        potential = instantiate(node)
    except InstantiationException as e:
        if isinstance(e.__cause__, (ValueError, TypeError, FileNotFoundError, ImportError)):
            raise e.__cause__ from None
        raise
    if not isinstance(potential, Potential):
        raise TypeError(f"shaping={cfg.get('name')} built a {type(potential).__name__}, not a "
                        "rewardlearn.shaping.Potential")
    return potential


def build_shaping(cfg: Mapping[str, Any] | DictConfig, base: RewardModel,
                  observation_space: gym.Space, action_space: gym.Space,
                  agent_gamma: float) -> RewardModel:
    """``base`` with the configured shaping on top (``base`` itself for ``shaping=none``).

    Args:
        cfg: the ``shaping`` config (``name``, ``gamma``, ``potential``).
        base: the configured reward module (``reward=...``), ``EnvReward`` included.
        observation_space, action_space: the env's spaces.
        agent_gamma: the agent's discount (``train.agent_gamma(cfg)``).
    """
    name = str(cfg.get("name", "none"))
    bind_gamma(base, agent_gamma)
    if name == "none":
        return base
    if base.shapes_with_progress and name == "progress":
        raise ValueError(f"reward={base.name} already shapes with its progress potential; "
                         "use shaping=none with it, or reward=env shaping=progress")
    gamma = resolve_gamma(to_dict(cfg).get("gamma"), agent_gamma, where=f"shaping={name}")
    shaped = ShapedReward(observation_space, action_space, base=base,
                          potential=build_potential(cfg), gamma=gamma)
    shaped.run_dir = base.run_dir
    return shaped


__all__ = ["GammaMismatchWarning", "bind_gamma", "build_potential", "build_shaping",
           "resolve_gamma"]
