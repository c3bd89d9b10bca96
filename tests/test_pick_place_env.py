"""Tests of rewardlearn/PickPlace-v0 and its scripted expert."""

from __future__ import annotations

import doctest
import time
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import rewardlearn_envs
from gymnasium.utils.env_checker import check_env
from rewardlearn_envs import (
    PICK_PLACE_ID,
    PICK_PLACE_MAX_STEPS,
    STATE_DIM,
    STATE_LAYOUT,
    PickPlaceEnv,
    PickPlaceExpert,
    expert_for,
)
from rewardlearn_envs import expert as expert_module
from rewardlearn_envs import pick_place as pick_place_module
from rewardlearn_envs.expert import success_rate

OBS_MODES = ("state", "pixels", "state_pixels")
INFO_TYPES: dict[str, type] = {
    "stage": int,
    "subtask": str,
    "num_stages": int,
    "is_success": bool,
    "success": float,
    "progress": float,
    "dense_reward": float,
    "sparse_reward": float,
    "grasped": bool,
}


def run_expert(
    env: gym.Env[Any, Any], seed: int, noise: float = 0.0
) -> tuple[list[dict[str, Any]], list[float], bool, bool]:
    """One expert episode: (infos incl. reset, rewards, terminated, truncated)."""
    obs, info = env.reset(seed=seed)
    expert = PickPlaceExpert(env, noise=noise, seed=seed)
    infos, rewards = [info], []
    terminated = truncated = False
    while not (terminated or truncated):
        obs, reward, terminated, truncated, info = env.step(expert(obs))
        infos.append(info)
        rewards.append(float(reward))
    return infos, rewards, terminated, truncated


@pytest.fixture
def env() -> Any:
    e = gym.make(PICK_PLACE_ID)
    yield e
    e.close()


def _messages(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught]


@pytest.mark.parametrize("obs_mode", OBS_MODES)
def test_env_checker_unwrapped(obs_mode: str) -> None:
    env = gym.make(PICK_PLACE_ID, obs_mode=obs_mode, width=32, height=32, render_mode="rgb_array")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    assert _messages(caught) == []


@pytest.mark.parametrize("obs_mode", OBS_MODES)
def test_env_checker_wrapped(obs_mode: str) -> None:
    env = gym.make(PICK_PLACE_ID, obs_mode=obs_mode, width=32, height=32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    # The only remark is gymnasium's own note that a gym.make env is wrapped.
    assert [m for m in _messages(caught) if "different from the unwrapped" not in m] == []


def test_spaces_and_layout(env: gym.Env[Any, Any]) -> None:
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    assert env.observation_space.shape == (STATE_DIM,)
    assert env.observation_space.dtype == np.float32
    obs, _ = env.reset(seed=0)
    base = env.unwrapped
    assert isinstance(base, PickPlaceEnv)
    np.testing.assert_allclose(obs[STATE_LAYOUT["gripper_pos"]], base.gripper_pos, atol=1e-6)
    np.testing.assert_allclose(obs[STATE_LAYOUT["cube_pos"]], base.cube_pos, atol=1e-6)
    np.testing.assert_allclose(obs[STATE_LAYOUT["target_pos"]], base.target_pos, atol=1e-6)
    assert base.SUBTASKS == ("reach", "grasp", "transport", "place")


def test_reset_determinism(env: gym.Env[Any, Any]) -> None:
    actions = np.random.default_rng(0).uniform(-1, 1, size=(30, 4)).astype(np.float32)

    def rollout(seed: int) -> np.ndarray:
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for a in actions:
            obs, *_ = env.step(a)
            out.append(obs)
        return np.stack(out)

    first, second, other = rollout(7), rollout(7), rollout(8)
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first[0], other[0])


def test_reset_separates_cube_and_target(env: gym.Env[Any, Any]) -> None:
    for seed in range(50):
        env.reset(seed=seed)
        base = env.unwrapped
        assert isinstance(base, PickPlaceEnv)
        gap = np.linalg.norm(base.cube_pos[:2] - base.target_pos[:2])
        assert gap >= pick_place_module.MIN_SEPARATION


def test_reset_options_fix_positions(env: gym.Env[Any, Any]) -> None:
    env.reset(seed=0, options={"cube_xy": [0.1, -0.1], "target_xy": [-0.1, 0.1]})
    base = env.unwrapped
    assert isinstance(base, PickPlaceEnv)
    np.testing.assert_allclose(base.cube_pos[:2], [0.1, -0.1])
    np.testing.assert_allclose(base.target_pos[:2], [-0.1, 0.1])


