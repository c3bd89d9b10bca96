"""Reward evaluation metrics on rewards with known relations to the true reward.

Usage::

    python bench/bench_evaluate.py --quick       # Pendulum, 1 seed (about 1 minute on 2 cores)
    python bench/bench_evaluate.py               # Pendulum + Hopper, seeds 0 1 2

For each env and seed, :func:`rewardlearn.metrics.suite.evaluate_reward` scores these
rewards against the env's reward (Pendulum: its exact formula; Hopper: an MLP
regression of ``r(s, a, s')`` on the rollouts, whose held-out R^2 is reported):

* ``shaped x2.5``: the reference, potential-shaped (``Phi(s) = 3 sin(s_0) + s_1^2``) and
  rescaled by 2.5: EPIC and STARC must be ~0 (segment and episode rankings may
  still change a little: shaping adds ``gamma^k Phi(s_k) - Phi(s_0)`` to a segment's
  undiscounted return, so those metrics are not shaping-invariant);
* ``negated``: minus the reference: EPIC and STARC must be 1;
* ``fit (N)``: an ``r(s, a, s')`` MLP regressed on N transitions of other seeds' rollouts
  (a stand-in for a learned reward of improving quality);
* ``random MLP``: an untrained MLP reward.

Columns: EPIC, STARC, accuracy on oracle-labelled segment pairs, Pearson/Spearman
of learned vs true episode returns (mean +- std over seeds), and wall time.
Writes ``bench/results/evaluate.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import git_commit  # bench/ is on sys.path when a script runs

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "evaluate.md"
COLUMNS = ("epic", "starc", "pref_acc", "return_pearson", "return_spearman")


def potential(obs: np.ndarray) -> np.ndarray:
    return 3.0 * np.sin(obs[:, 0]) + obs[:, 1] ** 2


def one_seed(env_name: str, seed: int, n_steps: int, n_eval: int, n_samples: int,
             fit_sizes: list[int]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    from rewardlearn.env_factory import env_config, make_env
    from rewardlearn.metrics import collect_rollouts, reference_reward
    from rewardlearn.metrics.reference import fit_reward_regression, shaped
    from rewardlearn.metrics.suite import evaluate_reward
    from rewardlearn.rewards import MLPReward

    cfg = env_config(env_name)
    env = make_env(cfg, seed=seed)
    obs_space, act_space = env.observation_space, env.action_space
    rollouts = collect_rollouts(env, n_steps, seed=seed, max_episode_steps=200)
    reference, ref_info = reference_reward(str(cfg.id), rollouts, obs_space, act_space, 100, seed)
    other = collect_rollouts(env, max(fit_sizes), seed=seed + 1000, max_episode_steps=200)
    rewards: dict[str, Any] = {
        "shaped x2.5": shaped(reference, potential, 0.99, scale=2.5, shift=1.0),
        "negated": shaped(reference, lambda o: np.zeros(len(o)), 0.99, scale=-1.0),
    }
    for n in fit_sizes:
        sub = type(other)(*(getattr(other, f)[:n] for f in (
            "obs", "acts", "next_obs", "terminated", "truncated", "env_rewards", "episode")))
        rewards[f"fit ({n})"] = fit_reward_regression(sub, obs_space, act_space, 100, seed)[0]
    rewards["random MLP"] = MLPReward(obs_space, act_space, hidden_sizes=(64, 64),
                                      output_activation=None, device="cpu", seed=seed)
    rows = {}
    for name, fn in rewards.items():
        t0 = time.perf_counter()
        res = evaluate_reward({name: fn}, env, str(cfg.id), reference=reference, gamma=0.99,
                              n_steps=n_steps, n_eval=n_eval, n_samples=n_samples, seed=seed,
                              max_episode_steps=200, n_pairs=300, segment_length=25)
        rows[name] = {**res["rewards"][name], "wall_s": time.perf_counter() - t0}
    env.close()
    return rows, ref_info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="Pendulum, 1 seed, fewer samples")
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    envs = ["pendulum"] if args.quick else ["pendulum", "hopper"]
    n_steps, n_eval, n_samples = (2000, 500, 128) if args.quick else (10000, 2000, 512)
    fit_sizes = [200, 2000] if args.quick else [200, 2000, 10000]
    commit = git_commit()
    cmd = "python bench/bench_evaluate.py " + " ".join(sys.argv[1:])
    lines = ["## Reward evaluation: EPIC, STARC, preference accuracy, return correlation", "",
             f"Machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
             f"torch {torch.__version__} (1 thread); commit {commit}; seeds {seeds}; "
             f"command: `{cmd.strip()}`", "",
             f"Rollouts of {n_steps} random-action steps (episodes cut at 200), {n_eval} "
             f"evaluation transitions, {n_samples} coverage samples (uniform actions), "
             "gamma 0.99, 300 oracle-labelled pairs of 25-step segments. Cells: mean +- std "
             "over seeds; wall: seconds per reward (rollouts + all metrics).", ""]
    for env_name in envs:
        per_seed, refs = [], []
        for seed in seeds:
            rows, ref = one_seed(env_name, seed, n_steps, n_eval, n_samples, fit_sizes)
            per_seed.append(rows)
            refs.append(ref)
            print(f"{env_name} seed {seed}: " + ", ".join(
                f"{k} epic {v['epic']:.3f}" for k, v in rows.items()), flush=True)
        kind = refs[0]["kind"]
        ref_text = ("exact formula" if kind == "analytic" else
                    "MLP regression, held-out R^2 " + ", ".join(
                        f"{r['heldout_r2']:.3f}" for r in refs))
        lines += [f"### {env_name} (reference: {ref_text})", "",
                  "| reward | EPIC | STARC | pref. acc. | return Pearson | return Spearman "
                  "| wall s |", "|---|---|---|---|---|---|---|"]
        for name in per_seed[0]:
            cells = []
            for col in (*COLUMNS, "wall_s"):
                vals = np.array([float(rows[name][col]) for rows in per_seed])
                cells.append(f"{vals.mean():.3f} +- {vals.std():.3f}" if len(vals) > 1
                             else f"{vals[0]:.3f}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    text = "\n".join(lines)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
