"""Best-of-n action selection, the simulator lookahead, action preferences and their reward
(rewardlearn/select/)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import rewardlearn_envs  # noqa: F401  (registers rewardlearn/PickPlace-v0)
import torch
from omegaconf import DictConfig
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.vec_env import DummyVecEnv

from rewardlearn.rewards.base import RewardModel, RewardOutput, TransitionBatch
from rewardlearn.select import (
    BestOfN,
    Candidates,
    EnvRewardScorer,
    FunctionScorer,
    Lookahead,
    LookaheadRewardScorer,
    QScorer,
    RewardScorer,
    Rollouts,
    SupportGate,
    ValueScorer,
)
from rewardlearn.select.configuration import SelectConfig
from rewardlearn.select.pairs import (
    ActionOracle,
    ActionPair,
    collect_action_pairs,
    disagreement_score,
    label_arrays,
    load_pairs,
    save_pairs,
)
from rewardlearn.select.reward import ActionPreferenceReward

ROOT = Path(__file__).resolve().parents[1]
BOX2 = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
ACT1 = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)


class TablePolicy:
    """Candidates known in advance: sampled row ``i`` of a call is ``[offset + i / 10]``;
    the mean action is ``[mean]``."""

    observation_space = BOX2

    def __init__(self, mean: float = 0.25, offset: float = 0.0) -> None:
        self.mean, self.offset = mean, offset

    def predict(self, obs: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[np.ndarray, None]:
        obs = np.asarray(obs)
        rows = obs.reshape(-1, 2).shape[0]
        if deterministic:
            acts = np.full((rows, 1), self.mean, np.float32)
        else:
            acts = (self.offset + np.arange(rows, dtype=np.float32)[:, None] / 10)
        return (acts if obs.ndim == 2 else acts[0]), None


class Counting(RewardModel):
    """``r = -|a_0 - s_0|`` (reads ``s`` and ``a`` only); counts its calls and rows."""

    name = "counting"

    def __init__(self, obs_space: gym.Space, act_space: gym.Space) -> None:
        super().__init__(obs_space, act_space)
        self.calls: list[int] = []

    def compute(self, batch: TransitionBatch) -> RewardOutput:
        self.calls.append(len(batch))
        obs = np.asarray(batch.obs, np.float64)
        return RewardOutput(-np.abs(np.asarray(batch.acts, np.float64)[:, 0] - obs[:, 0]))


# ------------------------------------------------------------------- the choice is the argmax

def test_the_executed_action_is_each_envs_argmax_of_the_scorer() -> None:
    # env 0 wants the action nearest 0.3, env 1 the one nearest 0.9 (r = -|a - s_0|)
    obs = np.array([[0.3, 0.0], [0.9, 0.0]], np.float32)
    reward = Counting(BOX2, ACT1)
    chooser = BestOfN(TablePolicy(), RewardScorer(reward), n=5)
    chosen, _ = chooser.predict(obs, deterministic=False)
    # sampled rows 0-4 go to env 0 ([0, .1, .2, .3, .4]), rows 5-9 to env 1 ([.5 .. .9])
    np.testing.assert_allclose(chosen[:, 0], [0.3, 0.9], atol=1e-6)
    assert chooser.last_choice is not None and chooser.last_choice.tolist() == [3, 4]
    assert chooser.last_scores is not None and chooser.last_scores.shape == (2, 5)
    np.testing.assert_allclose(chooser.last_scores[0], [-0.3, -0.2, -0.1, 0.0, -0.1], atol=1e-6)
    # a single observation gets a single action back
    one, _ = chooser.predict(obs[1], deterministic=False)
    assert one.shape == (1,) and abs(float(one[0]) - 0.4) < 1e-6  # best of [0 .. .4] for 0.9


def test_deterministic_selection_includes_the_mean_action_and_ties_go_to_it() -> None:
    flat = FunctionScorer(lambda c: np.zeros(len(c)), name="flat")
    chooser = BestOfN(TablePolicy(mean=0.25), flat, n=4)
    chosen, _ = chooser.predict(np.zeros((3, 2), np.float32), deterministic=True)
    np.testing.assert_allclose(chosen[:, 0], 0.25)  # every score equal: the mean action
    cand = chooser.last_candidates
    assert cand is not None and cand.acts.shape == (12, 1)
    np.testing.assert_allclose(cand.acts[[0, 4, 8], 0], 0.25)
    # a scorer that prefers a sample moves away from the mean
    high = FunctionScorer(lambda c: c.acts[:, 0], name="high")
    moved, _ = BestOfN(TablePolicy(mean=0.25), high, n=4).predict(np.zeros((1, 2), np.float32),
                                                                 deterministic=True)
    assert abs(float(moved[0, 0]) - 0.3) < 1e-6


# ----------------------------------------------------------- one scorer call per decision

def test_one_scorer_call_per_step_for_all_candidates_and_envs() -> None:
    venv = DummyVecEnv([lambda: gym.make("Pendulum-v1") for _ in range(3)])
    venv.seed(0)
    agent = PPO("MlpPolicy", venv, seed=0, device="cpu")
    calls: list[int] = []

    def score(c: Candidates) -> np.ndarray:
        calls.append(len(c))
        assert c.rollouts is not None and c.rollouts.rewards.shape == (1, 12)
        return c.rollouts.returns()

    chooser = BestOfN(agent, FunctionScorer(score, lookahead=True), n=4).bind(venv)
    obs = venv.reset()
    for _ in range(5):
        obs, *_ = venv.step(chooser.predict(obs, deterministic=False)[0])
    assert calls == [12] * 5 and chooser.scorer_calls == 5 and chooser.decisions == 15
    # a reward module behind a 3-step lookahead is still one batched call per decision
    module = Counting(venv.observation_space, venv.action_space)
    chooser = BestOfN(agent, LookaheadRewardScorer(module), n=4, horizon=3).bind(venv)
    for _ in range(4):
        obs, *_ = venv.step(chooser.predict(obs, deterministic=True)[0])
    assert module.calls == [3 * 12] * 4


def test_n_equal_1_is_the_plain_policy() -> None:
    env = gym.make("Pendulum-v1")
    agent = PPO("MlpPolicy", env, seed=0, device="cpu")
    never = FunctionScorer(lambda c: pytest.fail("n=1 must not score"), name="never")
    chooser = BestOfN(agent, never, n=1)
    obs = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    for deterministic in (True, False):
        torch.manual_seed(1)
        plain = [agent.predict(o, deterministic=deterministic)[0] for o in obs]
        torch.manual_seed(1)
        wrapped = [chooser.predict(o, deterministic=deterministic)[0] for o in obs]
        np.testing.assert_array_equal(np.stack(plain), np.stack(wrapped))
    assert chooser.scorer_calls == 0


# ----------------------------------------------------------------------- the lookahead

def _state(env: gym.Env) -> dict[str, Any]:
    base: Any = env.unwrapped
    d = base.data
    return {"qpos": d.qpos.copy(), "qvel": d.qvel.copy(), "act": d.act.copy(),
            "ctrl": d.ctrl.copy(), "time": d.time, "warm": d.qacc_warmstart.copy(),
            "command": base._command.copy(), "lifted": base._was_lifted,
            "elapsed": env._elapsed_steps}  # type: ignore[attr-defined]


def test_lookahead_leaves_the_env_stepping_exactly_as_one_never_scored() -> None:
    scored, fresh = gym.make("rewardlearn/PickPlace-v0"), gym.make("rewardlearn/PickPlace-v0")
    agent = PPO("MlpPolicy", scored, seed=0, device="cpu")
    chooser = BestOfN(agent, EnvRewardScorer(gamma=0.9), n=6, horizon=3).bind(scored)
    obs, _ = scored.reset(seed=7)
    twin, _ = fresh.reset(seed=7)
    done, steps = False, 0
    while not done:
        action, _ = chooser.predict(obs, deterministic=False)
        ro = chooser.last_candidates.rollouts  # type: ignore[union-attr]
        pick = int(chooser.last_choice[0])  # type: ignore[index]
        obs, r, term, trunc, info = scored.step(action)
        twin, r2, term2, trunc2, info2 = fresh.step(action)
        assert np.array_equal(obs, twin) and (r, term, trunc) == (r2, term2, trunc2)
        assert info == info2
        # the lookahead saw exactly what the env then did with the chosen candidate
        assert np.array_equal(ro.next_obs[0, pick], obs) and ro.rewards[0, pick] == r
        assert ro.terminated[0, pick] == term and ro.truncated[0, pick] == trunc
        done, steps = bool(term or trunc), steps + 1
    a, b = _state(scored), _state(fresh)
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    assert term != trunc and (term or steps == 150)  # success, or the 150-step TimeLimit
    assert chooser.lookahead_steps > 150 * 6


def test_lookahead_keeps_terminated_and_truncated_apart_and_restores_python_state() -> None:
    env = gym.make("Pendulum-v1", max_episode_steps=3)
    obs, _ = env.reset(seed=0)
    env.step(np.zeros(1, np.float32))
    before = (env.unwrapped.state.copy(), env._elapsed_steps)  # type: ignore[attr-defined]
    look = Lookahead(env)
    ro = look.rollouts(np.array([[1.0], [-1.0]], np.float32), horizon=4,
                       policy=lambda o: np.zeros((len(o), 1), np.float32), obs=obs)
    # 1 step already taken, limit 3: steps 0 and 1 happen, the second truncates
    assert ro.alive.tolist() == [[True, True], [True, True], [False, False], [False, False]]
    assert ro.truncated[1].all() and not ro.terminated.any()
    after = (env.unwrapped.state, env._elapsed_steps)  # type: ignore[attr-defined]
    assert np.array_equal(before[0], after[0]) and before[1] == after[1]
    np.testing.assert_allclose(ro.returns(0.5), ro.rewards[0] + 0.5 * ro.rewards[1])


def test_value_scorer_bootstraps_after_truncation_not_termination() -> None:
    class Policy:
        def obs_to_tensor(self, obs: Any) -> tuple[torch.Tensor, bool]:
            return torch.as_tensor(np.asarray(obs, np.float32)), True

        def predict_values(self, obs: torch.Tensor) -> torch.Tensor:
            return obs[:, :1] * 10  # V(s) = 10 s_0

    class Agent:
        policy = Policy()

    h, n = 2, 3
    nxt = np.array([[[1.0], [2.0], [3.0]], [[4.0], [5.0], [6.0]]])
    ro = Rollouts(obs=np.zeros((h, n, 1)), acts=np.zeros((h, n, 1)), next_obs=nxt,
                  rewards=np.ones((h, n)),
                  terminated=np.array([[False, True, False], [True, True, False]]),
                  truncated=np.array([[False, False, True], [False, False, True]]),
                  infos=[[{}] * n] * h,
                  alive=np.array([[True, True, True], [True, False, False]]))
    cand = Candidates(obs=np.zeros((n, 1)), acts=np.zeros((n, 1)), n=n, n_envs=1, rollouts=ro)
    scores = ValueScorer(Agent(), gamma=0.5)(cand)
    # 0: two steps, terminated at the second: 1 + 0.5 (no bootstrap)
    # 1: terminated at the first: 1; 2: truncated at the first: 1 + 0.5 * V(s=3) = 16
    np.testing.assert_allclose(scores, [1.5, 1.0, 16.0])


def test_q_scorer_is_the_smaller_of_the_two_critics() -> None:
    env = gym.make("Pendulum-v1")
    agent = SAC("MlpPolicy", env, seed=0, device="cpu")
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(5, 3)).astype(np.float32)
    acts = rng.uniform(-2, 2, (5, 1)).astype(np.float32)
    got = QScorer(agent)(Candidates(obs=obs, acts=acts, n=5, n_envs=1))
    with torch.no_grad():
        q1, q2 = agent.critic(torch.as_tensor(obs), torch.as_tensor(acts / 2.0))
    np.testing.assert_allclose(got, torch.min(q1, q2)[:, 0].numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match="scorer=q needs an agent with Q critics"):
        QScorer(PPO("MlpPolicy", env, device="cpu"))


def test_reward_scorer_refuses_modules_that_read_the_next_state() -> None:
    from rewardlearn.drs.reward import DrSReward
    from rewardlearn.rewards.mlp import MLPReward

    cand = Candidates(obs=np.zeros((4, 2), np.float32), acts=np.zeros((4, 1), np.float32),
                      n=4, n_envs=1)
    reads_next = MLPReward(BOX2, ACT1, use_next_obs=True, hidden_sizes=[8])
    with pytest.raises(ValueError, match=r"reads s'.*scorer=reward_lookahead"):
        RewardScorer(reads_next)(cand)
    with pytest.raises(ValueError, match=r"info keys.*scorer=reward_lookahead"):
        RewardScorer(DrSReward(BOX2, ACT1, num_stages=2))
    assert RewardScorer(MLPReward(BOX2, ACT1, hidden_sizes=[8]))(cand).shape == (4,)
    with pytest.raises(ValueError, match="bind the 1 env"):
        BestOfN(TablePolicy(), EnvRewardScorer(), n=2).predict(np.zeros(2, np.float32))


# ------------------------------------------------------------------ preferences over actions

def _synthetic_pairs(n: int, seed: int) -> list[ActionPair]:
    """The better action is the one nearer ``s_0`` (hand-checkable)."""
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(n):
        s = rng.uniform(-1, 1, 2)
        a, b = rng.uniform(-1, 1, 2)
        label = 0.5 if abs(abs(a - s[0]) - abs(b - s[0])) < 0.02 else \
            float(abs(a - s[0]) < abs(b - s[0]))
        pairs.append(ActionPair(f"p{i}", s.tolist(), [a], [b], label, "synthetic"))
    return pairs


def test_bradley_terry_on_action_pairs_learns_the_preference(tmp_path: Path) -> None:
    save_pairs(tmp_path, _synthetic_pairs(400, 0))
    reward = ActionPreferenceReward(BOX2, ACT1, labels=str(tmp_path), hidden_sizes=[64],
                                    epochs=150, batch_size=64, n_members=2)
    report = reward.summary()
    assert report["labels"] == 400 and report["heldout_pairs"] == 40
    assert report["loss_last"] < report["loss_first"] and report["heldout_acc"] >= 0.85
    # unseen pairs: the ranking r(s, a_A) > r(s, a_B) follows the rule
    test = _synthetic_pairs(300, 1)
    obs = np.array([p.obs for p in test], np.float32)
    ra = reward(TransitionBatch.from_arrays(obs, np.array([p.action_a for p in test]), obs))
    rb = reward(TransitionBatch.from_arrays(obs, np.array([p.action_b for p in test]), obs))
    decided = np.array([p.label != 0.5 for p in test])
    truth = np.array([p.label == 1.0 for p in test])
    assert np.mean((ra > rb)[decided] == truth[decided]) >= 0.85
    # as a scorer, best-of-n picks the candidate nearest s_0
    grid = np.linspace(-1, 1, 21, dtype=np.float32)
    states = np.array([[-0.6, 0.0], [0.0, 0.5], [0.7, -0.2]], np.float32)
    cand = Candidates(obs=np.repeat(states, 21, 0), acts=np.tile(grid, 3)[:, None], n=21,
                      n_envs=3)
    best = grid[RewardScorer(reward)(cand).reshape(3, 21).argmax(1)]
    np.testing.assert_allclose(best, states[:, 0], atol=0.21)


def test_support_gate_keeps_the_policys_action_where_the_reward_saw_no_labels(
        tmp_path: Path) -> None:
    from scipy.spatial import cKDTree

    from rewardlearn.rewards.mlp import MLPReward
    from rewardlearn.rewards.pretrained import load_pretrained, save_pretrained

    pairs = _synthetic_pairs(200, 4)  # states uniform in [-1, 1]^2
    save_pairs(tmp_path / "labels", pairs)
    reward = ActionPreferenceReward(BOX2, ACT1, labels=str(tmp_path / "labels"), epochs=60,
                                    hidden_sizes=[32], n_members=2)
    assert reward.has_support
    # the radius by hand: the quantile of leave-one-out nearest-neighbour distances of the
    # labelled states, standardised as the model's input norm does
    obs = np.array([p.obs for p in pairs], np.float32)
    norm = reward.ensemble.norm
    z = (obs - norm.mean[:2].numpy()) / np.sqrt(norm.var[:2].numpy() + norm.eps)
    loo = cKDTree(z).query(z, k=2)[0][:, 1]
    assert reward.support_radius(0.5) == pytest.approx(np.quantile(loo, 0.5), rel=1e-4)
    np.testing.assert_allclose(reward.support_distance(obs[:5]), 0.0, atol=1e-5)
    assert reward.support_distance(np.array([[8.0, -8.0]], np.float32))[0] > \
        reward.support_radius(1.0)
    # two envs: one state among the labelled ones, one far outside them
    grid = np.linspace(-1, 1, 9, dtype=np.float32)
    states = np.array([[0.5, 0.0], [8.0, -8.0]], np.float32)
    cand = Candidates(obs=np.repeat(states, 9, 0), acts=np.tile(grid, 2)[:, None], n=9,
                      n_envs=2)
    plain = RewardScorer(reward)(cand).reshape(2, 9)
    gate = SupportGate(RewardScorer(reward), reward, 0.9)
    gated = gate(cand).reshape(2, 9)
    np.testing.assert_array_equal(gated[0], plain[0])
    np.testing.assert_array_equal(gated[1], 0.0)  # argmax: candidate 1 (the mean action)
    assert gate.summary()["outside_support_share"] == 0.5 and gate.name == "reward+support"
    # the support is saved with the model
    loaded = load_pretrained(save_pretrained(reward, tmp_path / "saved"), BOX2, ACT1)
    assert loaded.has_support
    np.testing.assert_allclose(loaded.support_distance(states), reward.support_distance(states))
    # refused early
    with pytest.raises(ValueError, match="keeps none"):
        SupportGate(RewardScorer(MLPReward(BOX2, ACT1, hidden_sizes=[8])),
                    MLPReward(BOX2, ACT1, hidden_sizes=[8]), 0.5)
    with pytest.raises(ValueError, match=r"support must be a quantile in \(0, 1\]"):
        SelectConfig(n=4, support=1.5)
    with pytest.raises(ValueError, match="scorer=env_reward has none"):
        SelectConfig(n=4, scorer="env_reward", support=0.5)


def test_labels_file_is_what_a_person_could_fill_in(tmp_path: Path) -> None:
    pairs = _synthetic_pairs(30, 2)
    for p in pairs:
        p.label = None  # not labelled yet
    save_pairs(tmp_path, pairs)
    rows = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert {"obs", "action_a", "action_b", "label", "clip_a", "clip_b"} <= set(rows[0])
    assert all(r["label"] is None for r in rows)
    with pytest.raises(ValueError, match="no labelled pairs"):
        ActionPreferenceReward(BOX2, ACT1, labels=str(tmp_path))
    for r in rows:  # a person labels them (A better when a is nearer s_0)
        r["label"] = float(abs(r["action_a"][0] - r["obs"][0])
                           < abs(r["action_b"][0] - r["obs"][0]))
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert all(p.label in (0.0, 1.0) for p in load_pairs(tmp_path))
    assert ActionPreferenceReward(BOX2, ACT1, labels=str(tmp_path), epochs=2).summary()[
        "labels"] == 30
    rows[0]["label"] = 0.7
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match=r"label 0\.7"):
        load_pairs(tmp_path)


class LeftRight:
    """Executes zeros; its two candidates at any state are +x and -x; mean action zeros."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (34,), np.float32)

    def predict(self, obs: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[np.ndarray, None]:
        obs = np.asarray(obs)
        if obs.ndim == 1 or deterministic:
            return np.zeros((*obs.shape[:-1], 4), np.float32), None
        return np.array([[1, 0, 0, 0], [-1, 0, 0, 0]], np.float32), None


def test_oracle_labels_by_the_env_reward_of_a_short_rollout_after_each_candidate(
        tmp_path: Path) -> None:
    horizon, every = 4, 3
    oracle = ActionOracle(horizon=horizon)
    pairs = collect_action_pairs(LeftRight(), "pick_place", n_pairs=5, out=tmp_path,
                                 teacher=oracle, horizon=horizon, every=every, seed=3,
                                 clip_size=(32, 32))
    assert [p.step for p in pairs] == [0, 3, 6, 9, 12] and {p.episode_seed for p in pairs} == {3}

    def rollout_return(first: list[float], step: int) -> float:
        """Independently: a fresh env, ``step`` zero actions, then the candidate, then zeros."""
        env = gym.make("rewardlearn/PickPlace-v0")
        env.reset(seed=3)
        for _ in range(step):
            env.step(np.zeros(4, np.float32))
        total = 0.0
        for k in range(horizon):
            _, r, term, trunc, _ = env.step(np.asarray(first if k == 0 else np.zeros(4),
                                                       np.float32))
            total += float(r)
            if term or trunc:
                break
        return total

    for p in pairs:
        ret_a, ret_b = rollout_return(p.action_a, p.step), rollout_return(p.action_b, p.step)
        assert p.oracle == {"return_a": ret_a, "return_b": ret_b}
        assert p.label == (1.0 if ret_a > ret_b else 0.0 if ret_b > ret_a else 0.5)
        for clip in (p.clip_a, p.clip_b):
            assert clip is not None and (tmp_path / clip).stat().st_size > 0
    stored = load_pairs(tmp_path)
    assert [p.label for p in stored] == [p.label for p in pairs]
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["teacher"]["name"] == "oracle" and meta["horizon"] == horizon


class Push:
    """A behaviour that always pushes +x (what a selector of an earlier round might do)."""

    def predict(self, obs: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[np.ndarray, None]:
        assert deterministic  # the selector is run as it is evaluated
        return np.array([1, 0, 0, 0], np.float32), None


def test_a_second_round_of_pairs_comes_from_the_states_the_selector_visits(
        tmp_path: Path) -> None:
    own = collect_action_pairs(LeftRight(), "pick_place", n_pairs=3, every=4, horizon=1, seed=3)
    moved = collect_action_pairs(LeftRight(), "pick_place", n_pairs=3, every=4, horizon=1,
                                 seed=3, out=tmp_path / "r2", behaviour=Push())
    assert own[0].obs == moved[0].obs  # same reset state
    # the policy executes zeros; the behaviour moves the pad +x: the later states differ
    assert moved[2].obs[0] > own[2].obs[0] + 0.01
    assert all(p.action_a == [1, 0, 0, 0] and p.action_b == [-1, 0, 0, 0] for p in moved)
    assert json.loads((tmp_path / "r2" / "meta.json").read_text())["behaviour"] == "Push"
    # rounds are fitted together: comma-separated folders, max_labels over all of them
    save_pairs(tmp_path / "a", _synthetic_pairs(30, 1))
    save_pairs(tmp_path / "b", _synthetic_pairs(20, 2))
    both = f"{tmp_path / 'a'},{tmp_path / 'b'}"
    assert ActionPreferenceReward(BOX2, ACT1, labels=both, epochs=2).summary()["labels"] == 50
    capped = ActionPreferenceReward(BOX2, ACT1, labels=both, epochs=2, max_labels=40)
    assert capped.summary()["labels"] == 40
    with pytest.raises(FileNotFoundError, match="rewardlearn-action-pairs"):
        ActionPreferenceReward(BOX2, ACT1, labels=f"{tmp_path / 'a'},{tmp_path / 'c'}")


def test_disagreement_queries_store_the_pairs_the_last_reward_is_least_sure_of() -> None:
    rng = np.random.default_rng(0)
    seen: list[float] = []

    def score(obs: np.ndarray, cand: np.ndarray) -> float:
        # a hand-made 'unsure' step, 1 in 4; the others score low, all different
        seen.append(1.0 if len(seen) % 4 == 3 else float(rng.uniform(0, 0.5)))
        return seen[-1]

    pairs = collect_action_pairs(LeftRight(), "pick_place", n_pairs=8, every=5, horizon=1,
                                 seed=3, query_score=score)
    # the first 20 steps by every-5th; then only steps scoring in the top 1/5 are stored
    late = [p.step for p in pairs if p.step >= 20]
    assert len(late) == 4 and all(step % 4 == 3 for step in late)
    assert [p.step for p in pairs if p.step < 20] == [0, 5, 10, 15]
    # the score a reward gives: PEBBLE's disagreement over its members
    save_pairs_dir = _synthetic_pairs(80, 4)
    reward = ActionPreferenceReward(BOX2, ACT1, epochs=30, hidden_sizes=[16], n_members=3)
    obs, a, b, y = label_arrays(save_pairs_dir)
    reward.fit(obs, a, b, y)
    d = reward.pair_disagreement(obs, a, b)
    assert d.shape == (80,) and np.all(d >= 0) and np.all(d <= 0.5)
    one = ActionPreferenceReward(BOX2, ACT1, epochs=2, hidden_sizes=[16], n_members=1)
    one.fit(obs, a, b, y)
    np.testing.assert_allclose(one.pair_disagreement(obs, a, b), 0.0)
    assert disagreement_score(reward)(obs[0], np.stack([a[0], b[0]])) == pytest.approx(d[0])
    with pytest.raises(ValueError, match="needs an action-preference reward"):
        disagreement_score(object())


def test_people_label_action_pairs_on_the_review_page_and_the_reward_reads_them(
        tmp_path: Path) -> None:
    """teacher=human's path: clips per candidate, queued once, answered through the review
    server's HTTP API, folded into the fit without touching pairs.jsonl."""
    import http.client

    from rewardlearn.review.server import ReviewServer
    from rewardlearn.select.review import apply_answers, queue_pairs, review_db


    folder = tmp_path / "mine"
    pairs = collect_action_pairs(LeftRight(), "pick_place", n_pairs=3, out=folder, teacher=None,
                                 horizon=3, every=3, seed=3, clip_size=(32, 32))
    assert queue_pairs(folder, pairs) == 3 and queue_pairs(folder, pairs) == 0  # asked once
    with pytest.raises(ValueError, match="no clips"):
        queue_pairs(tmp_path / "other", [ActionPair("p9", [0.0], [1.0], [0.0])])

    def post(port: int, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        con = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            con.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            res = con.getresponse()
            return res.status, json.loads(res.read() or b"null")
        finally:
            con.close()

    with ReviewServer(folder, port=0) as srv:  # `rewardlearn-review <folder>`
        assert srv.app.db_path == review_db(folder).resolve()
        answered = []
        for label in ("left", "right", "skip"):
            status, data = post(srv.port, "/api/queue/next", {"annotator": "ann"})
            q = data["query"]
            assert status == 200 and q["meta"]["kind"] == "action pair"
            assert q["left"]["n_frames"] == 4 and q["left"]["url"].endswith("_a.mp4")
            con = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
            con.request("GET", q["right"]["url"])
            res = con.getresponse()
            assert res.status == 200 and res.read()  # the clip after candidate B plays
            con.close()
            assert post(srv.port, "/api/labels", {"query_id": q["id"], "label": label,
                                                  "annotator": "ann"})[0] == 201
            answered.append(q["meta"]["pair"])
    assert answered == [p.id for p in pairs]
    labelled, n = apply_answers(folder, load_pairs(folder))
    assert n == 2 and [p.label for p in labelled] == [1.0, 0.0, None]  # skip: left open
    assert {p.labeller for p in labelled[:2]} == {"human:ann"}
    assert [p.label for p in load_pairs(folder)] == [None, None, None]  # file as written
    # an answer never replaces a label the pair already has
    kept, n = apply_answers(folder, [replace(pairs[0], label=0.5), *pairs[1:]])
    assert n == 1 and [p.label for p in kept] == [0.5, 0.0, None]
    env = gym.make("rewardlearn/PickPlace-v0")
    reward = ActionPreferenceReward(env.observation_space, env.action_space,
                                    labels=str(folder), epochs=5, hidden_sizes=[8])
    assert reward.report["labels"] == 2


def test_action_preference_reward_saves_and_loads_without_refitting(tmp_path: Path) -> None:
    from rewardlearn.rewards.pretrained import load_pretrained, save_pretrained
    from rewardlearn.rewards.registry import REWARD_CLASSES

    save_pairs(tmp_path / "labels", _synthetic_pairs(60, 3))
    model = ActionPreferenceReward(BOX2, ACT1, labels=str(tmp_path / "labels"), epochs=5,
                                   hidden_sizes=[16])
    assert REWARD_CLASSES["ActionPreferenceReward"] is ActionPreferenceReward
    loaded = load_pretrained(save_pretrained(model, tmp_path / "saved"), BOX2, ACT1)
    assert isinstance(loaded, ActionPreferenceReward) and loaded.cfg.labels is None
    batch = TransitionBatch.from_arrays(np.random.default_rng(0).normal(size=(50, 2)),
                                        np.random.default_rng(1).uniform(-1, 1, (50, 1)),
                                        np.zeros((50, 2)))
    np.testing.assert_array_equal(loaded(batch), model(batch))
    assert loaded.summary()["labels"] == 60


# --------------------------------------------------------------- train.py and replay

TINY = ("env=pendulum", "total_timesteps=64", "eval.n_episodes=1", "video.enabled=false",
        "progress_bar=false", "torch_threads=1")
SAC_TINY = ("agent=sac", "+agent.kwargs.learning_starts=32")


@pytest.fixture(scope="module")
def sac_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A tiny SAC run on Pendulum evaluated with best-of-4 by its critics."""
    from hydra import compose, initialize_config_dir

    from rewardlearn.cli.train import run

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            *TINY, *SAC_TINY, "reward=mlp", "eval.select.n=4", "eval.select.scorer=q"])
    from omegaconf import OmegaConf

    folder = tmp_path_factory.mktemp("select") / "run"
    summary = run(cfg, folder)
    (folder / ".hydra").mkdir()
    OmegaConf.save(cfg, folder / ".hydra" / "config.yaml")  # what Hydra writes beside a run
    return folder, summary


def test_train_py_evaluates_through_best_of_n(sac_run: tuple[Path, dict[str, Any]]) -> None:
    _, summary = sac_run
    sel = summary["select"]
    assert (sel["n"], sel["scorer"], sel["horizon"]) == (4, "q", 1)
    # one decision and one scorer call per evaluation step (deterministic + sampled episodes)
    steps = summary["deterministic"]["eval_length_mean"] + summary["sampled"]["eval_length_mean"]
    assert sel["decisions"] == sel["scorer_calls"] == steps == 400


@pytest.mark.parametrize("overrides", [
    ("agent=sac", "+agent.kwargs.learning_starts=32", "reward=env",
     "eval.select.scorer=env_reward", "eval.select.horizon=2"),
    ("agent=ppo", "+agent.kwargs.n_steps=64", "+agent.kwargs.batch_size=32",
     "+agent.kwargs.n_epochs=1", "reward=mlp", "eval.select.scorer=value"),
    ("agent=sac", "+agent.kwargs.learning_starts=32", "reward=mlp", "eval.select.scorer=reward"),
    ("agent=ppo", "+agent.kwargs.n_steps=64", "+agent.kwargs.batch_size=32",
     "+agent.kwargs.n_epochs=1", "+agent.kwargs.use_sde=false", "reward=mlp",
     "eval.select.scorer=reward", "eval.select.temperature=0.25"),
], ids=["env_reward-lookahead", "ppo-value", "reward", "ppo-reward-tempered"])
def test_eval_select_settings_compose_through_train_py(
        compose_cfg: Callable[..., DictConfig], tmp_path: Path, overrides: tuple[str, ...]
) -> None:
    from rewardlearn.cli.train import run

    summary = run(compose_cfg(*TINY, *overrides, "eval.select.n=3"), tmp_path / "run")
    sel = summary["select"]
    assert sel["n"] == 3 and sel["scorer_calls"] == 400
    scorer = next(o for o in overrides if "scorer=" in o).split("=")[1]
    assert sel["scorer"] == scorer
    tempered = [float(o.split("=")[1]) for o in overrides if "temperature=" in o]
    assert sel["temperature"] == (tempered[0] if tempered else 1.0)
    if scorer in ("env_reward", "value"):
        assert sel["lookahead_steps"] > 0


def test_train_py_selects_with_a_support_gated_action_preference_reward(
        compose_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    from rewardlearn.cli.train import run

    rng = np.random.default_rng(0)
    pairs = []
    for i in range(60):  # pendulum states, the better torque the one nearer 0
        theta, a, b = rng.uniform(-np.pi, np.pi), *rng.uniform(-2, 2, 2)
        obs = [np.cos(theta), np.sin(theta), rng.uniform(-1, 1)]
        pairs.append(ActionPair(f"p{i}", obs, [a], [b], float(abs(a) < abs(b)), "synthetic"))
    save_pairs(tmp_path / "labels", pairs)
    summary = run(compose_cfg(*TINY, *SAC_TINY, "reward=action_preference",
                              f"reward.model.labels={tmp_path / 'labels'}",
                              "reward.model.epochs=5", "eval.select.n=3",
                              "eval.select.support=0.5"), tmp_path / "run")
    sel = summary["select"]
    assert sel["scorer"] == "reward+support" and sel["support_quantile"] == 0.5
    assert sel["support_radius"] > 0 and 0.0 <= sel["outside_support_share"] <= 1.0


@pytest.mark.parametrize(("overrides", "message"), [
    (("eval.select.n=0",), "n must be an integer >= 1"),
    (("eval.select.n=4", "eval.select.scorer=best"),
     "scorer must be one of reward, reward_lookahead, env_reward, q, value, got 'best'"),
    (("eval.select.n=4", "eval.select.scorer=reward", "eval.select.horizon=3"),
     "horizon=3 needs a scorer that looks ahead"),
    (("agent=ppo", "reward=mlp", "eval.select.n=4", "eval.select.scorer=q"),
     "scorer=q reads a SAC agent's Q critics; agent=ppo has none"),
    (("agent=sac", "reward=env", "eval.select.n=4", "eval.select.scorer=reward"),
     "this run's reward is the env's"),
    (("agent=sac", "reward=mlp", "eval.select.n=4", "eval.select.model=no/such/run"),
     "model=no/such/run: no such file"),
    (("+eval.select.beam=1",), r"unknown eval.select setting\(s\) \['beam'\]"),
    (("eval.select.n=4", "eval.select.temperature=0"), "temperature must be a number > 0"),
    (("agent=sac", "reward=mlp", "eval.select.n=4", "eval.select.temperature=0.5"),
     "temperature=0.5 scales a Gaussian policy's standard deviation; agent=sac is not one"),
    (("agent=ppo", "reward=mlp", "eval.select.n=4", "eval.select.temperature=0.5"),
     r"this PPO agent uses gSDE .* set \+agent.kwargs.use_sde=false"),
    (("agent=sac", "reward=mlp", "eval.select.n=4", "eval.select.support=0.5"),
     r"support= trusts a learned reward .* \(reward=mlp\) keeps none"),
    (("eval.select.n=4", "eval.select.support=0"), r"support must be a quantile in \(0, 1\]"),
    (("agent=sac", "reward=mlp", "eval.select.n=4", "eval.select.model={other_spaces}"),
     "does not match this env's spaces"),
])
def test_bad_select_settings_are_refused_before_anything_runs(
        compose_cfg: Callable[..., DictConfig], tmp_path: Path, overrides: tuple[str, ...],
        message: str) -> None:
    from rewardlearn.cli.train import run
    from rewardlearn.rewards.checkpoint import save_reward_model
    from rewardlearn.rewards.mlp import MLPReward

    other = save_reward_model(MLPReward(BOX2, ACT1, hidden_sizes=[4]), tmp_path / "r.pt")
    overrides = tuple(o.format(other_spaces=other) for o in overrides)
    with pytest.raises(ValueError, match=message) as err:
        run(compose_cfg(*TINY, *overrides), tmp_path / "run")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()  # refused before the run folder was claimed


def test_train_py_command_line_refuses_a_bad_select_setting_in_one_line(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "train.py", *TINY, "eval.select.n=0",
                          f"hydra.run.dir={tmp_path / 'run'}"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 1
    lines = [x for x in out.stderr.splitlines() if x.strip()]
    assert lines[-1].startswith("error: invalid eval.select settings: n must be an integer >= 1")
    assert not (tmp_path / "run").exists()


def test_replay_selects_with_the_runs_agent(sac_run: tuple[Path, dict[str, Any]],
                                            tmp_path: Path) -> None:
    from rewardlearn.cli.replay import main

    folder, _ = sac_run
    result = main([str(folder), "n_episodes=1", "select.n=3", "select.scorer=env_reward",
                   f"out={tmp_path / 'replay'}", "width=32", "height=32"])
    assert result["select"]["decisions"] == 200 and result["select"]["lookahead_steps"] > 0
    with pytest.raises(ValueError, match=r"select\.scorer=value reads a PPO agent"):
        main([str(folder), "select.n=3", "select.scorer=value", f"out={tmp_path / 'bad'}"])
    assert not (tmp_path / "bad").exists()


def test_action_pairs_command_writes_labelled_and_open_pairs_from_a_run(
        sac_run: tuple[Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
        ) -> None:
    from rewardlearn.cli.action_pairs import main

    folder, _ = sac_run
    pairs = main([str(folder), "n_pairs=4", "every=10", "horizon=2", f"out={tmp_path / 'lab'}"])
    assert len(pairs) == 4 and all(p.label in (0.0, 0.5, 1.0) for p in pairs)
    assert [p.id for p in load_pairs(tmp_path / "lab")] == [p.id for p in pairs]
    assert "4 action pairs (4 labelled" in capsys.readouterr().out
    todo = main([str(folder), "n_pairs=2", "teacher=none", f"out={tmp_path / 'todo'}"])
    assert [p.label for p in todo] == [None, None]  # left for a person
    with pytest.raises(FileExistsError, match="choose another out="):  # labels never overwritten
        main([str(folder), "n_pairs=2", f"out={tmp_path / 'lab'}"])
    with pytest.raises(ValueError, match="n_pairs must be >= 1"):
        main([str(folder), "n_pairs=0", f"out={tmp_path / 'none'}"])
    assert not (tmp_path / "none").exists()
    # a second round, moved by best-of-4 with a reward fitted on the first round's labels
    from rewardlearn.rewards.pretrained import save_pretrained

    env = gym.make("Pendulum-v1")
    first = ActionPreferenceReward(env.observation_space, env.action_space,
                                   labels=str(tmp_path / "lab"), epochs=2, hidden_sizes=[8])
    saved = save_pretrained(first, tmp_path / "r1")
    again = main([str(folder), "n_pairs=4", "every=10", "horizon=2", f"select={saved}",
                  "select_n=4", f"out={tmp_path / 'lab2'}"])
    assert len(again) == 4
    meta = json.loads((tmp_path / "lab2" / "meta.json").read_text())
    assert meta["behaviour"] == "BestOfN" and meta["settings"]["select"] == str(saved)
    with pytest.raises(ValueError, match="select_n must be an integer >= 2"):
        main([str(folder), "select_n=1", f"out={tmp_path / 'none'}"])
    unsure = main([str(folder), "n_pairs=3", "every=2", "horizon=2", f"select={saved}",
                   "select_n=4", "query=disagreement", f"out={tmp_path / 'lab3'}"])
    assert len(unsure) == 3
    assert "query scores" in json.loads((tmp_path / "lab3" / "meta.json").read_text())["query"]
    with pytest.raises(ValueError, match="query=disagreement scores pairs by an earlier"):
        main([str(folder), "query=disagreement", f"out={tmp_path / 'none'}"])
    with pytest.raises(ValueError, match="temperature must be a number > 0"):
        main([str(folder), "temperature=0", f"out={tmp_path / 'none'}"])
    with pytest.raises(ValueError, match="SAC is not an SB3 on-policy agent with a diagonal"):
        main([str(folder), "temperature=0.5", f"out={tmp_path / 'none'}"])  # SAC: squashed
    assert not (tmp_path / "none").exists()


def test_select_config_defaults_match_conf_config_yaml(
        compose_cfg: Callable[..., DictConfig]) -> None:
    from omegaconf import OmegaConf

    cfg = compose_cfg()
    assert OmegaConf.to_container(cfg.eval.select) == SelectConfig().to_dict()
    assert not SelectConfig().enabled


def test_a_ppo_agents_candidates_come_from_one_forward_pass_with_predicts_distribution(
        ) -> None:
    """PPO's Gaussian is sampled ``n`` times from one forward pass (bounded mean and
    ``NormalizedPolicy`` included): candidate 1 is ``predict``'s mean action, the draws have
    the policy's mean and std, clipped to the bounds as ``predict`` clips; SAC goes through
    ``predict``."""
    from stable_baselines3.common.vec_env import VecNormalize

    from rewardlearn.agents import NormalizedPolicy
    from rewardlearn.select.modeling import gaussian_actor, sample_gaussian

    env = gym.make("Pendulum-v1")
    agent = PPO("MlpPolicy", env, seed=0, policy_kwargs={"log_std_init": -1.0})
    norm = VecNormalize(DummyVecEnv([lambda: gym.make("Pendulum-v1")]))
    norm.obs_rms.mean[:] = 0.5
    for policy in (agent, NormalizedPolicy(agent, norm)):
        found = gaussian_actor(policy)
        assert found is not None
        obs = np.array([[1.0, 0.0, 0.3], [0.0, 1.0, -2.0]], np.float32)
        torch.manual_seed(0)
        acts = sample_gaussian(*found, obs, 4000, mean_first=True).reshape(2, 4000, 1)
        mean = np.asarray(policy.predict(obs, deterministic=True)[0])
        assert np.allclose(acts[:, 0], mean, atol=1e-6)
        inside = acts[:, 1:, 0]
        raw = policy.predict(np.repeat(obs, 4000, axis=0), deterministic=False)[0]
        raw = np.asarray(raw).reshape(2, 4000)
        for row in range(2):  # the same clipped Gaussian as predict's samples
            assert abs(inside[row].mean() - raw[row].mean()) < 0.03
            assert abs(inside[row].std() - raw[row].std()) < 0.03
        assert np.all(np.abs(acts) <= 2.0)  # Pendulum's bounds
    assert gaussian_actor(SAC("MlpPolicy", env, seed=0)) is None


def test_temperature_scales_the_candidates_spread_around_the_mean_action() -> None:
    """``temperature`` multiplies the policy's Gaussian std for the candidates (candidate 1
    stays the mean action); it is refused for a policy without such a Gaussian and when not
    > 0."""
    from rewardlearn.select.modeling import sample_actions

    env = gym.make("Pendulum-v1")
    agent = PPO("MlpPolicy", env, seed=0, policy_kwargs={"log_std_init": -1.0})
    obs = np.array([[1.0, 0.0, 0.3], [0.0, 1.0, -2.0]], np.float32)
    mean = np.asarray(agent.predict(obs, deterministic=True)[0])
    torch.manual_seed(0)
    for temperature in (1.0, 0.5, 0.1):
        acts = sample_actions(agent, obs, 4000, temperature, mean_first=True).reshape(2, 4000)
        assert np.allclose(acts[:, 0], mean[:, 0], atol=1e-6)
        spread = (acts[:, 1:] - mean).std(axis=1)  # |mean| << 2: clipping is negligible
        assert np.allclose(spread, temperature * np.exp(-1.0), rtol=0.05)
    chooser = BestOfN(agent, FunctionScorer(lambda c: -np.abs(c.acts[:, 0])), n=64,
                      temperature=0.1)
    chooser.predict(obs, deterministic=True)
    cands = chooser.last_candidates
    assert cands is not None and chooser.summary()["temperature"] == 0.1
    assert np.abs(cands.acts.reshape(2, 64) - mean).max() < 6 * 0.1 * np.exp(-1.0)
    with pytest.raises(ValueError, match="SAC is not an SB3 on-policy agent with a diagonal"):
        BestOfN(SAC("MlpPolicy", env, seed=0), FunctionScorer(lambda c: c.acts[:, 0]), n=4,
                temperature=0.5)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        BestOfN(agent, FunctionScorer(lambda c: c.acts[:, 0]), n=4, temperature=0.0)
    BestOfN(TablePolicy(), FunctionScorer(lambda c: c.acts[:, 0]), n=4)  # 1: any policy


def test_action_pairs_at_a_temperature_differ_by_that_share_of_the_policys_spread(
        tmp_path: Path) -> None:
    """Pairs labelled for a tempered selector: candidates (and the rollout's own samples) at
    the temperature, recorded in ``meta.json``."""
    env = gym.make("rewardlearn/PickPlace-v0")
    agent = PPO("MlpPolicy", env, seed=0, policy_kwargs={"log_std_init": -1.5})
    gaps = {}
    for temperature in (1.0, 0.1):
        torch.manual_seed(0)
        pairs = collect_action_pairs(agent, "pick_place", n_pairs=40, every=2, horizon=1,
                                     seed=5, out=tmp_path / f"t{temperature}",
                                     teacher=ActionOracle(horizon=1), temperature=temperature)
        _, act_a, act_b, _ = label_arrays(pairs)
        gaps[temperature] = float(np.abs(act_a - act_b).mean())
        meta = json.loads((tmp_path / f"t{temperature}" / "meta.json").read_text())
        assert meta["temperature"] == temperature
    assert 0.07 < gaps[0.1] / gaps[1.0] < 0.14
    fitted = ActionPreferenceReward(env.observation_space, env.action_space, epochs=1,
                                    labels=f"{tmp_path / 't0.1'},{tmp_path / 't1.0'}")
    assert fitted.summary()["label_temperature"] == [0.1, 1.0]  # the selector warns on these
    with pytest.raises(ValueError, match="not an SB3 on-policy agent"):
        collect_action_pairs(LeftRight(), "pick_place", n_pairs=2, temperature=0.5)