def test_info_keys_and_types(env: gym.Env[Any, Any]) -> None:
    _, info = env.reset(seed=0)
    infos = [info]
    for _ in range(5):
        infos.append(env.step(env.action_space.sample())[-1])
    for info in infos:
        for key, typ in INFO_TYPES.items():
            assert type(info[key]) is typ, (key, type(info[key]))
        assert info["num_stages"] == 4
        assert info["subtask"] == PickPlaceEnv.SUBTASKS[info["stage"]]
        assert info["success"] == float(info["is_success"])
        assert info["sparse_reward"] == info["success"]


def test_truncation_only_at_time_limit(env: gym.Env[Any, Any]) -> None:
    env.reset(seed=0)
    hold = np.zeros(4, dtype=np.float32)
    for t in range(1, PICK_PLACE_MAX_STEPS + 1):
        _, _, terminated, truncated, info = env.step(hold)
        assert not terminated
        assert truncated == (t == PICK_PLACE_MAX_STEPS)
        assert not info["is_success"]


def test_unwrapped_env_never_truncates() -> None:
    base = PickPlaceEnv()
    base.reset(seed=0)
    for _ in range(PICK_PLACE_MAX_STEPS + 20):
        _, _, terminated, truncated, _ = base.step(np.zeros(4, dtype=np.float32))
        assert not truncated and not terminated
    base.close()


def test_expert_episode_terminates_on_success_with_monotone_stages(
    env: gym.Env[Any, Any],
) -> None:
    for seed in range(5):
        infos, _, terminated, truncated = run_expert(env, seed)
        stages = [i["stage"] for i in infos]
        assert terminated and not truncated
        assert infos[-1]["is_success"] and not any(i["is_success"] for i in infos[:-1])
        assert stages[0] == 0 and stages[-1] == 3
        assert np.all(np.diff(stages) >= 0)
        assert set(stages) == {0, 1, 2, 3}


def test_expert_success_rate(env: gym.Env[Any, Any]) -> None:
    clean, clean_len = success_rate(env, n_episodes=40, noise=0.0, seed=0)
    noisy, noisy_len = success_rate(env, n_episodes=40, noise=0.1, seed=1000)
    print(f"expert success over 40 seeds: noise 0: {clean:.0%} ({clean_len:.1f} steps), "
          f"noise 0.1: {noisy:.0%} ({noisy_len:.1f} steps)")  # fmt: skip
    assert clean >= 0.95
    assert noisy >= 0.9


def test_sparse_reward_is_one_exactly_at_success() -> None:
    env = gym.make(PICK_PLACE_ID, reward_type="sparse")
    infos, rewards, terminated, _ = run_expert(env, seed=3)
    assert terminated
    assert rewards[-1] == 1.0 and all(r == 0.0 for r in rewards[:-1])
    assert [i["sparse_reward"] for i in infos[1:]] == rewards
    env.close()


def test_dense_reward_is_staged(env: gym.Env[Any, Any]) -> None:
    by_stage: dict[int, list[float]] = {k: [] for k in range(4)}
    for seed in range(6):
        infos, rewards, _, _ = run_expert(env, seed, noise=0.2 if seed % 2 else 0.0)
        assert rewards == [i["dense_reward"] for i in infos[1:]]
        for info in infos:
            k, r = info["stage"], info["dense_reward"]
            if info["is_success"]:
                assert r == 0.0
                continue
            # Stage k earns in [k/K - 1, (k+1)/K - 1): later stages always earn more.
            assert k / 4 - 1 <= r < (k + 1) / 4 - 1
            by_stage[k].append(r)
    means = [float(np.mean(by_stage[k])) for k in range(4)]
    assert means == sorted(means)


def test_dropping_the_cube_lowers_the_stage(env: gym.Env[Any, Any]) -> None:
    obs, info = env.reset(seed=2)
    expert = PickPlaceExpert(env)
    while info["stage"] < 2:
        obs, _, _, _, info = env.step(expert(obs))
    for _ in range(10):
        obs, _, terminated, _, info = env.step(np.array([0, 0, 1, -1], dtype=np.float32))
        assert not terminated
    assert info["stage"] == 0 and not info["grasped"]


def test_dropping_the_cube_onto_the_target_is_placing(env: gym.Env[Any, Any]) -> None:
    """Let go high above the disc: the stage stays 'place' while it falls, then success."""
    obs, info = env.reset(seed=0)
    expert = PickPlaceExpert(env)
    base = env.unwrapped
    assert isinstance(base, PickPlaceEnv)
    released = False
    rewards: list[float] = []
    terminated = truncated = False
    while not (terminated or truncated):
        action = expert(obs)
        near = np.linalg.norm(base.target_pos[:2] - base.cube_pos[:2]) < 0.01
        if released or (base.grasped and near and base.cube_pos[2] > 0.05):
            action[3], released = -1.0, True
        obs, reward, terminated, truncated, info = env.step(action)
        if released:
            assert info["stage"] == 3, "a cube falling onto the target is being placed"
            rewards.append(float(reward))
    assert released and terminated and info["is_success"]
    assert rewards == sorted(rewards), "the dense reward rises as the cube falls onto the disc"


