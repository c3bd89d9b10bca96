"""``reward=preference teacher=oracle`` on ``pick_place`` (PPO, 1000 labels), and why it
does what it does: which stages the labelled segments reach, and how the learned reward
ranks the stages on the agent's own states and on the scripted expert's.

Usage::

    python bench/bench_preference_pick_place.py                 # seed 0, 1M steps, 1000 labels
    python bench/bench_preference_pick_place.py --seeds 0 1 --budget 1000 --timesteps 1000000
    python bench/bench_preference_pick_place.py --demos 0 50   # without, and with 50 demos

Per seed ``s``, one ``python train.py env=pick_place agent=ppo n_envs=8 reward=preference
teacher=oracle reward.model.budget=<budget> seed=<s>`` run (the oracle labels a pair by the
segments' dense returns, Bradley-Terry with no noise), reused when its ``summary.json``
exists; for each ``N`` of ``--demos`` other than 0, ``N`` scripted-expert demos
(``rewardlearn-collect env=pick_place n_episodes=N``, collected once) go in as
``reward.model.demos`` (a quarter of the candidate segments on each side of a pair is then a
demo window: Ibarz et al., NeurIPS 2018). Then:

1. **Labels.** From the run's ``reward_model.pt`` (every label is saved with the model):
   the furthest stage each labelled pair reaches (either segment; stage from the state
   with the env's own rule, :func:`rewardlearn_envs.pick_place.state_progress`: 0 reach,
   1 grasp, 2 carry, 3 place, 4 success).
2. **The learned reward by stage.** ``--episodes`` deterministic episodes of the trained
   agent and as many of the scripted expert (held-out seeds 10000+): the learned reward of
   each step, standardised over all those steps, averaged per stage of the state reached;
   Spearman between the learned and the env's dense reward over all steps; the mean
   learned return per step of the agent's episodes and of the expert's. A reward that
   scores carry and place above reach, and the expert above the agent, points the agent
   at the task; one that does not is the cause.

Writes ``--out`` (``bench/results/preference_pick_place.md``) and a ``.json`` beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import add_paths, git_commit, train_run, training_curve

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAGES = ("reach", "grasp", "carry", "place", "success")
DENSE_REFERENCE = ("93.3% (seeds 0-2: 94, 92, 94%; `python bench/bench_drs.py --seeds 0 1 2 "
                   "--conditions dense`, bench/results/drs.md)")


def stage_of(obs: np.ndarray) -> np.ndarray:
    """Stage index (0-3, 4 = success) of ``state`` observations, by the env's own rule."""
    from rewardlearn_envs.pick_place import state_progress

    progress = state_progress(obs)
    return np.where(progress >= 1.0, 4, np.minimum(np.floor(4 * progress), 3)).astype(int)


def label_stages(run_dir: Path, obs_dim: int) -> dict[str, Any]:
    """Furthest stage of each labelled pair, and how the labels side when the two segments
    reach different stages."""
    import torch

    state = torch.load(run_dir / "reward_model.pt", map_location="cpu", weights_only=False)
    data = state["state"]["dataset"] if "state" in state else state["dataset"]
    x1, x2, labels = data["x1"], data["x2"], np.asarray(data["labels"], float)
    far1 = np.array([stage_of(np.asarray(x)[:, :obs_dim]).max() for x in x1])
    far2 = np.array([stage_of(np.asarray(x)[:, :obs_dim]).max() for x in x2])
    far = np.maximum(far1, far2)
    differ = far1 != far2
    # the label sides with the segment that got further (1: first, 0: second)
    agree = [(lab > 0.5) == (a > b) for lab, a, b in zip(labels[differ], far1[differ],
                                                          far2[differ], strict=True)
             if lab != 0.5]
    return {"labels": len(labels),
            "furthest_stage": {STAGES[k]: int((far == k).sum()) for k in range(5)},
            "pairs_reaching_grasp_or_later": float((far >= 1).mean()),
            "pairs_reaching_carry_or_later": float((far >= 2).mean()),
            "pairs_with_different_stages": int(differ.sum()),
            "label_sides_with_further_stage": float(np.mean(agree)) if agree else None}


