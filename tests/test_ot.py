"""``reward=ot``: log-domain Sinkhorn, TemporalOT's cost and band, the OT proxy reward, and
the deferral of a trajectory-level reward (PPO's rollout end, SAC's replay relabelling)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import SAC
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv
from toy_envs import CountEnv

from rewardlearn.agents import defer_rewards
from rewardlearn.demos import Episode
from rewardlearn.ot.configuration import OTConfig
from rewardlearn.ot.modeling import (
    OTScorer,
    context_cost,
    pairwise_cost,
    sinkhorn_log,
    temporal_mask,
)
from rewardlearn.ot.reward import OTReward
from rewardlearn.rewards import load_reward_model, save_reward_model
from rewardlearn.rewards.base import RewardOutput, TransitionBatch
from rewardlearn.wrappers.episodic import EpisodicReward
from rewardlearn.wrappers.gym import LearnedRewardWrapper
from rewardlearn.wrappers.replay import DeferredReplayBuffer
from rewardlearn.wrappers.vec import DeferredRewardCallback, RewardVecEnvWrapper

ot = pytest.importorskip("ot")


def _uniform(n: int) -> np.ndarray:
    return np.full(n, 1.0 / n)


# -- Sinkhorn ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("n", "m", "reg", "iters", "metric"), [
    (5, 7, 0.1, 100, "euclidean"), (6, 6, 0.01, 100, "euclidean"),
    (20, 30, 0.05, 2000, "cosine"), (12, 9, 0.05, 37, "euclidean")])
def test_sinkhorn_log_gives_pots_plan(n: int, m: int, reg: float, iters: int,
                                      metric: str) -> None:
    rng = np.random.default_rng(n * m)
    C = pairwise_cost(rng.normal(size=(n, 4)), rng.normal(size=(m, 4)), metric)
    a, b = _uniform(n), _uniform(m)
    P = sinkhorn_log(a, b, C, reg, iters)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # POT warns when 100 iterations do not converge
        ref_log = ot.bregman.sinkhorn_log(a, b, C, reg, numItermax=iters)
        ref = ot.sinkhorn(a, b, C, reg, numItermax=iters)
    np.testing.assert_allclose(P, ref_log, rtol=1e-9, atol=1e-14)
    if reg >= 0.05:  # the plain-domain solver does not underflow here
        np.testing.assert_allclose(P, ref, rtol=1e-9, atol=1e-14)
    if iters >= 1000:  # converged: the marginals hold
        np.testing.assert_allclose(P.sum(1), a, atol=1e-9)
        np.testing.assert_allclose(P.sum(0), b, atol=1e-9)


@pytest.mark.filterwarnings("ignore:Sinkhorn did not converge")
def test_sinkhorn_log_survives_a_cost_scale_where_the_plain_kernel_underflows() -> None:
    rng = np.random.default_rng(0)
    C = 20.0 + pairwise_cost(rng.normal(size=(8, 3)), rng.normal(size=(8, 3)))  # exp(-2000)
    assert np.all(np.exp(-C / 0.01) == 0.0)  # the plain-domain kernel is all zeros
    P = sinkhorn_log(_uniform(8), _uniform(8), C, 0.01, 500)
    assert np.all(np.isfinite(P)) and P.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(P, ot.bregman.sinkhorn_log(_uniform(8), _uniform(8), C, 0.01,
                                                          numItermax=500), atol=1e-12)


@pytest.mark.filterwarnings("ignore:Sinkhorn did not converge")
def test_temporal_mask_zeroes_plan_entries_outside_the_band() -> None:
    rng = np.random.default_rng(1)
    n = 30
    C = context_cost(pairwise_cost(rng.normal(size=(n, 4)), rng.normal(size=(n, 4))), 3)
    M = temporal_mask(n, n, 4)
    assert M[0, 4] and not M[0, 5] and M[20, 16] and not M[20, 15]  # |i - j| <= 4
    P = sinkhorn_log(_uniform(n), _uniform(n), C, 0.01, 2000, mask=M)
    assert np.all(P[~M] == 0.0)
    np.testing.assert_allclose(P.sum(1), _uniform(n), atol=1e-8)
    # the same plan as POT's log-domain solver given an enormous cost outside the band
    far = np.where(M, C, 1e4)
    np.testing.assert_allclose(P, ot.bregman.sinkhorn_log(_uniform(n), _uniform(n), far, 0.01,
                                                          numItermax=2000), atol=1e-12)
    # unequal lengths: the band follows the stretched diagonal and a plan exists inside it
    M2 = temporal_mask(10, 25, 1)
    P2 = sinkhorn_log(_uniform(10), _uniform(25), pairwise_cost(
        rng.normal(size=(10, 2)), rng.normal(size=(25, 2))), 0.1, 3000, mask=M2)
    assert M2[0, 0] and M2[9, 24] and not M2[0, 24] and np.all(P2[~M2] == 0.0)
    np.testing.assert_allclose(P2.sum(0), _uniform(25), atol=1e-4)


def test_context_cost_averages_the_next_steps_clipped_at_the_end() -> None:
    base = np.arange(9.0).reshape(3, 3)
    C = context_cost(base, 2)
    assert C[0, 0] == (base[0, 0] + base[1, 1]) / 2
    assert C[2, 1] == (base[2, 1] + base[2, 2]) / 2  # row index clipped at the end
    assert C[1, 2] == (base[1, 2] + base[2, 2]) / 2  # column index clipped
    np.testing.assert_array_equal(context_cost(base, 1), base)


# -- the proxy reward -------------------------------------------------------------------------

def _curve(n: int = 40) -> np.ndarray:
    t = np.linspace(0, 1, n)
    return np.stack([t, np.sin(3 * t), t ** 2], axis=1)


def test_the_demo_itself_scores_higher_than_a_shuffled_or_reversed_copy() -> None:
    demo = _curve()
    rng = np.random.default_rng(0)
    shuffled, reversed_ = demo[rng.permutation(len(demo))], demo[::-1]
    noisy = demo + rng.normal(scale=0.05, size=demo.shape)
    temporal = OTScorer([demo], variant="temporal", k_c=3, k_m=5)
    for other in (shuffled, reversed_, noisy):
        assert temporal.score(demo).totals[0] > temporal.score(other).totals[0] + 1e-3
    plain = OTScorer([demo])
    assert plain.score(demo).totals[0] > plain.score(noisy).totals[0] + 1e-3
    # plain OT matches sets of states: a reordering of the demo costs the same
    assert plain.score(reversed_).totals[0] == pytest.approx(plain.score(demo).totals[0],
                                                             abs=1e-6)


def test_a_demo_that_ended_at_success_is_held_at_its_goal_for_a_longer_episode() -> None:
    demo = _curve(20)  # collected to success; the agent's episodes run to the time limit (40)
    stay = np.concatenate([demo, np.repeat(demo[-1:], 20, axis=0)])
    back = np.concatenate([demo, demo[::-1]])  # reaches the goal, then walks back to the start
    padded, unpadded = OTScorer([demo]), OTScorer([demo], pad=False)
    assert padded.score(stay).totals[0] > padded.score(back).totals[0] + 1e-3
    # plain OT does not build the padding: weighting the demo's last step gives the same plan
    explicit = OTScorer([stay[:40]], pad=False)  # the demo padded by hand to 40 steps
    for x in (stay, back):
        np.testing.assert_allclose(padded.score(x).rewards, explicit.score(x).rewards,
                                   rtol=1e-9, atol=1e-12)
    assert OTScorer([demo], variant="temporal").score(stay).rewards.shape == (40,)
    # without padding, the uniform marginals spread the episode over the demo's 20 steps:
    # walking back through them scores better than holding the goal
    assert unpadded.score(back).totals[0] > unpadded.score(stay).totals[0] + 1e-3


def test_the_best_demo_is_the_one_with_the_highest_total() -> None:
    near, far = _curve(), _curve() + 1.0
    s = OTScorer([far, near]).score(_curve() + 0.01)
    assert s.demo == 1 and s.totals[1] > s.totals[0]
    np.testing.assert_allclose(s.rewards.sum(), s.totals[1])


class NoActions(Episode):
    """A demo whose actions must not be touched (imitation from observation)."""

    def __getattribute__(self, name: str) -> Any:
        if name == "actions":
            raise AssertionError("the OT reward read a demo's actions")
        return super().__getattribute__(name)


def _demo(obs: np.ndarray, k: int) -> NoActions:
    n = len(obs) - 1
    return NoActions(observations=obs.astype(np.float32), actions=np.full((n, 1), np.nan),
                     rewards=np.zeros(n), terminations=np.zeros(n, bool),
                     truncations=np.zeros(n, bool), stages=np.zeros(n + 1, np.int64),
                     subtask_names=(), id=k)


BOX3 = gym.spaces.Box(-10, 10, (3,), np.float32)
ACT1 = gym.spaces.Box(-1, 1, (1,), np.float32)


def _ot(**kwargs: Any) -> OTReward:
    r = OTReward(BOX3, ACT1, **kwargs)
    r.fit([_demo(_curve(41), 0), _demo(_curve(41) + 0.02, 1)])
    return r


def test_scale_set_once_from_the_first_episode_to_a_return_of_minus_ten() -> None:
    r = _ot()  # fit() never reads the demos' actions (NoActions raises)
    assert r.scale is None
    first = r.episode_rewards(_curve(40) + 0.3)
    assert first.sum() == pytest.approx(-10.0) and np.all(first <= 0)
    scale = r.scale
    second = r.episode_rewards(_curve(40) + 0.6)
    assert r.scale == scale and second.sum() < first.sum()  # further from the demos
    fixed = _ot(scale=2.0)
    raw = fixed.scorer.score(fixed._standardize(_curve(40) + 0.3)).rewards  # type: ignore
    np.testing.assert_allclose(fixed.episode_rewards(_curve(40) + 0.3), 2.0 * raw, rtol=1e-5)
    with pytest.raises(ValueError, match="target_return must be > 0"):
        OTConfig(target_return=0.0)


def test_checkpoint_reproduces_the_rewards_without_the_demos(tmp_path: Path) -> None:
    r = _ot(variant="temporal")
    x = _curve(40) + 0.2
    before = r.episode_rewards(x)
    loaded = load_reward_model(save_reward_model(r, tmp_path / "ot.pt"), BOX3, ACT1)
    assert isinstance(loaded, OTReward) and loaded.cfg.demos is None
    np.testing.assert_allclose(loaded.episode_rewards(x), before, rtol=1e-5)


def test_matched_progress_places_each_state_at_its_nearest_demo_state() -> None:
    r = _ot()
    x = _curve(41)[1:]  # the demo's own s' rows: matched with themselves, in order
    np.testing.assert_allclose(r.matched_progress(x), np.arange(40) / 39, atol=1e-9)
    parked = np.repeat(_curve(41)[5:6], 30, axis=0)  # an agent parked at the demo's 5th state
    np.testing.assert_allclose(r.matched_progress(parked), 4 / 39)
    # demos that recorded info["progress"] are placed on it (the exploit probes' scale)
    demo = _demo(_curve(41), 0)
    demo.infos = {"progress": np.linspace(0, 1, 41) ** 2}
    r2 = OTReward(BOX3, ACT1)
    r2.fit([demo])
    np.testing.assert_allclose(r2.matched_progress(parked), np.linspace(0, 1, 41)[5] ** 2)


# -- object-centric features (a random layout per episode) -----------------------------------

BOX4 = gym.spaces.Box(-10, 10, (4,), np.float32)
REL = {"target": "relative", "kwargs": {"pairs": [[[0, 2], [2, 4]]]}}


def _reach(obj: np.ndarray, start: np.ndarray | None = None, n: int = 41) -> np.ndarray:
    """``[hand(2), object(2)]`` rows: the hand moves from ``start`` (the object minus (1, 1))
    to the object."""
    start = obj - 1.0 if start is None else start
    t = np.linspace(0, 1, n)[:, None]
    return np.concatenate([start + t * (obj - start), np.repeat(obj[None], n, axis=0)], axis=1)


def test_relative_encoder_gives_object_minus_hand_and_refuses_bad_ranges() -> None:
    from rewardlearn.encoders import RelativeEncoder, build_encoder

    enc = build_encoder({"target": "relative",
                         "kwargs": {"pairs": [[[0, 2], [2, 4]], [[2, 4], [4, 6]]],
                                    "keep": [6]}})
    assert isinstance(enc, RelativeEncoder) and enc.dim == 5 and not enc.needs_frames
    x = np.array([[1.0, 2.0, 4.0, 6.0, 5.0, 5.0, 0.3]])
    np.testing.assert_allclose(enc.embed(x), [[3.0, 4.0, 1.0, -1.0, 0.3]], rtol=1e-6)
    assert build_encoder(enc.spec()).embed(x).tolist() == enc.embed(x).tolist()
    with pytest.raises(ValueError, match="differ in length"):
        RelativeEncoder(pairs=[[[0, 2], [2, 5]]])
    with pytest.raises(ValueError, match="two index ranges"):
        RelativeEncoder(pairs=[[[3, 1], [4, 2]]])
    with pytest.raises(ValueError, match="reach 8 but the state has 7"):
        RelativeEncoder(pairs=[[[0, 2], [6, 8]]]).embed(x)


def test_relative_features_pay_the_same_motion_in_a_new_layout_as_in_the_demos() -> None:
    """A demo reaches an object at (1, 1); the agent does the same reach (from the object
    minus (1, 1)) to an object at (-1, 0.5). On raw states the agent is far from every demo
    state; on object-minus-hand features it is the demo itself. Both are standardised by the
    demos' statistics."""
    demos = [_demo(_reach(np.array([1.0, 1.0])), 0), _demo(_reach(np.array([1.1, 0.9])), 1)]
    raw, rel = OTReward(BOX4, ACT1, scale=1.0), OTReward(BOX4, ACT1, encoder=REL, scale=1.0)
    for r in (raw, rel):
        r.fit(demos)
    assert rel.metric == "euclidean" and rel.mean is not None  # state features: standardised
    same = _reach(np.array([-1.0, 0.5]))[1:]
    own = _reach(np.array([1.0, 1.0]))[1:]
    parked = np.repeat(same[:1], 40, axis=0)  # the hand stays near the start
    elsewhere = _reach(np.array([-1.0, 0.5]), start=np.array([-2.0, 0.5]))[1:]
    assert rel.episode_rewards(same).sum() == pytest.approx(rel.episode_rewards(own).sum(),
                                                            abs=1e-6)
    for worse in (parked, elsewhere):  # stays put, or comes at the object from elsewhere
        assert rel.episode_rewards(same).sum() > rel.episode_rewards(worse).sum() + 0.1
    assert raw.episode_rewards(same).sum() < raw.episode_rewards(own).sum() - 0.1
    loaded_state = rel.state_dict()
    assert loaded_state["metric"] == "euclidean"
    again = OTReward(BOX4, ACT1, encoder=REL, scale=1.0)
    again.load_state_dict(loaded_state)
    np.testing.assert_allclose(again.episode_rewards(same), rel.episode_rewards(same))
    # a checkpoint from before state encoders were standardised (no mean, no metric) keeps
    # the cosine cost that metric=auto gave every encoder then
    old = {k: v for k, v in loaded_state.items() if k not in ("mean", "std", "metric")}
    legacy = OTReward(BOX4, ACT1, encoder=REL, scale=1.0)
    legacy.load_state_dict(old)
    assert legacy.metric == "cosine" and legacy.mean is None


