"""``reward_timing``: a rollout's learned rewards computed in one call at its end."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from omegaconf import DictConfig
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from test_wrappers import count_venv

from rewardlearn.agents import defer_rewards
from rewardlearn.cli.checks import SettingsError, validate_settings
from rewardlearn.rewards.base import RewardModel, RewardOutput, TransitionBatch
from rewardlearn.wrappers.vec import (
    LEARNED_EPISODE_KEY,
    DeferredRewardCallback,
    RewardLoggingCallback,
    RewardVecEnvWrapper,
)


class Tracked(RewardModel):
    """A deterministic reward of (s, a, s'); records what it observes, in order."""

    name = "tracked"
    deferrable = True

    def __init__(self, obs_space: gym.Space, act_space: gym.Space) -> None:
        super().__init__(obs_space, act_space)
        self.calls = 0
        self.observed: list[tuple[np.ndarray, np.ndarray]] = []

    def compute(self, batch: TransitionBatch) -> RewardOutput:
        self.calls += 1
        nxt, obs = np.asarray(batch.next_obs), np.asarray(batch.obs)
        r = nxt[:, 0] - 0.5 * obs[:, -1] + np.asarray(batch.acts)[:, 0] ** 2
        return RewardOutput(r, {"first": nxt[:, 0]})

    def observe(self, batch: TransitionBatch, rewards: np.ndarray) -> None:
        self.observed.append((np.asarray(batch.next_obs)[:, 0].copy(), rewards.copy()))


class Capture(BaseCallback):
    """Copies the first rollout's buffer after every other callback's rollout end."""

    def __init__(self) -> None:
        super().__init__()
        self.got: dict[str, np.ndarray] = {}

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        if not self.got:
            buf = self.model.rollout_buffer
            self.got = {k: getattr(buf, k).copy() for k in ("rewards", "advantages", "returns",
                                                            "actions")}


def _first_rollout(defer: bool, mode: str) -> tuple[dict[str, np.ndarray], Tracked]:
    venv = make_vec_env("Pendulum-v1", n_envs=2, seed=3)  # 200-step time limit: truncations
    model = Tracked(venv.observation_space, venv.action_space)
    wrapped = RewardVecEnvWrapper(venv, model, mode=mode, weight=0.5, defer=defer)
    agent = PPO("MlpPolicy", wrapped, n_steps=256, batch_size=128, n_epochs=1, seed=3,
                device="cpu")
    capture = Capture()
    first = DeferredRewardCallback() if defer else RewardLoggingCallback()
    agent.learn(512, callback=[first, capture])  # one rollout
    return capture.got, model


@pytest.mark.parametrize("mode", ["replace", "add"])
def test_rollout_timing_gives_ppo_the_per_step_rewards_and_advantages(mode: str) -> None:
    step, step_model = _first_rollout(False, mode)
    roll, roll_model = _first_rollout(True, mode)
    np.testing.assert_array_equal(roll["actions"], step["actions"])  # the same rollout
    for key in ("rewards", "advantages", "returns"):  # incl. SB3's time-limit bootstrap
        np.testing.assert_allclose(roll[key], step[key], rtol=1e-5, atol=1e-5, err_msg=key)
    assert roll_model.calls == 1 and step_model.calls == 256  # one call for the rollout
    assert len(roll_model.observed) == len(step_model.observed) == 256  # every step, in order
    for (a, ra), (b, rb) in zip(roll_model.observed, step_model.observed, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
        np.testing.assert_allclose(ra, rb, rtol=1e-5, atol=1e-6)


def test_flush_computes_every_deferred_step_and_reports_its_episodes() -> None:
    venv = count_venv(2, max_steps=5)  # CountEnv: obs t, reward t; episode 0 ends at t = 3
    model = Tracked(venv.observation_space, venv.action_space)
    wrapped = RewardVecEnvWrapper(venv, model, mode="add", weight=2.0, defer=True)
    wrapped.reset()
    infos_seen, ts = [], [1, 2, 3, 1, 2, 3, 4]
    for t in ts:
        _, rew, _, infos = wrapped.step(np.zeros((2, 1), np.float32))
        np.testing.assert_allclose(rew, [t, t])  # add mode: the env's part alone, for now
        assert not any("learned_reward" in i for i in infos)
        infos_seen.append(infos)
    assert wrapped.pending == 7 and model.calls == 0 and not model.observed
    flushed = wrapped.flush()
    assert wrapped.pending == 0 and model.calls == 1
    assert flushed.learned.shape == flushed.delta.shape == (7, 2)
    np.testing.assert_allclose(flushed.delta, 2.0 * flushed.learned)
    np.testing.assert_allclose(flushed.signals["first"][:, 0], ts)
    assert [float(o[0][0]) for o in model.observed] == ts  # observed step by step, in order
    assert infos_seen[2][0][LEARNED_EPISODE_KEY]["l"] == 3  # the termination at t = 3
    assert len(flushed.episodes) == 2
    assert infos_seen[0][1]["learned_reward"] == pytest.approx(float(flushed.learned[0, 1]))
    assert wrapped.flush().learned.shape == (0, 2)


def test_a_module_that_changes_within_a_rollout_cannot_defer() -> None:
    class Online(Tracked):
        deferrable = False

    venv = count_venv(1)
    with pytest.raises(ValueError, match="deferrable"):
        RewardVecEnvWrapper(venv, Online(venv.observation_space, venv.action_space), defer=True)


def test_reward_timing_resolves_per_agent_and_module() -> None:
    assert defer_rewards("auto", "ppo", "m", True)
    assert not defer_rewards("auto", "sac", "m", True)
    assert not defer_rewards("auto", "ppo", "m", False)
    assert not defer_rewards("step", "ppo", "m", True)
    assert defer_rewards("rollout", "ppo", "m", True)
    with pytest.raises(ValueError, match="sac is off-policy"):
        defer_rewards("rollout", "sac", "m", True)
    with pytest.raises(ValueError, match="module m changes its reward within a rollout"):
        defer_rewards("rollout", "ppo", "m", False)
    with pytest.raises(ValueError, match="valid choices: auto, step, rollout"):
        defer_rewards("later", "ppo", "m", True)


def test_reward_timing_setting_is_checked_before_anything_runs(
        compose_cfg: Callable[..., DictConfig]) -> None:
    with pytest.raises(SettingsError, match="reward_timing='rollout': needs an on-policy agent"):
        validate_settings(compose_cfg("agent=sac", "reward_timing=rollout"))
    with pytest.raises(SettingsError, match="reward_timing='sometimes'"):
        validate_settings(compose_cfg("reward_timing=sometimes"))
    validate_settings(compose_cfg("agent=ppo", "reward_timing=rollout"))


def test_preference_and_drs_defer_unless_their_reward_moves_within_a_rollout() -> None:
    from rewardlearn.drs.reward import DrSReward
    from rewardlearn.preference.reward import PreferenceReward

    space = gym.spaces.Box(-1, 1, (3,), np.float32)
    kw: dict[str, Any] = {"ensemble_size": 1, "hidden_sizes": [8]}
    assert PreferenceReward(space, space, **kw).deferrable
    assert not PreferenceReward(space, space, unsup_steps=100, **kw).deferrable  # entropy bonus
    assert DrSReward(space, space, num_stages=2).deferrable


def _normalized_rollout(defer: bool) -> tuple[np.ndarray, Any]:
    from rewardlearn.wrappers.normalize import AgentNormalize

    venv = make_vec_env("Pendulum-v1", n_envs=2, seed=3)
    model = Tracked(venv.observation_space, venv.action_space)
    wrapped = RewardVecEnvWrapper(venv, model, mode="replace", defer=defer)
    norm = AgentNormalize(wrapped, norm_obs=False, norm_reward=True, gamma=0.99,
                          defer_rewards=defer)
    agent = PPO("MlpPolicy", norm, n_steps=256, batch_size=128, n_epochs=1, seed=3,
                device="cpu")
    stats: dict[str, Any] = {}

    class Stats(Capture):
        def _on_rollout_end(self) -> None:
            super()._on_rollout_end()
            if not stats:
                rms = self.model.get_vec_normalize_env().ret_rms
                stats.update(mean=rms.mean, var=rms.var, count=rms.count)

    capture = Stats()
    first = DeferredRewardCallback() if defer else RewardLoggingCallback()
    agent.learn(512, callback=[first, capture])
    return capture.got["rewards"], stats


def test_reward_normalisation_learns_from_the_deferred_rewards_not_the_placeholders() -> None:
    """``agent.normalize_reward`` with ``reward_timing=rollout``: the return statistics after a
    rollout equal those of the same rollout rewarded step by step, and the buffer holds the
    rewards on that scale (the first rollout's scale is VecNormalize's initial one)."""
    _, step_stats = _normalized_rollout(False)
    rewards, roll_stats = _normalized_rollout(True)
    assert roll_stats["count"] == step_stats["count"] == 1e-4 + 512
    np.testing.assert_allclose(roll_stats["mean"], step_stats["mean"], rtol=1e-6)
    np.testing.assert_allclose(roll_stats["var"], step_stats["var"], rtol=1e-6)
    raw, _ = _first_rollout(True, "replace")
    np.testing.assert_allclose(rewards, np.clip(raw["rewards"], -10, 10), rtol=1e-5, atol=1e-5)


def test_the_saved_normaliser_is_a_plain_vecnormalize(tmp_path: Any) -> None:
    import pickle

    from stable_baselines3.common.vec_env import VecNormalize

    from rewardlearn.wrappers.normalize import AgentNormalize

    norm = AgentNormalize(make_vec_env("Pendulum-v1", n_envs=2, seed=0), norm_reward=True,
                          defer_rewards=True)
    norm.reset()
    norm.step(np.zeros((2, 1), np.float32))
    norm.update_rollout(np.ones((1, 2), np.float32))
    norm.save(str(tmp_path / "vecnormalize.pkl"))
    loaded = pickle.loads((tmp_path / "vecnormalize.pkl").read_bytes())
    assert type(loaded) is VecNormalize and loaded.norm_reward
    np.testing.assert_allclose(loaded.ret_rms.var, norm.ret_rms.var)
    VecNormalize.load(str(tmp_path / "vecnormalize.pkl"), make_vec_env("Pendulum-v1", n_envs=2))
