"""Compare saved reward models before spending compute on RL.

Usage::

    rewardlearn-evaluate reward=runs/<run>/reward_model.pt env=pendulum
    rewardlearn-evaluate reward=a/reward_model.pt,b/reward_model.pt env=hopper \\
        reference=env n_steps=5000 labels=a/reward_model.pt out=eval.json
    rewardlearn-evaluate reward=runs/progress/pick_place/progress_model.pt \\
        env=pick_place demos=data/pick_place-noisy-v0 metrics=voc

Each reward (comma-separated checkpoints; ``name:path`` names a column) is scored
against a reference reward over transitions of ``n_steps`` steps in the env
(random actions, or ``agent=<agent.zip>``):

* ``epic``, ``starc``: distances to the reference in [0, 1] (see
  :mod:`rewardlearn.metrics.epic`, :mod:`rewardlearn.metrics.starc`); ``n_eval``
  evaluation transitions, ``n_samples`` coverage samples (``actions=uniform|rollout``),
  discount ``gamma``.
* ``pref``: accuracy on labelled segment pairs: ``labels=<reward_model.pt of a
  reward=preference run>`` (its saved labels; ``label_rounds=3,4`` keeps some
  rounds), else ``n_pairs`` oracle-labelled pairs of ``segment_length`` steps.
* ``returns``: Pearson and Spearman of learned vs true episode returns.
* ``voc``: for progress models with ``demos=<dataset>``: VOC and stage accuracy.
* ``outcomes``: for models with a progress (progress models, ``reward=drs``) and
  ``rollouts=<dataset of mixed outcome>``: Kendall's tau-b of the predicted final progress
  vs the outcome, and the success-failure gap (:mod:`rewardlearn.metrics.outcomes`).
* ``exploit`` (``env=pick_place``): the same models' progress (``reward=ot``: the demo
  progress each state is matched with) on scripted exploit states (hover over the untouched
  cube, a stall, a dropped cube) minus their true progress.

``reference=env`` (default) is the env's reward as a function of (s, a, s')
(exact for Pendulum, else an MLP regression whose held-out R^2 is reported);
``reference=<checkpoint>`` compares with another saved model. Other options:
``obs_mode``, ``seed``, ``max_episode_steps``, ``metrics`` (default
``epic,starc,pref,returns,voc``; ``outcomes`` and ``exploit`` are asked for by name),
``regression_epochs``, ``out=<file.json>``, ``torch_threads`` (default 1).

Rewards that read rendered frames (``reward=vlm``, ``vlm_distilled`` with pixel
inputs, ``perceptual`` with a frame encoder) are evaluated on frames rendered as
in training (the env config's camera, at each reward's ``frame_size``): every
distinct state of the rollouts is rendered once, the sampled transitions keep
their states' indices, and each reward call gets the frames of its rows with
their frame ids, so each distinct frame is encoded once per evaluation
(``cost`` in the result: ``queries`` answered vs ``frames_encoded``).
Pixel-observation envs (``obs_mode=pixels``) are evaluated on their uint8
images (EPIC/STARC then need ``reference=<checkpoint>``: the env-reward
regression reads state vectors). Dict observations (``obs_mode=state_pixels``)
are kept as structured arrays (images stay uint8) and reach the rewards as
dicts; ``reference=env`` regresses on their state entries. Labels from a
preference checkpoint hold states only, so frame-reading rewards are scored on
oracle pairs. Example::

    rewardlearn-evaluate reward=runs/<vlm run>/reward_model.pt env=pendulum \
        metrics=epic,returns n_steps=1000 n_eval=300 n_samples=64
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import rewardlearn.metrics as M
from rewardlearn.agents import agent_policy
from rewardlearn.cli.options import cli_args, int_list, parse_key_values, run_cli, str_list
from rewardlearn.files import write_text_atomic
from rewardlearn.metrics.suite import evaluate_reward, load_any, table
from rewardlearn.utils import set_torch_threads

METRICS = ("epic", "starc", "pref", "returns", "voc", "outcomes", "exploit")
DEFAULT_METRICS = ("epic", "starc", "pref", "returns", "voc")
OFF_POLICY_METRICS = ("voc", "outcomes", "exploit")
"""Metrics computed from datasets or probes, not from the sampled transitions."""


OPTIONS: dict[str, Callable[[str], Any]] = {
    "reward": str_list, "env": str, "obs_mode": str, "reference": str, "gamma": float,
    "n_steps": int, "n_eval": int, "n_samples": int, "actions": str, "seed": int,
    "max_episode_steps": int, "agent": str, "labels": str, "label_rounds": int_list,
    "n_pairs": int, "segment_length": int, "demos": str, "metrics": str_list, "rollouts": str,
    "regression_epochs": int, "out": str, "torch_threads": int,
}
DEFAULTS: dict[str, Any] = {
    "env": "pendulum", "reference": "env", "gamma": 0.99, "n_steps": 4000, "n_eval": 1000,
    "n_samples": 256, "actions": "uniform", "seed": 0, "n_pairs": 500, "segment_length": 25,
    "metrics": list(DEFAULT_METRICS), "regression_epochs": 100, "torch_threads": 1,
}


def parse_args(argv: Sequence[str]) -> dict[str, Any]:
    """Options from ``key=value`` tokens, defaults filled in; unknown keys list the valid ones."""
    opts = dict(DEFAULTS)
    opts.update(parse_key_values(argv, OPTIONS))
    bad = [m for m in opts["metrics"] if m not in METRICS]
    if bad:
        raise ValueError(f"unknown metrics {bad}; choose from {', '.join(METRICS)}")
    if not opts.get("reward"):
        raise ValueError("give the reward model(s): reward=runs/<run>/reward_model.pt[,...]")
    return opts


def _named(specs: Sequence[str]) -> list[tuple[str, str]]:
    """``(label, path)`` per reward: ``name:path`` keeps its name; otherwise the label is the
    run or model folder's name (a file's parent folder), widened with parent folders until
    every label is unique (``runs/A`` and ``runs/B`` are ``A`` and ``B``; ``a/run`` and
    ``b/run`` are ``a/run`` and ``b/run``). Two rewards given the same name are refused."""
    given: list[tuple[str | None, str]] = []
    for spec in specs:
        name, sep, path = spec.partition(":")
        drive = len(name) == 1 and path[:1] in ("/", "\\")
        if (sep and name and "/" not in name and not drive
                and not spec.startswith(("hf://", "hf-hub:"))):
            given.append((name, path))
        else:
            given.append((None, spec))

    def parts(path: str) -> list[str]:
        p = Path(path)
        if p.suffix in (".pt", ".safetensors", ".json") or p.is_file():
            p = p.parent if p.parent.name else Path(p.stem)
        out = [x for x in p.parts if x not in ("/", ".", "")]
        return out or [path]

    depth = {i: 1 for i, (name, _) in enumerate(given) if name is None}
    while True:
        labels = [name if name is not None else "/".join(parts(path)[-depth[i]:])
                  for i, (name, path) in enumerate(given)]
        dupes = {lab for lab in labels if labels.count(lab) > 1}
        grow = [i for i in depth if labels[i] in dupes and depth[i] < len(parts(given[i][1]))]
        if not grow:
            break
        for i in grow:
            depth[i] += 1
    seen: dict[str, int] = {}
    for k, label in enumerate(labels):
        if label in seen:
            if given[k][0] is not None and given[seen[label]][0] is not None:
                raise ValueError(f"two rewards are named {label!r}; give each its own name "
                                 "(reward=a:<path>,b:<path>)")
            labels[k] = f"{label}#{sum(lab.startswith(label) for lab in labels[:k]) + 1}"
        seen[label] = k
    return [(label, path) for label, (_, path) in zip(labels, given, strict=True)]


def _progress_checks(opts: dict[str, Any], models: dict[str, Any],
                     result: dict[str, Any]) -> None:
    """``outcomes`` (Kendall tau and success-failure gap on ``rollouts=``) and ``exploit``
    (pick_place probes) for the models that have a progress (progress models, drs)."""
    from rewardlearn.metrics.outcomes import (
        episodes_from_dataset,
        exploit_probe,
        outcome_ranking,
        rater_for,
    )

    wanted = [m for m in ("outcomes", "exploit") if m in opts["metrics"]]
    if not wanted:
        return
    episodes = probes = None
    if "outcomes" in wanted:
        if "rollouts" not in opts:
            raise ValueError("metrics=outcomes needs rollouts=<dataset of mixed outcome> "
                             "(rewardlearn-collect ... noise=2.0 only_success=false)")
        episodes = episodes_from_dataset(str(opts["rollouts"]))
    if "exploit" in wanted:
        if str(opts["env"]) != "pick_place":
            raise ValueError("metrics=exploit has scripted probes for env=pick_place only")
        from rewardlearn_envs.probes import pick_place_probes

        probes = pick_place_probes(seeds=range(5), steps=150)
    for name, model in models.items():
        rate = rater_for(model)
        if rate is None:
            continue
        row = result["rewards"][name]
        if episodes is not None:
            ranking = outcome_ranking(rate, episodes)
            row.update({k: ranking[k] for k in ("kendall_tau", "kendall_tau_max",
                                                 "kendall_tau_stage", "concordance",
                                                 "success_failure_gap")})
        if probes is not None:
            for probe, figures in exploit_probe(rate, probes).items():
                row[f"{probe}_excess"] = figures["excess"]


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse ``key=value`` arguments, evaluate, print a table, optionally write JSON."""
    from rewardlearn.env_factory import camera_config, env_config, make_env

    opts = parse_args(cli_args(argv, __doc__))
    set_torch_threads(int(opts["torch_threads"]))
    cfg = env_config(str(opts["env"]))
    if "obs_mode" in opts:
        cfg.kwargs = {**(cfg.get("kwargs") or {}), "obs_mode": opts["obs_mode"]}
    env = make_env(cfg, seed=int(opts["seed"]))
    try:
        obs_space, act_space = env.observation_space, env.action_space
        named = _named(opts["reward"])
        models = {name: load_any(path, obs_space, act_space) for name, path in named}
        reference = (None if opts["reference"] == "env"
                     else load_any(opts["reference"], obs_space, act_space))
        loaded = [*models.values(), *([reference] if reference is not None else [])]
        if any(m.needs_frames for m in loaded):
            env.close()  # frames: non-MuJoCo envs render only when made for it
            env = make_env(cfg, seed=int(opts["seed"]), render_mode="rgb_array")
        pairs = None
        if "labels" in opts and "pref" in opts["metrics"]:
            pairs = M.pairs_from_preference_checkpoint(opts["labels"], obs_space, act_space,
                                                     opts.get("label_rounds"))
        policy = agent_policy(opts["agent"]) if "agent" in opts else None
        metrics = [m for m in opts["metrics"] if m not in OFF_POLICY_METRICS]
        result = evaluate_reward(
            models, env, str(cfg.id), reference, float(opts["gamma"]), int(opts["n_steps"]),
            int(opts["n_eval"]), int(opts["n_samples"]), str(opts["actions"]),
            int(opts["seed"]), policy, opts.get("max_episode_steps"), pairs,
            int(opts["n_pairs"]), int(opts["segment_length"]), metrics,
            int(opts["regression_epochs"]), camera_config(cfg))
    finally:
        env.close()
    result["setup"]["labels"] = opts.get("labels", "oracle pairs from the rollouts")
    result["setup"]["paths"] = dict(named)  # which model each row is (a card takes its own)
    result["setup"]["reference"] = opts["reference"]
    if "voc" in opts["metrics"] and "demos" in opts:
        from rewardlearn.progress.reward import ProgressReward

        for name, path in named:  # progress models only (reward=ot has a scorer too)
            model = models[name]
            if isinstance(model, ProgressReward) and model.scorer is not None:
                result["rewards"][name].update(M.progress_voc(path, str(opts["demos"])))
    _progress_checks(opts, models, result)
    print(f"env {result['setup']['env']}, {result['setup']['episodes']} episodes "
          f"({result['setup']['policy']} policy), reference {opts['reference']} "
          f"({result['reference'].get('kind')}"
          + (f", held-out R^2 {result['reference']['heldout_r2']:.3f}"
             if "heldout_r2" in result["reference"] else "") + ")")
    print(table(result))
    for name, c in result["cost"].items():
        if c["frames_encoded"] is not None:
            print(f"{name}: {c['queries']} reward queries, {c['frames_encoded']} distinct frames "
                  f"encoded ({result['setup']['states']} states rendered), {c['wall_s']} s")
    if "out" in opts:
        Path(opts["out"]).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(Path(opts["out"]), json.dumps(result, indent=2, default=float))
        print(f"written to {opts['out']}")
    return result


def cli() -> None:
    """Entry point; input errors exit with a message, no trace."""
    run_cli(main)


if __name__ == "__main__":
    cli()
