"""Does DrS's stage-0 classifier give a gradient on the states a failing agent visits?

On four suite tasks the DrS agents never left their first stage (bench/results/suite.md):
the stage-0 score over their last rollouts was -0.99 and -0.96, a flat reward. This bench
trains the real :class:`~rewardlearn.drs.reward.DrSReward` offline, as one online update
cycle would: positives from the task's 50 scripted-expert demos, negatives and positives
from 24 failing or succeeding rollouts (12 with uniform random actions, the first PPO
agent's behaviour; 12 of the expert with Gaussian action noise 2.0), 20 updates of the
default size. It then scores the stage-0 states of held-out rollouts (random actions, and
the expert with noise 4, 2, 1) and reports:

* Spearman's rho between the score and Meta-World's own dense reward on those states
  (within stage 0 that reward measures reaching: does the score rise towards the object?),
  over all held-out states and within the random-action ones alone;
* the saturated share: ``|tanh(D_0(s))| > 0.95``, where the reward is flat;
* which way the score points: each held-out random-action state with the hand (the
  current and the previous frame's position, observation entries 0-2 and 18-20) moved
  halfway *towards* the object, or 0.2 m straight *away* from it; the share of states whose
  score rises with the move. A reward to reach with rises towards and falls away.

Each classifier setting is one row (the settings are ``reward.model.*`` overrides).

Usage::

    python bench/bench_drs_classifier.py --tasks button-press-topdown-v3 lever-pull-v3 \\
        push-v3 sweep-into-v3
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import add_paths, git_commit  # noqa: E402

UNBOUNDED = {"hidden_sizes": [256, 256], "activation": "leaky_relu", "shared_trunk": True,
             "standardize": "demos", "lipschitz": None}
"""The default before ``lipschitz=1.0``."""
PUBLISHED = {"hidden_sizes": [32], "activation": "sigmoid", "shared_trunk": False,
             "standardize": "none", "lipschitz": None}
VARIANTS: dict[str, dict[str, Any]] = {
    "**one 256x256 LeakyReLU trunk, demo-standardised states, Lipschitz 1 (the default)**":
        {**UNBOUNDED, "lipschitz": 1.0},
    "the same, unbounded (the old default)": UNBOUNDED,
    "the old default + mixup 1.0": {**UNBOUNDED, "mixup": 1.0},
    "the old default, 64 units": {**UNBOUNDED, "hidden_sizes": [64]},
    "per stage, 32 sigmoid units, demo-standardised states":
        {**PUBLISHED, "standardize": "demos"},
    "per stage, 32 sigmoid units, raw states (DrS's published code)": PUBLISHED,
    "the old default, positives: each stage's last 30%": {**UNBOUNDED, "positive_tail": 0.3},
    "DrS's published code, positives: each stage's last 30%": {**PUBLISHED, "positive_tail": 0.3},
    "DrS's published code + mixup 1.0": {**PUBLISHED, "mixup": 1.0},
}
HELD_OUT = (("random", None), ("expert, noise 4", 4.0), ("expert, noise 2", 2.0),
            ("expert, noise 1", 1.0))

Episode = tuple[np.ndarray, np.ndarray, np.ndarray, bool]


def rollout(env: Any, task: str, noise: float | None, seed: int) -> Episode:
    """One 500-step episode: states, stages, dense rewards, success."""
    from rewardlearn_envs.metaworld_expert import MetaWorldExpert

    rng = np.random.default_rng(seed)
    expert = MetaWorldExpert(task, noise=noise or 0.0, seed=seed)
    obs, info = env.reset(seed=seed)
    xs, ks, rs = [], [], []
    done = False
    while not done:
        action = (rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
                  if noise is None else expert(obs))
        obs, _, term, trunc, info = env.step(action)
        xs.append(np.asarray(obs, np.float32))
        ks.append(int(info["stage"]))
        rs.append(float(info["dense_reward"]))
        done = term or trunc
    return np.array(xs), np.array(ks), np.array(rs), bool(info["is_success"])


def probe(task: str, demos: Path, train: list[Episode], held: dict[str, list[Episode]],
          space: Any, action_space: Any, settings: dict[str, Any]) -> dict[str, float]:
    from scipy.stats import spearmanr

    from rewardlearn.drs.labels import episode_labels, positive_tail
    from rewardlearn.drs.reward import DrSReward

    r = DrSReward(space, action_space, demos=str(demos), seed=0, **settings)
    assert r.buffers is not None
    for xs, ks, _, success in train:
        k, pos = episode_labels(ks, success, r.num_stages)
        keep = positive_tail(k, pos, r.cfg.positive_tail)  # as DrSReward._finish does
        r.buffers.add(xs[keep], k[keep], pos[keep])
    for _ in range(20):
        r.update()
    x_all, r_all, s_rand, r_rand = [], [], None, None
    for name, eps in held.items():
        xs = np.concatenate([e[0][e[1] == 0] for e in eps])
        rs = np.concatenate([e[2][e[1] == 0] for e in eps])
        sc = r.scores(xs, np.zeros(len(xs), np.int64))
        x_all.append(sc)
        r_all.append(rs)
        if name == "random":
            s_rand, r_rand = sc, rs
    sc, rs = np.concatenate(x_all), np.concatenate(r_all)
    xs = np.concatenate([e[0][e[1] == 0] for e in held["random"]])
    gap = xs[:, 0:3] - xs[:, 4:7]  # hand minus object
    unit = gap / np.maximum(np.linalg.norm(gap, axis=1, keepdims=True), 1e-6)
    zero = np.zeros(len(xs), np.int64)
    moved = {}
    for name, step in (("towards", -0.5 * gap), ("away", 0.2 * unit)):
        x2 = xs.copy()
        x2[:, 0:3] += step
        x2[:, 18:21] += step
        moved[name] = float(np.mean(r.scores(x2, zero) > r.scores(xs, zero)))
    return {"rho": float(spearmanr(sc, rs).statistic),
            "towards": moved["towards"], "away": moved["away"],
            "rho_random": float(spearmanr(s_rand, r_rand).statistic),
            "saturated": float(np.mean(np.abs(sc) > 0.95)), "n": float(len(sc))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["button-press-topdown-v3",
                        "lever-pull-v3", "push-v3", "sweep-into-v3"])
    add_paths(parser, "suite", out="drs_classifier")
    args = parser.parse_args()
    import torch
    from bench_suite import prepare_demos

    from rewardlearn.env_factory import env_config, make_env

    torch.set_num_threads(1)
    rows: dict[str, dict[str, dict[str, float]]] = {v: {} for v in VARIANTS}
    t0 = time.time()
    for task in args.tasks:
        demos = prepare_demos(task, args.work)
        cfg = env_config("metaworld")
        cfg.task = task
        env = make_env(cfg)
        train = ([rollout(env, task, None, 100 + i) for i in range(12)]
                 + [rollout(env, task, 2.0, 200 + i) for i in range(12)])
        held = {name: [rollout(env, task, noise, 1000 + 10 * j + i) for i in range(6)]
                for j, (name, noise) in enumerate(HELD_OUT)}
        for name, settings in VARIANTS.items():
            rows[name][task] = probe(task, demos, train, held, env.observation_space,
                                     env.action_space, settings)
            print(task, name, rows[name][task], flush=True)
    lines = [
        "# DrS's stage-0 classifier on the states of failing rollouts",
        "",
        f"Machine: {platform.machine()}, no GPU; commit {git_commit(ROOT, dirty=True)}; "
        f"{time.time() - t0:.0f} s.",
        "",
        f"Command: `python bench/bench_drs_classifier.py --tasks {' '.join(args.tasks)}`",
        "",
        (__doc__ or "").split("Usage::")[0].split("\n", 2)[2].strip(),
        "",
        "Each cell: Spearman rho over all held-out stage-0 states / within the random-action "
        "ones / saturated share / share whose score rises with the hand moved towards the "
        "object / moved away.",
        "",
        "| classifier | " + " | ".join(args.tasks) + " | mean rho (all / random) |",
        "|---|" + "---|" * (len(args.tasks) + 1),
    ]
    for name, per in rows.items():
        cells = [f"{per[t]['rho']:.2f} / {per[t]['rho_random']:.2f} / "
                 f"{per[t]['saturated']:.0%} / {per[t]['towards']:.0%} / "
                 f"{per[t]['away']:.0%}" for t in args.tasks]
        mean = np.mean([per[t]["rho"] for t in args.tasks])
        mean_r = np.mean([per[t]["rho_random"] for t in args.tasks])
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {mean:.2f} / {mean_r:.2f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
