"""Compare saved reward models before spending compute on RL.

Usage::

    python -m rewardlearn.evaluate reward=runs/<run>/reward_model.pt env=pendulum
    python -m rewardlearn.evaluate reward=a/reward_model.pt,b/reward_model.pt env=hopper \\
        reference=env n_steps=5000 labels=a/reward_model.pt out=eval.json
    python -m rewardlearn.evaluate reward=runs/progress/pick_place/progress_model.pt \\
        env=pick_place demos=data/pick_place-noisy-v0 metrics=voc

Each reward (comma-separated checkpoints; ``name:path`` names a column) is scored
against a reference reward over transitions of ``n_steps`` steps in the env
(random actions, or ``agent=<agent.zip>``):

* ``epic``, ``starc``: distances to the reference in [0, 1] (see
  :mod:`rewardlearn.metrics.epic`, :mod:`rewardlearn.metrics.starc`); ``n_eval``
  evaluation transitions, ``n_samples`` coverage samples (``actions=uniform|rollout``),
  discount ``gamma``.
* ``pref``: accuracy on labelled segment pairs: ``labels=<reward_model.pt of a
  reward=preference run>`` (its saved labels; ``label_rounds=3,4`` keeps some
  rounds), else ``n_pairs`` oracle-labelled pairs of ``segment_length`` steps.
* ``returns``: Pearson and Spearman of learned vs true episode returns.
* ``voc``: for progress models with ``demos=<dataset>``: VOC and stage accuracy.

``reference=env`` (default) is the env's reward as a function of (s, a, s')
(exact for Pendulum, else an MLP regression whose held-out R^2 is reported);
``reference=<checkpoint>`` compares with another saved model. Other options:
``obs_mode``, ``seed``, ``max_episode_steps``, ``metrics=epic,starc,pref,returns,voc``,
``regression_epochs``, ``out=<file.json>``, ``torch_threads`` (default 1).

Rewards that read rendered frames (``reward=vlm``, ``vlm_distilled`` with pixel
inputs, ``perceptual`` with a frame encoder) are evaluated on frames rendered as
in training (the env config's camera, at each reward's ``frame_size``): every
distinct state of the rollouts is rendered once, the sampled transitions keep
their states' indices, and each reward call gets the frames of its rows with
their frame ids, so each distinct frame is encoded once per evaluation
(``cost`` in the result: ``queries`` answered vs ``frames_encoded``).
Pixel-observation envs (``obs_mode=pixels``) are evaluated on their uint8
images (EPIC/STARC then need ``reference=<checkpoint>``: the env-reward
regression reads state vectors). Dict observations (``obs_mode=state_pixels``)
are kept as structured arrays (images stay uint8) and reach the rewards as
dicts; ``reference=env`` regresses on their state entries. Labels from a
preference checkpoint hold states only, so frame-reading rewards are scored on
oracle pairs. Example::

    python -m rewardlearn.evaluate reward=runs/<vlm run>/reward_model.pt env=pendulum \
        metrics=epic,returns n_steps=1000 n_eval=300 n_samples=64
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import rewardlearn.metrics as M
from rewardlearn.metrics.epic import RewardFn
from rewardlearn.metrics.sampling import Policy
from rewardlearn.rendering import CameraConfig
from rewardlearn.rewards.base import FrameCache, RewardModel, TransitionBatch
from rewardlearn.utils import parse_key_values, run_cli, set_torch_threads

METRICS = ("epic", "starc", "pref", "returns", "voc")


def _int_list(value: str) -> list[int]:
    return [int(v) for v in value.strip("[]").split(",") if v.strip()]


def _str_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


OPTIONS: dict[str, Callable[[str], Any]] = {
    "reward": _str_list, "env": str, "obs_mode": str, "reference": str, "gamma": float,
    "n_steps": int, "n_eval": int, "n_samples": int, "actions": str, "seed": int,
    "max_episode_steps": int, "agent": str, "labels": str, "label_rounds": _int_list,
    "n_pairs": int, "segment_length": int, "demos": str, "metrics": _str_list,
    "regression_epochs": int, "out": str, "torch_threads": int,
}
DEFAULTS: dict[str, Any] = {
    "env": "pendulum", "reference": "env", "gamma": 0.99, "n_steps": 4000, "n_eval": 1000,
    "n_samples": 256, "actions": "uniform", "seed": 0, "n_pairs": 500, "segment_length": 25,
    "metrics": list(METRICS), "regression_epochs": 100, "torch_threads": 1,
}


def parse_args(argv: Sequence[str]) -> dict[str, Any]:
    """Options from ``key=value`` tokens, defaults filled in; unknown keys list the valid ones."""
    opts = dict(DEFAULTS)
    opts.update(parse_key_values(argv, OPTIONS))
    bad = [m for m in opts["metrics"] if m not in METRICS]
    if bad:
        raise ValueError(f"unknown metrics {bad}; choose from {', '.join(METRICS)}")
    if not opts.get("reward"):
        raise ValueError("give the reward model(s): reward=runs/<run>/reward_model.pt[,...]")
    return opts


def _named(specs: Sequence[str]) -> list[tuple[str, str]]:
    out = []
    for spec in specs:
        name, sep, path = spec.partition(":")
        if not sep or len(name) <= 1:  # no name, or a Windows drive letter
            name, path = Path(spec).parent.name or Path(spec).stem, spec
        out.append((name, path))
    return out


def load_any(path: str, observation_space: gym.Space, action_space: gym.Space) -> RewardModel:
    """A saved reward module, or a progress model file (wrapped as ``reward=progress_delta``)."""
    import torch

    from rewardlearn.rewards.checkpoint import FORMAT, load_reward_model

    if not Path(path).is_file():
        raise FileNotFoundError(f"reward model {path!r} not found")
    payload = torch.load(path, map_location="cpu", weights_only=False)
    model: RewardModel
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        model = load_reward_model(path, observation_space, action_space)
    else:
        from rewardlearn.rewards.progress import ProgressReward

        try:
            model = ProgressReward(observation_space, action_space, path=path, mode="delta")
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path} is neither a reward checkpoint nor a progress model: "
                             f"{err}") from None
    return model


def agent_policy(path: str, deterministic: bool = False) -> Policy:
    """A saved SB3 agent (SAC or PPO) as a policy on raw observations (stochastic by default).

    An observation normaliser saved beside it (``vecnormalize.pkl``, written by
    ``train.py`` with ``agent.normalize_obs``) is applied first.
    """
    import pickle

    from stable_baselines3 import PPO, SAC

    if not Path(path).is_file():
        raise FileNotFoundError(f"agent {path!r} not found (a run's agent.zip)")
    norm_file = Path(path).with_name("vecnormalize.pkl")
    normalizer = pickle.loads(norm_file.read_bytes()) if norm_file.is_file() else None
    agent: Any = None
    errors = []
    for algo in (SAC, PPO):
        try:
            agent = algo.load(path, device="cpu")
            break
        except Exception as err:
            errors.append(f"{algo.__name__}: {err}")
    if agent is None:
        raise ValueError(f"could not load agent {path} as SAC or PPO: {'; '.join(errors)}")

    def act(obs: np.ndarray) -> np.ndarray:
        if normalizer is not None:
            obs = normalizer.normalize_obs(obs)
        return np.asarray(agent.predict(obs, deterministic=deterministic)[0])

    return act


class _Counted:
    """A reward that counts the rows it answers (reads frames exactly when the reward does)."""

    def __init__(self, reward: RewardFn) -> None:
        self.reward = reward
        self.rows = 0
        self.needs_frames = M.reads_frames(reward)
        self.frame_size = M.frame_size_of(reward)
        self.name = str(getattr(reward, "name", type(reward).__name__))

    def __call__(self, batch: TransitionBatch) -> np.ndarray:
        self.rows += len(batch)
        return np.asarray(self.reward(batch))


def _clear_frame_cache(reward: RewardFn | None) -> None:
    clear = getattr(reward, "clear_frame_cache", None)
    if callable(clear):
        clear()


def _cache_misses(reward: RewardFn) -> int | None:
    cache = getattr(reward, "frame_cache", None)
    return int(cache.misses) if isinstance(cache, FrameCache) else None


def evaluate_reward(rewards: Mapping[str, RewardFn], env: gym.Env, env_id: str,
                    reference: RewardFn | None = None, gamma: float = 0.99, n_steps: int = 4000,
                    n_eval: int = 1000, n_samples: int = 256, actions: str = "uniform",
                    seed: int = 0, policy: Policy | None = None,
                    max_episode_steps: int | None = None, pairs: M.LabelledPairs | None = None,
                    n_pairs: int = 500, segment_length: int = 25,
                    metrics: Sequence[str] = ("epic", "starc", "pref", "returns"),
                    regression_epochs: int = 100,
                    camera: CameraConfig | dict[str, Any] | str | None = None) -> dict[str, Any]:
    """Score reward functions against a reference in ``env`` (library entry point).

    Returns ``{"setup": {...}, "reference": {...}, "rewards": {name: {metric: value}},
    "cost": {name: {"queries", "frames_encoded", "wall_s"}}}``.
    ``reference=None`` uses the env's reward (:func:`~rewardlearn.metrics.reference_reward`).
    Rewards that read frames get frames rendered from ``env`` (``camera``: the env
    config's, see :func:`rewardlearn.env_factory.camera_config`; non-MuJoCo envs must
    be made with ``render_mode="rgb_array"``); ``frames_encoded`` counts the distinct
    frames a cached module encoded.
    """
    t0 = time.perf_counter()
    everyone = [*rewards.values(), *([reference] if reference is not None else [])]
    sizes = sorted({M.frame_size_of(r) for r in everyone if M.reads_frames(r)})
    if ("pref" in metrics and pairs is not None and sizes
            and (pairs.first_ids is None or pairs.second_ids is None)):
        raise ValueError("labelled pairs from a preference checkpoint hold states only, so "
                         "rewards that read frames cannot be scored on them; drop labels= to use "
                         "oracle pairs from the rollouts, or leave pref out of metrics")
    if reference is None and {"epic", "starc"} & set(metrics) and env_id not in M.ANALYTIC:
        M.check_regressable(env.observation_space)
    rollouts = M.collect_rollouts(env, n_steps, seed=seed, policy=policy,
                                max_episode_steps=max_episode_steps, frames=sizes, camera=camera)
    ref_info: dict[str, Any] = {"kind": "given"}
    if reference is None and any(m in metrics for m in ("epic", "starc")):
        reference, ref_info = M.reference_reward(env_id, rollouts, env.observation_space,
                                               env.action_space, regression_epochs, seed)
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(rollouts), size=min(n_eval, len(rollouts)), replace=False)
    trans = M.Transitions(rollouts.obs[idx], rollouts.acts[idx], rollouts.next_obs[idx],
                          None if rollouts.obs_ids is None else rollouts.obs_ids[idx],
                          None if rollouts.next_ids is None else rollouts.next_ids[idx],
                          rollouts.frames)
    cov = M.coverage_samples(rollouts, env.action_space, n_samples, actions, seed)
    ref_canon = None
    if reference is not None and {"epic", "starc"} & set(metrics):
        _clear_frame_cache(reference)
        try:
            ref_canon = M.epic_canonicalize(reference, trans, cov, gamma)
        finally:
            _clear_frame_cache(reference)
    if "pref" in metrics and pairs is None:
        pairs = M.oracle_pairs(rollouts, n_pairs, segment_length, seed)
    results: dict[str, dict[str, Any]] = {}
    cost: dict[str, dict[str, Any]] = {}
    for name, model in rewards.items():
        t_reward = time.perf_counter()
        reward = _Counted(model)
        misses = _cache_misses(model)
        _clear_frame_cache(model)
        row: dict[str, Any] = {}
        try:
            if ref_canon is not None:
                canon = M.epic_canonicalize(reward, trans, cov, gamma)
                if "epic" in metrics:
                    row["epic"] = M.pearson_distance(canon, ref_canon)
                if "starc" in metrics:
                    row["starc"] = M.starc_from_canonical(canon, ref_canon)
            if "pref" in metrics and pairs is not None:
                acc = M.preference_accuracy(reward, pairs)
                row["pref_acc"], row["pref_pairs"] = acc["accuracy"], acc["pairs"]
            if "returns" in metrics:
                corr = M.return_correlation(reward, rollouts)
                row["return_pearson"], row["return_spearman"] = corr["pearson"], corr["spearman"]
                row["episodes"] = corr["episodes"]
        finally:
            _clear_frame_cache(model)
        after = _cache_misses(model)
        results[name] = row
        cost[name] = {"queries": reward.rows,
                      "frames_encoded": None if misses is None or after is None
                      else after - misses,
                      "wall_s": round(time.perf_counter() - t_reward, 2)}
    setup = {"env": env_id, "gamma": gamma, "n_steps": n_steps, "episodes": rollouts.n_episodes,
             "n_eval": len(idx), "n_samples": n_samples, "actions": actions, "seed": seed,
             "policy": "agent" if policy is not None else "random",
             "states": rollouts.n_states, "frame_sizes": [list(sz) for sz in sizes],
             "wall_s": round(time.perf_counter() - t0, 2)}
    return {"setup": setup, "reference": ref_info, "rewards": results, "cost": cost}


def table(result: dict[str, Any]) -> str:
    """Markdown table of :func:`evaluate_reward`'s (or :func:`main`'s) result."""
    cols = sorted({k for row in result["rewards"].values() for k in row},
                  key=lambda k: list(_ORDER).index(k) if k in _ORDER else 99)
    lines = ["| reward | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, row in result["rewards"].items():
        cells = [_fmt(row.get(c)) for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


_ORDER = ("epic", "starc", "pref_acc", "pref_pairs", "return_pearson", "return_spearman",
          "episodes", "voc", "voc_min", "stage_acc", "progress_mae", "voc_demos")


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if np.isnan(v) else f"{v:.4f}"
    return str(v)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse ``key=value`` arguments, evaluate, print a table, optionally write JSON."""
    from rewardlearn.env_factory import camera_config, env_config, make_env

    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help", "help") for a in args):
        print(__doc__)
        raise SystemExit(0)
    opts = parse_args(args)
    set_torch_threads(int(opts["torch_threads"]))
    cfg = env_config(str(opts["env"]))
    if "obs_mode" in opts:
        cfg.kwargs = {**(cfg.get("kwargs") or {}), "obs_mode": opts["obs_mode"]}
    env = make_env(cfg, seed=int(opts["seed"]))
    try:
        obs_space, act_space = env.observation_space, env.action_space
        named = _named(opts["reward"])
        models = {name: load_any(path, obs_space, act_space) for name, path in named}
        reference = (None if opts["reference"] == "env"
                     else load_any(opts["reference"], obs_space, act_space))
        loaded = [*models.values(), *([reference] if reference is not None else [])]
        if any(m.needs_frames for m in loaded):
            env.close()  # frames: non-MuJoCo envs render only when made for it
            env = make_env(cfg, seed=int(opts["seed"]), render_mode="rgb_array")
        pairs = None
        if "labels" in opts and "pref" in opts["metrics"]:
            pairs = M.pairs_from_preference_checkpoint(opts["labels"], obs_space, act_space,
                                                     opts.get("label_rounds"))
        policy = agent_policy(opts["agent"]) if "agent" in opts else None
        metrics = [m for m in opts["metrics"] if m != "voc"]
        result = evaluate_reward(
            models, env, str(cfg.id), reference, float(opts["gamma"]), int(opts["n_steps"]),
            int(opts["n_eval"]), int(opts["n_samples"]), str(opts["actions"]),
            int(opts["seed"]), policy, opts.get("max_episode_steps"), pairs,
            int(opts["n_pairs"]), int(opts["segment_length"]), metrics,
            int(opts["regression_epochs"]), camera_config(cfg))
    finally:
        env.close()
    result["setup"]["labels"] = opts.get("labels", "oracle pairs from the rollouts")
    result["setup"]["reference"] = opts["reference"]
    if "voc" in opts["metrics"] and "demos" in opts:
        for name, path in named:
            if getattr(models[name], "scorer", None) is not None:
                result["rewards"][name].update(M.progress_voc(path, str(opts["demos"])))
    print(f"env {result['setup']['env']}, {result['setup']['episodes']} episodes "
          f"({result['setup']['policy']} policy), reference {opts['reference']} "
          f"({result['reference'].get('kind')}"
          + (f", held-out R^2 {result['reference']['heldout_r2']:.3f}"
             if "heldout_r2" in result["reference"] else "") + ")")
    print(table(result))
    for name, c in result["cost"].items():
        if c["frames_encoded"] is not None:
            print(f"{name}: {c['queries']} reward queries, {c['frames_encoded']} distinct frames "
                  f"encoded ({result['setup']['states']} states rendered), {c['wall_s']} s")
    if "out" in opts:
        Path(opts["out"]).parent.mkdir(parents=True, exist_ok=True)
        Path(opts["out"]).write_text(json.dumps(result, indent=2, default=float))
        print(f"written to {opts['out']}")
    return result


def cli() -> None:
    """Entry point; input errors exit with a message, no trace."""
    run_cli(main)


if __name__ == "__main__":
    cli()
