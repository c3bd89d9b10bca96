"""The metric suite on one env: :func:`evaluate_reward` scores reward functions against a
reference (EPIC, STARC, preference accuracy, return correlation) and :func:`table` prints
the result. ``rewardlearn-evaluate`` is its command line.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

import rewardlearn.metrics as M
from rewardlearn.agents import ActFn
from rewardlearn.metrics.epic import RewardFn
from rewardlearn.rendering import CameraConfig
from rewardlearn.rewards.base import FrameCache, RewardModel, TransitionBatch


def load_any(path: str, observation_space: gym.Space, action_space: gym.Space) -> RewardModel:
    """A saved reward module (a ``.pt``, a Hub-format folder, a run folder or a Hub repo id),
    or a progress model file (wrapped as ``reward=progress_delta``). Files are read without
    running code from them (:func:`~rewardlearn.rewards.checkpoint.safe_torch_load`)."""
    from rewardlearn.rewards.checkpoint import FORMAT, load_reward_model, safe_torch_load
    from rewardlearn.rewards.pretrained import resolve_source

    source = resolve_source(path)
    if source.is_dir():
        return load_reward_model(source, observation_space, action_space)
    payload = safe_torch_load(source, what="reward model")
    model: RewardModel
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        model = load_reward_model(source, observation_space, action_space)
    else:
        from rewardlearn.progress.reward import ProgressReward

        try:
            model = ProgressReward(observation_space, action_space, path=path, mode="delta")
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path} is neither a reward checkpoint nor a progress model: "
                             f"{err}") from None
    return model


class _Counted:
    """A reward that counts the rows it answers (reads frames exactly when the reward does);
    a module that reads env signals (:attr:`~rewardlearn.rewards.base.RewardModel.info_keys`)
    gets each ``s'``'s info from the rollouts (``infos``: observation bytes -> info)."""

    def __init__(self, reward: RewardFn, infos: dict[bytes, dict[str, Any]] | None = None
                 ) -> None:
        self.reward = reward
        self.infos = infos if getattr(reward, "info_keys", ()) else None
        self.rows = 0
        self.needs_frames = M.reads_frames(reward)
        self.frame_size = M.frame_size_of(reward)
        self.name = str(getattr(reward, "name", type(reward).__name__))

    def __call__(self, batch: TransitionBatch) -> np.ndarray:
        self.rows += len(batch)
        if self.infos is not None and batch.infos is None:
            nxt = np.asarray(batch.next_obs)
            batch.infos = [self.infos.get(np.ascontiguousarray(row).tobytes(), {})
                           for row in nxt]
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
                    seed: int = 0, policy: ActFn | None = None,
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
    lookup = rollouts.info_lookup() if any(getattr(r, "info_keys", ()) for r in everyone) \
        else None
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
        reward = _Counted(model, lookup)
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
          "episodes", "voc", "voc_min", "stage_acc", "progress_mae", "voc_demos",
          "kendall_tau", "kendall_tau_max", "kendall_tau_stage", "concordance",
          "success_failure_gap", "hover_excess", "stall_excess", "drop_excess")


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if np.isnan(v) else f"{v:.4f}"
    return str(v)


__all__ = ["evaluate_reward", "load_any", "table"]
