"""Meta-World's own scripted policy on every v3 task: success, episode length and stages.

Usage::

    python bench/bench_metaworld_experts.py                 # 20 episodes per task
    python bench/bench_metaworld_experts.py --episodes 5 --tasks reach-v3 push-v3

Each task runs through ``env=metaworld env.task=<task>`` (the package's env, stage labels
from :class:`rewardlearn_envs.metaworld_expert.MetaWorldStages`), the expert acting as
``rewardlearn-collect`` runs it (no action noise; an episode ends at success or at the
500-step limit), reset seeds ``0 .. episodes - 1``. Reported per task: the expert's success
rate, the mean length of its successful episodes, the stages derived from its demos (the
one rule of ``metaworld_expert``) and the share of episodes that pass through every kept
stage. Writes ``bench/results/metaworld_experts.md`` (linked from ``docs/envs.md``).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import git_commit  # noqa: E402


def run_task(task: str, episodes: int) -> dict[str, object]:
    from rewardlearn_envs import expert_for

    from rewardlearn.env_factory import env_config, make_env

    cfg = env_config("metaworld", [f"task={task}"])
    cfg.kwargs.terminate_on_success = True
    env = make_env(cfg, seed=0)
    ladder = env.get_wrapper_attr("ladder")
    successes, lengths, full = 0, [], 0
    for seed in range(episodes):
        obs, info = env.reset(seed=seed)
        expert = expert_for(env, seed=seed)
        stages = {int(info["stage"])}
        done, steps = False, 0
        while not done:
            obs, _, terminated, truncated, info = env.step(expert(obs))
            stages.add(int(info["stage"]))
            done, steps = terminated or truncated, steps + 1
        if info["is_success"]:
            successes += 1
            lengths.append(steps)
        full += len(stages) == len(ladder.levels)
    env.close()
    return {"task": task, "success": successes / episodes,
            "length": float(np.mean(lengths)) if lengths else None,
            "stages": ", ".join(ladder.names), "grasp": ladder.has_grasp,
            "signals": ", ".join(ladder.signals) or "none", "all_stages": full / episodes}


def main() -> None:
    from rewardlearn_envs.metaworld_expert import metaworld_tasks

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", nargs="+", default=None)
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--out", type=Path,
                    default=ROOT / "bench" / "results" / "metaworld_experts.md")
    args = ap.parse_args()
    tasks = args.tasks or metaworld_tasks()
    t0 = time.time()
    rows = []
    for task in tasks:
        r = run_task(task, args.episodes)
        rows.append(r)
        print(task, r["success"], flush=True)
    failing = [r["task"] for r in rows if float(r["success"]) < 1.0]  # type: ignore[arg-type]
    lines = [
        "# Meta-World's scripted policies on every v3 task", "",
        f"Machine: {platform.machine()}, 2 cores; commit {git_commit()}; command: `python "
        f"bench/bench_metaworld_experts.py --episodes {args.episodes}` "
        f"({(time.time() - t0) / 60:.1f} min). Reset seeds 0-{args.episodes - 1}; no action "
        "noise; an episode ends at success (Meta-World's `terminate_on_success`) or at 500 "
        "steps.", "",
        "Stages: the rule of `rewardlearn_envs.metaworld_expert` (reach -> near_object -> "
        "grasped, success at the end), keeping a stage when at least half of the expert's "
        "demo episodes reach it (`MIN_SHARE`); "
        "*signals used* are the `info` entries that vary over the demos (a constant one, such "
        "as `grasp_success` = 1.0 on drawer-close, says nothing and is dropped); *grasp*: the "
        "expert passes into `grasped` from an earlier stage. *All stages*: share of episodes "
        "that visit every kept stage.", "",
        "| task | expert success | steps to success (mean) | stages | signals used | grasp | "
        "all stages |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        length = "-" if r["length"] is None else f"{r['length']:.0f}"
        lines.append(f"| {r['task']} | {float(r['success']):.0%} | {length} | {r['stages']} | "
                     f"{r['signals']} | {'yes' if r['grasp'] else 'no'} | "
                     f"{float(r['all_stages']):.0%} |")  # type: ignore[arg-type]
    lines += ["", f"Tasks where Meta-World's own policy does not always succeed: "
              f"{', '.join(failing) or 'none'}. `rewardlearn-collect` keeps only successful "
              "episodes by default (`only_success=true`) and tries up to `max_tries`."]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
