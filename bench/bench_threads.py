"""Training speed by torch thread setting: one run alone and two side by side.

Usage::

    python bench/bench_threads.py                      # writes bench/results/threads.md
    python bench/bench_threads.py --jobs default ppo --settings 1 all

Each job is one ``python train.py`` process with videos and the progress bar off; its
``summary.json`` gives ``train_steps_per_s``. For every thread setting (``1``: one torch
thread; ``all``: every core, torch's own default; ``auto``: the package default) each job
runs alone, then two copies run at once (as two runs of a sweep, or a user's two
terminals, share the machine). The table reports steps/s per run and the ratio to the
``1``-thread run of the same situation. Nothing else should run on the machine meanwhile.

Jobs:

* ``default``: ``python train.py`` as the README's first command (SAC on Pendulum learning
  its reward from oracle preferences), cut to its first 3k steps;
* ``ppo``: PPO on Hopper, the env's reward, 4 envs, 40k steps;
* ``sac``: SAC on Hopper, the env's reward, 1.5k steps after 1k random ones;
* ``drs``: ``reward=drs`` PPO on pick_place (8 envs, 20k steps), the docs' DrS command.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from _common import add_paths, git_commit  # noqa: E402

COMMON = ["video.enabled=false", "progress_bar=false", "eval.n_episodes=1"]
JOBS: dict[str, list[str]] = {
    "default": ["total_timesteps=3000"],
    "ppo": ["env=hopper", "agent=ppo", "reward=env", "n_envs=4", "total_timesteps=40000",
            "~teacher"],
    "sac": ["env=hopper", "agent=sac", "reward=env", "total_timesteps=2500",
            "+agent.kwargs.learning_starts=1000", "~teacher"],
    "drs": ["env=pick_place", "agent=ppo", "reward=drs", "n_envs=8", "total_timesteps=20000",
            "env.kwargs.reward_type=sparse", "reward.model.demos={demos}", "~teacher"],
}


def _demos(work: Path) -> Path:
    out = work / "demos"
    if not (out / "data" / "metadata.json").is_file():
        subprocess.run([sys.executable, "-m", "rewardlearn.cli.collect", "env=pick_place",
                        "n_episodes=20", f"out={out}"], cwd=ROOT, check=True,
                       capture_output=True)
    return out


def _launch(job: str, threads: str, run_dir: Path, demos: Path) -> subprocess.Popen[bytes]:
    overrides = [o.format(demos=demos) for o in JOBS[job]]
    return subprocess.Popen([sys.executable, "train.py", *overrides, *COMMON,
                             f"torch_threads={threads}", f"hydra.run.dir={run_dir}"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def measure(job: str, threads: str, copies: int, work: Path, demos: Path) -> list[float]:
    """``train_steps_per_s`` of each of ``copies`` runs started together."""
    dirs = [Path(tempfile.mkdtemp(dir=work)) / "run" for _ in range(copies)]
    procs = [_launch(job, threads, d, demos) for d in dirs]
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise RuntimeError(f"{job} threads={threads} failed: {err.decode()[-2000:]}")
    return [float(json.loads((d / "summary.json").read_text())["train_steps_per_s"])
            for d in dirs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", nargs="+", default=list(JOBS), choices=list(JOBS))
    ap.add_argument("--settings", nargs="+", default=["1", "all", "auto"])
    add_paths(ap, "threads")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    demos = _demos(args.work) if "drs" in args.jobs else args.work
    t0 = time.time()
    rows = []
    for job in args.jobs:
        base: dict[int, float] = {}
        for copies in (1, 2):
            for threads in args.settings:
                speeds = measure(job, threads, copies, args.work, demos)
                mean = sum(speeds) / len(speeds)
                if threads == "1":
                    base[copies] = mean
                ratio = f"{mean / base[copies]:.2f}x" if copies in base else "-"
                where = "alone" if copies == 1 else "two side by side"
                rows.append(f"| {job} | {where} | {threads} | "
                            f"{', '.join(f'{s:.0f}' for s in speeds)} | {ratio} |")
                print(rows[-1], flush=True)
    cmd = (f"python bench/bench_threads.py --jobs {' '.join(args.jobs)} --settings "
           f"{' '.join(args.settings)}")
    text = "\n".join([
        "# Training speed by `torch_threads`", "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, no GPU; commit {git_commit()}; "
        f"command: `{cmd}` ({(time.time() - t0) / 60:.0f} min, nothing else running).", "",
        "Steps/s is `summary.json`'s `train_steps_per_s` of each run; the ratio is to the "
        "1-thread run of the same job in the same situation. `all` is torch's own default "
        "(every core); `auto` is the package default (1 thread on the CPU unless a frame "
        "encoder runs; every core with a GPU).", "",
        "| job | runs | torch_threads | steps/s per run | vs 1 thread |",
        "|---|---|---|---|---|", *rows, ""])
    args.out.write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
