"""The number a hyperparameter sweep optimises: one field of a run's ``summary.json``.

Hydra's Optuna sweeper (``python train.py -m hydra/sweeper=optuna ...``) needs each
run to return one float; ``train.py`` returns the summary field named by the
``objective`` setting (default ``env_return_mean``, the mean evaluation return on the
env's own reward). A nested field is named with dots, e.g.
``objective=reward_training.heldout_acc``. The name is checked before training so a
typo fails the sweep's first trial at once, listing the valid names.

Example:
    >>> objective_value({"env_return_mean": -150.0, "seed": 0}, "env_return_mean")
    -150.0
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Numeric top-level fields of the summary ``rewardlearn.cli.train`` writes (a test keeps
# this in step with a real run's summary.json).
OBJECTIVES = ("env_return_mean", "env_return_std", "learned_return_mean", "success_rate",
              "eval_length_mean", "wall_s", "train_wall_s", "train_cpu_s", "train_steps_per_s")
NESTED = ("reward_training",)  # dicts whose numeric fields are valid as ``<dict>.<field>``


def check_objective(name: str) -> str:
    """``name`` if it can name a summary number; otherwise a ValueError listing the valid ones."""
    head = str(name).split(".", 1)[0]
    if name in OBJECTIVES or (head in NESTED and "." in str(name)):
        return str(name)
    raise ValueError(f"unknown objective {name!r}; valid: {', '.join(OBJECTIVES)}, "
                     + ", ".join(f"{n}.<field> (e.g. reward_training.heldout_acc)"
                                 for n in NESTED))


def _numbers(summary: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Every numeric field of a (nested) summary under its dotted name."""
    out: dict[str, float] = {}
    for key, value in summary.items():
        if isinstance(value, Mapping):
            out.update(_numbers(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = float(value)
    return out


def objective_value(summary: Mapping[str, Any], name: str) -> float:
    """The summary's number under ``name`` (dots for nested fields).

    A field that is null in this run (``success_rate`` on an env without a success
    signal, ``learned_return_mean`` under ``reward=env``) is an error that lists the
    fields this run has.
    """
    numbers = _numbers(summary)
    if name not in numbers:
        have = ", ".join(n for n in numbers if n not in ("seed", "total_timesteps"))
        raise ValueError(f"objective {name!r} is not a number in this run's summary.json "
                         f"(null or missing); fields with a number: {have}")
    return numbers[name]


def is_optuna_sweep(sweeper_target: str | None) -> bool:
    """Whether Hydra's sweeper (its ``_target_``) is the Optuna one, which needs a float."""
    return "optuna" in str(sweeper_target or "").lower()


__all__ = ["NESTED", "OBJECTIVES", "check_objective", "is_optuna_sweep", "objective_value"]
