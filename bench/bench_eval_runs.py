"""Re-evaluate saved runs with the policy's mean action and with its samples.

``train.py`` scores an agent on 5 deterministic episodes (the Gaussian mean). A PPO mean
that drifts past the action bounds acts differently from the clipped samples the agent
trained on: on Hopper (PPO, 300k steps, the true reward) seed 0's mean action fell within
~40 steps (return 76) while its samples hopped for ~300 (about 1000). This script reports
both, so a comparison of two reward setups is not decided by that drift alone.

Usage::

    python bench/bench_eval_runs.py <run dir> [<run dir> ...] [--episodes 10] [--out table.md]

Each run dir is a ``train.py`` run (``agent.zip``, ``.hydra/config.yaml``, and
``vecnormalize.pkl`` when it normalised observations). Episode ``k`` is seeded
``10000 + k``, the held-out seeds of ``train.py``'s evaluation.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import git_commit  # noqa: E402


def returns(run: Path, episodes: int, deterministic: bool) -> list[float]:
    """Env returns of ``episodes`` episodes of the run's agent in the run's env."""
    from rewardlearn.agents import ActPolicy, agent_policy
    from rewardlearn.cli.replay import run_config
    from rewardlearn.rollouts import evaluate

    policy = ActPolicy(agent_policy(run / "agent.zip", deterministic=deterministic))
    result = evaluate(policy, run_config(run).env, n_episodes=episodes,
                      deterministic=deterministic)
    return [float(r) for r in result.env_returns]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    lines = [f"Commit {git_commit()}; command: `python bench/bench_eval_runs.py "
             f"{' '.join(str(r) for r in args.runs)} --episodes {args.episodes}`",
             "",
             "| run | mean action | sampled actions |",
             "|---|---|---|"]
    for run in args.runs:
        det = returns(run, args.episodes, True)
        sto = returns(run, args.episodes, False)
        line = (f"| {run.name} | {np.mean(det):.1f} +- {np.std(det):.1f} | "
                f"{np.mean(sto):.1f} +- {np.std(sto):.1f} |")
        lines.append(line)
        print(line, flush=True)
    if args.out is not None:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
