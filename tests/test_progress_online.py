"""Failure-aware progress labels, the ranking term, and online refinement (issue #18, 1-2)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from rewardlearn.demos import Episode
from rewardlearn.progress import ProgressConfig, train_progress_model
from rewardlearn.progress.configuration import OnlineConfig
from rewardlearn.progress.labels import (
    failure_aware_labels,
    frame_stage_labels,
    frame_windows,
)
from rewardlearn.progress.modeling import ProgressModel, StageProgressNet
from rewardlearn.progress.online import OnlineRefiner
from rewardlearn.progress.potential import ProgressPotential, ProgressScorer
from rewardlearn.progress.training import LabelledDemo, RankPairs, rank_loss
from rewardlearn.rewards.base import TransitionBatch
from rewardlearn.rewards.env import EnvReward
from rewardlearn.shaping import ShapedReward

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ALPHA = np.array([0.25, 0.25, 0.25, 0.25])
SPACE = gym.spaces.Box(-5, 5, (2,), np.float32)


# -- labels -----------------------------------------------------------------------------

def test_a_stalled_run_gets_no_rising_target() -> None:
    stalled = np.array([0, 0, 0, 1, 1, 1, 1, 1])          # grasped, then nothing to the end
    _, clock_tau, _ = frame_stage_labels(stalled, ALPHA)
    # the clock alone says "stalling is progress"
    assert clock_tau[3:].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    stage, tau, prog, adv = failure_aware_labels(stalled, False, ALPHA)
    assert stage.tolist() == stalled.tolist()
    assert tau[3:].tolist() == [0.0] * 5 and not adv[3:].any()
    np.testing.assert_allclose(prog[3:], 0.25)             # the stage's start level, P_{k-1}
    np.testing.assert_allclose(tau[:3], [0.0, 1 / 3, 2 / 3])  # stage 0 advanced: it keeps its clock
    # the same stages in an episode that succeeds at its end: the last run advanced
    _, tau_ok, _, adv_ok = failure_aware_labels(stalled, True, ALPHA)
    assert adv_ok.all() and np.all(np.diff(tau_ok[3:]) > 0)


def test_a_dropped_cubes_frames_return_to_the_lower_stage() -> None:
    dropped = np.array([0, 0, 1, 1, 2, 2, 2, 1, 1, 2, 3, 3])   # carried, dropped at 7, regrasped
    stage, tau, prog, adv = failure_aware_labels(dropped, True, ALPHA)
    assert stage[7:9].tolist() == [1, 1]                     # not the running maximum (2)
    # the carry that ended in a drop gets no clock
    assert not adv[4:7].any() and tau[4:7].tolist() == [0.0, 0.0, 0.0]
    assert adv[7:9].all() and tau[8] > tau[7]                # the regrasp advanced again
    assert prog[7:9].max() < prog[4:7].min()                 # after the drop: lower progress
    assert prog[-1] == pytest.approx(1.0)
    # failed version: dropped and never regrasped
    stage, tau, prog, adv = failure_aware_labels(dropped[:9], False, ALPHA)
    assert stage[7:].tolist() == [1, 1] and tau[7:].tolist() == [0.0, 0.0]


def test_failures_rank_below_successes_at_the_same_stage() -> None:
    def labelled(stages: list[int], success: bool) -> LabelledDemo:
        st, tau, prog, adv = failure_aware_labels(np.array(stages), success, ALPHA)
        return LabelledDemo(0, np.zeros((len(stages), 1)), np.zeros((4, 2)), st, tau, prog,
                            success, np.where(adv, 1.0, 0.0), adv)

    ok = labelled([0, 0, 1, 1, 2, 2, 3, 3], True)
    fail = labelled([0, 0, 1, 1, 1, 1], False)              # stuck in stage 1
    hi_ok, lo_ok = ok.rank_groups()
    hi_f, lo_f = fail.rank_groups()
    assert hi_ok.all() and not lo_ok.any()
    assert lo_f.tolist() == [False, False, True, True, True, True]
    assert not hi_f.any()                                   # a failure is never a "high" frame
    stage = np.r_[ok.stage, fail.stage]
    pairs = RankPairs(stage, np.r_[hi_ok, hi_f], np.r_[lo_ok, lo_f])
    hi, lo, k = pairs.sample(50, np.random.default_rng(0))
    assert set(lo.tolist()) <= {10, 11, 12, 13} and np.all(stage[hi] == stage[lo])
    assert np.all(hi < 8) and np.all(k == 1)   # against the success's stage-1 frames


@pytest.mark.parametrize("kind", ["logistic", "margin"])
def test_the_ranking_loss_fixes_a_misordered_pair(kind: str) -> None:
    torch.manual_seed(0)
    net = StageProgressNet(4, 1, 2, frame_dim=16, hidden_sizes=(32,))
    cfg = ProgressConfig(rank_loss=kind, rank_margin=0.2)
    x_hi, x_lo = torch.randn(1, 1, 4), torch.randn(1, 1, 4)
    stage = torch.tensor([1])
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(30):                       # first the wrong order: lo above hi
        loss = rank_loss(net, x_lo, x_hi, stage, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def gap() -> float:
        with torch.no_grad():
            return float(net.tau(net.encode(x_hi), stage) - net.tau(net.encode(x_lo), stage))

    with torch.no_grad():
        before, loss0 = gap(), float(rank_loss(net, x_hi, x_lo, stage, cfg))
    assert before < 0
    for _ in range(100):
        loss = rank_loss(net, x_hi, x_lo, stage, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert gap() > 0 and float(rank_loss(net, x_hi, x_lo, stage, cfg)) < loss0


# -- a toy task: x moves 0 -> 1 (stage 1 from 0.5); the agent stalls off the demos (y = 1) ----

def _episode(xs: np.ndarray, y: float, success: bool, i: int) -> Episode:
    obs = np.stack([xs, np.full_like(xs, y)], 1).astype(np.float32)
    t = len(xs) - 1
    return Episode(obs, np.zeros((t, 1)), np.zeros(t), np.arange(t) == t - 1 if success
                   else np.zeros(t, bool), np.zeros(t, bool), (xs >= 0.5).astype(int),
                   ("a", "b"), infos={"is_success": np.r_[np.zeros(t), float(success)]}, id=i)


def _demos(n: int = 6) -> list[Episode]:
    rng = np.random.default_rng(0)
    return [_episode(np.linspace(0, 1, 21) + rng.normal(0, 0.01, 21), 0.0, True, i)
            for i in range(n)]


@pytest.fixture(scope="module")
def toy_model() -> ProgressModel:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)            # tiny model: a second thread only contends
    try:
        model, report = train_progress_model(
            _demos(), SPACE, SPACE,
            ProgressConfig(epochs=80, window=1, heldout=0.0, labels="failure",
                           hidden_sizes=[32, 32]))
    finally:
        torch.set_num_threads(threads)
    assert report["train"]["voc"] > 0.9
    return model


def _stall_xs() -> np.ndarray:
    return np.r_[np.linspace(0, 0.7, 8), np.full(12, 0.7)]     # reaches stage 1, then stalls


def _batches(xs: np.ndarray, y: float, success: bool,
             n_envs: int = 2) -> Iterator[TransitionBatch]:
    """Step batches of ``n_envs`` identical episodes along ``xs`` (infos: stage, success)."""
    for t in range(len(xs) - 1):
        last = t == len(xs) - 2
        obs = np.tile([xs[t], y], (n_envs, 1)).astype(np.float32)
        nxt = np.tile([xs[t + 1], y], (n_envs, 1)).astype(np.float32)
        info = {"stage": int(xs[t + 1] >= 0.5), "is_success": bool(success and last)}
        yield TransitionBatch(obs, np.zeros((n_envs, 1)), nxt,
                              terminated=np.full(n_envs, success and last),
                              truncated=np.full(n_envs, last and not success),
                              env_rewards=np.zeros(n_envs), infos=[dict(info)] * n_envs)


def _demo_mse(model: ProgressModel) -> float:
    errs = []
    for ep in _demos():
        prog = failure_aware_labels(ep.stages, True, model.alpha)[2]
        pred = model.predict(ep.observations[frame_windows(len(ep.observations), 1, 1)])
        errs.append((pred.progress - prog) ** 2)
    return float(np.mean(np.concatenate(errs)))


def test_failure_labels_train_the_ranking_offline_too() -> None:
    """Demos plus failed rollouts that stall off the demos: with ``labels=failure`` the
    stalled states rate near their stage's start; with the clock (``frames``) they rise."""
    failures = [_episode(_stall_xs(), 1.0, False, 10 + i) for i in range(4)]
    stall = np.array([[[0.7, 1.0]]], np.float32)
    rated = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for labels in ("frames", "failure"):
            model, report = train_progress_model(
                [*_demos(), *failures], SPACE, SPACE,
                ProgressConfig(epochs=60, window=1, heldout=0.0, labels=labels,
                               hidden_sizes=[32, 32]))
            rated[labels] = float(model.predict(stall).progress[0])
            assert ("rank" in report["final_losses"]) == (labels == "failure")
    finally:
        torch.set_num_threads(threads)
    assert rated["failure"] < 0.56 < rated["frames"]


