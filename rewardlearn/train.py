"""``python train.py env=... agent=... reward=...``: train an SB3 agent on a reward module.

A run trains the agent on the configured reward, evaluates it on the env's own
reward, saves the agent and the reward model, records evaluation rollouts
(mp4 + per-step sidecar) under ``videos/<run>/``, logs to TensorBoard and writes
``summary.json`` in the run directory. If training crashes or is interrupted,
the agent and reward model are saved first (``*_interrupted``), then the error
is raised.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from rewardlearn.bc import BCConfig, warm_start
from rewardlearn.env_factory import CONF_DIR, make_vec_env, to_dict
from rewardlearn.evaluation import evaluate
from rewardlearn.rewards.base import RewardModel
from rewardlearn.rewards.checkpoint import save_reward_model
from rewardlearn.shaping import build_shaping
from rewardlearn.utils import dataclass_from_kwargs, resolve_device, set_torch_threads
from rewardlearn.wrappers.vec import RewardLoggingCallback, RewardVecEnvWrapper

log = logging.getLogger("rewardlearn")

ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": SAC}


def policy_for(space: gym.Space, policy: str) -> str:
    """``auto`` -> MultiInputPolicy for Dict, CnnPolicy for images, else MlpPolicy."""
    if policy != "auto":
        return policy
    if isinstance(space, gym.spaces.Dict):
        return "MultiInputPolicy"
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 3:
        return "CnnPolicy"
    return "MlpPolicy"


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


class NormalizedPolicy:
    """An agent trained under ``VecNormalize``, acting on raw observations."""

    def __init__(self, agent: BaseAlgorithm, normalizer: VecNormalize) -> None:
        self.agent = agent
        self.normalizer = normalizer

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[Any, Any]:
        return self.agent.predict(self.normalizer.normalize_obs(observation), state,
                                  episode_start, deterministic)


def agent_gamma(cfg: DictConfig) -> float:
    """The discount: ``agent.gamma``, else the env's recommendation for the algo, else 0.99."""
    if cfg.agent.get("gamma") is not None:
        return float(cfg.agent.gamma)
    recommended = to_dict(cfg.env.get("agent_kwargs", {})).get(str(cfg.agent.algo), {})
    return float(recommended.get("gamma", 0.99))


def normalize_obs_enabled(cfg: DictConfig) -> bool:
    """``agent.normalize_obs``, or the env's recommendation when that is null."""
    flag = cfg.agent.get("normalize_obs")
    return bool(cfg.env.get("normalize_obs", False) if flag is None else flag)


_ACTIVATIONS = {"relu": "ReLU", "tanh": "Tanh", "elu": "ELU", "leaky_relu": "LeakyReLU",
                "silu": "SiLU", "gelu": "GELU"}


