"""VPL: variational preference learning from many users (Poddar et al., NeurIPS 2024).

Open :mod:`rewardlearn.vpl.reward` (the reward module), :mod:`~rewardlearn.vpl.modeling`
(encoder ``q(z | labelled pairs)``, latent-conditioned reward ``r(s, a, z)``, the ELBO),
:mod:`~rewardlearn.vpl.population` (``teacher=population``: synthetic users with hidden
goals), :mod:`~rewardlearn.vpl.latent` (the observation wrapper appending ``z``),
:mod:`~rewardlearn.vpl.active` (mutual-information queries for a new user, fixed or adaptive),
:mod:`~rewardlearn.vpl.evaluation` (per-user accuracy, the single Bradley-Terry baseline),
:mod:`~rewardlearn.vpl.online` (feedback rounds during RL, shared with ``reward=pearl``)
and :mod:`~rewardlearn.vpl.configuration` (settings).
"""
