"""DrS: failure-aware stage labels, the stage-indexed reward, online updates, exploits."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv
from toy_envs import LineEnv

from rewardlearn.drs.configuration import DrSConfig
from rewardlearn.drs.labels import (
    StageBuffers,
    TrajectoryBuffers,
    episode_labels,
    positive_tail,
    trajectory_outcome,
)
from rewardlearn.drs.reward import DrSReward
from rewardlearn.rewards import load_reward_model, save_reward_model
from rewardlearn.rewards.base import TransitionBatch
from rewardlearn.settings import UnknownSettingError
from rewardlearn.wrappers import RewardVecEnvWrapper

SPACE = gym.spaces.Box(-5, 5, (2,), np.float32)
ACT = gym.spaces.Box(-1, 1, (1,), np.float32)


def batch(xs: list[float], stages: list[int], success: list[bool] | None = None,
          done: list[bool] | None = None) -> TransitionBatch:
    obs = np.array([[x, 1.0] for x in xs], np.float32)
    n = len(xs)
    b = TransitionBatch.from_arrays(obs, np.zeros((n, 1), np.float32), obs,
                                    truncated=np.array(done or [False] * n))
    b.infos = [{"stage": k, "is_success": s, "num_stages": 2}
               for k, s in zip(stages, success or [False] * n, strict=True)]
    return b


def play(r: DrSReward, xs: list[float], success: bool) -> None:
    """Feed one finished episode to ``r.observe``, a step at a time (one env)."""
    for t, x in enumerate(xs):
        last = t == len(xs) - 1
        b = batch([x], [int(x >= 1)], [success and last], [last])
        r.observe(b, r(b))


def test_labels_follow_what_the_trajectory_did_next_not_the_clock() -> None:
    # reached stage 1, then dropped back to stage 0 and never recovered
    k, pos = episode_labels(np.array([0, 0, 1, 1, 0, 0]), success=False, num_stages=2)
    assert pos.tolist() == [True, True, False, False, False, False]
    # a long stall in stage 0 that never advances: every stalled state is a negative
    k, pos = episode_labels(np.zeros(50, int), success=False, num_stages=2)
    assert not pos.any()
    # success: every state advanced, the success state included
    k, pos = episode_labels(np.array([0, 1, 1]), success=True, num_stages=2)
    assert pos.all()
    # a recovered drop: the states after the drop advanced again, so they are positives
    k, pos = episode_labels(np.array([0, 1, 0, 1, 1]), success=True, num_stages=2)
    assert pos.all() and k.tolist() == [0, 1, 0, 1, 1]


def test_buffers_keep_demo_positives_and_drop_the_oldest_agent_rows() -> None:
    buf = StageBuffers(num_stages=2, dim=1, capacity=3)
    buf.add_demo(np.array([[9.0]]), np.array([0]), np.array([True]))
    buf.add(np.arange(5.0)[:, None], np.zeros(5, int), np.zeros(5, bool))
    assert buf.counts(0) == (1, 3)
    rng = np.random.default_rng(0)
    assert set(buf.sample(0, 50, False, rng)[:, 0]) == {2.0, 3.0, 4.0}
    assert set(buf.sample(0, 50, True, rng)[:, 0]) == {9.0}


def test_trajectory_labels_file_whole_episodes_by_their_best_stage() -> None:
    """DrS's published rule: D_k's positives are every state of an episode that got past k
    (its later-stage states too), its negatives every state of one that did not; a failed
    episode is cut after its last state at its best stage."""
    assert trajectory_outcome(np.array([0, 1, 1, 0, 0]), False, 3) == (1, 3)
    assert trajectory_outcome(np.array([0, 0]), False, 3) == (0, 2)
    assert trajectory_outcome(np.array([0, 1, 2]), True, 3) == (3, 3)
    buf = TrajectoryBuffers(num_stages=2, dim=1, capacity=4)
    buf.add_demo(np.array([[7.0], [8.0], [9.0]]), level=2)
    buf.add_episode(np.array([[1.0], [2.0]]), level=0)
    buf.add_episode(np.array([[5.0], [6.0]]), level=1)
    assert buf.counts(0) == (5, 2) and buf.counts(1) == (3, 4)
    rng = np.random.default_rng(0)
    assert set(buf.sample(0, 200, True, rng)[:, 0]) == {5.0, 6.0, 7.0, 8.0, 9.0}
    assert set(buf.sample(1, 200, False, rng)[:, 0]) == {1.0, 2.0, 5.0, 6.0}
    buf.add_episode(np.arange(10.0, 16.0)[:, None], level=0)  # FIFO keeps the last 4
    assert set(buf.sample(0, 200, False, rng)[:, 0]) == {12.0, 13.0, 14.0, 15.0}


def test_trajectory_labels_score_the_next_stage_above_the_failures() -> None:
    r = DrSReward(SPACE, ACT, num_stages=2, labels="trajectory", min_negatives=8,
                  train_steps=300, batch_size=64, update_every=1, seed=0)
    assert isinstance(r.buffers, TrajectoryBuffers)
    for _ in range(10):
        play(r, [0.0, 0.3, 0.6, 0.9, 1.2, 1.5, 1.9], success=True)
        play(r, [0.0, -0.1, -0.2, -0.3, -0.2, -0.1, 0.0], success=False)  # goes the wrong way
    assert r.update()["stages_trained"] >= 1
    score = r.scores(np.array([[-0.3, 1.0], [0.9, 1.0]], np.float32), np.array([0, 0]))
    assert score[0] < 0 < score[1]
    with pytest.raises(ValueError, match="positive_tail applies to labels=state"):
        DrSConfig(labels="trajectory", positive_tail=0.5)
    with pytest.raises(ValueError, match=r"labels must be one of \('state', 'trajectory'\)"):
        DrSConfig(labels="episode")


def test_stage_always_outranks_the_within_stage_score() -> None:
    r = DrSReward(SPACE, ACT, num_stages=3, alpha=0.45, form="stage")
    assert r.net is not None
    r.net.trained.fill_(True)
    for p in r.net.parameters():  # an extreme classifier: saturated scores either way
        p.data.normal_(0, 10)
    xs = list(np.linspace(-5, 5, 40))
    out = {k: r(batch(xs, [k] * 40)) for k in range(3)}
    for k in range(2):
        assert out[k].max() < out[k + 1].min()
    assert r(batch([0.0], [1], [True]))[0] == 3.0


def test_negative_form_is_in_minus_one_to_zero_and_zero_at_success() -> None:
    r = DrSReward(SPACE, ACT, num_stages=2)
    out = r(batch([0.0, 1.2, 1.9], [0, 1, 1], [False, False, True]))
    assert out.tolist() == [-1.0, -0.5, 0.0]


def test_hovering_without_advancing_ends_up_scored_below_advancing() -> None:
    """The exploit DrS is built against: the policy parks near the goal of stage 0 without
    ever reaching stage 1. Those states become stage-0 negatives, so their score falls below
    that of states from which trajectories advanced."""
    r = DrSReward(SPACE, ACT, num_stages=2, min_negatives=8, train_steps=300, batch_size=64,
                  update_every=1, seed=0)
    for _ in range(10):
        play(r, [0.0, 0.3, 0.6, 0.9, 1.2, 1.5, 1.9], success=True)
        play(r, [0.5, 0.55, 0.5, 0.45, 0.5, 0.55, 0.5, 0.5], success=False)  # stalls halfway
    metrics = r.update()
    assert metrics["stages_trained"] >= 1 and metrics["neg_0"] == 80
    score = r.scores(np.array([[0.5, 1.0], [0.9, 1.0]], np.float32), np.array([0, 0]))
    assert score[0] < 0 < score[1]
    hover_r, near_r = r(batch([0.5, 0.9], [0, 0]))
    assert hover_r < near_r < r(batch([1.2], [1]))[0]


def test_online_updates_during_ppo_and_a_checkpoint_gives_the_same_rewards(
        tmp_path: Path) -> None:
    venv = DummyVecEnv([lambda: Monitor(LineEnv()) for _ in range(2)])
    r = DrSReward(venv.observation_space, venv.action_space, num_stages=2, update_every=256,
                  min_negatives=16, batch_size=32, train_steps=20)
    wrapped = RewardVecEnvWrapper(venv, r)
    agent = PPO("MlpPolicy", wrapped, n_steps=128, batch_size=64, seed=0, device="cpu")
    agent.learn(1024, callback=r.callbacks())
    assert r.updates >= 1 and r.buffers is not None and r.buffers.counts(0)[1] >= 16
    path = save_reward_model(r, tmp_path / "reward_model.pt")
    loaded = load_reward_model(path, venv.observation_space, venv.action_space)
    b = batch([0.1, 0.7, 1.3], [0, 0, 1])
    np.testing.assert_allclose(loaded(b), r(b))


def test_bad_settings_and_missing_stage_are_named() -> None:
    with pytest.raises(ValueError, match="alpha must be in"):
        DrSConfig(alpha=0.6)
    with pytest.raises(UnknownSettingError, match=r"valid: .*alpha"):
        DrSReward(SPACE, ACT, alfa=0.1)
    r = DrSReward(SPACE, ACT, num_stages=2)
    b = batch([0.0], [0])
    b.infos = [{"progress": 0.3}]
    with pytest.raises(ValueError, match=r"info\['stage'\].*stage_key"):
        r(b)


def test_env_config_wrappers_are_applied_innermost_first_and_bad_ones_named() -> None:
    from rewardlearn.env_factory import apply_wrappers, make_env

    cfg = {"name": "pendulum", "id": "Pendulum-v1",
           "wrappers": [{"_target_": "gymnasium.wrappers.TransformReward", "func": None},
                        {"_target_": "gymnasium.wrappers.ClipAction"}]}
    with pytest.raises(TypeError):  # the kwargs reach the wrapper (func=None is refused)
        make_env(cfg, seed=0).step(np.zeros(1, np.float32))
    cfg["wrappers"] = [{"_target_": "gymnasium.wrappers.ClipAction"},
                       {"_target_": "gymnasium.wrappers.TimeLimit", "max_episode_steps": 3}]
    env = make_env(cfg, seed=0)
    assert isinstance(env, gym.wrappers.TimeLimit)
    assert isinstance(env.env, gym.wrappers.ClipAction)
    env.reset(seed=0)
    assert [env.step(np.zeros(1, np.float32))[3] for _ in range(3)] == [False, False, True]
    with pytest.raises(ValueError, match=r"wrappers\[0\]: cannot import 'no.such.Wrapper'"):
        make_env({**cfg, "wrappers": [{"_target_": "no.such.Wrapper"}]})
    with pytest.raises(ValueError, match=r"wrappers\[0\] must be a mapping with _target_"):
        apply_wrappers(env, [{"task": "x"}])
    with pytest.raises(ValueError, match="must be a list"):
        apply_wrappers(env, {"_target_": "gymnasium.wrappers.ClipAction"})


def test_metaworld_configs_report_stages_and_drs_trains_on_one(tmp_path: Path) -> None:
    """Meta-World env configs add ``info["stage"]`` (so ``reward=drs`` runs unchanged on them)
    and ``env.reward_type=sparse`` pays only success."""
    pytest.importorskip("metaworld", reason="Meta-World is the [metaworld] extra")
    import json
    import subprocess
    import sys

    from rewardlearn.env_factory import env_config, make_env

    for name in ("metaworld_reach", "metaworld_push", "metaworld_pick_place"):
        env = make_env(name, seed=0)
        _, info = env.reset(seed=0)
        assert info["stage"] == 0 and info["is_success"] is False
    cfg = env_config("metaworld_push")
    cfg.reward_type = "sparse"
    env = make_env(cfg, seed=0)
    env.reset(seed=0)
    rewards = [float(env.step(env.action_space.sample())[1]) for _ in range(5)]
    assert rewards == [0.0] * 5  # random actions do not push the puck onto the goal
    dense = make_env("metaworld_push", seed=0)
    dense.reset(seed=0)
    assert float(dense.step(dense.action_space.sample())[1]) > 0.0

    root = Path(__file__).resolve().parents[1]
    demos = tmp_path / "demos"
    subprocess.run([sys.executable, "-m", "rewardlearn.cli.collect", "env=metaworld_push",
                    "n_episodes=3", f"out={demos}"], cwd=root, check=True, capture_output=True)
    run = tmp_path / "run"
    subprocess.run([sys.executable, "train.py", "env=metaworld_push", "env.reward_type=sparse",
                    "agent=ppo", "n_envs=2", "total_timesteps=2000", "reward=drs",
                    f"reward.model.demos={demos}", "reward.model.update_every=500",
                    # object-centric classifier inputs, from the env config's index ranges
                    "reward.model.encoder={target: relative, kwargs: ${env.relative_features}}",
                    "reward.model.min_negatives=16", "reward.model.train_steps=5",
                    "eval.n_episodes=1", "video.enabled=false", "progress_bar=false",
                    "torch_threads=1", f"hydra.run.dir={run}"],
                   cwd=root, check=True, capture_output=True)
    summary = json.loads((run / "summary.json").read_text())
    # stage-indexed negative form: every learned reward lies in [-1 - alpha / K, 0]
    # (push: K = 3 stages, alpha = 0.3) over Meta-World's 500-step episodes
    assert -500.0 * (1 + 0.3 / 3) <= summary["learned_return_mean"] <= 0.0
    # the reward's cost counts its classifier updates (run between rollouts by its callback)
    # as well as its calls from the reward wrapper
    assert summary["reward_update_s"] > 0.0 and summary["reward_calls_s"] > 0.0
    assert abs(summary["reward_s"] - summary["reward_calls_s"] - summary["reward_update_s"]) \
        <= 0.011
    assert summary["reward_share"] == pytest.approx(
        summary["reward_s"] / summary["train_wall_s"], abs=2e-3)
    assert (run / "reward_model" / "model.safetensors").is_file()


def test_positive_tail_keeps_each_stages_last_positives_and_every_negative() -> None:
    # stage 0 for 6 steps, stage 1 for 4 (advanced), then stage 1 again after a drop, fail
    k = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 1, 1])
    _, pos = episode_labels(k, success=False, num_stages=3)
    assert pos.tolist() == [True] * 10 + [False] * 3
    keep = positive_tail(k, pos, 0.5)
    # the last 3 of 6 stage-0 positives, the last 2 of 4 stage-1 positives, all negatives
    assert np.flatnonzero(keep).tolist() == [3, 4, 5, 8, 9, 10, 11, 12]
    assert positive_tail(k, pos, 1.0).all()
    assert positive_tail(k, pos, 0.01).sum() == 2 + 3  # at least one positive per stage
    with pytest.raises(ValueError, match="tail must be in"):
        positive_tail(k, pos, 0.0)
    with pytest.raises(ValueError, match="positive_tail must be in"):
        DrSConfig(positive_tail=1.5)


def test_positive_tail_scores_a_stages_exit_above_its_entry() -> None:
    """Demos walk 0 -> 1 (stage 1 from x >= 1); the agent stalls at x = 0.2 (early in
    stage 0). With a tail of 0.3 only the demos' states near x = 1 are positives, so the
    score rises along the way out of stage 0; a policy stalled early is scored lowest."""
    def demo() -> list[float]:
        return list(np.linspace(0.0, 1.5, 16))

    scores = {}
    for tail in (1.0, 0.3):
        r = DrSReward(SPACE, ACT, num_stages=2, min_negatives=16, batch_size=64,
                      train_steps=200, positive_tail=tail, seed=0, lipschitz=None)
        for _ in range(5):
            play(r, demo(), success=True)
        for _ in range(5):
            play(r, [0.2] * 20, success=False)
        r.update()
        xs = np.array([[0.2, 1.0], [0.5, 1.0], [0.9, 1.0]], np.float32)
        scores[tail] = r.scores(xs, np.zeros(3, np.int64))
    tail_scores = scores[0.3]
    assert tail_scores[0] < tail_scores[1] < tail_scores[2]
    assert tail_scores[2] > 0 > tail_scores[0]
    # as published (tail 1), a mid-stage demo state is a full positive: no pull to the exit
    assert scores[1.0][1] > 0.9 and scores[0.3][1] < scores[1.0][1] - 0.1


def test_mixup_scores_blends_of_agent_and_demo_states_by_their_blend_weight() -> None:
    """Before its first success at a stage the agent's states there are all negatives and
    the demos the only positives. Trained to certainty, the unbounded classifier
    (``lipschitz=None``) is a step: -1 for
    everything up to halfway towards the demos, a flat reward with nothing to climb.
    ``mixup`` trains blends ``lam * pos + (1 - lam) * neg`` towards the soft label ``lam``,
    so the score ``tanh(logit(lam))`` rises along the whole way."""
    lam = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    line = np.stack([-2 + 4 * lam, np.ones(5)], 1).astype(np.float32)

    def trained(mixup: float) -> np.ndarray:
        r = DrSReward(SPACE, ACT, num_stages=2, min_negatives=16, batch_size=64,
                      train_steps=500, lr=3e-3, mixup=mixup, seed=0, lipschitz=None)
        assert r.buffers is not None
        demo = np.stack([np.full(40, 2.0), np.ones(40)], 1).astype(np.float32)
        r.buffers.add_demo(demo, np.zeros(40, np.int64), np.ones(40, bool))
        for _ in range(2):
            play(r, [-2.0] * 20, success=False)  # the agent, stuck at x = -2
        r.update()
        return r.scores(line, np.zeros(5, np.int64))

    plain, mixed = trained(0.0), trained(1.0)
    assert plain[1] < -0.95 and plain[3] > 0.95                 # a step
    inner = lam[1:4]
    np.testing.assert_allclose(mixed[1:4], np.tanh(np.log(inner / (1 - inner))), atol=0.1)
    with pytest.raises(ValueError, match="mixup must be"):
        DrSConfig(mixup=-1.0)


def test_per_stage_classifiers_train_apart_and_raw_states_stay_raw() -> None:
    """``shared_trunk=false`` (DrS's published code: one small net per stage) trains only the
    stages that have data: the stage-1 net is untouched while the agent is stuck in stage 0.
    ``standardize=none`` feeds raw states (mean 0, std 1 stay); ``demos`` fits them."""
    def stuck(**kw: object) -> DrSReward:
        r = DrSReward(SPACE, ACT, num_stages=2, min_negatives=8, batch_size=32,
                      train_steps=20, seed=0, **kw)  # type: ignore[arg-type]
        assert r.buffers is not None
        r.buffers.add_demo(np.array([[1.5, 1.0]] * 8, np.float32), np.zeros(8, np.int64),
                           np.ones(8, bool))
        play(r, [-1.0, -0.5, 0.0, 0.2, 0.1, 0.0, -0.2, -0.4, -0.6, -0.8], success=False)
        return r

    r = stuck(hidden_sizes=[32], activation="sigmoid", shared_trunk=False, standardize="none")
    assert r.net is not None
    before = [p.detach().clone() for p in r.net.net[1].parameters()]  # type: ignore[index]
    head0 = [p.detach().clone() for p in r.net.net[0].parameters()]  # type: ignore[index]
    assert r.update()["stages_trained"] == 1
    after = list(r.net.net[1].parameters())  # type: ignore[index]
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(
        head0, r.net.net[0].parameters(), strict=True))  # type: ignore[index]
    assert r.net.mean.abs().max() == 0 and torch.all(r.net.std == 1)

    shared = stuck(shared_trunk=True, standardize="demos")
    assert shared.net is not None
    shared.update()
    assert shared.net.mean.abs().max() > 0  # fitted on the first data


def test_a_checkpoint_of_another_classifier_shape_says_what_differs() -> None:
    old = DrSReward(SPACE, ACT, num_stages=2, shared_trunk=True, hidden_sizes=[256, 256])
    new = DrSReward(SPACE, ACT, num_stages=2, shared_trunk=False, hidden_sizes=[32])
    with pytest.raises(ValueError, match=r"does not match.*shared_trunk=False.*shared_trunk=true"):
        new.load_state_dict(old.state_dict())
    with pytest.raises(ValueError, match=r"activation must be one of .*sigmoid"):
        DrSConfig(activation="gelu")
    with pytest.raises(ValueError, match=r"standardize must be one of"):
        DrSConfig(standardize="batch")


def test_a_lipschitz_classifier_ramps_where_an_unbounded_one_saturates(tmp_path: Path) -> None:
    """Trained to certainty on demo positives at x = 2 against agent negatives near 0, the
    unbounded classifier scores the whole way between them flat at -1; with
    ``lipschitz=1`` the logit moves at most 1 per standard deviation of the states, so
    the score still rises from the agent's states towards the demos'."""
    def trained(**kw: object) -> DrSReward:
        r = DrSReward(SPACE, ACT, num_stages=2, min_negatives=8, batch_size=64,
                      train_steps=400, lr=3e-3, seed=0, **kw)  # type: ignore[arg-type]
        assert r.buffers is not None and r.net is not None
        r.buffers.add_demo(np.array([[2.0 + 0.01 * i, 1.0] for i in range(20)], np.float32),
                           np.zeros(20, np.int64), np.ones(20, bool))
        r.net.fit_scale(np.array([[x, 1.0] for x in np.linspace(-1, 2, 30)], np.float32))
        for _ in range(4):
            play(r, list(np.linspace(-0.6, 0.6, 9)), success=False)
        assert r.update()["stages_trained"] >= 1
        return r

    line = np.array([[x, 1.0] for x in np.linspace(0.6, 1.8, 7)], np.float32)
    plain = trained(lipschitz=None).scores(line, np.zeros(7, np.int64))
    assert (np.abs(plain) > 0.99).sum() >= 5  # a step: saturated on most of the way
    r = trained(lipschitz=1.0)
    lip = r.scores(line, np.zeros(7, np.int64))
    assert np.all(np.diff(lip) > 0.02) and (np.abs(lip) > 0.99).sum() == 0
    assert r.net is not None
    with torch.no_grad():  # the bound itself, in standardised units
        x = torch.as_tensor(np.array([[0.0, 1.0], [2.0, 1.0]], np.float32))
        z = (x - r.net.mean) / r.net.std
        gap = (r.net(x)[1] - r.net(x)[0]).abs().max()
    assert gap <= torch.linalg.norm(z[1] - z[0]) + 1e-4
    b = batch([0.8, 1.4], [0, 0])  # scoring does not move spectral norm's estimate
    np.testing.assert_array_equal(r(b), r(b))
    path = save_reward_model(r, tmp_path / "reward_model.pt")
    np.testing.assert_allclose(load_reward_model(path, SPACE, ACT)(b), r(b), rtol=1e-6)
    with pytest.raises(ValueError, match=r"does not match.*lipschitz=None"):
        DrSReward(SPACE, ACT, num_stages=2, lipschitz=None).load_state_dict(r.state_dict())
    # a checkpoint saved before the setting existed is rebuilt unbounded, as it was trained
    old = DrSReward(SPACE, ACT, num_stages=2, lipschitz=None)
    payload = torch.load(save_reward_model(old, tmp_path / "old.pt"), weights_only=True)
    del payload["config"]["lipschitz"]
    torch.save(payload, tmp_path / "old.pt")
    loaded = load_reward_model(tmp_path / "old.pt", SPACE, ACT)
    assert isinstance(loaded, DrSReward) and loaded.cfg.lipschitz is None
    with pytest.raises(ValueError, match="lipschitz must be > 0"):
        DrSConfig(lipschitz=0.0)


def test_a_relative_encoder_scores_the_hand_at_the_object_wherever_the_object_is(
        tmp_path: Path) -> None:
    """``reward.model.encoder=relative``: the classifiers read object minus hand, so what
    they learn in one layout holds in another (a flat-state classifier sees new absolute
    positions). A frame encoder is refused: DrS scores states."""
    space = gym.spaces.Box(-5, 5, (4,), np.float32)  # hand xy, object xy
    enc = {"target": "relative", "kwargs": {"pairs": [[[0, 2], [2, 4]]]}}
    r = DrSReward(space, ACT, num_stages=2, encoder=enc, min_negatives=8, train_steps=300,
                  batch_size=64, update_every=1, seed=0)
    assert r.dim == 2
    rng = np.random.default_rng(0)

    def episode(at_object: bool, success: bool) -> None:
        obj = rng.uniform(-1, 1, 2)  # this episode's layout
        hand = obj + (rng.normal(0, 0.05, 2) if at_object else rng.uniform(1, 2, 2))
        xs = np.repeat(np.concatenate([hand, obj])[None], 5, 0).astype(np.float32)
        for t in range(5):
            last = t == 4
            b = TransitionBatch.from_arrays(xs[t:t + 1], np.zeros((1, 1), np.float32),
                                            xs[t:t + 1], truncated=np.array([last]))
            b.infos = [{"stage": 0, "is_success": success and last, "num_stages": 2}]
            r.observe(b, r(b))

    for _ in range(20):
        episode(True, True)
        episode(False, False)
    assert r.update()["stages_trained"] >= 1
    far_layout = np.array([[3.0, -3.0, 3.0, -3.0], [4.5, -1.5, 3.0, -3.0]], np.float32)
    at, away = r.scores(far_layout, np.array([0, 0]))
    assert at > 0 > away  # a layout no episode had
    path = save_reward_model(r, tmp_path / "reward_model.pt")
    loaded = load_reward_model(path, space, ACT)
    np.testing.assert_allclose(loaded.scores(far_layout, np.array([0, 0])), [at, away],
                               rtol=1e-6)
    with pytest.raises(ValueError, match="reads frames"):
        DrSReward(space, ACT, num_stages=2, encoder="downsample")
    with pytest.raises(ValueError, match="indices reach 4 but the state has 2"):
        DrSReward(SPACE, ACT, num_stages=2, encoder=enc)