def test_lowering_over_the_target_pays_from_any_height(env: gym.Env[Any, Any]) -> None:
    """In 'place', every step down raises the dense reward, also far above carry height."""
    obs, info = env.reset(seed=3)
    expert = PickPlaceExpert(env)
    base = env.unwrapped
    assert isinstance(base, PickPlaceEnv)
    while info["stage"] < 3:
        obs, _, _, _, info = env.step(expert(obs))
    for _ in range(8):  # up to the ceiling, holding the cube
        obs, _, _, _, info = env.step(np.array([0, 0, 1, 1], dtype=np.float32))
    assert info["stage"] == 3 and base.cube_pos[2] > 0.15
    rewards = []
    for _ in range(5):
        obs, reward, _, _, info = env.step(np.array([0, 0, -1, 1], dtype=np.float32))
        rewards.append(float(reward))
    assert info["stage"] == 3 and np.all(np.diff(rewards) > 0)


def test_state_progress_matches_info() -> None:
    """``state_progress(obs)`` equals the env's ``info["progress"]``, on and off the expert."""
    env = gym.make(PICK_PLACE_ID)
    got, want = [], []
    for k, noise in enumerate((0.0, 1.0, 3.0)):
        obs, info = env.reset(seed=k)
        expert = PickPlaceExpert(env, noise=noise, seed=k)
        got.append(obs)
        want.append(info["progress"])
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(expert(obs))
            got.append(obs)
            want.append(info["progress"])
            done = terminated or truncated
    env.close()
    assert max(want) == 1.0 and min(want) < 0.25
    np.testing.assert_allclose(pick_place_module.state_progress(np.array(got)), want, atol=1e-6)
    assert pick_place_module.state_progress(got[0]).shape == (1,)


def test_pixels_and_render() -> None:
    env = gym.make(PICK_PLACE_ID, obs_mode="state_pixels", width=40, height=30)
    env_r = gym.make(PICK_PLACE_ID, render_mode="rgb_array", render_width=64, render_height=48)
    obs, _ = env.reset(seed=0)
    assert obs["pixels"].shape == (30, 40, 3) and obs["pixels"].dtype == np.uint8
    assert obs["state"].shape == (STATE_DIM,)
    first = obs["pixels"]
    for _ in range(5):
        obs, *_ = env.step(np.array([1, 1, -1, 0], dtype=np.float32))
    assert not np.array_equal(first, obs["pixels"])
    env_r.reset(seed=0)
    frame = env_r.render()
    assert isinstance(frame, np.ndarray) and frame.shape == (48, 64, 3) and frame.dtype == np.uint8
    no_render = PickPlaceEnv()
    no_render.reset(seed=0)
    assert no_render.render() is None
    for e in (env, env_r, no_render):
        e.close()
        e.close()


def test_expert_for() -> None:
    env = gym.make(PICK_PLACE_ID, obs_mode="pixels", width=16, height=16)
    assert isinstance(expert_for(env), PickPlaceExpert)
    env.close()
    other = gym.make("CartPole-v1")
    with pytest.raises(ValueError, match="pick_place"):
        expert_for(other)
    with pytest.raises(TypeError):
        PickPlaceExpert(other)


def test_bad_arguments() -> None:
    bad: Any = "unknown"
    with pytest.raises(ValueError, match="obs_mode"):
        PickPlaceEnv(obs_mode=bad)
    with pytest.raises(ValueError, match="reward_type"):
        PickPlaceEnv(reward_type=bad)
    with pytest.raises(ValueError, match="render_mode"):
        PickPlaceEnv(render_mode="human")


def test_docstring_examples() -> None:
    for module in (pick_place_module, expert_module, rewardlearn_envs):
        result = doctest.testmod(module)
        assert result.failed == 0


def test_speed(env: gym.Env[Any, Any]) -> None:
    """Prints env steps/s (state obs, wrapped by gym.make) and pixel-obs steps/s at 84 px."""
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(3000, 4)).astype(np.float32)
    start = time.perf_counter()
    for a in actions:
        if any(env.step(a)[2:4]):
            env.reset()
    state_rate = len(actions) / (time.perf_counter() - start)
    pix = gym.make(PICK_PLACE_ID, obs_mode="pixels")
    pix.reset(seed=0)
    start = time.perf_counter()
    for a in actions[:100]:
        pix.step(a)
    pixel_rate = 100 / (time.perf_counter() - start)
    pix.close()
    print(f"PickPlace-v0: {state_rate:.0f} env steps/s (state), {pixel_rate:.0f} steps/s (84 px)")
