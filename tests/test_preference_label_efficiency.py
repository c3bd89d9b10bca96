"""Issue 19: the exact regret model, absorbing padding for envs that terminate, SURF,
bagged members, QPA's recent-episode queries and hybrid replay, held-out early stopping."""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from rewardlearn.preference.augment import (
    bootstrap_indices,
    crop_batch,
    crop_windows,
    pseudo_labels,
)
from rewardlearn.preference.buffer import SegmentBuffer, Segments
from rewardlearn.preference.configuration import PreferenceConfig
from rewardlearn.preference.hybrid_replay import HybridReplayBuffer, hybrid_indices
from rewardlearn.preference.learner import PreferenceDataset, PreferenceLearner
from rewardlearn.preference.modeling import RewardEnsemble, preference_logits
from rewardlearn.preference.reward import PreferenceReward
from rewardlearn.preference.teachers import SyntheticTeacher

CPU = torch.device("cpu")


def _linear(w: list[float], v: list[float] | None = None) -> RewardEnsemble:
    """One member with r(x) = w . x and V(x) = v . x exactly (identity norm)."""
    ens = RewardEnsemble(len(w), 1, hidden_sizes=(), value_dim=len(w) if v else 0)
    layers: list[Any] = [ens.members[0], *ens.values]
    with torch.no_grad():
        for net, weights in zip(layers, [w, v], strict=False):
            net[0].weight.copy_(torch.tensor([weights]))
            net[0].bias.zero_()
    return ens


# ---------------------------------------------------------------- 1. regret (Knox et al.)

def test_regret_uses_the_state_after_the_last_action_by_hand() -> None:
    """-regret = sum r + V(s_L) - V(s_0); s_L = next_obs of the last step, V(s_L)=0 if it
    terminated (not if truncated)."""
    ens = _linear([1.0, 0.0], v=[0.0, 1.0])
    x1 = torch.tensor([[[1.0, 5.0], [1.0, 7.0]]])  # sum r = 2, V(s_0) = 5, last obs V = 7
    x2 = torch.zeros(1, 2, 2)
    nxt = torch.tensor([[0.0, 9.0]])  # s_L: V(s_L) = 9
    zero = torch.zeros(1, 2)
    alive = torch.tensor([[False, False]])
    logit = preference_logits(ens, x1, x2, "regret", term1=alive, term2=alive,
                              next1=nxt, next2=zero)
    assert float(logit.detach()) == pytest.approx(2 + 9 - 5)  # 6, not 2 + 7 - 5
    ended = torch.tensor([[False, True]])
    logit = preference_logits(ens, x1, x2, "regret", term1=ended, term2=alive,
                              next1=nxt, next2=zero)
    assert float(logit.detach()) == pytest.approx(2 + 0 - 5)


def _episode_buffer(next_states: bool = True) -> SegmentBuffer:
    """Episode 0: 4 steps, terminated; episode 1: 3 steps, truncated; then 2 running steps.
    Features are [t, episode]; next state = [t + 100, episode] (never the reset obs)."""
    buf = SegmentBuffer(n_envs=1, feature_dim=2)
    for ep, n, term in ((0, 4, True), (1, 3, False), (2, 2, False)):
        for t in range(n):
            last = t == n - 1 and ep < 2
            buf.add(np.array([[t, ep]], np.float32), np.array([1.0], np.float32),
                    np.array([last and term]), np.array([last and not term]),
                    next_states=np.array([[t + 100, ep]], np.float32) if next_states else None)
    return buf


def test_segments_keep_next_obs_of_their_last_step_and_the_learner_uses_it() -> None:
    buf = _episode_buffer()
    segs = buf.sample(200, 2, np.random.default_rng(0))
    last_t = segs.features[:, -1, 0]
    assert segs.next_state is not None
    np.testing.assert_array_equal(segs.next_state[:, 0], last_t + 100)
    np.testing.assert_array_equal(segs.next_state[:, 1], segs.features[:, -1, 1])
    # the learner's regret logits match the hand computation with V(s_L) at next_obs
    cfg = PreferenceConfig(preference_model="regret", ensemble_size=1, device="cpu",
                           absorbing="off")
    learner = PreferenceLearner(cfg, _linear([1.0, 0.0], v=[1.0, 0.0]), None, CPU)
    zero = Segments(np.zeros_like(segs.features), segs.true_rewards, np.zeros_like(
        segs.terminated), segs.episode, segs.start, next_state=np.zeros_like(segs.next_state))
    p = learner.member_probs(segs, zero)[0]
    ret = segs.features[:, :, 0].sum(1)
    v_end = np.where(segs.terminated[:, -1], 0.0, last_t + 100)
    expected = ret + v_end - segs.features[:, 0, 0]
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-expected)), rtol=1e-5)
    old = PreferenceConfig(preference_model="regret", ensemble_size=1, device="cpu",
                           absorbing="off", regret_end_state="last_obs")
    p_old = PreferenceLearner(old, learner.ensemble, None, CPU).member_probs(segs, zero)[0]
    assert not np.allclose(p_old, p)  # the setting really switches the end state


