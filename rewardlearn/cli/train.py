"""``python train.py env=... agent=... reward=...``: train an SB3 agent on a reward module.

A run trains the agent on the configured reward, evaluates it on the env's own
reward, saves the agent and the reward model, records evaluation rollouts
(mp4 + per-step sidecar) under ``videos/<run>/``, logs to TensorBoard and writes
``summary.json`` in the run directory. If training crashes or is interrupted,
the agent and reward model are saved first (``*_interrupted``), then the error
is raised.

Before anything is built, the settings are checked (:func:`validate_settings`:
each bad value is named with its valid range) and the run claims its folders:
the run directory, and the video folder when videos are recorded
(:func:`claim_folder`, a ``run.claim`` file locked while the run lives). A
folder that already holds another run's outputs (``summary.json``,
``agent.zip``, ``agent_interrupted.zip``, videos), or that a live run holds, is
refused; so is a folder that cannot be written. The default run folder
``runs/<date>_<time>_<env>_<agent>_<reward>_s<seed>_<id>`` ends with a random id
(the ``${run_id:}`` resolver), so runs started in the same second get their own
folders. Every output file is written to a unique temp name and renamed into
place once complete. From the command line, such input errors print one line
``error: ...`` and exit with status 1 (``HYDRA_FULL_ERROR=1`` shows the trace).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from rewardlearn.agents import (
    NormalizedPolicy,
    agent_gamma,
    build_agent,
    defer_rewards,
    normalize_obs_enabled,
)
from rewardlearn.bc import BCConfig, warm_start
from rewardlearn.cli.checks import validate_settings
from rewardlearn.cli.objective import check_objective, is_optuna_sweep, objective_value
from rewardlearn.env_factory import CONF_DIR, make_vec_env
from rewardlearn.files import atomic_output, write_text_atomic
from rewardlearn.publish import save_run_reward_model
from rewardlearn.rewards.base import RewardModel
from rewardlearn.rewards.checkpoint import save_reward_model
from rewardlearn.rollouts import evaluate
from rewardlearn.runs import (
    RUN_OUTPUTS,
    VIDEO_OUTPUTS,
    claim_folder,
    release_folder,
)
from rewardlearn.shaping import build_shaping
from rewardlearn.utils import set_torch_threads, to_dict
from rewardlearn.wrappers.vec import (
    DeferredRewardCallback,
    RewardLoggingCallback,
    RewardVecEnvWrapper,
)

log = logging.getLogger("rewardlearn")

def build_reward_model(cfg: DictConfig, observation_space: gym.Space,
                       action_space: gym.Space) -> RewardModel:
    """Instantiate ``cfg.reward.model`` for the env's spaces."""
    try:
        model = instantiate(cfg.reward.model, observation_space=observation_space,
                            action_space=action_space)
    except InstantiationException as e:
        if isinstance(e.__cause__, (ValueError, TypeError, FileNotFoundError, ImportError)):
            raise e.__cause__ from None
        raise
    if not isinstance(model, RewardModel):
        raise TypeError(f"reward={cfg.reward.name} built a {type(model).__name__}, "
                        "not a rewardlearn RewardModel")
    return model


# ----------------------------------------------------------------------------- the run

INPUT_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, OSError, ImportError)


@dataclass
class _Built:
    """What the set-up phase of :func:`run` builds."""

    reward_model: RewardModel
    learned: bool
    venv: VecEnv
    normalizer: VecNormalize | None
    agent: BaseAlgorithm
    callbacks: list[Any]
    bc_summary: dict[str, Any] | None


