"""Preference learning: loss math, query selection, segments, learning on a toy problem, resume."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import DictConfig

from rewardlearn.cli.train import run
from rewardlearn.preference.buffer import SegmentBuffer
from rewardlearn.preference.configuration import PreferenceConfig
from rewardlearn.preference.learner import PreferenceLearner
from rewardlearn.preference.modeling import (
    RewardEnsemble,
    preference_logits,
    preference_loss,
)
from rewardlearn.preference.query import kcenter_greedy, select_queries
from rewardlearn.preference.reward import PreferenceReward
from rewardlearn.preference.teachers import SyntheticTeacher
from rewardlearn.rewards import load_reward_model, save_reward_model
from rewardlearn.settings import UnknownSettingError
from rewardlearn.stats import spearman


def _linear_ensemble(weights: list[list[float]], value: list[list[float]] | None = None
                     ) -> RewardEnsemble:
    """Members r_e(x) = w_e . x exactly (no hidden layer, no squashing, identity norm)."""
    d = len(weights[0])
    ens = RewardEnsemble(d, len(weights), hidden_sizes=(), output_activation=None,
                         value_dim=d if value else 0)
    with torch.no_grad():
        for e, w in enumerate(weights):
            lin = ens.members[e][0]
            lin.weight.copy_(torch.tensor([w]))
            lin.bias.zero_()
            if value:
                vl = ens.values[e][0]
                vl.weight.copy_(torch.tensor([value[e]]))
                vl.bias.zero_()
    return ens


def test_bradley_terry_loss_matches_hand_computation() -> None:
    z = torch.tensor([[math.log(3.0)]])  # sigmoid = 0.75
    assert float(preference_loss(z, torch.tensor([1.0]))) == pytest.approx(-math.log(0.75))
    assert float(preference_loss(z, torch.tensor([0.0]))) == pytest.approx(-math.log(0.25))
    eq = -(0.5 * math.log(0.75) + 0.5 * math.log(0.25))
    assert float(preference_loss(z, torch.tensor([0.5]))) == pytest.approx(eq)


def test_logits_are_differences_of_segment_returns() -> None:
    ens = _linear_ensemble([[1.0, 0.0], [0.0, 2.0]])
    x1 = torch.tensor([[[1.0, 1.0], [2.0, 0.0]]])  # member 0 return 3, member 1 return 2
    x2 = torch.tensor([[[0.0, 1.0], [1.0, 1.0]]])  # member 0 return 1, member 1 return 4
    logits = preference_logits(ens, x1, x2)
    assert logits.tolist() == [[2.0], [-2.0]]


def test_regret_model_adds_value_difference_and_zero_terminal_value() -> None:
    ens = _linear_ensemble([[1.0, 0.0]], value=[[0.0, 1.0]])
    x1 = torch.tensor([[[1.0, 5.0], [1.0, 7.0]]])  # return 2, V(start)=5, V(end)=7 -> 4
    x2 = torch.tensor([[[0.0, 0.0], [0.0, 0.0]]])
    logit = preference_logits(ens, x1, x2, model="regret")
    assert float(logit.detach()) == pytest.approx(4.0)
    t1 = torch.tensor([[False, True]])  # terminated at the end: V(end) = 0 -> 2 - 5
    t2 = torch.tensor([[False, False]])
    logit = preference_logits(ens, x1, x2, model="regret", term1=t1, term2=t2)
    assert float(logit.detach()) == pytest.approx(-3.0)


def test_query_selection_methods_pick_what_they_should() -> None:
    probs = np.array([[0.5, 0.95, 0.2, 0.55], [0.5, 0.05, 0.8, 0.45], [0.5, 0.5, 0.5, 0.5]])
    assert select_queries("disagreement", 1, 4, probs=probs).tolist() == [1]
    assert select_queries("entropy", 2, 4, probs=probs).tolist()[:1] == [0]
    assert select_queries("uniform", 3, 4).tolist() == [0, 1, 2]
    pts = np.array([[0.0, 0.0], [0.1, 0.0], [10.0, 0.0], [0.0, 10.0], [10.1, 0.0]])
    picked = set(kcenter_greedy(pts, 3).tolist())
    assert {2, 3} <= picked or {4, 3} <= picked
    # with the far points already labelled, k-center covers the near cluster
    got = select_queries("kcenter", 1, 5, pair_features=pts, labelled_features=pts[[2, 3]])
    assert got.tolist()[0] in (0, 1)
    hybrid = select_queries("kcenter_disagreement", 2, 4, probs=probs,
                            pair_features=np.eye(4), hybrid_factor=1)
    assert set(hybrid.tolist()) == {1, 2}  # the two most disputed
    with pytest.raises(ValueError, match="choose from"):
        select_queries("random", 1, 4)


def test_segments_never_cross_episode_ends() -> None:
    rng = np.random.default_rng(0)
    buf = SegmentBuffer(n_envs=3, feature_dim=2, capacity=10_000)
    t = np.zeros(3, int)
    ep = np.arange(3)
    next_ep = 3
    lengths = [rng.integers(3, 40) for _ in range(3)]
    for _ in range(600):
        feats = np.stack([ep, t], axis=1).astype(np.float32)
        t += 1
        end = np.array([t[i] >= lengths[i] for i in range(3)])
        term = end & (rng.random(3) < 0.5)
        buf.add(feats, t.astype(np.float32), term, end & ~term)
        for i in np.flatnonzero(end):
            t[i], ep[i] = 0, next_ep
            next_ep += 1
            lengths[i] = rng.integers(3, 40)
    segs = buf.sample(2000, 10, rng)
    assert (segs.features[:, :, 0] == segs.features[:, :1, 0]).all()  # one episode each
    assert (np.diff(segs.features[:, :, 1], axis=1) == 1).all()  # consecutive steps
    assert not segs.terminated[:, :-1].any()  # termination only ever on the last step
    assert buf.longest_feasible(100, 1) <= 39


def test_buffer_evicts_oldest_episodes() -> None:
    buf = SegmentBuffer(n_envs=1, feature_dim=1, capacity=10)
    for k in range(30):
        buf.add(np.array([[k]], np.float32), np.array([k], np.float32),
                np.array([k % 5 == 4]), np.array([False]))
    assert len(buf) <= 15
    assert buf.sample(50, 3, np.random.default_rng(0)).features.min() >= 15


def _toy_buffer(n_steps: int = 3000, seed: int = 0) -> tuple[SegmentBuffer, np.ndarray]:
    """Random 4-d features; true reward = w . x. Episodes of 25 steps."""
    rng = np.random.default_rng(seed)
    w = np.array([1.0, -2.0, 0.5, 0.0], np.float32)
    buf = SegmentBuffer(n_envs=1, feature_dim=4)
    for k in range(n_steps):
        x = rng.normal(size=(1, 4)).astype(np.float32)
        buf.add(x, x @ w, np.array([False]), np.array([k % 25 == 24]))
    return buf, w


def test_learns_toy_reward_fast_with_oracle() -> None:
    buf, _ = _toy_buffer()
    cfg = PreferenceConfig(segment_length=10, budget=150, queries_per_round=50,
                           hidden_sizes=[32, 32], max_epochs=100, device="cpu", seed=0,
                           query_selection="disagreement", output_activation=None)
    ens = RewardEnsemble(4, 3, cfg.hidden_sizes, output_activation=None, seed=0)
    learner = PreferenceLearner(cfg, ens, SyntheticTeacher(seed=0), torch.device("cpu"))
    for _ in range(3):
        metrics = learner.run_round(buf, 50)
    assert learner.labels_used == 150
    assert metrics["spearman"] > 0.9 and metrics["pearson"] > 0.9
    # fresh held-out pairs, labelled by the oracle
    rng = np.random.default_rng(1)
    a, b = buf.sample(300, 10, rng), buf.sample(300, 10, rng)
    truth = a.true_rewards.sum(1) > b.true_rewards.sum(1)
    pred = learner.segment_returns(a) > learner.segment_returns(b)
    assert (truth == pred).mean() > 0.9


def test_per_step_reward_correlates_with_truth() -> None:
    buf, w = _toy_buffer()
    reward = PreferenceReward(gym.spaces.Box(-10, 10, (4,)), gym.spaces.Box(-1, 1, (0,)),
                              teacher=SyntheticTeacher(seed=0), segment_length=10, budget=100,
                              queries_per_round=50, hidden_sizes=[32], device="cpu",
                              use_action=False, output_activation=None)
    for _ in range(2):
        reward.learner.run_round(buf, 50)
    x = np.random.default_rng(2).normal(size=(500, 4)).astype(np.float32)
    learned, _ = reward.reward_from_features(x)
    assert spearman(learned, x @ w) > 0.9


def test_resume_keeps_every_label(tmp_path: Path) -> None:
    buf, _ = _toy_buffer(1000)
    obs, act = gym.spaces.Box(-10, 10, (4,)), gym.spaces.Box(-1, 1, (0,))
    kw = dict(segment_length=10, budget=60, queries_per_round=20, hidden_sizes=[8],
              device="cpu", use_action=False)
    reward = PreferenceReward(obs, act, teacher=SyntheticTeacher(seed=0), **kw)
    reward.learner.run_round(buf, 20)
    reward.learner.run_round(buf, 20)
    path = save_reward_model(reward, tmp_path / "reward_model.pt")
    resumed = PreferenceReward(obs, act, teacher=SyntheticTeacher(seed=0), resume=str(path), **kw)
    assert resumed.learner.labels_used == 40 and resumed.learner.budget_left == 20
    assert resumed.learner.dataset.labels == reward.learner.dataset.labels
    assert all(np.array_equal(a, b) for a, b in zip(resumed.learner.dataset.x1,
                                                     reward.learner.dataset.x1, strict=True))
    x = np.zeros((3, 4), np.float32)
    assert np.allclose(resumed.reward_from_features(x)[0], reward.reward_from_features(x)[0])
    loaded = load_reward_model(path, obs, act)
    assert isinstance(loaded, PreferenceReward) and loaded.learner.labels_used == 40


@pytest.mark.parametrize("agent", ["sac", "ppo"])
def test_train_py_learns_preference_reward(compose_cfg: Callable[..., DictConfig],
                                           tmp_path: Path, agent: str) -> None:
    extra = ["+agent.kwargs.learning_starts=200"] if agent == "sac" else \
        ["+agent.kwargs.n_steps=200", "+agent.kwargs.batch_size=100", "+agent.kwargs.n_epochs=1"]
    cfg = compose_cfg(
        "env=pendulum", f"agent={agent}", "reward=preference", "teacher=oracle",
        "total_timesteps=1000", "reward.model.budget=40", "reward.model.queries_per_round=20",
        "reward.model.first_round_at=200", "reward.model.interval=400",
        "reward.model.segment_length=20", "reward.model.hidden_sizes=[32,32]",
        "eval.n_episodes=1", "video.enabled=false", "progress_bar=false", *extra)
    summary = run(cfg, tmp_path / "run")
    assert summary["reward_training"]["labels_used"] == 40
    assert summary["learned_return_mean"] is not None
    saved = load_reward_model(tmp_path / "run" / "reward_model.pt")
    assert isinstance(saved, PreferenceReward) and saved.learner.labels_used == 40


def test_replay_buffer_relabelled_with_current_model(compose_cfg: Callable[..., DictConfig],
                                                     tmp_path: Path) -> None:
    from stable_baselines3 import SAC

    from rewardlearn.env_factory import make_vec_env
    from rewardlearn.preference.reward import relabel_replay_buffer
    from rewardlearn.wrappers import RewardVecEnvWrapper

    venv = make_vec_env("pendulum", n_envs=2, seed=0)
    reward = PreferenceReward(venv.observation_space, venv.action_space, hidden_sizes=[8],
                              device="cpu")
    venv = RewardVecEnvWrapper(venv, reward)
    agent = SAC("MlpPolicy", venv, learning_starts=1000, device="cpu", seed=0)
    agent.learn(100)
    with torch.no_grad():
        for p in reward.ensemble.parameters():
            p.add_(0.5)
    n = relabel_replay_buffer(agent, reward)
    rb = agent.replay_buffer
    assert n == rb.pos * 2
    x = reward.features(rb.observations[: rb.pos].reshape(-1, 3),
                        rb.actions[: rb.pos].reshape(-1, 1),
                        rb.next_observations[: rb.pos].reshape(-1, 3),
                        np.zeros(rb.pos * 2, bool)).numpy()
    assert np.allclose(rb.rewards[: rb.pos].reshape(-1), reward.reward_from_features(x)[0],
                       atol=1e-5)


def test_invalid_settings_are_named() -> None:
    with pytest.raises(ValueError, match="query_selection"):
        PreferenceConfig(query_selection="best")
    with pytest.raises(UnknownSettingError, match="unknown preference setting"):
        PreferenceConfig.from_kwargs({"budjet": 10})


def test_ppo_rollout_relabelled_before_update() -> None:
    from stable_baselines3 import PPO

    from rewardlearn.env_factory import make_vec_env
    from rewardlearn.preference.reward import PreferenceCallback
    from rewardlearn.wrappers import RewardVecEnvWrapper

    venv = make_vec_env("pendulum", n_envs=2, seed=0)
    reward = PreferenceReward(venv.observation_space, venv.action_space, hidden_sizes=[8],
                              device="cpu", teacher=SyntheticTeacher(seed=0),
                              first_round_at=10**9)
    venv = RewardVecEnvWrapper(venv, reward)
    seen: dict[str, np.ndarray] = {}

    class Check(PreferenceCallback):
        def _on_rollout_end(self) -> None:
            with torch.no_grad():
                for p in reward.ensemble.parameters():
                    p.add_(0.3)
            x = np.stack(reward._rollout_feats)
            self._relabel_rollout(self.model)  # type: ignore[arg-type]
            seen["expected"] = reward.reward_from_features(x.reshape(-1, x.shape[-1]))[0]
            seen["got"] = self.model.rollout_buffer.rewards.reshape(-1).copy()

    agent = PPO("MlpPolicy", venv, n_steps=64, batch_size=64, n_epochs=1, device="cpu", seed=0)
    agent.learn(128, callback=Check(reward))
    assert np.allclose(seen["got"], seen["expected"], atol=1e-5)


@pytest.mark.parametrize("activation,output", [("leaky_relu", None), ("tanh", "tanh"),
                                               ("relu", None), ("elu", None), ("silu", None)])
def test_stacked_inference_matches_forward_and_follows_weight_updates(
        activation: str, output: str | None) -> None:
    ens = RewardEnsemble(6, n_members=3, hidden_sizes=(16, 8), activation=activation,
                         output_activation=output, seed=0)
    x = torch.randn(5, 6)
    with torch.no_grad():
        torch.testing.assert_close(ens.predict(x), ens(x))  # no input statistics yet
    ens.norm.update(torch.randn(64, 6) * 3 + 1)  # folded into the first layer
    with torch.no_grad():
        big = torch.randn(ens.STACKED_MAX_ROWS + 1, 6)  # many rows: the members one by one
        torch.testing.assert_close(ens.predict(big), ens(big))
        torch.testing.assert_close(ens.predict(x), ens(x))
        torch.testing.assert_close(ens.predict(x[0]), ens(x[0]))  # one step, no batch dim
        torch.testing.assert_close(ens.predict(x.reshape(1, 5, 6)), ens(x.reshape(1, 5, 6)))
    before = ens.predict(x).clone()
    opt = torch.optim.Adam(ens.parameters(), lr=0.1)  # a training step writes in place
    loss = ens(torch.randn(32, 6)).pow(2).mean()
    loss.backward()
    opt.step()
    with torch.no_grad():
        after = ens.predict(x)
        assert not torch.allclose(after, before)
        torch.testing.assert_close(after, ens(x))
        other = RewardEnsemble(6, n_members=3, hidden_sizes=(16, 8), activation=activation,
                               output_activation=output, seed=1)
        ens.load_state_dict(other.state_dict())
        torch.testing.assert_close(ens.predict(x), other(x))
        ens.norm.update(torch.randn(64, 6))  # new input statistics are read on every call
        torch.testing.assert_close(ens.predict(x), ens(x))


def test_stacked_inference_falls_back_for_layers_it_cannot_stack() -> None:
    ens = RewardEnsemble(4, n_members=2, hidden_sizes=(8,), seed=0)
    for member in ens.members:
        member.insert(1, torch.nn.LayerNorm(8))  # has parameters: not stackable as a Linear
    x = torch.randn(3, 4)
    with torch.no_grad():
        torch.testing.assert_close(ens.predict(x), ens(x))


def test_demo_segments_are_queried_against_the_agents_and_labelled_by_their_rewards(
        tmp_path: Path) -> None:
    """reward.model.demos (Ibarz et al. 2018): a demo_fraction share of the candidate
    segments on each side is a demo window, built from the demos' own transitions and
    rewards; the oracle then prefers the expert's segments to a random agent's; a wrong demo
    set or a teacher that needs simulator states is refused."""
    from rewardlearn.cli.collect import CollectConfig, collect
    from rewardlearn.demos import load_demos

    demos = tmp_path / "demos"
    collect(CollectConfig(env="pick_place", n_episodes=3, out=str(demos)), verbose=False)
    env = gym.make("rewardlearn/PickPlace-v0")
    reward = PreferenceReward(env.observation_space, env.action_space,
                              teacher=SyntheticTeacher(seed=0), segment_length=10, budget=40,
                              queries_per_round=40, hidden_sizes=[16], device="cpu",
                              query_selection="uniform", demos=str(demos), demo_fraction=0.5)
    episodes = load_demos(demos)
    assert len(reward.learner.demo_buffer) == sum(len(ep.actions) for ep in episodes)
    # a random agent's steps, features as the module computes them
    buf = SegmentBuffer(n_envs=1, feature_dim=reward.features.dim)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    for _ in range(300):
        act = rng.uniform(-1, 1, 4).astype(np.float32)
        nxt, r, term, trunc, _ = env.step(act)
        x = reward.features(obs[None], act[None], nxt[None], np.array([term])).numpy()
        buf.add(x, np.array([r], np.float32), np.array([term]), np.array([trunc]))
        obs = env.reset()[0] if term or trunc else nxt
    metrics = reward.learner.run_round(buf, 40)
    assert metrics["demo_share"] == 0.5  # uniform first round: the candidates' share
    data = reward.learner.dataset
    assert len(data) == 40
    # every demo segment is a window of one demo episode's own features
    feats = np.concatenate([reward.features(ep.observations[:-1], ep.actions,
                                            ep.observations[1:], ep.terminations).numpy()
                            for ep in episodes])

    def is_demo(x: np.ndarray) -> bool:
        return bool(np.isclose(feats, x[0]).all(1).any())

    first = np.array([is_demo(x) for x in data.x1])
    second = np.array([is_demo(x) for x in data.x2])
    assert first.sum() == 20 and second.sum() == 20
    # the oracle prefers the expert's segment to a random agent's
    labels = np.asarray(data.labels)
    assert np.mean(labels[second & ~first] == 0.0) > 0.9
    assert np.mean(labels[first & ~second] == 1.0) > 0.9
    with pytest.raises(ValueError, match="demo_fraction must be in"):
        PreferenceConfig(demos=str(demos), demo_fraction=0.0).validate()
    with pytest.raises(ValueError, match="do not match the env"):
        PreferenceReward(gym.spaces.Box(-1, 1, (5,)), env.action_space,
                         teacher=SyntheticTeacher(seed=0), demos=str(demos), device="cpu")

    class NeedsStates(SyntheticTeacher):
        needs_sim_states = True

    with pytest.raises(ValueError, match="which demos do not carry"):
        PreferenceReward(env.observation_space, env.action_space, teacher=NeedsStates(),
                         demos=str(demos), device="cpu")