# ----------------------------------------------------- 2. episodes that end early (absorbing)

def test_absorbing_padding_only_after_terminations_and_keeps_lengths() -> None:
    buf = _episode_buffer()
    assert buf.seen_termination
    segs = buf.sample(500, 6, np.random.default_rng(0), absorbing=True)
    assert segs.absorbing is not None and segs.length == 6
    ep = segs.features[:, 0, 1]
    padded = segs.absorbing.any(1)
    assert padded.all() and set(np.unique(ep)) == {0.0}  # only episode 0 (terminated) fits
    n_real = segs.real_lengths()
    # padding starts right after the terminating step, has zero reward and zero features
    for k in range(len(segs)):
        assert segs.terminated[k, n_real[k] - 1] and not segs.absorbing[k, : n_real[k]].any()
        assert (segs.true_rewards[k, n_real[k]:] == 0).all()
        assert (segs.features[k, n_real[k]:] == 0).all()
    # truncated and running episodes are never padded: length 2 windows stay inside them
    short = buf.sample(2000, 3, np.random.default_rng(1), absorbing=True)
    assert short.absorbing is not None
    trunc = short.features[:, 0, 1] > 0
    assert not short.absorbing[trunc].any() and short.absorbing[~trunc].any()
    assert buf.num_windows(6) == 0 and buf.num_windows(6, absorbing=True) == 4


def _survival_buffer(seed: int = 0) -> SegmentBuffer:
    """Living pays: true reward 1 + 0.1 x0 per step; episodes terminate after 3-40 steps."""
    rng = np.random.default_rng(seed)
    buf = SegmentBuffer(n_envs=1, feature_dim=2)
    for _ in range(150):
        n = int(rng.integers(3, 41))
        for t in range(n):
            x = rng.normal(size=(1, 2)).astype(np.float32)
            buf.add(x, 1.0 + 0.1 * x[:, 0], np.array([t == n - 1]), np.array([False]))
    return buf


def _learn_survival(absorbing: str) -> PreferenceReward:
    reward = PreferenceReward(gym.spaces.Box(-10, 10, (2,)), gym.spaces.Box(-1, 1, (0,)),
                              teacher=SyntheticTeacher(seed=0), segment_length=20, budget=150,
                              queries_per_round=50, hidden_sizes=[16], device="cpu",
                              use_action=False, absorbing=absorbing, max_epochs=100, seed=0)
    buf = _survival_buffer()
    for _ in range(3):
        reward.learner.run_round(buf, 50)
    return reward


@pytest.mark.usefixtures("one_torch_thread")
def test_learned_reward_prefers_living_longer_with_absorbing_padding() -> None:
    reward = _learn_survival("auto")
    assert reward.learner.absorbing_active  # detected from the terminated flags
    x = np.random.default_rng(3).normal(size=(400, 2)).astype(np.float32)
    r, _ = reward.reward_from_features(x)
    # the agent's reward is relative to being dead: living steps are clearly positive,
    # so 30 steps alive beat 10 steps alive then falling (0 afterwards)
    assert r.mean() > 2 * r.std() and r.mean() > 0
    assert r[:30].sum() > r[30:40].sum()
    # and the within-life ordering is kept: higher x0, higher reward
    assert np.corrcoef(r, x[:, 0])[0, 1] > 0.2


@pytest.mark.usefixtures("one_torch_thread")
def test_without_absorbing_padding_the_level_is_not_pinned() -> None:
    """The pitfall the padding fixes: equal-length living segments leave the offset free."""
    reward = _learn_survival("off")
    assert not reward.learner.absorbing_active
    assert all(p == 0 for p in reward.learner.dataset.pad1 + reward.learner.dataset.pad2)
    x = np.random.default_rng(3).normal(size=(400, 2)).astype(np.float32)
    r, _ = reward.reward_from_features(x)
    assert abs(r.mean()) < 2 * r.std()  # mean not pinned far above the spread


def test_padded_pairs_are_stored_with_their_real_steps_and_pads() -> None:
    buf = _episode_buffer()
    segs = buf.sample(4, 6, np.random.default_rng(0), absorbing=True)
    ds = PreferenceDataset()
    ds.add(segs.take(np.arange(2)), segs.take(np.arange(2, 4)), np.array([1.0, 0.0]), 0)
    for i in range(2):
        assert len(ds.x1[i]) + ds.pad1[i] == 6 == len(ds.x2[i]) + ds.pad2[i]
    batch = ds.tensors(np.arange(2), CPU)
    assert torch.equal(batch["real1"] + batch["abs1"], torch.ones(2, 6))
    old = PreferenceDataset.from_state({k: v for k, v in ds.state_dict().items()
                                        if k in ("x1", "x2", "term1", "term2", "labels",
                                                 "rounds")})
    assert old.pad1 == [0, 0] and old.next1 == [None, None]  # checkpoints saved before


