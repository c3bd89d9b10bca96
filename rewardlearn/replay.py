"""``python -m rewardlearn.replay runs/<run> n_episodes=... camera=...``.

Re-records a saved agent's rollouts with its reward model's per-step signals into
the review folder format; the command is :mod:`rewardlearn.cli.replay`.
"""

from __future__ import annotations

from rewardlearn.cli.replay import cli

if __name__ == "__main__":
    cli()
