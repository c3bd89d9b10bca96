"""reward=vpl: the ELBO, per-user latents, z in the observation, active queries, end to end."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import DictConfig
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

from rewardlearn.cli.train import run
from rewardlearn.preference.human import HumanTeacher, LabelledPair
from rewardlearn.review.store import ClipRef
from rewardlearn.rewards import load_reward_model
from rewardlearn.rewards.base import TransitionBatch
from rewardlearn.vpl.active import (
    ask_adaptively,
    bald_information,
    label_assignments,
    mutual_information,
    next_query,
    query_information,
    select_queries,
)
from rewardlearn.vpl.configuration import VPLConfig
from rewardlearn.vpl.evaluation import conflicting, fit_bradley_terry, user_accuracies
from rewardlearn.vpl.latent import AppendLatent
from rewardlearn.vpl.modeling import VPLModel, elbo_loss, kl_standard_normal, spo_rewards
from rewardlearn.vpl.population import PopulationTeacher, UserRewardWrapper
from rewardlearn.vpl.reward import VPLReward

LATENT = 2
OBS = gym.spaces.Box(-np.inf, np.inf, (1 + LATENT,), np.float32)  # [s, z], s one number
ACT = gym.spaces.Box(-1, 1, (1,), np.float32)
OPPOSITE = [{"kind": "linear", "index": [0], "goal": [1.0]},   # wants s' high
            {"kind": "linear", "index": [0], "goal": [-1.0]}]  # wants s' low
SMALL = {"latent_dim": LATENT, "hidden_sizes": [64, 64], "embed_dim": 16, "segment_length": 5,
         "annotation_size": 8, "batch_sets": 16, "train_steps": 300, "lr": 3e-3,
         "device": "cpu", "seed": 0}


def segments(rng: np.random.Generator, n: int, length: int = 5) -> np.ndarray:
    """``(n, L, [s, a, s'])`` random steps of a 1-D state."""
    return rng.normal(size=(n, length, 3)).astype(np.float32)


def user_labels(teacher: PopulationTeacher, reward: VPLReward, x1: np.ndarray,
                x2: np.ndarray) -> np.ndarray:
    """``(K, n)`` every user's labels of the same pairs."""
    return np.stack([teacher.label_user(k, reward.split_side(x1), reward.split_side(x2)).labels
                     for k in range(teacher.n_users)])


@pytest.fixture(scope="module")
def trained() -> tuple[VPLReward, PopulationTeacher]:
    """VPL trained on 2 users with opposite goals, 96 labels each."""
    torch.set_num_threads(1)
    teacher = PopulationTeacher(users=OPPOSITE, seed=0)
    reward = VPLReward(OBS, ACT, teacher=teacher, **SMALL)
    rng = np.random.default_rng(0)
    for k in range(2):
        x1, x2 = segments(rng, 96), segments(rng, 96)
        labels = teacher.label_user(k, reward.split_side(x1), reward.split_side(x2)).labels
        reward.dataset.add(x1, x2, labels, teacher.user_ids[k], 0)
    metrics = reward.train()
    assert metrics["train_acc"] > 0.9
    return reward, teacher


def test_kl_of_a_known_gaussian_has_the_half() -> None:
    mu, logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    # 1/2 [(1 + 1 - 1 - 0) + (0 + e - 1 - 1)] = (e - 1) / 2; without the 1/2 it would be e - 1
    assert float(kl_standard_normal(mu, logvar)) == pytest.approx((math.e - 1) / 2)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros(2), torch.ones(2))
    assert float(kl_standard_normal(mu, logvar)) == pytest.approx(
        float(torch.distributions.kl_divergence(q, p).sum()))
    # its gradients: d/dmu = mu, d/dlogvar = (sigma^2 - 1) / 2: the posterior pulled to N(0, I)
    mu.requires_grad_(True)
    logvar.requires_grad_(True)
    kl_standard_normal(mu, logvar).sum().backward()
    assert mu.grad is not None and logvar.grad is not None
    assert mu.grad.tolist() == [[1.0, 0.0]]
    assert logvar.grad[0].tolist() == pytest.approx([0.0, (math.e - 1) / 2])


def test_an_elbo_step_raises_the_labelled_sides_probability() -> None:
    model = VPLModel(1, latent_dim=2, hidden_sizes=(8,), embed_dim=4, seed=0)
    up, down = torch.ones(1, 1, 4, 1), -torch.ones(1, 1, 4, 1)
    mask = torch.ones(1, 1, 4)
    for label in (1.0, 0.0):
        batch = {"x1": up, "m1": mask, "x2": down, "m2": mask,
                 "labels": torch.tensor([[label]]), "set_mask": torch.ones(1, 1)}
        z = torch.zeros(1, 2)
        with torch.no_grad():
            before = float(model.logits(up, mask, down, mask, z))
        trial = VPLModel(1, latent_dim=2, hidden_sizes=(8,), embed_dim=4, seed=0)
        trial.load_state_dict(model.state_dict())
        loss, _ = elbo_loss(trial, batch, kl_weight=0.0, generator=torch.Generator().manual_seed(0))
        loss.backward()
        with torch.no_grad():  # one plain gradient step on the reward
            for p in trial.reward_net.parameters():
                assert p.grad is not None
                p -= 0.05 * p.grad
        with torch.no_grad():
            after = float(trial.logits(up, mask, down, mask, z))
        assert (after > before) if label == 1.0 else (after < before)


def test_vpl_separates_two_users_with_opposite_preferences_and_one_bt_cannot(
        trained: tuple[VPLReward, PopulationTeacher]) -> None:
    reward, teacher = trained
    rng = np.random.default_rng(1)
    x1, x2 = segments(rng, 200), segments(rng, 200)
    labels = user_labels(teacher, reward, x1, x2)
    assert conflicting(labels).all()  # opposite goals: the users disagree on every pair
    context = []
    for k in range(2):  # a few labels of each user, not trained on
        c1, c2 = segments(rng, 8), segments(rng, 8)
        context.append((c1, c2, teacher.label_user(k, reward.split_side(c1),
                                                   reward.split_side(c2)).labels))
    d = reward.dataset
    bt = fit_bradley_terry(d.x1[..., reward.columns], d.x2[..., reward.columns], d.labels,
                           hidden_sizes=(32, 32), epochs=30)
    acc = user_accuracies(reward, context, x1, x2, labels, bt)
    assert min(acc["vpl"]) > 0.9
    # one answer per pair is right for exactly one of the two users
    assert acc["bt"][0] + acc["bt"][1] == pytest.approx(1.0)
    assert acc["bt_conflicting"] == acc["bt"]


def test_the_bilinear_reward_is_affine_in_z_and_separates_opposite_users() -> None:
    """``reward_form=bilinear``: ``r(x, z) = phi(x) . (A z + b)``, so for fixed steps the
    reward moves linearly with ``z``; trained on two opposite users it tells them apart."""
    torch.set_num_threads(1)
    model = VPLModel(3, latent_dim=2, hidden_sizes=(8,), embed_dim=4, seed=0,
                     reward_form="bilinear")
    x, z = torch.randn(5, 3), torch.randn(5, 2)
    with torch.no_grad():
        r0, r1, r2 = (model.rewards(x, c * z) for c in (0.0, 1.0, 2.0))
    torch.testing.assert_close(r2 - r1, r1 - r0)  # affine in z
    with pytest.raises(ValueError, match="reward_form must be one of"):
        VPLModel(3, reward_form="product")
    teacher = PopulationTeacher(users=OPPOSITE, seed=0)
    reward = VPLReward(OBS, ACT, teacher=teacher, **{**SMALL, "reward_form": "bilinear"})
    rng = np.random.default_rng(0)
    for k in range(2):
        x1, x2 = segments(rng, 96), segments(rng, 96)
        reward.dataset.add(x1, x2, teacher.label_user(k, reward.split_side(x1),
                                                      reward.split_side(x2)).labels,
                           teacher.user_ids[k], 0)
    assert reward.train()["train_acc"] > 0.9
    x1, x2 = segments(rng, 200), segments(rng, 200)
    labels = user_labels(teacher, reward, x1, x2)
    context = []
    for k in range(2):
        c1, c2 = segments(rng, 8), segments(rng, 8)
        context.append((c1, c2, teacher.label_user(k, reward.split_side(c1),
                                                   reward.split_side(c2)).labels))
    assert min(user_accuracies(reward, context, x1, x2, labels)["vpl"]) > 0.9


def user_latents(reward: VPLReward, teacher: PopulationTeacher, rng: np.random.Generator
                 ) -> list[np.ndarray]:
    """Each of the two users' posterior mean from 8 fresh pairs they label (not trained on)."""
    zs = []
    for k in range(2):
        c1, c2 = segments(rng, 8), segments(rng, 8)
        zs.append(reward.infer_latent(c1, c2, teacher.label_user(
            k, reward.split_side(c1), reward.split_side(c2)).labels)[0])
    return zs


def test_the_reward_reads_z_from_the_observation(
        trained: tuple[VPLReward, PopulationTeacher]) -> None:
    reward, teacher = trained
    zs = user_latents(reward, teacher, np.random.default_rng(2))
    s, a = np.zeros((2, 1), np.float32), np.zeros((2, 1), np.float32)
    nxt = np.array([[2.0], [-2.0]], np.float32)  # the same two transitions for both users

    def rewards(z: np.ndarray) -> np.ndarray:
        obs = np.concatenate([s, np.tile(z, (2, 1))], 1)
        nobs = np.concatenate([nxt, np.tile(z, (2, 1))], 1)
        return reward(TransitionBatch.from_arrays(obs, a, nobs))

    high_user, low_user = rewards(zs[0]), rewards(zs[1])
    assert high_user[0] > high_user[1] and low_user[0] < low_user[1]


def test_spo_rewards_are_win_rates_in_0_1_ordered_as_the_reward(
        trained: tuple[VPLReward, PopulationTeacher]) -> None:
    reward, _ = trained
    x = torch.linspace(-2, 2, 9)[:, None].repeat(1, 3)
    z = torch.zeros(9, LATENT)
    ref = torch.as_tensor(segments(np.random.default_rng(3), 40).reshape(-1, 3))
    with torch.no_grad():
        spo = spo_rewards(reward.model, x, z, ref, chunk=100)
        bt = reward.model.rewards(x, z)
    assert ((spo >= 0) & (spo <= 1)).all()
    assert torch.equal(torch.argsort(spo), torch.argsort(bt))


def test_z_is_appended_to_the_observation_and_changes_the_policy_input() -> None:
    env = AppendLatent(gym.make("Pendulum-v1"), latent_dim=2)
    first = env.reset(seed=0)[0]
    assert first.shape == (5,)
    assert not np.allclose(env.reset(seed=1)[0][-2:], first[-2:])  # a fresh z ~ N(0, I)
    assert np.allclose(env.reset(seed=0)[0][-2:], first[-2:])  # seeded: the same z
    obs, *_ = env.step(np.zeros(1, np.float32))
    assert np.allclose(obs[-2:], first[-2:])  # fixed within the episode
    fixed = AppendLatent(gym.make("Pendulum-v1"), latent_dim=2, z=[0.3, -0.2])
    assert fixed.reset(seed=5)[0][-2:].tolist() == pytest.approx([0.3, -0.2])
    agent = PPO("MlpPolicy", DummyVecEnv([lambda: AppendLatent(gym.make("Pendulum-v1"), 2)]),
                seed=0, device="cpu", n_steps=64, batch_size=32)
    assert agent.observation_space.shape == (5,)
    s = first[:3]
    a1 = agent.predict(np.r_[s, 2.0, 2.0], deterministic=True)[0]
    a2 = agent.predict(np.r_[s, -2.0, -2.0], deterministic=True)[0]
    assert not np.allclose(a1, a2)
    with pytest.raises(ValueError, match="z has 3 entries"):
        AppendLatent(gym.make("Pendulum-v1"), latent_dim=2, z=[0.0, 0.0, 0.0])


def test_mutual_information_of_known_cases() -> None:
    assert label_assignments(3).shape == (8, 3)
    # answers independent of z and the posterior the prior: no information
    assert mutual_information(np.zeros((16, 2)), np.zeros((4, 3))) == pytest.approx(0.0)
    # half the users answer yes, half no, each answer quarters the variance: d/2 log 4
    delta = np.r_[np.full(8, 50.0), np.full(8, -50.0)][:, None]
    assert mutual_information(delta, np.full((2, 3), math.log(0.25))) == pytest.approx(
        1.5 * math.log(4))


def test_active_queries_pick_the_pair_that_tells_the_users_apart(
        trained: tuple[VPLReward, PopulationTeacher]) -> None:
    reward, _ = trained
    rng = np.random.default_rng(4)
    same = segments(rng, 1)[0]
    x1 = np.stack([same, np.full((5, 3), 2.0, np.float32), same])
    x2 = np.stack([same, np.full((5, 3), -2.0, np.float32), same])
    idx, gains = select_queries(reward, x1, x2, n_queries=2, n_samples=128)
    assert idx[0] == 1  # the users answer it oppositely; identical segments tell nothing
    assert gains[0] > 0.0 and len(set(idx.tolist())) == 2


def test_bald_information_is_the_users_disagreement() -> None:
    # two equally likely users, each sure and opposite: one bit; users who agree, or a coin
    # that no user is sure of, tell nothing about z
    delta = np.array([[30.0, 30.0, 0.0], [-30.0, 30.0, 0.0]])
    assert bald_information(delta) == pytest.approx([math.log(2), 0.0, 0.0], abs=1e-9)


@pytest.mark.parametrize("criterion", ["bald", "posterior"])
def test_adaptive_queries_follow_the_users_answers(
        trained: tuple[VPLReward, PopulationTeacher], criterion: str) -> None:
    reward, teacher = trained
    rng = np.random.default_rng(5)
    same = segments(rng, 1)[0]
    up, down = np.full((5, 3), 2.0, np.float32), np.full((5, 3), -2.0, np.float32)
    x1, x2 = np.stack([same, up, up]), np.stack([same, down, down])  # pair 2 repeats pair 1
    before = query_information(reward, x1, x2, [], [], criterion)  # type: ignore[arg-type]
    assert before[1] > before[0] + 0.1 and before[2] == pytest.approx(before[1], abs=0.05)
    first, _ = next_query(reward, x1, x2, [], [], criterion)  # type: ignore[arg-type]
    assert first in (1, 2)
    answer = float(user_labels(teacher, reward, x1, x2)[0, first])
    after = query_information(reward, x1, x2, [first], [answer], criterion)  # type: ignore[arg-type]
    assert after[first] == -np.inf  # never asked twice
    if criterion == "bald":  # the posterior now knows the answer to the repeat
        assert after[3 - first] < 0.5 * before[3 - first]


def test_adaptive_queries_give_each_user_their_own_z(
        trained: tuple[VPLReward, PopulationTeacher]) -> None:
    reward, teacher = trained
    rng = np.random.default_rng(6)
    c1, c2 = segments(rng, 40), segments(rng, 40)
    h1, h2 = segments(rng, 200), segments(rng, 200)
    truth = user_labels(teacher, reward, c1, c2)
    context, mus = [], []
    for k in range(2):
        res = ask_adaptively(reward, c1, c2, lambda i, k=k: float(truth[k, i]), n_queries=6)
        assert len(set(res.indices.tolist())) == 6 and len(res.gains) == 6
        assert res.labels.tolist() == truth[k, res.indices].tolist()
        mu, _ = reward.infer_latent(c1[res.indices], c2[res.indices], res.labels)
        assert res.mu == pytest.approx(mu, abs=1e-5)  # the same posterior as infer_latent's
        context.append((c1[res.indices], c2[res.indices], res.labels))
        mus.append(res.mu)
    acc = user_accuracies(reward, context, h1, h2, user_labels(teacher, reward, h1, h2))
    assert min(acc["vpl"]) > 0.9
    assert np.linalg.norm(mus[0] - mus[1]) > 0.5


def test_adaptive_queries_refuse_bad_input(trained: tuple[VPLReward, PopulationTeacher]) -> None:
    reward, _ = trained
    x = segments(np.random.default_rng(7), 3)
    with pytest.raises(ValueError, match="unknown criterion 'mi'; valid: bald, posterior"):
        query_information(reward, x, x, [], [], "mi")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1 pairs asked but 0 answers"):
        next_query(reward, x, x, [0], [])
    with pytest.raises(ValueError, match=r"n_queries must be in \[1, 3\]"):
        ask_adaptively(reward, x, x, lambda i: 1.0, n_queries=4)
    with pytest.raises(ValueError, match=r"answer\(.\) returned 2\.0"):
        ask_adaptively(reward, x, x, lambda i: 2.0, n_queries=1)


def test_population_presets_and_the_user_reward_wrapper() -> None:
    with pytest.raises(ValueError, match="direction has 2 users"):
        PopulationTeacher(env="halfcheetah", preset="direction", n_users=4)
    with pytest.raises(ValueError, match="n_users must be an integer >= 2"):
        PopulationTeacher(env="pendulum", n_users=1)
    four = PopulationTeacher(env="halfcheetah", preset="speed", n_users=4)
    assert [u.goal[0] for u in four.users] == pytest.approx([-3.0, -1.0, 1.0, 3.0])
    zones = PopulationTeacher(env="pick_place", n_users=4)
    zones.check_space(gym.spaces.Box(-1, 1, (34,), np.float32))
    with pytest.raises(ValueError, match="reads observation index 8"):
        four.check_space(gym.spaces.Box(-1, 1, (3,), np.float32))
    env = UserRewardWrapper(gym.make("Pendulum-v1"), user=1, preset="direction")
    env.reset(seed=0)
    obs, r, terminated, truncated, info = env.step(np.ones(1, np.float32))
    assert r == pytest.approx(-obs[2]) and "task_reward" in info  # the clockwise user
    assert not terminated and not truncated


@pytest.mark.parametrize("env_id,kwargs,index", [
    ("HalfCheetah-v5", {}, 8), ("Hopper-v5", {}, 5), ("Walker2d-v5", {}, 8),
    ("Ant-v5", {}, 13), ("Swimmer-v5", {}, 3), ("Humanoid-v5", {}, 22),
    ("Hopper-v5", {"exclude_current_positions_from_observation": False}, 6),
    ("Pendulum-v1", {}, 2), ("CartPole-v1", {}, None)])
def test_the_forward_velocity_is_found_by_probing_the_env(env_id: str, kwargs: dict[str, Any],
                                                          index: int | None) -> None:
    """Gymnasium's layouts: qpos without the root's x (and y for Ant, Swimmer, Humanoid),
    then qvel, whose first entry is the forward velocity; CartPole is not a MuJoCo env."""
    from rewardlearn.vpl.population import velocity_index

    assert velocity_index(env_id, kwargs) == index


def test_direction_preset_on_a_locomotion_env_no_issue_named() -> None:
    walker = PopulationTeacher(env="walker2d", n_users=2)
    assert [(u.index, u.goal) for u in walker.users] == [((8,), (1.0,)), ((8,), (-1.0,))]
    three = PopulationTeacher(env="hopper", n_users=3)
    assert [u.goal[0] for u in three.users] == pytest.approx([-1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="zone is for pick_place"):
        PopulationTeacher(env="hopper", preset="zone")


def test_human_labels_carry_their_annotator_and_vpl_makes_each_a_user(tmp_path: Path) -> None:
    teacher = HumanTeacher("pendulum", root=str(tmp_path), wait="continue")
    teacher.query_dir.mkdir(parents=True)
    clip = ClipRef("a.mp4", 0, 1)
    qid = teacher.store.add_query(teacher.run, clip, clip)
    x = np.zeros((3, 3), np.float32)
    np.savez(teacher.query_dir / f"q{qid}.npz", x1=x, x2=x + 1, term1=np.zeros(3, bool),
             term2=np.zeros(3, bool))
    teacher.store.answer(qid, "right", "alice")
    [pair] = teacher.collect(expected=0)
    assert pair.annotator == "alice" and pair.label == 0.0

    class People:
        """Two annotators with opposite goals answering through the asynchronous protocol."""

        name = "people"

        def ask(self, first: Any, second: Any, round_: int) -> int:
            self.asked = (first.features, second.features)
            return len(first)

        def collect(self, expected: int) -> list[LabelledPair]:
            a, b = self.asked
            out = []
            for k, (x1, x2) in enumerate(zip(a, b, strict=True)):
                up = float(x1[:, 2].sum() > x2[:, 2].sum())
                who = "alice" if k % 2 else "bob"
                out.append(LabelledPair(x1, x2, np.zeros(len(x1), bool), np.zeros(len(x2), bool),
                                        up if who == "alice" else 1.0 - up, k, annotator=who))
            return out

    reward = VPLReward(OBS, ACT, teacher=People(), **{**SMALL, "train_steps": 5, "budget": 16,
                                                       "rounds": 1})
    rng = np.random.default_rng(0)
    for _ in range(40):  # one env: a 40-step episode of random states
        obs = np.r_[rng.normal(size=1), 0.0, 0.0][None].astype(np.float32)
        b = TransitionBatch.from_arrays(obs, np.zeros((1, 1), np.float32), obs)
        b.env_rewards = np.zeros(1, np.float32)
        reward.observe(b, reward(b))
    metrics = reward.run_round(16)
    assert metrics["new_labels"] == 16 and metrics["users"] == 2
    assert sorted(reward.dataset.user_names()) == ["alice", "bob"]
    assert len(reward.dataset.indices("alice")) == 8


def test_posterior_latents_draw_the_agents_z_from_the_labelled_users(
        trained: tuple[VPLReward, PopulationTeacher]) -> None:
    """``policy_latents=posterior``: the bank is the posterior means of random annotation
    sets, and the env draws each episode's ``z`` from that mixture."""
    reward, teacher = trained
    assert reward.cfg.policy_latents == "prior" and reward.policy_latents() is None
    reward.cfg.policy_latents = "posterior"
    try:
        mu = reward.policy_latents()
    finally:
        reward.cfg.policy_latents = "prior"
    assert mu is not None and mu.shape == (reward.cfg.latent_bank_size, LATENT)
    users = user_latents(reward, teacher, np.random.default_rng(4))
    # every set is one user's: each bank mean lies near one of the two users' posteriors
    near = np.linalg.norm(mu[:, None] - np.stack(users)[None], axis=-1)
    apart = float(np.linalg.norm(users[0] - users[1]))
    assert (near.min(1) < apart / 2).all() and len(set(near.argmin(1))) == 2

    env = AppendLatent(gym.make("Pendulum-v1"), latent_dim=2)
    env.set_latent_bank(np.array([[5.0, 5.0], [-5.0, -5.0]]))
    drawn = {tuple(env.reset(seed=s)[0][-2:].tolist()) for s in range(20)}
    assert drawn == {(5.0, 5.0), (-5.0, -5.0)}
    assert env.reset(seed=3)[0][-2:].tolist() == env.reset(seed=3)[0][-2:].tolist()
    fixed = AppendLatent(gym.make("Pendulum-v1"), latent_dim=2, z=[0.3, -0.2])
    fixed.set_latent_bank(np.ones((1, 2)))
    assert fixed.reset(seed=0)[0][-2:].tolist() == pytest.approx([0.3, -0.2])
    with pytest.raises(ValueError, match=r"\(M, 2\) latents with M >= 1, got \(3, 3\)"):
        env.set_latent_bank(np.ones((3, 3)))
    with pytest.raises(ValueError, match="finite latents"):
        env.set_latent_bank(np.full((1, 2), np.nan))


def test_bad_settings_are_refused_in_one_line(compose_cfg: Callable[..., DictConfig],
                                              tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"budget must be >= annotation_size \(8\)"):
        VPLConfig(budget=4)
    with pytest.raises(ValueError, match=r"reward\.model\.latent_dim=8"):
        VPLReward(gym.spaces.Box(-1, 1, (3,), np.float32), ACT)  # no z appended
    for overrides, message in (
            (["reward.model.latent_dim=0"], "latent_dim must be >= 1"),
            (["reward.model.policy_latents=users"], "policy_latents must be one of"),
            (["reward.model.reward_form=product"], "reward_form must be one of"),
            (["teacher=oracle"], "use teacher=population"),
            (["teacher.preset=zone"], "zone is for pick_place")):
        cfg = compose_cfg("env=pendulum", "agent=ppo", "reward=vpl", "teacher=population",
                          "total_timesteps=64", "video.enabled=false", *overrides)
        with pytest.raises(SystemExit) as err:
            run(cfg, tmp_path / "run", exit_on_input_error=True)
        text = str(err.value)
        assert text.startswith("error:") and message in text and "\n" not in text
        assert not (tmp_path / "run").exists()  # refused before anything was made


TINY = ["env=pendulum", "reward=vpl", "teacher=population", "total_timesteps=1024",
        "reward.model.budget=64", "reward.model.rounds=2", "reward.model.first_round_at=256",
        "reward.model.train_steps=20", "reward.model.hidden_sizes=[32,32]",
        "reward.model.segment_length=10", "reward.model.batch_sets=8", "reward.model.device=cpu",
        "eval.n_episodes=1", "video.enabled=false", "progress_bar=false", "torch_threads=1"]


@pytest.mark.parametrize(("agent", "latents", "form"), [
    ("ppo", "prior", "concat"), ("sac", "prior", "concat"), ("ppo", "posterior", "concat"),
    ("ppo", "prior", "bilinear")])
def test_train_py_runs_vpl_end_to_end_and_the_saved_model_reloads(
        compose_cfg: Callable[..., DictConfig], tmp_path: Path, agent: str,
        latents: str, form: str) -> None:
    extra = (["+agent.kwargs.n_steps=256", "+agent.kwargs.batch_size=64",
              "+agent.kwargs.n_epochs=1"] if agent == "ppo" else
             ["+agent.kwargs.learning_starts=200", "total_timesteps=600",
              "reward.model.first_round_at=300"])
    cfg = compose_cfg(f"agent={agent}", *TINY, *extra,
                      f"reward.model.policy_latents={latents}", f"reward.model.reward_form={form}")
    summary = run(cfg, tmp_path / "run")
    training = summary["reward_training"]
    assert training["labels_used"] == training["queries_asked"] == 64
    assert training["users"] == 2 and training["feedback_rounds"] == 2
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == summary
    loaded = load_reward_model(tmp_path / "run")
    assert isinstance(loaded, VPLReward)
    assert loaded.model.reward_form == form
    # posterior: every round handed the training envs a bank of the users' posteriors
    assert all(("policy_z_norm" in h) == (latents == "posterior") for h in loaded.history)
    assert loaded.observation_space.shape == (3 + 8,)  # Pendulum's 3 numbers and z
    assert sorted(loaded.dataset.user_names()) == ["user0", "user1"]
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(4, 11)).astype(np.float32)
    b = TransitionBatch.from_arrays(obs, rng.uniform(-1, 1, (4, 1)).astype(np.float32), obs)
    from_pt = load_reward_model(tmp_path / "run" / "reward_model.pt")
    np.testing.assert_allclose(loaded(b), from_pt(b), rtol=1e-6)  # both saved formats agree


def test_review_page_annotators_become_vpl_users(compose_cfg: Callable[..., DictConfig],
                                                  tmp_path: Path) -> None:
    """teacher=human with reward=vpl: clips rendered from [s, z] envs, two people answer over
    HTTP, and each becomes a user of the saved model."""
    import threading

    from conftest import annotate_over_http

    from rewardlearn.review.server import ReviewServer

    videos = tmp_path / "videos"
    videos.mkdir()
    cfg = compose_cfg("env=pendulum", "agent=ppo", "reward=vpl", "teacher=human",
                      f"teacher.root={videos}", "teacher.clip_size=32", "teacher.timeout_s=60",
                      "total_timesteps=512", "+agent.kwargs.n_steps=128",
                      "+agent.kwargs.batch_size=64", "+agent.kwargs.n_epochs=1",
                      "reward.model.budget=8", "reward.model.rounds=1",
                      "reward.model.annotation_size=4", "reward.model.first_round_at=128",
                      "reward.model.segment_length=5", "reward.model.train_steps=5",
                      "reward.model.hidden_sizes=[16]", "reward.model.device=cpu",
                      "eval.n_episodes=1", "video.n_episodes=0", "progress_bar=false")
    stop = threading.Event()
    with ReviewServer(videos, port=0) as server:
        worker = threading.Thread(target=annotate_over_http, args=(
            server.url, stop, (("ann", "left"), ("bob", "right"))))
        worker.start()
        try:
            summary = run(cfg, tmp_path / "run")
        finally:
            stop.set()
            worker.join(10)
    assert summary["reward_training"]["labels_used"] == 8
    saved = load_reward_model(tmp_path / "run" / "reward_model.pt")
    assert isinstance(saved, VPLReward)
    assert sorted(saved.dataset.user_names()) == ["ann", "bob"]
    assert {float(v) for v in saved.dataset.labels[saved.dataset.indices("ann")]} == {1.0}
    assert {float(v) for v in saved.dataset.labels[saved.dataset.indices("bob")]} == {0.0}
