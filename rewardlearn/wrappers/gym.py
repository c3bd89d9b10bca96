"""A plain ``gymnasium.Wrapper`` for users outside SB3.

Same protocol and ``info`` keys as :class:`rewardlearn.wrappers.RewardVecEnvWrapper`,
one transition per call.

Example:
    >>> import gymnasium as gym, numpy as np
    >>> from rewardlearn.rewards.base import RewardModel, RewardOutput
    >>> from rewardlearn.wrappers import LearnedRewardWrapper
    >>> class Upright(RewardModel):
    ...     def compute(self, b):
    ...         return RewardOutput(b.next_obs[:, 0])
    >>> env = gym.make("Pendulum-v1")
    >>> env = LearnedRewardWrapper(env, Upright(env.observation_space, env.action_space))
    >>> obs, _ = env.reset(seed=0)
    >>> obs, r, terminated, truncated, info = env.step(np.zeros(1, np.float32))
    >>> bool(np.isclose(r, obs[0])), "env_reward" in info
    (True, True)
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from rewardlearn.rewards.base import RewardModel, TransitionBatch, check_finite
from rewardlearn.wrappers.frames import FRAME_KEY
from rewardlearn.wrappers.vec import LEARNED_EPISODE_KEY, combine_rewards, copy_obs


def _batch1(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: np.asarray(v)[None] for k, v in x.items()}
    return np.asarray(x)[None]


class LearnedRewardWrapper(gym.Wrapper):
    """Replace (or add to) the env reward with a reward module's.

    Args:
        env: the env; wrap it in :class:`FrameCapture` first if the module
            needs frames.
        reward_model: any :class:`RewardModel`.
        mode: ``"replace"`` or ``"add"`` (``env + weight * learned``).
        weight: weight of the learned reward in ``"add"`` mode.
    """

    def __init__(
        self, env: gym.Env, reward_model: RewardModel, mode: str = "replace", weight: float = 1.0
    ) -> None:
        super().__init__(env)
        combine_rewards(np.zeros(1), np.zeros(1), mode, weight)
        self.reward_model = reward_model
        self.mode = mode
        self.weight = float(weight)
        self._last_obs: Any = None
        self._last_frame: np.ndarray | None = None
        self._ep_learned = 0.0
        self._ep_env = 0.0
        self._ep_len = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._remember(obs, info)
        self._ep_learned, self._ep_env, self._ep_len = 0.0, 0.0, 0
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._last_obs is None:
            raise RuntimeError("call reset() before step()")
        obs, env_reward, terminated, truncated, info = self.env.step(action)
        frames = obs_frames = None
        if self.reward_model.needs_frames:
            if FRAME_KEY not in info:
                raise RuntimeError(
                    f"reward module {self.reward_model.name} needs frames; wrap the env in "
                    "rewardlearn.wrappers.FrameCapture first"
                )
            frames = info[FRAME_KEY][None]
            obs_frames = None if self._last_frame is None else self._last_frame[None]
        batch = TransitionBatch(
            obs=_batch1(self._last_obs),
            acts=np.asarray(action)[None],
            next_obs=_batch1(obs),
            terminated=np.array([terminated]),
            truncated=np.array([truncated]),
            frames=frames,
            obs_frames=obs_frames,
            env_rewards=np.array([env_reward], dtype=np.float32),
            infos=[info],
        )
        out = self.reward_model.compute(batch)
        learned = check_finite(np.asarray(out.rewards, dtype=np.float32).reshape(1),
                               self.reward_model.name)
        reward = float(combine_rewards(learned, np.array([float(env_reward)]), self.mode,
                                       self.weight)[0])
        info["env_reward"] = float(env_reward)
        info["learned_reward"] = float(learned[0])
        info["reward_signals"] = {k: float(np.asarray(v)[0]) for k, v in out.signals.items()}
        self._ep_learned += float(learned[0])
        self._ep_env += float(env_reward)
        self._ep_len += 1
        if terminated or truncated:
            info[LEARNED_EPISODE_KEY] = {"r": self._ep_learned, "r_env": self._ep_env,
                                         "l": self._ep_len}
        self._remember(obs, info)
        return obs, reward, terminated, truncated, info

    def _remember(self, obs: Any, info: dict[str, Any]) -> None:
        """Keep ``s`` for the next transition as a copy: an env may mutate its array in place."""
        self._last_obs = copy_obs(obs)
        frame = info.get(FRAME_KEY)
        self._last_frame = None if frame is None else np.array(frame, copy=True)
