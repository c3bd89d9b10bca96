"""Potential-based shaping (Ng, Harada & Russell 1999) on top of any reward module.

``shaping=<name>`` wraps the configured reward in :class:`ShapedReward`:
``r' = r + gamma * Phi(s') - Phi(s)`` with ``gamma`` the agent's discount,
``Phi = 0`` at terminal states, the true last observation at truncations, and
each ``Phi(s)`` the value computed when ``s`` was entered.
"""

from rewardlearn.shaping.build import (
    GammaMismatchWarning,
    bind_gamma,
    build_potential,
    build_shaping,
    resolve_gamma,
)
from rewardlearn.shaping.potentials import (
    FunctionPotential,
    GoalEmbeddingPotential,
    Potential,
    ValuePotential,
)
from rewardlearn.shaping.shaped import PotentialCache, ShapedReward, ShapingTerm

__all__ = [
    "FunctionPotential",
    "GammaMismatchWarning",
    "GoalEmbeddingPotential",
    "Potential",
    "PotentialCache",
    "ShapedReward",
    "ShapingTerm",
    "ValuePotential",
    "bind_gamma",
    "build_potential",
    "build_shaping",
    "resolve_gamma",
]