def test_agent_reward_is_relative_to_the_absorbing_reward() -> None:
    reward = PreferenceReward(gym.spaces.Box(-10, 10, (2,)), gym.spaces.Box(-1, 1, (0,)),
                              hidden_sizes=[4], device="cpu", use_action=False,
                              ensemble_size=2, absorbing="on")
    x = np.zeros((3, 2), np.float32)
    before, _ = reward.reward_from_features(x)
    with torch.no_grad():
        reward.ensemble.absorbing.fill_(2.0)
    after, _ = reward.reward_from_features(x)
    np.testing.assert_allclose(after, before - 2.0, rtol=1e-6)
    state = reward.state_dict()
    del state["ensemble"]["absorbing"], state["absorbing_active"]  # as saved before
    reward.load_state_dict(state)
    assert float(reward.ensemble.absorbing.detach().abs().sum()) == 0.0


# --------------------------------------------------------------------------- 3. SURF

def test_pseudo_labels_only_strictly_above_the_threshold() -> None:
    p = np.array([0.99, 0.991, 0.01, 0.009, 0.5, 0.7, 1.0, 0.0])
    idx, lab = pseudo_labels(p, tau=0.99)
    assert idx.tolist() == [1, 3, 6, 7]
    assert lab.tolist() == [1.0, 0.0, 1.0, 0.0]
    conf = np.maximum(p, 1 - p)
    assert (conf[idx] > 0.99).all() and (conf[np.setdiff1d(np.arange(8), idx)] <= 0.99).all()


def test_crops_lie_within_the_segment_and_match_in_length() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 60, size=5000)
    c, s1, s2 = crop_windows(lengths, 0.5, rng)
    assert (c >= np.ceil(0.5 * lengths)).all() and (c <= lengths).all()
    assert (s1 >= 0).all() and (s2 >= 0).all()
    assert (s1 + c <= lengths).all() and (s2 + c <= lengths).all()
    assert (s1 != s2).any()  # independent offsets


def test_crop_batch_cuts_both_sides_to_the_same_window_of_real_steps() -> None:
    ds = PreferenceDataset()
    x1 = np.arange(10, dtype=np.float32).reshape(10, 1)
    x2 = 100 + np.arange(10, dtype=np.float32).reshape(10, 1)
    ds.add_pairs([x1], [x2], [np.zeros(10, bool)], [np.zeros(10, bool)], [1.0], 0,
                 next1=[np.array([10.0], np.float32)], next2=[np.array([110.0], np.float32)])
    full = ds.tensors(np.arange(1), CPU)
    out = crop_batch(full, np.array([4]), np.array([2]), np.array([6]))
    assert out["x1"][0, :4, 0].tolist() == [2, 3, 4, 5]
    assert out["x2"][0, :4, 0].tolist() == [106, 107, 108, 109]
    assert out["real1"].sum() == out["real2"].sum() == 4
    assert float(out["next1"][0, 0]) == 6.0  # the row after the window
    assert float(out["next2"][0, 0]) == 110.0  # the window reaches the end: stored s_L
    assert float(out["labels"][0]) == 1.0


@pytest.mark.usefixtures("one_torch_thread")
def test_surf_training_adds_confident_pseudo_labels() -> None:
    buf = _survival_buffer()
    cfg = PreferenceConfig.from_kwargs({
        "segment_length": 10, "budget": 60, "queries_per_round": 30, "hidden_sizes": [16],
        "max_epochs": 40, "lr": 5e-3, "device": "cpu", "seed": 0, "use_action": False,
        "early_stop_acc": 1.0, "surf": {"enabled": True, "tau": 0.8, "unlabelled_ratio": 2.0}})
    learner = PreferenceLearner(cfg, RewardEnsemble(2, 3, [16], seed=0),
                                SyntheticTeacher(seed=0), CPU)
    learner.run_round(buf, 30)
    metrics = learner.run_round(buf, 30)
    pool = learner.unlabelled
    assert pool is not None and len(pool) == 2 * (30 + 30)
    assert metrics["pseudo_labels"] > 0
    chunks = learner._pseudo_batches(3)
    taken = np.concatenate([c[0] for c in chunks])
    with torch.no_grad():
        p = torch.sigmoid(learner._logits(pool.tensors(np.arange(len(pool)), CPU))).mean(0
                                                                                      ).numpy()
    assert len(taken) and (np.maximum(p[taken], 1 - p[taken]) > 0.8).all()
    others = np.setdiff1d(np.arange(len(pool)), taken)
    assert (np.maximum(p[others], 1 - p[others]) <= 0.8).all()
    got = np.concatenate([c[1]["labels"].numpy() for c in chunks])
    np.testing.assert_array_equal(got, (p[np.concatenate([c[0] for c in chunks])] > 0.5))
    with pytest.raises(ValueError, match="tau"):
        PreferenceConfig.from_kwargs({"surf": {"tau": 1.0}})


