"""``reward=vpl`` with 2 and 4 conflicting synthetic users: per-user preference accuracy,
one Bradley-Terry reward on the conflicting pairs, and a new user's policy from <= 10 labels.

Usage::

    python bench/bench_vpl.py                      # HalfCheetah, 2 and 4 users, 300k steps, 3 seeds
    python bench/bench_vpl.py --env pendulum --users 2 --seeds 0 --timesteps 20000

For each number of users ``K`` and seed (one ``python train.py`` process per run):

1. ``reward=vpl teacher=population teacher.n_users=K`` (PPO; ``--budget`` labels over the
   users; the agent sees ``[s, z]`` with ``z ~ N(0, I)``). HalfCheetah's users: 2 =
   forward vs backward (``+-v_x``), 4 = target speeds -3, -1, 1, 3 m/s
   (``teacher.preset=auto``); Pendulum's: counter-clockwise vs clockwise, or target speeds.
2. Held-out segments (``--segment-episodes`` episodes of the trained agent with prior ``z`` and
   as many of random actions, cut into segments), ``--heldout`` random pairs of them labelled
   by *every* user. VPL's accuracy per user with ``z`` from ``--context`` other pairs that
   user labelled, chosen at random or actively (mutual information,
   :func:`rewardlearn.vpl.active.select_queries`, or per user after each answer with
   ``--queries bald|posterior``, :func:`~rewardlearn.vpl.active.ask_adaptively`, from
   ``--candidates`` pairs); a single
   Bradley-Terry reward fitted to the run's pooled labels (every user's) on the same pairs;
   both also on the *conflicting* pairs (the users disagree).
3. A new user of each kind: ``z`` from ``--context`` active labels, the VPL agent evaluated with
   that fixed ``z`` on the user's own reward (``--eval-episodes`` held-out seeds), against an
   agent trained on that user's true reward (``reward=env`` with
   :class:`~rewardlearn.vpl.population.UserRewardWrapper`, the same steps and seed) and
   uniform random actions; normalised score ``(vpl - random) / (oracle - random)``.
4. With ``--fixed-z``: is the learned reward's optimum the user's? PPO on the VPL run's
   frozen reward ``r(s, a, z_user)`` (``reward=checkpoint``) with that user's ``z`` of step 3
   held fixed (the same steps and seed), scored on the user's true reward like the others.
   Near the oracle: the reward is right and the ``z``-conditioned policy is what misses;
   far from it: the reward itself misleads for that user.
5. The learned reward along each user's goal coordinate (users with a one-dimensional
   ``target`` goal, e.g. a spin or forward speed): ``r(s, a, z_user)`` averaged over the
   held-out segments' states with that coordinate set to each of ``PROFILE_POINTS`` values
   from ``-2 v`` to ``2 v`` (``v`` the largest goal), and where it peaks. A reward that keeps
   rising past the user's goal says "faster is better", which full torque or full speed
   satisfies. A ``linear`` user of one coordinate (the ``direction`` preset, ``+-v``) is
   profiled from ``-1.5 u`` to ``1.5 u``, ``u`` the speed the users' true-reward agents
   reach: a reward that peaks short of ``u`` stops paying for speed before the oracle does,
   and an agent on it stops there.

Writes ``bench/results/vpl.md`` (``--out``) with the commands, seeds and a provenance line.
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
from _common import add_paths, git_commit, train_run  # bench/ is on sys.path when a script runs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COMMON = ["agent=ppo", "torch_threads=1", "video.enabled=false", "progress_bar=false"]


def train(run_dir: Path, overrides: list[str], log: Path) -> dict[str, Any]:
    """One ``train.py`` run into ``run_dir`` (reused when its ``summary.json`` exists)."""
    return train_run(run_dir, [*COMMON, *overrides], log)


def user_wrapper(user: int, preset: str, n_users: int) -> dict[str, Any]:
    return {"_target_": "rewardlearn.vpl.population.UserRewardWrapper", "user": user,
            "preset": preset, "n_users": n_users}


def hydra_list(specs: list[dict[str, Any]]) -> str:
    """``[{k:v,...}]`` for a Hydra override."""
    return "[" + ",".join("{" + ",".join(f"{k}:{v}" for k, v in s.items()) + "}"
                          for s in specs) + "]"


PROFILE_POINTS = 9


def reward_profile(reward: Any, teacher: Any, user: int, z: np.ndarray, segs: np.ndarray,
                   points: int = PROFILE_POINTS, span: float | None = None
                   ) -> dict[str, Any] | None:
    """The learned reward along ``user``'s goal coordinate (item 5 of the module docstring):
    ``{"values", "reward", "goal", "peak"}``, or None when the user's goal is not one
    coordinate (a zone). A ``target`` user's values run from ``-2 v`` to ``2 v`` (``v`` the
    largest goal); a ``linear`` user of one coordinate (``+-v``: faster is better, its
    ``goal`` the sign ``+-1``) needs ``span``, e.g. 1.5 times the speed its true-reward
    agent reaches: does the learned reward still rise where that agent runs?"""
    from rewardlearn.rewards.base import TransitionBatch

    spec = teacher.users[user]
    if len(spec.index) != 1 or spec.kind not in ("target", "linear"):
        return None
    i = spec.index[0]
    if spec.kind == "target":
        goal = float(spec.goal[0])
        span = 2 * max(abs(float(u.goal[0])) for u in teacher.users if len(u.goal) == 1)
    elif span is None or not np.isfinite(span) or span <= 0:
        return None
    else:
        goal = float(np.sign(spec.goal[0]))
    values = np.linspace(-span, span, points)
    _, acts, nxt = reward.split_side(segs)
    base = nxt.reshape(-1, nxt.shape[-1])
    acts = acts.reshape(-1, acts.shape[-1])
    rows = np.random.default_rng(0).permutation(len(base))[:512]
    base, acts = base[rows], acts[rows]
    zs = np.tile(np.ravel(z).astype(np.float32), (len(base), 1))
    means = []
    for v in values:
        states = base.copy()
        states[:, i] = v
        obs = np.concatenate([states, zs], 1).astype(np.float32)
        means.append(float(np.mean(reward(TransitionBatch.from_arrays(obs, acts, obs)))))
    return {"values": values.tolist(), "reward": means, "goal": goal, "kind": spec.kind,
            "peak": float(values[int(np.argmax(means))])}


def linear_span(teacher: Any, oracle_returns: list[float], lengths: list[float]) -> float:
    """1.5 times the largest speed the ``linear`` users' true-reward agents reach along their
    coordinate: ``|return / episode length / w|`` (``w`` the user's weight)."""
    speeds = [abs(ret / max(n, 1.0) / float(u.goal[0]))
              for u, ret, n in zip(teacher.users, oracle_returns, lengths, strict=True)
              if u.kind == "linear" and len(u.index) == 1 and float(u.goal[0]) != 0.0]
    return 1.5 * max(speeds) if speeds else float("nan")


def collect_segments(env_name: str, act: Any, latent_dim: int, obs_dim: int, episodes: int,
                     length: int, seed: int) -> np.ndarray:
    """Non-overlapping ``length``-step windows ``(n, L, [s, a, s'])`` of ``episodes`` episodes
    (``act``: observation -> action, ``None``: uniform random actions), ``z ~ N(0, I)``."""
    from rewardlearn.env_factory import env_config, make_env
    from rewardlearn.vpl.latent import latent_wrapper

    cfg = env_config(env_name)
    cfg.wrappers = [*(cfg.get("wrappers") or []), latent_wrapper(latent_dim)]
    env = make_env(cfg, seed=seed)
    out = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        rows, done = [], False
        while not done:
            a = env.action_space.sample() if act is None else act(obs)
            nxt, _, terminated, truncated, _ = env.step(a)
            rows.append(np.concatenate([obs[:obs_dim], np.asarray(a, np.float32).reshape(-1),
                                        nxt[:obs_dim]]))
            obs, done = nxt, bool(terminated or truncated)
        steps = np.asarray(rows, np.float32)
        out += [steps[s:s + length] for s in range(0, len(steps) - length + 1, length)]
    env.close()
    return np.stack(out)


def user_return(env_name: str, policy: Any, user: int, preset: str, n_users: int,
                episodes: int, z: np.ndarray | None) -> float:
    """Mean return of ``episodes`` held-out episodes (seeds 10000...) on user ``user``'s
    reward, the agent given the fixed latent ``z`` (``policy=None``: random actions)."""
    from rewardlearn.agents import ActPolicy
    from rewardlearn.env_factory import env_config, make_env
    from rewardlearn.rollouts import evaluate
    from rewardlearn.vpl.latent import latent_wrapper

    cfg = env_config(env_name)
    cfg.wrappers = [*(cfg.get("wrappers") or []), user_wrapper(user, preset, n_users)]
    if z is not None:
        cfg.wrappers = [*cfg.wrappers, latent_wrapper(len(z), list(map(float, z)))]
    if policy is None:
        space = make_env(cfg).action_space
        space.seed(0)
        policy = ActPolicy(lambda obs: space.sample())
    return float(np.mean(evaluate(policy, cfg, n_episodes=episodes).env_returns))


def run_setting(k: int, seed: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Train VPL for ``k`` users and one seed, then measure everything of the module docstring."""
    import torch

    from rewardlearn.agents import ActPolicy, agent_policy
    from rewardlearn.rewards import load_reward_model
    from rewardlearn.vpl.active import ask_adaptively, select_queries
    from rewardlearn.vpl.evaluation import conflicting, fit_bradley_terry, user_accuracies
    from rewardlearn.vpl.population import PopulationTeacher
    from rewardlearn.vpl.reward import VPLReward

    torch.set_num_threads(1)
    users = [f"teacher.n_users={k}", f"teacher.preset={args.preset}"]
    vpl_dir = work / f"vpl_k{k}_s{seed}"
    summary = train(vpl_dir, [f"env={args.env}", "reward=vpl", "teacher=population", *users,
                              f"reward.model.budget={args.budget}",
                              f"total_timesteps={args.timesteps}", f"seed={seed}", *args.extra,
                              *args.vpl_extra],
                    work / "logs" / f"vpl_k{k}_s{seed}.log")
    reward = load_reward_model(vpl_dir / "reward_model.pt", device="cpu")
    assert isinstance(reward, VPLReward)
    d = reward.cfg.latent_dim
    act = agent_policy(str(vpl_dir / "agent.zip"))
    rng = np.random.default_rng(1000 + seed)

    def gather(episodes: int) -> np.ndarray:
        return np.concatenate([
            collect_segments(args.env, act, d, reward.obs_dim, episodes,
                             reward.cfg.segment_length, 20_000 + 100 * seed),
            collect_segments(args.env, None, d, reward.obs_dim, episodes,
                             reward.cfg.segment_length, 30_000 + 100 * seed)])

    segs = gather(args.segment_episodes)
    need = 2 * (args.heldout + args.candidates + args.context)
    if 0 < len(segs) < need:  # short episodes (Pendulum: 4 segments each): more of them
        per_episode = len(segs) / (2 * args.segment_episodes)
        segs = gather(int(np.ceil(need / (2 * per_episode))))
    if len(segs) < need:
        raise SystemExit(f"{len(segs)} segments < {need}: raise --segment-episodes")
    order = rng.permutation(len(segs))
    take = iter(np.split(order[:need], np.cumsum([args.heldout, args.heldout, args.candidates,
                                                   args.candidates, args.context])))
    h1, h2, c1, c2, r1, r2 = (segs[next(take)] for _ in range(6))
    teacher = PopulationTeacher(env=args.env, preset=args.preset, n_users=k, seed=seed + 100)
    side = reward.split_side

    def labels(user: int, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
        return teacher.label_user(user, side(x1), side(x2)).labels

    held = np.stack([labels(u, h1, h2) for u in range(k)])
    random_ctx = [(r1, r2, labels(u, r1, r2)) for u in range(k)]
    if args.queries == "static":
        picked, _ = select_queries(reward, c1, c2, n_queries=args.context, seed=seed)
        asked = [picked] * k
    else:
        asked = []
        for u in range(k):
            truth = labels(u, c1, c2)  # the user's answer to every candidate, read when asked
            asked.append(ask_adaptively(reward, c1, c2, lambda i, t=truth: float(t[i]),
                                        n_queries=args.context, criterion=args.queries,
                                        seed=seed).indices)
    active_ctx = [(c1[asked[u]], c2[asked[u]], labels(u, c1[asked[u]], c2[asked[u]]))
                  for u in range(k)]
    pool = reward.dataset
    bt = fit_bradley_terry(pool.x1[..., reward.columns], pool.x2[..., reward.columns],
                           pool.labels, epochs=args.bt_epochs, seed=seed)
    acc_random = user_accuracies(reward, random_ctx, h1, h2, held, bt)
    acc_active = user_accuracies(reward, active_ctx, h1, h2, held)
    policy = ActPolicy(agent_policy(str(vpl_dir / "agent.zip"), deterministic=True))
    vpl_ret, oracle_ret, random_ret, oracle_len = [], [], [], []
    latents: list[list[float]] = []
    for u in range(k):
        z, _ = reward.infer_latent(*active_ctx[u])
        latents.append(np.ravel(z).astype(float).tolist())
        vpl_ret.append(user_return(args.env, policy, u, args.preset, k, args.eval_episodes, z))
        random_ret.append(user_return(args.env, None, u, args.preset, k, args.eval_episodes,
                                      None))
        oracle = train(work / f"oracle_k{k}_u{u}_s{seed}",
                       [f"env={args.env}", "reward=env", "~teacher",
                        f"+env.wrappers={hydra_list([user_wrapper(u, args.preset, k)])}",
                        f"eval.n_episodes={args.eval_episodes}",
                        f"total_timesteps={args.timesteps}", f"seed={seed}", *args.extra],
                       work / "logs" / f"oracle_k{k}_u{u}_s{seed}.log")
        oracle_ret.append(float(oracle["env_return_mean"]))
        oracle_len.append(float(oracle.get("eval_length_mean") or 1.0))
    span = linear_span(teacher, oracle_ret, oracle_len)  # linear users: from the oracles
    profiles = [reward_profile(reward, teacher, u, np.asarray(latents[u]), h1, span=span)
                for u in range(k)]
    score = [(v - r) / (o - r) if o != r else float("nan")
             for v, o, r in zip(vpl_ret, oracle_ret, random_ret, strict=True)]
    fixed_ret: list[float] = []
    suffix = "" if args.queries == "static" else f"_{args.queries}"
    for u in range(k) if args.fixed_z else []:
        z, _ = reward.infer_latent(*active_ctx[u])
        z_text = "[" + ",".join(f"{float(v):.6g}" for v in np.ravel(z)) + "]"
        spec = hydra_list([user_wrapper(u, args.preset, k)])[:-1] + \
            f",{{_target_:{latent_wrapper_target()},latent_dim:{d},z:{z_text}}}]"
        fixed = train(work / f"fixedz_k{k}_u{u}_s{seed}{suffix}",
                      [f"env={args.env}", "reward=checkpoint",
                       f"reward.model.path={vpl_dir / 'reward_model.pt'}", "~teacher",
                       f"+env.wrappers={spec}", f"eval.n_episodes={args.eval_episodes}",
                       f"total_timesteps={args.timesteps}", f"seed={seed}", *args.extra],
                      work / "logs" / f"fixedz_k{k}_u{u}_s{seed}{suffix}.log")
        fixed_ret.append(float(fixed["env_return_mean"]))
    out = {"users": k, "seed": seed, "labels_used": summary["reward_training"]["labels_used"],
           "conflicting_share": float(conflicting(held).mean()),
           "vpl_random": acc_random["vpl"], "vpl_active": acc_active["vpl"],
           "vpl_conflicting": acc_random["vpl_conflicting"], "bt": acc_random["bt"],
           "bt_conflicting": acc_random["bt_conflicting"], "vpl_return": vpl_ret,
           "oracle_return": oracle_ret, "random_return": random_ret, "score": score,
           "fixed_z_return": fixed_ret,
           "fixed_z_score": [(v - r) / (o - r) if o != r else float("nan")
                             for v, o, r in zip(fixed_ret, oracle_ret, random_ret,
                                                strict=False)],
           "z": latents, "profile": profiles,
           "train_wall_s": summary["train_wall_s"]}
    out["queries"] = args.queries
    out["asked"] = [np.asarray(a).tolist() for a in asked]
    result_file(work, k, seed, args.queries).write_text(json.dumps(out, indent=2))
    return out


QUERY_RULES = {
    "static": "`--queries static`: one mutual-information set chosen before any answer, the same "
              "for every user",
    "bald": "`--queries bald`: each user's next pair chosen after their answers so far, by "
            "BALD's information under the posterior",
    "posterior": "`--queries posterior`: each user's next pair chosen after their answers so "
                 "far, by the encoder's expected posterior entropy",
}


def result_file(work: Path, k: int, seed: int, queries: str) -> Path:
    """``result_k<K>_s<seed>[_<queries>].json``: each query rule's results kept apart."""
    return work / f"result_k{k}_s{seed}{'' if queries == 'static' else f'_{queries}'}.json"


def latent_wrapper_target() -> str:
    from rewardlearn.vpl.latent import WRAPPER_TARGET

    return WRAPPER_TARGET


def _mean(values: list[float]) -> str:
    arr = np.asarray(values, float)
    return "-" if arr.size == 0 or np.isnan(arr).all() else f"{np.nanmean(arr):.1%}"


def _nums(values: list[float], fmt: str = "{:.1f}") -> str:
    return ", ".join(fmt.format(v) for v in values)


def write_report(out: Path, results: list[dict[str, Any]], args: argparse.Namespace,
                 command: str, wall_s: float) -> None:
    lines = [
        f"## VPL: one reward for {', '.join(map(str, args.users))} conflicting users "
        f"({args.env}, PPO)", "",
        f"Machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, no GPU; commit "
        f"{git_commit(dirty=True)}; seeds {' '.join(map(str, args.seeds))}; command: "
        f"`{command}`; "
        + ("table written from the settings measured so far; a setting not listed is not "
           "measured yet." if args.existing else f"{wall_s / 60:.1f} min wall time."), "",
        f"VPL: `reward=vpl teacher=population teacher.preset={args.preset}`, "
        f"{args.budget} labels over the users, {args.timesteps} PPO steps; held-out accuracy on "
        f"{args.heldout} pairs labelled by every user, `z` from {args.context} other labels of "
        "the user (random or active); single BT: one Bradley-Terry reward fitted to all the "
        "run's labels pooled. Policy: a new user's `z` from "
        f"{args.context} active labels ({QUERY_RULES[args.queries]}); oracle: PPO on that "
        "user's true reward, same steps; "
        f"{args.eval_episodes} held-out episodes each"
        + (f"; every run also `{' '.join(args.extra)}`" if args.extra else "")
        + (f"; the VPL runs `{' '.join(args.vpl_extra)}`" if args.vpl_extra else "") + ".", "",
        "| users | seed | conflicting pairs | VPL acc. per user (random z) | VPL (active z) | "
        "VPL on conflicting | single BT per user | single BT on conflicting | VPL policy return "
        "per user | oracle return | random return | normalised score |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: (r["users"], r["seed"])):
        pct = "{:.0%}"
        lines.append(
            f"| {r['users']} | {r['seed']} | {r['conflicting_share']:.0%} | "
            f"{_nums(r['vpl_random'], pct)} | {_nums(r['vpl_active'], pct)} | "
            f"{_nums(r['vpl_conflicting'], pct)} | {_nums(r['bt'], pct)} | "
            f"{_nums(r['bt_conflicting'], pct)} | {_nums(r['vpl_return'])} | "
            f"{_nums(r['oracle_return'])} | {_nums(r['random_return'])} | "
            f"{_nums(r['score'], '{:.2f}')} |")
    fixed = [r for r in results if r.get("fixed_z_return")]
    if fixed:
        lines += ["", "Is the learned reward's optimum the user's? PPO on the VPL run's frozen "
                  "reward `r(s, a, z_user)` (`reward=checkpoint`), the user's `z` (from the "
                  "same 10 active labels) held fixed, same steps and seed, scored on the "
                  "user's true reward (`--fixed-z`):", "",
                  "| users | seed | fixed-z PPO return per user | its normalised score | "
                  "VPL policy's score (above) |",
                  "|---|---|---|---|---|"]
        for r in sorted(fixed, key=lambda r: (r["users"], r["seed"])):
            lines.append(f"| {r['users']} | {r['seed']} | {_nums(r['fixed_z_return'])} | "
                         f"{_nums(r['fixed_z_score'], '{:.2f}')} | "
                         f"{_nums(r['score'], '{:.2f}')} |")
    profiled = [r for r in results if any(r.get("profile") or [])]
    if profiled:
        lines += ["", "The learned reward along each user's goal coordinate: `r(s, a, z_user)` "
                  "averaged over the held-out segments' states with that coordinate set to "
                  f"each of {PROFILE_POINTS} evenly spaced values, `z` from the same 10 active "
                  "labels; peak: "
                  "where it is highest (a target user's peak past the goal: the reward says "
                  "\"faster is better\"; a linear user's (+-v) peak short of the speed its "
                  "true-reward agent reaches: the reward stops paying for more):", "",
                  "| users | seed | user's goal | values | reward at each | peak | "
                  "fixed-z score | policy score |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in sorted(profiled, key=lambda r: (r["users"], r["seed"])):
            fixed = r.get("fixed_z_score") or []
            for u, prof in enumerate(r["profile"]):
                if not prof:
                    continue
                goal = (f"{'+' if prof['goal'] > 0 else '-'}v (faster is better)"
                        if prof.get("kind") == "linear" else f"{prof['goal']:+.3g}")
                lines.append(
                    f"| {r['users']} | {r['seed']} | {goal} | "
                    f"{prof['values'][0]:+.3g} to {prof['values'][-1]:+.3g} | "
                    f"{_nums(prof['reward'], '{:+.2f}')} | {prof['peak']:+.3g} | "
                    f"{f'{fixed[u]:.2f}' if u < len(fixed) else '-'} | "
                    f"{r['score'][u]:.2f} |")
    lines += ["", "Means over seeds and users:", "",
              "| users | VPL acc. (random z) | VPL (active z) | VPL on conflicting | single BT | "
              "single BT on conflicting | normalised policy score |",
              "|---|---|---|---|---|---|---|"]
    for k in args.users:
        rs = [r for r in results if r["users"] == k]

        def flat(key: str, rs: list[dict[str, Any]] = rs) -> list[float]:
            return [v for r in rs for v in r[key]]

        score = np.asarray(flat("score"), float)
        lines.append(f"| {k} | {_mean(flat('vpl_random'))} | {_mean(flat('vpl_active'))} | "
                     f"{_mean(flat('vpl_conflicting'))} | {_mean(flat('bt'))} | "
                     f"{_mean(flat('bt_conflicting'))} | "
                     f"{'-' if np.isnan(score).all() else f'{np.nanmean(score):.2f}'} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="halfcheetah")
    parser.add_argument("--preset", default="auto")
    parser.add_argument("--users", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--timesteps", type=int, default=300_000)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--context", type=int, default=10, help="a new user's labels (<= 10)")
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--heldout", type=int, default=200)
    parser.add_argument("--segment-episodes", type=int, default=20)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--bt-epochs", type=int, default=100)
    parser.add_argument("--extra", nargs="*", default=[],
                        help="more train.py overrides for every run (e.g. n_envs=4)")
    parser.add_argument("--vpl-extra", nargs="*", default=[],
                        help="train.py overrides for the VPL runs only (reward.model.rounds=10)")
    parser.add_argument("--queries", choices=["static", "bald", "posterior"], default="bald",
                        help="a new user's --context queries: each pair chosen after the "
                             "user's answers so far (bald, the default; posterior: "
                             "rewardlearn.vpl.active), or one mutual-information set for every "
                             "user (static: the rule of the tables before 2026-12-07's "
                             "vpl_pendulum_adaptive.md)")
    parser.add_argument("--fixed-z", action="store_true",
                        help="also train PPO on each user's frozen learned reward, z fixed")
    add_paths(parser, "vpl")
    parser.add_argument("--existing", action="store_true",
                        help="only write the table, from the settings already measured "
                             "(<work>/result_k<K>_s<seed>.json); the others are listed as "
                             "not run")
    args = parser.parse_args()
    work = args.work / f"{args.env}_t{args.timesteps}"
    work.mkdir(parents=True, exist_ok=True)
    command = "python bench/bench_vpl.py " + " ".join(sys.argv[1:])
    t0 = time.perf_counter()
    results = []
    for k in args.users:
        for seed in args.seeds:
            saved = result_file(work, k, seed, args.queries)
            if args.existing:
                if not saved.is_file():
                    print(f"K={k} seed {seed}: not measured yet", flush=True)
                    continue
                r = json.loads(saved.read_text())
            else:
                r = run_setting(k, seed, args, work)
            results.append(r)
            print(f"K={k} seed {seed}: VPL acc {_mean(r['vpl_random'])}, single BT on "
                  f"conflicting {_mean(r['bt_conflicting'])}, policy score "
                  f"{_nums(r['score'], '{:.2f}')}", flush=True)
    write_report(args.out, results, args, command, time.perf_counter() - t0)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