def reward_by_stage(run_dir: Path, episodes: int) -> dict[str, Any]:
    """The learned reward per stage on the agent's and the expert's own states."""
    from rewardlearn_envs.expert import expert_for
    from scipy.stats import spearmanr

    from rewardlearn.agents import agent_policy
    from rewardlearn.cli.select_run import load_scoring_model
    from rewardlearn.env_factory import make_env
    from rewardlearn.rewards.base import TransitionBatch

    env = make_env("pick_place")
    model = load_scoring_model(str(run_dir), env.observation_space, env.action_space)
    agent = agent_policy(run_dir / "agent.zip", deterministic=True)
    rows: dict[str, dict[str, list[Any]]] = {}
    for who in ("agent", "expert"):
        rec: dict[str, list[Any]] = {"obs": [], "act": [], "next": [], "dense": [],
                                     "succ": []}
        for ep in range(episodes):
            obs, _ = env.reset(seed=10_000 + ep)
            act_fn = agent if who == "agent" else expert_for(env, seed=ep)
            done, info = False, {}
            while not done:
                action = np.asarray(act_fn(obs))
                nxt, r, term, trunc, info = env.step(action)
                rec["obs"].append(obs)
                rec["act"].append(action)
                rec["next"].append(nxt)
                rec["dense"].append(float(info["dense_reward"]))
                obs, done = nxt, bool(term or trunc)
            rec["succ"].append(bool(info.get("is_success", False)))
        rows[who] = rec
    env.close()
    learned, dense, stage, who_of = [], [], [], []
    for who, rec in rows.items():
        obs, nxt = np.asarray(rec["obs"]), np.asarray(rec["next"])
        r = np.asarray(model(TransitionBatch.from_arrays(obs, np.asarray(rec["act"]), nxt)))
        learned.append(r)
        dense.append(np.asarray(rec["dense"]))
        stage.append(stage_of(nxt))
        who_of += [who] * len(r)
    lr, dn, st = np.concatenate(learned), np.concatenate(dense), np.concatenate(stage)
    z = (lr - lr.mean()) / (lr.std() + 1e-8)
    who_arr = np.asarray(who_of)
    per_stage = {}
    for k in range(5):
        m = st == k
        per_stage[STAGES[k]] = {
            "steps_agent": int((m & (who_arr == "agent")).sum()),
            "steps_expert": int((m & (who_arr == "expert")).sum()),
            "learned_z": float(z[m].mean()) if m.any() else None,
            "learned_mean": float(lr[m].mean()) if m.any() else None,
            "dense_mean": float(dn[m].mean()) if m.any() else None}
    return {"episodes": episodes,
            "agent_success": float(np.mean(rows["agent"]["succ"])),
            "expert_success": float(np.mean(rows["expert"]["succ"])),
            "spearman_learned_dense": float(spearmanr(lr, dn).correlation),
            "learned_z_per_step": {w: float(z[who_arr == w].mean()) for w in rows},
            "per_stage": per_stage}


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def expert_demos(work: Path, n: int) -> Path:
    """``n`` scripted-expert demos of pick_place (collected once)."""
    from rewardlearn.cli.collect import CollectConfig, collect

    out = work / f"demos-expert-n{n}"
    if not (out / "data" / "metadata.json").is_file():
        collect(CollectConfig(env="pick_place", n_episodes=n, out=str(out), overwrite=True,
                              dataset_id=f"rewardlearn/pick_place/pref-expert-n{n}-v0"),
                verbose=False)
    return out


def run_seed(seed: int, n_demos: int, args: argparse.Namespace) -> dict[str, Any]:
    from rewardlearn.env_factory import make_env

    demos = [] if not n_demos else [f"reward.model.demos={expert_demos(args.work, n_demos)}"]
    tag = f"_{args.tag}" if args.tag else ""
    name = f"preference{f'_demos{n_demos}' if n_demos else ''}{tag}_b{args.budget}_s{seed}"
    run_dir = args.work / f"t{args.timesteps}" / name
    summary = train_run(run_dir, [*demos, *args.extra,
        "env=pick_place", "agent=ppo", "n_envs=8", "reward=preference", "teacher=oracle",
        f"reward.model.budget={args.budget}", f"seed={seed}",
        f"total_timesteps={args.timesteps}", "torch_threads=1", "video.enabled=false",
        "progress_bar=false", "eval.n_episodes=50"],
        label=f"pick_place preference demos={n_demos} s{seed}")
    env = make_env("pick_place")
    obs_dim = int(np.prod(env.observation_space.shape or (1,)))
    env.close()
    return {"seed": seed, "demos": n_demos, "extra": list(args.extra), "run_dir": str(run_dir),
            "summary": summary,
            "curve": training_curve(run_dir), "labels": label_stages(run_dir, obs_dim),
            "reward": reward_by_stage(run_dir, args.episodes)}


