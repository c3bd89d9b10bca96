"""Best-of-n action selection: sample ``n`` candidate actions, score them, execute the best.

At each step, for a state ``s`` and a stochastic policy ``pi``::

    a_1 .. a_n ~ pi(. | s)              (a_1 = the policy's mean action when deterministic)
    a* = argmax_j score(s, a_j)         (one scorer call for all candidates of all envs)

DeformPAM's reward-guided action selection (RAS; Chen et al., ICRA 2025, arXiv
2410.11584: N candidates from the supervised policy, ranked by a reward learned from
preferences over them) and V-GPS (Nakamoto et al., CoRL 2024, arXiv 2410.13816: K actions
from a frozen generalist, ranked by a learned ``Q(s, a)``). The policy is never changed,
so any policy with a stochastic action distribution works: an SB3 agent (PPO, SAC), a
``rewardlearn.agents.Policy`` (``NormalizedPolicy``, ``ActPolicy`` of a sampling
function) and the behaviour-cloned agents of :mod:`rewardlearn.bc`. With ``n=1`` it is
the policy itself (no scorer call).

Scorers (:mod:`rewardlearn.select.scorers`) that read the next state get a lookahead
through the simulator's state (:mod:`rewardlearn.select.lookahead`; simulation only):
bind the env(s) the selector acts in with :meth:`BestOfN.bind`.

Example:
    >>> import gymnasium as gym, numpy as np
    >>> from stable_baselines3 import PPO
    >>> from rewardlearn.select import BestOfN, EnvRewardScorer
    >>> env = gym.make("Pendulum-v1")
    >>> agent = PPO("MlpPolicy", env, seed=0)
    >>> chooser = BestOfN(agent, EnvRewardScorer(), n=8).bind(env)  # lookahead: simulation
    >>> obs, _ = env.reset(seed=0)
    >>> action, _ = chooser.predict(obs, deterministic=True)
    >>> action.shape, chooser.scorer_calls, chooser.last_scores.shape
    ((1,), 1, (1, 8))
    >>> obs, reward, terminated, truncated, info = env.step(action)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from rewardlearn.rewards.base import Obs
from rewardlearn.select.lookahead import Lookahead, Rollouts
from rewardlearn.select.scorers import Candidates, Scorer


def observation_space_of(policy: Any) -> gym.Space | None:
    """The observation space a policy acts on (an SB3 agent or policy, a
    ``NormalizedPolicy``), or ``None`` when it does not say."""
    for holder in (policy, getattr(policy, "agent", None)):
        space = getattr(holder, "observation_space", None)
        if isinstance(space, gym.Space):
            return space
    return None


def _is_batched(obs: Obs, space: gym.Space) -> bool:
    if isinstance(space, gym.spaces.Dict) and isinstance(obs, dict):
        key = next(iter(space.spaces))
        return np.shape(obs[key]) != space.spaces[key].shape
    return np.shape(np.asarray(obs)) != space.shape


def _rows(obs: Obs) -> int:
    if isinstance(obs, dict):
        return len(next(iter(obs.values())))
    return len(obs)


def _repeat(obs: Obs, n: int) -> Obs:
    """Each row ``n`` times, env-major (row ``e * n + j``)."""
    if isinstance(obs, dict):
        return {k: np.repeat(np.asarray(v), n, axis=0) for k, v in obs.items()}
    return np.repeat(np.asarray(obs), n, axis=0)


def _add_batch(obs: Obs) -> Obs:
    if isinstance(obs, dict):
        return {k: np.asarray(v)[None] for k, v in obs.items()}
    return np.asarray(obs)[None]


def _row(obs: Obs, i: int) -> Obs:
    if isinstance(obs, dict):
        return {k: v[i] for k, v in obs.items()}
    return obs[i]


def _envs(env: Any) -> list[gym.Env]:
    """One env, a list of envs, or an SB3 ``DummyVecEnv`` (its ``envs``)."""
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnvWrapper

    inner = env
    while isinstance(inner, VecEnvWrapper):
        inner = inner.venv
    if isinstance(inner, DummyVecEnv):
        return list(inner.envs)
    if isinstance(inner, SubprocVecEnv):
        raise ValueError("a lookahead needs the envs in this process: SubprocVecEnv keeps them "
                         "in worker processes (use DummyVecEnv, vec_env=dummy)")
    if isinstance(env, gym.Env):
        return [env]
    if isinstance(env, Sequence) and all(isinstance(e, gym.Env) for e in env):
        return list(env)
    raise TypeError(f"bind() takes a gymnasium Env, a list of them or a DummyVecEnv, "
                    f"got {type(env).__name__}")


def gaussian_actor(policy: Any) -> tuple[Any, Any] | None:
    """``(SB3 ActorCriticPolicy, observation normaliser or None)`` when ``policy`` is an SB3
    on-policy agent with a plain diagonal Gaussian over a ``Box`` (PPO's default, the
    bounded mean included), or a ``NormalizedPolicy`` of one: its candidates can then come
    from one forward pass (:func:`sample_gaussian`). ``None`` for anything else, which goes
    through ``predict``."""
    from stable_baselines3.common.distributions import DiagGaussianDistribution
    from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
    from stable_baselines3.common.policies import ActorCriticPolicy

    agent, normalizer = policy, None
    if not isinstance(policy, OnPolicyAlgorithm) and hasattr(policy, "agent") and \
            hasattr(policy, "normalizer"):  # rewardlearn.agents.NormalizedPolicy
        agent, normalizer = policy.agent, policy.normalizer
    if not isinstance(agent, OnPolicyAlgorithm):
        return None
    pol = agent.policy
    if not isinstance(pol, ActorCriticPolicy) or pol.squash_output or \
            not isinstance(pol.action_dist, DiagGaussianDistribution) or \
            not isinstance(pol.action_space, gym.spaces.Box):
        return None
    return pol, normalizer


def sample_gaussian(pol: Any, normalizer: Any, obs: Obs, n: int,
                    mean_first: bool, temperature: float = 1.0) -> np.ndarray:
    """``(E * n, A)`` env-major candidates from one forward pass of ``pol`` on ``E``
    observations: ``n`` draws of each row's Gaussian (candidate 1 its mean with
    ``mean_first``), clipped to the action bounds as SB3's ``predict`` clips. The same
    distribution as ``predict`` on ``n`` copies of each row, at the cost of one row;
    ``temperature`` scales the standard deviation (``mean + temperature * std * eps``)."""
    import torch

    if normalizer is not None:
        obs = normalizer.normalize_obs(obs)
    if pol.training:
        pol.set_training_mode(False)
    obs_t, _ = pol.obs_to_tensor(obs)
    with torch.no_grad():  # get_distribution's steps, without building distribution objects
        features = pol.extract_features(obs_t, pol.pi_features_extractor)
        mean = pol.action_net(pol.mlp_extractor.forward_actor(features))  # (E, A)
        noise = torch.randn((mean.shape[0], n, mean.shape[1]), device=mean.device)
        draws = mean[:, None] + temperature * pol.log_std.exp() * noise  # (E, n, A)
        if mean_first:
            draws[:, 0] = mean
    acts = draws.reshape(-1, draws.shape[-1]).cpu().numpy()
    return np.clip(acts, pol.action_space.low, pol.action_space.high)



def check_temperature(policy: Any, temperature: float) -> tuple[Any, Any] | None:
    """Refuse a sampling ``temperature`` that is not > 0, or not 1 for a policy without a
    Gaussian :func:`gaussian_actor`; returns that actor (``None``: none)."""
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    actor = gaussian_actor(policy)
    if temperature != 1.0 and actor is None:
        agent = getattr(policy, "agent", policy)
        sde = " (it uses gSDE, use_sde=True: state-dependent noise)" if getattr(
            getattr(agent, "policy", None), "use_sde", False) else ""
        raise ValueError(f"temperature={temperature} scales a Gaussian policy's standard "
                         f"deviation; {type(agent).__name__} is not an SB3 on-policy agent "
                         f"with a diagonal Gaussian{sde} (or a NormalizedPolicy of one): use "
                         "temperature=1")
    return actor


def sample_actions(policy: Any, obs: Obs, n: int, temperature: float = 1.0,
                   mean_first: bool = False,
                   actor: tuple[Any, Any] | bool | None = None) -> np.ndarray:
    """``(E * n, ...)`` env-major draws of ``policy`` at a batch of ``E`` observations (the
    first of each row its mean action with ``mean_first``). ``temperature`` scales the
    policy's Gaussian standard deviation; it needs a policy :func:`gaussian_actor` reads
    (an SB3 on-policy agent with a diagonal Gaussian, or a ``NormalizedPolicy`` of one):
    any other policy samples through ``predict`` at ``temperature=1`` only. ``actor``:
    ``gaussian_actor(policy)`` found before (``False``: none), so a caller that samples
    every step looks it up once.

    Example:
        >>> import gymnasium as gym, numpy as np
        >>> from stable_baselines3 import PPO
        >>> agent = PPO("MlpPolicy", gym.make("Pendulum-v1"), seed=0)
        >>> obs = np.zeros((2, 3), np.float32)
        >>> sample_actions(agent, obs, 4, temperature=0.1, mean_first=True).shape
        (8, 1)
    """
    if actor is None:
        actor = check_temperature(policy, temperature) or False
    if isinstance(actor, tuple):
        return sample_gaussian(actor[0], actor[1], obs, n, mean_first, temperature)
    if temperature != 1.0:
        check_temperature(policy, temperature)
    e = _rows(obs)
    sampled = np.asarray(policy.predict(_repeat(obs, n), deterministic=False)[0])
    if mean_first:
        mean = np.asarray(policy.predict(obs, deterministic=True)[0])
        sampled = sampled.copy()
        sampled[np.arange(e) * n] = mean
    return sampled

class BestOfN:
    """A policy wrapper executing the best of ``n`` sampled candidate actions (``predict``
    as SB3's).

    Args:
        policy: anything with SB3's ``predict`` whose ``deterministic=False`` samples (an SB3
            agent, ``NormalizedPolicy``, ``ActPolicy`` of a batched sampling function).
        scorer: a :class:`~rewardlearn.select.scorers.Scorer`; called once per decision with
            all ``n_envs * n`` candidates.
        n: candidates per state; 1 is the policy itself.
        horizon: lookahead steps for scorers that look ahead: the candidate action, then
            ``horizon - 1`` steps of the policy's mean action (one batched policy call per
            step). Scorers without a lookahead need ``horizon=1``.
        include_mean: with ``deterministic=True``, candidate 1 is the policy's mean action
            (and ties go to it), so the selector deviates from the deterministic policy only
            where the scorer prefers a sample; with ``deterministic=False`` all ``n`` are
            samples.
        observation_space: for a policy that does not expose one (``ActPolicy``): tells a
            single observation from a batch.
        temperature: scales the policy's Gaussian standard deviation for the candidates
            (``1``: the policy's own distribution; :func:`sample_actions`). Below 1 the
            candidates stay near the mean action, so a reward that ranks nearby actions
            well but extrapolates badly to far ones picks among safe ones
            (``bench/results/select.md``: best-of-16 on pick_place's cloned policy by a
            reward from 500 action-preference labels).
    """

    def __init__(self, policy: Any, scorer: Scorer, n: int, horizon: int = 1,
                 include_mean: bool = True, observation_space: gym.Space | None = None,
                 temperature: float = 1.0) -> None:
        if int(n) != n or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n}")
        if int(horizon) != horizon or horizon < 1:
            raise ValueError(f"horizon must be an integer >= 1, got {horizon}")
        check_temperature(policy, temperature)
        if horizon > 1 and not scorer.lookahead:
            raise ValueError(f"horizon={horizon} needs a scorer that looks ahead; scorer "
                             f"{scorer.name} scores (s, a) only: use horizon=1")
        self.policy = policy
        self.scorer = scorer
        self.n = int(n)
        self.horizon = int(horizon)
        self.include_mean = bool(include_mean)
        self.temperature = float(temperature)
        self.observation_space = observation_space or observation_space_of(policy)
        self.lookaheads: list[Lookahead] = []
        self.decisions = 0
        """Decisions made with ``n > 1`` (one per env per call)."""
        self.scorer_calls = 0
        self.decision_s = 0.0
        """Wall time inside :meth:`predict` for ``n > 1`` calls (sampling, lookahead, scoring)."""
        self.lookahead_steps = 0
        self.last_scores: np.ndarray | None = None
        """``(n_envs, n)`` scores of the last decision."""
        self.last_choice: np.ndarray | None = None
        """``(n_envs,)`` index of the executed candidate at the last decision."""
        self.last_candidates: Candidates | None = None
        self._actor: tuple[Any, Any] | bool | None = None  # gaussian_actor's, found once

    # -- envs -------------------------------------------------------------------------------

    def bind(self, env: Any) -> BestOfN:
        """The env(s) the selector acts in, for scorers that look ahead (simulation only):
        a gymnasium env, a list of them (one per row of a batched observation) or a
        ``DummyVecEnv``. Returns ``self``."""
        self.lookaheads = [Lookahead(e) for e in _envs(env)]
        if self.observation_space is None:
            self.observation_space = self.lookaheads[0].env.observation_space
        return self

    # -- acting -----------------------------------------------------------------------------

    def _space(self) -> gym.Space:
        if self.observation_space is None:
            raise ValueError("BestOfN cannot tell one observation from a batch: pass "
                             "observation_space= (the policy does not expose one) or bind an env")
        return self.observation_space

    def _sample(self, obs: Obs, deterministic: bool) -> np.ndarray:
        """``(E * n, ...)`` candidate actions, env-major: one sampling call for all (one
        forward pass for a PPO agent's Gaussian, :func:`sample_gaussian`)."""
        if self._actor is None:
            self._actor = gaussian_actor(self.policy) or False
        return sample_actions(self.policy, obs, self.n, self.temperature,
                              deterministic and self.include_mean, self._actor)

    def _rollouts(self, obs: Obs, acts: np.ndarray) -> Rollouts:
        e = _rows(obs)
        if len(self.lookaheads) != e:
            raise ValueError(f"scorer {self.scorer.name} looks ahead through the simulator: "
                             f"bind the {e} env(s) the selector acts in (BestOfN.bind); "
                             f"{len(self.lookaheads)} bound")

        def mean_action(o: Obs) -> np.ndarray:
            return np.asarray(self.policy.predict(o, deterministic=True)[0])

        parts = []
        for i, look in enumerate(self.lookaheads):
            before = look.steps_taken
            parts.append(look.rollouts(acts[i * self.n:(i + 1) * self.n], self.horizon,
                                       mean_action if self.horizon > 1 else None,
                                       obs=_row(obs, i)))
            self.lookahead_steps += look.steps_taken - before
        return Rollouts.concat(parts)

    def select(self, obs: Obs, deterministic: bool = False) -> np.ndarray:
        """``(E, ...)`` chosen actions for a batch of ``E`` observations."""
        t0 = time.perf_counter()
        e = _rows(obs)
        acts = self._sample(obs, deterministic)
        cand = Candidates(obs=_repeat(obs, self.n), acts=acts, n=self.n, n_envs=e)
        if self.scorer.lookahead:
            cand.rollouts = self._rollouts(obs, acts)
        scores = np.asarray(self.scorer(cand), np.float64).reshape(-1)
        self.scorer_calls += 1
        if len(scores) != e * self.n:
            raise ValueError(f"scorer {self.scorer.name} returned {len(scores)} scores for "
                             f"{e * self.n} candidates")
        if not np.isfinite(scores).all():
            raise ValueError(f"scorer {self.scorer.name} returned non-finite scores at rows "
                             f"{np.flatnonzero(~np.isfinite(scores))[:10].tolist()}")
        table = scores.reshape(e, self.n)
        choice = table.argmax(axis=1)  # the first maximum: the mean action on ties
        self.last_scores, self.last_choice, self.last_candidates = table, choice, cand
        self.decisions += e
        self.decision_s += time.perf_counter() - t0
        return acts[np.arange(e) * self.n + choice]

    def predict(self, observation: Obs, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[np.ndarray, Any]:
        """SB3's ``predict``: the chosen action(s) for one observation or a batch."""
        if self.n == 1:
            out = self.policy.predict(observation, state, episode_start, deterministic)
            return np.asarray(out[0]), out[1]
        if state is not None:
            raise ValueError("BestOfN does not support recurrent policies (state is not None)")
        batched = _is_batched(observation, self._space())
        obs = observation if batched else _add_batch(observation)
        chosen = self.select(obs, deterministic)
        return (chosen if batched else chosen[0]), None

    def summary(self) -> dict[str, Any]:
        """Settings and timing for ``summary.json``."""
        return {"n": self.n, "scorer": self.scorer.name, "horizon": self.horizon,
                "include_mean": self.include_mean, "temperature": self.temperature,
                "decisions": self.decisions,
                "scorer_calls": self.scorer_calls, "lookahead_steps": self.lookahead_steps,
                "decision_ms_mean": None if not self.scorer_calls
                else round(1000 * self.decision_s / self.scorer_calls, 3),
                **self.scorer.summary()}


__all__ = ["BestOfN", "check_temperature", "observation_space_of", "sample_actions"]
