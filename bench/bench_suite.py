"""The learned rewards on a suite of Meta-World tasks that nobody here chose.

Usage::

    # 1. task selection: the env's dense reward, seed 0, on every candidate task
    python bench/bench_suite.py --select --tasks reach-v3 drawer-open-v3 ... --jobs 2
    # 2. the conditions on the chosen tasks (the selection table names them)
    python bench/bench_suite.py --tasks <chosen> --conditions dense drs sparse preference \\
        --seeds 0 1 2 --jobs 2

Every run is one ``python train.py env=metaworld env.task=<task>`` process (PPO, 8 envs,
``torch_threads=1``, ``--timesteps`` steps, 50 held-out evaluation episodes, no videos),
``--jobs`` at a time; a run whose ``summary.json`` exists is reused, so a second
invocation only adds what is missing. The agent settings are the ones
``conf/env/metaworld.yaml`` gives every task (:data:`AGENT_RULE`): no per-task tuning, and
the reward defaults are the same for every task.

Conditions (each takes the first ``SEEDS_PER_CONDITION[cond]`` of ``--seeds``; runs go seed
by seed, :func:`job_order`):

* ``dense`` (3 seeds): Meta-World's own shaped reward (the reference; seed 0 is the
  selection run);
* ``drs`` (3 seeds): ``reward=drs`` from 50 scripted-expert demos (``rewardlearn-collect``)
  plus the env's stage and success signals; the env's reward is never read;
* ``sparse`` (1 seed): 1 on a step where the task succeeds, else 0;
* ``preference`` (2 seeds): ``reward=preference teacher=oracle`` with 1000 labels, the
  oracle answering from the dense reward.

Ablations (one seed each, run only when named, e.g. ``--conditions drs_unbounded``): the
DrS default before ``reward.model.lipschitz=1.0`` and variants of it (:data:`CONDITIONS`).

Task selection (``--select``): a task is kept when its dense reward trains PPO to >= 60%
deterministic evaluation success at the budget on seed 0. The table lists every task
tried, its stages (derived from its expert's demos, :mod:`rewardlearn_envs.metaworld_expert`)
and whether it has a grasp stage. Writes ``bench/results/suite.md`` (the selection section
first, the results section once condition runs exist).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import (  # noqa: E402
    add_paths,
    collect_demos,
    git_commit,
    train_run,
    training_curve,
)

AGENT_RULE = ("PPO, 8 envs, `conf/env/metaworld.yaml`'s settings for every task: observations and "
              "the agent's rewards normalised (`VecNormalize`, whatever the reward), a rollout of "
              "one whole 500-step episode per env (n_steps 500, batch 100, 10 epochs, lr 3e-4), "
              "SB3's defaults otherwise")
PASS_SUCCESS = 0.6
SEEDS_PER_CONDITION = {"dense": 3, "drs": 3, "sparse": 1, "preference": 2}
"""Seeds of the issue's conditions; every ablation runs one (the first of ``--seeds``)."""
DRS = ["env.reward_type=sparse", "reward=drs", "reward.model.demos={demos}"]
PUBLISHED_CLASSIFIER = ["reward.model.hidden_sizes=[32]", "reward.model.activation=sigmoid",
                        "reward.model.shared_trunk=false", "reward.model.standardize=none"]
