"""The logit of a trained DrS stage-0 classifier along the expert's path to the object.

Why the suite's DrS agents did or did not leave their first stage: the score an agent
climbs is ``tanh(D_0(s))``. This probe loads the classifier a run saved
(``<run>/reward_model.pt``) and scores states built from the task's first scripted-expert
demo: a mid-stage-0 demo state with the hand (the current and the previous frame's
position, observation entries 0-2 and 18-20) put at ``start + t * (target - start)``,
where ``start`` is the demo's first hand position and ``target`` its hand position when it
enters stage 1 (``t = 0`` the reset position, ``t = 1`` the object; negative ``t`` behind the
start). Twice: with the gripper opening the expert holds (entry 3 and 21 from the demo),
and fully open (1.0, as at reset and as a random agent has it). A logit that changes by
tens within a fraction of the path saturates ``tanh``: the reward is flat off the path.

Usage::

    python bench/bench_drs_path.py --task button-press-topdown-v3 \\
        --runs bench/_work/suite/t1000000/button-press-topdown-v3/drs_unbounded_s0 \\
        bench/_work/suite/t1000000/button-press-topdown-v3/drs_s0
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _common import add_paths, git_commit  # noqa: E402

STEPS = np.round(np.linspace(-2.0, 1.2, 17), 2)
"""Positions along the path (0: the reset hand position, 1: where stage 1 begins)."""


def path_states(task: str, demos: Path, gripper: float | None) -> np.ndarray:
    """``(len(STEPS), obs_dim)`` states along the first demo's path to its stage 1."""
    from rewardlearn.demos import load_demo_sets

    ep = load_demo_sets(str(demos))[0]
    obs = np.asarray(ep.observations, np.float64)
    k = np.asarray(ep.stages)
    enter = int(np.argmax(k >= 1)) if (k >= 1).any() else len(k) - 1
    base, start = obs[max(enter // 2, 1)].copy(), obs[0][:3]
    rows = []
    for t in STEPS:
        o = base.copy()
        o[:3] = start + t * (obs[enter][:3] - start)
        o[18:21] = o[:3]
        if gripper is not None:
            o[3] = o[21] = gripper
        rows.append(o)
    return np.stack(rows)


def logits(run: Path, states: np.ndarray) -> np.ndarray:
    """Stage-0 logits of the classifier ``run`` saved."""
    import gymnasium as gym
    import torch

    from rewardlearn.drs.reward import DrSReward
    from rewardlearn.rewards import load_reward_model

    space = gym.spaces.Box(-np.inf, np.inf, states.shape[1:], np.float64)
    model = load_reward_model(run / "reward_model.pt", space,
                              gym.spaces.Box(-1.0, 1.0, (4,), np.float32))
    assert isinstance(model, DrSReward) and model.net is not None
    with torch.no_grad():
        out = model.net(torch.as_tensor(states, dtype=torch.float32))[:, 0]
    return out.numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", required=True)
    parser.add_argument("--runs", nargs="+", type=Path, required=True)
    add_paths(parser, "suite", out="drs_path")
    args = parser.parse_args()
    demos = args.work / "demos" / args.task
    lines = [
        "# A trained DrS stage-0 classifier along the expert's path", "",
        f"Machine: {platform.machine()}, no GPU; commit {git_commit(ROOT, dirty=True)}.", "",
        f"Command: `python bench/bench_drs_path.py --task {args.task} --runs "
        f"{' '.join(str(r.relative_to(ROOT) if r.is_absolute() else r) for r in args.runs)}`",
        "", (__doc__ or "").split("Usage::")[0].split("\n", 2)[2].strip(), "",
        "| run | gripper | " + " | ".join(f"t={t:g}" for t in STEPS) + " |",
        "|---|---|" + "---|" * len(STEPS)]
    for run in args.runs:
        for grip, label in ((None, "the expert's"), (1.0, "open (1.0)")):
            lg = logits(run, path_states(args.task, demos, grip))
            lines.append(f"| {run.name} | {label} | " + " | ".join(f"{v:.1f}" for v in lg)
                         + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-2 * len(args.runs):]))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
