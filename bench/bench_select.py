"""Reward-guided action selection (best-of-n, ``rewardlearn/select/``) on ``pick_place`` (or
any env with a scripted expert, ``--env``): per-step decision time, and the success of a
cloned policy with and without selection.

Usage::

    python bench/bench_select.py                      # full: seeds 0-4, 50 eval episodes
    python bench/bench_select.py --drs-run bench/_work/drs_lipschitz/t1000000/runs/drs_s0
    python bench/bench_select.py --smoke --out bench/_work/select/smoke.md   # tiny budgets
    python bench/bench_select.py --env metaworld --env-override task=handle-press-v3 \
        --drs-run bench/_work/suite/t1000000/handle-press-v3/drs_s0 \
        --out bench/results/select_handle-press-v3.md      # a suite task (bench_suite's DrS run)

Another env's runs go to ``--work``/``<its name>``; every step below then uses that env
(``rewardlearn-collect env=<env> <overrides>`` for the demos, its dense reward for the oracle
and the ceiling). Steps, per seed ``s`` of ``--seeds``:

1. ``--demos`` (50) scripted-expert demos with Gaussian action noise ``--demo-noise`` (0.5),
   successful ones only (``rewardlearn-collect env=pick_place n_episodes=50 noise=0.5``),
   collected once (seed 0).
2. A BC policy: PPO as ``train.py env=pick_place agent=ppo`` builds it (256x256 nets, mean
   kept in the action bounds, observations normalised with the demos' statistics), its
   actor cloned from the demos with the ``bc.*`` defaults (50 epochs; log-std -1 after
   cloning), torch seed ``s``. No RL.
3. ``--labels`` (500) synthetic action-preference labels: at every ``--every`` (5) steps of
   the BC policy's own sampled rollouts (episode seeds ``20000 + 1000 s + k``), two
   candidates from the policy; the oracle prefers the one whose ``--label-horizon`` (5)
   steps (the candidate, then the mean action) earn more of the env's dense reward,
   through a copy of the simulator state (simulation only). A reward ``r(s, a)``
   (``reward=action_preference``, Bradley-Terry, seed ``s``) is fitted on them.
4. Deterministic evaluation (the policy's mean action; best-of-n: the mean action is
   candidate 1), ``--episodes`` (50) held-out seeds ``10000 + k``, success = the env's
   ``is_success``:

   * ``bc``: the BC policy alone; ``bc_sampled``: one sampled action per step (control:
     what a random pick among the candidates does);
   * ``action_preference``: best-of-``--n`` (16) by the learned ``r(s, a)``;
   * ``action_preference_support``: the same behind
     :class:`~rewardlearn.select.scorers.SupportGate` (``--support`` quantile, 0.5): the
     mean action wherever the state is farther from every labelled state than that
     quantile of the labelled states' own nearest-neighbour distances (``--support 0``:
     not run);
   * ``drs``: best-of-16 by a DrS run's trained reward (``reward=drs``: stage + its stage
     classifier over the state reached), one-step lookahead (simulation only); only with
     ``--drs-run`` (a run folder, ``{seed}`` replaced by the seed, or one run for every
     seed; default: bench_drs's ``bench/_work/drs/t1000000/runs/drs_s{seed}`` when
     present);
   * ``true_reward``: best-of-16 by the env's dense reward over a one-step lookahead (the
     ceiling of one-step selection; simulation only; ``--no-ceiling``: not run).

Latency (seed ``--seeds[0]``'s policy): per-step decision time of best-of-``n`` for ``n`` in
``--latency-n`` (1 4 16 64), as a ratio to the plain policy's ``predict`` timed in the same
loop (same process, same states; medians of ``--latency-steps`` steps), for the ``r(s, a)``
scorer and the env-reward lookahead, on the CPU with one torch thread, and on CUDA when
available. Diagnosis (``--diag-episodes``, seed ``--seeds[0]``): :func:`diagnose`, the
learned ``r(s, a)`` against the labelling oracle on the states its own best-of-n visits.
Writes ``--out``
(``bench/results/select.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import add_paths, git_commit  # noqa: E402

DEFAULT_DRS = "bench/_work/drs/t1000000/runs/drs_s{seed}"
CONDITIONS = ("bc", "bc_sampled", "action_preference", "action_preference_support", "drs",
              "true_reward")
LABELS = {
    "bc": "BC policy alone (mean action)",
    "bc_sampled": "BC policy, one sampled action per step (control)",
    "action_preference": "best-of-{n} by r(s, a) from {labels} synthetic action-preference labels",
    "action_preference_support": "the same, trusted only near its labelled states "
                                 "(`eval.select.support={support}`)",
    "drs": "best-of-{n} by a DrS run's reward over s' (one-step lookahead)",
    "true_reward": "best-of-{n} by the env's dense reward (one-step lookahead: ceiling)",
}


# ----------------------------------------------------------------------------- set-up

ENV: dict[str, Any] = {"name": "pick_place", "overrides": []}
"""The env every step uses (``--env``, ``--env-override``), set once by :func:`main`."""


def env_cfg() -> Any:
    """The env config of ``--env`` with its ``--env-override`` settings."""
    from rewardlearn.env_factory import env_config

    return env_config(ENV["name"], ENV["overrides"])


def env_label() -> str:
    """The env's short name (its config's ``name``: ``metaworld_<task>`` for Meta-World)."""
    return str(env_cfg().name)


def prepare_demos(work: Path, n: int, noise: float) -> Path:
    """``n`` successful noisy-expert demos (reused if present)."""
    from rewardlearn.cli.collect import CollectConfig, collect

    out = work / f"demos-n{n}-noise{round(noise * 100)}"
    if not out.exists():
        name = f"select-noise{round(noise * 100)}"
        short = re.sub(r"[^A-Za-z0-9_]+", "_", env_label()).strip("_")
        collect(CollectConfig(env=ENV["name"], env_overrides=list(ENV["overrides"]),
                              n_episodes=n, noise=noise, seed=0, out=str(out),
                              dataset_id=f"rewardlearn/{short}/{name}-v0"), verbose=False)
    return out


def train_config(seed: int) -> Any:
    """``train.py env=<env> agent=ppo reward=env seed=<seed>`` as composed by Hydra."""
    from hydra import compose, initialize_config_dir

    from rewardlearn.cli.schemas import register_reward_schemas

    register_reward_schemas()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=[
            f"env={ENV['name']}", *(f"env.{o}" for o in ENV["overrides"]), "agent=ppo",
            "reward=env", f"seed={seed}", "~teacher"])


def bc_policy(work: Path, demos: Path, seed: int, epochs: int) -> tuple[Any, dict[str, Any]]:
    """The cloned PPO agent behind its fixed observation normaliser (saved as a run-like
    folder, ``agent.zip`` + ``vecnormalize.pkl``, reused if present)."""
    import torch
    from stable_baselines3.common.vec_env import VecNormalize

    from rewardlearn.agents import build_agent, load_run_policy
    from rewardlearn.bc import BCConfig, warm_start
    from rewardlearn.env_factory import make_vec_env

    folder = work / f"bc_e{epochs}_s{seed}"
    report = folder / "bc.json"
    if not report.is_file():
        torch.manual_seed(seed)
        cfg = train_config(seed)
        venv = VecNormalize(make_vec_env(cfg.env, n_envs=1, seed=seed), norm_obs=True,
                            norm_reward=False)
        agent = build_agent(cfg, venv, folder)
        stats = warm_start(agent, BCConfig(demos=str(demos), epochs=epochs), venv, seed=seed)
        folder.mkdir(parents=True, exist_ok=True)
        agent.save(folder / "agent.zip")
        venv.save(str(folder / "vecnormalize.pkl"))
        venv.close()
        report.write_text(json.dumps(stats, indent=2))
    return load_run_policy(folder), json.loads(report.read_text())


def label_folders(work: Path, seed: int, args: argparse.Namespace) -> list[Path]:
    """The folders of a seed's labels: one, or one per round with ``--label-rounds``."""
    name = f"labels_{args.labels}_h{args.label_horizon}" + (
        "" if args.temperature == 1.0 else f"_t{args.temperature:g}")
    if args.label_rounds == 1:
        return [work / f"{name}_s{seed}"]
    query = "" if args.label_query == "every" else f"_{args.label_query}"
    root = work / f"{name}_r{args.label_rounds}_n{args.n}{query}_s{seed}"
    return [root / f"round{k}" for k in range(args.label_rounds)]


