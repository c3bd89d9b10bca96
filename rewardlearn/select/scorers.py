"""Scorers: what ranks the candidate actions of :class:`~rewardlearn.select.modeling.BestOfN`.

A scorer is called **once per decision** with every candidate of every env,
``scorer(candidates) -> (N,)`` scores for ``N = n_envs * n`` rows, env-major (row
``e * n + j`` is candidate ``j`` of env ``e``); the selector executes each env's argmax.

========================  ===================================================  ==========
``scorer=``               score of candidate ``a`` at state ``s``              simulator
========================  ===================================================  ==========
``reward``                ``r(s, a)`` of a reward module (DeformPAM's RAS      no
                          with an explicit reward)
``reward_lookahead``      ``sum_k gamma^k r(s_k, a_k, s_k+1)`` of a reward     yes
                          module over the lookahead (modules that score s')
``env_reward``            ``sum_k gamma^k r_env`` over the lookahead: the      yes
                          env's own reward (a ceiling, not a method)
``q``                     ``min(Q1, Q2)(s, a)`` of an SB3 SAC/TD3 critic       no
                          (V-GPS, Nakamoto et al., CoRL 2024)
``value``                 ``sum_k<H gamma^k r_k + gamma^H (1 - term) V(s_H)``  yes
                          with a PPO critic ``V`` over the state reached
========================  ===================================================  ==========

"simulator: yes" means the scorer reads ``s'`` from a lookahead through the simulator's
state (:mod:`rewardlearn.select.lookahead`): **simulation only**, a real robot cannot try
an action and take it back. Lookahead rows after an episode end (``terminated``, or
``truncated`` by a time limit, kept apart) are masked out; ``value`` bootstraps after a
truncation and not after a termination. DeformPAM (Chen et al., ICRA 2025) ranks with its
implicit DPO reward; here any reward module or critic ranks.

Example:
    >>> import numpy as np
    >>> cand = Candidates(obs=np.zeros((4, 2)), acts=np.array([[0.], [2.], [1.], [3.]]),
    ...                   n=2, n_envs=2)
    >>> FunctionScorer(lambda c: 1.0 - np.abs(c.acts[:, 0] - 1.0))(cand).tolist()
    [0.0, 0.0, 1.0, -1.0]
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rewardlearn.rewards.base import NonFiniteRewardError, Obs, RewardModel, TransitionBatch
from rewardlearn.select.lookahead import Rollouts

SCORERS = ("reward", "reward_lookahead", "env_reward", "q", "value")
"""Scorer names of ``eval.select.scorer`` and ``rewardlearn-replay select.scorer=``."""
LOOKAHEAD_SCORERS = ("reward_lookahead", "env_reward", "value")
"""The scorers that step the simulator (simulation only)."""


@dataclass
class Candidates:
    """``n`` candidate actions for each of ``n_envs`` states, ``N = n_envs * n`` rows,
    env-major. ``obs`` (``(N, ...)``) is the state each candidate acts in; ``rollouts``
    (``(H, N, ...)``) the lookahead from it, present when the scorer looks ahead."""

    obs: Obs
    acts: np.ndarray
    n: int
    n_envs: int
    rollouts: Rollouts | None = None

    def __len__(self) -> int:
        return len(self.acts)

    def lookahead(self) -> Rollouts:
        if self.rollouts is None:
            raise ValueError("this scorer reads a lookahead; BestOfN gives one to scorers whose "
                             "lookahead flag is set (simulation only)")
        return self.rollouts

    def transitions(self) -> TransitionBatch:
        """The lookahead's ``H * N`` steps as one batch, step-major (row ``k * N + i``), with
        the env's rewards and infos (rows after an episode end repeat its last step)."""
        ro = self.lookahead()
        h, n = ro.rewards.shape

        def flat(x: Any) -> Any:
            if isinstance(x, dict):
                return {k: v.reshape(h * n, *v.shape[2:]) for k, v in x.items()}
            return np.asarray(x).reshape(h * n, *np.shape(x)[2:])

        return TransitionBatch(
            obs=flat(ro.obs), acts=flat(ro.acts), next_obs=flat(ro.next_obs),
            terminated=ro.terminated.reshape(-1), truncated=ro.truncated.reshape(-1),
            env_rewards=ro.rewards.reshape(-1).astype(np.float32),
            infos=[info for step in ro.infos for info in step])


class Scorer(abc.ABC):
    """Ranks candidate actions; one call per decision for every candidate of every env.

    Attributes:
        name: shown in logs and summaries.
        lookahead: the scorer reads ``candidates.rollouts`` (the selector then steps the
            simulator from each env's state: simulation only).
    """

    name: str = "scorer"
    lookahead: bool = False

    @abc.abstractmethod
    def __call__(self, candidates: Candidates) -> np.ndarray:
        """``(N,)`` scores, higher is better."""

    def summary(self) -> dict[str, Any]:
        """The scorer's own figures for ``summary.json`` (none by default)."""
        return {}


