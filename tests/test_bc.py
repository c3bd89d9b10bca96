"""Behaviour-cloning warm start: the fit, RA-BC weighting, space checks, train.py wiring."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import DictConfig
from stable_baselines3 import PPO, SAC

from rewardlearn.bc import BCConfig, demo_arrays, pretrain_policy, warm_start
from rewardlearn.cli.collect import main as collect_main
from rewardlearn.cli.train import run
from rewardlearn.demos import load_demos


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bc") / "demos"
    collect_main(["env=pick_place", "n_episodes=6", "noise=0.3", f"out={out}"])
    return out


def _pendulum_data(n: int = 512) -> tuple[np.ndarray, np.ndarray]:
    obs = np.random.default_rng(0).uniform(-1, 1, size=(n, 3)).astype(np.float32)
    return obs, (1.5 * np.tanh(2 * obs[:, :1] - obs[:, 1:2])).astype(np.float32)


def test_ppo_mean_action_fits_demos_and_log_std_is_set() -> None:
    agent = PPO("MlpPolicy", gym.make("Pendulum-v1"), seed=0)
    obs, act = _pendulum_data()
    stats = pretrain_policy(agent, obs, act, epochs=150, lr=3e-3, log_std=-1.5)
    pred, _ = agent.predict(obs, deterministic=True)
    assert np.mean((pred - act) ** 2) < 0.02 < stats["loss_first"]
    assert torch.allclose(agent.policy.log_std, torch.full_like(agent.policy.log_std, -1.5))


def test_sac_actions_are_fitted_in_the_env_scale() -> None:
    agent = SAC("MlpPolicy", gym.make("Pendulum-v1"), seed=0, learning_starts=0)
    obs, act = _pendulum_data()
    pretrain_policy(agent, obs, act, epochs=150, lr=3e-3)
    pred, _ = agent.predict(obs, deterministic=True)
    assert np.mean((pred - act) ** 2) < 0.05


def test_zero_weight_samples_are_ignored() -> None:
    agent = PPO("MlpPolicy", gym.make("Pendulum-v1"), seed=0)
    obs, act = _pendulum_data()
    obs2 = np.concatenate([obs, obs])
    act2 = np.concatenate([act, -act])
    w = np.concatenate([np.ones(len(obs)), np.zeros(len(obs))]).astype(np.float32)
    pretrain_policy(agent, obs2, act2, w, epochs=150, lr=3e-3)
    pred, _ = agent.predict(obs, deterministic=True)
    assert np.mean((pred - act) ** 2) < 0.02
    assert np.mean((pred + act) ** 2) > 0.5


def test_demo_arrays_pair_actions_with_their_observations(demos: Path) -> None:
    env = gym.make("rewardlearn/PickPlace-v0")
    obs, act, w = demo_arrays(str(demos), env.observation_space, env.action_space)
    eps = load_demos(demos)
    assert len(obs) == len(act) == len(w) == sum(len(ep) for ep in eps)
    np.testing.assert_array_equal(obs[: len(eps[0])], eps[0].observations[:-1])
    np.testing.assert_array_equal(act[: len(eps[0])], eps[0].actions)
    assert np.all(w == 1)
    obs2, _, _ = demo_arrays(str(demos), env.observation_space, env.action_space,
                             max_episodes=2)
    assert len(obs2) == len(eps[0]) + len(eps[1])
    both, _, _ = demo_arrays(f"{demos},{demos}", env.observation_space, env.action_space)
    np.testing.assert_array_equal(both, np.concatenate([obs, obs]))


def test_demos_of_another_env_are_refused(demos: Path) -> None:
    env = gym.make("Pendulum-v1")
    with pytest.raises(ValueError, match=r"does not match the env.*rewardlearn-collect"):
        demo_arrays(str(demos), env.observation_space, env.action_space)
    with pytest.raises(ValueError, match="Box observation space"):
        demo_arrays(str(demos), gym.spaces.Dict({"a": env.observation_space}),
                    env.action_space)


def test_rabc_weights_file_is_checked(demos: Path, tmp_path: Path) -> None:
    env = gym.make("rewardlearn/PickPlace-v0")
    space = (env.observation_space, env.action_space)
    with pytest.raises(FileNotFoundError, match="train_progress rabc"):
        demo_arrays(str(demos), *space, weights=str(tmp_path / "missing.npz"))
    eps = load_demos(demos)
    good = {f"ep_{i}": np.linspace(0, 1, len(ep)) for i, ep in enumerate(eps)}
    np.savez(tmp_path / "w.npz", **good)
    _, _, w = demo_arrays(str(demos), *space, weights=str(tmp_path / "w.npz"))
    np.testing.assert_allclose(w, np.concatenate(list(good.values())), atol=1e-6)
    np.savez(tmp_path / "short.npz", **{k: v[:-1] for k, v in good.items()})
    with pytest.raises(ValueError, match="compute it on the same demos"):
        demo_arrays(str(demos), *space, weights=str(tmp_path / "short.npz"))


def test_warm_start_fixes_normalisation_at_the_demo_statistics(demos: Path) -> None:
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    venv = VecNormalize(make_vec_env("rewardlearn/PickPlace-v0", n_envs=1), norm_reward=False)
    agent = PPO("MlpPolicy", venv, seed=0)
    summary = warm_start(agent, BCConfig(demos=str(demos), epochs=2, min_obs_std=0.05), venv)
    obs, _, _ = demo_arrays(str(demos), venv.observation_space, venv.action_space)
    np.testing.assert_allclose(venv.obs_rms.mean, obs.mean(0), rtol=1e-5, atol=1e-6)
    assert np.all(venv.obs_rms.var >= 0.05**2 - 1e-7)
    assert not venv.training and summary["samples"] == len(obs)
    with pytest.raises(ValueError, match="obs_norm"):
        warm_start(agent, BCConfig(demos=str(demos), obs_norm="frozen"), venv)


def test_train_run_with_bc_warm_start(compose_cfg: Callable[..., DictConfig], demos: Path,
                                      tmp_path: Path) -> None:
    cfg = compose_cfg("env=pick_place", "agent=ppo", "reward=env", "total_timesteps=64",
                      "+agent.kwargs.n_steps=64", "+agent.kwargs.batch_size=32",
                      "+agent.kwargs.n_epochs=1", "eval.n_episodes=1", "video.enabled=false",
                      "progress_bar=false", f"bc.demos={demos}", "bc.epochs=3")
    summary = run(cfg, tmp_path / "run")
    assert summary["bc"]["demos"] == str(demos)
    assert summary["bc"]["loss_last"] < summary["bc"]["loss_first"]
    with pytest.raises(ValueError, match="unknown bc setting"):
        run(compose_cfg("env=pick_place", "agent=ppo", "reward=env", f"bc.demos={demos}",
                        "+bc.epoch=3", "video.enabled=false"), tmp_path / "bad")


def test_missing_demos_say_how_to_make_them(compose_cfg: Callable[..., DictConfig],
                                            tmp_path: Path) -> None:
    missing = tmp_path / "no_demos"
    cfg = compose_cfg("env=pick_place", "agent=ppo", "reward=env", f"bc.demos={missing}",
                      "video.enabled=false")
    with pytest.raises(FileNotFoundError) as err:
        run(cfg, tmp_path / "run")
    message = str(err.value)
    assert message.startswith(f"bc.demos={missing}: demo dataset '{missing}' not found")
    assert f"rewardlearn-collect env=<env> n_episodes=20 out={missing}" in message
    assert "download" not in message
    assert not (tmp_path / "run" / "tb").exists()  # stopped before the agent was built
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"holds no Minari dataset.*rewardlearn-collect"):
        load_demos(tmp_path / "empty")


def test_total_timesteps_0_with_demos_is_the_cloned_policy_alone(
        compose_cfg: Callable[..., DictConfig], demos: Path, tmp_path: Path) -> None:
    """``total_timesteps=0`` with ``bc.demos``: a run of the cloned policy, no RL (what
    best-of-n selection and ``rewardlearn-action-pairs`` start from); without demos, 0 is
    refused before anything runs."""
    from rewardlearn.agents import load_run_policy
    from rewardlearn.cli.checks import SettingsError

    common = ("env=pick_place", "agent=ppo", "reward=env", "eval.n_episodes=1",
              "video.enabled=false", "progress_bar=false")
    summary = run(compose_cfg(*common, "total_timesteps=0", f"bc.demos={demos}",
                              "bc.epochs=3"), tmp_path / "bc")
    assert summary["total_timesteps"] == 0 and summary["bc"]["loss_last"] < \
        summary["bc"]["loss_first"]
    policy = load_run_policy(tmp_path / "bc")  # saved with its demo-statistics normaliser
    obs, _, _ = demo_arrays(str(demos), policy.agent.observation_space,
                            policy.agent.action_space)
    assert np.asarray(policy.predict(obs[:3], deterministic=True)[0]).shape == (3, 4)
    with pytest.raises(SettingsError, match="total_timesteps=0: must be an integer >= 1"):
        run(compose_cfg(*common, "total_timesteps=0"), tmp_path / "rl")
    assert not (tmp_path / "rl").exists()
