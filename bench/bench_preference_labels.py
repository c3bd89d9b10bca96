"""Preference learning from few labels: return kept vs the true reward, per label budget and option.

One ``train.py`` process per run (PPO, the env config's settings, ``torch_threads=1``),
for every seed: the same PPO on the env's own reward (``reward=env``), then
``reward=preference`` at each label budget for each learner variant:

* ``current``: the shipped defaults;
* ``surf``: + SURF pseudo-labels and temporal crops (Park et al. 2022);
* ``bagging``: + bootstrap-resampled labels per ensemble member;
* ``qpa``: + queries drawn from the most recent episodes only (Hu et al. 2024);
* ``all``: all three;
* ``front``: 40% of the budget in the first round (``reward.model.first_round_frac=0.4``);
* ``unsup``: PEBBLE's state-entropy pre-training for the first 20k steps, so the first
  queries are drawn from more varied behaviour (``reward.model.unsup_steps=20000``);
* ``fast``: 25 small rounds, every label by a quarter of the run
  (``reward.model.queries_per_round=<budget/25, at least 1>
  reward.model.feedback_until=0.25``), so a reward fitted to the first few labels is
  corrected before the policy commits to it;
* ``spaced``: 25 rounds until half-way, packed early (``reward.model.round_spacing=2``:
  round k of n at ``first + span x (k / (n - 1))^2``), so the first reward is corrected
  as quickly as with ``fast`` and queries still come from later behaviour;
* ``spaced_qpa``: ``spaced`` with QPA's query pool (the 5 most recent episodes), so each
  small round asks about what the policy does now.

Runs are taken from a priority queue (``--plan``) and the table is rewritten after every
finished run, so a bench stopped early still reports what it measured. A run whose
``summary.json`` exists is not run again. Writes ``--out`` (default
``bench/results/preference_label_table.md``).

Usage::

    python bench/bench_preference_labels.py --jobs 2
    python bench/bench_preference_labels.py --plan "current:25:oracle all:25:oracle" --seeds 0
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from _common import add_paths, git_commit  # bench/ is on sys.path when a script runs

ROOT = Path(__file__).resolve().parents[1]

VARIANTS: dict[str, list[str]] = {
    "current": [],
    "surf": ["reward.model.surf.enabled=true"],
    "bagging": ["reward.model.bagging=true"],
    "qpa": ["reward.model.query_pool_episodes=5"],
    "all": ["reward.model.surf.enabled=true", "reward.model.bagging=true",
            "reward.model.query_pool_episodes=5"],
    "front": ["reward.model.first_round_frac=0.4"],
    "unsup": ["reward.model.unsup_steps=20000"],
    "fast": ["reward.model.feedback_until=0.25"],
    "spaced": ["reward.model.round_spacing=2"],
    "spaced_qpa": ["reward.model.round_spacing=2", "reward.model.query_pool_episodes=5"],
}
# Variants that ask their labels in this many rounds (queries_per_round = budget / rounds,
# at least 1) instead of :func:`queries_per_round`'s five or ten.
ROUNDS: dict[str, int] = {"fast": 25, "spaced": 25, "spaced_qpa": 25}
DEFAULT_PLAN = ("current:25:oracle all:25:oracle current:10:oracle all:10:oracle "
                "current:100:oracle current:100:noisy current:50:oracle all:50:oracle "
                "surf:25:oracle bagging:25:oracle qpa:25:oracle all:100:oracle "
                "current:1000:oracle all:1000:oracle")


def queries_per_round(budget: int) -> int:
    """Five rounds up to 100 labels (the issue's 100-label command used 20 a round), ten above."""
    return max(1, budget // 5) if budget <= 100 else max(1, budget // 10)


def run_name(variant: str, budget: int, teacher: str, seed: int) -> str:
    return f"true_s{seed}" if variant == "true" else f"{variant}_b{budget}_{teacher}_s{seed}"


def overrides(env: str, steps: int, variant: str, budget: int, teacher: str,
              seed: int) -> list[str]:
    base = [f"env={env}", "agent=ppo", f"seed={seed}", f"total_timesteps={steps}",
            "torch_threads=1", "progress_bar=false", "video.enabled=false"]
    if variant == "true":
        return [*base, "reward=env"]
    per_round = (max(1, -(-budget // ROUNDS[variant])) if variant in ROUNDS
                 else queries_per_round(budget))
    return [*base, "reward=preference", f"teacher={teacher}",
            f"reward.model.budget={budget}", f"reward.model.queries_per_round={per_round}",
            "reward.model.first_round_at=4096", *VARIANTS[variant]]


def run(work: Path, name: str, args: list[str]) -> dict[str, object]:
    run_dir = work / name
    summary_path = run_dir / "summary.json"
    if not summary_path.exists():
        cmd = [sys.executable, "train.py", *args, f"hydra.run.dir={run_dir}"]
        log = work / f"{name}.log"
        with log.open("w") as fh:
            subprocess.run(cmd, cwd=ROOT, check=True, stdout=fh, stderr=subprocess.STDOUT)
    summary: dict[str, object] = json.loads(summary_path.read_text())
    summary["command"] = "python train.py " + " ".join(args)
    return summary


def write_table(out: Path, env: str, steps: int, seeds: list[int],
                results: dict[tuple[str, int, str], dict[int, dict[str, object]]],
                started: float) -> None:
    true = results.get(("true", 0, "-"), {})
    commit = git_commit()
    lines = [
        f"## Preference learning from few labels: {env}, PPO, {steps} env steps",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, CPU torch, one torch thread "
        f"per run; commit {commit}; command: `python bench/bench_preference_labels.py "
        f"{' '.join(sys.argv[1:])}`; {(time.time() - started) / 60:.0f} min so far.",
        "Every run: `python train.py env=" + env + " agent=ppo reward=preference "
        "teacher=<teacher> total_timesteps=" + str(steps) + " reward.model.budget=<labels> "
        "reward.model.queries_per_round=<labels/5 up to 100, labels/10 above> "
        "reward.model.first_round_at=4096 seed=<seed> <variant options>`; the true-reward "
        "row is the same PPO with `reward=env`. Evaluation: 5 deterministic episodes, env "
        "return. 'kept' = mean over seeds of (learned-reward agent / true-reward agent on "
        "the same seed); 'wall' = the same ratio of train.py wall times.",
        "",
        "Variants: " + "; ".join(f"`{k}`: {' '.join(v) or 'defaults'}" for k, v in
                                 VARIANTS.items()),
        "",
        "| variant | labels | teacher | " + " | ".join(f"seed {s}" for s in seeds)
        + " | mean | kept | wall |",
        "|---|---|---|" + "---|" * (len(seeds) + 3),
    ]
    for (variant, budget, teacher), per_seed in results.items():
        cells = " | ".join(
            f"{float(per_seed[s]['env_return_mean']):.1f}" if s in per_seed else "-"
            for s in seeds)
        vals = [float(r["env_return_mean"]) for r in per_seed.values()]
        kept = [float(per_seed[s]["env_return_mean"]) / float(true[s]["env_return_mean"])
                for s in per_seed if s in true]
        wall = [float(per_seed[s]["wall_s"]) / float(true[s]["wall_s"])
                for s in per_seed if s in true]
        label = "true reward" if variant == "true" else f"`{variant}`"
        lines.append(
            f"| {label} | {'-' if variant == 'true' else budget} | {teacher} | {cells} | "
            f"{np.mean(vals):.1f} (n={len(vals)}) | "
            + (f"{np.mean(kept):.1%}" if kept else "-") + " | "
            + (f"{np.mean(wall):.2f}x" if wall else "-") + " |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--env", default="halfcheetah")
    ap.add_argument("--steps", type=int, default=300_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                    help="run in this order (the table lists them sorted)")
    ap.add_argument("--plan", default=DEFAULT_PLAN,
                    help="space-separated variant:labels:teacher, in priority order")
    ap.add_argument("--jobs", type=int, default=2)
    add_paths(ap, "pref_labels", "preference_label_table")
    args = ap.parse_args()
    plan = []
    for item in args.plan.split():
        variant, budget, teacher = item.split(":")
        if variant not in VARIANTS:
            ap.error(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
        plan.append((variant, int(budget), teacher))
    work = args.work / args.env / f"t{args.steps}"
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    results: dict[tuple[str, int, str], dict[int, dict[str, object]]] = {}
    lock = threading.Lock()
    queue = [("true", 0, "-", s) for s in args.seeds]
    queue += [(v, b, t, s) for v, b, t in plan for s in args.seeds]

    def one(item: tuple[str, int, str, int]) -> None:
        variant, budget, teacher, seed = item
        name = run_name(variant, budget, teacher, seed)
        try:
            summary = run(work, name, overrides(args.env, args.steps, variant, budget,
                                                teacher, seed))
        except subprocess.CalledProcessError as exc:
            print(f"{name}: failed ({exc}); see {work / (name + '.log')}", flush=True)
            return
        with lock:
            results.setdefault((variant, budget, teacher), {})[seed] = summary
            ordered = {k: results[k] for k in
                       [("true", 0, "-"), *plan] if k in results}
            write_table(args.out, args.env, args.steps, sorted(args.seeds), ordered, started)
            print(f"{name}: {float(summary['env_return_mean']):.1f} "
                  f"({float(summary['wall_s']):.0f} s)", flush=True)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(one, queue))
    print(args.out.read_text())


if __name__ == "__main__":
    main()