def action_reward(policy: Any, work: Path, seed: int, args: argparse.Namespace
                  ) -> tuple[Any, dict[str, Any]]:
    """Synthetic action-preference labels and ``r(s, a)``: ``--labels`` pairs from the policy's
    rollouts, or with ``--label-rounds R`` an equal share per round, round ``k > 0`` moved by
    best-of-``--n`` with the reward fitted on the rounds before it (the states the selector
    visits); the reward is fitted on all rounds."""
    from rewardlearn.env_factory import make_env
    from rewardlearn.select import BestOfN, RewardScorer
    from rewardlearn.select.pairs import (
        ActionOracle,
        collect_action_pairs,
        disagreement_score,
        pairs_file,
    )
    from rewardlearn.select.reward import ActionPreferenceReward

    folders = label_folders(work, seed, args)
    share = [args.labels // len(folders) + (k < args.labels % len(folders))
             for k in range(len(folders))]
    env = make_env(env_cfg())
    label_s, fit_s = 0.0, 0.0
    reward: Any = None
    reused = True
    for k, folder in enumerate(folders):
        try:
            pairs_file(folder)
        except FileNotFoundError:
            reused = False
            behaviour = None if reward is None else BestOfN(
                policy, RewardScorer(reward), args.n,
                observation_space=policy.agent.observation_space,
                temperature=args.temperature)
            t0 = time.perf_counter()
            query = (disagreement_score(reward)
                     if reward is not None and args.label_query == "disagreement" else None)
            collect_action_pairs(policy, env_cfg(), share[k], folder,
                                 ActionOracle(horizon=args.label_horizon), args.label_horizon,
                                 args.every, seed=20_000 + 1000 * seed + 300 * k,
                                 behaviour=behaviour, query_score=query,
                                 temperature=args.temperature)
            label_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        reward = ActionPreferenceReward(env.observation_space, env.action_space,
                                        labels=",".join(str(f) for f in folders[:k + 1]),
                                        max_labels=args.labels, seed=seed,
                                        epochs=args.reward_epochs)
        fit_s += time.perf_counter() - t0
    env.close()
    return reward, {**reward.summary(), "label_wall_s": "reused" if reused else round(label_s, 1),
                    "fit_wall_s": round(fit_s, 1), "rounds": len(folders)}


