"""The SB3 vector-env wrapper that serves every reward module.

One batched reward call per ``step`` covers all envs. On an auto-reset the
module sees the *true* last observation (``info["terminal_observation"]``) and
the real terminal frame; ``terminated`` and ``truncated`` are recovered from
SB3's ``done`` and ``info["TimeLimit.truncated"]`` and never mixed. The env's
own reward stays in ``info["env_reward"]``.

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

from collections import deque
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from rewardlearn.rewards.base import RewardModel, TransitionBatch, check_finite
from rewardlearn.wrappers.frames import FRAME_KEY

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
    ) -> None:
        super().__init__(venv)
        self.training = training
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

    def reset(self) -> Any:
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
            env_rewards=np.asarray(env_rew, dtype=np.float32),
            infos=list(infos),
        )
        out = self.reward_model.compute(batch)
        learned = check_finite(
            np.asarray(out.rewards, dtype=np.float32).reshape(self.num_envs), self.reward_model.name
        )
        rewards = combine_rewards(learned, env_rew, self.mode, self.weight).astype(np.float32)
        if self.training:
            self.reward_model.observe(batch, learned)

        self._ep_learned += learned
        self._ep_env += env_rew
        self._ep_len += 1
        for i, info in enumerate(infos):
            info["env_reward"] = float(env_rew[i])
            info["learned_reward"] = float(learned[i])
            info["reward_signals"] = {k: float(np.asarray(v)[i]) for k, v in out.signals.items()}
            if dones[i]:
                ep = {"r": float(self._ep_learned[i]), "r_env": float(self._ep_env[i]),
                      "l": int(self._ep_len[i])}
                info[LEARNED_EPISODE_KEY] = ep
                self.episode_returns.append(ep)
                self._ep_learned[i] = 0.0
                self._ep_env[i] = 0.0
                self._ep_len[i] = 0

        self._last_obs = copy_obs(obs)
        if frames is not None:
            self._last_frames = frames.copy()
            for j in np.flatnonzero(dones):
                self._last_frames[j] = self.venv.reset_infos[j][FRAME_KEY]
        return obs, rewards, dones, infos


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
        new = False
        for info in self.locals.get("infos", []):
            ep = info.get(LEARNED_EPISODE_KEY)
            if ep is not None:
                self.learned.append(ep["r"])
                self.env.append(ep["r_env"])
                new = True
        if new:
            self.logger.record("rollout/ep_learned_rew_mean", float(np.mean(self.learned)))
            self.logger.record("rollout/ep_env_rew_mean", float(np.mean(self.env)))
        return True


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
    "RewardLoggingCallback",
    "RewardVecEnvWrapper",
    "combine_rewards",
    "find_reward_wrapper",
]