"""The classifier of DrS's published code: one net per stage, 32 sigmoid units, raw states."""
UNBOUNDED = "reward.model.lipschitz=null"
"""The classifier before the Lipschitz default: every ablation below was run with it."""
RELATIVE = "reward.model.encoder={target: relative, kwargs: ${env.relative_features}}"
"""Object-centric classifier inputs from the env config's index ranges (``encoder=relative``)."""
CONDITIONS: dict[str, list[str]] = {
    "dense": ["env.reward_type=dense", "reward=env"],
    "sparse": ["env.reward_type=sparse", "reward=env"],
    "drs": DRS,
    "preference": ["env.reward_type=dense", "reward=preference", "teacher=oracle",
                   "reward.model.budget=1000"],
    # ablations, not the conditions (docs/drs.md): the default before
    # reward.model.lipschitz=1.0, and variants of it, run where it failed
    "drs_unbounded": [*DRS, UNBOUNDED],
    # mixup against a saturated stage classifier
    "drs_mixup": [*DRS, UNBOUNDED, "reward.model.mixup=1.0"],
    # the classifier of DrS's published code in place of one 256x256 trunk on
    # demo-standardised states
    "drs_published": [*DRS, UNBOUNDED, *PUBLISHED_CLASSIFIER],
    # the reward as the stage level k + alpha tanh(D_k) (form=stage), without the constant
    # -1 per step of form=negative (Meta-World runs a fixed 500 steps)
    "drs_stage_form": [*DRS, UNBOUNDED, "reward.model.form=stage"],
    # PPO's mean kept inside the action bounds (agent.mean_bound=1.0, docs/agents.md)
    "drs_bound": [*DRS, UNBOUNDED, "agent.mean_bound=1.0"],
    "drs_published_bound": [*DRS, UNBOUNDED, *PUBLISHED_CLASSIFIER, "agent.mean_bound=1.0"],
    # a classifier that moves more slowly against PPO's rollouts
    "drs_slow": [*DRS, UNBOUNDED, "reward.model.update_every=32768"],
    "drs_gentle": [*DRS, UNBOUNDED, "reward.model.train_steps=10"],
    # the training sets of DrS's published code (whole episodes filed by their best stage;
    # D_k's positives include the later stages' states)
    "drs_trajectory": [*DRS, UNBOUNDED, "reward.model.labels=trajectory"],
    # preference with DrS's 50 scripted-expert demos among the queried segments (Ibarz et
    # al. 2018): labels that see the later stages an early agent never reaches
    "preference_demos": ["env.reward_type=dense", "reward=preference", "teacher=oracle",
                         "reward.model.budget=1000", "reward.model.demos={demos}"],
    # the classifiers on object-centric features (object minus hand, goal minus object,
    # the gripper: conf/env/metaworld.yaml's relative_features, the same for every task)
    "drs_relative": [*DRS, RELATIVE],
    # DrS computed, observed and trained but weighted 0: the agent learns from the sparse
    # reward alone, so it behaves as the sparse run does and a cost comparison with that run
    # measures the reward's own work, not a different behaviour's physics (bench_cost.py)
    "drs_shadow": [*DRS, "reward.mode=add", "reward.weight=0"],
    # DrS from demos recorded 10 steps past the first success (``rewardlearn-collect
    # after_success=10``): the success stage's positives include the held outcome, as the
    # OT reward's demos do (docs/ot.md)
    "drs_after": DRS,
}
DEMO_AFTER_SUCCESS = {"drs_after": 10}
"""Conditions whose demos go on this many steps past the first success."""
ABLATIONS = ("drs_unbounded", "drs_mixup", "drs_published", "drs_stage_form", "drs_bound",
             "drs_published_bound", "drs_slow", "drs_gentle", "drs_trajectory",
             "preference_demos", "drs_relative", "drs_shadow", "drs_after")
"""Conditions run only when named (``--conditions drs_mixup``); listed only where run."""
LABELS = {
    "dense": "Meta-World's dense reward (reference)",
    "drs": "`reward=drs` (50 expert demos + stage/success signals)",
    "sparse": "sparse (1 at success)",
    "preference": "`reward=preference teacher=oracle`, 1000 labels",
    "drs_unbounded": "ablation: `reward=drs reward.model.lipschitz=null` (the unbounded "
                     "classifier, the default before)",
    "drs_mixup": "ablation, unbounded: `reward.model.mixup=1.0`",
    "drs_published": "ablation, unbounded: DrS's published classifier (per stage, 32 sigmoid "
                     "units, raw states)",
    "drs_stage_form": "ablation, unbounded: `reward.model.form=stage`",
    "drs_bound": "ablation, unbounded: `agent.mean_bound=1.0`",
    "drs_published_bound": "ablation, unbounded: DrS's published classifier + "
                           "`agent.mean_bound=1.0`",
    "drs_slow": "ablation, unbounded: `reward.model.update_every=32768` (8x fewer updates)",
    "drs_gentle": "ablation, unbounded: `reward.model.train_steps=10` (10x fewer steps each)",
    "drs_trajectory": "ablation, unbounded: `reward.model.labels=trajectory` (the published "
                      "code's training sets)",
    "preference_demos": "option: `reward=preference teacher=oracle`, 1000 labels, "
                        "`reward.model.demos=<the 50 expert demos>`",
    "drs_relative": "option: `reward=drs` on object-centric features (`reward.model.encoder="
                    "{target: relative, kwargs: ${env.relative_features}}`)",
    "drs_shadow": "cost probe: `reward=drs reward.mode=add reward.weight=0` (DrS runs, the "
                  "agent learns from the sparse reward)",
    "drs_after": "option: `reward=drs`, the 50 demos recorded 10 steps past the first success "
                 "(`rewardlearn-collect ... after_success=10`)",
}