def test_env_configs_relative_features_are_object_minus_hand_and_goal_minus_object() -> None:
    from rewardlearn_envs.pick_place import STATE_LAYOUT

    from rewardlearn.encoders import build_encoder
    from rewardlearn.env_factory import env_config, make_env

    cfg = env_config("pick_place")
    enc = build_encoder({"target": "relative", "kwargs": dict(cfg.relative_features)})
    env = make_env(cfg, seed=3)
    obs, _ = env.reset(seed=3)
    for _ in range(5):
        obs, *_ = env.step(env.action_space.sample())
    env.close()
    feats = enc.embed(obs[None])[0]  # type: ignore[union-attr]
    # pick_place reports both differences itself: the pairs must reproduce them
    np.testing.assert_allclose(feats[:3], obs[STATE_LAYOUT["cube_minus_gripper"]], atol=1e-6)
    np.testing.assert_allclose(feats[3:6], obs[STATE_LAYOUT["target_minus_cube"]], atol=1e-6)


def test_ot_progress_is_rated_by_the_exploit_probes_and_kept_in_the_checkpoint(
        tmp_path: Path) -> None:
    from rewardlearn.cli.collect import CollectConfig, collect
    from rewardlearn.cli.evaluate import main
    from rewardlearn.env_factory import make_env

    demos = tmp_path / "demos"
    collect(CollectConfig(env="pick_place", n_episodes=3, out=str(demos),
                          dataset_id="test/pick_place/expert-v0"), verbose=False)
    env = make_env("pick_place")
    r = OTReward(env.observation_space, env.action_space, demos=str(demos))
    env.close()
    assert r.demo_progress is not None and r.demo_progress[0][-1] == pytest.approx(1.0)
    path = save_reward_model(r, tmp_path / "ot" / "reward_model.pt")
    loaded = load_reward_model(path, r.observation_space, r.action_space)
    assert isinstance(loaded, OTReward)
    np.testing.assert_allclose(loaded.demo_progress[0], r.demo_progress[0])  # type: ignore
    result = main([f"reward=ot:{path}", "env=pick_place", "metrics=exploit", "n_steps=50"])
    row = result["rewards"]["ot"]
    # a stall never leaves the reset state: the demos' first states, no excess
    assert abs(row["stall_excess"]) < 0.1
    # hovering over the untouched cube looks like the demos' late reach, before the grasp
    assert -0.5 < row["hover_excess"] < 0.5


