"""Foundation benchmarks: reward-wrapper overhead in PPO, and fast vs default rendering.

Writes ``bench/results/foundation.md`` (and prints it). Both measurements are
ratios taken in the same run, interleaved, so machine noise cancels:

1. PPO env-steps/s on Hopper-v5 (4 envs) with a small learned MLP reward
   through :class:`RewardVecEnvWrapper`, vs the same PPO on the env reward.
   Target ratio >= 0.85.
2. Frames/s of :class:`FastRenderer` (shadows, reflections, skybox off) vs
   MuJoCo's default scene flags, same model, same size. Target >= 5x.

Usage: ``python bench/bench_foundation.py [--quick]``
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from _common import git_commit  # bench/ is on sys.path when a script runs
from stable_baselines3 import PPO

import rewardlearn  # noqa: F401  (headless GL defaults before mujoco loads)
from rewardlearn.env_factory import make_env, make_vec_env
from rewardlearn.rendering import FastRenderer
from rewardlearn.rewards import MLPReward
from rewardlearn.wrappers import RewardVecEnvWrapper

OUT = Path(__file__).resolve().parent / "results" / "foundation.md"


def ppo_steps_per_s(env: str, learned: bool, steps: int, n_envs: int = 4) -> float:
    venv = make_vec_env(env, n_envs=n_envs, seed=0)
    if learned:
        venv = RewardVecEnvWrapper(
            venv, MLPReward(venv.observation_space, venv.action_space, hidden_sizes=(64, 64),
                            device="cpu"))
    agent = PPO("MlpPolicy", venv, n_steps=512, batch_size=64, n_epochs=10, seed=0, device="cpu")
    t = time.perf_counter()
    agent.learn(steps)
    dt = time.perf_counter() - t
    venv.close()
    return steps / dt


def frames_per_s(env_name: str, size: int, fast: bool, n: int, antialias: bool = True) -> float:
    env = make_env(env_name, seed=0)
    env.reset(seed=0)
    r = FastRenderer.from_env(env, width=size, height=size, fast=fast, antialias=antialias)
    for _ in range(5):
        r.render()
    dt = 0.0
    for _ in range(n):  # time the render only; the step moves the scene between frames
        env.step(env.action_space.sample())
        t = time.perf_counter()
        r.render()
        dt += time.perf_counter() - t
    r.close()
    env.close()
    return n / dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer steps/frames (about 1 minute)")
    args = ap.parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    steps = 8192 if args.quick else 40960
    reps = 2 if args.quick else 3
    n_frames = 60 if args.quick else 200

    env_sps, rl_sps = [], []
    for _ in range(reps):  # interleave A/B so drift hits both
        env_sps.append(ppo_steps_per_s("hopper", False, steps))
        rl_sps.append(ppo_steps_per_s("hopper", True, steps))
    ratio = float(np.median(rl_sps) / np.median(env_sps))

    render_rows = []
    envs = ["hopper"] + (["pick_place"] if (Path(__file__).parents[1] / "conf/env/pick_place.yaml"
                                             ).is_file() else [])
    for env_name in envs:
        for size in (84, 224):
            slow = frames_per_s(env_name, size, False, n_frames)
            fast = frames_per_s(env_name, size, True, n_frames)
            fast_noaa = frames_per_s(env_name, size, True, n_frames, antialias=False)
            render_rows.append((env_name, size, slow, fast, fast_noaa))

    commit = git_commit()
    lines = [
        "## Foundation: wrapper overhead and fast rendering",
        "",
        f"Machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
        f"torch {torch.__version__} CPU; commit {commit}; seed 0; "
        f"command: `python bench/bench_foundation.py{' --quick' if args.quick else ''}`",
        "",
        f"PPO on Hopper-v5, 4 envs, {steps} steps per run, {reps} interleaved repeats (median):",
        "",
        "| reward | env steps/s |",
        "|---|---|",
        f"| env reward (no wrapper) | {np.median(env_sps):.0f} |",
        f"| learned MLP (64x64) via RewardVecEnvWrapper | {np.median(rl_sps):.0f} |",
        f"| **ratio** (target >= 0.85) | **{ratio:.2f}** |",
        "",
        f"Rendering, {n_frames} frames per setting, render time only (frames/s):",
        "",
        "| env | size | default flags | fast (no shadow/reflection/skybox) | speed-up | "
        "fast, antialias off | speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    for env_name, size, slow, fast, noaa in render_rows:
        lines.append(f"| {env_name} | {size} | {slow:.0f} | {fast:.0f} | **{fast / slow:.1f}x** | "
                     f"{noaa:.0f} | {noaa / slow:.1f}x |")
    text = "\n".join(lines) + "\n"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
