"""The commands: the one layer that sits on top of the library (nothing below imports it).

``train`` (``python train.py`` / ``rewardlearn-train``), ``collect``, ``evaluate``,
``review``, ``aggregate``, ``train_progress`` and ``train_perceptual``: each runs as
``python -m rewardlearn.cli.<name>`` and as the console script ``rewardlearn-<name>``
(underscores as dashes). They share one ``key=value`` parser and one error wrapper
(:mod:`rewardlearn.cli.options`).
"""
