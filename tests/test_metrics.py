"""Reward distances (EPIC, STARC) with known answers, ranking metrics, the evaluate CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from rewardlearn.cli import evaluate as evaluate_cli
from rewardlearn.metrics import (
    Coverage,
    Transitions,
    collect_rollouts,
    epic_canonicalize,
    epic_distance,
    oracle_pairs,
    pairs_from_preference_checkpoint,
    preference_accuracy,
    return_correlation,
    starc_distance,
)
from rewardlearn.metrics.reference import PendulumReward, fit_reward_regression, shaped
from rewardlearn.rewards import MLPReward, save_reward_model
from rewardlearn.rewards.base import TransitionBatch

GAMMA = 0.9
OBS, ACT = 3, 2


def random_reward(seed: int) -> Callable[[TransitionBatch], np.ndarray]:
    """A random nonlinear reward of (s, a, s')."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(size=(2 * OBS + ACT, 16))
    w2 = rng.normal(size=16)

    def fn(batch: TransitionBatch) -> np.ndarray:
        x = np.concatenate([batch.obs, batch.acts, batch.next_obs], axis=1)
        return np.tanh(x @ w1) @ w2

    return fn


def potential(obs: np.ndarray) -> np.ndarray:
    return np.sin(obs[:, 0]) * 3.0 + obs[:, 1] ** 2 - 0.5 * obs[:, 2]


@pytest.fixture(scope="module")
def samples() -> tuple[Transitions, Coverage]:
    rng = np.random.default_rng(0)
    n, m = 300, 64
    trans = Transitions(rng.normal(size=(n, OBS)), rng.uniform(-1, 1, (n, ACT)),
                        rng.normal(size=(n, OBS)))
    states = rng.normal(size=(m, OBS))  # S and S' share draws, as coverage_samples does
    cov = Coverage(states, rng.uniform(-1, 1, (m, ACT)), states)
    return trans, cov


@pytest.mark.parametrize("distance", [epic_distance, starc_distance])
def test_shaped_rescaled_reward_is_at_distance_zero(distance, samples) -> None:
    trans, cov = samples
    r = random_reward(1)
    r_equiv = shaped(r, potential, GAMMA, scale=3.7, shift=-2.0)
    assert distance(r, r_equiv, trans, cov, GAMMA) == pytest.approx(0.0, abs=1e-6)
    # the canonicalised rewards differ only by the positive scale
    ca, cb = (epic_canonicalize(f, trans, cov, GAMMA) for f in (r, r_equiv))
    np.testing.assert_allclose(cb, 3.7 * ca, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("distance", [epic_distance, starc_distance])
def test_negation_is_at_maximum_distance(distance, samples) -> None:
    trans, cov = samples
    r = random_reward(2)
    neg = shaped(r, potential, GAMMA, scale=-0.5)
    assert distance(r, neg, trans, cov, GAMMA) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("distance", [epic_distance, starc_distance])
def test_symmetric_and_triangle_inequality(distance, samples) -> None:
    trans, cov = samples
    rewards = [random_reward(s) for s in range(10, 15)]
    d = np.array([[distance(a, b, trans, cov, GAMMA) for b in rewards] for a in rewards])
    assert np.all((d >= 0) & (d <= 1))
    np.testing.assert_allclose(d, d.T, atol=1e-12)
    np.testing.assert_allclose(np.diag(d), 0.0, atol=1e-7)
    for i in range(5):
        for j in range(5):
            for k in range(5):
                assert d[i, k] <= d[i, j] + d[j, k] + 1e-12
    assert d[0, 1] > 0.1  # unrelated random rewards are far apart


def test_pendulum_reference_matches_env_reward() -> None:
    env = gym.make("Pendulum-v1")
    ro = collect_rollouts(env, 300, seed=3)
    ref = PendulumReward(env.observation_space, env.action_space)
    np.testing.assert_allclose(np.asarray(ref.compute(ro.batch()).rewards), ro.env_rewards,
                               rtol=1e-5, atol=1e-5)
    # the true reward ranks oracle pairs perfectly and its returns correlate fully
    pairs = oracle_pairs(ro, 40, 10, seed=0)
    assert preference_accuracy(ref, pairs)["accuracy"] == 1.0
    neg = shaped(ref, lambda o: np.zeros(len(o)), 1.0, scale=-1.0)
    assert preference_accuracy(neg, pairs)["accuracy"] == 0.0
    ro_short = collect_rollouts(env, 400, seed=4, max_episode_steps=40)
    corr = return_correlation(ref, ro_short)
    assert corr["episodes"] == 10 and corr["pearson"] == pytest.approx(1.0)


def test_regression_reference_fits_pendulum() -> None:
    env = gym.make("Pendulum-v1")
    ro = collect_rollouts(env, 1500, seed=0)
    _, info = fit_reward_regression(ro, env.observation_space, env.action_space, epochs=40)
    assert info["heldout_r2"] > 0.9, info


def test_pairs_from_preference_checkpoint(tmp_path: Path) -> None:
    from rewardlearn.preference.buffer import Segments
    from rewardlearn.preference.reward import PreferenceReward

    env = gym.make("Pendulum-v1")
    model = PreferenceReward(env.observation_space, env.action_space, hidden_sizes=[8],
                             ensemble_size=1, device="cpu")
    ro = collect_rollouts(env, 200, seed=1)
    feats = np.concatenate([ro.obs, ro.acts], axis=1).reshape(10, 20, 4)
    segs = Segments(feats, ro.env_rewards.reshape(10, 20), np.zeros((10, 20), bool),
                    np.zeros(10, int), np.zeros(10, int))
    labels = (ro.env_rewards.reshape(10, 20)[:5].sum(1) > ro.env_rewards.reshape(10, 20)[5:].sum(1))
    model.learner.dataset.add(segs.take(np.arange(5)), segs.take(np.arange(5, 10)),
                              labels.astype(float), 0)
    path = save_reward_model(model, tmp_path / "pref.pt")
    pairs = pairs_from_preference_checkpoint(path, env.observation_space, env.action_space)
    assert len(pairs) == 5
    np.testing.assert_allclose(pairs.first[0][0], ro.obs[:20], rtol=1e-6)
    np.testing.assert_allclose(pairs.first[0][2][:-1], ro.obs[1:20], rtol=1e-6)
    ref = PendulumReward(env.observation_space, env.action_space)
    assert preference_accuracy(ref, pairs)["accuracy"] == 1.0
    assert len(pairs_from_preference_checkpoint(path, env.observation_space, env.action_space,
                                                rounds=[1])) == 0


def test_evaluate_cli_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = gym.make("Pendulum-v1")
    a = save_reward_model(MLPReward(env.observation_space, env.action_space, hidden_sizes=(8,),
                                    device="cpu"), tmp_path / "a" / "reward_model.pt")
    out = tmp_path / "eval.json"
    result = evaluate_cli.main([f"reward={a},same:{a}", "env=pendulum", "n_steps=400",
                                "n_eval=100", "n_samples=16", "n_pairs=20", "segment_length=10",
                                "max_episode_steps=50", f"out={out}"])
    rows = result["rewards"]
    assert set(rows) == {"a", "same"}
    for key in ("epic", "starc", "pref_acc", "return_pearson", "return_spearman"):
        assert 0 <= abs(rows["a"][key]) <= 1, key
        assert rows["a"][key] == pytest.approx(rows["same"][key])
    assert result["reference"]["kind"] == "analytic" and result["setup"]["episodes"] == 8
    assert json.loads(out.read_text())["rewards"]["a"]["epic"] == pytest.approx(rows["a"]["epic"])
    assert "| reward | epic | starc |" in capsys.readouterr().out
    # against itself as the reference: distance 0
    self_ref = evaluate_cli.main([f"reward={a}", f"reference={a}", "n_steps=200", "n_eval=50",
                                  "n_samples=8", "metrics=epic,starc"])
    assert self_ref["rewards"]["a"]["epic"] == pytest.approx(0.0, abs=1e-6)


def test_evaluate_cli_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown option 'nope'"):
        evaluate_cli.parse_args(["reward=x.pt", "nope=1"])
    with pytest.raises(ValueError, match="unknown metrics"):
        evaluate_cli.parse_args(["reward=x.pt", "metrics=epic,bogus"])
    with pytest.raises(ValueError, match="give the reward"):
        evaluate_cli.parse_args(["env=pendulum"])
    with pytest.raises(ValueError, match=r"valid choices: .*hopper"):
        evaluate_cli.main(["reward=x.pt", "env=nope"])
    with pytest.raises(FileNotFoundError, match="not found"):
        evaluate_cli.main([f"reward={tmp_path / 'missing.pt'}"])
    env = gym.make("Hopper-v5")
    hopper = save_reward_model(MLPReward(env.observation_space, env.action_space,
                                         hidden_sizes=(4,), device="cpu"), tmp_path / "h.pt")
    with pytest.raises(ValueError, match="observation space differs"):
        evaluate_cli.main([f"reward={hopper}", "env=pendulum"])


def test_evaluate_progress_model_voc_and_distances(tmp_path: Path) -> None:
    import torch

    from rewardlearn.cli.collect import CollectConfig, collect
    from rewardlearn.demos import load_demos
    from rewardlearn.env_factory import make_env
    from rewardlearn.progress import ProgressConfig, train_progress_model

    demos = tmp_path / "demos"
    collect(CollectConfig(env="pick_place", n_episodes=6, noise=0.1, out=str(demos)),
            verbose=False)
    torch.set_num_threads(1)
    env = make_env("pick_place")
    model, _ = train_progress_model(load_demos(demos), env.observation_space, env.action_space,
                                    ProgressConfig(epochs=5, hidden_sizes=[32], heldout=0.34))
    path = model.save(tmp_path / "progress_model.pt")
    result = evaluate_cli.main([f"reward=progress:{path}", "env=pick_place", f"demos={demos}",
                                "n_steps=300", "n_eval=50", "n_samples=8", "n_pairs=20",
                                "segment_length=10", "regression_epochs=5",
                                "metrics=epic,starc,returns,voc"])
    row = result["rewards"]["progress"]
    assert 0 <= row["epic"] <= 1 and 0 <= row["starc"] <= 1
    assert -1 <= row["voc"] <= 1 and 0 <= row["stage_acc"] <= 1
    assert row["voc_demos"] == 6 and row["episodes"] >= 2  # returns over rollout episodes
    assert result["reference"]["kind"] == "regression" and "heldout_r2" in result["reference"]


def test_evaluate_with_a_saved_agent_and_its_normaliser(tmp_path: Path) -> None:
    from stable_baselines3 import SAC
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    venv = VecNormalize(DummyVecEnv([lambda: gym.make("Pendulum-v1")]), norm_reward=False)
    SAC("MlpPolicy", venv, policy_kwargs={"net_arch": [8]}, device="cpu").save(
        tmp_path / "agent.zip")
    venv.save(str(tmp_path / "vecnormalize.pkl"))
    env = gym.make("Pendulum-v1")
    reward = save_reward_model(MLPReward(env.observation_space, env.action_space,
                                         hidden_sizes=(4,), device="cpu"), tmp_path / "r.pt")
    result = evaluate_cli.main([f"reward={reward}", f"agent={tmp_path / 'agent.zip'}",
                                "n_steps=120", "max_episode_steps=40", "metrics=returns"])
    assert result["setup"]["policy"] == "agent" and result["setup"]["episodes"] == 3
    with pytest.raises(FileNotFoundError, match="agent"):
        evaluate_cli.main([f"reward={reward}", f"agent={tmp_path / 'nope.zip'}"])