def test_online_refinement_learns_the_agents_stalls_and_keeps_the_demos(
        toy_model: ProgressModel) -> None:
    scorer = ProgressScorer(toy_model)
    refiner = OnlineRefiner(scorer, OnlineConfig(enabled=True, demos="toy", min_episodes=2,
                                                 train_steps=300, lr=3e-3, batch_size=64),
                            demos=_demos())
    stall = np.array([[0.7, 1.0]], np.float32)
    before = float(toy_model.predict(stall[:, None]).progress[0])
    demo_before = _demo_mse(toy_model)
    assert not refiner.ready() and refiner.update() == {}
    for _ in range(2):
        for batch in _batches(_stall_xs(), 1.0, success=False):
            scorer.score(batch)
            refiner.observe(batch)
    assert refiner.finished == 4 and refiner.ready()
    metrics = refiner.update()
    assert metrics["version"] == 1 and metrics["agent_episodes"] == 4
    new = scorer.model
    assert new is not toy_model and scorer.version == 1
    after = float(new.predict(stall[:, None]).progress[0])
    # the stall sits in stage 1, whose start is 0.5 (alpha = [0.5, 0.5]): no rising target
    assert before > 0.55 and after < before - 0.05 and after < 0.6
    assert _demo_mse(new) < max(2 * demo_before, 0.005)      # the demos are not forgotten
    assert float(toy_model.predict(stall[:, None]).progress[0]) == before   # old version intact


