"""Where a trained PPO agent's Gaussian mean sits against the action bounds, per stage, and
what clamping that mean into the bounds does to the same agent's success (no retraining).

Usage::

    python bench/bench_probe_action_bounds.py <run dir> [<run dir> ...] [--episodes 20] \\
        [--out bench/results/action_bounds.md]

Each run dir holds ``agent.zip`` and ``vecnormalize.pkl`` as ``train.py`` writes them for
``env=pick_place``. For each run: the median policy mean of each action component in each
stage (stochastic rollouts, reset seeds 5000+), the per-step odds of sampling a release
(``a[3] <= 0``) in the place stage, and the success of ``--episodes`` stochastic episodes
(reset seeds 7000+) with the mean as trained and with it clamped to [-1, 1] before the
noise is added. SB3 clips a PPO sample to the bounds, so a mean past a bound stops the
samples beyond it from differing, and a threshold action such as suction (on when
``a[3] > 0``) is no longer explored (``rewardlearn/policies.py``, ``agent.mean_bound``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import git_commit  # noqa: E402


def load(run: Path) -> tuple[Any, Any]:
    import gymnasium as gym
    import rewardlearn_envs  # noqa: F401  (registers the env)
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    venv = DummyVecEnv([lambda: gym.make("rewardlearn/PickPlace-v0", reward_type="sparse")])
    venv = VecNormalize.load(str(run / "vecnormalize.pkl"), venv)
    venv.training, venv.norm_reward = False, False
    return PPO.load(str(run / "agent.zip"), device="cpu"), venv


def policy_mean(agent: Any, obs: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        dist = agent.policy.get_distribution(torch.as_tensor(obs))
    return np.asarray(dist.distribution.mean.numpy()[0])


def probe(run: Path, episodes: int) -> dict[str, Any]:
    """Per-stage median means, place-stage release odds, success as trained vs clamped."""
    from scipy.stats import norm

    agent, venv = load(run)
    std = agent.policy.log_std.exp().detach().numpy()
    means: dict[int, list[np.ndarray]] = {}
    for ep in range(5):
        venv.seed(5000 + ep)
        obs = venv.reset()
        for _ in range(150):
            mu = policy_mean(agent, obs)
            obs, _, done, info = venv.step(agent.predict(obs, deterministic=False)[0])
            means.setdefault(int(info[0]["stage"]), []).append(mu)
            if done[0]:
                break
    out: dict[str, Any] = {"std": std, "median_mean": {k: np.median(v, 0) for k, v in
                                                        sorted(means.items())}}
    place = np.array(means.get(3, []))
    out["place_steps"] = len(place)
    out["release_odds"] = (float(np.mean(norm.cdf(-place[:, 3] / std[3]))) if len(place)
                           else float("nan"))
    for label, bound in (("success", None), ("success_clamped", 1.0)):
        rng, wins = np.random.default_rng(0), 0
        for ep in range(episodes):
            venv.seed(7000 + ep)
            obs = venv.reset()
            for _ in range(150):
                mu = policy_mean(agent, obs)
                if bound is not None:
                    mu = np.clip(mu, -bound, bound)
                act = np.clip(mu + std * rng.standard_normal(mu.shape), -1.0, 1.0)
                obs, _, done, info = venv.step(act[None].astype(np.float32))
                if done[0]:
                    break
            wins += int(bool(info[0]["is_success"]))
        out[label] = wins / episodes
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "action_bounds.md")
    args = ap.parse_args()
    lines = [
        "## PPO's Gaussian mean against the action bounds (pick_place)",
        "",
        f"Commit {git_commit()}; command: `python bench/bench_probe_action_bounds.py "
        f"{' '.join(shlex.quote(a) for a in sys.argv[1:])}`. Median policy mean per stage "
        "(5 stochastic episodes; actions are dx, dy, dz, suction, bounds [-1, 1], suction on "
        "when > 0); release odds: mean over place-stage steps of P(a[3] <= 0); success: "
        f"{args.episodes} stochastic episodes with the mean as trained, and clamped to [-1, 1].",
        "",
        "| run | policy std | mean, reach | grasp | transport | place | place steps | release "
        "odds per place step | success | success, mean clamped |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in args.runs:
        r = probe(run, args.episodes)
        cells = [" ".join(f"{x:+.2f}" for x in r["median_mean"][k]) if k in r["median_mean"]
                 else "-" for k in range(4)]
        name = "/".join(run.parts[-4:])
        lines.append(f"| {name} | {' '.join(f'{x:.2f}' for x in r['std'])} | "
                     + " | ".join(cells)
                     + f" | {r['place_steps']} | {r['release_odds']:.2g} | {r['success']:.0%} "
                     f"| {r['success_clamped']:.0%} |")
        print(lines[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
