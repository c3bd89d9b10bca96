"""Behaviour-cloning warm start for SB3 agents, optionally reward-aligned (RA-BC).

``python train.py ... bc.demos=<dataset>`` fits the agent's policy to the demos'
actions before RL starts, the usual demos -> BC -> RL fine-tuning recipe (Robo-Dopamine
starts its shaped RL from such a policy). ``bc.weights=<rabc.npz>`` weights each sample
by its RA-BC weight (``rewardlearn-train-progress rabc``), so demo segments
that make no progress count less.

The loss is the squared error between the policy's mean action and the demo action
(SAC: after its tanh squashing, in SB3's [-1, 1] action scale), weighted per sample.
PPO's state-independent log-std is then set to ``log_std`` so that RL explores around
the cloned behaviour instead of drowning it in unit-variance noise. With
``VecNormalize`` the observation statistics are set from the demos and, with
``obs_norm=demos`` (default), kept fixed: running statistics would drift as soon as RL
visits states the demos did not (measured on pick_place: a policy cloned from 50 expert
demos fell from 50% to 6% success in 20k steps with the policy frozen, from the drift
alone). Each dimension's std is floored at ``min_obs_std``, since a quantity the demos
never vary (a cube that never tumbles) would otherwise be scaled by ~1e4 the first time
RL moves it.

Example:
    >>> import numpy as np, gymnasium as gym
    >>> from stable_baselines3 import PPO
    >>> env = gym.make("Pendulum-v1")
    >>> agent = PPO("MlpPolicy", env, seed=0)
    >>> obs = np.random.default_rng(0).normal(size=(256, 3)).astype(np.float32)
    >>> act = np.clip(obs[:, :1], -2, 2)
    >>> stats = pretrain_policy(agent, obs, act, epochs=5)
    >>> stats["loss_last"] < stats["loss_first"]
    True
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecNormalize

from rewardlearn.settings import Settings

log = logging.getLogger("rewardlearn")


@dataclass
class BCConfig(Settings):
    """``bc:`` block of the train config (``conf/config.yaml``)."""

    what = "bc"
    demos: str | None = None
    weights: str | None = None
    epochs: int = 50
    batch_size: int = 256
    lr: float = 1e-3
    log_std: float | None = -1.0
    only_success: bool = False
    min_obs_std: float = 0.01
    obs_norm: str = "demos"
    max_episodes: int | None = None

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.min_obs_std >= 0, f"min_obs_std must be >= 0, got {self.min_obs_std}"),
            (self.obs_norm in ("demos", "running"),
             f"obs_norm must be 'demos' or 'running', got {self.obs_norm!r}"),
            (self.max_episodes is None or self.max_episodes >= 1,
             "max_episodes must be >= 1 or null"),
            (self.weights is None or bool(self.demos),
             "weights needs demos (the demos it weights)"),
        ]


def demo_arrays(demos: str, observation_space: gym.Space, action_space: gym.Space,
                weights: str | None = None, only_success: bool = False,
                max_episodes: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(observations, actions, sample weights) of demo datasets, checked against the env.

    ``demos`` names one dataset or several, comma-separated (as for ``train_progress``).
    Rows pair each action with the observation it was taken from. ``weights`` is an
    RA-BC ``.npz`` (one array ``ep_<id>`` per demo, as ``train_progress rabc`` writes).
    ``max_episodes`` keeps the first episodes only (few-demo studies).
    """
    from rewardlearn.demos import load_demo_sets

    if not isinstance(observation_space, gym.spaces.Box):
        raise ValueError(
            f"bc.demos needs a Box observation space; this env has {observation_space}. "
            "Use an env config with obs_mode: state")
    if not isinstance(action_space, gym.spaces.Box):
        raise ValueError(f"bc.demos needs a continuous (Box) action space, got {action_space}")
    episodes = load_demo_sets(demos)
    if only_success:
        episodes = [ep for ep in episodes if ep.success]
    if max_episodes is not None:
        episodes = episodes[:max_episodes]
    if not episodes:
        raise ValueError(f"bc.demos={demos} holds no episodes"
                         + (" that succeed (bc.only_success=true)" if only_success else ""))
    obs_shape, act_shape = observation_space.shape, action_space.shape
    for ep in episodes:
        if ep.observations.shape[1:] != obs_shape or ep.actions.shape[1:] != act_shape:
            raise ValueError(
                f"bc.demos={demos} does not match the env: demo observations "
                f"{ep.observations.shape[1:]} / actions {ep.actions.shape[1:]}, env "
                f"{obs_shape} / {act_shape}. Collect demos on this env with "
                "rewardlearn-collect env=<env>")
    rabc: Any = None
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(
                f"bc.weights={weights} not found; write it with python -m "
                "rewardlearn.cli.train_progress rabc model=<progress_model.pt> demos=<demos>")
        rabc = np.load(path)
    obs, act, w = [], [], []
    for ep in episodes:
        n = len(ep)
        obs.append(ep.observations[:n])
        act.append(ep.actions)
        if rabc is None:
            w.append(np.ones(n))
            continue
        key = f"ep_{ep.id}"
        if key not in rabc or len(rabc[key]) != n:
            raise ValueError(f"bc.weights={weights} has no {n}-step array {key!r} for demo "
                             f"{ep.id}; compute it on the same demos ({demos})")
        w.append(np.asarray(rabc[key], dtype=np.float64))
    weights_all = np.concatenate(w)
    if weights_all.sum() <= 0:
        raise ValueError(f"bc.weights={weights} gives every sample weight 0")
    return (np.concatenate(obs).astype(np.float32), np.concatenate(act).astype(np.float32),
            weights_all.astype(np.float32))