def run_dir(work: Path, task: str, cond: str, seed: int, timesteps: int) -> Path:
    return work / f"t{timesteps}" / task / f"{cond}_s{seed}"


def train(task: str, cond: str, seed: int, timesteps: int, work: Path,
          eval_episodes: int = 50) -> dict[str, Any]:
    """One run (reused when its ``summary.json`` exists); its summary."""
    out = run_dir(work, task, cond, seed, timesteps)
    demos = prepare_demos(task, work, after_success=DEMO_AFTER_SUCCESS.get(cond)) \
        if any("{demos}" in o for o in CONDITIONS[cond]) else None
    overrides = [o.replace("{demos}", str(demos)) for o in CONDITIONS[cond]]
    return train_run(out, ["env=metaworld", f"env.task={task}", "agent=ppo", "n_envs=8",
                           f"seed={seed}", f"total_timesteps={timesteps}", *overrides,
                           "torch_threads=1", "video.enabled=false", "progress_bar=false",
                           f"eval.n_episodes={eval_episodes}",
                           *([] if cond.startswith("preference") else ["~teacher"])],
                     label=f"{task} {cond} s{seed}")


def prepare_demos(task: str, work: Path, n: int = 50, after_success: int | None = None
                  ) -> Path:
    """50 scripted-expert demos of ``task`` (seeds 0-49), collected once; with
    ``after_success`` each goes on that many steps past its first success (its own folder)."""
    out = work / ("demos" if after_success is None else f"demos_after{after_success}") / task
    return collect_demos(["env=metaworld", f"env.task={task}"], out, n, after_success)


def ladder(task: str) -> Any:
    from rewardlearn_envs.metaworld_expert import task_stages

    return task_stages(task)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def selection_table(tasks: list[str], work: Path, timesteps: int) -> tuple[str, list[str]]:
    """The selection section and the tasks that pass."""
    rows, chosen = [], []
    for task in tasks:
        folder = run_dir(work, task, "dense", 0, timesteps)
        lad = ladder(task)
        if not (folder / "summary.json").is_file():
            state = ("started, stopped before its summary (no result)"
                     if folder.with_suffix(".log").is_file() else "not run yet")
            rows.append(f"| {task} | {', '.join(lad.names)} | {'yes' if lad.has_grasp else 'no'} "
                        f"| {_pct(lad.expert_success)} | {state} | | | |")
            continue
        s = json.loads((folder / "summary.json").read_text())
        curve = training_curve(folder)
        det = s.get("success_rate")
        sampled = s.get("sampled", {}).get("success_rate") if s.get("sampled") else None
        ok = det is not None and det >= PASS_SUCCESS
        chosen += [task] if ok else []
        rows.append(
            f"| {task} | {', '.join(lad.names)} | {'yes' if lad.has_grasp else 'no'} | "
            f"{_pct(lad.expert_success)} | {_pct(det)} | {_pct(sampled)} | "
            f"{_pct(curve['train_success_final'])} | {'**yes**' if ok else 'no'} |")
    grasp = [t for t in chosen if ladder(t).has_grasp]
    text = "\n".join([
        "## Task selection",
        "",
        f"Rule (written before any learned-reward run): a Meta-World v3 task is kept when its "
        f"own dense reward trains the agent to >= {PASS_SUCCESS:.0%} deterministic evaluation "
        f"success (50 held-out episodes) at {timesteps:,} steps on seed 0. Agent: {AGENT_RULE}. "
        "Every task tried is listed. Stages are derived from each task's scripted-expert demos "
        "(one rule for all tasks, `rewardlearn_envs.metaworld_expert`); *grasp* means the "
        "expert passes into `grasped` from an earlier stage.",
        "",
        f"Command: `python bench/bench_suite.py --select --tasks {' '.join(tasks)} "
        f"--timesteps {timesteps} --jobs 2`",
        "",
        "| task | stages (from demos) | grasp | expert success (5 demos) | dense: eval success "
        "(det.) | sampled | training success (last 100 ep.) | kept |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Kept: {', '.join(chosen) or 'none'} ({len(chosen)} tasks, {len(grasp)} with a grasp "
        "stage).",
    ])
    return text, chosen