class FunctionScorer(Scorer):
    """A function ``Candidates -> (N,) scores`` as a scorer (``lookahead`` as declared)."""

    def __init__(self, fn: Callable[[Candidates], np.ndarray], lookahead: bool = False,
                 name: str = "function") -> None:
        self.fn = fn
        self.lookahead = lookahead
        self.name = name

    def __call__(self, candidates: Candidates) -> np.ndarray:
        return np.asarray(self.fn(candidates), np.float64).reshape(len(candidates))


def _unknown_next(obs: Obs) -> Obs:
    """``s'`` for a scorer without lookahead: NaN where the observation is float, so a module
    that reads ``s'`` fails loudly instead of scoring every candidate alike."""
    if isinstance(obs, dict):
        return {k: _unknown_next(v) for k, v in obs.items()}  # type: ignore[misc]
    arr = np.asarray(obs)
    return np.full(arr.shape, np.nan, arr.dtype) if np.issubdtype(arr.dtype, np.floating) \
        else arr.copy()


def _check_module(model: RewardModel, lookahead: bool) -> None:
    if model.needs_frames:
        raise ValueError(f"reward module {model.name} reads frames; selection scores state-based "
                         "modules only")
    if model.info_keys and not lookahead:
        raise ValueError(f"reward module {model.name} reads env signals of s' (info keys "
                         f"{list(model.info_keys)}): score with scorer=reward_lookahead "
                         "(simulation only)")


class RewardScorer(Scorer):
    """``r(s, a)`` of a reward module, for every candidate in one batched call.

    ``s'`` is unknown without a lookahead and is passed as NaN; a module that reads it
    (``r(s, a, s')``, a potential over ``s'``) is refused with the scorer to use instead.
    """

    name = "reward"

    def __init__(self, model: RewardModel) -> None:
        _check_module(model, lookahead=False)
        self.model = model

    def __call__(self, candidates: Candidates) -> np.ndarray:
        batch = TransitionBatch.from_arrays(candidates.obs, candidates.acts,
                                            _unknown_next(candidates.obs))
        try:
            return np.asarray(self.model(batch), np.float64)
        except NonFiniteRewardError:
            raise ValueError(f"reward module {self.model.name} reads s' (the next observation), "
                             "which scorer=reward does not know: use scorer=reward_lookahead "
                             "(simulation only)") from None


class SupportGate(Scorer):
    """Another scorer, trusted only near the states its reward module was fitted on.

    At a state farther (in the module's standardised state features) from every fitted
    state than ``radius = support_radius(quantile)`` (the ``quantile`` of the fitted states'
    own nearest-neighbour distances), every candidate scores 0, so the selector keeps
    candidate 1: the policy's mean action in a deterministic evaluation, its own sample
    otherwise. Why: a reward learned from a few hundred labels extrapolates outside them,
    and best-of-n then follows the extrapolation, state after state, away from where it was
    labelled. Measured on ``pick_place`` (5 seeds, ``bench/bench_select.py``): an
    ``r(s, a)`` that learned "carry higher" from the cloned policy's low carries drove
    every carry upwards, and success fell from the cloned policy's 33.2% to 14.0%; behind
    this gate (quantile 0.5) it is 33.2% again. The idea of a behaviour-support constraint
    in offline RL (BCQ, Fujimoto et al., ICML 2019), on states, not actions.
    """

    def __init__(self, inner: Scorer, model: RewardModel, quantile: float) -> None:
        if not model.has_support:
            raise ValueError(f"eval.select.support needs a reward module that keeps the "
                             f"states it was fitted on (reward=action_preference); "
                             f"{model.name} keeps none: set eval.select.support=null")
        self.inner, self.model = inner, model
        self.quantile = float(quantile)
        self.radius = model.support_radius(self.quantile)
        self.name = f"{inner.name}+support"
        self.lookahead = inner.lookahead
        self.states = 0
        self.gated = 0

    def __call__(self, candidates: Candidates) -> np.ndarray:
        scores = np.asarray(self.inner(candidates), np.float64).reshape(candidates.n_envs,
                                                                        candidates.n)
        first = np.arange(candidates.n_envs) * candidates.n
        obs = candidates.obs
        states = {k: np.asarray(v)[first] for k, v in obs.items()} if isinstance(obs, dict) \
            else np.asarray(obs)[first]
        outside = self.model.support_distance(states) > self.radius
        scores[outside] = 0.0
        self.states += candidates.n_envs
        self.gated += int(outside.sum())
        return scores.reshape(-1)

    def summary(self) -> dict[str, Any]:
        return {"support_quantile": self.quantile, "support_radius": round(self.radius, 4),
                "outside_support_share": round(self.gated / max(self.states, 1), 4)}


