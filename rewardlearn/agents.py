"""SB3 agents: building one from the run config, and loading a saved one as a policy.

One policy type is used across the package: :class:`Policy`, anything with SB3's
``predict`` (an SB3 agent, :class:`NormalizedPolicy`, a scripted expert adapter).
Code that only needs actions takes an :data:`ActFn` (observation -> action), which
:func:`agent_policy` makes from a saved agent.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from omegaconf import DictConfig
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from rewardlearn.rewards.base import RewardModel
from rewardlearn.runs import agent_file
from rewardlearn.utils import resolve_device, to_dict

ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": SAC}

REWARD_TIMINGS = ("auto", "step", "rollout")
"""``reward_timing`` choices: when a learned reward is computed for the agent."""


def on_policy(algo: str) -> bool:
    """Whether agent ``algo`` learns from whole rollouts (PPO), not a replay buffer."""
    if algo not in ALGOS:
        raise ValueError(f"unknown agent algo {algo!r}; valid choices: {', '.join(ALGOS)}")
    return issubclass(ALGOS[algo], OnPolicyAlgorithm)


def defer_rewards(timing: str, algo: str, module: str, deferrable: bool,
                  episodic: bool = False) -> bool:
    """Whether a rollout's learned rewards are computed in one call at its end.

    ``rollout`` asks for it (refused for an off-policy agent or a module whose
    ``deferrable`` flag is off), ``step`` never, ``auto`` where both allow it: the agent
    learns from the same rewards, for one batched reward call per rollout. A module that
    scores whole episodes (``episodic``, :mod:`rewardlearn.wrappers.episodic`) is always
    deferred, with any agent (off-policy: its replay rows are written when the episode
    ends), and refuses ``step``.
    """
    if timing not in REWARD_TIMINGS:
        raise ValueError(f"reward_timing={timing!r}; valid choices: {', '.join(REWARD_TIMINGS)}")
    if episodic:
        if timing == "step":
            raise ValueError(f"reward_timing=step: reward module {module} scores whole "
                             "episodes, so a step's reward is known only when its episode "
                             "ends; use reward_timing=auto")
        if not deferrable:
            raise ValueError(f"reward module {module} holds a reward that scores whole "
                             "episodes but cannot defer it (shaping on top of such a reward "
                             "is not supported): use shaping=none")
        return True
    allowed = on_policy(algo) and deferrable
    if timing == "rollout" and not allowed:
        why = (f"agent={algo} is off-policy" if not on_policy(algo) else
               f"reward module {module} changes its reward within a rollout (deferrable off)")
        raise ValueError(f"reward_timing=rollout: {why}; use reward_timing=step or auto")
    return timing != "step" and allowed

ActFn = Callable[[Any], np.ndarray]
"""Observation(s) -> action(s)."""


class Policy(Protocol):
    """Anything with SB3's ``predict`` (an SB3 agent, a scripted expert adapter...)."""

    def predict(self, observation: Any, state: Any = ..., episode_start: Any = ...,
                deterministic: bool = ...) -> tuple[Any, Any]: ...


class NormalizedPolicy:
    """An agent trained under ``VecNormalize``, acting on raw observations."""

    def __init__(self, agent: BaseAlgorithm, normalizer: VecNormalize) -> None:
        self.agent = agent
        self.normalizer = normalizer

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[Any, Any]:
        return self.agent.predict(self.normalizer.normalize_obs(observation), state,
                                  episode_start, deterministic)


class ActPolicy:
    """An action function (:func:`agent_policy`'s) with SB3's ``predict``, for
    :func:`rewardlearn.rollouts.evaluate`; the function decides deterministic or not."""

    def __init__(self, act: ActFn) -> None:
        self.act = act

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[Any, Any]:
        return self.act(observation), None


def load_agent(path: str | Path) -> tuple[BaseAlgorithm, Any]:
    """A saved SB3 agent (SAC or PPO, on the CPU) and the observation normaliser saved
    beside it (``vecnormalize.pkl``, written by a run with ``agent.normalize_obs``; ``None``
    without), frozen."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"agent {str(path)!r} not found (a run's agent.zip)")
    norm_file = Path(path).with_name("vecnormalize.pkl")
    normalizer = pickle.loads(norm_file.read_bytes()) if norm_file.is_file() else None
    if normalizer is not None:
        normalizer.training = False
    errors = []
    for algo in (SAC, PPO):
        try:
            return algo.load(path, device="cpu"), normalizer
        except Exception as err:
            errors.append(f"{algo.__name__}: {err}")
    raise ValueError(f"could not load agent {path} as SAC or PPO: {'; '.join(errors)}")


def load_run_agent(run_dir: str | Path) -> tuple[BaseAlgorithm, Any]:
    """``(agent, normalizer)`` of a run folder: its ``agent.zip`` and ``vecnormalize.pkl``
    (:func:`load_agent`)."""
    return load_agent(agent_file(Path(run_dir)))


def load_run_policy(run_dir: str | Path) -> Policy:
    """A run's agent acting on raw observations (``predict`` as SB3's)."""
    agent, normalizer = load_run_agent(run_dir)
    return agent if normalizer is None else NormalizedPolicy(agent, normalizer)


def agent_policy(path: str | Path, deterministic: bool = False) -> ActFn:
    """A saved SB3 agent (SAC or PPO) acting on raw observations (stochastic by default),
    through its observation normaliser when it has one (:func:`load_agent`)."""
    agent, normalizer = load_agent(path)
    policy: Policy = agent if normalizer is None else NormalizedPolicy(agent, normalizer)

    def act(obs: Any) -> np.ndarray:
        return np.asarray(policy.predict(obs, deterministic=deterministic)[0])

    return act


def policy_for(space: gym.Space, policy: str) -> str:
    """``auto`` -> MultiInputPolicy for Dict, CnnPolicy for images, else MlpPolicy."""
    if policy != "auto":
        return policy
    if isinstance(space, gym.spaces.Dict):
        return "MultiInputPolicy"
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 3:
        return "CnnPolicy"
    return "MlpPolicy"


def agent_gamma(cfg: DictConfig) -> float:
    """The discount: ``agent.gamma``, else the env's recommendation for the algo, else 0.99."""
    if cfg.agent.get("gamma") is not None:
        return float(cfg.agent.gamma)
    recommended = to_dict(cfg.env.get("agent_kwargs", {})).get(str(cfg.agent.algo), {})
    return float(recommended.get("gamma", 0.99))