def test_step_by_step_the_episode_return_comes_at_its_last_step() -> None:
    r = _ot()
    r.episode_rewards(_curve(40) + 0.3)  # sets the scale

    class Replay(gym.Env):
        observation_space, action_space = BOX3, ACT1

        def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
                  ) -> tuple[np.ndarray, dict[str, Any]]:
            self.t = 0
            return _curve(41)[0].astype(np.float32), {}

        def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
            self.t += 1
            return (_curve(41)[self.t].astype(np.float32) + 0.3, 0.0, False, self.t == 40, {})

    env = LearnedRewardWrapper(Replay(), r)
    env.reset()
    got = [env.step(np.zeros(1))[1] for _ in range(40)]
    whole = r.episode_rewards(_curve(41)[1:] + 0.3)
    assert got[:-1] == [0.0] * 39
    assert got[-1] == pytest.approx(float(whole.sum()), rel=1e-5)


# -- deferral of a trajectory-level reward ----------------------------------------------------

class EpisodeCode(EpisodicReward):
    """Each step of episode ``e`` (obs ``[t, e]``) of length ``L`` pays ``1000 * e + L``,
    ``+ 0.5`` while the episode is still running (scored on its prefix)."""

    name = "episode_code"

    def episode_features(self, batch: TransitionBatch) -> np.ndarray:
        return np.asarray(batch.next_obs, np.float64)

    def signal_names(self) -> tuple[str, ...]:
        return ("length",)

    def score_episodes(self, episodes: Sequence[np.ndarray],
                       complete: Sequence[bool]) -> list[RewardOutput]:
        outs = []
        for x, done in zip(episodes, complete, strict=True):
            r = 1000.0 * x[:, 1] + len(x) + (0.0 if done else 0.5)
            outs.append(RewardOutput(r, {"length": np.full(len(x), float(len(x)))}))
        return outs


