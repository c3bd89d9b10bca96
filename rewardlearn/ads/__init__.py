"""Automatic Discount Scheduling (ADS; Liu et al., ICLR 2024, arXiv 2310.07433).

``agent.discount_schedule=ads``: the agent's discount ``gamma = alpha ** (1 / k)`` follows
the progress ``k`` its episodes make along the demos. Open :mod:`rewardlearn.ads.recognizer`
(the progress recognizer: LIS of matched demo steps, the reference curve, the update rule),
:mod:`~rewardlearn.ads.callback` (the SB3 callback that moves the discount, and the run's
hook) and :mod:`~rewardlearn.ads.configuration` (settings).
"""
