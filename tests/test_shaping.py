"""Potential-based shaping: policy invariance, terminal/truncation rules, the per-env cache
under SB3 auto-reset, dynamic potentials, the gamma mismatch warning, checkpoints and
the train.py wiring."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.wrappers import TimeLimit
from omegaconf import DictConfig
from stable_baselines3.common.vec_env import DummyVecEnv
from toy_envs import CountEnv

from rewardlearn.rewards import EnvReward, load_reward_model, save_reward_model
from rewardlearn.rewards.base import RewardModel, RewardOutput, TransitionBatch
from rewardlearn.rewards.checkpoint import SpaceMismatchError
from rewardlearn.shaping import (
    FunctionPotential,
    GammaMismatchWarning,
    Potential,
    ShapedReward,
    build_shaping,
)
from rewardlearn.wrappers import LearnedRewardWrapper, RewardVecEnvWrapper


def count_potential(obs: np.ndarray) -> np.ndarray:
    """Phi for CountEnv obs [t, episode]: non-zero at resets, distinct per episode."""
    obs = np.asarray(obs, dtype=np.float64)
    return 1.0 + obs[:, 0] + 10.0 * obs[:, 1]


def first_coordinate(obs: np.ndarray) -> np.ndarray:
    """Phi = first observation coordinate (used by the train.py wiring tests)."""
    return np.asarray(obs, dtype=np.float64)[:, 0]


# ---------------------------------------------------------------- tabular MDP


def _value_iteration(P: np.ndarray, R: np.ndarray, term: np.ndarray, gamma: float
                     ) -> np.ndarray:
    """Q* for transitions P[s, a, s'], rewards R[s, a, s']; entering a terminal s' ends."""
    Q = np.zeros(P.shape[:2])
    for _ in range(5000):
        V = Q.max(1)
        Q_new = np.einsum("ijk,ijk->ij", P, R + gamma * np.where(term, 0.0, V)[None, None])
        if np.abs(Q_new - Q).max() < 1e-12:
            break
        Q = Q_new
    return Q_new


def _shape_table(R: np.ndarray, term: np.ndarray, phi: np.ndarray, gamma: float) -> np.ndarray:
    """Shaped rewards R'[s, a, s'] computed by ShapedReward on one batch of all triples."""
    S, A, _ = R.shape
    s, a, s2 = (x.reshape(-1) for x in np.meshgrid(range(S), range(A), range(S), indexing="ij"))
    space = gym.spaces.Box(-1e3, 1e3, (1,))
    shaped = ShapedReward(space, space, base=EnvReward(space, space),
                          potential=FunctionPotential(lambda o: phi[o[:, 0].astype(int)]),
                          gamma=gamma)
    batch = TransitionBatch(s[:, None].astype(float), a[:, None].astype(float),
                            s2[:, None].astype(float), terminated=term[s2],
                            truncated=np.zeros(len(s), bool), env_rewards=R[s, a, s2])
    return np.asarray(shaped.compute(batch).rewards).reshape(S, A, S)


@pytest.mark.parametrize("seed", range(5))
def test_tabular_value_iteration_policy_invariance(seed: int) -> None:
    rng = np.random.default_rng(seed)
    S, A, gamma = 7, 3, 0.9
    P = rng.dirichlet(np.ones(S) * 0.5, size=(S, A))
    R = rng.normal(size=(S, A, S))
    term = np.zeros(S, bool)
    term[[S - 2, S - 1]] = True
    phi = rng.normal(scale=5.0, size=S)          # large, random, non-zero at terminal states

    Q = _value_iteration(P, R, term, gamma)
    Q_shaped = _value_iteration(P, _shape_table(R, term, phi, gamma), term, gamma)
    assert np.array_equal(Q.argmax(1), Q_shaped.argmax(1))
    np.testing.assert_allclose(Q_shaped, Q - phi[:, None], atol=1e-5)

    # the check is sharp: keeping Phi at terminal states, or using another gamma, breaks it
    wrong_terminal = R + gamma * phi[None, None, :] - phi[:, None, None]
    assert not np.allclose(_value_iteration(P, wrong_terminal, term, gamma), Q - phi[:, None],
                           atol=1e-3)
    wrong_gamma = _shape_table(R, term, phi, 0.99)
    assert not np.allclose(_value_iteration(P, wrong_gamma, term, gamma), Q - phi[:, None],
                           atol=1e-3)


# ---------------------------------------------------------------- SB3 auto-reset / truncation


def _count_venv(n: int = 2, limit: int = 5) -> DummyVecEnv:
    return DummyVecEnv([lambda: TimeLimit(CountEnv(terminate_at=3), max_episode_steps=limit)
                        for _ in range(n)])


