"""Reward-guided action selection at inference (DeformPAM's RAS, V-GPS) and preferences over
candidate actions: :class:`BestOfN` wraps a policy, :mod:`~rewardlearn.select.scorers` rank
its candidates, :mod:`~rewardlearn.select.pairs` labels pairs of candidates, and
:class:`~rewardlearn.select.reward.ActionPreferenceReward` (``reward=action_preference``)
learns ``r(s, a)`` from those labels. See ``docs/select.md``."""

from rewardlearn.select.lookahead import Lookahead, LookaheadLink, Rollouts
from rewardlearn.select.modeling import BestOfN
from rewardlearn.select.scorers import (
    LOOKAHEAD_SCORERS,
    SCORERS,
    Candidates,
    EnvRewardScorer,
    FunctionScorer,
    LookaheadRewardScorer,
    QScorer,
    RewardScorer,
    Scorer,
    SupportGate,
    ValueScorer,
)

__all__ = ["LOOKAHEAD_SCORERS", "SCORERS", "BestOfN", "Candidates", "EnvRewardScorer",
           "FunctionScorer", "Lookahead", "LookaheadLink", "LookaheadRewardScorer", "QScorer",
           "RewardScorer", "Rollouts", "Scorer", "SupportGate", "ValueScorer"]