def _build(cfg: DictConfig, run_dir: Path) -> _Built:
    """Envs, reward model, agent and BC warm start: everything before training."""
    set_torch_threads(cfg.get("torch_threads"))
    probe = make_vec_env(cfg.env, n_envs=1, seed=int(cfg.seed))
    obs_space, act_space = probe.observation_space, probe.action_space
    probe.close()
    reward_model = build_reward_model(cfg, obs_space, act_space)
    reward_model.run_dir = run_dir
    reward_model = build_shaping(cfg.shaping, reward_model, obs_space, act_space, agent_gamma(cfg))
    learned = not reward_model.is_ground_truth
    defer = learned and defer_rewards(str(cfg.get("reward_timing", "auto")), str(cfg.agent.algo),
                                      reward_model.name, reward_model.deferrable)

    frame_size = reward_model.frame_size if reward_model.needs_frames else None
    venv: VecEnv = make_vec_env(cfg.env, n_envs=int(cfg.n_envs), seed=int(cfg.seed),
                                frame_size=frame_size, vec_env=str(cfg.vec_env),
                                sim_state=reward_model.needs_sim_states)
    try:
        callbacks: list[Any] = []
        if learned:
            venv = RewardVecEnvWrapper(venv, reward_model, mode=str(cfg.reward.mode),
                                       weight=float(cfg.reward.weight), defer=defer)
            # first: the deferred rewards go into the rollout before anything reads them
            logging_cb = DeferredRewardCallback() if defer else RewardLoggingCallback()
            callbacks = [logging_cb, *reward_model.callbacks()]
        normalizer: VecNormalize | None = None
        if normalize_obs_enabled(cfg):
            normalizer = VecNormalize(venv, norm_obs=True, norm_reward=False,
                                      gamma=agent_gamma(cfg))
            venv = normalizer
        agent = build_agent(cfg, venv, run_dir)
        bc_summary = None
        if cfg.get("bc") is not None and cfg.bc.get("demos"):
            bc_cfg = BCConfig.from_kwargs(to_dict(cfg.bc))
            bc_summary = warm_start(agent, bc_cfg, normalizer, seed=int(cfg.seed))
    except BaseException:
        venv.close()
        raise
    return _Built(reward_model, learned, venv, normalizer, agent, callbacks, bc_summary)


def _save_agent(agent: BaseAlgorithm, path: Path, overwrite: bool = False) -> None:
    with atomic_output(path, overwrite) as tmp, open(tmp, "wb") as f:
        agent.save(f)


def _save_normalizer(normalizer: VecNormalize, path: Path, overwrite: bool = False) -> None:
    with atomic_output(path, overwrite) as tmp:
        normalizer.save(str(tmp))


def _save_interrupted(built: _Built, run_dir: Path) -> None:
    """Salvage what training had (``*_interrupted``); a failing save is logged, not raised."""
    saves: list[tuple[str, Any]] = [
        ("agent_interrupted.zip", lambda p: _save_agent(built.agent, p, overwrite=True))]
    if built.normalizer is not None:
        normalizer = built.normalizer
        saves.append(("vecnormalize_interrupted.pkl",
                      lambda p: _save_normalizer(normalizer, p, overwrite=True)))
    if built.learned:
        saves.append(("reward_model_interrupted.pt",
                      lambda p: save_reward_model(built.reward_model, p)))
    for name, save in saves:
        try:
            save(run_dir / name)
        except Exception as err:  # keep the training error as the one raised
            log.error("could not save %s: %s", run_dir / name, err)


def run(cfg: DictConfig, run_dir: Path, exit_on_input_error: bool = False) -> dict[str, Any]:
    """Train, evaluate, record and summarise one run; returns the summary.

    Settings are validated and the run directory (and video folder) claimed
    before anything is built. ``exit_on_input_error`` (the command line) turns
    an error of that set-up phase (a bad setting, a missing or wrong input
    file, a refused folder) into ``SystemExit("error: ...")``: one line, exit
    status 1, no trace.
    """
    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    claimed: list[Path] = []
    new_video_dir: Path | None = None
    try:
        try:
            validate_settings(cfg)
            claim_folder(run_dir, RUN_OUTPUTS, "hydra.run.dir")
            claimed.append(run_dir)
            video_dir = Path(cfg.video.dir) / run_dir.name
            n_videos = int(cfg.video.n_episodes) if cfg.video.enabled else 0
            if n_videos:
                new_video_dir = None if video_dir.exists() else video_dir
                claim_folder(video_dir, VIDEO_OUTPUTS, "video.dir")
                claimed.append(video_dir)
            built = _build(cfg, run_dir)
        except BaseException as err:
            if new_video_dir is not None and new_video_dir in claimed:
                release_folder(new_video_dir, discard=True)  # leave no empty video folder
            if (isinstance(err, INPUT_ERRORS) and exit_on_input_error
                    and os.environ.get("HYDRA_FULL_ERROR") != "1"):
                raise SystemExit(f"error: {err}") from None
            raise
        return _train_and_report(cfg, run_dir, built, video_dir, n_videos, t0)
    finally:
        for folder in claimed:
            release_folder(folder)