def drs_reward(template: str | None, seed: int) -> tuple[Any, str | None]:
    """The trained reward of a ``reward=drs`` run (``None`` without one)."""
    from rewardlearn.cli.select_run import load_scoring_model
    from rewardlearn.env_factory import make_env

    path = template.format(seed=seed) if template else str(ROOT / DEFAULT_DRS.format(seed=seed))
    if not Path(path).exists():
        if template is not None:
            raise FileNotFoundError(f"--drs-run {path}: no such run folder (a train.py run with "
                                    f"reward=drs on {env_label()})")
        return None, None
    env = make_env(env_cfg())
    model = load_scoring_model(path, env.observation_space, env.action_space)
    env.close()
    return model, path


# ----------------------------------------------------------------------------- evaluation

def evaluate_condition(policy: Any, scorer: Any, n: int, episodes: int,
                       deterministic: bool = True, temperature: float = 1.0) -> dict[str, Any]:
    """Success and decision time of ``policy`` (behind best-of-``n`` when ``scorer``)."""
    from rewardlearn.cli.select_run import linked_env_config
    from rewardlearn.rollouts import evaluate
    from rewardlearn.select import BestOfN

    env: Any = env_cfg()
    actor: Any = policy
    selector = None
    if scorer is not None:
        selector = BestOfN(policy, scorer, n, observation_space=policy.agent.observation_space,
                           temperature=temperature)
        actor = selector
        if scorer.lookahead:
            env = linked_env_config(env, selector)
    t0 = time.perf_counter()
    result = evaluate(actor, env, n_episodes=episodes, seed=10_000, deterministic=deterministic)
    out = {**result.summary(), "wall_s": round(time.perf_counter() - t0, 1)}
    if selector is not None:
        out["select"] = selector.summary()
    return out


