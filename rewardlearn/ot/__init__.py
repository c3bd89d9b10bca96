"""The optimal-transport proxy reward from observation-only demos (ROT / ADS / TemporalOT).

Open :mod:`rewardlearn.ot.reward` (the reward module), :mod:`~rewardlearn.ot.modeling`
(log-domain Sinkhorn, costs, TemporalOT's context cost and band) and
:mod:`~rewardlearn.ot.configuration` (settings). The discount schedule that the ADS paper
pairs with it is :mod:`rewardlearn.ads`.
"""