def _policy_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Config-friendly policy kwargs: ``activation_fn: relu`` becomes ``torch.nn.ReLU``."""
    import torch.nn

    act = kwargs.get("activation_fn")
    if isinstance(act, str):
        if act not in _ACTIVATIONS:
            raise ValueError(f"unknown activation_fn {act!r}; choose from {sorted(_ACTIVATIONS)}")
        kwargs["activation_fn"] = getattr(torch.nn, _ACTIVATIONS[act])
    return kwargs


def build_agent(cfg: DictConfig, venv: VecEnv, run_dir: Path) -> BaseAlgorithm:
    """The SB3 agent: env's recommended settings, then ``agent.kwargs`` on top."""
    algo = str(cfg.agent.algo)
    if algo not in ALGOS:
        raise ValueError(f"unknown agent algo {algo!r}; valid choices: {', '.join(ALGOS)}")
    recommended = to_dict(cfg.env.get("agent_kwargs", {})).get(algo, {})
    user = to_dict(cfg.agent.kwargs)
    if "gamma" in user:
        raise ValueError("set the discount with agent.gamma=..., not agent.kwargs.gamma "
                         "(shaping and evaluation read agent.gamma)")
    kwargs: dict[str, Any] = {**recommended, **user, "gamma": agent_gamma(cfg)}
    if "policy_kwargs" in kwargs:
        kwargs["policy_kwargs"] = _policy_kwargs(dict(kwargs["policy_kwargs"]))
    return ALGOS[algo](
        policy_for(venv.observation_space, str(cfg.agent.policy)),
        venv,
        seed=int(cfg.seed),
        device=str(resolve_device(str(cfg.device))),
        tensorboard_log=str(run_dir / "tb"),
        verbose=0,
        **kwargs,
    )


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train, evaluate, record and summarise one run; returns the summary."""
    t0 = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
    set_torch_threads(cfg.get("torch_threads"))

    probe = make_vec_env(cfg.env, n_envs=1, seed=int(cfg.seed))
    obs_space, act_space = probe.observation_space, probe.action_space
    probe.close()
    reward_model = build_reward_model(cfg, obs_space, act_space)
    reward_model.run_dir = run_dir
    reward_model = build_shaping(cfg.shaping, reward_model, obs_space, act_space, agent_gamma(cfg))
    learned = not getattr(reward_model, "is_ground_truth", False)

    frame_size = reward_model.frame_size if reward_model.needs_frames else None
    venv: VecEnv = make_vec_env(cfg.env, n_envs=int(cfg.n_envs), seed=int(cfg.seed),
                                frame_size=frame_size, vec_env=str(cfg.vec_env),
                                sim_state=bool(getattr(reward_model, "needs_sim_states", False)))
    callbacks: list[Any] = []
    if learned:
        venv = RewardVecEnvWrapper(venv, reward_model, mode=str(cfg.reward.mode),
                                   weight=float(cfg.reward.weight))
        callbacks = [RewardLoggingCallback(), *reward_model.callbacks()]
    normalizer: VecNormalize | None = None
    if normalize_obs_enabled(cfg):
        normalizer = VecNormalize(venv, norm_obs=True, norm_reward=False,
                                  gamma=agent_gamma(cfg))
        venv = normalizer

    agent = build_agent(cfg, venv, run_dir)
    bc_summary = None
    if cfg.get("bc") is not None and cfg.bc.get("demos"):
        bc_cfg = dataclass_from_kwargs(BCConfig, to_dict(cfg.bc), "bc")
        bc_summary = warm_start(agent, bc_cfg, normalizer, seed=int(cfg.seed))
    log.info("training %s on %s with reward=%s for %d steps (%d envs) -> %s", cfg.agent.name,
             cfg.env.name, cfg.reward.name, cfg.total_timesteps, cfg.n_envs, run_dir)
    t_train = time.perf_counter()
    try:
        agent.learn(int(cfg.total_timesteps), callback=callbacks,
                    progress_bar=bool(cfg.progress_bar), tb_log_name="train")
    except BaseException:
        agent.save(run_dir / "agent_interrupted")
        if normalizer is not None:
            normalizer.save(str(run_dir / "vecnormalize_interrupted.pkl"))
        if learned:
            save_reward_model(reward_model, run_dir / "reward_model_interrupted.pt")
        log.error("training stopped; agent and reward model saved in %s (*_interrupted)", run_dir)
        raise
    finally:
        venv.close()
    train_s = time.perf_counter() - t_train
    agent.save(run_dir / "agent")
    if normalizer is not None:
        normalizer.save(str(run_dir / "vecnormalize.pkl"))
        normalizer.training = False
    if learned:
        save_reward_model(reward_model, run_dir / "reward_model.pt",
                          extra={"env": cfg.env.name, "seed": int(cfg.seed)})

    video_dir = Path(cfg.video.dir) / run_dir.name
    n_videos = int(cfg.video.n_episodes) if cfg.video.enabled else 0
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
        "bc": bc_summary,
        "env": cfg.env.name,
        "agent": cfg.agent.name,
        "reward": cfg.reward.name,
        "seed": int(cfg.seed),
        "run_dir": str(run_dir),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    log.info("env return %.1f +- %.1f | learned %s | success %s | %.0f s",
             summary["env_return_mean"], summary["env_return_std"],
             summary["learned_return_mean"], summary["success_rate"], summary["wall_s"])
    return summary


def main(cfg: DictConfig) -> dict[str, Any]:
    """Hydra entry point: the run directory is Hydra's output dir."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    return run(cfg, run_dir)


cli = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")(main)

__all__ = ["build_agent", "build_reward_model", "cli", "main", "run"]