# ------------------------------------------------------------------------ 4. bagging

def test_bagged_members_see_different_resamples_with_replacement() -> None:
    rng = np.random.default_rng(0)
    idx = bootstrap_indices(np.arange(100), 3, rng)
    assert all(len(i) == 100 for i in idx)
    assert all(len(np.unique(i)) < 100 for i in idx)  # duplicates: with replacement
    assert not np.array_equal(np.sort(idx[0]), np.sort(idx[1]))
    buf = _survival_buffer()
    for bagging in (True, False):
        cfg = PreferenceConfig(segment_length=10, budget=40, queries_per_round=40,
                               hidden_sizes=[8], max_epochs=2, device="cpu", bagging=bagging,
                               use_action=False)
        learner = PreferenceLearner(cfg, RewardEnsemble(2, 3, [8], seed=0),
                                    SyntheticTeacher(seed=0), CPU)
        learner.run_round(buf, 40)
        seen = learner.last_member_indices
        distinct = {tuple(np.sort(s)) for s in seen}
        assert (len(distinct) == 3) == bagging
        assert all((len(np.unique(s)) < len(s)) == bagging for s in seen)


# ---------------------------------------------------------------------------- 5. QPA

def test_queries_come_from_the_most_recent_episodes() -> None:
    buf = SegmentBuffer(n_envs=1, feature_dim=1)
    for ep in range(20):
        for t in range(30):
            buf.add(np.array([[ep]], np.float32), np.array([1.0], np.float32),
                    np.array([False]), np.array([t == 29]))
    segs = buf.sample(300, 10, np.random.default_rng(0), recent=3)
    assert set(np.unique(segs.features[:, 0, 0])) == {17.0, 18.0, 19.0}
    cfg = PreferenceConfig(segment_length=10, budget=20, queries_per_round=20, device="cpu",
                           hidden_sizes=[8], query_pool_episodes=2, use_action=False,
                           max_epochs=1)
    learner = PreferenceLearner(cfg, RewardEnsemble(1, 3, [8], seed=0), SyntheticTeacher(seed=0),
                                CPU)
    learner.run_round(buf, 20)
    assert {float(x[0, 0]) for x in learner.dataset.x1 + learner.dataset.x2} <= {18.0, 19.0}


def test_hybrid_replay_draws_the_recent_share_from_the_recent_window() -> None:
    rng = np.random.default_rng(0)
    idx = hybrid_indices(1000, pos=500, full=True, buffer_size=1000, recent_fraction=0.25,
                         recent_window=50, rng=rng)
    recent = (idx >= 450) & (idx < 500)
    assert recent[:250].all() and 0 < recent[250:].mean() < 0.2
    space = gym.spaces.Box(-1, 1, (2,), np.float32)
    rb = HybridReplayBuffer(100, space, space, "cpu", recent_fraction=1.0, recent_window=5,
                            seed=0)
    for k in range(30):
        rb.add(np.full((1, 2), k), np.full((1, 2), k), np.zeros((1, 2)), np.array([k]),
               np.array([False]), [{}])
    assert set(rb.sample(64).rewards.reshape(-1).tolist()) <= {25.0, 26.0, 27.0, 28.0, 29.0}


def test_build_agent_uses_hybrid_replay_when_asked(compose_cfg: Callable[..., Any],
                                                    tmp_path: Path) -> None:
    from rewardlearn.agents import build_agent
    from rewardlearn.env_factory import make_vec_env
    from rewardlearn.wrappers import RewardVecEnvWrapper

    venv = make_vec_env("pendulum", n_envs=1, seed=0)
    reward = PreferenceReward(venv.observation_space, venv.action_space, hidden_sizes=[4],
                              device="cpu", replay_recent_fraction=0.5, replay_recent_window=7)
    cfg = compose_cfg("env=pendulum", "agent=sac", "device=cpu")
    agent = build_agent(cfg, RewardVecEnvWrapper(venv, reward), tmp_path, reward)
    rb = getattr(agent, "replay_buffer", None)
    assert isinstance(rb, HybridReplayBuffer) and rb.recent_fraction == 0.5
    assert rb.recent_window == 7
    plain = PreferenceReward(venv.observation_space, venv.action_space, hidden_sizes=[4],
                             device="cpu")
    agent = build_agent(cfg, RewardVecEnvWrapper(make_vec_env("pendulum", n_envs=1, seed=0),
                                                 plain), tmp_path, plain)
    assert not isinstance(getattr(agent, "replay_buffer", None), HybridReplayBuffer)


# ------------------------------------------------------------ 7. held-out early stopping