def _mean_action(agent: BaseAlgorithm, obs: torch.Tensor) -> torch.Tensor:
    """The policy's mean action in the scale the demo actions are compared in."""
    if isinstance(agent, PPO):
        dist = agent.policy.get_distribution(obs)
        return dist.distribution.mean  # type: ignore[union-attr]
    if isinstance(agent, SAC):
        mean, _, _ = agent.actor.get_action_dist_params(obs)
        return torch.tanh(mean)
    raise ValueError(f"bc supports PPO and SAC agents, got {type(agent).__name__}")


def pretrain_policy(agent: BaseAlgorithm, observations: np.ndarray, actions: np.ndarray,
                    weights: np.ndarray | None = None, epochs: int = 50,
                    batch_size: int = 256, lr: float = 1e-3, log_std: float | None = -1.0,
                    seed: int = 0) -> dict[str, float]:
    """Fit the agent's policy mean to ``actions`` (weighted MSE); returns loss figures.

    ``observations`` must already be what the policy sees (normalised if the agent trains
    under ``VecNormalize``). Only the actor's parameters are updated.
    """
    if not isinstance(agent, (PPO, SAC)):
        raise ValueError(f"bc supports PPO and SAC agents, got {type(agent).__name__}")
    policy = agent.policy
    device = policy.device
    target = np.asarray(actions, dtype=np.float32)
    if isinstance(agent, SAC):
        target = np.clip(policy.scale_action(target), -1.0, 1.0)
    w_np = np.ones(len(target), np.float32) if weights is None else np.asarray(weights, np.float32)
    obs_t = torch.as_tensor(observations, dtype=torch.float32, device=device)
    act_t = torch.as_tensor(target, dtype=torch.float32, device=device)
    w_t = torch.as_tensor(w_np, device=device)
    if isinstance(agent, PPO):
        critic = ("value_net", "mlp_extractor.value_net", "vf_features_extractor")
        params = [p for n, p in policy.named_parameters()
                  if not n.startswith(critic) and n != "log_std"]
    else:
        params = list(agent.actor.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    n = len(obs_t)
    losses: list[float] = []
    policy.set_training_mode(True)
    for _ in range(max(1, epochs)):
        perm = torch.randperm(n, generator=gen).to(device)
        total, wsum = 0.0, 0.0
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            err = ((_mean_action(agent, obs_t[idx]) - act_t[idx]) ** 2).sum(dim=1)
            loss = (w_t[idx] * err).sum() / w_t[idx].sum().clamp_min(1e-8)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float((w_t[idx] * err.detach()).sum())
            wsum += float(w_t[idx].sum())
        losses.append(total / max(wsum, 1e-8))
    policy.set_training_mode(False)
    log_std_param = getattr(policy, "log_std", None)
    if log_std is not None and isinstance(agent, PPO) and isinstance(log_std_param, torch.Tensor):
        with torch.no_grad():
            log_std_param.fill_(float(log_std))
    return {"loss_first": losses[0], "loss_last": losses[-1], "samples": float(n),
            "epochs": float(len(losses))}


def warm_start(agent: BaseAlgorithm, cfg: BCConfig, normalizer: VecNormalize | None = None,
               seed: int = 0) -> dict[str, Any]:
    """Behaviour-clone ``cfg.demos`` into ``agent`` (see module docstring); returns a summary."""
    assert cfg.demos is not None
    if cfg.obs_norm not in ("demos", "running"):
        raise ValueError(f"bc.obs_norm must be 'demos' or 'running', got {cfg.obs_norm!r}")
    obs, act, w = demo_arrays(cfg.demos, agent.observation_space, agent.action_space,
                              cfg.weights, cfg.only_success, cfg.max_episodes)
    if normalizer is not None:
        rms = normalizer.obs_rms
        if not isinstance(rms, RunningMeanStd):
            raise ValueError("bc.demos needs a Box observation space (no Dict observations)")
        normalizer.training = cfg.obs_norm == "running"
        rms.mean = obs.mean(axis=0).astype(np.float64)
        rms.var = np.maximum(obs.var(axis=0), cfg.min_obs_std ** 2).astype(np.float64)
        rms.count = float(len(obs))
        obs = np.asarray(normalizer.normalize_obs(obs), dtype=np.float32)
    stats = pretrain_policy(agent, obs, act, w, epochs=cfg.epochs, batch_size=cfg.batch_size,
                            lr=cfg.lr, log_std=cfg.log_std, seed=seed)
    log.info("bc warm start on %s: %d samples, loss %.4f -> %.4f", cfg.demos,
             int(stats["samples"]), stats["loss_first"], stats["loss_last"])
    return {"demos": cfg.demos, "weights": cfg.weights, **stats}


__all__ = ["BCConfig", "demo_arrays", "pretrain_policy", "warm_start"]
