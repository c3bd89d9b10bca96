"""The SB3 vector-env wrapper that serves every reward module.

One batched reward call per ``step`` covers all envs. On an auto-reset the
module sees the *true* last observation (``info["terminal_observation"]``) and
the real terminal frame; ``terminated`` and ``truncated`` are recovered from
SB3's ``done`` and ``info["TimeLimit.truncated"]`` and never mixed. The env's
own reward stays in ``info["env_reward"]``.

With ``defer=True`` (``reward_timing=rollout``, on-policy agents) ``step`` returns the
env's part alone (0 in ``replace`` mode) and keeps each step's transitions; at the end
of the rollout :meth:`RewardVecEnvWrapper.flush` computes them all in one batched call
and :class:`DeferredRewardCallback` writes them into the agent's rollout buffer. For a
module whose reward depends only on the transition and on parameters that change
between rollouts (:attr:`RewardModel.deferrable`) the agent learns from the same
rewards, at one call per rollout instead of one per step.

Example:
    >>> import numpy as np
    >>> from stable_baselines3.common.env_util import make_vec_env
    >>> from rewardlearn.rewards.base import RewardModel, RewardOutput
    >>> from rewardlearn.wrappers import RewardVecEnvWrapper
    >>> class Quiet(RewardModel):
    ...     def compute(self, b):
    ...         return RewardOutput(-np.square(b.acts).sum(-1))
    >>> venv = make_vec_env("Pendulum-v1", n_envs=2, seed=0)
    >>> venv = RewardVecEnvWrapper(venv, Quiet(venv.observation_space, venv.action_space))
    >>> _ = venv.reset()
    >>> _, rew, _, infos = venv.step(np.zeros((2, 1), np.float32))
    >>> rew.tolist(), "env_reward" in infos[0]
    ([-0.0, -0.0], True)
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from rewardlearn.rewards.base import RewardModel, TransitionBatch, check_finite
from rewardlearn.wrappers.episodic import is_episodic
from rewardlearn.wrappers.frames import FRAME_KEY
from rewardlearn.wrappers.normalize import AgentNormalize, normalized_delta, reward_normalizer
from rewardlearn.wrappers.replay import DeferredReplayBuffer

LEARNED_EPISODE_KEY = "learned_episode"


def combine_rewards(
    learned: np.ndarray, env_reward: np.ndarray, mode: str, weight: float
) -> np.ndarray:
    """``replace``: the learned reward; ``add``: env reward + weight * learned reward."""
    if mode == "replace":
        return learned
    if mode == "add":
        return env_reward + weight * learned
    raise ValueError(f"unknown reward mode {mode!r}; choose 'replace' or 'add'")


def copy_obs(obs: Any) -> Any:
    """A copy of an observation (array or dict of arrays), safe from in-place env updates."""
    if isinstance(obs, dict):
        return {k: np.array(v, copy=True) for k, v in obs.items()}
    return np.array(obs, copy=True)


def _set_row(obs: Any, i: int, value: Any) -> None:
    if isinstance(obs, dict):
        for k in obs:
            obs[k][i] = value[k]
    else:
        obs[i] = value


class RewardVecEnvWrapper(VecEnvWrapper):
    """Replace (or add to) the env reward with a reward module's, batched over envs.

    Args:
        venv: the SB3 vector env (Monitor-wrapped envs inside, so SB3's
            ``ep_rew_mean`` stays the env's own return).
        reward_model: any :class:`RewardModel`.
        mode: ``"replace"`` or ``"add"`` (``env + weight * learned``).
        weight: weight of the learned reward in ``"add"`` mode.
        training: pass every batch to ``reward_model.observe`` (modules that
            learn from experience); set ``False`` for evaluation envs.
        defer: keep the transitions and compute their rewards in one call at
            :meth:`flush` (needs a module with ``deferrable``; see the module docstring).

    ``info`` of each env gains ``env_reward``, ``learned_reward`` and
    ``reward_signals``; at an episode end ``info["learned_episode"]`` holds the
    learned return ``r``, the env return ``r_env`` and the length ``l``.
    """

    def __init__(
        self,
        venv: VecEnv,
        reward_model: RewardModel,
        mode: str = "replace",
        weight: float = 1.0,
        training: bool = True,
        defer: bool = False,
    ) -> None:
        super().__init__(venv)
        if defer and not reward_model.deferrable:
            raise ValueError(f"reward module {reward_model.name} cannot defer its reward to "
                             "the rollout's end (its deferrable flag is off); use defer=False")
        self.training = training
        self.defer = bool(defer)
        combine_rewards(np.zeros(1), np.zeros(1), mode, weight)
        self.reward_model = reward_model
        self.mode = mode
        self.weight = float(weight)
        self._last_obs: Any = None
        self._last_frames: np.ndarray | None = None
        self._actions: np.ndarray | None = None
        self._ep_learned = np.zeros(self.num_envs)
        self._ep_env = np.zeros(self.num_envs)
        self._ep_len = np.zeros(self.num_envs, dtype=np.int64)
        self.episode_returns: deque[dict[str, float]] = deque(maxlen=100)
        self._pending: list[TransitionBatch] = []
        self._run_start = np.zeros(self.num_envs, dtype=np.int64)
        """Per env, the index in the pending steps where its running episode starts."""
        self.reward_s = 0.0
        """Seconds spent in the reward module's calls from here: scoring and observing. A run's
        ``summary.json`` reports it as ``reward_calls_s``, and adds what the module trains
        between rollouts (DrS's classifier updates, run by its callback) for ``reward_s``
        and ``reward_share``. Feedback rounds that a callback runs (preference) are not in
        it."""

    @property
    def pending(self) -> int:
        """Steps whose reward waits for :meth:`flush` (``defer=True``)."""
        return len(self._pending)

    @property
    def complete_steps(self) -> int:
        """Leading pending steps whose every row belongs to an episode that has ended (what
        an off-policy agent flushes: a trajectory-level reward knows those rows)."""
        return int(min(self._run_start.min(initial=len(self._pending)), len(self._pending)))

    def reset(self) -> Any:
        self._pending.clear()  # a rollout cut short by a reset is not trained on
        self._run_start[:] = 0
        if is_episodic(self.reward_model):
            self.reward_model.clear_episodes()
        obs = self.venv.reset()
        self._last_obs = copy_obs(obs)
        if self.reward_model.needs_frames:
            self._last_frames = self._frames_from(self.venv.reset_infos)
        self._ep_learned[:] = 0.0
        self._ep_env[:] = 0.0
        self._ep_len[:] = 0
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.array(actions, copy=True)
        self.venv.step_async(actions)

    def _frames_from(self, infos: list[dict[str, Any]]) -> np.ndarray:
        try:
            return np.stack([info[FRAME_KEY] for info in infos])
        except KeyError:
            raise RuntimeError(
                f"reward module {self.reward_model.name} needs frames but the envs put no "
                f"info[{FRAME_KEY!r}]; wrap each env in rewardlearn.wrappers.FrameCapture "
                "(rewardlearn.env_factory.make_vec_env(..., frame_size=...) does this)."
            ) from None

    def step_wait(self) -> VecEnvStepReturn:
        if self._last_obs is None or self._actions is None:
            raise RuntimeError("call reset() before step()")
        obs, env_rew, dones, infos = self.venv.step_wait()
        next_obs = copy_obs(obs)
        truncated = np.array([bool(info.get("TimeLimit.truncated", False)) for info in infos])
        dones = np.asarray(dones, dtype=bool)
        terminated = dones & ~truncated
        for j in np.flatnonzero(dones):
            if "terminal_observation" in infos[j]:
                _set_row(next_obs, int(j), infos[j]["terminal_observation"])

        frames = obs_frames = None
        if self.reward_model.needs_frames:
            frames = self._frames_from(infos)
            obs_frames = self._last_frames
        batch = TransitionBatch(
            obs=self._last_obs,
            acts=self._actions,
            next_obs=next_obs,
            terminated=terminated,
            truncated=truncated,
            frames=frames,
            obs_frames=obs_frames,
            env_rewards=np.array(env_rew, dtype=np.float32),
            infos=list(infos),
        )
        self._last_obs = copy_obs(obs)
        if frames is not None:
            self._last_frames = frames.copy()
            for j in np.flatnonzero(dones):
                self._last_frames[j] = self.venv.reset_infos[j][FRAME_KEY]
        t0 = time.perf_counter()
        if self.defer:
            self.reward_model.defer_step(batch)
            if self.reward_model.defer_consumes_frames:  # the module took them already
                batch = dataclasses.replace(batch, frames=None, obs_frames=None)
            self._pending.append(batch)
            self._run_start[batch.dones] = len(self._pending)
            self.reward_s += time.perf_counter() - t0
            zero = np.zeros(self.num_envs, np.float32)
            return obs, combine_rewards(zero, env_rew, self.mode, self.weight).astype(
                np.float32), dones, infos
        out = self.reward_model.compute(batch)
        learned = check_finite(
            np.asarray(out.rewards, dtype=np.float32).reshape(self.num_envs), self.reward_model.name
        )
        rewards = combine_rewards(learned, env_rew, self.mode, self.weight).astype(np.float32)
        if self.training:
            self.reward_model.observe(batch, learned)
        self.reward_s += time.perf_counter() - t0
        self._account(batch, learned, out.signals)
        return obs, rewards, dones, infos

    def _account(self, batch: TransitionBatch, learned: np.ndarray,
                 signals: dict[str, np.ndarray]) -> list[dict[str, float]]:
        """Fill each env's info with its rewards; returns the episodes that ended."""
        assert batch.env_rewards is not None and batch.infos is not None
        env_rew, dones, ended = batch.env_rewards, batch.dones, []
        self._ep_learned += learned
        self._ep_env += env_rew
        self._ep_len += 1
        for i, info in enumerate(batch.infos):
            info["env_reward"] = float(env_rew[i])
            info["learned_reward"] = float(learned[i])
            info["reward_signals"] = {k: float(np.asarray(v)[i]) for k, v in signals.items()}
            if dones[i]:
                ep = {"r": float(self._ep_learned[i]), "r_env": float(self._ep_env[i]),
                      "l": int(self._ep_len[i])}
                info[LEARNED_EPISODE_KEY] = ep
                self.episode_returns.append(ep)
                ended.append(ep)
                self._ep_learned[i] = 0.0
                self._ep_env[i] = 0.0
                self._ep_len[i] = 0
        return ended

    def flush(self, steps: int | None = None) -> FlushedRewards:
        """Compute the rewards of every deferred step in one call (``defer=True``).

        Steps are then observed by the module in their order, as without deferral, and
        their infos get ``learned_reward`` and ``reward_signals``. Returns the learned
        rewards ``(T, n_envs)``, the change to what ``step`` returned (``combined -
        returned``: the learned reward in ``replace`` mode, ``weight`` times it in
        ``add`` mode), the episodes that ended and each signal's ``(T, n_envs)`` values.
        ``steps``: only the oldest ``steps`` pending steps (an off-policy agent flushes
        :attr:`complete_steps`); the others stay pending.
        """
        steps = len(self._pending) if steps is None else int(steps)
        if not 0 <= steps <= len(self._pending):
            raise ValueError(f"cannot flush {steps} of {len(self._pending)} pending steps")
        pending, self._pending = self._pending[:steps], self._pending[steps:]
        self._run_start = np.maximum(self._run_start - steps, 0)
        t, n = len(pending), self.num_envs
        if not t:
            empty = np.zeros((0, n), np.float32)
            return FlushedRewards(empty, empty.copy(), total=empty.copy(),
                                  returned=empty.copy(), dones=np.zeros((0, n), bool))
        t0 = time.perf_counter()
        joined = TransitionBatch.concat(pending)
        out = self.reward_model.compute_deferred(joined)
        learned = check_finite(np.asarray(out.rewards, np.float32).reshape(t * n),
                               self.reward_model.name).reshape(t, n)
        signals = {k: np.asarray(v).reshape(t, n) for k, v in out.signals.items()}
        env = np.stack([np.asarray(b.env_rewards, np.float32) for b in pending])
        total = combine_rewards(learned, env, self.mode, self.weight).astype(np.float32)
        returned = combine_rewards(np.zeros_like(learned), env, self.mode,
                                   self.weight).astype(np.float32)
        delta = total - returned
        if self.training:
            self.reward_model.observe_steps(pending, learned, joined)
        self.reward_s += time.perf_counter() - t0
        episodes: list[dict[str, float]] = []
        for k, batch in enumerate(pending):
            episodes += self._account(batch, learned[k], {s: v[k] for s, v in signals.items()})
        return FlushedRewards(learned, delta.astype(np.float32), episodes, signals, total,
                              returned, np.stack([b.dones for b in pending]))


@dataclass
class FlushedRewards:
    """What :meth:`RewardVecEnvWrapper.flush` computed for the deferred steps."""

    learned: np.ndarray
    """The module's rewards, ``(T, n_envs)``."""
    delta: np.ndarray
    """What to add to the rewards ``step`` returned, ``(T, n_envs)``."""
    episodes: list[dict[str, float]] = field(default_factory=list)
    """Episodes that ended in these steps (``r``, ``r_env``, ``l``)."""
    signals: dict[str, np.ndarray] = field(default_factory=dict)
    """Each of the module's signals, ``(T, n_envs)``."""
    total: np.ndarray | None = None
    """The rewards the agent gets, ``(T, n_envs)`` (raw: before any reward normalisation)."""
    returned: np.ndarray | None = None
    """What ``step`` returned for these steps (raw), ``(T, n_envs)``."""
    dones: np.ndarray | None = None
    """Where an episode ended (terminated or truncated), ``(T, n_envs)``."""


class RewardLoggingCallback(BaseCallback):
    """Logs learned-reward and env-reward episode returns next to SB3's own.

    SB3's ``rollout/ep_rew_mean`` comes from the Monitor *under* the reward
    wrapper, so it is the env's return; this adds
    ``rollout/ep_learned_rew_mean`` and ``rollout/ep_env_rew_mean`` from the
    episodes that :class:`RewardVecEnvWrapper` reports.
    """

    def __init__(self, window: int = 100, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.learned: deque[float] = deque(maxlen=window)
        self.env: deque[float] = deque(maxlen=window)

    def _on_step(self) -> bool:
        self._record([info[LEARNED_EPISODE_KEY] for info in self.locals.get("infos", [])
                      if LEARNED_EPISODE_KEY in info])
        return True

    def _record(self, episodes: list[dict[str, float]]) -> None:
        for ep in episodes:
            self.learned.append(ep["r"])
            self.env.append(ep["r_env"])
        if episodes:
            self.logger.record("rollout/ep_learned_rew_mean", float(np.mean(self.learned)))
            self.logger.record("rollout/ep_env_rew_mean", float(np.mean(self.env)))


class DeferredRewardCallback(RewardLoggingCallback):
    """``reward_timing=rollout``: the rollout's rewards in one call, into the agent's buffer.

    At each rollout end it flushes the deferred reward wrapper, adds the rewards to the
    on-policy rollout buffer (whose entries then equal what per-step rewards would have
    stored, including SB3's time-limit bootstrap ``gamma * V(s_T)``) and recomputes the
    returns and advantages, which SB3 computes before ``on_rollout_end``. It must come
    before any callback that reads the rollout's rewards (``train.py`` puts it first).
    Logs the learned returns as :class:`RewardLoggingCallback` does, and each reward
    signal's rollout mean as ``reward/<signal>``.

    Off-policy agents (a trajectory-level reward, :mod:`rewardlearn.wrappers.episodic`):
    SB3 stores each step with the placeholder ``step`` returned; at each rollout end (before
    SB3 trains) the steps whose episodes have ended (:attr:`RewardVecEnvWrapper.
    complete_steps`) are flushed and their raw rewards written into the replay rows they
    were stored in (:class:`~rewardlearn.wrappers.replay.DeferredReplayBuffer`, which
    trains only on rows written). Training waits until one episode has ended.
    """

    def __init__(self, window: int = 100, verbose: int = 0) -> None:
        super().__init__(window, verbose)
        self.replay: DeferredReplayBuffer | None = None
        self._stamps: list[int] = []
        """Off-policy: the replay stamp of each pending step, oldest first."""

    def _on_training_start(self) -> None:
        wrapper = find_reward_wrapper(self.training_env)
        if wrapper is None or not wrapper.defer:
            raise RuntimeError("DeferredRewardCallback needs the env wrapped in "
                               "RewardVecEnvWrapper(..., defer=True)")
        self.wrapper = wrapper
        self.replay = None
        stamps, self._stamps = self._stamps, []
        if not isinstance(self.model, OnPolicyAlgorithm):
            rb = getattr(self.model, "replay_buffer", None)
            if not isinstance(rb, DeferredReplayBuffer):
                raise ValueError(f"deferred rewards with {type(self.model).__name__} need its "
                                 "replay_buffer_class=DeferredReplayBuffer (rewardlearn."
                                 "wrappers.replay), which trains only on rows whose reward "
                                 "is known")
            self.replay = rb
            if len(stamps) == wrapper.pending:  # learn() again without a reset: carry on
                self._stamps = stamps
            else:  # steps whose rows this callback did not see: their rows stay unused
                wrapper.flush()

    def _on_step(self) -> bool:
        if self.replay is not None:  # SB3 stores this step after the callbacks
            self._stamps.append(self.replay.adds)
        return True

    def _on_rollout_end(self) -> None:
        if self.replay is not None:
            self._write_replay(self.replay)
            return
        flushed = self.wrapper.flush()
        assert flushed.total is not None and flushed.returned is not None
        delta = normalized_delta(self.model, flushed.total, flushed.returned)
        write_rollout_rewards(self.model, delta, self.locals["values"], self.locals["dones"])
        self._record(flushed.episodes)
        for name, values in flushed.signals.items():
            self.logger.record(f"reward/{name}", float(np.mean(values)))

    def _write_replay(self, replay: DeferredReplayBuffer) -> None:
        """Flush the steps of ended episodes into their replay rows (raw rewards: SB3
        normalises them when it samples); hold training until a row is ready."""
        steps = self.wrapper.complete_steps
        if steps:
            flushed = self.wrapper.flush(steps)
            stamps, self._stamps = self._stamps[:steps], self._stamps[steps:]
            assert flushed.total is not None and flushed.dones is not None
            replay.write(stamps, flushed.total)
            norm = reward_normalizer(self.model)
            if isinstance(norm, AgentNormalize):
                norm.update_rollout(flushed.total, dones=flushed.dones)
            self._record(flushed.episodes)
            for name, values in flushed.signals.items():
                self.logger.record(f"reward/{name}", float(np.mean(values)))
        if replay.n_ready == 0:  # SB3 trains when num_timesteps > learning_starts
            model: Any = self.model
            model.learning_starts = max(int(model.learning_starts), int(self.num_timesteps))


def write_rollout_rewards(agent: BaseAlgorithm, delta: np.ndarray, last_values: Any,
                          dones: np.ndarray) -> None:
    """Add ``delta`` (``(n_steps, n_envs)``, on the agent's reward scale:
    :func:`~rewardlearn.wrappers.normalize.normalized_delta`,
    :func:`~rewardlearn.wrappers.normalize.scaled_change`) to an on-policy agent's rollout
    buffer rewards and recompute its returns and advantages (GAE) from them."""
    if not isinstance(agent, OnPolicyAlgorithm):
        raise ValueError(f"{type(agent).__name__} has no rollout buffer to write rewards into")
    buf = agent.rollout_buffer
    if delta.shape != buf.rewards.shape:
        raise RuntimeError(f"{delta.shape[0]} deferred steps for a rollout of "
                           f"{buf.rewards.shape[0]}: something else stepped the training env")
    buf.rewards += delta.astype(buf.rewards.dtype)
    buf.compute_returns_and_advantage(last_values=last_values, dones=dones)


def find_reward_wrapper(venv: VecEnv) -> RewardVecEnvWrapper | None:
    """The :class:`RewardVecEnvWrapper` in a stack of VecEnv wrappers, if any."""
    env: Any = venv
    while isinstance(env, VecEnvWrapper):
        if isinstance(env, RewardVecEnvWrapper):
            return env
        env = env.venv
    return None


__all__ = [
    "LEARNED_EPISODE_KEY",
    "DeferredRewardCallback",
    "FlushedRewards",
    "RewardLoggingCallback",
    "RewardVecEnvWrapper",
    "combine_rewards",
    "find_reward_wrapper",
    "write_rollout_rewards",
]