@pytest.mark.usefixtures("one_torch_thread")
def test_heldout_early_stopping_stops_and_keeps_the_best_epoch() -> None:
    buf = _survival_buffer()
    cfg = PreferenceConfig(segment_length=10, budget=100, queries_per_round=100,
                           hidden_sizes=[16], max_epochs=200, device="cpu", use_action=False,
                           early_stop="heldout", holdout_frac=0.2, patience=2,
                           early_stop_acc=1.0, lr=1e-2)
    learner = PreferenceLearner(cfg, RewardEnsemble(2, 3, [16], seed=0),
                                SyntheticTeacher(seed=0), CPU)
    m = learner.run_round(buf, 100)
    assert m["epochs"] < 200 and math.isfinite(m["holdout_loss"])
    held = np.setdiff1d(np.arange(100), learner.last_member_indices[0])
    assert len(held) == 20  # the held-out labels are not trained on
    with torch.no_grad():
        batch = learner.dataset.tensors(held, CPU)
        from rewardlearn.preference.modeling import preference_loss
        loss = float(preference_loss(learner._logits(batch), batch["labels"]))
    assert loss == pytest.approx(m["holdout_loss"], rel=1e-4)  # the best epoch's weights


def test_few_labels_are_never_held_out() -> None:
    """Held-out stopping takes ``holdout_frac`` of the labels only once that is at least
    ``holdout_min``: at 25 labels every one is trained on (5 of 10 used to be held out)."""
    cfg = PreferenceConfig(early_stop="heldout", holdout_frac=0.1, holdout_min=5,
                           device="cpu")
    learner = PreferenceLearner(cfg, RewardEnsemble(2, 3, [16], seed=0),
                                SyntheticTeacher(seed=0), CPU)
    for n, held in ((10, 0), (25, 0), (40, 0), (50, 5), (100, 10), (1000, 100)):
        train_idx, held_idx = learner._split_holdout(n)
        assert len(held_idx) == held and len(train_idx) == n - held
        assert sorted(np.r_[train_idx, held_idx].tolist()) == list(range(n))
    cfg_acc = PreferenceConfig(early_stop="train_acc", device="cpu")
    learner = PreferenceLearner(cfg_acc, RewardEnsemble(2, 3, [16], seed=0),
                                SyntheticTeacher(seed=0), CPU)
    assert len(learner._split_holdout(1000)[1]) == 0


def _schedule_run(**settings: Any) -> tuple[PreferenceReward, Any, list[int]]:
    """PPO on pendulum (2 envs, 4096 steps) with a tiny preference reward: the reward, its
    callback, and the labels each round asked."""
    from stable_baselines3 import PPO

    from rewardlearn.env_factory import make_vec_env
    from rewardlearn.preference.reward import PreferenceCallback
    from rewardlearn.wrappers import RewardVecEnvWrapper

    venv = make_vec_env("pendulum", n_envs=2, seed=0)
    reward = PreferenceReward(venv.observation_space, venv.action_space, hidden_sizes=[8],
                              device="cpu", teacher=SyntheticTeacher(seed=0), first_round_at=128,
                              segment_length=10, max_epochs=2, **settings)
    venv = RewardVecEnvWrapper(venv, reward)
    callback = PreferenceCallback(reward)
    agent = PPO("MlpPolicy", venv, n_steps=64, batch_size=64, n_epochs=1, device="cpu", seed=0)
    agent.learn(4096, callback=callback)
    asked = np.diff([0, *[int(m["labels_used"]) for m in reward.history]]).tolist()
    return reward, callback, asked


@pytest.mark.parametrize(("frac", "expected"), [(0.0, [5, 5, 5, 5, 5]), (0.4, [10, 5, 5, 5])])
def test_first_round_takes_its_share_of_the_budget_and_rounds_fit_the_rest(
        frac: float, expected: list[int], caplog: pytest.LogCaptureFixture) -> None:
    """``first_round_frac``: the first round asks ``max(queries_per_round, ceil(frac x
    budget))`` labels, the later ones ``queries_per_round``; the rounds are spread so that
    the whole budget is asked by ``feedback_until``. PPO with few labels on this default
    schedule is pointed to the few-label recipe."""
    with caplog.at_level(logging.INFO, logger="rewardlearn"):
        reward, callback, asked = _schedule_run(budget=25, queries_per_round=5,
                                                first_round_frac=frac, feedback_until=0.5)
    hints = PreferenceConfig(budget=25, queries_per_round=5).run_warnings("ppo", 4096)
    assert any("reward.model.rounds=25 reward.model.feedback_until=0.25" in h for h in hints)
    assert "preference feedback plan" in caplog.text  # the whole plan, logged up front
    assert asked == expected == [r.queries for r in callback.plan.rounds]
    assert reward.learner.budget_left == 0
    # rounds evenly spread from the first at 128 steps to feedback_until x 4096 steps
    gap = (2048 - 128) // (len(expected) - 1)
    assert [r.at for r in callback.plan.rounds] == [128 + k * gap for k in range(len(expected))]
    assert reward.history[-1]["timesteps"] <= 2048 + 128
    with pytest.raises(ValueError, match="first_round_frac"):
        PreferenceConfig(first_round_frac=1.5)


