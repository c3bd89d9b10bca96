"""reward=pearl: the GW plan, label transfer, the Gaussian reward, source files, end to end."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import ot
import pytest
import torch
from omegaconf import DictConfig

from rewardlearn.cli.train import run
from rewardlearn.pearl.configuration import PEARLConfig
from rewardlearn.pearl.reward import REAL, TRANSFERRED, PEARLReward
from rewardlearn.pearl.robust import (
    GaussianReward,
    robust_loss,
    sample_rewards,
    sigma_regularizer,
)
from rewardlearn.pearl.source import read_source
from rewardlearn.pearl.transport import (
    candidate_pairs,
    gw_plan,
    segment_distances,
    transfer_labels,
)
from rewardlearn.rewards import MLPReward, load_reward_model, save_reward_model


def _points(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 2))


def _dist(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x[:, None] - x[None], axis=-1)


def _ranked_source(path: Path, obs_space: Any, act_space: Any, segs: list[np.ndarray],
                   keys: np.ndarray) -> Path:
    """A ``reward=preference`` checkpoint whose labels rank every pair of ``segs`` by
    ``keys`` (the lower key preferred): a labelled source run for PEARL."""
    from rewardlearn.preference.reward import PreferenceReward

    src = PreferenceReward(obs_space, act_space, hidden_sizes=[4], device="cpu")
    pairs = [(k, ell) for k in range(len(segs)) for ell in range(k + 1, len(segs))]
    steps = len(segs[0])
    src.learner.dataset.add_pairs([segs[k] for k, _ in pairs], [segs[ell] for _, ell in pairs],
                                  [np.zeros(steps, bool)] * len(pairs),
                                  [np.zeros(steps, bool)] * len(pairs),
                                  [float(keys[k] < keys[ell]) for k, ell in pairs], 0)
    return save_reward_model(src, path)


def _feed_episode(r: PEARLReward, obs: np.ndarray, reward: float, steps: int = 5) -> None:
    """One ``steps``-long episode holding ``obs`` (one row), the env paying ``reward``."""
    from rewardlearn.rewards.base import TransitionBatch

    for t in range(steps):
        b = TransitionBatch.from_arrays(obs, np.zeros((1, 1), np.float32), obs,
                                        truncated=np.array([t == steps - 1]))
        b.env_rewards = np.array([reward], np.float32)
        r.observe(b, r(b))


def test_gw_plan_is_pots_on_the_normalised_distances() -> None:
    c1, c2 = _dist(_points(5, 0)), _dist(_points(4, 1))
    plan, gw = gw_plan(7.0 * c1, c2)  # a scaled source: normalising removes the scale
    ref, log = ot.gromov.gromov_wasserstein(c1 / c1.max(), c2 / c2.max(), np.full(5, 0.2),
                                            np.full(4, 0.25), loss_fun="square_loss", log=True)
    np.testing.assert_allclose(plan, ref, atol=1e-9)
    assert gw == pytest.approx(log["gw_dist"])
    np.testing.assert_allclose(plan.sum(1), np.full(5, 0.2), atol=1e-9)
    np.testing.assert_allclose(plan.sum(0), np.full(4, 0.25), atol=1e-9)
    entropic, _ = gw_plan(c1, c2, solver="entropic", epsilon=0.05)
    np.testing.assert_allclose(entropic.sum(0), np.full(4, 0.25), atol=1e-4)
    with pytest.raises(ValueError, match="solver must be one of"):
        gw_plan(c1, c2, solver="sinkhorn")


def test_labels_transfer_exactly_to_an_isomorphic_target_task() -> None:
    source = _points(6, 2)
    perm = np.array([3, 0, 5, 1, 4, 2])
    target = 3.0 * source[perm] + 1.0  # the same structure, moved, scaled, reordered
    seg_s = [p[None] for p in source]  # one-step segments
    seg_t = [p[None] for p in target]
    plan, _ = gw_plan(segment_distances(seg_s), segment_distances(seg_t))
    assert np.allclose(plan[perm, np.arange(6)], 1 / 6)  # target i is source perm[i]
    score = source @ np.array([1.0, -0.5])  # the source user's hidden preference
    pairs = np.array([(k, ell) for k in range(6) for ell in range(k + 1, 6)])
    labels = (score[pairs[:, 0]] > score[pairs[:, 1]]).astype(float)
    ti, tj = np.nonzero(~np.eye(6, dtype=bool))
    z, cover = transfer_labels(plan, pairs, labels, ti, tj)
    expected = (score[perm[ti]] > score[perm[tj]]).astype(float)
    np.testing.assert_allclose(z, expected, atol=1e-9)
    np.testing.assert_allclose(cover, 1.0, atol=1e-9)
    # a partial labelling: pairs that map onto labelled ones are exact, the rest uncovered
    some = pairs[:5]
    z, cover = transfer_labels(plan, some, labels[:5], ti, tj)
    inv = np.argsort(perm)  # source k is target inv[k]
    hit = np.zeros((6, 6), bool)
    hit[inv[some[:, 0]], inv[some[:, 1]]] = hit[inv[some[:, 1]], inv[some[:, 0]]] = True
    covered = hit[ti, tj]
    np.testing.assert_allclose(z[covered], expected[covered], atol=1e-9)
    np.testing.assert_allclose(cover[covered], 1.0, atol=1e-9)
    assert (cover[~covered] < 1e-9).all() and (z[~covered] == 0.5).all()
    # candidates are drawn where the labelled pairs send their mass: all covered here
    ci, cj = candidate_pairs(plan, some, 40, np.random.default_rng(0))
    assert len(ci) == 40 and hit[ci, cj].all()


def test_with_every_source_pair_labelled_the_labels_are_normalised_by_v_i_v_j() -> None:
    rng = np.random.default_rng(3)
    plan = rng.uniform(0.1, 1.0, (4, 3))  # a diffuse plan
    plan /= plan.sum()
    r = rng.normal(size=4)
    full = 1.0 / (1.0 + np.exp(-(r[:, None] - r[None, :])))  # z_S(k, l) + z_S(l, k) = 1
    pairs = np.array([(k, ell) for k in range(4) for ell in range(k, 4)])
    labels = full[pairs[:, 0], pairs[:, 1]]
    ti, tj = np.nonzero(~np.eye(3, dtype=bool))
    z, cover = transfer_labels(plan, pairs, labels, ti, tj)
    v = plan.sum(0)
    by_formula = (plan.T @ full @ plan)[ti, tj] / (v[ti] * v[tj])
    np.testing.assert_allclose(z, by_formula, rtol=1e-12)
    np.testing.assert_allclose(cover, 1.0, rtol=1e-12)


def test_sigma_regulariser_pulls_sigma_to_its_preset_value() -> None:
    log_sigma = torch.log(torch.tensor([0.05, 0.1, 0.4])).requires_grad_(True)
    reg = sigma_regularizer(log_sigma, 0.1)
    assert float(reg[1].detach()) == pytest.approx(0.0, abs=1e-7)
    assert float(reg[0].detach()) > 0 and float(reg[2].detach()) > 0
    reg.sum().backward()
    assert log_sigma.grad is not None
    g = log_sigma.grad.tolist()
    assert g[0] < 0 < g[2] and g[1] == pytest.approx(0.0, abs=1e-6)  # descent moves to 0.1
    # KL(N(m, s^2) || N(m, s0^2)) by torch for s = 0.4
    kl = torch.distributions.kl_divergence(torch.distributions.Normal(0.0, 0.4),
                                           torch.distributions.Normal(0.0, 0.1))
    assert float(reg[2].detach()) == pytest.approx(float(kl), rel=1e-6)


def test_reparameterised_samples_pass_gradients_to_mean_and_sigma() -> None:
    mu = torch.tensor([0.5, -1.0], requires_grad=True)
    log_sigma = torch.tensor([math.log(0.2), math.log(2.0)], requires_grad=True)
    gen = torch.Generator().manual_seed(0)
    r = sample_rewards(mu, log_sigma, gen)
    eps = (r - mu) / torch.exp(log_sigma)
    r.sum().backward()
    assert mu.grad is not None and log_sigma.grad is not None
    assert mu.grad.tolist() == [1.0, 1.0]  # dr/dmu = 1
    np.testing.assert_allclose(log_sigma.grad.numpy(), (torch.exp(log_sigma) * eps).detach())


def test_a_robust_step_follows_the_soft_label() -> None:
    model = GaussianReward(1, (16,), seed=0)
    up, down = torch.ones(1, 3, 1), -torch.ones(1, 3, 1)
    mask = torch.ones(1, 3)
    for label in (0.9, 0.1):
        trial = GaussianReward(1, (16,), seed=0)
        trial.load_state_dict(model.state_dict())
        with torch.no_grad():
            before = float(trial(up)[0].sum() - trial(down)[0].sum())
        batch = {"x1": up, "x2": down, "m1": mask, "m2": mask,
                 "labels": torch.tensor([label]), "weights": torch.ones(1)}
        opt = torch.optim.SGD(trial.parameters(), lr=0.05)
        for step in range(20):
            loss, _ = robust_loss(trial, batch, 0.1, 0.1, torch.Generator().manual_seed(step))
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            after = float(trial(up)[0].sum() - trial(down)[0].sum())
        assert (after > before) if label > 0.5 else (after < before)


def test_a_source_must_be_a_labelled_preference_run(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="source must name a labelled run"):
        PEARLConfig()
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_source(str(tmp_path / "nope.pt"))
    import gymnasium as gym

    space = gym.spaces.Box(-1, 1, (3,), np.float32)
    other = save_reward_model(MLPReward(space, gym.spaces.Box(-1, 1, (1,), np.float32),
                                        hidden_sizes=(4,)), tmp_path / "mlp.pt")
    with pytest.raises(ValueError, match="MLPReward checkpoint without preference labels"):
        read_source(str(other))


SHORT = ["env=pendulum", "agent=ppo", "+agent.kwargs.n_steps=256", "+agent.kwargs.batch_size=64",
         "+agent.kwargs.n_epochs=1", "total_timesteps=1024", "eval.n_episodes=1",
         "video.enabled=false", "progress_bar=false", "torch_threads=1"]


def test_train_py_transfers_a_labelled_runs_labels_end_to_end(
        compose_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    source = tmp_path / "source"
    run(compose_cfg(*SHORT, "reward=preference", "reward.model.budget=40",
                    "reward.model.queries_per_round=20", "reward.model.first_round_at=256",
                    "reward.model.interval=256", "reward.model.segment_length=10",
                    "reward.model.hidden_sizes=[16]", "reward.model.device=cpu"), source)
    pearl = ["reward=pearl", f"reward.model.source={source}", "reward.model.target_segments=30",
             "reward.model.labels_per_round=50", "reward.model.rounds=2",
             "reward.model.first_round_at=256", "reward.model.epochs=3",
             "reward.model.hidden_sizes=[32,32]", "reward.model.device=cpu"]
    summary = run(compose_cfg(*SHORT, *pearl), tmp_path / "zero")
    training = summary["reward_training"]
    assert training["feedback_rounds"] == 2 and training["real_labels"] == 0
    assert 0 < training["labels_used"] <= 100
    assert 0.0 <= training["transfer_acc_mean"] <= 1.0
    loaded = load_reward_model(tmp_path / "zero")
    assert isinstance(loaded, PEARLReward) and loaded.dataset is not None
    assert set(loaded.dataset.users) == {TRANSFERRED}
    few = run(compose_cfg(*SHORT, *pearl, "reward.model.target_budget=6"), tmp_path / "few")
    assert few["reward_training"]["real_labels"] == 6
    kept = load_reward_model(tmp_path / "few")
    assert isinstance(kept, PEARLReward) and kept.dataset is not None
    assert set(kept.dataset.users) == {TRANSFERRED, REAL}


def test_a_missing_source_is_refused_in_one_line(compose_cfg: Callable[..., DictConfig],
                                                 tmp_path: Path) -> None:
    for extra, message in (([], "source must name a labelled run"),
                           ([f"reward.model.source={tmp_path / 'none'}"], "no such file")):
        with pytest.raises(SystemExit) as err:
            run(compose_cfg(*SHORT, "reward=pearl", *extra), tmp_path / "run",
                exit_on_input_error=True)
        text = str(err.value)
        assert text.startswith("error:") and message in text and "\n" not in text
        assert not (tmp_path / "run").exists()


def test_a_few_real_labels_undo_a_mirrored_transfer(tmp_path: Path) -> None:
    """The source prefers low x, the target task high x, on the same geometry: the plan maps
    each segment to its counterpart, so the transferred labels run backwards; a few real
    labels on the transferred pairs disagree with them, and the round flips them."""
    import gymnasium as gym

    from rewardlearn.preference.teachers import SyntheticTeacher

    box = gym.spaces.Box(-2, 2, (1,), np.float32)
    xs = np.linspace(0.0, 1.0, 12) ** 2  # no mirror symmetry: distances tell the ends apart
    seg = [np.stack([np.full(5, x), np.zeros(5)], 1).astype(np.float32) for x in xs]
    source = _ranked_source(tmp_path / "source.pt", box, box, seg, xs)  # low x preferred
    out = {}
    for budget in (0, 4):
        r = PEARLReward(box, box, teacher=SyntheticTeacher(seed=0), source=str(source),
                        target_segments=12, labels_per_round=40, segment_length=5, epochs=1,
                        target_budget=budget, rounds=1, hidden_sizes=[8], device="cpu")
        for x in xs:  # one 5-step episode per x, reward x: the target user wants x high
            _feed_episode(r, np.array([[x]], np.float32), float(x))
        r.rng = np.random.default_rng(0)  # the same segments and plan for both budgets
        out[budget] = r.run_round(40)
    assert out[0]["transfer_acc"] < 0.2 and "flipped" not in out[0]
    assert out[4]["flipped"] == 1.0 and out[4]["real_agreement"] < 0.5
    assert out[4]["transfer_acc"] > 0.8
    assert out[4]["labels_used"] == out[0]["labels_used"] + 4


def test_fused_gw_is_pots_and_needs_the_same_features_on_both_sides() -> None:
    from rewardlearn.pearl.transport import cross_segment_distances

    seg_s = [p[None] for p in _points(5, 4)]
    seg_t = [p[None] for p in _points(4, 5)]
    c1, c2 = segment_distances(seg_s), segment_distances(seg_t)
    m = cross_segment_distances(seg_s, seg_t, 1)
    plan, fgw = gw_plan(c1, c2, cross=m, structure_weight=0.5)
    ref, log = ot.gromov.fused_gromov_wasserstein(
        m / m.max(), c1 / c1.max(), c2 / c2.max(), np.full(5, 0.2), np.full(4, 0.25),
        loss_fun="square_loss", alpha=0.5, log=True)
    np.testing.assert_allclose(plan, ref, atol=1e-9)
    assert fgw == pytest.approx(log["fgw_dist"])
    pure, _ = gw_plan(c1, c2, cross=m, structure_weight=1.0)  # weight 1: plain GW
    np.testing.assert_allclose(pure, gw_plan(c1, c2)[0], atol=1e-12)
    with pytest.raises(ValueError, match="source has 2 per step and the target 3"):
        cross_segment_distances(seg_s, [np.zeros((1, 3))], 1)
    with pytest.raises(ValueError, match="structure_weight must be in"):
        PEARLConfig(source="x", structure_weight=0.0)


def test_distance_features_carry_labels_to_a_turned_task_in_new_layouts(
        tmp_path: Path) -> None:
    """Source: the hand approaches a fixed object along +x, nearer preferred. Target: the
    hand approaches along -y, and every episode puts the object somewhere new. On the raw
    state the target's segments differ mostly by where the object is, so the plan pairs
    them by layout, not by distance; on ``align_encoder=distances`` (the hand-to-object
    distance, the same under the turn) with fused GW, nearer maps to nearer."""
    import gymnasium as gym

    box = gym.spaces.Box(-10, 10, (4,), np.float32)  # hand xy, object xy
    act = gym.spaces.Box(-1, 1, (1,), np.float32)
    ds = np.linspace(0.0, 2.0, 12)
    seg = [np.tile([d, 0.0, 0.0, 0.0, 0.0], (5, 1)).astype(np.float32) for d in ds]
    source = _ranked_source(tmp_path / "source.pt", box, act, seg, ds)  # nearer preferred
    rng = np.random.default_rng(1)
    layouts = rng.uniform(-3, 3, (12, 2))
    acc = {}
    variants: list[tuple[str, dict[str, Any]]] = [
        ("raw", {}),
        ("distances", {"align_encoder": {"target": "distances",
                                         "kwargs": {"pairs": [[[0, 2], [2, 4]]]}},
                       "structure_weight": 0.5})]
    for name, extra in variants:
        r = PEARLReward(box, act, source=str(source), target_segments=12,
                        labels_per_round=40, segment_length=5, epochs=1, rounds=1,
                        hidden_sizes=[8], device="cpu", **extra)
        for d, obj in zip(rng.permutation(ds), layouts, strict=True):
            obs = np.array([[obj[0], obj[1] - d, obj[0], obj[1]]], np.float32)
            _feed_episode(r, obs, -float(d))  # the target user wants near
        r.rng = np.random.default_rng(0)
        acc[name] = r.run_round(40)["transfer_acc"]
    assert acc["distances"] > 0.9 and acc["raw"] < 0.75, acc
    with pytest.raises(ValueError, match="reads frames"):
        PEARLReward(box, act, source=str(source), align_encoder="downsample")
