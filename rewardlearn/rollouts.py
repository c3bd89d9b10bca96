"""Evaluate an agent on the env's own reward, recording rollouts with their reward curves.

Evaluation always reports the env's return (the ground truth) and, when a
reward module is given, the learned return on the same transitions, through
the same :class:`~rewardlearn.wrappers.LearnedRewardWrapper` that training used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from rewardlearn.agents import Policy
from rewardlearn.env_factory import camera_config, env_config, make_env
from rewardlearn.recording import RolloutRecord, write_sidecar, write_video
from rewardlearn.rewards.base import RewardModel
from rewardlearn.wrappers.frames import EnvFrameSource
from rewardlearn.wrappers.gym import LearnedRewardWrapper

SIDECAR_INFO_KEYS = ("stage", "success", "is_success", "progress")


@dataclass
class EvalResult:
    """Per-episode returns and the recorded files."""

    env_returns: list[float]
    learned_returns: list[float] | None
    successes: list[bool] | None
    lengths: list[int]
    videos: list[str] = field(default_factory=list)
    sidecars: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "env_return_mean": float(np.mean(self.env_returns)),
            "env_return_std": float(np.std(self.env_returns)),
            "learned_return_mean": None if self.learned_returns is None
            else float(np.mean(self.learned_returns)),
            "success_rate": None if self.successes is None else float(np.mean(self.successes)),
            "eval_episodes": len(self.env_returns),
            "eval_length_mean": float(np.mean(self.lengths)),
        }


def _success(info: dict[str, Any], key: str | None) -> bool | None:
    if key is None or key not in info:
        return None
    return bool(info[key])


def evaluate(
    policy: Policy,
    env_cfg: str | DictConfig,
    n_episodes: int = 5,
    seed: int = 10_000,
    reward_model: RewardModel | None = None,
    deterministic: bool = True,
    n_videos: int = 0,
    video_dir: str | Path | None = None,
    video_size: tuple[int, int] = (256, 256),
    fps: float | None = None,
    meta: dict[str, Any] | None = None,
) -> EvalResult:
    """Run ``n_episodes`` episodes; record the first ``n_videos`` as mp4 + sidecar.

    Episode ``k`` is seeded with ``seed + k`` (held out from training seeds).
    Success is read from the env config's ``success_key`` at the episode end.
    """
    cfg = env_config(env_cfg)
    success_key = cfg.get("success_key")
    frame_size = reward_model.frame_size if reward_model and reward_model.needs_frames else None
    env = make_env(cfg, render_mode="rgb_array" if n_videos else None, frame_size=frame_size)
    if reward_model is not None:
        env = LearnedRewardWrapper(env, reward_model)
    source = EnvFrameSource(env, video_size[1], video_size[0], camera_config(cfg)) if n_videos \
        else None
    fps = fps or float(env.metadata.get("render_fps") or 30)
    if n_videos and video_dir is None:
        raise ValueError("n_videos > 0 needs a video_dir")

    result = EvalResult([], [] if reward_model else None, [] if success_key else None, [])
    try:
        for k in range(n_episodes):
            record_this = source is not None and k < n_videos
            obs, info = env.reset(seed=seed + k)
            frames = [source.render()] if record_this and source else []
            rec = RolloutRecord(episode=k, seed=seed + k, length=0, env_return=0.0,
                                learned_return=None, success=None, terminated=False,
                                truncated=False,
                                learned_reward=[] if reward_model else None)
            done = False
            while not done:
                action, _ = policy.predict(obs, deterministic=deterministic)
                obs, reward, terminated, truncated, info = env.step(action)
                env_r = float(info.get("env_reward", reward))
                rec.env_reward.append(env_r)
                rec.env_return += env_r
                if reward_model is not None and rec.learned_reward is not None:
                    rec.learned_reward.append(float(info["learned_reward"]))
                    for name, v in info.get("reward_signals", {}).items():
                        rec.signals.setdefault(name, []).append(float(v))
                for key in SIDECAR_INFO_KEYS:
                    if key in info and np.isscalar(info[key]):
                        rec.env_info.setdefault(key, []).append(float(info[key]))
                if record_this and source:
                    frames.append(source.render())
                rec.length += 1
                done = bool(terminated or truncated)
                rec.terminated, rec.truncated = bool(terminated), bool(truncated)
            rec.success = _success(info, success_key)
            if rec.learned_reward is not None:
                rec.learned_return = float(np.sum(rec.learned_reward))
            result.env_returns.append(rec.env_return)
            result.lengths.append(rec.length)
            if result.learned_returns is not None and rec.learned_return is not None:
                result.learned_returns.append(rec.learned_return)
            if result.successes is not None:
                result.successes.append(bool(rec.success))
            if record_this and video_dir is not None:
                video = write_video(Path(video_dir) / f"episode_{k:03d}.mp4", frames, fps)
                rec.video, rec.fps = video.name, fps
                side = write_sidecar(video.with_suffix(".json"), rec, meta)
                result.videos.append(str(video))
                result.sidecars.append(str(side))
    finally:
        if source is not None:
            source.close()
        env.close()
    return result