def test_shaping_uses_one_model_version_per_transition_across_an_update(
        toy_model: ProgressModel) -> None:
    potential = ProgressPotential(model=toy_model)
    shaped = ShapedReward(SPACE, SPACE, base=EnvReward(SPACE, SPACE), potential=potential,
                          gamma=0.9)
    scorer = potential.scorer
    assert scorer is not None
    newer = copy.copy(toy_model)
    newer.net = copy.deepcopy(toy_model.net)
    with torch.no_grad():
        for p in newer.net.parameters():
            p.add_(0.3)                                      # a visibly different potential
    xs = np.linspace(0, 1, 11)

    def episode_terms(publish_at: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        terms, versions, phi_next = [], [], []
        for t, batch in enumerate(_batches(xs, 0.0, success=False)):
            if t == publish_at:
                scorer.publish(newer)                        # an update mid-episode
            out = shaped.compute(batch)
            terms.append(out.signals["shaping"][0])
            versions.append(out.signals["model_version"][0])
            phi_next.append(out.signals["potential"][0])
        return np.array(terms), np.array(versions), np.array(phi_next)

    def reference(model: ProgressModel) -> tuple[np.ndarray, np.ndarray]:
        """Phi of every state of the episode under one model: (Phi(s_t), Phi(s_{t+1}))."""
        sc = ProgressScorer(model)
        pairs = [sc.score(b) for b in _batches(xs, 0.0, success=False)]
        phi_s = np.array([p[0].progress[0] for p in pairs]) - 1.0
        phi_n = np.array([p[1].progress[0] for p in pairs]) - 1.0
        return phi_s, phi_n

    terms, versions, phi_next = episode_terms(publish_at=4)
    assert versions.tolist() == [0.0] * 10                  # the running episode keeps version 0
    old_s, old_n = reference(toy_model)
    np.testing.assert_allclose(terms, 0.9 * old_n - old_s, atol=1e-9)
    np.testing.assert_allclose(phi_next, old_n, atol=1e-9)
    # the shaping telescopes exactly over the episode: sum gamma^t F_t = gamma^T Phi(s_T) - Phi(s_0)
    disc = 0.9 ** np.arange(10)
    assert float(disc @ terms) == pytest.approx(0.9 ** 10 * old_n[-1] - old_s[0], abs=1e-9)
    # the next episode starts on the new version, for s and s' alike
    terms, versions, _ = episode_terms(publish_at=None)
    assert versions.tolist() == [1.0] * 10
    new_s, new_n = reference(newer)
    np.testing.assert_allclose(terms, 0.9 * new_n - new_s, atol=1e-9)
    assert not np.allclose(new_n, old_n)
    assert set(scorer.models) == {1}                         # the old version was released


def test_online_settings_are_checked_early(toy_model: ProgressModel) -> None:
    with pytest.raises(ValueError, match="demos must name the demo datasets"):
        ProgressPotential(model=toy_model, online={"enabled": True})
    with pytest.raises(ValueError, match=r"demo_fraction must be in \(0, 1\)"):
        OnlineConfig(enabled=True, demos="d", demo_fraction=1.0)
    with pytest.raises(ValueError, match="unknown progress online setting"):
        ProgressPotential(model=toy_model, online={"every": 3})
    with pytest.raises(ValueError, match="rank_loss must be one of"):
        ProgressConfig(rank_loss="hinge")
    # off by default: no refiner, no callback; a saved module never resumes refinement
    pot = ProgressPotential(model=toy_model)
    assert pot.refiner is None and pot.callbacks() == []
    assert pot.config()["online"]["enabled"] is False


# -- the env's stage signal in the potential (shaping.potential.stage_key) ---------------

def test_predict_conditions_tau_on_a_given_stage(toy_model: ProgressModel) -> None:
    windows = np.array([[[0.2, 0.0]], [[0.8, 0.0]], [[0.3, 0.0]]], np.float32)
    free = toy_model.predict(windows)
    assert free.stage.tolist() == [0, 1, 0]
    given = toy_model.predict(windows, stage=np.array([1, -1, 0]))
    assert given.stage.tolist() == [1, 1, 0]                 # -1: the stage head decides
    with torch.no_grad():
        h = toy_model.net.encode(toy_model.to_tensor(windows))
        tau = toy_model.net.tau(h, torch.tensor([1, 1, 0])).numpy()
    np.testing.assert_allclose(given.tau, tau, atol=1e-6)
    np.testing.assert_allclose(given.progress, toy_model.cum[[1, 1, 0]]
                               + toy_model.alpha[[1, 1, 0]] * tau, atol=1e-6)
    np.testing.assert_allclose(given.progress[1:], free.progress[1:], atol=1e-9)
    np.testing.assert_allclose(given.stage_probs, free.stage_probs)
    with pytest.raises(ValueError, match="stage 2 given for a model of 2 stages"):
        toy_model.predict(windows, stage=np.array([2, 0, 0]))


def test_the_potential_reads_the_stage_from_the_env_when_asked(
        toy_model: ProgressModel) -> None:
    obs = np.array([[0.1, 0.0], [0.1, 0.0]], np.float32)
    nxt = np.array([[0.2, 0.0], [0.2, 0.0]], np.float32)   # stage head: 0 for both

    def batch(infos: list[dict]) -> TransitionBatch:
        return TransitionBatch(obs, np.zeros((2, 1)), nxt, np.zeros(2, bool), np.zeros(2, bool),
                               infos=infos)

    infos = [{"stage": 1}, {}]                             # the env says stage 1; no signal
    env_stage = ProgressPotential(model=toy_model, stage_key="stage")
    _, phi_next, signals = env_stage.transition(batch(infos), np.ones(2, bool))
    ref = toy_model.predict(nxt[:, None], stage=np.array([1, -1]))
    np.testing.assert_allclose(phi_next, ref.progress - 1.0, atol=1e-9)
    assert signals["stage"].tolist() == [1.0, 0.0]
    assert phi_next[0] >= toy_model.cum[1] - 1.0            # at least the stage's start level
    head = ProgressPotential(model=toy_model)                 # default: the model's stage
    _, phi_head, _ = head.transition(batch(infos), np.ones(2, bool))
    assert phi_head[0] < phi_next[0] and phi_head[1] == pytest.approx(phi_next[1])
    with pytest.raises(ValueError, match=r"info\['stage'\] = 5, outside the progress model"):
        ProgressPotential(model=toy_model, stage_key="stage").transition(
            batch([{"stage": 5}, {"stage": 0}]), np.ones(2, bool))
    assert env_stage.config()["stage_key"] == "stage"


def test_env_stage_shaping_still_telescopes(toy_model: ProgressModel) -> None:
    """Phi(s) of each step is the Phi(s') scored with the env's stage one step earlier."""
    potential = ProgressPotential(model=toy_model, stage_key="stage")
    shaped = ShapedReward(SPACE, SPACE, base=EnvReward(SPACE, SPACE), potential=potential,
                          gamma=0.9)
    xs = np.r_[np.linspace(0, 0.45, 6), np.linspace(0.4, 0.9, 5)]
    terms, phi = [], []
    for t, b in enumerate(_batches(xs, 0.0, success=False)):
        b.infos = [{"stage": int(t >= 3)}] * len(b)          # the env's stage leads the head's
        out = shaped.compute(b)
        terms.append(out.signals["shaping"][0])
        phi.append(out.signals["potential"][0])
    disc = 0.9 ** np.arange(len(terms))
    phi_0 = float(potential(np.array([[xs[0], 0.0]], np.float32))[0])
    assert float(disc @ np.array(terms)) == pytest.approx(
        0.9 ** len(terms) * phi[-1] - phi_0, abs=1e-9)
    assert min(phi[3:]) >= toy_model.cum[1] - 1.0 - 1e-9     # stage 1 from step 3 on


def test_reward_progress_reads_the_env_stage_too(toy_model: ProgressModel,
                                                  tmp_path: Path) -> None:
    from rewardlearn.progress.reward import ProgressReward

    path = toy_model.save(tmp_path / "progress_model.pt")
    nxt = np.array([[0.2, 0.0], [0.2, 0.0]], np.float32)
    batch = TransitionBatch(nxt, np.zeros((2, 1)), nxt, np.zeros(2, bool), np.zeros(2, bool),
                            infos=[{"stage": 1}, {"stage": 0}])
    level = ProgressReward(SPACE, SPACE, path=str(path), mode="level", stage_key="stage")
    want = toy_model.predict(nxt[:, None], stage=np.array([1, 0])).progress - 1.0
    np.testing.assert_allclose(level(batch), want, atol=1e-6)
    assert level.config()["stage_key"] == "stage"
    head = ProgressReward(SPACE, SPACE, path=str(path), mode="level")
    assert head(batch)[0] < want[0]                          # the head says stage 0