def write_report(results: list[dict[str, Any]], args: argparse.Namespace, argv: list[str],
                 wall_s: float) -> None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    lines = [
        "## Preference (oracle teacher, PPO) on pick_place: result and cause", "",
        f"Machine: {platform.machine()}, {cores} cores (shared with other runs), no GPU; "
        f"commit {git_commit(dirty=True)}; command: `python bench/bench_preference_pick_place.py "
        f"{' '.join(argv)}`; {wall_s / 60:.1f} min wall time (runs reused when present).", "",
        f"Run: `python train.py env=pick_place agent=ppo n_envs=8 reward=preference "
        f"teacher=oracle reward.model.budget={args.budget} seed=<s> "
        f"total_timesteps={args.timesteps}{' ' + ' '.join(args.extra) if args.extra else ''}`"
        ", plus `reward.model.demos=<N scripted-expert demos>` where the demos column says "
        "so; 50 held-out eval episodes. The dense reward "
        f"with the same agent: {DENSE_REFERENCE}.", "",
        "| seed | demos | eval success (mean action / sampled) | final training success | "
        "steps to 50% training success | held-out label acc | labels | wall (min) |",
        "|---|---|---|---|---|---|---|---|"]
    for r in results:
        s, c = r["summary"], r["curve"]
        rt = s.get("reward_training", {})
        lines.append(
            f"| {r['seed']} | {r['demos']} | {s['deterministic']['success_rate']:.0%} / "
            f"{s['sampled']['success_rate']:.0%} | {_pct(c['train_success_final'])} | "
            f"{c['half_success_step'] or 'never'} | {rt.get('heldout_acc', float('nan')):.2f} | "
            f"{rt.get('labels_used', '-')} | {s['wall_s'] / 60:.1f} |")
    lines += ["", "Labelled pairs by the furthest stage either segment reaches (stage from "
                  "the state by the env's rule):", "",
              "| seed | demos | " + " | ".join(STAGES) + " | reach grasp or later | reach carry "
              "or later | pairs whose segments reach different stages | label sides with the "
              "further one |", "|---|---|" + "---|" * (len(STAGES) + 4)]
    for r in results:
        lab = r["labels"]
        side = lab["label_sides_with_further_stage"]
        lines.append(f"| {r['seed']} | {r['demos']} | "
                     + " | ".join(str(lab["furthest_stage"][k])
                                                     for k in STAGES)
                     + f" | {lab['pairs_reaching_grasp_or_later']:.0%} | "
                       f"{lab['pairs_reaching_carry_or_later']:.0%} | "
                       f"{lab['pairs_with_different_stages']} | "
                       f"{'-' if side is None else f'{side:.0%}'} |")
    lines += ["", f"The learned reward on the trained agent's and the scripted expert's own "
                  f"states ({args.episodes} deterministic episodes each, seeds 10000+): mean "
                  "learned reward per stage of the state reached (steps: agent / expert), "
                  "standardised over all those steps, and as the agent gets it: relative to "
                  "the reward after the episode ends (the learned absorbing value; 0 for the "
                  "agent once it terminates); the env's dense reward for comparison:", "",
              "| seed | demos | stage | steps (agent / expert) | learned (z) | learned, relative "
              "to the episode's end | dense |",
              "|---|---|---|---|---|---|---|"]
    for r in results:
        for name, row in r["reward"]["per_stage"].items():
            if row["learned_z"] is None:
                continue
            lines.append(f"| {r['seed']} | {r['demos']} | {name} | {row['steps_agent']} / "
                         f"{row['steps_expert']} | {row['learned_z']:+.2f} | "
                         f"{row['learned_mean']:+.3f} | {row['dense_mean']:.3f} |")
    lines.append("")
    for r in results:
        rw = r["reward"]
        lines.append(f"- seed {r['seed']}, demos {r['demos']}: Spearman(learned, dense) over "
                     f"all those steps {rw['spearman_learned_dense']:.2f}; mean learned reward "
                     "per step (z): "
                     f"agent {rw['learned_z_per_step']['agent']:+.2f}, expert "
                     f"{rw['learned_z_per_step']['expert']:+.2f}; success in these episodes: "
                     f"agent {rw['agent_success']:.0%}, expert {rw['expert_success']:.0%}.")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--timesteps", type=int, default=1_000_000)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--extra", nargs="*", default=[], metavar="KEY=VALUE",
                        help="more train.py overrides for every run (name them with --tag)")
    parser.add_argument("--tag", default="",
                        help="suffix of the run folders, for runs with --extra settings")
    parser.add_argument("--demos", type=int, nargs="+", default=[0],
                        help="scripted-expert demos queried against the agent, one run per "
                             "value (0: none)")
    add_paths(parser, "preference_pick_place")
    argv = sys.argv[1:]
    args = parser.parse_args(argv)
    if args.extra and not args.tag:
        parser.error("--extra settings need a --tag naming their run folders")
    t0 = time.perf_counter()
    results = [run_seed(s, d, args) for s in args.seeds for d in args.demos]
    write_report(results, args, argv, time.perf_counter() - t0)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