def _runs(work: Path, task: str, cond: str, timesteps: int) -> list[dict[str, Any]]:
    """The finished runs of a condition on a task (summary + training curve)."""
    out = []
    for folder in sorted((work / f"t{timesteps}" / task).glob(f"{cond}_s[0-9]*")):
        if (folder / "summary.json").is_file():
            s = json.loads((folder / "summary.json").read_text())
            s.update(training_curve(folder))
            out.append(s)
    return out


def drs_diagnosis(work: Path, task: str, seed: int, timesteps: int) -> str:
    """Where a DrS run's agent got during training, from its TensorBoard log: the highest
    stage reached (``reward/stage``, the mean over a rollout's steps) and the stage
    classifier's score on the agent's states over the last tenth of training
    (``reward/stage_score``, in [-1, 1]: near -1 the classifier is saturated, the reward flat
    within the stage)."""
    import glob

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = run_dir(work, task, "drs", seed, timesteps)
    files = glob.glob(str(folder / "tb" / "**" / "events*"), recursive=True)
    if not files:
        return "no training log"
    acc = EventAccumulator(max(files, key=lambda p: Path(p).stat().st_mtime))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    if "reward/stage" not in tags or "reward/stage_score" not in tags:
        return "no stage log"
    stage = [e.value for e in acc.Scalars("reward/stage")]
    score = [e.value for e in acc.Scalars("reward/stage_score")]
    names = ladder(task).names
    tail = score[-max(1, len(score) // 10):]
    top = max(stage)
    return (f"highest mean stage in a rollout {top:.2f} of {len(names) - 1} "
            f"({' -> '.join(names)}); stage classifier score over the last tenth "
            f"{np.mean(tail):+.2f}")


def reach_diagnosis(folder: Path | None, task: str, episodes: int = 6) -> dict[str, float]:
    """How far the hand stays from the task's object: the trained agent (sampled actions,
    its own ``VecNormalize`` statistics) or uniform random actions (``folder`` None), over
    ``episodes`` held-out layouts (seeds 5000+): the mean distance at the start, the
    closest it came and at the end, and the share of episodes past the first stage.
    Cached as ``<run>/reach.json``."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from rewardlearn.env_factory import env_config, make_env

    cache = folder / "reach.json" if folder is not None else None
    if cache is not None and cache.is_file():
        cached: dict[str, float] = json.loads(cache.read_text())
        return cached
    cfg = env_config("metaworld")
    cfg.task = task
    env = make_env(cfg)
    agent = norm = None
    if folder is not None:
        norm = VecNormalize.load(str(folder / "vecnormalize.pkl"),
                                 DummyVecEnv([lambda: make_env(cfg)]))
        agent = PPO.load(str(folder / "agent.zip"), device="cpu")
    rng = np.random.default_rng(0)

    def dist() -> float:
        u = env.unwrapped
        return float(np.linalg.norm(u.tcp_center - u._get_pos_objects()[:3]))  # type: ignore[attr-defined]

    rows = []
    for ep in range(episodes):
        obs, info = env.reset(seed=5000 + ep)
        start = closest = dist()
        done = False
        while not done:
            if agent is None or norm is None:
                action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
            else:
                action = agent.predict(norm.normalize_obs(obs[None].astype(np.float32)),
                                       deterministic=False)[0][0]
            obs, _, term, trunc, info = env.step(action)
            closest = min(closest, dist())
            done = term or trunc
        rows.append((start, closest, dist(), float(info["stage"] > 0 or info["is_success"])))
    m = np.mean(rows, axis=0)
    out = {"start": float(m[0]), "closest": float(m[1]), "end": float(m[2]),
           "past_stage_0": float(m[3])}
    if cache is not None:
        cache.write_text(json.dumps(out))
    return out


def _reach_text(d: dict[str, float]) -> str:
    return (f"{d['start']:.2f} m at the start, closest {d['closest']:.2f}, at the end "
            f"{d['end']:.2f}; past stage 0 in {d['past_stage_0']:.0%} of episodes")


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _steps(runs: list[dict[str, Any]]) -> str:
    return ", ".join("never" if r.get("half_success_step") is None
                     else f"{r['half_success_step'] / 1000:.0f}k" for r in runs) or "-"


def results_table(tasks: list[str], work: Path, timesteps: int) -> str:
    """Per task and condition: success (mean action / sampled, 50 held-out episodes per
    seed), steps to 50% training success, train wall time; then the targets."""
    rows = []
    ratios: dict[str, list[float]] = {"drs": [], "preference": []}
    half: dict[str, list[float]] = {"dense": [], "drs": []}
    share: list[tuple[str, float]] = []  # (task, 1 - sparse wall / DrS wall, same seed)
    inside: list[tuple[str, float]] = []  # (task, DrS's reward_share measured in the run)
    per_task: dict[str, dict[str, float | None]] = {}
    for task in tasks:
        per_task[task] = {}
        for cond in CONDITIONS:
            runs = _runs(work, task, cond, timesteps)
            if not runs and cond in ABLATIONS:
                continue
            if not runs:
                rows.append(f"| {task} | {LABELS[cond]} | - | not run yet | | | |")
                continue
            det = [r["success_rate"] for r in runs]
            sam = [r["sampled"]["success_rate"] for r in runs if r.get("sampled")]
            per_task[task][cond] = _mean(det)
            wall = _mean([r["train_wall_s"] / 60 for r in runs])
            rows.append(
                f"| {task} | {LABELS[cond]} | {', '.join(str(r['seed']) for r in runs)} | "
                f"{', '.join(_pct(d) for d in det)} (**{_pct(_mean(det))}**) | "
                f"{', '.join(_pct(x) for x in sam)} (**{_pct(_mean(sam))}**) | {_steps(runs)} | "
                f"{wall:.1f} |")
            if cond in half:
                half[cond] += [r["half_success_step"] if r.get("half_success_step") is not None
                               else float(timesteps) * 2 for r in runs]
        dense = per_task[task].get("dense")
        for cond in ratios:
            got = per_task[task].get(cond)
            if dense and got is not None:
                ratios[cond].append(got / dense)
        drs_runs = {r["seed"]: r for r in _runs(work, task, "drs", timesteps)}
        inside += [(task, r["reward_share"]) for r in drs_runs.values()
                   if r.get("reward_share") is not None]
        # the DrS runs made beside the sparse ones: the unbounded classifier's, where they
        # exist (the Lipschitz default's runs came later, beside other runs)
        beside = {r["seed"]: r for r in _runs(work, task, "drs_unbounded", timesteps)}
        for r in _runs(work, task, "sparse", timesteps):
            pair = beside.get(r["seed"]) or drs_runs.get(r["seed"])
            if pair is not None:
                share.append((task, 1 - r["train_wall_s"] / pair["train_wall_s"]))
    dense_all = [v["dense"] for v in per_task.values() if v.get("dense") is not None]
    lines = [
        "## Results", "",
        f"PPO ({AGENT_RULE}), {timesteps:,} steps per run; evaluation: 50 held-out episodes "
        "per seed with the Gaussian's mean action and 50 with sampled actions (success at any "
        "step, Meta-World's own rule). Steps to 50%: first rollout whose last-100-episode "
        "training success reaches 50%. Wall: the run's training time (two runs at a time). "
        "Ablation rows (run only when named, `--conditions drs_mixup`) are not in the "
        "targets.",
        "",
        "| task | reward | seeds | success, mean action | success, sampled | steps to 50% "
        "training success | train wall (min) |",
        "|---|---|---|---|---|---|---|", *rows, ""]
    drs_mean = _mean([v["drs"] for v in per_task.values() if v.get("drs") is not None])
    pref_mean = _mean([v["preference"] for v in per_task.values()
                       if v.get("preference") is not None])
    dense_mean = _mean(dense_all)
    lines += ["### Targets", ""]
    if drs_mean is not None and dense_mean:
        worst = min(ratios["drs"]) if ratios["drs"] else None
        lines.append(f"- DrS mean success {_pct(drs_mean)} vs dense {_pct(dense_mean)}: "
                     f"**{drs_mean / dense_mean:.0%}** of the dense reward's (target >= 95%); "
                     f"lowest task ratio {_pct(worst)} (target >= 75%).")
    rel = [(t, r) for t in tasks for r in _runs(work, t, "drs_relative", timesteps)]
    if rel:
        flat = {(t, r["seed"]): r for t in tasks for r in _runs(work, t, "drs", timesteps)}
        both = [(t, r, flat[t, r["seed"]]) for t, r in rel if (t, r["seed"]) in flat]
        lines.append(
            "- Option `drs_relative` (object-centric classifier inputs) against the default "
            "on the same task and seed (mean action / sampled): " + "; ".join(
                f"{t} seed {r['seed']}: {_pct(r['success_rate'])} / "
                f"{_pct(r['sampled']['success_rate'])} vs {_pct(f['success_rate'])} / "
                f"{_pct(f['sampled']['success_rate'])}" for t, r, f in both) + ".")
    if half["drs"] and half["dense"]:
        lines.append(f"- Median steps to 50% training success: DrS "
                     f"{np.median(half['drs']) / 1000:.0f}k vs dense "
                     f"{np.median(half['dense']) / 1000:.0f}k (**"
                     f"{np.median(half['drs']) / np.median(half['dense']):.2f}x**, target <= "
                     "1.5x; a run that never got there counts as twice the budget).")
    if share:
        lines.append(f"- DrS's share of training wall time against the sparse run of the same "
                     f"seed, side by side (the unbounded classifier's runs where they exist: "
                     "they were the ones made beside the sparse runs): "
                     f"{', '.join(f'{t} {x:.0%}' for t, x in share)} (mean "
                     f"**{np.mean([x for _, x in share]):.0%}**, target <= 10%).")
    lines.append("- Measured apart, on CPU time and with a shadow run whose agent behaves as "
                 "the sparse run's (`python bench/bench_cost.py`): "
                 "[suite_cost.md](suite_cost.md).")
    if inside:
        lines.append("- DrS's share measured inside each run (`summary.json`'s `reward_share`: "
                     "time in the reward module's calls, scoring, observing and classifier "
                     "updates, over the training time; other jobs on the machine slow both "
                     f"alike): {', '.join(f'{t} {x:.1%}' for t, x in inside)} (mean **"
                     f"{np.mean([x for _, x in inside]):.1%}**, target <= 10%).")
    weak = [(t, r["seed"]) for t in tasks for r in _runs(work, t, "drs", timesteps)
            if per_task[t].get("dense") and r["success_rate"] < 0.75 * per_task[t]["dense"]]
    if weak:
        lines.append("- DrS runs below 75% of the dense reward's success, where their agents "
                     "got (training log): " + "; ".join(
                         f"{t} seed {sd}: {drs_diagnosis(work, t, sd, timesteps)}"
                         for t, sd in weak) + ".")
        lines.append("- Where those agents' hands went (hand-to-object distance, 6 held-out "
                     "layouts, sampled actions; `reach_diagnosis`), against uniform random "
                     "actions and the dense reward's agent:")
        for t in sorted({t for t, _ in weak}):
            lines.append(f"  - {t}: random actions {_reach_text(reach_diagnosis(None, t))}")
            for cond in ("dense", "drs", *ABLATIONS):
                for r in _runs(work, t, cond, timesteps):
                    folder = run_dir(work, t, cond, r["seed"], timesteps)
                    if (folder / "agent.zip").is_file():
                        lines.append(f"  - {t}, {LABELS[cond]}, seed {r['seed']}: "
                                     f"{_reach_text(reach_diagnosis(folder, t))}")
    if pref_mean is not None and dense_mean:
        lines.append(f"- Preference (oracle, 1000 labels) mean success {_pct(pref_mean)}: "
                     f"**{pref_mean / dense_mean:.0%}** of the dense reward's (target >= 80%).")
    lines += _pick_place_preference()
    return "\n".join(lines)


def _pick_place_preference() -> list[str]:
    """The same condition on ``pick_place`` (``bench_preference_pick_place.py``'s tables:
    the defaults, and ``--tag state``'s ``r(s)`` runs)."""
    results = ROOT / "bench" / "results"
    runs = [r for name in ("preference_pick_place.json", "preference_pick_place_state.json")
            if (results / name).is_file() for r in json.loads((results / name).read_text())]
    if not runs:
        return ["- Preference on `pick_place`: not run yet (`python "
                "bench/bench_preference_pick_place.py`)."]
    parts = []
    for r in runs:
        what = [f"{r['demos']} expert demos in the queries"] if r.get("demos") else []
        what += [f"`{x}`" for x in r.get("extra") or []]
        s = r["summary"]
        parts.append(f"seed {r['seed']}{' with ' + ' and '.join(what) if what else ''}: "
                     f"{_pct(s['deterministic']['success_rate'])} (sampled "
                     f"{_pct(s['sampled']['success_rate'])})")
    return [f"- Preference (oracle, 1000 labels) on `pick_place`, PPO 1M: {'; '.join(parts)} "
            "(dense 93.3%); the measured causes are in "
            "[preference_pick_place.md](preference_pick_place.md) and docs/preference.md."]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", nargs="+", required=True)
    ap.add_argument("--select", action="store_true", help="run the selection (dense, seed 0)")
    ap.add_argument("--conditions", nargs="+", choices=list(CONDITIONS),
                    default=[c for c in CONDITIONS if c not in ABLATIONS])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--timesteps", type=int, default=1_000_000)
    ap.add_argument("--jobs", type=int, default=2)
    add_paths(ap, "suite")
    ap.add_argument("--existing", action="store_true", help="only write the tables")
    args = ap.parse_args()
    from rewardlearn_envs.metaworld_expert import check_task

    for task in args.tasks:
        check_task(task)
    jobs: list[tuple[str, str, int]] = []
    if args.select:
        jobs = [(task, "dense", 0) for task in args.tasks]
    else:
        jobs = job_order(args.tasks, args.conditions, args.seeds)
    if not args.existing:
        for task in args.tasks:
            ladder(task)  # derive (and cache) each ladder before the runs start
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(lambda j: train(*j, args.timesteps, args.work), jobs))
    write_report(args)
    print(f"wrote {args.out}")


def job_order(tasks: list[str], conditions: list[str], seeds: list[int]
              ) -> list[tuple[str, str, int]]:
    """Runs seed by seed: every task's first seed of every condition before any second seed
    (a sweep stopped early still covers every task), and within a task ``drs`` and ``sparse``
    next to each other, so that with ``--jobs 2`` they run side by side (the wall-time
    comparison)."""
    rank = {c: i for i, c in enumerate(("drs", "sparse", "dense", "preference", *ABLATIONS))}
    jobs = []
    for k, seed in enumerate(seeds):
        for task in tasks:
            jobs += [(task, cond, seed) for cond in sorted(conditions, key=lambda c: rank[c])
                     if k < SEEDS_PER_CONDITION.get(cond, 1)]
    return jobs


def write_report(args: argparse.Namespace) -> None:
    """``suite.md`` from the runs on disk: the selection (its candidates are remembered in
    ``<work>/selection.json``), then the conditions on the kept tasks."""
    record = args.work / f"selection_t{args.timesteps}.json"
    candidates: list[str] = json.loads(record.read_text()) if record.is_file() else []
    if args.select:
        candidates += [t for t in args.tasks if t not in candidates]
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps(candidates))
    header = (f"Machine: {platform.machine()}, 2 cores (shared), no GPU; tables written at commit "
              f"{git_commit()}.")
    selection, chosen = selection_table(candidates, args.work, args.timesteps)
    parts = ["# The learned rewards on Meta-World tasks nobody here chose", "", header, "",
             selection]
    kept = [t for t in chosen if any(_runs(args.work, t, c, args.timesteps)
                                     for c in ("drs", "sparse", "preference"))]
    if kept:
        parts += ["", results_table(kept, args.work, args.timesteps)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(parts).rstrip() + "\n")
    _ = np  # the results tables use numpy


if __name__ == "__main__":
    main()