def test_function_potential_offset_and_config() -> None:
    pot = FunctionPotential("rewardlearn_envs.pick_place:state_progress", scale=2.0, offset=1.0)
    env = gym.make("rewardlearn/PickPlace-v0")
    obs, info = env.reset(seed=0)
    env.close()
    assert pot(obs[None])[0] == pytest.approx(2.0 * (info["progress"] - 1.0), abs=1e-6)
    assert pot.config()["offset"] == 1.0


def test_sb3_auto_reset_and_truncation() -> None:
    """CountEnv episodes alternate: terminate at t=3 (even), truncate at t=5 (odd)."""
    gamma = 0.9
    venv = _count_venv()
    base = EnvReward(venv.observation_space, venv.action_space)
    shaped = ShapedReward(venv.observation_space, venv.action_space, base=base,
                          potential=FunctionPotential(count_potential), gamma=gamma)
    wrapped = RewardVecEnvWrapper(venv, shaped)
    current = wrapped.reset().copy()
    seen = {"terminated": 0, "truncated": 0}
    for _ in range(40):
        obs, rew, dones, infos = wrapped.step(np.zeros((2, 1), np.float32))
        for i, info in enumerate(infos):
            truncated = bool(info.get("TimeLimit.truncated", False))
            terminated = bool(dones[i]) and not truncated
            true_next = info["terminal_observation"] if dones[i] else obs[i]
            phi_next = 0.0 if terminated else count_potential(true_next[None])[0]
            expected = info["env_reward"] + gamma * phi_next - count_potential(current[i][None])[0]
            assert rew[i] == pytest.approx(expected), (i, current[i], true_next, terminated)
            assert info["reward_signals"]["potential"] == pytest.approx(phi_next)
            seen["terminated"] += terminated
            seen["truncated"] += truncated
        current = obs.copy()
    assert seen["terminated"] >= 4 and seen["truncated"] >= 4


def test_truncation_keeps_full_gamma_phi_of_true_last_obs() -> None:
    gamma = 0.5
    venv = DummyVecEnv([lambda: TimeLimit(CountEnv(terminate_at=99), max_episode_steps=2)])
    shaped = ShapedReward(venv.observation_space, venv.action_space,
                          base=EnvReward(venv.observation_space, venv.action_space),
                          potential=FunctionPotential(count_potential), gamma=gamma)
    wrapped = RewardVecEnvWrapper(venv, shaped)
    wrapped.reset()
    wrapped.step(np.zeros((1, 1), np.float32))
    obs, rew, dones, infos = wrapped.step(np.zeros((1, 1), np.float32))
    assert dones[0] and infos[0]["TimeLimit.truncated"]
    # last obs of episode 0 is [2, 0]: Phi = 3; the state before it [1, 0]: Phi = 2
    assert obs[0].tolist() == [0.0, 1.0]                  # already the next episode's reset obs
    assert rew[0] == pytest.approx(2.0 + gamma * 3.0 - 2.0)


def test_gym_wrapper_terminal_and_truncation() -> None:
    """The single-env wrapper used by evaluation applies the same rules."""
    gamma = 0.8
    env = TimeLimit(CountEnv(terminate_at=3), max_episode_steps=4)
    shaped = ShapedReward(env.observation_space, env.action_space,
                          base=EnvReward(env.observation_space, env.action_space),
                          potential=FunctionPotential(count_potential), gamma=gamma)
    env = LearnedRewardWrapper(env, shaped)
    for episode in range(4):
        obs, _ = env.reset()
        done = False
        while not done:
            nxt, r, terminated, truncated, info = env.step(np.zeros(1, np.float32))
            phi_next = 0.0 if terminated else count_potential(nxt[None])[0]
            assert r == pytest.approx(info["env_reward"] + gamma * phi_next
                                      - count_potential(obs[None])[0])
            obs, done = nxt, terminated or truncated
        assert terminated == (episode % 2 == 0)