def _venv(terminate_at: Sequence[int], max_steps: int = 5) -> DummyVecEnv:
    def make(k: int) -> Any:
        return lambda: Monitor(gym.wrappers.TimeLimit(CountEnv(terminate_at=k),
                                                      max_episode_steps=max_steps))

    return DummyVecEnv([make(k) for k in terminate_at])


def test_rollout_end_scores_ended_episodes_whole_and_running_ones_on_their_prefix() -> None:
    venv = _venv([3, 2])  # env 0: episodes of 3, 5, 3...; env 1: 2, 5, 2...
    model = EpisodeCode(venv.observation_space, venv.action_space)
    wrapped = RewardVecEnvWrapper(venv, model, defer=True)
    wrapped.reset()
    zero = np.zeros((2, 1), np.float32)
    for _ in range(4):
        wrapped.step(zero)
    first = wrapped.flush()
    # env 0: episode 0 (3 steps) whole, then 1 step of episode 1 (prefix of length 1)
    np.testing.assert_allclose(first.learned[:, 0], [3, 3, 3, 1000 + 1 + 0.5])
    # env 1: episode 0 (2 steps), then 2 steps of episode 1 (a prefix of 2)
    np.testing.assert_allclose(first.learned[:, 1], [2, 2, 1000 + 2.5, 1000 + 2.5])
    np.testing.assert_array_equal(first.signals["episode_partial"][:, 0], [0, 0, 0, 1])
    for _ in range(4):
        wrapped.step(zero)
    second = wrapped.flush()
    # env 0: episode 1 ends after 4 more steps (5 in all): those rows pay its whole length
    np.testing.assert_allclose(second.learned[:, 0], [1005, 1005, 1005, 1005])
    np.testing.assert_allclose(second.learned[:, 1], [1005, 1005, 1005, 2000 + 1.5])
    returns = sorted(ep["r"] for ep in second.episodes)
    assert returns == [2 * 1002.5 + 3 * 1005, 1001.5 + 4 * 1005]
    with pytest.raises(ValueError, match=r"reward_timing=step.*scores whole episodes"):
        defer_rewards("step", "ppo", model.name, model.deferrable, episodic=True)
    assert defer_rewards("auto", "sac", model.name, model.deferrable, episodic=True)
    from rewardlearn.shaping import FunctionPotential, ShapedReward
    from rewardlearn.wrappers.episodic import holds_episodic

    shaped = ShapedReward(venv.observation_space, venv.action_space, base=model, gamma=0.99,
                          potential=FunctionPotential(lambda obs: np.zeros(len(obs))))
    assert holds_episodic(shaped) and not shaped.deferrable
    with pytest.raises(ValueError, match="shaping on top of such a reward is not supported"):
        defer_rewards("auto", "ppo", shaped.name, shaped.deferrable, episodic=True)