def test_rounds_splits_the_budget_into_that_many_rounds_by_feedback_until(
        caplog: pytest.LogCaptureFixture) -> None:
    """``rounds=R`` asks ``ceil(budget / R)`` labels a round (whatever ``queries_per_round``
    said), all of them by ``feedback_until``: the few-label recipe of ``docs/preference.md``."""
    assert PreferenceConfig(budget=25, rounds=25).queries_per_round == 1
    assert PreferenceConfig(budget=1000, rounds=25, queries_per_round=7).queries_per_round == 40
    assert PreferenceConfig(budget=10, rounds=25).queries_per_round == 1
    with pytest.raises(ValueError, match="rounds must be >= 1 or null"):
        PreferenceConfig(rounds=0)
    reward, callback, asked = _schedule_run(budget=12, rounds=6, queries_per_round=40,
                                            feedback_until=0.25)
    chosen = PreferenceConfig(budget=12, rounds=6, feedback_until=0.25)
    assert not any("few labels" in h for h in chosen.run_warnings("ppo", 4096))  # no hint
    assert asked == [2] * 6
    assert reward.learner.budget_left == 0
    assert [r.at for r in callback.plan.rounds] == [128 + k * 179 for k in range(6)]
    # a round runs at the first rollout end (128 steps) past its time: at most 5 late ones
    assert reward.history[-1]["timesteps"] <= 1024 + 5 * 128



def test_round_spacing_packs_the_early_rounds_and_still_asks_until_feedback_until() -> None:
    """``round_spacing=p``: round k of n starts at ``first + span x (k / (n - 1))^p``, at the
    first rollout end (128 steps here) past that step; the last one at ``feedback_until``."""
    reward, callback, asked = _schedule_run(budget=10, rounds=5, round_spacing=2.0,
                                            feedback_until=0.75)
    assert asked == [2] * 5
    # span = 0.75 x 4096 - 128 = 2944: planned 128, 312, 864, 1784, 3072
    assert [r.at for r in callback.plan.rounds] == [128, 312, 864, 1784, 3072]
    assert [int(m["timesteps"]) for m in reward.history] == [128, 384, 896, 1792, 3072]
    with pytest.raises(ValueError, match="round_spacing must be > 0"):
        PreferenceConfig(round_spacing=0)
    with pytest.raises(ValueError, match="it needs interval: null"):
        PreferenceConfig(round_spacing=2, interval=1000)


# ------------------------------------------------------- 8. bf16 training (compute target)

def test_train_precision_picks_the_dtype_and_refuses_unknown_names() -> None:
    from rewardlearn.preference.learner import train_dtype
    from rewardlearn.utils import cpu_has_native_bf16

    assert train_dtype("fp32", CPU) == torch.float32
    assert train_dtype("bf16", CPU) == torch.bfloat16
    native = torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    assert train_dtype("auto", CPU) == native
    with pytest.raises(ValueError, match="train_precision must be one of"):
        PreferenceConfig(train_precision="fp16")


@pytest.mark.usefixtures("one_torch_thread")
def test_bf16_training_runs_the_layers_in_bf16_and_keeps_everything_else_float32() -> None:
    """``train_precision=bf16``: the members' matmuls run in bf16 while training (seen by a
    hook), but the weights, Adam's state, the metrics and the agent's reward stay float32,
    and the labels are learned as well as in fp32 (the living-pays preferences)."""
    buf = _survival_buffer()
    feats = torch.as_tensor(buf.features_sample(500, np.random.default_rng(1)))
    out: dict[str, dict[str, float]] = {}
    for precision in ("fp32", "bf16"):
        reward = PreferenceReward(gym.spaces.Box(-10, 10, (2,)), gym.spaces.Box(-1, 1, (0,)),
                                  teacher=SyntheticTeacher(seed=0), segment_length=20,
                                  budget=100, queries_per_round=100, hidden_sizes=[16],
                                  device="cpu", use_action=False, absorbing="off",
                                  train_precision=precision, seed=0)
        seen: set[torch.dtype] = set()
        hook = reward.ensemble.members[0][0].register_forward_hook(
            lambda _m, _i, o, seen=seen: seen.add(o.dtype))
        out[precision] = reward.learner.run_round(buf, 100)
        hook.remove()
        assert seen == ({torch.float32, torch.bfloat16} if precision == "bf16"
                        else {torch.float32})  # bf16 in training, fp32 for the metrics
        assert all(p.dtype == torch.float32 for p in reward.ensemble.parameters())
        assert all(v.dtype == torch.float32 for st in reward.learner.optimizer.state.values()
                   for v in st.values() if torch.is_floating_point(v))
        agent_r, _ = reward.reward_from_features(feats.numpy())
        assert agent_r.dtype == np.float32
        with torch.no_grad():
            exact = reward.ensemble(feats).mean(0).numpy()  # a plain float32 forward
        np.testing.assert_allclose(agent_r, exact, rtol=1e-5, atol=1e-5)
    assert out["bf16"]["train_acc"] >= out["fp32"]["train_acc"] - 0.05
    assert out["bf16"]["pearson"] > 0.5 and out["fp32"]["pearson"] > 0.5


