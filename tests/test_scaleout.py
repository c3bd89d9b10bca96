"""Scale-out checks: SubprocVecEnv renders frames in the workers; reward modules honour device."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from rewardlearn.env_factory import env_config, make_vec_env
from rewardlearn.rewards.base import RewardModel, RewardOutput, TransitionBatch
from rewardlearn.wrappers.vec import RewardVecEnvWrapper

CONF = Path(__file__).resolve().parents[1] / "conf"


class FrameMean(RewardModel):
    """Reward = mean pixel of the next frame; keeps every batch's frames."""

    needs_frames = True
    frame_size = (40, 48)
    name = "frame_mean"

    def __init__(self, observation_space, action_space) -> None:
        super().__init__(observation_space, action_space)
        self.frames: list[np.ndarray] = []
        self.obs_frames: list[np.ndarray] = []
        self.dones: list[np.ndarray] = []

    def compute(self, batch: TransitionBatch) -> RewardOutput:
        assert batch.frames is not None and batch.obs_frames is not None
        self.frames.append(batch.frames.copy())
        self.obs_frames.append(batch.obs_frames.copy())
        self.dones.append(batch.dones.copy())
        return RewardOutput(batch.frames.reshape(len(batch), -1).mean(1) / 255.0)


def _rollout(vec_env: str, steps: int = 30) -> tuple[FrameMean, np.ndarray]:
    cfg = env_config("hopper")
    cfg.max_episode_steps = 12  # episodes end (truncation) inside the rollout
    venv = make_vec_env(cfg, n_envs=2, seed=3, frame_size=FrameMean.frame_size,
                        vec_env=vec_env)
    model = FrameMean(venv.observation_space, venv.action_space)
    wrapped = RewardVecEnvWrapper(venv, model)
    wrapped.reset()
    rng = np.random.default_rng(0)
    rewards = []
    try:
        for _ in range(steps):
            acts = rng.uniform(-1, 1, (2, *venv.action_space.shape)).astype(np.float32)
            _, r, _, _ = wrapped.step(acts)
            rewards.append(r)
    finally:
        wrapped.close()
    return model, np.asarray(rewards)


def test_subproc_workers_render_the_same_frames_as_dummy() -> None:
    sub, r_sub = _rollout("subproc")
    dummy, r_dummy = _rollout("dummy")
    frames_sub, frames_dummy = np.stack(sub.frames), np.stack(dummy.frames)
    assert frames_sub.shape == (30, 2, 40, 48, 3) and frames_sub.dtype == np.uint8
    assert frames_sub.std() > 1.0  # real images, not blank
    dones = np.stack(sub.dones)
    assert dones[:-1].any()
    np.testing.assert_array_equal(dones, np.stack(dummy.dones))
    np.testing.assert_array_equal(frames_sub, frames_dummy)  # terminal frames included
    np.testing.assert_array_equal(np.stack(sub.obs_frames), np.stack(dummy.obs_frames))
    np.testing.assert_allclose(r_sub, r_dummy)
    # after an auto-reset the next obs_frame is the new episode's first frame, not the last
    t, i = map(int, np.argwhere(dones[:-1])[0])
    assert not np.array_equal(sub.obs_frames[t + 1][i], sub.frames[t][i])


DEVICE_OPTIONS = [(g, p.stem) for g in ("reward", "shaping")
                  for p in sorted((CONF / g).glob("*.yaml")) if "device" in p.read_text()]


@pytest.mark.parametrize(("group", "option"), DEVICE_OPTIONS,
                         ids=[f"{g}={o}" for g, o in DEVICE_OPTIONS])
def test_reward_configs_follow_the_top_level_device(compose_cfg: Callable[..., DictConfig],
                                                    group: str, option: str) -> None:
    cfg = compose_cfg(f"{group}={option}", "device=cuda:7")
    node = cfg[group].get("model", cfg[group].get("potential"))
    assert OmegaConf.select(node, "device") == "cuda:7", f"{group}={option} ignores device="


def test_progress_model_resolves_auto_device() -> None:
    import gymnasium as gym

    from rewardlearn.progress import ProgressConfig
    from rewardlearn.progress.modeling import ProgressModel

    space = gym.spaces.Box(-1, 1, (3,))
    model = ProgressModel(space, space, 2, np.array([0.5, 0.5]), ProgressConfig(device="auto",
                                                                                window=1))
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert model.device.type == expected
    assert next(model.net.parameters()).device.type == expected
