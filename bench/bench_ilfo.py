"""Imitation from observation on Meta-World: the OT proxy reward with and without ADS.

Usage::

    python bench/bench_ilfo.py                       # 3 tasks, 5 conditions, seeds 0-2, 1M steps
    python bench/bench_ilfo.py --tasks door-open-v3 --conditions ot_ads ot --seeds 0
    python bench/bench_ilfo.py --existing            # only rewrite the table from the runs

Demos: 10 scripted-expert episodes per task (``rewardlearn-collect env=metaworld
env.task=<task> n_episodes=10``), of which only the observations are read. Every run is one
``python train.py env=metaworld env.task=<task> agent=ppo n_envs=8`` process (the env
config's PPO settings for every task: observations and rewards normalised, a rollout of one
whole 500-step episode per env; ``torch_threads=1``, 50 held-out evaluation episodes, no
videos), ``--jobs`` at a time; a run whose ``summary.json`` exists is reused.

Conditions:

* ``dense``: Meta-World's own shaped reward (the reference; reads the task's reward);
* ``ot_ads``: ``reward=ot`` (the ADS paper's OT proxy reward on standardised states) with
  ``agent.discount_schedule=ads``;
* ``ot``: ``reward=ot`` with the fixed discount (0.99);
* ``perceptual`` and ``perceptual_ads``: ``reward=perceptual`` on the same demos' states
  (``encoder=state``), without and with ADS.

Reported per task and condition: success with the mean action and with sampled actions
(each seed, and the mean), steps to 50% training success, the final discount and progress
``k`` of ADS, train wall time, and the learned reward's share of it (``reward=ot``: its
measured compute time over the run's training time; ADS: the schedule's compute time;
``perceptual``: ``1 - wall(dense) / wall(perceptual)`` for the same seed). Before the runs,
the log-domain Sinkhorn of :mod:`rewardlearn.ot.modeling` is timed against POT's
``ot.bregman.sinkhorn_log`` on demo-vs-demo costs of the first task (same process, same
matrices). Exploit probes (``rewardlearn-evaluate metrics=exploit``) have scripted states
for ``env=pick_place`` only, so they are not run here. Writes ``bench/results/ilfo.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import add_paths, git_commit, train_run, training_curve  # noqa: E402

TASKS = ["door-open-v3", "door-unlock-v3", "lever-pull-v3"]
"""Default tasks: three of the ADS paper's nine that Farama's Meta-World v3 ships unchanged
(its assembly, basketball and pick-place-wall are patched versions)."""
ADS = "agent.discount_schedule=ads"
CONDITIONS: dict[str, list[str]] = {
    "dense": ["env.reward_type=dense", "reward=env"],
    "ot_ads": ["reward=ot", "reward.model.demos={demos}", ADS],
    "ot": ["reward=ot", "reward.model.demos={demos}"],
    "perceptual": ["reward=perceptual", "reward.model.demos={demos}",
                   "reward.model.encoder={{target: state}}"],
    "perceptual_ads": ["reward=perceptual", "reward.model.demos={demos}",
                       "reward.model.encoder={{target: state}}", ADS],
}
LABELS = {
    "dense": "Meta-World's dense reward (reference)",
    "ot_ads": "`reward=ot` + ADS",
    "ot": "`reward=ot`, fixed gamma 0.99",
    "perceptual": "`reward=perceptual` (state encoder)",
    "perceptual_ads": "`reward=perceptual` (state encoder) + ADS",
}
N_DEMOS = 10


def prepare_demos(task: str, work: Path) -> Path:
    """``N_DEMOS`` scripted-expert demos of ``task`` (collected once)."""
    out = work / "demos" / task
    if not (out / "data" / "metadata.json").is_file():
        subprocess.run([sys.executable, "-m", "rewardlearn.cli.collect", "env=metaworld",
                        f"env.task={task}", f"n_episodes={N_DEMOS}", f"out={out}",
                        "overwrite=true"], cwd=ROOT, check=True, capture_output=True)
    return out


def run_dir(work: Path, timesteps: int, task: str, cond: str, seed: int) -> Path:
    return work / f"t{timesteps}" / task / f"{cond}_s{seed}"


def train(task: str, cond: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One run (reused when its ``summary.json`` exists); its summary and figures."""
    out = run_dir(args.work, args.timesteps, task, cond, seed)
    if not (out / "summary.json").is_file():
        demos = prepare_demos(task, args.work)
        overrides = [o.format(demos=demos) for o in CONDITIONS[cond]]
        train_run(out, ["env=metaworld", f"env.task={task}", "agent=ppo", "n_envs=8",
                        f"seed={seed}", f"total_timesteps={args.timesteps}", *overrides,
                        *args.extra, "torch_threads=1", "video.enabled=false",
                        "progress_bar=false", f"eval.n_episodes={args.eval_episodes}",
                        "~teacher"], label=f"{task} {cond} s{seed}")
    return collect_run(out, seed)


