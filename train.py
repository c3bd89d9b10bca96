"""Train an SB3 agent on a (learned) reward: ``python train.py env=hopper agent=ppo reward=mlp``.

Hydra composes ``conf/config.yaml`` with the ``env``, ``agent``, ``reward``,
``shaping`` and ``teacher`` groups; see README.md for the options.
"""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig

from rewardlearn.cli.train import main as _main
from rewardlearn.cli.train import prepare_command_line


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> dict[str, Any] | float:
    """The run's summary; under ``hydra/sweeper=optuna`` its ``objective`` field."""
    return _main(cfg)


if __name__ == "__main__":
    import sys

    sys.argv[1:] = prepare_command_line(sys.argv[1:])  # env=<file.yaml>, typos in one line
    main()
