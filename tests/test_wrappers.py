"""The batched reward wrappers: batching, terminal observations, flags, frames, modes."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv
from toy_envs import CountEnv

from rewardlearn.rewards import MLPReward, NonFiniteRewardError, RewardModel, RewardOutput
from rewardlearn.rewards.base import TransitionBatch
from rewardlearn.wrappers import FrameCapture, LearnedRewardWrapper, RewardVecEnvWrapper


class Recorder(RewardModel):
    """Reward = 10 * next_obs[t] + obs[t]; keeps every batch it was called with."""

    name = "recorder"

    def __init__(self, obs_space: gym.Space, act_space: gym.Space, frames: bool = False) -> None:
        super().__init__(obs_space, act_space)
        self.needs_frames = frames
        self.frame_size = (8, 8)
        self.batches: list[TransitionBatch] = []

    def compute(self, batch: TransitionBatch) -> RewardOutput:
        self.batches.append(batch)
        r = 10 * np.asarray(batch.next_obs)[:, 0] + np.asarray(batch.obs)[:, 0]
        return RewardOutput(r, {"t_next": np.asarray(batch.next_obs)[:, 0]})


def count_venv(n: int, max_steps: int = 5, frames: bool = False) -> DummyVecEnv:
    def make() -> gym.Env:
        env: gym.Env = gym.wrappers.TimeLimit(CountEnv(), max_episode_steps=max_steps)
        env = Monitor(env)
        return FrameCapture(env, 8, 8) if frames else env

    return DummyVecEnv([make for _ in range(n)])


def test_terminal_observation_and_flags_arrive_intact() -> None:
    venv = count_venv(1)
    model = Recorder(venv.observation_space, venv.action_space)
    wrapped = RewardVecEnvWrapper(venv, model)
    wrapped.reset()
    seen = []
    for _ in range(3 + 5 + 2):
        _, _, dones, _infos = wrapped.step(np.zeros((1, 1), np.float32))
        b = model.batches[-1]
        seen.append((float(b.obs[0, 0]), float(b.next_obs[0, 0]), bool(b.terminated[0]),
                     bool(b.truncated[0]), bool(dones[0])))
    # episode 0 terminates at t=3: the module sees next_obs t=3, not the reset obs t=0
    assert seen[2] == (2.0, 3.0, True, False, True)
    # episode 1 runs to the time limit (5): truncated, not terminated
    assert seen[3][0] == 0.0  # after the reset the next transition starts from the new obs
    assert seen[7] == (4.0, 5.0, False, True, True)
    assert not any(s[2] and s[3] for s in seen)


def test_batched_equals_per_env_calls() -> None:
    n = 4
    venv = count_venv(n)
    model = MLPReward(venv.observation_space, venv.action_space, hidden_sizes=(16,), seed=1)
    wrapped = RewardVecEnvWrapper(venv, model)
    wrapped.reset()
    rng = np.random.default_rng(0)
    for _ in range(12):
        wrapped.step_async(rng.uniform(-1, 1, (n, 1)).astype(np.float32))
        last_obs = wrapped._last_obs.copy()
        acts = wrapped._actions.copy()
        _, rew, _, infos = wrapped.step_wait()
        for i in range(n):
            true_next = infos[i].get("terminal_observation", None)
            nxt = true_next if true_next is not None else wrapped._last_obs[i]
            single = TransitionBatch.from_arrays(last_obs[i : i + 1], acts[i : i + 1], nxt[None])
            assert np.isclose(rew[i], model(single)[0], atol=1e-6)
            assert infos[i]["learned_reward"] == pytest.approx(float(rew[i]), abs=1e-6)


def test_env_reward_preserved_and_add_mode() -> None:
    venv = count_venv(2)
    model = Recorder(venv.observation_space, venv.action_space)
    wrapped = RewardVecEnvWrapper(venv, model, mode="add", weight=0.5)
    wrapped.reset()
    _, rew, _, infos = wrapped.step(np.zeros((2, 1), np.float32))
    assert [i["env_reward"] for i in infos] == [1.0, 1.0]  # CountEnv reward = t
    assert np.allclose(rew, 1.0 + 0.5 * 10.0)
    assert infos[0]["reward_signals"] == {"t_next": 1.0}


def test_learned_episode_returns_reported() -> None:
    venv = count_venv(1)
    wrapped = RewardVecEnvWrapper(venv, Recorder(venv.observation_space, venv.action_space))
    wrapped.reset()
    for _ in range(3):
        _, _, _, infos = wrapped.step(np.zeros((1, 1), np.float32))
    ep = infos[0]["learned_episode"]
    assert ep["l"] == 3 and ep["r_env"] == 1 + 2 + 3
    assert ep["r"] == pytest.approx((10 + 0) + (20 + 1) + (30 + 2))


def test_terminal_frame_is_last_frame_not_reset_frame() -> None:
    venv = count_venv(2, max_steps=4, frames=True)
    model = Recorder(venv.observation_space, venv.action_space, frames=True)
    wrapped = RewardVecEnvWrapper(venv, model)
    wrapped.reset()
    for _ in range(5):
        wrapped.step(np.zeros((2, 1), np.float32))
    b_end = model.batches[2]  # env episode 0 terminates at t=3
    assert b_end.terminated.all() and (b_end.frames[:, 0, 0, 0] == 3).all()
    b_after = model.batches[3]  # first step of the next episode: obs frame is the reset frame
    assert (b_after.obs_frames[:, 0, 0, 0] == 0).all() and (b_after.frames[:, 0, 0, 0] == 1).all()
    assert b_end.frames.shape == (2, 8, 8, 3)


def test_missing_frames_error_is_clear() -> None:
    venv = count_venv(1, frames=False)
    wrapped = RewardVecEnvWrapper(venv, Recorder(venv.observation_space, venv.action_space, True))
    with pytest.raises(RuntimeError, match="FrameCapture"):
        wrapped.reset()


def test_nan_reward_is_caught() -> None:
    class Bad(Recorder):
        def compute(self, batch: TransitionBatch) -> RewardOutput:
            return RewardOutput(np.full(len(batch), np.nan))

    venv = count_venv(2)
    wrapped = RewardVecEnvWrapper(venv, Bad(venv.observation_space, venv.action_space))
    wrapped.reset()
    with pytest.raises(NonFiniteRewardError, match="rows \\[0, 1\\]"):
        wrapped.step(np.zeros((2, 1), np.float32))


def test_gym_wrapper_matches_vec_wrapper() -> None:
    env = gym.wrappers.TimeLimit(CountEnv(), max_episode_steps=5)
    model = Recorder(env.observation_space, env.action_space)
    wrapped = LearnedRewardWrapper(env, model)
    wrapped.reset(seed=0)
    rewards, flags = [], []
    for _ in range(3):
        _, r, te, tr, info = wrapped.step(np.zeros(1, np.float32))
        rewards.append(r)
        flags.append((te, tr))
    assert rewards == [10.0, 21.0, 32.0]
    assert flags[-1] == (True, False) and info["env_reward"] == 3.0
    assert info["learned_episode"]["l"] == 3


def test_bad_mode_rejected() -> None:
    venv = count_venv(1)
    with pytest.raises(ValueError, match="replace"):
        RewardVecEnvWrapper(venv, Recorder(venv.observation_space, venv.action_space), mode="mul")


def test_subproc_envs_render_frames_in_workers() -> None:
    from rewardlearn.env_factory import make_vec_env

    venv = make_vec_env("hopper", n_envs=2, seed=0, frame_size=(24, 32), vec_env="subproc")
    model = Recorder(venv.observation_space, venv.action_space, frames=True)
    model.frame_size = (24, 32)
    wrapped = RewardVecEnvWrapper(venv, model)
    try:
        wrapped.reset()
        for _ in range(3):
            wrapped.step(np.zeros((2, 3), np.float32))
    finally:
        wrapped.close()
    b = model.batches[-1]
    assert b.frames.shape == (2, 24, 32, 3) and b.frames.dtype == np.uint8
    assert b.frames.std() > 0  # a real image, not a blank buffer


class InPlaceCountEnv(gym.Env):
    """Counts up in one observation array that it mutates in place (as some robot envs do)."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self) -> None:
        self._obs = np.zeros(1, np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):  # type: ignore[override]
        super().reset(seed=seed)
        self._obs[:] = 0.0
        return self._obs, {}

    def step(self, action):  # type: ignore[override]
        self._obs += 1.0
        return self._obs, 0.0, False, bool(self._obs[0] >= 5), {}