def configured_agent_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """The SB3 kwargs of the run's config: the env's recommendation for ``agent.algo``, then
    ``agent.kwargs`` on top (what :func:`build_agent` passes, before the discount and what
    the reward module needs)."""
    recommended = to_dict(cfg.env.get("agent_kwargs", {})).get(str(cfg.agent.algo), {})
    return {**recommended, **to_dict(cfg.agent.get("kwargs", {}))}


def agent_mean_bound(cfg: DictConfig) -> float | None:
    """``agent.mean_bound``, else the env's ``mean_bound`` recommendation for PPO; ``None``:
    SB3's unbounded Gaussian mean (:mod:`rewardlearn.policies`)."""
    bound = cfg.agent.get("mean_bound")
    if bound is None and str(cfg.agent.algo) == "ppo":
        bound = cfg.env.get("mean_bound")
    return None if bound is None else float(bound)


def normalize_obs_enabled(cfg: DictConfig) -> bool:
    """``agent.normalize_obs``, or the env's recommendation when that is null."""
    flag = cfg.agent.get("normalize_obs")
    return bool(cfg.env.get("normalize_obs", False) if flag is None else flag)


def normalize_reward_enabled(cfg: DictConfig) -> bool:
    """``agent.normalize_reward`` (the agent's rewards divided by a running std of the
    discounted return, rl-zoo's ``VecNormalize(norm_reward=True)``), or the env's
    recommendation when that is null."""
    flag = cfg.agent.get("normalize_reward")
    return bool(cfg.env.get("normalize_reward", False) if flag is None else flag)


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


def build_agent(cfg: DictConfig, venv: VecEnv, run_dir: Path,
                reward_model: RewardModel | None = None) -> BaseAlgorithm:
    """The SB3 agent: the env's recommended settings, then ``agent.kwargs`` on top, then what
    the reward module needs (:meth:`~rewardlearn.rewards.base.RewardModel.agent_kwargs`)."""
    algo = str(cfg.agent.algo)
    if algo not in ALGOS:
        raise ValueError(f"unknown agent algo {algo!r}; valid choices: {', '.join(ALGOS)}")
    if "gamma" in to_dict(cfg.agent.kwargs):
        raise ValueError("set the discount with agent.gamma=..., not agent.kwargs.gamma "
                         "(shaping and evaluation read agent.gamma)")
    kwargs: dict[str, Any] = {**configured_agent_kwargs(cfg), "gamma": agent_gamma(cfg)}
    if "policy_kwargs" in kwargs:
        kwargs["policy_kwargs"] = _policy_kwargs(dict(kwargs["policy_kwargs"]))
    if reward_model is not None:
        kwargs.update(reward_model.agent_kwargs(algo))
    policy: Any = policy_for(venv.observation_space, str(cfg.agent.policy))
    bound = agent_mean_bound(cfg)
    if bound is not None:
        from rewardlearn.policies import BOUNDED_POLICIES  # the policy checks the bound

        if algo != "ppo" or policy not in BOUNDED_POLICIES:
            raise ValueError(f"agent.mean_bound applies to PPO's {sorted(BOUNDED_POLICIES)}, "
                             f"not agent={algo} with policy {policy}: set agent.mean_bound=null")
        policy = BOUNDED_POLICIES[policy]
        kwargs["policy_kwargs"] = {**kwargs.get("policy_kwargs", {}), "mean_bound": bound}
    return ALGOS[algo](
        policy,
        venv,
        seed=int(cfg.seed),
        device=str(resolve_device(str(cfg.device))),
        tensorboard_log=str(run_dir / "tb"),
        verbose=0,
        **kwargs,
    )


__all__ = ["ALGOS", "REWARD_TIMINGS", "ActFn", "ActPolicy", "NormalizedPolicy", "Policy",
           "agent_gamma", "agent_mean_bound", "agent_policy", "build_agent", "defer_rewards",
           "load_agent", "load_run_agent", "load_run_policy", "normalize_obs_enabled",
           "normalize_reward_enabled", "on_policy", "policy_for"]
