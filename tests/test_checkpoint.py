"""Reward checkpoints: round trip, and refusal of mismatched spaces."""

from __future__ import annotations

import os
import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from rewardlearn.rewards import (
    MLPReward,
    SpaceMismatchError,
    TransitionBatch,
    load_reward_model,
    save_reward_model,
)


def _batch(n: int, obs_dim: int, act_dim: int, seed: int = 0) -> TransitionBatch:
    rng = np.random.default_rng(seed)
    return TransitionBatch.from_arrays(
        rng.normal(size=(n, obs_dim)),
        rng.uniform(-1, 1, (n, act_dim)),
        rng.normal(size=(n, obs_dim)),
    )


def test_round_trip_keeps_outputs(tmp_path: Path) -> None:
    env = gym.make("Pendulum-v1")
    model = MLPReward(env.observation_space, env.action_space, hidden_sizes=(16, 16), seed=3)
    model.fit_normalizer(_batch(64, 3, 1, seed=1))
    path = save_reward_model(model, tmp_path / "r.pt")
    loaded = load_reward_model(path, env.observation_space, env.action_space)
    b = _batch(10, 3, 1)
    assert np.allclose(model(b), loaded(b))


def test_mismatched_observation_space_is_refused(tmp_path: Path) -> None:
    pend = gym.make("Pendulum-v1")
    path = save_reward_model(MLPReward(pend.observation_space, pend.action_space,
                                       hidden_sizes=(4,)), tmp_path / "r.pt")
    hopper = gym.make("Hopper-v5")
    with pytest.raises(SpaceMismatchError, match=r"observation space.*\(3,\).*\(11,\)"):
        load_reward_model(path, hopper.observation_space, pend.action_space)
    with pytest.raises(SpaceMismatchError, match=r"action space.*\(1,\).*\(3,\)"):
        load_reward_model(path, pend.observation_space, hopper.action_space)


def test_missing_or_foreign_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"reward_model\.pt"):
        load_reward_model(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    import torch

    torch.save({"hello": 1}, bad)
    with pytest.raises(ValueError, match=r"bad\.pt: not a rewardlearn checkpoint \(expected "
                                         r"format 'rewardlearn\.reward_model/1', found None\)"):
        load_reward_model(bad)


@pytest.mark.parametrize("damage", ["truncated", "random bytes", "empty"])
def test_unreadable_file_is_named(tmp_path: Path, damage: str) -> None:
    env = gym.make("Pendulum-v1")
    path = save_reward_model(MLPReward(env.observation_space, env.action_space,
                                       hidden_sizes=(4,)), tmp_path / "reward_model.pt")
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "random bytes": os.urandom(256),
                      "empty": b""}[damage])
    with pytest.raises(ValueError, match=rf"^cannot read reward checkpoint "
                                         rf"{re.escape(str(path))}: not a rewardlearn "
                                         r"checkpoint \(\w+: .+\); expected a reward_model\.pt"):
        load_reward_model(path, env.observation_space, env.action_space)


def test_save_leaves_no_temp_file_and_replaces_atomically(tmp_path: Path) -> None:
    env = gym.make("Pendulum-v1")
    model = MLPReward(env.observation_space, env.action_space, hidden_sizes=(4,))
    save_reward_model(model, tmp_path / "r.pt")
    save_reward_model(model, tmp_path / "r.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.pt"]


def test_dict_observation_features() -> None:
    space = gym.spaces.Dict({
        "state": gym.spaces.Box(-1, 1, (4,), np.float32),
        "pixels": gym.spaces.Box(0, 255, (8, 8, 3), np.uint8),
    })
    act = gym.spaces.Box(-1, 1, (2,), np.float32)
    model = MLPReward(space, act, hidden_sizes=(8,))
    obs = {"state": np.zeros((3, 4), np.float32), "pixels": np.zeros((3, 8, 8, 3), np.uint8)}
    out = model(TransitionBatch.from_arrays(obs, np.zeros((3, 2)), obs))
    assert out.shape == (3,)


def test_a_checkpoint_saved_before_the_layout_move_still_loads() -> None:
    """``tests/data/legacy_preference_reward_model.pt`` was saved by main before the reward
    modules moved to their method folders (its class is ``rewardlearn.rewards.preference``)."""
    import gymnasium as gym

    from rewardlearn.preference.reward import PreferenceReward
    from rewardlearn.rewards.base import TransitionBatch
    from rewardlearn.rewards.checkpoint import read_checkpoint

    data = Path(__file__).parent / "data"
    path = data / "legacy_preference_reward_model.pt"
    assert read_checkpoint(path)["class"].startswith("rewardlearn.rewards.preference:")
    env = gym.make("Pendulum-v1")
    model = load_reward_model(path, env.observation_space, env.action_space)
    assert isinstance(model, PreferenceReward)
    expected = np.load(data / "legacy_preference_reward_model_expected.npz")
    n = len(expected["obs"])
    batch = TransitionBatch.from_arrays(expected["obs"], expected["acts"], expected["obs"],
                                        np.zeros(n, bool), np.zeros(n, bool))
    # atol: float32 rounding (~3e-8 here) of the stacked per-step path, RewardEnsemble.predict
    np.testing.assert_allclose(model(batch), expected["rewards"], rtol=1e-6, atol=1e-6)