class ReadsS(RewardModel):
    """r = s[0], the observation *before* the step."""

    def compute(self, batch: TransitionBatch) -> RewardOutput:
        return RewardOutput(np.asarray(batch.obs)[:, 0])


def test_gym_wrapper_keeps_s_when_the_env_mutates_its_observation_in_place() -> None:
    env = InPlaceCountEnv()
    wrapped = LearnedRewardWrapper(env, ReadsS(env.observation_space, env.action_space))
    wrapped.reset(seed=0)
    rewards = [wrapped.step(np.zeros(1, np.float32))[1] for _ in range(5)]
    assert rewards == [0.0, 1.0, 2.0, 3.0, 4.0]
    # the vector wrapper agrees
    venv = RewardVecEnvWrapper(DummyVecEnv([InPlaceCountEnv]),
                               ReadsS(env.observation_space, env.action_space))
    venv.reset()
    vec_rewards = [float(venv.step(np.zeros((1, 1), np.float32))[1][0]) for _ in range(5)]
    assert vec_rewards == rewards


class Slow(Recorder):
    """A Recorder that takes 20 ms per call (scoring) and 10 ms per observed batch."""

    name = "slow"
    deferrable = True

    def compute(self, batch: TransitionBatch) -> RewardOutput:
        import time

        time.sleep(0.02)
        return super().compute(batch)

    def observe(self, batch: TransitionBatch, rewards: np.ndarray) -> None:
        import time

        time.sleep(0.01)


@pytest.mark.parametrize("defer", [False, True])
def test_time_in_the_reward_module_is_counted(defer: bool) -> None:
    """``reward_s`` counts what the module's calls take (scoring and observing), per step or
    deferred to the flush; the env's own stepping is not in it."""
    venv = count_venv(2)
    wrapped = RewardVecEnvWrapper(venv, Slow(venv.observation_space, venv.action_space),
                                  defer=defer)
    wrapped.reset()
    for _ in range(5):
        wrapped.step(np.zeros((2, 1), np.float32))
    if defer:
        assert wrapped.reward_s < 0.02  # nothing scored yet
        wrapped.flush()
    # per step: 5 x (20 + 10) ms; deferred: one 20 ms call, then 5 observed steps of 10 ms
    assert wrapped.reward_s >= (0.07 if defer else 0.15)