# ------------------------------------------- 9. background rounds (``background_lag``)

@pytest.mark.usefixtures("one_torch_thread")
def test_a_background_round_trains_the_same_model_as_a_foreground_one() -> None:
    """The worker thread runs the very same training: same labels, same weights, same
    metrics, and the reward the agent is served meanwhile is the pre-round copy."""
    buf = _survival_buffer()
    feats = buf.features_sample(300, np.random.default_rng(1))
    rewards = []
    for background in (False, True):
        reward = _learn_survival("auto")  # three foreground rounds, then one more
        reward.cfg.budget = 200
        before, _ = reward.reward_from_features(feats)
        if background:
            reward.serving = copy.deepcopy(reward.ensemble)
        m = reward.learner.run_round(buf, 50, background=background)
        if background:
            assert m["background"] == 1.0 and reward.learner.training_in_background
            with pytest.raises(RuntimeError, match="still training"):
                reward.learner.run_round(buf, 50)
            served, _ = reward.reward_from_features(feats)
            np.testing.assert_array_equal(served, before)  # the copy, while it trains
            saved = reward.state_dict()  # a checkpoint now: the new labels, the served model
            assert len(saved["dataset"]["labels"]) == 200
            for k, v in reward.serving.state_dict().items():
                assert torch.equal(saved["ensemble"][k], v)
            m.update(reward.learner.finish_background())
            reward.serving = None
            assert m["background_s"] > 0 and m["wait_s"] >= 0
            assert not reward.learner.training_in_background
        after, _ = reward.reward_from_features(feats)
        assert not np.array_equal(after, before)  # the round changed the reward
        rewards.append((after, m, len(reward.learner.dataset)))
    (fg, m_fg, n_fg), (bg, m_bg, n_bg) = rewards
    assert n_fg == n_bg == 200
    np.testing.assert_array_equal(fg, bg)
    for key in ("train_acc", "epochs", "heldout_acc", "pearson"):
        assert m_fg[key] == m_bg[key]


def test_a_failed_background_round_raises_in_the_callers_thread() -> None:
    reward = _learn_survival("auto")

    def broken() -> dict[str, float]:
        raise ValueError("boom")

    reward.cfg.budget = 200
    reward.learner.train = broken  # type: ignore[method-assign]
    reward.learner.run_round(_survival_buffer(), 10, background=True)
    with pytest.raises(RuntimeError, match="background thread") as err:
        reward.learner.finish_background()
    assert isinstance(err.value.__cause__, ValueError)


def _ppo_preference_run(lag: float | None) -> tuple[PreferenceReward, Any, np.ndarray]:
    from stable_baselines3 import PPO

    from rewardlearn.env_factory import make_vec_env
    from rewardlearn.preference.reward import PreferenceCallback
    from rewardlearn.wrappers import RewardVecEnvWrapper

    venv = make_vec_env("pendulum", n_envs=2, seed=0)
    reward = PreferenceReward(venv.observation_space, venv.action_space, hidden_sizes=[8],
                              device="cpu", teacher=SyntheticTeacher(seed=0), budget=20,
                              queries_per_round=5, first_round_at=128, feedback_until=0.5,
                              segment_length=10, max_epochs=3, background_lag=lag)
    callback = PreferenceCallback(reward)
    agent = PPO("MlpPolicy", RewardVecEnvWrapper(venv, reward), n_steps=64, batch_size=64,
                n_epochs=1, device="cpu", seed=0)
    agent.learn(2048, callback=callback)
    params = torch.nn.utils.parameters_to_vector(agent.policy.parameters()).detach().numpy()
    return reward, callback, params


