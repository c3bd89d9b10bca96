"""DrS: a stage-indexed dense reward learned online from the agent's successes and failures.

Open :mod:`rewardlearn.drs.reward` (the reward module and its callback),
:mod:`~rewardlearn.drs.labels` (failure-aware labels), :mod:`~rewardlearn.drs.modeling`
(the per-stage classifiers) and :mod:`~rewardlearn.drs.configuration` (settings).
"""