@pytest.mark.parametrize("buffer_size", [14, 8])  # SB3 splits it: 7 and 4 rows per env
def test_sac_replay_rows_are_rewritten_when_their_episode_ends(buffer_size: int) -> None:
    venv = _venv([3, 2])  # two envs out of step: episodes straddle each other
    model = EpisodeCode(venv.observation_space, venv.action_space)
    wrapped = RewardVecEnvWrapper(venv, model, defer=True)
    agent = SAC("MlpPolicy", wrapped, buffer_size=buffer_size, learning_starts=2, batch_size=8,
                seed=0, device="cpu", policy_kwargs={"net_arch": [8]},
                **model.agent_kwargs("sac"))
    rb = agent.replay_buffer
    assert isinstance(rb, DeferredReplayBuffer)
    seen: list[tuple[int, int]] = []
    real = rb.write

    def spy(stamps: Sequence[int], rewards: np.ndarray) -> int:
        seen.append((len(stamps), real(stamps, rewards)))
        return seen[-1][1]

    rb.write = spy  # type: ignore[method-assign]
    agent.learn(40, callback=[DeferredRewardCallback()])  # 20 steps: wraps around the rows
    assert rb.full and seen
    lengths = {(0, e): 3 if e % 2 == 0 else 5 for e in range(20)}
    lengths.update({(1, e): 2 if e % 2 == 0 else 5 for e in range(20)})
    for row in range(rb.buffer_size):
        for env in range(2):
            ep = int(rb.next_observations[row, env, 1])
            if rb.ready[row, env]:  # written: exactly its own episode's reward
                assert rb.rewards[row, env] == 1000 * ep + lengths[(env, ep)]
            else:  # its episode is still running: the placeholder, never sampled
                assert rb.rewards[row, env] == 0.0
    assert rb.n_ready == int(rb.ready.sum())
    if rb.buffer_size == 7:
        assert rb.n_ready > 0 and agent._n_updates > 0  # it trained, on written rows only
        assert np.all(rb.sample(64).rewards.numpy() > 0)  # only rows with their reward
    else:  # rows overwritten before their episode ended are skipped, never misfiled
        assert any(written < asked for asked, written in seen)


def test_sac_waits_for_a_finished_episode_before_training() -> None:
    venv = _venv([50], max_steps=50)
    model = EpisodeCode(venv.observation_space, venv.action_space)
    wrapped = RewardVecEnvWrapper(venv, model, defer=True)
    agent = SAC("MlpPolicy", wrapped, learning_starts=5, batch_size=4, seed=0, device="cpu",
                policy_kwargs={"net_arch": [8]}, **model.agent_kwargs("sac"))
    agent.learn(30, callback=[DeferredRewardCallback()])
    assert agent.replay_buffer.n_ready == 0 and agent._n_updates == 0  # type: ignore[union-attr]
    assert agent.learning_starts == 30
    with pytest.raises(ValueError, match="DeferredReplayBuffer"):
        SAC("MlpPolicy", RewardVecEnvWrapper(_venv([3]), model, defer=True), device="cpu",
            learning_starts=1).learn(3, callback=[DeferredRewardCallback()])
