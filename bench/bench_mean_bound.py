"""PPO with and without ``agent.mean_bound=1.0``, evaluated by its mean action and by samples.

Usage::

    python bench/bench_mean_bound.py                     # hopper walker2d halfcheetah pick_place
    python bench/bench_mean_bound.py --envs hopper --seeds 0 1 2 --jobs 2

``train.py`` evaluates an agent twice (``summary.json``: ``deterministic``, the Gaussian's
mean, and ``sampled``). PPO's unbounded Gaussian mean can drift past the action bounds, so
the mean acts unlike the clipped samples the agent trained on; ``agent.mean_bound=1.0``
keeps it inside (:mod:`rewardlearn.policies`). Each env runs PPO on its own reward with its
recommended settings, ``--timesteps`` steps (pick_place: 1M, 8 envs), for each seed, with the
mean bounded and not (``agent.mean_bound=null``, and ``env.mean_bound=null`` on
pick_place, whose env yaml bounds it); 20 evaluation
episodes each way. Writes ``bench/results/mean_bound.md``.
"""

from __future__ import annotations

import argparse
import platform
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from _common import add_paths, git_commit, train_run  # noqa: E402

ENVS: dict[str, list[str]] = {
    "hopper": ["env=hopper", "n_envs=4", "total_timesteps={steps}"],
    "walker2d": ["env=walker2d", "n_envs=4", "total_timesteps={steps}"],
    "halfcheetah": ["env=halfcheetah", "n_envs=4", "total_timesteps={steps}"],
    "pick_place": ["env=pick_place", "n_envs=8", "total_timesteps=1000000",
                   "env.kwargs.reward_type=dense"],
}
BOUNDS = {"unbounded": ["agent.mean_bound=null"], "bounded": ["agent.mean_bound=1.0"]}
# envs whose yaml sets its own ``mean_bound`` (used when ``agent.mean_bound`` is null)
ENV_BOUND = {"pick_place"}


def run(env: str, bound: str, seed: int, steps: int, work: Path) -> dict[str, Any]:
    """One run (reused when its ``summary.json`` exists); its summary."""
    return train_run(work / env / f"{bound}_s{seed}", [
        "agent=ppo", "reward=env", "~teacher", *(o.format(steps=steps) for o in ENVS[env]),
        *BOUNDS[bound],
        *(["env.mean_bound=null"] if bound == "unbounded" and env in ENV_BOUND else []),
        f"seed={seed}", "torch_threads=1", "video.enabled=false", "progress_bar=false",
        "eval.n_episodes=20"], label=f"{env} {bound} s{seed}")


def _cell(runs: list[dict[str, Any]], how: str, key: str) -> str:
    vals = [r[how][key] for r in runs]
    if key == "success_rate":
        return f"{', '.join(f'{v:.0%}' for v in vals)} (**{np.mean(vals):.0%}**)"
    return f"{', '.join(f'{v:.0f}' for v in vals)} (**{np.mean(vals):.0f}**)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--timesteps", type=int, default=300_000, help="locomotion budget")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--existing", action="store_true",
                    help="only write the table, from the runs that finished")
    add_paths(ap, "mean_bound")
    args = ap.parse_args()
    jobs = [(e, b, s) for e in args.envs for s in args.seeds for b in BOUNDS]
    if args.existing:
        jobs = [(e, b, s) for e, b, s in jobs
                if (args.work / e / f"{b}_s{s}" / "summary.json").is_file()]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda j: run(*j, args.timesteps, args.work), jobs))
    by = {(e, b): [r for (e2, b2, _), r in zip(jobs, results, strict=True) if (e2, b2) == (e, b)]
          for e in args.envs for b in BOUNDS}
    lines = ["# PPO's Gaussian mean bounded or not (`agent.mean_bound`)", "",
             f"Machine: {platform.machine()}, 2 cores, no GPU; commit {git_commit()}; command: "
             f"`python bench/bench_mean_bound.py --envs {' '.join(args.envs)} --seeds "
             f"{' '.join(map(str, args.seeds))} --timesteps {args.timesteps} --jobs {args.jobs}` "
             "(two runs at a time, one torch thread each).", "",
             "PPO on each env's own reward with its recommended settings (locomotion: 4 envs, "
             f"{args.timesteps:,} steps; pick_place: 8 envs, 1M steps, dense reward); 20 "
             "evaluation episodes with the mean action and 20 with sampled actions (held-out "
             "seeds). Per seed, then the mean in bold.", "",
             *(["Partial (`--existing`): only the runs that finished are in the table; run "
                "the command to add the rest (finished runs are reused).", ""]
               if args.existing else []),
             "| env | mean | seeds | return, mean action | return, sampled | success, mean "
             "action | success, sampled |", "|---|---|---|---|---|---|---|"]
    for env in args.envs:
        for bound in BOUNDS:
            runs = by[(env, bound)]
            if not runs:
                lines.append(f"| {env} | {bound} | not run yet | | | | |")
                continue
            success = runs[0]["deterministic"]["success_rate"] is not None
            lines.append(
                f"| {env} | {bound} | {', '.join(str(r['seed']) for r in runs)} | "
                f"{_cell(runs, 'deterministic', 'env_return_mean')} | "
                f"{_cell(runs, 'sampled', 'env_return_mean')} | "
                f"{_cell(runs, 'deterministic', 'success_rate') if success else '-'} | "
                f"{_cell(runs, 'sampled', 'success_rate') if success else '-'} |")
    lines += ["", "Bounded against unbounded, the means over seeds (success where the env "
              "reports it, else return):", ""]
    for env in args.envs:
        lo, hi = by[(env, "unbounded")], by[(env, "bounded")]
        if not lo or not hi:
            continue
        key = ("success_rate" if lo[0]["deterministic"]["success_rate"] is not None
               else "env_return_mean")
        parts = []
        for how, name in (("deterministic", "mean action"), ("sampled", "sampled")):
            a = float(np.mean([r[how][key] for r in lo]))
            b = float(np.mean([r[how][key] for r in hi]))
            diff = f"{b - a:+.0%} points" if key == "success_rate" else f"{b - a:+.0f}"
            parts.append(f"{name} {diff}")
        lines.append(f"- {env} ({len(hi)} bounded / {len(lo)} unbounded seeds): "
                     + ", ".join(parts))
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