class _DriftingPotential(Potential):
    """Phi_k(s) = f(s) + k at the k-th call: a potential that changes during training."""

    name = "drifting"

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, obs: Any, frames: np.ndarray | None = None) -> np.ndarray:
        return count_potential(obs) + self.calls

    def transition(self, batch: TransitionBatch, need_obs: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        self.calls += 1
        return super().transition(batch, need_obs)


def test_dynamic_potential_uses_value_from_when_state_was_entered() -> None:
    gamma = 0.9
    venv = _count_venv()
    potential = _DriftingPotential()
    shaped = ShapedReward(venv.observation_space, venv.action_space,
                          base=EnvReward(venv.observation_space, venv.action_space),
                          potential=potential, gamma=gamma)
    wrapped = RewardVecEnvWrapper(venv, shaped)
    current = wrapped.reset().copy()
    entered = [None, None]   # Phi of each env's current state, as computed when entered
    for _ in range(30):
        obs, rew, dones, infos = wrapped.step(np.zeros((2, 1), np.float32))
        k = potential.calls
        for i, info in enumerate(infos):
            truncated = bool(info.get("TimeLimit.truncated", False))
            terminated = bool(dones[i]) and not truncated
            true_next = info["terminal_observation"] if dones[i] else obs[i]
            phi_s = entered[i] if entered[i] is not None else \
                count_potential(current[i][None])[0] + k        # reset obs: computed now
            phi_next = count_potential(true_next[None])[0] + k
            expected = info["env_reward"] + gamma * (0.0 if terminated else phi_next) - phi_s
            assert rew[i] == pytest.approx(expected)
            entered[i] = None if dones[i] else phi_next
        current = obs.copy()


def test_cache_recomputes_after_external_reset() -> None:
    gamma = 0.9
    venv = _count_venv(1)
    shaped = ShapedReward(venv.observation_space, venv.action_space,
                          base=EnvReward(venv.observation_space, venv.action_space),
                          potential=FunctionPotential(count_potential), gamma=gamma)
    wrapped = RewardVecEnvWrapper(venv, shaped)
    wrapped.reset()
    wrapped.step(np.zeros((1, 1), np.float32))
    obs0 = wrapped.reset()                                    # mid-episode reset by the user
    obs, rew, _, infos = wrapped.step(np.zeros((1, 1), np.float32))
    expected = infos[0]["env_reward"] + gamma * count_potential(obs)[0] - count_potential(obs0)[0]
    assert rew[0] == pytest.approx(expected)


# ---------------------------------------------------------------- gamma, build, checkpoints


def _function_cfg(gamma: float | None) -> dict[str, Any]:
    return {"name": "function", "gamma": gamma,
            "potential": {"_target_": "rewardlearn.shaping.FunctionPotential",
                          "function": "test_shaping:first_coordinate"}}


def test_gamma_defaults_to_agent_and_mismatch_warns() -> None:
    space = gym.spaces.Box(-1, 1, (2,))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shaped = build_shaping(_function_cfg(None), EnvReward(space, space), space, space, 0.97)
    assert shaped.gamma == 0.97                                  # type: ignore[attr-defined]
    with pytest.warns(GammaMismatchWarning, match=r"0\.9 differs from the agent's discount 0\.99"):
        shaped = build_shaping(_function_cfg(0.9), EnvReward(space, space), space, space, 0.99)
    assert shaped.gamma == 0.9                                   # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_shaping(_function_cfg(0.99), EnvReward(space, space), space, space, 0.99)
    assert build_shaping({"name": "none"}, base := EnvReward(space, space), space, space,
                         0.99) is base


def test_unset_gamma_is_an_error() -> None:
    space = gym.spaces.Box(-1, 1, (1,))
    shaped = ShapedReward(space, space, base=EnvReward(space, space),
                          potential=FunctionPotential(first_coordinate))
    b = TransitionBatch(np.zeros((1, 1)), np.zeros((1, 1)), np.zeros((1, 1)), [False], [False],
                        env_rewards=np.zeros(1))
    with pytest.raises(RuntimeError, match="gamma is not set"):
        shaped(b)


def test_bad_function_is_refused_early() -> None:
    with pytest.raises(ImportError, match="no attribute"):
        FunctionPotential("test_shaping:no_such_function")
    phi = FunctionPotential(lambda o: np.zeros(3))
    with pytest.raises(ValueError, match="one float per observation"):
        phi(np.zeros((2, 1)))


class _Recorder(RewardModel):
    """A base module that records what observe() hands it."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        super().__init__(observation_space, action_space)
        self.observed: list[np.ndarray] = []

    def compute(self, batch: TransitionBatch) -> RewardOutput:
        return RewardOutput(np.full(len(batch), 2.0), {"base_signal": np.ones(len(batch))})

    def observe(self, batch: TransitionBatch, rewards: np.ndarray) -> None:
        self.observed.append(np.array(rewards))


def test_base_observes_its_own_rewards_and_signals_pass_through() -> None:
    venv = _count_venv()
    base = _Recorder(venv.observation_space, venv.action_space)
    shaped = ShapedReward(venv.observation_space, venv.action_space, base=base,
                          potential=FunctionPotential(count_potential), gamma=0.9)
    wrapped = RewardVecEnvWrapper(venv, shaped)
    wrapped.reset()
    _, rew, _, infos = wrapped.step(np.zeros((2, 1), np.float32))
    assert base.observed[0].tolist() == [2.0, 2.0] and not np.allclose(rew, 2.0)
    assert set(infos[0]["reward_signals"]) >= {"base_signal", "potential", "shaping", "base_reward"}


def test_checkpoint_round_trip_and_space_check(tmp_path: Path) -> None:
    space = gym.spaces.Box(-1e3, 1e3, (2,))
    act = gym.spaces.Box(-1, 1, (1,))
    shaped = build_shaping(_function_cfg(None), EnvReward(space, act), space, act, 0.95)
    path = save_reward_model(shaped, tmp_path / "shaped.pt")
    # the potential's function is this test's own code: loading imports it only when trusted
    loaded = load_reward_model(path, space, act, trust=["test_shaping:first_coordinate"])
    assert isinstance(loaded, ShapedReward) and loaded.gamma == 0.95
    b = TransitionBatch(np.ones((2, 2)), np.zeros((2, 1)), np.full((2, 2), 3.0), [False, True],
                        [False, False], env_rewards=np.zeros(2))
    np.testing.assert_allclose(loaded(b), shaped(b))
    with pytest.raises(SpaceMismatchError, match="observation space"):
        load_reward_model(path, gym.spaces.Box(-1, 1, (5,)), act,
                          trust=["test_shaping:first_coordinate"])


# ---------------------------------------------------------------- train.py wiring


def _short(tmp_path: Path, *extra: str) -> list[str]:
    return ["env=pendulum", "agent=ppo", "total_timesteps=128", "eval.n_episodes=1",
            "video.enabled=false", "progress_bar=false", "+agent.kwargs.n_steps=64",
            "+agent.kwargs.batch_size=32", "+agent.kwargs.n_epochs=1", *extra]


def test_train_shaping_on_env_reward(compose_cfg: Callable[..., DictConfig],
                                     tmp_path: Path) -> None:
    from rewardlearn.cli.train import run

    cfg = compose_cfg(*_short(tmp_path, "reward=env", "shaping=function",
                              "shaping.potential.function=test_shaping:first_coordinate",
                              "agent.gamma=0.97"))
    summary = run(cfg, tmp_path / "run")
    assert summary["learned_return_mean"] is not None
    saved = load_reward_model(tmp_path / "run" / "reward_model.pt",
                              trust=["test_shaping:first_coordinate"])
    assert isinstance(saved, ShapedReward) and saved.gamma == 0.97
    assert isinstance(saved.base, EnvReward)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["reward_training"][
        "shaping"]["gamma"] == 0.97


def test_train_gamma_mismatch_warns(compose_cfg: Callable[..., DictConfig],
                                    tmp_path: Path) -> None:
    from rewardlearn.cli.train import run

    cfg = compose_cfg(*_short(tmp_path, "reward=env", "shaping=function",
                              "shaping.potential.function=test_shaping:first_coordinate",
                              "shaping.gamma=0.5", "agent.gamma=0.99"))
    with pytest.warns(GammaMismatchWarning):
        run(cfg, tmp_path / "run")


def test_train_value_shaping_online(compose_cfg: Callable[..., DictConfig],
                                    tmp_path: Path) -> None:
    from rewardlearn.cli.train import run

    cfg = compose_cfg(*_short(tmp_path, "reward=env", "shaping=value"))
    summary = run(cfg, tmp_path / "run")
    assert summary["reward_training"]["shaping"]["potential"] == "value"


def test_value_potential_from_saved_agent(tmp_path: Path) -> None:
    import torch
    from stable_baselines3 import PPO

    from rewardlearn.shaping import ValuePotential

    env = gym.make("Pendulum-v1")
    agent = PPO("MlpPolicy", env, n_steps=64, batch_size=32, seed=0, device="cpu")
    agent.save(tmp_path / "agent")
    potential = ValuePotential(path=str(tmp_path / "agent.zip"), scale=2.0)
    obs = np.stack([env.observation_space.sample() for _ in range(4)])
    with torch.no_grad():
        expected = agent.policy.predict_values(torch.as_tensor(obs)).numpy().reshape(-1)
    np.testing.assert_allclose(potential(obs), 2.0 * expected, rtol=1e-5)
    potential.bind(env.observation_space, env.action_space)
    with pytest.raises(SpaceMismatchError, match="value agent"):
        potential.bind(gym.spaces.Box(-1, 1, (5,)), env.action_space)
    with pytest.raises(FileNotFoundError, match=r"agent\.zip"):
        ValuePotential(path=str(tmp_path / "missing.zip"))
