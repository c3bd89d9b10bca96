"""``reward=drs`` from scratch on pick_place: the learned stage-indexed reward vs the env's
hand-written dense reward and its sparse success signal.

Usage::

    python bench/bench_drs.py                                   # 1M steps, seeds 0-4, 2 jobs
    python bench/bench_drs.py --timesteps 300000 --seeds 0 --conditions drs
    python bench/bench_drs.py --env metaworld_push --out bench/results/drs_metaworld_push.md

``--env`` takes ``pick_place`` or any env config with a top-level ``reward_type`` and a
stage signal (the Meta-World configs: ``MetaWorldStages`` adds ``info["stage"]``; dense
is Meta-World's own shaped reward, sparse its success signal).

Steps: collect 50 scripted-expert demos (``rewardlearn-collect``, seeds 0-49), then train
PPO on ``pick_place`` (the env's recommended settings, 8 envs, ``torch_threads=1``) for
each condition and seed, one ``python train.py`` process each, ``--jobs`` at a time (a run
whose ``summary.json`` exists is reused):

* ``drs``: ``reward=drs`` with the 50 demos; the env's reward is not read, only its
  ``info["stage"]`` and ``info["is_success"]``;
* ``dense``: the env's hand-written staged dense reward (the reference);
* ``sparse``: the env's sparse reward (1 at success).

Reported per condition: evaluation success (deterministic policy, 50 held-out seeds),
the training success rate over the last 100 episodes, the env steps to the first
successful training episode and to a 50% training success rate (SB3's
``rollout/success_rate``), the furthest stage of 20 evaluation episodes, and the training
wall time; the learned reward's share of it is ``1 - wall(sparse) / wall(drs)`` between
runs of the same seed made side by side. Writes ``bench/results/drs.md``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from _common import add_paths, git_commit  # bench/ is on sys.path when a script runs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import training_curve  # noqa: E402
from _pick_place import fmt_steps, pick_place_run, stages_reached  # noqa: E402

CONDITIONS: dict[str, list[str]] = {
    "drs": ["env.kwargs.reward_type=sparse", "reward=drs", "reward.model.demos={demos}"],
    "dense": ["env.kwargs.reward_type=dense", "reward=env"],
    "sparse": ["env.kwargs.reward_type=sparse", "reward=env"],
}
LABELS = {
    "drs": "`reward=drs` (50 expert demos + the env's stage and success signals)",
    "dense": "env's hand-written dense reward (reference)",
    "sparse": "env's sparse reward (1 at success)",
}
OTHER_ENV_CONDITIONS: dict[str, list[str]] = {
    "drs": ["env.reward_type=sparse", "reward=drs", "reward.model.demos={demos}"],
    "dense": ["env.reward_type=dense", "reward=env"],
    "sparse": ["env.reward_type=sparse", "reward=env"],
}
"""Envs other than pick_place: ``reward_type`` is a top-level key of their config."""


def prepare_demos(work: Path, env: str = "pick_place") -> Path:
    """50 scripted-expert demos (reused if present)."""
    from rewardlearn.cli.collect import CollectConfig, collect

    out = work / "demos-expert"
    if not out.exists():
        collect(CollectConfig(env=env, n_episodes=50, out=str(out),
                              dataset_id=f"rewardlearn/{env}/drs-expert-v0"), verbose=False)
    return out


def run_one(cond: str, seed: int, timesteps: int, demos: Path, work: Path,
            extra: list[str], env: str = "pick_place") -> dict[str, Any]:
    """One ``train.py`` run; returns its summary plus training-curve figures."""
    run_dir = work / "runs" / f"{cond}_s{seed}"
    conditions = CONDITIONS if env == "pick_place" else OTHER_ENV_CONDITIONS
    overrides = [*[o.format(demos=demos) for o in conditions[cond]], *extra,
                 f"total_timesteps={timesteps}", f"seed={seed}"]
    log = work / "logs" / f"{cond}_s{seed}.log"
    summary = pick_place_run(run_dir, overrides, log, env=env)
    summary.update(stages_reached(run_dir, env_name=None if env == "pick_place" else env))
    summary.update(training_curve(run_dir))
    summary["seed"] = seed
    return summary


def write_report(out: Path, results: dict[str, list[dict[str, Any]]], args: Any,
                 wall_s: float) -> None:
    commit = git_commit()
    lines = [
        f"## DrS: a learned stage-indexed reward, PPO from scratch on {args.env}", "",
        f"Machine: {platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores "
        f"(shared), no GPU; commit {commit}; command: `python bench/bench_drs.py "
        f"--env {args.env} --timesteps {args.timesteps} "
        f"--seeds {' '.join(map(str, args.seeds))} --jobs "
        f"{args.jobs} --conditions {' '.join(args.conditions)}"
        + (f" --extra {' '.join(args.extra)}" if args.extra else "")
        + f"`; {wall_s / 60:.0f} min wall time ({args.jobs} runs at a time).", "",
        ("Agent: PPO, the env's recommended settings (8 envs, n_steps 256, batch 256, 10 epochs, "
         "lr 3e-4, ent_coef 0.01, 256x256 nets, normalised observations, gamma 0.99). Eval: "
         if args.env == "pick_place" else
         f"Agent: PPO, 8 envs, conf/env/{args.env}.yaml's `agent_kwargs.ppo` (SB3's defaults "
         "otherwise). Eval: ") +
        "deterministic policy, 50 held-out seeds. The drs condition reads only the env's stage "
        "and success signals (and 50 expert demos), never its reward.", "",
        "| reward | seeds | eval success per seed | mean | training success (last 100 ep.) | "
        "steps to first success | steps to 50% training success | furthest stage (20 eval "
        "ep., mean) | train wall (min, mean) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for cond, runs in results.items():
        runs = sorted(runs, key=lambda r: r["seed"])
        succ = [r["success_rate"] for r in runs]
        train = [r.get("train_success_final") for r in runs]
        lines.append(
            f"| {LABELS[cond]} | {', '.join(str(r['seed']) for r in runs)} | "
            f"{', '.join(f'{s:.0%}' for s in succ)} | **{np.mean(succ):.1%}** | "
            f"{', '.join('-' if t is None else f'{t:.0%}' for t in train)} | "
            f"{fmt_steps([r.get('first_success_step') for r in runs])} | "
            f"{fmt_steps([r.get('half_success_step') for r in runs])} | "
            f"{np.mean([np.mean(r['furthest_stage']) for r in runs]):.2f} | "
            f"{np.mean([r['train_wall_s'] for r in runs]) / 60:.1f} |")
    if "drs" in results and "sparse" in results:
        walls = {c: {r["seed"]: r["train_wall_s"] for r in results[c]} for c in ("drs", "sparse")}
        both = sorted(set(walls["drs"]) & set(walls["sparse"]))
        if both:
            share = np.mean([1 - walls["sparse"][s] / walls["drs"][s] for s in both])
            lines += ["", f"Learned reward's share of training wall time (1 - sparse / drs, "
                          f"same seeds {both}): {share:.0%}."]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="pick_place",
                        help="pick_place, or an env config with reward_type and a stage signal")
    parser.add_argument("--timesteps", type=int, default=1_000_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--conditions", nargs="+", choices=list(CONDITIONS),
                        default=list(CONDITIONS))
    parser.add_argument("--extra", nargs="*", default=[],
                        help="more train.py overrides for every run (e.g. reward.model.alpha=0.2)")
    add_paths(parser, "drs")
    args = parser.parse_args()
    base = args.work if args.env == "pick_place" else args.work / args.env
    work = base / f"t{args.timesteps}"
    work.mkdir(parents=True, exist_ok=True)
    demos = prepare_demos(base, args.env)
    t0 = time.perf_counter()
    jobs = [(c, s) for s in args.seeds for c in args.conditions]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {job: pool.submit(run_one, *job, args.timesteps, demos, work, args.extra,
                                    args.env) for job in jobs}
        results: dict[str, list[dict[str, Any]]] = {c: [] for c in args.conditions}
        for (cond, seed), fut in futures.items():
            summary = fut.result()
            results[cond].append(summary)
            print(f"{cond} seed {seed}: eval success {summary['success_rate']:.0%}, "
                  f"training success {summary.get('train_success_final')}, "
                  f"wall {summary['train_wall_s'] / 60:.1f} min", flush=True)
    write_report(args.out, results, args, time.perf_counter() - t0)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
