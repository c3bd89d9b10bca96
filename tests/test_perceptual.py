"""Perceptual rewards (Sermanet et al. 2016): step discovery, feature selection, the reward
on held-out demos, encoders and their cache, the reward module and potential, Meta-World demos."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import DictConfig

from rewardlearn.cli.collect import CollectConfig, collect
from rewardlearn.demos import Episode, load_demos
from rewardlearn.encoders import (
    DownsampleEncoder,
    EmbeddingCache,
    StateEncoder,
    TimeContrastiveEncoder,
    TorchvisionEncoder,
    build_encoder,
)
from rewardlearn.env_factory import make_env, make_vec_env
from rewardlearn.perceptual import (
    PerceptualConfig,
    PerceptualModel,
    PerceptualPotential,
    boundaries_from_stages,
    boundary_error,
    choose_k,
    discover_steps,
    evaluate_perceptual,
    fit_perceptual,
    segment_sequence,
    select_features,
)
from rewardlearn.perceptual.reward import PerceptualReward
from rewardlearn.rewards import load_reward_model, save_reward_model
from rewardlearn.rewards.base import TransitionBatch
from rewardlearn.rewards.checkpoint import SpaceMismatchError
from rewardlearn.shaping import build_shaping
from rewardlearn.wrappers import RewardVecEnvWrapper


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def planted(n: int, k: int, dim: int, seed: int, noise: float = 1.0
            ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Sequences of ``k`` steps with distinct means and variable lengths, and their cuts."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 4.0, size=(k, dim))
    seqs, cuts = [], []
    for _ in range(n):
        lengths = rng.integers(6, 25, size=k)
        seqs.append(np.concatenate([means[i] + rng.normal(0, noise, (ln, dim))
                                    for i, ln in enumerate(lengths)]))
        cuts.append(np.concatenate([[0], np.cumsum(lengths)]))
    return seqs, cuts


# ---------------------------------------------------------------- step discovery


def test_segment_sequence_is_exact_on_piecewise_constant() -> None:
    x = np.repeat(np.array([[0.0, 1.0], [5.0, 1.0], [5.0, -4.0], [9.0, 0.0]]), [3, 7, 2, 5],
                  axis=0)
    assert segment_sequence(x, 4).tolist() == [0, 3, 10, 12, 17]
    assert segment_sequence(x, 4, min_len=3).tolist()[1] == 3    # min length respected
    with pytest.raises(ValueError, match="cannot split"):
        segment_sequence(x[:5], 4, min_len=2)


def test_step_discovery_recovers_planted_boundaries() -> None:
    seqs, truth = planted(n=6, k=4, dim=10, seed=0)
    split = discover_steps(seqs, 4, min_len=2)
    errors = [boundary_error(c, t) for c, t in zip(split.splits, truth, strict=True)]
    assert max(errors) <= 0.5, errors
    assert split.means.shape == (4, 10)


def test_joint_refinement_shares_steps_across_demos() -> None:
    # a noisy demo split on its own may mis-place a cut; aligned to the shared means it does not
    seqs, truth = planted(n=8, k=3, dim=3, seed=3, noise=2.0)
    joint = discover_steps(seqs, 3, min_len=2, joint_iters=10)
    alone = discover_steps(seqs, 3, min_len=2, joint_iters=0)
    err = [np.mean([boundary_error(c, t) for c, t in zip(s.splits, truth, strict=True)])
           for s in (joint, alone)]
    assert joint.cost <= alone.cost + 1e-9
    assert err[0] <= err[1] + 1e-9 and err[0] < 1.5


def test_automatic_k_finds_the_planted_number_of_steps() -> None:
    for k in (2, 3, 5):
        seqs, _ = planted(n=5, k=k, dim=8, seed=k)
        chosen, curve = choose_k(seqs, 2, 8, threshold=0.03, min_len=2)
        assert chosen == k, curve
        assert curve[0] == 1.0 and bool(np.all(np.diff(curve) <= 1e-12))


def test_feature_selection_picks_planted_dimensions() -> None:
    rng = np.random.default_rng(0)
    inside = rng.normal(0, 1, (200, 20))
    outside = rng.normal(0, 1, (400, 20))
    inside[:, [3, 11, 17]] += 4.0            # separates the step from the rest
    outside[:, 5] *= 10.0                     # high variance, not discriminative
    idx, score = select_features(inside, outside, 3)
    assert idx.tolist() == [3, 11, 17]
    assert score[[3, 11, 17]].min() > score[np.setdiff1d(np.arange(20), [3, 11, 17])].max()


def test_boundaries_from_stage_labels() -> None:
    stages = np.array([0, 0, 1, 1, 1, 0, 2, 3, 3])          # a dip back still counts as reached
    assert boundaries_from_stages(stages, 4).tolist() == [0, 2, 6, 7, 9]
    assert boundaries_from_stages(np.array([0, 0, 2]), 3).tolist() == [0, 2, 2, 3]


# ---------------------------------------------------------------- the reward on demos


def synthetic_episodes(n: int, seed: int, dim: int = 6) -> list[Episode]:
    """Episodes whose state walks through 3 stages (variable lengths), with stage labels."""
    rng = np.random.default_rng(seed)
    eps = []
    centres = np.array([[0.0] * dim, [2.0] * dim, [4.0] * dim])
    for i in range(n):
        lengths = rng.integers(8, 20, size=3)
        obs = np.concatenate([centres[s] + 0.4 * rng.normal(size=(ln, dim))
                              for s, ln in enumerate(lengths)]).astype(np.float32)
        stages = np.repeat(np.arange(3), lengths)
        t = len(obs) - 1
        eps.append(Episode(obs, np.zeros((t, 2), np.float32), np.zeros(t), np.zeros(t, bool),
                           np.zeros(t, bool), stages, ("a", "b", "c"), None, {}, i))
    return eps


def test_reward_is_higher_at_later_steps_on_heldout_demos() -> None:
    train, held = synthetic_episodes(8, 0), synthetic_episodes(4, 1)
    model = fit_perceptual(train, encoder="state", n_steps=3)
    assert model.metrics["train_boundary_mae"] <= 1.0
    ev = evaluate_perceptual(model, held)
    by_stage = ev["reward_by_stage"]
    assert by_stage[0] < by_stage[1] < by_stage[2], by_stage
    assert ev["reward_by_step"] == sorted(ev["reward_by_step"])
    assert ev["spearman"] > 0.8 and ev["boundary_mae"] <= 1.0
    # the paper's aggregate and exponential weights also order the steps
    paper = fit_perceptual(train, encoder="state", n_steps=3, aggregate="sum",
                           step_weights="exponential")
    s = evaluate_perceptual(paper, held)["reward_by_stage"]
    assert s[0] < s[1] < s[2]
    # gated: same order on the demos, ~0 far from every step (normalized keeps a late step's
    # value there)
    gated = fit_perceptual(train, encoder="state", n_steps=3, aggregate="gated")
    g = evaluate_perceptual(gated, held)["reward_by_stage"]
    assert g[0] < g[1] < g[2]
    far_emb = (model.mean + 50.0 * model.std)[None]  # 50 demo standard deviations off
    assert float(gated.predict_embedded(far_emb).reward[0]) < 1e-5
    assert float(model.predict_embedded(far_emb).reward[0]) > 0.3


def test_deviation_cap_keeps_a_wild_feature_from_deciding_the_step() -> None:
    # the last feature is nearly constant in the demos (a cube that never tilts), with
    # step means 1e-4 apart: discriminative by the selection score, and thousands of
    # sigmas off as soon as a query moves it
    def with_flat_feature(eps: list[Episode], value: float | None = None) -> list[Episode]:
        out = []
        for ep in eps:
            n = len(ep.observations)
            flat = 1e-4 * ep.stages[:, None] if value is None else np.full((n, 1), value)
            out.append(dataclasses.replace(ep, observations=np.concatenate(
                [ep.observations, flat.astype(np.float32)], 1)))
        return out

    train = with_flat_feature(synthetic_episodes(8, 0))
    held = synthetic_episodes(4, 1)
    clean, tilted = with_flat_feature(held), with_flat_feature(held, value=1.0)
    capped = fit_perceptual(train, encoder="state", n_steps=3, n_features=7)
    assert capped.config.max_deviation == 5.0
    uncapped = fit_perceptual(train, encoder="state", n_steps=3, n_features=7,
                              max_deviation=None)
    clean_steps = np.concatenate([capped.predict(ep.observations).step for ep in clean])
    assert (np.concatenate([ep.stages for ep in clean]) == clean_steps).mean() > 0.9
    steps_capped = np.concatenate([capped.predict(ep.observations).step for ep in tilted])
    steps_uncapped = np.concatenate([uncapped.predict(ep.observations).step for ep in tilted])
    assert (steps_capped == clean_steps).mean() > 0.9
    assert len(set(steps_uncapped.tolist())) == 1      # the wild feature alone picks the step


@pytest.fixture(scope="module")
def pick_place_demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pp") / "demos"
    collect(CollectConfig(env="pick_place", n_episodes=14, frames=True, frame_size=32,
                          out=str(out)), verbose=False)
    return out


def test_pick_place_state_reward_tracks_progress(pick_place_demos: Path) -> None:
    eps = load_demos(pick_place_demos)
    assert len({len(e) for e in eps}) > 1                  # lengths vary
    model = fit_perceptual(eps[:10], encoder="state", n_steps=4)
    ev = evaluate_perceptual(model, eps[10:])
    assert ev["spearman"] > 0.8, ev
    assert ev["boundary_mae"] < 5.0, ev
    stages = ev["reward_by_stage"]
    assert stages[0] < stages[-1]
    auto = fit_perceptual(eps[:10], encoder="state")
    assert 2 <= auto.steps.k <= 8 and len(auto.metrics["auto_k_curve"]) >= 2


def test_tcn_encoder_trains_and_model_roundtrips(pick_place_demos: Path, tmp_path: Path) -> None:
    eps = load_demos(pick_place_demos)
    enc = TimeContrastiveEncoder(dim=8, frame_size=(32, 32), width=8, steps=15, batch_size=16)
    with pytest.raises(RuntimeError, match="untrained"):
        enc(eps[0].frames)
    model = fit_perceptual(eps[:6], encoder=enc, n_steps=3, heldout=0.0)
    assert model.metrics["tcn_steps"] == 15 and model.needs_frames
    assert model.frame_size == (32, 32)
    pred = model.predict(eps[7].observations, eps[7].frames)
    assert pred.scores.shape == (len(eps[7].frames), 3)
    assert np.all((pred.reward >= 0) & (pred.reward <= 1))
    path = model.save(tmp_path / "m.pt")
    again = PerceptualModel.load(path)
    np.testing.assert_allclose(again.predict(None, eps[7].frames).reward, pred.reward,
                               rtol=1e-5, atol=1e-6)


def test_frame_encoder_refuses_demos_without_frames(tmp_path: Path) -> None:
    eps = synthetic_episodes(3, 0)
    with pytest.raises(ValueError, match="frames=true"):
        fit_perceptual(eps, encoder="tcn")
    with pytest.raises(ValueError, match="frames=true"):
        fit_perceptual(eps, encoder={"target": "downsample"})


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match="unknown perceptual setting"):
        PerceptualConfig.from_kwargs({"n_step": 3})
    with pytest.raises(ValueError, match="aggregate"):
        PerceptualConfig(aggregate="max")
    with pytest.raises(ValueError, match="max_deviation"):
        PerceptualConfig(max_deviation=0.0)
    with pytest.raises(ValueError, match="unknown encoder"):
        build_encoder("resnet")


# ---------------------------------------------------------------- encoders


def test_encoders_share_one_interface(tmp_path: Path) -> None:
    frames = np.random.default_rng(0).integers(0, 255, (3, 40, 40, 3), dtype=np.uint8)
    from rewardlearn.progress.encoders import DownsampleEncoder as OldImport
    from rewardlearn.progress.encoders import build_encoder as progress_build

    assert OldImport is DownsampleEncoder
    assert progress_build({"target": "downsample", "kwargs": {"grid": 2}}).dim == 12  # type: ignore[union-attr]
    with pytest.raises(TypeError, match="frozen frame encoder"):
        progress_build({"target": "state"})
    state = StateEncoder(indices=[0, 2])
    assert state.embed(np.arange(8.0).reshape(2, 4)).tolist() == [[0, 2], [4, 6]]
    assert state.embed({"state": np.ones((1, 4)), "pixels": frames[:1]}).shape == (1, 2)
    with pytest.raises(FileNotFoundError, match="allow_random"):
        TorchvisionEncoder("mobilenet_v3_small")
    net = TorchvisionEncoder("mobilenet_v3_small", allow_random=True, frame_size=(32, 32))
    torch.save(net.net.state_dict(), tmp_path / "w.pth")   # head removed: load a full model's
    import torchvision

    full = torchvision.models.get_model("mobilenet_v3_small", weights=None)
    torch.save(full.state_dict(), tmp_path / "full.pth")
    tv = TorchvisionEncoder("mobilenet_v3_small", weights=str(tmp_path / "full.pth"),
                            frame_size=(32, 32))
    assert tv.embed(None, frames).shape == (3, tv.dim)
    with pytest.raises(FileNotFoundError, match="not found"):
        TorchvisionEncoder("mobilenet_v3_small", weights=str(tmp_path / "nope.pth"))


def test_clip_image_tower_encoder(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from rewardlearn._compat import import_open_clip
    from rewardlearn.vlm.loading import ClipWeightsError

    cfg = {"embed_dim": 16,
           "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8,
                          "head_width": 16},
           "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
                        "layers": 1}}
    torch.manual_seed(0)
    model = import_open_clip().CLIP(**cfg)
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(tmp_path / "open_clip_model.safetensors"))
    enc = build_encoder({"target": "clip", "kwargs": {"model": f"local-dir:{tmp_path}",
                                                       "pretrained": None}})
    assert enc is not None and enc.dim == 16 and enc.frame_size == (32, 32)
    frames = np.random.default_rng(0).integers(0, 255, (4, 48, 48, 3), dtype=np.uint8)
    emb = enc(frames)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ClipWeightsError):
        build_encoder({"target": "clip", "kwargs": {"model": "ViT-B-32",
                                                    "pretrained": str(tmp_path / "none.bin")}})


def test_embedding_cache_encodes_each_frame_once() -> None:
    calls: list[int] = []

    class Counting(DownsampleEncoder):
        def __call__(self, frames: np.ndarray) -> np.ndarray:
            calls.append(len(frames))
            return super().__call__(frames)

    cache = EmbeddingCache(Counting(grid=2), max_items=3)
    frames = np.random.default_rng(0).integers(0, 255, (4, 8, 8, 3), dtype=np.uint8)
    first = cache.embed(None, frames[:2])
    again = cache.embed(None, frames[[1, 0, 2]])
    assert calls == [2, 1]
    np.testing.assert_array_equal(again[:2], first[::-1])
    cache.embed(None, frames[3:])                          # evicts the least recent (frame 1)
    cache.embed(None, frames[1:2])
    assert calls == [2, 1, 1, 1] and cache.hits == 2


# ---------------------------------------------------------------- reward module, potential


def test_reward_module_signals_checkpoint_and_space_check(pick_place_demos: Path,
                                                          tmp_path: Path) -> None:
    env = make_env("pick_place")
    reward = PerceptualReward(env.observation_space, env.action_space,
                              demos=str(pick_place_demos), encoder={"target": "state"},
                              settings={"n_steps": 4, "heldout": 0.2})
    assert not reward.needs_frames
    assert reward.summary()["heldout_spearman"] > 0.7
    eps = load_demos(pick_place_demos)
    ep = eps[-1]
    batch = TransitionBatch.from_arrays(ep.observations[:-1], ep.actions, ep.observations[1:])
    out = reward.compute(batch)
    assert set(out.signals) >= {"perceptual_step", "perceptual_reward", "goal_similarity",
                                "step_score_0", "step_score_3"}
    assert out.rewards[-5:].mean() > out.rewards[:5].mean()
    # offset 1 (default): every step before completion costs; the signal keeps the raw score
    np.testing.assert_allclose(out.rewards, out.signals["perceptual_reward"] - 1.0)
    assert np.all(out.rewards <= 1e-9)
    path = save_reward_model(reward, tmp_path / "r.pt")
    loaded = load_reward_model(path, env.observation_space, env.action_space)
    np.testing.assert_allclose(loaded(batch), reward(batch))
    pend = make_env("pendulum")
    with pytest.raises(SpaceMismatchError, match="observation space differs"):
        load_reward_model(path, pend.observation_space, pend.action_space)
    goal = PerceptualReward(env.observation_space, env.action_space,
                            demos=str(pick_place_demos), encoder="state", mode="goal",
                            settings={"n_steps": 4})
    g = goal.compute(batch).rewards
    assert g[-1] > g[0]
    with pytest.raises(ValueError, match="mode"):
        PerceptualReward(env.observation_space, env.action_space, mode="nope")


def test_frame_reward_and_potentials_in_a_vec_env(pick_place_demos: Path,
                                                  tmp_path: Path) -> None:
    venv = make_vec_env("pick_place", n_envs=2, seed=0, frame_size=(32, 32))
    space, act = venv.observation_space, venv.action_space
    potential = PerceptualPotential(demos=str(pick_place_demos), kind="goal",
                                    encoder={"target": "downsample", "kwargs": {"grid": 4}},
                                    settings={"n_steps": 3})
    base = PerceptualReward(space, act, demos=str(pick_place_demos),
                            encoder={"target": "downsample", "kwargs": {"grid": 4}},
                            settings={"n_steps": 4}, mode="potential")
    assert base.needs_frames and base.frame_size == (32, 32)
    from rewardlearn.shaping import ShapedReward

    potential.bind(space, act)
    model = ShapedReward(space, act, base=base, potential=potential, gamma=0.99)
    base.gamma = 0.99
    wrapped = RewardVecEnvWrapper(venv, model)
    wrapped.reset()
    for _ in range(5):
        _, rewards, _, infos = wrapped.step(np.stack([act.sample() for _ in range(2)]))
        assert np.isfinite(rewards).all()
    signals = infos[0]["reward_signals"]
    assert {"perceptual_step", "shaping"} <= set(signals)
    path = save_reward_model(model, tmp_path / "shaped.pt")
    loaded = load_reward_model(path, space, act)
    assert loaded.needs_frames and "perceptual" in loaded.name
    empty = PerceptualPotential()
    empty.bind(space, act)
    with pytest.raises(RuntimeError, match="demos"):
        empty(np.zeros((1, 34)))
    no_frames = tmp_path / "state_only"
    collect(CollectConfig(env="pick_place", n_episodes=2, out=str(no_frames)), verbose=False)
    with pytest.raises(ValueError, match="reads frames"):
        PerceptualReward(space, act, demos=str(no_frames), encoder="downsample")


def test_reward_config_composes_and_builds(compose_cfg: Callable[..., DictConfig],
                                           pick_place_demos: Path) -> None:
    from rewardlearn.cli.train import build_reward_model

    cfg = compose_cfg("env=pick_place", "reward=perceptual",
                      f"reward.model.demos={pick_place_demos}",
                      "reward.model.encoder.target=state", "reward.model.settings.n_steps=4")
    env = make_env("pick_place")
    model = build_reward_model(cfg, env.observation_space, env.action_space)
    assert isinstance(model, PerceptualReward) and model.model is not None
    assert model.model.steps.k == 4
    shaping = compose_cfg("env=pick_place", "shaping=perceptual",
                          f"shaping.potential.demos={pick_place_demos}",
                          "shaping.potential.encoder.target=state")
    from rewardlearn.rewards.env import EnvReward

    shaped = build_shaping(shaping.shaping, EnvReward(env.observation_space, env.action_space),
                           env.observation_space, env.action_space, agent_gamma=0.99)
    assert "perceptual" in shaped.name


# ---------------------------------------------------------------- Meta-World demos


def test_metaworld_expert_demos_have_stage_labels(tmp_path: Path) -> None:
    pytest.importorskip("metaworld")
    from rewardlearn_envs.metaworld_expert import level_of, metaworld_tasks

    from rewardlearn.cli.collect import resolve_env

    assert resolve_env("metaworld_pick_place")[0] == "metaworld_pick_place"
    signals = ("near_object", "grasp_success")
    assert level_of({"near_object": 1.0, "grasp_success": 0.0}, signals) == 1
    assert level_of({"near_object": 1.0, "grasp_success": 1.0}, signals) == 2
    assert level_of({"near_object": 0.0, "grasp_success": 1.0}, signals) == 0  # needs near
    assert level_of({"near_object": 1.0, "grasp_success": 1.0}, ("near_object",)) == 1
    assert "reach-v3" in metaworld_tasks() and len(metaworld_tasks()) == 50
    out = tmp_path / "mw"
    res = collect(CollectConfig(env="metaworld_pick_place", n_episodes=2, frames=True,
                                frame_size=24, out=str(out)), verbose=False)
    assert res.kept == 2
    eps = load_demos(out)
    ep = eps[0]
    assert ep.subtask_names == ("reach", "near_object", "grasped") and ep.success
    assert ep.frames is not None and ep.frames.shape[1:] == (24, 24, 3)
    assert ep.observations.shape[1] == 39
    for e in eps:  # stages start at reach and never go back
        assert (np.diff(e.stages) >= 0).all() and e.stages[0] == 0
    # the expert grasps on its way (on seed 0's layout success registers before the grasp)
    assert max(int(e.stages[-1]) for e in eps) == 2
    env = make_env("metaworld_pick_place")
    model = fit_perceptual(eps, encoder="state", n_steps=2)
    model.check_spaces(env.observation_space, env.action_space)
    with pytest.raises(SpaceMismatchError):
        model.check_spaces(make_env("pick_place").observation_space,
                           gym.spaces.Box(-1, 1, (4,)))


def test_goal_image_and_potential_mode(pick_place_demos: Path, tmp_path: Path) -> None:
    from PIL import Image

    from rewardlearn.shaping import bind_gamma

    eps = load_demos(pick_place_demos)
    ep = eps[-1]
    assert ep.frames is not None
    Image.fromarray(ep.frames[5]).save(tmp_path / "goal.png")
    venv = make_vec_env("pick_place", n_envs=1, seed=0, frame_size=(32, 32))
    space, act = venv.observation_space, venv.action_space
    enc = {"target": "downsample", "kwargs": {"grid": 4}}
    goal = PerceptualReward(space, act, demos=str(pick_place_demos), encoder=enc, mode="goal",
                            goal=str(tmp_path / "goal.png"), settings={"n_steps": 3})
    batch = TransitionBatch.from_arrays(ep.observations[:-1], ep.actions, ep.observations[1:],
                                        frames=ep.frames[1:])
    sim = goal.compute(batch).rewards
    assert int(np.argmax(sim)) == 4 and sim[4] == pytest.approx(0.0, abs=1e-9)  # frame 5 is s'
    with pytest.raises(FileNotFoundError, match="goal image"):
        PerceptualReward(space, act, demos=str(pick_place_demos), encoder=enc, mode="goal",
                         goal=str(tmp_path / "missing.png"))
    pot = PerceptualReward(space, act, demos=str(pick_place_demos), encoder=enc,
                           mode="potential", settings={"n_steps": 3})
    bind_gamma(pot, 0.9)
    assert pot.gamma == 0.9
    batch.obs_frames = ep.frames[:-1]
    out = pot.compute(batch)
    model = pot.model
    assert model is not None
    phi = model.predict(None, ep.frames).reward - 1.0
    np.testing.assert_allclose(out.rewards[0], 0.9 * phi[1] - phi[0], rtol=1e-6)
    np.testing.assert_allclose(out.signals["shaping"][1:], 0.9 * phi[2:] - phi[1:-1], rtol=1e-6)


def test_train_perceptual_command(pick_place_demos: Path, tmp_path: Path) -> None:
    from rewardlearn.cli.train_perceptual import main, parse_args

    assert parse_args(["n_steps=auto", "aggregate=sum", "demos=1"])[1] == {
        "n_steps": "auto", "aggregate": "sum", "demos": "1"}
    out = tmp_path / "m.pt"
    metrics = main([f"demos={pick_place_demos}", "encoder=state", "n_steps=4", f"out={out}"])
    assert metrics["k"] == 4 and out.is_file() and out.with_suffix(".json").is_file()
    ev = main(["eval", f"model={out}", f"demos={pick_place_demos}"])
    assert ev["spearman"] > 0.8
    with pytest.raises(ValueError, match="unknown command"):
        main(["train"])
    with pytest.raises(ValueError, match=r"unknown option 'steps'; options: .*n_steps"):
        main([f"demos={pick_place_demos}", "encoder=state", "steps=4"])


def test_train_py_runs_with_perceptual_reward(compose_cfg: Callable[..., DictConfig],
                                              pick_place_demos: Path, tmp_path: Path) -> None:
    from rewardlearn.cli.train import run
    from rewardlearn.recording import read_sidecar

    short = ["env=pick_place", "agent=ppo", "total_timesteps=128", "eval.n_episodes=1",
             "video.n_episodes=1", "video.width=32", "video.height=32", "progress_bar=false",
             f"video.dir={tmp_path / 'videos'}", "+agent.kwargs.n_steps=64",
             "+agent.kwargs.batch_size=32", "+agent.kwargs.n_epochs=1", "torch_threads=1"]
    saved = tmp_path / "perceptual.pt"
    cfg = compose_cfg(*short, "reward=perceptual", f"reward.model.demos={pick_place_demos}",
                      "reward.model.encoder.target=downsample", "reward.model.settings.n_steps=3",
                      f"reward.model.save={saved}")
    summary = run(cfg, tmp_path / "run")
    assert summary["reward_training"]["perceptual_steps"] == 3 and saved.is_file()
    side = read_sidecar(Path(summary["videos"][0]).with_suffix(".json"))
    assert {"perceptual_step", "step_score_2"} <= set(side["signals"])
    # the saved model as a goal potential on the sparse reward, no demos needed
    cfg = compose_cfg(*short, "env.kwargs.reward_type=sparse", "reward=env",
                      "shaping=perceptual", "shaping.potential.demos=null",
                      f"shaping.potential.path={saved}", "shaping.potential.kind=goal")
    summary = run(cfg, tmp_path / "run2")
    assert summary["reward_training"]["shaping"]["potential"] == "perceptual_goal"
