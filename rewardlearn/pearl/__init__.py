"""PEARL: preference labels transferred from another task (Liu et al., ICML 2024).

Open :mod:`rewardlearn.pearl.reward` (the reward module), :mod:`~rewardlearn.pearl.transport`
(Gromov-Wasserstein alignment of source and target segments and the label transfer),
:mod:`~rewardlearn.pearl.robust` (the Gaussian reward of robust reward learning),
:mod:`~rewardlearn.pearl.source` (reading a labelled run's labels) and
:mod:`~rewardlearn.pearl.configuration` (settings).
"""