@pytest.mark.usefixtures("one_torch_thread")
def test_background_rounds_land_at_a_fixed_step_and_rerun_identically() -> None:
    """Rounds after the first train on a thread and are installed at the first rollout end
    ``background_lag`` x interval after they began, never earlier and never by timing: two
    runs of one seed give the same agent and reward; ``null`` trains every round in place."""
    reward, callback, params = _ppo_preference_run(0.5)
    hist = reward.history
    assert len(hist) == 4 and reward.learner.labels_used == 20
    assert "background" not in hist[0]  # the first round trains in the foreground
    rollout = 64 * 2
    for m in hist[1:]:
        assert m["background"] == 1.0
        lag = m["installed_at"] - m["timesteps"]
        assert callback.lag_steps <= lag < callback.lag_steps + rollout
    gaps = np.diff([r.at for r in callback.plan.rounds])
    assert callback.lag_steps == int(0.5 * gaps[-1])
    again, _, params_again = _ppo_preference_run(0.5)
    np.testing.assert_array_equal(params, params_again)
    for a, b in zip(reward.ensemble.state_dict().values(),
                    again.ensemble.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    foreground, fg_callback, _ = _ppo_preference_run(None)
    assert fg_callback.lag_steps == 0
    assert all("background" not in m for m in foreground.history)
    with pytest.raises(ValueError, match="background_lag"):
        PreferenceConfig(background_lag=1.5)


def _random_steps(t: int, n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    term = rng.random((t, n)) < 0.08
    trunc = ~term & (rng.random((t, n)) < 0.05)
    return {"features": rng.normal(size=(t, n, 3)).astype(np.float32),
            "true_rewards": rng.normal(size=(t, n)).astype(np.float32),
            "terminated": term, "truncated": trunc,
            "next_states": rng.normal(size=(t, n, 2)).astype(np.float32)}


def _episodes(buf: SegmentBuffer) -> list[tuple[Any, ...]]:
    return [(ep.serial, ep.features.tolist(), ep.true_rewards.tolist(), ep.terminated.tolist(),
             None if ep.next_states is None else ep.next_states.tolist())
            for ep in buf._all_episodes()]


def test_add_steps_stores_exactly_what_step_by_step_add_stores() -> None:
    """A rollout at once (``add_steps``) and step by step (``add``): the same episodes,
    serials (episodes numbered in the order they end) and eviction, in chunks of any size;
    each stored episode is the env's own rows from one reset to its end."""
    steps = _random_steps(97, 3, seed=0)
    one, many = SegmentBuffer(3, 3, capacity=120), SegmentBuffer(3, 3, capacity=120)
    for k in range(97):
        one.add(*(steps[key][k] for key in ("features", "true_rewards", "terminated",
                                            "truncated")), None, steps["next_states"][k])
    for a, b in ((0, 1), (1, 40), (40, 41), (41, 97)):
        many.add_steps(*(steps[key][a:b] for key in ("features", "true_rewards", "terminated",
                                                      "truncated")), None,
                       steps["next_states"][a:b])
    assert _episodes(one) == _episodes(many)
    whole = SegmentBuffer(3, 3)  # nothing evicted
    whole.add_steps(*(steps[key] for key in ("features", "true_rewards", "terminated",
                                             "truncated")), None, steps["next_states"])
    first_end = int(np.flatnonzero(steps["terminated"][:, 1] | steps["truncated"][:, 1])[0])
    ep = next(e for e in whole._all_episodes() if len(e.true_rewards) == first_end + 1
              and np.array_equal(e.features, steps["features"][: first_end + 1, 1]))
    assert ep.terminated.tolist() == steps["terminated"][: first_end + 1, 1].tolist()
    assert (one.total_steps, one.seen_termination, one._stored) == \
        (many.total_steps, many.seen_termination, many._stored)


def test_a_deferred_rollout_is_observed_as_its_steps_would_be() -> None:
    """``observe_steps`` (the wrapper's deferred flush) against ``observe`` per step: the
    same segment buffer and the same rollout features for PPO's relabelling."""
    from rewardlearn.rewards.base import TransitionBatch

    steps = _random_steps(40, 2, seed=1)
    obs = np.random.default_rng(2).normal(size=(41, 2, 2)).astype(np.float32)
    acts = np.random.default_rng(3).uniform(-1, 1, size=(40, 2, 1)).astype(np.float32)
    batches = [TransitionBatch(obs=obs[k], acts=acts[k], next_obs=obs[k + 1],
                               terminated=steps["terminated"][k],
                               truncated=steps["truncated"][k],
                               env_rewards=steps["true_rewards"][k]) for k in range(40)]
    learned = np.random.default_rng(4).normal(size=(40, 2)).astype(np.float32)
    models = [PreferenceReward(gym.spaces.Box(-9, 9, (2,)), gym.spaces.Box(-1, 1, (1,)),
                               hidden_sizes=[4], device="cpu") for _ in range(2)]
    for batch, r in zip(batches, learned, strict=True):
        models[0].observe(batch, r)
    models[1].observe_steps(batches, learned)
    a, b = (m.buffer for m in models)
    assert a is not None and b is not None
    assert _episodes(a) == _episodes(b)
    np.testing.assert_array_equal(np.stack(models[0]._rollout_feats),
                                  np.stack(models[1]._rollout_feats))
    np.testing.assert_array_equal(np.stack(models[0]._rollout_rewards),
                                  np.stack(models[1]._rollout_rewards))
