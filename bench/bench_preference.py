"""Preference learning benchmark: rewardlearn vs imitation 1.0.1 vs the true reward.

Arms, each on the same env, env steps and comparisons, one process per run:

* ``rewardlearn``: ``train.py reward=preference teacher=<teacher>`` (PPO, the env
  config's recommended settings);
* ``true``: the same PPO on the env's own reward (``reward=env``);
* ``imitation``: HumanCompatibleAI/imitation 1.0.1 preference comparisons with
  its tutorial settings, in its own venv (it pins gymnasium 0.29 and SB3 2.2.1;
  the ``-v4`` MuJoCo ids are used there), built under ``bench/_work``.

Writes ``bench/results/preference.md`` and the per-run JSON under
``bench/_work/preference/``.

Usage::

    python bench/bench_preference.py --env halfcheetah --seeds 0 1 2 --jobs 2
    python bench/bench_preference.py --quick     # Pendulum, 200 comparisons, SAC
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "_work" / "preference"
VENV = ROOT / "bench" / "_work" / "imitation-venv"
OUT = ROOT / "bench" / "results" / "preference.md"
V4_IDS = {"halfcheetah": "HalfCheetah-v4", "hopper": "Hopper-v4", "walker2d": "Walker2d-v4"}


def rewardlearn_run(name: str, overrides: list[str]) -> dict[str, object]:
    run_dir = WORK / name
    cmd = [sys.executable, "train.py", *overrides, "torch_threads=1", "progress_bar=false",
           "video.enabled=false", f"hydra.run.dir={run_dir}"]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    summary: dict[str, object] = json.loads((run_dir / "summary.json").read_text())
    summary["command"] = " ".join(cmd[1:-1])
    return summary


def ensure_imitation_venv() -> Path:
    py = VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "torch==2.13.0",
                        "imitation==1.0.1", "gymnasium[mujoco]==0.29.1", "mujoco==2.3.7"],
                       check=True)
    return py


def imitation_run(env: str, seed: int, steps: int, comparisons: int) -> dict[str, object]:
    py = ensure_imitation_venv()
    cmd = [str(py), "bench/bench_imitation_preference.py", "--env", V4_IDS[env], "--seed",
           str(seed), "--steps", str(steps), "--comparisons", str(comparisons)]
    env_vars = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True,
                         env=env_vars).stdout
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    (WORK / f"imitation_{env}_s{seed}.json").write_text(json.dumps(result))
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--env", default="halfcheetah")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=300_000)
    ap.add_argument("--comparisons", type=int, default=1000)
    ap.add_argument("--teachers", nargs="+", default=["oracle", "noisy", "mistake"])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-imitation", action="store_true")
    ap.add_argument("--quick", action="store_true", help="Pendulum, SAC, 200 comparisons")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)

    if args.quick:
        env, agent, steps, comps, teachers = "pendulum", "sac", 12_000, 200, ["oracle"]
        use_imitation = False
    else:
        env, agent, steps, comps = args.env, "ppo", args.steps, args.comparisons
        teachers, use_imitation = args.teachers, not args.no_imitation
    qpr = max(1, comps // 10)
    jobs: list[tuple[str, int, object]] = []
    with ThreadPoolExecutor(args.jobs) as pool:
        for seed in args.seeds:
            base = [f"env={env}", f"agent={agent}", f"seed={seed}", f"total_timesteps={steps}"]
            jobs.append(("true", seed, pool.submit(
                rewardlearn_run, f"{env}_true_s{seed}", [*base, "reward=env"])))
            for t in teachers:
                jobs.append((f"rewardlearn/{t}", seed, pool.submit(
                    rewardlearn_run, f"{env}_pref_{t}_s{seed}",
                    [*base, "reward=preference", f"teacher={t}",
                     f"reward.model.budget={comps}", f"reward.model.queries_per_round={qpr}",
                     *([] if args.quick else ["reward.model.first_round_at=4096"])])))
            if use_imitation and env in V4_IDS:
                jobs.append(("imitation", seed, pool.submit(imitation_run, env, seed, steps,
                                                            comps)))
        results: dict[str, dict[int, float]] = {}
        for arm, seed, fut in jobs:
            res = fut.result()  # type: ignore[attr-defined]
            results.setdefault(arm, {})[seed] = float(res["env_return_mean"])

    def mean(arm: str) -> float:
        return float(np.mean(list(results[arm].values())))

    lines = [
        f"## Preference learning: {env}, {steps} env steps, {comps} comparisons, "
        f"{agent.upper()}, seeds {args.seeds}",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; command: "
        f"`python bench/bench_preference.py {' '.join(sys.argv[1:])}`",
        "",
        "| arm | " + " | ".join(f"seed {s}" for s in args.seeds) + " | mean |",
        "|---|" + "---|" * (len(args.seeds) + 1),
    ]
    for arm, per_seed in results.items():
        cells = " | ".join(f"{per_seed.get(s, float('nan')):.1f}" for s in args.seeds)
        lines.append(f"| {arm} | {cells} | {mean(arm):.1f} |")
    if "rewardlearn/oracle" in results:
        lines.append("")
        ratio = mean("rewardlearn/oracle") / mean("true")
        lines.append(f"rewardlearn (oracle) / true reward: {ratio:.2f}")
        if "imitation" in results:
            lines.append(f"rewardlearn (oracle) / imitation: "
                         f"{mean('rewardlearn/oracle') / mean('imitation'):.2f}")
    text = "\n".join(lines) + "\n"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
