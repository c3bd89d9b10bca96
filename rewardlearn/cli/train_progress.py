"""Train, evaluate and use a stage-aware progress model (SARM) from demos.

Usage::

    rewardlearn-collect env=pick_place n_episodes=50
    rewardlearn-train-progress demos=data/pick_place-expert-v0
    rewardlearn-train-progress eval model=runs/progress/pick_place/progress_model.pt \\
        demos=data/pick_place-noisy-v0
    rewardlearn-train-progress rabc model=runs/progress/pick_place/progress_model.pt \\
        demos=data/pick_place-expert-v0 horizon=10 out=runs/progress/pick_place/rabc.npz

Commands: ``train`` (default), ``eval``, ``rabc``. Options (``key=value``):

* ``demos``: one or more demo datasets (comma-separated) written by
  ``rewardlearn.cli.collect`` (Minari); stage labels come from the per-step
  ``info["stage"]`` unless ``annotations=<file.json>`` gives subtask start/end
  frames per episode id (see :mod:`rewardlearn.progress.labels`). Episodes that
  fail (``collect ... only_success=false``) are welcome: with per-frame labels they
  teach the model the drops and stalls a learning policy produces.
* ``labels``: ``frames`` (default; every frame keeps the env's stage, which may go
  back), ``spans`` (SARM's subtask spans, the running maximum of the stages) or
  ``failure`` (``frames``, but only stage runs that advanced get ``tau`` from the clock;
  stalls and drops keep the stage's start, and rank below successes: ``stall_weight``,
  ``rank_weight``, ``rank_loss``, ``rank_margin``, ``rank_pairs``; docs/progress.md).
* ``env`` (``conf/env`` name, default ``pick_place``) and ``obs_mode``: the env the
  model will score, whose spaces are stored in the model and checked on use.
* ``out``: where ``train`` writes the model (default
  ``runs/progress/<env>/progress_model.pt``, metrics in ``progress_model.json``
  beside it) and ``rabc`` its weights (``.npz``, one array ``ep_<id>`` per demo).
* ``encoder`` (dotted path of a frozen frame encoder, e.g.
  ``rewardlearn.progress.encoders:DownsampleEncoder``), ``encoder_kwargs`` (JSON),
  ``embeddings`` (``.npz`` of precomputed frame embeddings, one ``ep_<id>``
  array per demo): frame features next to the state.
* any :class:`~rewardlearn.progress.ProgressConfig` field: ``window``, ``stride``,
  ``epochs``, ``heldout``, ``rewind_fraction``, ``seed``...
* ``rabc``: ``model``, ``horizon`` (``d``, default 1), ``kappa`` (0.01).
* ``torch_threads`` (default 1: the small network trains fastest on one thread).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rewardlearn.cli.options import (
    Converter,
    cli_args,
    mapping,
    parse_key_values,
    run_cli,
    settings_types,
    split_command,
)
from rewardlearn.demos import Episode, load_demo_sets
from rewardlearn.files import write_text_atomic
from rewardlearn.progress.configuration import ProgressConfig
from rewardlearn.progress.modeling import ProgressModel
from rewardlearn.progress.rabc import rabc_weights
from rewardlearn.progress.training import (
    evaluate_progress,
    label_for_model,
    predict_demo,
    train_progress_model,
)
from rewardlearn.utils import set_torch_threads

COMMANDS = ("train", "eval", "rabc")


def parse_args(argv: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """``(command, options)`` from ``[command] key=value ...``."""
    command, args = split_command(argv, COMMANDS, "train")
    types: dict[str, Converter] = {
        "demos": str, "env": str, "obs_mode": str, "out": str, "annotations": str,
        "encoder": str, "encoder_kwargs": mapping, "embeddings": str, "model": str,
        "horizon": int, "kappa": float, "torch_threads": int,
        **settings_types(ProgressConfig),
    }
    return command, parse_key_values(args, types)


def _load(opts: dict[str, Any]) -> list[Episode]:
    if "demos" not in opts:
        raise ValueError("give the demos: demos=data/pick_place-expert-v0 (comma-separate several)")
    return load_demo_sets(str(opts["demos"]))


def _spaces(opts: dict[str, Any]) -> tuple[Any, Any]:
    from rewardlearn.env_factory import env_config, make_env

    cfg = env_config(str(opts.get("env", "pick_place")))
    if "obs_mode" in opts:
        cfg.kwargs = {**(cfg.get("kwargs") or {}), "obs_mode": opts["obs_mode"]}
    env = make_env(cfg)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def _embeddings(opts: dict[str, Any]) -> dict[int, np.ndarray] | None:
    if "embeddings" not in opts:
        return None
    with np.load(opts["embeddings"]) as data:
        return {int(k.removeprefix("ep_")): np.asarray(data[k]) for k in data.files}


def _brief(metrics: dict[str, Any] | None) -> str:
    if not metrics:
        return "n/a"
    return (f"VOC {metrics['voc']:.4f} (min {metrics['voc_min']:.4f}), stage accuracy "
            f"{metrics['stage_acc']:.2%}, progress MAE {metrics['progress_mae']:.4f} "
            f"over {metrics['episodes']} demos")


def _print_epoch(epochs: int) -> Callable[[int, dict[str, float]], None]:
    def show(epoch: int, losses: dict[str, float]) -> None:
        if (epoch + 1) % 10 == 0 or epoch + 1 == epochs:
            print(f"epoch {epoch + 1}/{epochs}: "
                  + ", ".join(f"{k} {v:.4f}" for k, v in losses.items()))

    return show


def cmd_train(opts: dict[str, Any]) -> dict[str, Any]:
    """Train, evaluate on held-out demos, save; returns the report."""
    from rewardlearn.progress.labels import load_annotations

    cfg = ProgressConfig.from_kwargs({k: v for k, v in opts.items()
                                      if k in {f.name for f in dataclasses.fields(ProgressConfig)}})
    episodes = _load(opts)
    obs_space, act_space = _spaces(opts)
    annotations = names = None
    if "annotations" in opts:
        names, annotations = load_annotations(opts["annotations"])
    encoder = {"target": opts["encoder"], "kwargs": opts.get("encoder_kwargs", {})} \
        if "encoder" in opts else None
    print(f"training on {len(episodes)} demos ({sum(len(e) for e in episodes)} steps), "
          f"held out {cfg.heldout:.0%}")
    model, report = train_progress_model(
        episodes, obs_space, act_space, cfg, annotations=annotations, subtask_names=names,
        encoder=encoder, embeddings=_embeddings(opts),
        on_epoch=_print_epoch(cfg.epochs))
    env_name = str(opts.get("env", "pick_place"))
    out = Path(opts.get("out") or f"runs/progress/{env_name}/progress_model.pt")
    model.save(out)
    report["model"] = str(out)
    report["demos"] = str(opts["demos"])
    write_text_atomic(out.with_suffix(".json"), json.dumps(report, indent=2))
    print(f"stage priors {report['alpha']} for {report['subtask_names']}")
    print(f"train:    {_brief(report['train'])}")
    print(f"held-out: {_brief(report['heldout'])}")
    print(f"model written to {out} (metrics {out.with_suffix('.json')}); "
          f"use it with reward=progress reward.model.path={out} or shaping=progress "
          f"shaping.potential.path={out}")
    return report


def _labelled(model: ProgressModel, opts: dict[str, Any]) -> tuple[list[Episode], list[Any]]:
    episodes = _load(opts)
    annotations = None
    if "annotations" in opts:
        from rewardlearn.progress.labels import load_annotations

        _, annotations = load_annotations(opts["annotations"])
    return episodes, label_for_model(model, episodes, _embeddings(opts), annotations)


def cmd_eval(opts: dict[str, Any]) -> dict[str, Any]:
    """VOC and stage accuracy of a saved model on demos."""
    if "model" not in opts:
        raise ValueError("give the model: model=runs/progress/<env>/progress_model.pt")
    model = ProgressModel.load(opts["model"])
    _, demos = _labelled(model, opts)
    metrics = evaluate_progress(model, demos)
    print(_brief(metrics))
    return metrics


def cmd_rabc(opts: dict[str, Any]) -> dict[str, Any]:
    """RA-BC weights for every sample of the demos, saved as ``.npz``."""
    if "model" not in opts:
        raise ValueError("give the model: model=runs/progress/<env>/progress_model.pt")
    model = ProgressModel.load(opts["model"])
    episodes, demos = _labelled(model, opts)
    progress = [predict_demo(model, d.features).progress for d in demos]
    weights = rabc_weights(progress, horizon=int(opts.get("horizon", 1)),
                           kappa=float(opts.get("kappa", 0.01)))
    out = Path(opts.get("out") or Path(opts["model"]).with_name("rabc_weights.npz"))
    out.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {f"ep_{ep.id}": w for ep, w in zip(episodes, weights, strict=True)}
    np.savez(out, **arrays)
    flat = np.concatenate(weights)
    summary = {"samples": len(flat), "mean_weight": float(flat.mean()),
               "full_weight": float(np.mean(flat == 1.0)), "zero_weight": float(np.mean(flat == 0)),
               "out": str(out)}
    print(f"RA-BC weights for {summary['samples']} samples: mean {summary['mean_weight']:.3f}, "
          f"{summary['full_weight']:.1%} at 1, {summary['zero_weight']:.1%} at 0 -> {out}")
    return summary


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse the command line and run the command."""
    command, opts = parse_args(cli_args(argv, __doc__))
    set_torch_threads(int(opts.pop("torch_threads", 1)))
    return {"train": cmd_train, "eval": cmd_eval, "rabc": cmd_rabc}[command](opts)


def cli() -> None:
    """Console entry point (``rewardlearn-train-progress``); input errors exit with a
    message, no trace."""
    run_cli(main)


if __name__ == "__main__":
    cli()
