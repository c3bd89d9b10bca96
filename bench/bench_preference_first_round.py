"""How good is the first feedback round's reward? Pearson with the true returns per label count.

Fills a segment buffer with ``--steps`` HalfCheetah-v5 steps of a fixed action distribution
(``uniform``: U(-1, 1), a random policy; ``gauss:<std>``: N(0, std) clipped, e.g. 0.135 for
PPO's initial policy under the halfcheetah config's ``log_std_init: -2``), asks the oracle
``n`` queries in one round with the shipped learner (first round: uniform pairs, the
ensemble is untrained), and reports the Pearson correlation of the learned with the true
returns of fresh segments from the same buffer (the ``pearson`` the training log prints), for
every seed and label count. No RL: this isolates the data the first round sees.

Usage::

    python bench/bench_preference_first_round.py --actions uniform gauss:0.135 --labels 5 10 25
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import git_commit  # noqa: E402

from rewardlearn.preference.buffer import SegmentBuffer  # noqa: E402
from rewardlearn.preference.configuration import PreferenceConfig  # noqa: E402
from rewardlearn.preference.learner import PreferenceLearner  # noqa: E402
from rewardlearn.preference.modeling import RewardEnsemble  # noqa: E402
from rewardlearn.preference.teachers import SyntheticTeacher  # noqa: E402


def fill(steps: int, seed: int, actions: str) -> SegmentBuffer:
    """``steps`` HalfCheetah-v5 transitions under the ``actions`` distribution."""
    env = gym.make("HalfCheetah-v5")
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    dim = int(np.prod(env.action_space.shape or (1,)))
    buf = SegmentBuffer(1, obs.shape[0] + dim, capacity=steps)
    std = float(actions.split(":")[1]) if actions.startswith("gauss:") else None
    for _ in range(steps):
        act = (rng.uniform(-1, 1, dim) if std is None
               else np.clip(rng.normal(0, std, dim), -1, 1)).astype(np.float32)
        nxt, r, term, trunc, _ = env.step(act)
        buf.add(np.concatenate([obs, act])[None].astype(np.float32), np.array([r]),
                np.array([term]), np.array([trunc]), next_states=nxt[None])
        obs = env.reset()[0] if term or trunc else nxt
    return buf


def first_round_pearson(buf: SegmentBuffer, labels: int, seed: int) -> float:
    cfg = PreferenceConfig(budget=labels, queries_per_round=labels, device="cpu", seed=seed)
    learner = PreferenceLearner(cfg, RewardEnsemble(buf.feature_dim, cfg.ensemble_size,
                                                    cfg.hidden_sizes, seed=seed),
                                SyntheticTeacher.from_preset("oracle", seed=seed),
                                torch.device("cpu"))
    return float(learner.run_round(buf, labels)["pearson"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--actions", nargs="+", default=["uniform", "gauss:0.135"])
    ap.add_argument("--labels", type=int, nargs="+", default=[5, 10, 25])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=4096)
    ap.add_argument("--out", type=Path,
                    default=ROOT / "bench" / "results" / "preference_first_round.md")
    args = ap.parse_args()
    torch.set_num_threads(1)
    commit = git_commit()
    lines = [
        "## The first feedback round's reward on HalfCheetah: Pearson with the true returns",
        "",
        f"Machine: {platform.machine()}, CPU torch, one thread; commit {commit}; command: "
        f"`python bench/bench_preference_first_round.py {' '.join(sys.argv[1:])}`. "
        f"{args.steps} steps of the action distribution, one oracle round of n labels with "
        "the default learner (3 x 256^3 members, uniform pairs in the first round), "
        "Pearson of learned vs true returns of 256 fresh 50-step segments of the same buffer.",
        "",
        "| actions | labels | Pearson per seed | mean | min |",
        "|---|---|---|---|---|",
    ]
    for actions in args.actions:
        bufs = [fill(args.steps, s, actions) for s in range(args.seeds)]
        for n in args.labels:
            ps = [first_round_pearson(b, n, s) for s, b in enumerate(bufs)]
            row = (f"| {actions} | {n} | {', '.join(f'{p:.2f}' for p in ps)} | "
                   f"**{np.mean(ps):.2f}** | {np.min(ps):.2f} |")
            print(row, flush=True)
            lines.append(row)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