def collect_run(out: Path, seed: int) -> dict[str, Any]:
    """A finished run's figures: summary, training curve, schedule."""
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    summary.update(training_curve(out))
    summary["seed"] = seed
    schedule = out / "discount_schedule.json"
    summary["schedule"] = json.loads(schedule.read_text()) if schedule.is_file() else None
    return summary


def time_sinkhorn(demos: Path, size: int = 500, repeats: int = 5) -> dict[str, Any]:
    """Our log-domain Sinkhorn vs POT's ``sinkhorn_log`` on a demo-vs-demo cost of ``size``
    x ``size`` steps (two demos held at their goal to a Meta-World episode's 500 steps, as
    ``variant=temporal`` builds them), ROT's settings (reg 0.01, 100 iterations), in this
    process: median seconds and the largest plan difference."""
    import ot

    from rewardlearn.demos import load_demos
    from rewardlearn.ot.modeling import pairwise_cost, sinkhorn_log

    eps = load_demos(demos)
    states = [np.asarray(ep.observations, np.float64)[1:] for ep in eps[:2]]
    rows = np.concatenate(states)
    mean, std = rows.mean(0), np.maximum(rows.std(0), 0.01)
    x, y = ((np.concatenate([s, np.repeat(s[-1:], max(0, size - len(s)), axis=0)])[:size]
             - mean) / std for s in states)
    C = pairwise_cost(x, y)
    a, b = np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y))
    ours, theirs = [], []
    diff = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        P = sinkhorn_log(a, b, C, 0.01, 100)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        Q = ot.bregman.sinkhorn_log(a, b, C, 0.01, numItermax=100)
        theirs.append(time.perf_counter() - t0)
        diff = max(diff, float(np.abs(P - Q).max()))
    mine, pot = statistics.median(ours), statistics.median(theirs)
    return {"shape": list(C.shape), "ours_s": mine, "pot_s": pot, "ratio": pot / mine,
            "max_abs_diff": diff, "repeats": repeats}


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def write_report(args: argparse.Namespace, results: dict[tuple[str, str], list[dict[str, Any]]],
                 timing: dict[str, Any] | None, wall_s: float) -> None:
    lines = [
        "## Imitation from observation on Meta-World: OT proxy reward, with and without ADS",
        "",
        f"Machine: {platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores "
        f"(shared), no GPU; commit {git_commit(dirty=True)}; command: `python "
        f"bench/bench_ilfo.py --tasks {' '.join(args.tasks)} --conditions "
        f"{' '.join(args.conditions)} --seeds {' '.join(map(str, args.seeds))} --timesteps "
        f"{args.timesteps} --jobs {args.jobs} --eval-episodes {args.eval_episodes}"
        + (f" --extra {' '.join(args.extra)}" if args.extra else "")
        + ("`; table written from the finished runs (`--existing`)." if args.existing else
           f"`; {wall_s / 60:.1f} min wall time ({args.jobs} runs at a time)."),
        "",
        f"Agent: PPO, 8 envs, `conf/env/metaworld.yaml`'s settings for every task (normalised "
        f"observations and rewards, n_steps 500: one whole episode per env per rollout, so "
        f"every step's OT reward is computed on its whole episode). Demos: {N_DEMOS} scripted-"
        f"expert episodes per task, observations only. Evaluation: {args.eval_episodes} "
        "held-out episodes per seed, with the mean action (det.) and sampled actions; success "
        "at any step (Meta-World's rule).",
        "",
    ]
    if timing is not None:
        lines += [
            f"Sinkhorn (reg 0.01, 100 iterations, a {timing['shape'][0]}x{timing['shape'][1]} "
            f"demo-vs-demo cost, demos held at their goal to 500 steps; median of "
            f"{timing['repeats']}, same process): ours "
            f"{timing['ours_s'] * 1000:.1f} ms, POT `ot.bregman.sinkhorn_log` "
            f"{timing['pot_s'] * 1000:.1f} ms: **{timing['ratio']:.1f}x** faster; largest plan "
            f"difference {timing['max_abs_diff']:.1e}.", ""]
    lines += [
        "| task | reward | seeds | success, mean action | success, sampled | steps to 50% "
        "training success | final gamma (k) | train wall (min) | reward's share of wall |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for task in args.tasks:
        dense = {r["seed"]: r for r in results.get((task, "dense"), [])}
        for cond in args.conditions:
            runs = sorted(results.get((task, cond), []), key=lambda r: r["seed"])
            if not runs:
                lines.append(f"| {task} | {LABELS[cond]} | - | not run yet | | | | | |")
                continue
            det = [r["deterministic"]["success_rate"] for r in runs]
            sam = [r["sampled"]["success_rate"] for r in runs]
            steps = ", ".join("never" if r.get("half_success_step") is None
                              else f"{r['half_success_step'] / 1000:.0f}k" for r in runs)
            gam = ", ".join(f"{r['schedule']['gamma']:.3f} ({r['schedule']['k']})"
                            for r in runs if r.get("schedule")) or "0.99 (fixed)"
            wall = _mean([r["train_wall_s"] / 60 for r in runs])
            share = []
            for r in runs:
                cost = 0.0
                training = r.get("reward_training") or {}
                if "train_reward_s" in training:
                    cost += training["train_reward_s"]
                if r.get("schedule"):
                    cost += r["schedule"].get("compute_s", 0.0)
                if cond.startswith("perceptual") and r["seed"] in dense:
                    share.append(1 - dense[r["seed"]]["train_wall_s"] / r["train_wall_s"])
                elif cost:
                    share.append(cost / r["train_wall_s"])
            lines.append(
                f"| {task} | {LABELS[cond]} | {', '.join(str(r['seed']) for r in runs)} | "
                f"{', '.join(_pct(d) for d in det)} (**{_pct(_mean(det))}**) | "
                f"{', '.join(_pct(s) for s in sam)} (**{_pct(_mean(sam))}**) | {steps} | {gam} | "
                f"{wall:.1f} | {', '.join(f'{x:.1%}' for x in share) or '-'} |")
    lines += [
        "",
        "Reward's share of wall: `reward=ot` and ADS, their measured compute time (features, "
        "Sinkhorn, the recognizer) over the run's training time; `reward=perceptual`, "
        "1 - wall(dense) / wall(perceptual) for the same seed (runs side by side on a shared "
        "machine: noisy). Exploit probes: `rewardlearn-evaluate metrics=exploit` has scripted "
        "probes for `env=pick_place` only, so none are reported for Meta-World.",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=TASKS)
    ap.add_argument("--conditions", nargs="+", choices=list(CONDITIONS),
                    default=list(CONDITIONS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--timesteps", type=int, default=1_000_000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--eval-episodes", type=int, default=50)
    ap.add_argument("--extra", nargs="*", default=[],
                    help="more train.py overrides for every run")
    add_paths(ap, "ilfo")
    ap.add_argument("--existing", action="store_true", help="only write the table")
    args = ap.parse_args()
    from rewardlearn_envs.metaworld_expert import check_task

    for task in args.tasks:
        check_task(task)
    t0 = time.perf_counter()
    jobs = [(task, cond, seed) for task in args.tasks for seed in args.seeds
            for cond in args.conditions]
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    timing = None
    if args.existing:
        saved = args.work / "sinkhorn_timing.json"
        timing = json.loads(saved.read_text()) if saved.is_file() else None
        for task, cond, seed in jobs:
            out = run_dir(args.work, args.timesteps, task, cond, seed)
            if (out / "summary.json").is_file():
                results.setdefault((task, cond), []).append(collect_run(out, seed))
    else:
        timing = time_sinkhorn(prepare_demos(args.tasks[0], args.work))
        (args.work / "sinkhorn_timing.json").write_text(json.dumps(timing, indent=2))
        print(f"sinkhorn: ours {timing['ours_s'] * 1000:.1f} ms, POT {timing['pot_s'] * 1000:.1f}"
              f" ms ({timing['ratio']:.1f}x), max plan difference {timing['max_abs_diff']:.1e}",
              flush=True)
        for task in args.tasks:
            prepare_demos(task, args.work)
        with ThreadPoolExecutor(args.jobs) as pool:
            futures = {job: pool.submit(train, *job, args) for job in jobs}
            for (task, cond, seed), fut in futures.items():
                summary = fut.result()
                results.setdefault((task, cond), []).append(summary)
                print(f"{task} {cond} s{seed}: success {summary['success_rate']} "
                      f"(sampled {summary['sampled']['success_rate']}), train wall "
                      f"{summary['train_wall_s'] / 60:.1f} min", flush=True)
    write_report(args, results, timing, time.perf_counter() - t0)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