def run_seed(seed: int, demos: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    from rewardlearn.select import (
        EnvRewardScorer,
        LookaheadRewardScorer,
        RewardScorer,
        SupportGate,
    )

    policy, bc = bc_policy(work, demos, seed, args.bc_epochs)
    out: dict[str, Any] = {"seed": seed, "bc": bc, "conditions": {}}
    conds = out["conditions"]
    conds["bc"] = evaluate_condition(policy, None, 1, args.episodes)
    conds["bc_sampled"] = evaluate_condition(policy, None, 1, args.episodes, deterministic=False)
    reward, out["reward"] = action_reward(policy, work, seed, args)
    t = args.temperature
    conds["action_preference"] = evaluate_condition(policy, RewardScorer(reward), args.n,
                                                    args.episodes, temperature=t)
    if args.support > 0:
        conds["action_preference_support"] = evaluate_condition(
            policy, SupportGate(RewardScorer(reward), reward, args.support), args.n,
            args.episodes, temperature=t)
    drs, out["drs_run"] = drs_reward(args.drs_run, seed)
    if drs is not None:
        conds["drs"] = evaluate_condition(policy, LookaheadRewardScorer(drs, gamma=0.99), args.n,
                                          args.episodes, temperature=t)
    if args.ceiling:
        conds["true_reward"] = evaluate_condition(policy, EnvRewardScorer(gamma=0.99), args.n,
                                                  args.episodes, temperature=t)
    for name, c in conds.items():
        print(f"seed {seed} {name}: success {c['success_rate']:.0%}, return "
              f"{c['env_return_mean']:.1f}, {c['wall_s']} s", flush=True)
    return out


# ----------------------------------------------------------------------------- diagnosis

def diagnose(policy: Any, reward: Any, episodes: int, n: int, horizon: int,
             labels: list[Path], temperature: float = 1.0) -> dict[str, Any]:
    """Why best-of-n by ``r(s, a)`` does what it does, on the states it visits itself.

    Over ``episodes`` held-out episodes (seeds 10000+) of the best-of-``n`` selector, at every
    step the ``n`` candidates are also scored by the labelling oracle (the env's dense reward
    over ``horizon`` lookahead steps, the label's own measure; simulation only). Per stage
    (``info["stage"]`` of the state acted in): Spearman between the learned and the oracle's
    scores over the candidates, and how often the executed candidate beats / loses to the
    mean action (candidate 1) by the oracle; beside it, how many of the labelled pairs
    (``labels``) were taken at a state of that stage (the env's stage rule on the stored
    state). Also the stage where each failed episode ends, for the selector and for the
    plain policy on the same seeds."""
    from scipy.stats import spearmanr

    from rewardlearn.env_factory import make_env
    from rewardlearn.select import BestOfN, RewardScorer
    from rewardlearn.select.lookahead import Lookahead
    from rewardlearn.select.pairs import label_arrays, load_pairs

    label_stage = None
    if ENV["name"] == "pick_place":  # the stage from a stored state: pick_place's own rule
        from rewardlearn_envs.pick_place import state_progress

        progress = state_progress(label_arrays([p for f in labels for p in load_pairs(f)])[0])
        label_stage = np.where(progress >= 1.0, 4, np.minimum(np.floor(4 * progress), 3))
    env = make_env(env_cfg())
    look = Lookahead(env)
    selector = BestOfN(policy, RewardScorer(reward), n,
                       observation_space=policy.agent.observation_space,
                       temperature=temperature)

    def mean_action(o: Any) -> np.ndarray:
        return np.asarray(policy.predict(o, deterministic=True)[0])

    per_stage: dict[int, dict[str, list[float]]] = {}
    ends: dict[str, dict[str, int]] = {"bc": {}, "best_of_n": {}}
    for name, actor in (("bc", policy), ("best_of_n", selector)):
        for ep in range(episodes):
            obs, info = env.reset(seed=10_000 + ep)
            done = False
            while not done:
                action = np.asarray(actor.predict(obs, deterministic=True)[0])
                if name == "best_of_n":
                    cand = selector.last_candidates
                    assert cand is not None and selector.last_scores is not None
                    ro = look.rollouts(cand.acts, horizon, mean_action if horizon > 1 else None,
                                       obs=obs)
                    true = ro.returns(1.0)
                    learned = selector.last_scores[0]
                    chosen = int(selector.last_choice[0])  # type: ignore[index]
                    row = per_stage.setdefault(int(info.get("stage", -1)),
                                               {"rho": [], "better": [], "worse": []})
                    rho = spearmanr(learned, true).correlation
                    if np.isfinite(rho):
                        row["rho"].append(float(rho))
                    row["better"].append(float(true[chosen] > true[0] + 1e-9))
                    row["worse"].append(float(true[chosen] < true[0] - 1e-9))
                obs, _, term, trunc, info = env.step(action)
                done = bool(term or trunc)
            if not info.get("is_success", False):
                key = str(info.get("stage", "?"))
                ends[name][key] = ends[name].get(key, 0) + 1
    look.close()
    env.close()
    stages = {k: {"states": len(v["better"]),
                  "labels": None if label_stage is None else int((label_stage == k).sum()),
                  "spearman": float(np.mean(v["rho"])) if v["rho"] else None,
                  "better": float(np.mean(v["better"])), "worse": float(np.mean(v["worse"]))}
              for k, v in sorted(per_stage.items())}
    return {"episodes": episodes, "horizon": horizon, "stages": stages, "failed_end_stage": ends}


# ----------------------------------------------------------------------------- latency

def latency(policy: Any, reward: Any, ns: list[int], steps: int, device: str,
            temperature: float = 1.0) -> list[dict[str, Any]]:
    """Median per-step decision time of best-of-n and of the plain policy, timed in the same
    loop on the same states (a live pick_place episode stepped with the selected action);
    medians, as the machine may be shared."""
    import torch

    from rewardlearn.env_factory import make_env
    from rewardlearn.select import BestOfN, EnvRewardScorer, RewardScorer

    if device != "cpu":
        policy.agent.policy.to(device)
        policy.agent.device = torch.device(device)
        reward.ensemble.to(device)
        reward.device = torch.device(device)
    rows = []
    try:
        for scorer_name in ("reward", "env_reward"):
            for n in ns:
                scorer = RewardScorer(reward) if scorer_name == "reward" else EnvRewardScorer()
                env = make_env(env_cfg())
                selector = BestOfN(policy, scorer, n,
                                   observation_space=policy.agent.observation_space,
                                   temperature=temperature).bind(env)
                obs, _ = env.reset(seed=30_000)
                plain_t: list[float] = []
                sel_t: list[float] = []
                for i in range(steps + 5):
                    # alternate which goes first: the second call on a state finds warm caches
                    for first in ((True, False) if i % 2 else (False, True)):
                        t0 = time.perf_counter()
                        if first:
                            action, _ = selector.predict(obs, deterministic=True)
                        else:
                            policy.predict(obs, deterministic=True)
                        if i >= 5:  # warm-up steps are not timed
                            (sel_t if first else plain_t).append(time.perf_counter() - t0)
                    obs, _, term, trunc, _ = env.step(action)
                    if term or trunc:
                        obs, _ = env.reset(seed=30_001 + i)
                env.close()
                rows.append({"device": device, "scorer": scorer_name, "n": n,
                             "plain_ms": 1000 * float(np.median(plain_t)),
                             "select_ms": 1000 * float(np.median(sel_t)),
                             "ratio": float(np.median(sel_t) / np.median(plain_t)),
                             "select_mean_ms": 1000 * float(np.mean(sel_t)),
                             "steps": steps})
                print(f"latency {device} {scorer_name} n={n}: {rows[-1]['select_ms']:.2f} ms "
                      f"({rows[-1]['ratio']:.1f}x plain)", flush=True)
    finally:
        if device != "cpu":
            policy.agent.policy.to("cpu")
            policy.agent.device = torch.device("cpu")
            reward.ensemble.to("cpu")
            reward.device = torch.device("cpu")
    return rows


# ----------------------------------------------------------------------------- report

def write_report(out: Path, seeds: list[dict[str, Any]], lat: list[dict[str, Any]],
                 args: argparse.Namespace, argv: list[str], wall_s: float,
                 diag: dict[str, Any] | None = None) -> None:
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    fmt = {"n": args.n, "labels": args.labels, "support": args.support}
    lines = [
        f"## Reward-guided action selection (best-of-n) on {env_label()}", "",
        *(["**SMOKE RUN (`--smoke`): budgets far too small for any conclusion; it shows the "
           "pipeline runs.**", ""] if args.smoke else []),
        f"Machine: {platform.machine()}, {cores} cores (shared; load average {load} at the "
        f"end), {gpu}; commit {git_commit(dirty=True)}; command: `python bench/bench_select.py "
        f"{' '.join(argv)}`; seeds {' '.join(str(s['seed']) for s in seeds)}; "
        f"{wall_s / 60:.1f} min wall time.", "",
        f"Policy: PPO ({env_label()}'s settings) cloned from {args.demos} scripted-expert demos "
        f"with action noise {args.demo_noise} (successful ones), {args.bc_epochs} BC epochs, "
        f"no RL. Evaluation: deterministic (the mean action; best-of-n: the mean action is "
        f"candidate 1), {args.episodes} held-out episodes (seeds 10000+). "
        + ("" if args.temperature == 1.0 else
           f"Candidates (labelled pairs, their rollouts' sampled actions, and every best-of-n "
           f"row) drawn at temperature {args.temperature:g}: the policy's standard deviation "
           f"times {args.temperature:g}. ")
        + f"Labels: "
        f"{args.labels} pairs per seed, every {args.every} steps of "
        + ("the policy's sampled rollouts" if args.label_rounds == 1 else
           f"rollouts, in {args.label_rounds} rounds of equal share: round 1 from the "
           f"policy's sampled actions, each later one moved by best-of-{args.n} with the "
           "reward fitted on the rounds before it (the states the selector visits)"
           + ("" if args.label_query == "every" else
              f", its pairs the top 1/{args.every} of every step's pairs by that reward's "
              "ensemble disagreement")
           + "; the reward is fitted on all rounds")
        + f", oracle on the env's dense reward over {args.label_horizon} steps after "
        "each candidate (simulation).", "",
        "| condition | seeds | success per seed | mean success | mean env return | "
        "decision ms (mean) |",
        "|---|---|---|---|---|---|",
    ]
    for cond in CONDITIONS:
        runs = [(s["seed"], s["conditions"][cond]) for s in seeds if cond in s["conditions"]]
        if not runs:
            why = {"drs": "no --drs-run folder", "true_reward": "--no-ceiling"}.get(
                cond, "--support 0")
            lines.append(f"| {LABELS[cond].format(**fmt)} | - | not run ({why}) | - | - | - |")
            continue
        succ = [c["success_rate"] for _, c in runs]
        ms = [c["select"]["decision_ms_mean"] for _, c in runs if "select" in c]
        lines.append(
            f"| {LABELS[cond].format(**fmt)} | {', '.join(str(s) for s, _ in runs)} | "
            f"{', '.join(f'{x:.0%}' for x in succ)} | **{np.mean(succ):.1%}** | "
            f"{np.mean([c['env_return_mean'] for _, c in runs]):.2f} | "
            f"{f'{np.mean(ms):.2f}' if ms else '-'} |")
    gated = [(s["seed"], s["conditions"]["action_preference_support"]["select"])
             for s in seeds if "action_preference_support" in s["conditions"]]
    if gated:
        lines += ["", f"Support gate (quantile {args.support}): per seed, the radius in the "
                  "reward's standardised state features and the share of steps whose state "
                  "lay outside it (the mean action kept): " + "; ".join(
                      f"seed {seed}: {g['support_radius']:.2f}, "
                      f"{g['outside_support_share']:.0%}" for seed, g in gated) + "."]
    lines += ["", "Action-preference reward per seed (Bradley-Terry fit; accuracy on the "
                  "non-equal labels):", "",
              "| seed | labels | train acc | held-out acc | labelling wall (s) | "
              "fit wall (s) | BC loss first / last | DrS run |",
              "|---|---|---|---|---|---|---|---|"]
    for s in seeds:
        r, bc = s["reward"], s["bc"]
        lines.append(f"| {s['seed']} | {r['labels']} | {r['train_acc']} | {r['heldout_acc']} | "
                     f"{r['label_wall_s']} | {r['fit_wall_s']} | {bc['loss_first']:.4f} / "
                     f"{bc['loss_last']:.4f} | {s['drs_run'] or '-'} |")
    if diag:
        lines += ["", f"Diagnosis (seed {args.seeds[0]}'s r(s, a), on the states its own "
                      f"best-of-{args.n} visits, {diag['episodes']} held-out episodes): the "
                      "candidates also scored by the labelling oracle (the env's dense reward "
                      f"over {diag['horizon']} lookahead steps). Per stage of the state acted "
                      "in: Spearman between learned and oracle scores over the candidates, and "
                      "how often the executed candidate is better / worse than the mean action "
                      "by the oracle.", "",
                  "| stage | states | labelled pairs at this stage | Spearman | executed better "
                  "than mean | worse than mean |",
                  "|---|---|---|---|---|---|"]
        for stage, row in diag["stages"].items():
            rho = "-" if row["spearman"] is None else f"{row['spearman']:.2f}"
            lab = "-" if row["labels"] is None else row["labels"]
            lines.append(f"| {stage} | {row['states']} | {lab} | {rho} | "
                         f"{row['better']:.0%} | "
                         f"{row['worse']:.0%} |")
        ends = diag["failed_end_stage"]
        lines += ["", "Stage where the failed episodes end (same seeds): "
                  + "; ".join(f"{name}: " + (", ".join(f"stage {k} x{v}" for k, v in
                                                      sorted(ends[name].items())) or "none")
                              for name in ("bc", "best_of_n")) + "."]
    if lat:
        lines += ["", f"Per-step decision time (median of {lat[0]['steps']} steps after 5 "
                      "warm-up steps; plain = the policy's own `predict` timed in the same loop; "
                      "one torch thread on the CPU; `reward`: r(s, a) above, `env_reward`: "
                      "one-step simulator lookahead):", "",
                  "| device | scorer | n | plain (ms) | best-of-n (ms) | ratio | best-of-n mean "
                  "(ms) |",
                  "|---|---|---|---|---|---|---|"]
        for row in lat:
            lines.append(f"| {row['device']} | {row['scorer']} | {row['n']} | "
                         f"{row['plain_ms']:.3f} | {row['select_ms']:.3f} | "
                         f"{row['ratio']:.1f}x | {row['select_mean_ms']:.3f} |")
        if not any(r["device"] != "cpu" for r in lat):
            lines += ["", "No CUDA device on this machine: GPU rows not measured."]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    (out.with_suffix(".json")).write_text(json.dumps({"seeds": seeds, "latency": lat},
                                                     indent=2, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--demos", type=int, default=50)
    parser.add_argument("--demo-noise", type=float, default=0.5)
    parser.add_argument("--bc-epochs", type=int, default=50)
    parser.add_argument("--labels", type=int, default=500)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--label-horizon", type=int, default=5)
    parser.add_argument("--label-rounds", type=int, default=1,
                        help="rounds of labels (an equal share each); round k > 0 from the "
                             "states best-of-n by the earlier rounds' reward visits")
    parser.add_argument("--label-query", choices=["every", "disagreement"], default="every",
                        help="rounds k > 0: store every --every-th step's pair, or the top "
                             "1/--every by the last reward's ensemble disagreement")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="the candidates' standard deviation as a share of the policy's, "
                        "for the labelled pairs (and their rollouts) and for every best-of-n "
                        "condition (1: the policy's own)")
    parser.add_argument("--reward-epochs", type=int, default=200)
    parser.add_argument("--support", type=float, default=0.5,
                        help="quantile of the support gate's row (eval.select.support); 0: "
                             "no such row")
    parser.add_argument("--drs-run", default=None,
                        help=f"a reward=drs run folder ({{seed}}: the seed); default {DEFAULT_DRS} "
                             "when present")
    parser.add_argument("--ceiling", action=argparse.BooleanOptionalAction, default=True,
                        help="the true reward's best-of-n row (a one-step lookahead per "
                             "candidate: most of a Meta-World seed's wall time)")
    parser.add_argument("--latency-n", type=int, nargs="*", default=[1, 4, 16, 64],
                        help="candidate counts of the latency table (none: no table)")
    parser.add_argument("--latency-steps", type=int, default=200)
    parser.add_argument("--diag-episodes", type=int, default=10,
                        help="episodes of the diagnosis of r(s, a) on its own states (0: none)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny budgets (1 seed, 2 episodes, 20 labels, 5 demos): a pipeline "
                             "check, not a measurement")
    parser.add_argument("--env", default="pick_place",
                        help="env config name or YAML path (default pick_place)")
    parser.add_argument("--env-override", nargs="*", default=[], metavar="KEY=VALUE",
                        help="env config settings, e.g. task=button-press-topdown-v3 with "
                             "--env metaworld")
    add_paths(parser, "select")
    argv = sys.argv[1:]
    args = parser.parse_args(argv)
    ENV.update(name=args.env, overrides=list(args.env_override))
    if args.env != "pick_place":  # runs of another env in a folder of their own
        args.work = args.work / env_label()
    if args.smoke:
        args.seeds, args.episodes, args.labels, args.demos = args.seeds[:1], 2, 20, 5
        args.bc_epochs, args.reward_epochs, args.latency_steps = 5, 20, 10
        args.diag_episodes = min(args.diag_episodes, 1)
        args.work = args.work / "smoke"
    import torch

    torch.set_num_threads(1)
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    demos = prepare_demos(args.work, args.demos, args.demo_noise)
    seeds = [run_seed(seed, demos, args.work, args) for seed in args.seeds]
    policy, _ = bc_policy(args.work, demos, args.seeds[0], args.bc_epochs)
    reward, _ = action_reward(policy, args.work, args.seeds[0], args)
    devices = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    lat = [row for d in devices for row in latency(policy, reward, args.latency_n,
                                                   args.latency_steps, d, args.temperature)]
    labels = label_folders(args.work, args.seeds[0], args)
    diag = diagnose(policy, reward, args.diag_episodes, args.n, args.label_horizon, labels,
                    args.temperature) if args.diag_episodes else None
    write_report(args.out, seeds, lat, args, argv, time.perf_counter() - t0, diag)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