class LookaheadRewardScorer(Scorer):
    """``sum_k gamma^k r(s_k, a_k, s_k+1)`` of a reward module over the lookahead (one
    batched call for all ``H * N`` steps): modules that score ``s'`` (DrS's stage
    classifier, shaped and progress rewards). Simulation only."""

    name = "reward_lookahead"
    lookahead = True

    def __init__(self, model: RewardModel, gamma: float = 0.99) -> None:
        _check_module(model, lookahead=True)
        self.model = model
        self.gamma = float(gamma)

    def __call__(self, candidates: Candidates) -> np.ndarray:
        ro = candidates.lookahead()
        r = np.asarray(self.model(candidates.transitions()), np.float64).reshape(
            ro.rewards.shape)
        return ro.returns(self.gamma, r)


class EnvRewardScorer(Scorer):
    """``sum_k gamma^k r_env`` over the lookahead: the env's own reward, the ceiling of
    reward-guided selection (it reads the simulator's answer; simulation only)."""

    name = "env_reward"
    lookahead = True

    def __init__(self, gamma: float = 0.99) -> None:
        self.gamma = float(gamma)

    def __call__(self, candidates: Candidates) -> np.ndarray:
        return candidates.lookahead().returns(self.gamma)


def _agent_obs(agent: Any, obs: Obs, normalizer: Any) -> torch.Tensor:
    if normalizer is not None:
        obs = normalizer.normalize_obs(obs)
    tensor, _ = agent.policy.obs_to_tensor(obs)
    return tensor


class QScorer(Scorer):
    """``min(Q1, Q2)(s, a)`` of an SB3 SAC or TD3 agent's critics (V-GPS's ``argmax_a Q``).

    ``normalizer``: the ``VecNormalize`` the agent trained under (observations are
    normalised first). Actions are rescaled to the ``[-1, 1]`` the critic was trained on.
    """

    name = "q"

    def __init__(self, agent: Any, normalizer: Any = None) -> None:
        if getattr(agent, "critic", None) is None or not hasattr(agent.policy, "scale_action"):
            raise ValueError(f"scorer=q needs an agent with Q critics (SAC, TD3); "
                             f"{type(agent).__name__} has none (use scorer=value for PPO)")
        self.agent = agent
        self.normalizer = normalizer

    @torch.no_grad()
    def __call__(self, candidates: Candidates) -> np.ndarray:
        obs = _agent_obs(self.agent, candidates.obs, self.normalizer)
        acts = self.agent.policy.scale_action(np.asarray(candidates.acts, np.float32))
        act_t = torch.as_tensor(acts, dtype=torch.float32, device=obs.device)
        qs = torch.cat(self.agent.critic(obs, act_t), dim=1)
        return qs.min(dim=1).values.cpu().numpy().astype(np.float64)


class ValueScorer(Scorer):
    """``sum_k<H gamma^k r_k + gamma^H (1 - terminated_H) V(s_H)``: an SB3 actor-critic's
    value ``V`` over the state the lookahead reaches (simulation only), with ``r`` the reward
    the agent trained on (``reward``: a function of a :class:`TransitionBatch`; ``None``:
    the env's). ``V`` bootstraps after a truncation (a time limit), not after a termination.
    With ``VecNormalize(norm_reward=True)`` the value is scaled back to reward units by
    ``sqrt(ret_var + eps)``."""

    name = "value"
    lookahead = True

    def __init__(self, agent: Any, gamma: float = 0.99,
                 reward: Callable[[TransitionBatch], np.ndarray] | None = None,
                 normalizer: Any = None) -> None:
        if not hasattr(agent.policy, "predict_values"):
            raise ValueError(f"scorer=value needs an actor-critic agent with a state value "
                             f"(PPO, A2C); {type(agent).__name__} has none (use scorer=q)")
        self.agent = agent
        self.gamma = float(gamma)
        self.reward = reward
        self.normalizer = normalizer
        self.scale = 1.0
        if normalizer is not None and getattr(normalizer, "norm_reward", False):
            self.scale = float(np.sqrt(normalizer.ret_rms.var + normalizer.epsilon))

    @torch.no_grad()
    def __call__(self, candidates: Candidates) -> np.ndarray:
        ro = candidates.lookahead()
        h, n = ro.rewards.shape
        r = None if self.reward is None else np.asarray(
            self.reward(candidates.transitions()), np.float64).reshape(h, n)
        taken = ro.alive.sum(0)
        last = np.maximum(taken - 1, 0)
        cols = np.arange(n)
        end = ({k: v[last, cols] for k, v in ro.next_obs.items()}
               if isinstance(ro.next_obs, dict) else ro.next_obs[last, cols])
        values = self.agent.policy.predict_values(_agent_obs(self.agent, end, self.normalizer))
        v = values.reshape(-1).cpu().numpy().astype(np.float64) * self.scale
        ended = ro.terminated[last, cols]
        return ro.returns(self.gamma, r) + self.gamma ** taken * np.where(ended, 0.0, v)


__all__ = ["LOOKAHEAD_SCORERS", "SCORERS", "Candidates", "EnvRewardScorer", "FunctionScorer",
           "LookaheadRewardScorer", "QScorer", "RewardScorer", "Scorer", "SupportGate",
           "ValueScorer"]
