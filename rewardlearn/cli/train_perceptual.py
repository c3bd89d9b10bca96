"""Fit and evaluate a perceptual reward model (Sermanet et al. 2016) from demos.

Usage::

    rewardlearn-collect env=pick_place n_episodes=20 frames=true frame_size=48
    rewardlearn-train-perceptual demos=data/pick_place-expert-v0 n_steps=4
    rewardlearn-train-perceptual eval \\
        model=runs/perceptual/pick_place-expert-v0/perceptual_model.pt demos=<other episodes>
    python train.py env=pick_place agent=ppo reward=perceptual reward.model.demos=null \\
        reward.model.path=runs/perceptual/pick_place-expert-v0/perceptual_model.pt

Commands: ``fit`` (default) and ``eval``. Options (``key=value``, values parsed as YAML):

* ``demos``: a dataset written by ``rewardlearn.cli.collect`` (frames needed by frame encoders);
* ``out``: where ``fit`` writes the model (default
  ``runs/perceptual/<dataset folder>/perceptual_model.pt``, metrics in a ``.json`` beside it);
* ``encoder`` (``tcn``, ``clip``, ``torchvision``, ``state``, ``downsample`` or
  ``pkg.module:Class``) and ``encoder_kwargs`` (a YAML/JSON mapping, e.g.
  ``encoder_kwargs='{steps: 800, seed: 1}'``);
* any :class:`~rewardlearn.perceptual.PerceptualConfig` field (``n_steps``, ``n_features``,
  ``aggregate``, ``heldout``...);
* ``eval``: ``model`` and ``demos``;
* ``torch_threads`` (default 1).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rewardlearn.cli.options import (
    Converter,
    cli_args,
    mapping,
    parse_key_values,
    run_cli,
    settings_types,
    split_command,
)
from rewardlearn.files import write_text_atomic
from rewardlearn.perceptual.configuration import PerceptualConfig
from rewardlearn.perceptual.modeling import PerceptualModel
from rewardlearn.perceptual.training import evaluate_perceptual, fit_perceptual
from rewardlearn.utils import set_torch_threads

COMMANDS = ("fit", "eval")


def parse_args(argv: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """``(command, options)`` from ``[command] key=value ...``."""
    command, args = split_command(argv, COMMANDS, "fit")
    types: dict[str, Converter] = {"demos": str, "out": str, "model": str, "encoder": str,
             "encoder_kwargs": mapping, "torch_threads": int, **settings_types(PerceptualConfig)}
    return command, parse_key_values(args, types)


def _need(opts: dict[str, Any], key: str, hint: str) -> Any:
    if opts.get(key) in (None, ""):
        raise ValueError(f"missing {key}=...: {hint}")
    return opts.pop(key)


def cmd_fit(opts: dict[str, Any]) -> dict[str, Any]:
    """Fit on ``demos``, save to ``out``; returns the metrics."""
    demos = _need(opts, "demos", "a dataset from rewardlearn-collect ... frames=true")
    out = Path(opts.pop("out", None) or Path("runs/perceptual") / Path(demos).name /
               "perceptual_model.pt")
    encoder = {"target": opts.pop("encoder", "tcn"), "kwargs": opts.pop("encoder_kwargs", {})}
    model = fit_perceptual(demos, encoder=encoder, config=PerceptualConfig.from_kwargs(opts))
    model.save(out)
    metrics = {"model": str(out), **model.metrics}
    write_text_atomic(out.with_suffix(".json"), json.dumps(metrics, indent=1, default=str))
    return metrics


def cmd_eval(opts: dict[str, Any]) -> dict[str, Any]:
    """Held-out figures of a saved model on ``demos``."""
    model = PerceptualModel.load(_need(opts, "model", "a saved perceptual_model.pt"))
    return evaluate_perceptual(model, _need(opts, "demos", "episodes to evaluate on"))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run a command and print its result as JSON."""
    command, opts = parse_args(cli_args(argv, __doc__))
    set_torch_threads(int(opts.pop("torch_threads", 1)))
    result = cmd_fit(opts) if command == "fit" else cmd_eval(opts)
    print(json.dumps({k: v for k, v in result.items() if k != "train_boundaries"}, indent=1,
                     default=str))
    return result


def cli() -> None:
    """Console entry point (``rewardlearn-train-perceptual``); input errors exit with a
    message, no trace."""
    run_cli(main)


if __name__ == "__main__":
    cli()