def _train_and_report(cfg: DictConfig, run_dir: Path, built: _Built, video_dir: Path,
                      n_videos: int, t0: float) -> dict[str, Any]:
    """Train the built agent, save it, evaluate, record videos, write ``summary.json``."""
    agent, normalizer, reward_model, learned = (built.agent, built.normalizer,
                                                built.reward_model, built.learned)
    log.info("training %s on %s with reward=%s for %d steps (%d envs) -> %s", cfg.agent.name,
             cfg.env.name, cfg.reward.name, cfg.total_timesteps, cfg.n_envs, run_dir)
    t_train = time.perf_counter()
    try:
        agent.learn(int(cfg.total_timesteps), callback=built.callbacks,
                    progress_bar=bool(cfg.progress_bar), tb_log_name="train")
    except BaseException:
        _save_interrupted(built, run_dir)
        log.error("training stopped; agent and reward model saved in %s (*_interrupted)", run_dir)
        raise
    finally:
        built.venv.close()
    train_s = time.perf_counter() - t_train
    _save_agent(agent, run_dir / "agent.zip")
    if normalizer is not None:
        _save_normalizer(normalizer, run_dir / "vecnormalize.pkl")
        normalizer.training = False
    if learned:
        save_reward_model(reward_model, run_dir / "reward_model.pt",
                          extra={"env": cfg.env.name, "seed": int(cfg.seed)})
        save_run_reward_model(reward_model, run_dir, cfg)  # Hub format: runs/<run>/reward_model/

    result = evaluate(
        agent if normalizer is None else NormalizedPolicy(agent, normalizer),
        cfg.env,
        n_episodes=int(cfg.eval.n_episodes),
        reward_model=reward_model if learned else None,
        deterministic=bool(cfg.eval.deterministic),
        n_videos=n_videos,
        video_dir=video_dir,
        video_size=(int(cfg.video.height), int(cfg.video.width)),
        fps=cfg.video.fps,
        meta={"run": run_dir.name, "env": cfg.env.name, "reward": cfg.reward.name,
              "agent": cfg.agent.name},
    )
    summary: dict[str, Any] = {
        **result.summary(),
        "total_timesteps": int(cfg.total_timesteps),
        "wall_s": round(time.perf_counter() - t0, 2),
        "train_wall_s": round(train_s, 2),
        "train_steps_per_s": round(int(cfg.total_timesteps) / max(train_s, 1e-9), 1),
        "videos": result.videos,
        "reward_training": reward_model.summary() if learned else None,
        "bc": built.bc_summary,
        "env": cfg.env.name,
        "agent": cfg.agent.name,
        "reward": cfg.reward.name,
        "seed": int(cfg.seed),
        "run_dir": str(run_dir),
    }
    write_text_atomic(run_dir / "summary.json", json.dumps(summary, indent=2), overwrite=False)
    log.info("env return %.1f +- %.1f | learned %s | success %s | %.0f s",
             summary["env_return_mean"], summary["env_return_std"],
             summary["learned_return_mean"], summary["success_rate"], summary["wall_s"])
    return summary


def main(cfg: DictConfig) -> dict[str, Any] | float:
    """Hydra entry point: the run directory is Hydra's output dir; returns the summary.

    A single run (not a ``-m`` sweep) reports input errors as one line (see :func:`run`).
    Under the Optuna sweeper it returns the summary's ``cfg.objective`` field instead
    (:mod:`rewardlearn.cli.objective`), checked before training.
    """
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    optuna = hydra_cfg.mode == RunMode.MULTIRUN and is_optuna_sweep(
        hydra_cfg.sweeper.get("_target_"))
    objective = check_objective(cfg.get("objective", "env_return_mean")) if optuna else None
    summary = run(cfg, run_dir, exit_on_input_error=hydra_cfg.mode == RunMode.RUN)
    return summary if objective is None else objective_value(summary, objective)


cli = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")(main)

__all__ = ["build_reward_model", "cli", "main", "run"]
