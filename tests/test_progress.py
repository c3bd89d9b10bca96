"""Stage-aware progress (SARM): labels, windows, rewind, training targets, checkpoints,
the progress reward and potential, RA-BC weights, the train_progress command, train.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.wrappers import TimeLimit
from omegaconf import DictConfig
from stable_baselines3.common.vec_env import DummyVecEnv
from toy_envs import CountEnv

from rewardlearn.bc import demo_arrays
from rewardlearn.cli.collect import CollectConfig, collect
from rewardlearn.demos import Episode, load_demos
from rewardlearn.env_factory import make_env, make_vec_env
from rewardlearn.progress import (
    DownsampleEncoder,
    ProgressConfig,
    ProgressModel,
    ProgressPotential,
    WindowTracker,
    evaluate_progress,
    load_annotations,
    progress_labels,
    rabc_weights,
    rewind_sequence,
    spans_from_stages,
    stage_priors,
    train_progress_model,
)
from rewardlearn.progress.labels import (
    frame_stage_labels,
    frame_windows,
    rewind_windows,
    validate_spans,
)
from rewardlearn.progress.reward import ProgressReward
from rewardlearn.rewards import load_reward_model, save_reward_model
from rewardlearn.rewards.base import TransitionBatch
from rewardlearn.rewards.checkpoint import SpaceMismatchError
from rewardlearn.shaping import ShapedReward, build_shaping
from rewardlearn.wrappers import RewardVecEnvWrapper

FAST = dict(epochs=25, hidden_sizes=[128, 128], heldout=0.25)


# ---------------------------------------------------------------- labels (SARM)


def test_spans_from_stage_labels() -> None:
    stages = np.array([0, 0, 0, 1, 1, 2, 1, 2, 3, 3])        # a regression to 1 counts as 2
    assert spans_from_stages(stages, 4).tolist() == [[0, 3], [3, 5], [5, 8], [8, 9]]
    skipped = np.array([0, 0, 2, 2, 3])                       # stage 1 never seen: empty span
    assert spans_from_stages(skipped, 4).tolist() == [[0, 2], [2, 2], [2, 4], [4, 4]]
    unfinished = np.array([0, 1, 1])
    assert spans_from_stages(unfinished, 3).tolist() == [[0, 1], [1, 2], [2, 2]]


def test_progress_labels_exact_formula() -> None:
    alpha = np.array([0.2, 0.3, 0.5])
    spans = np.array([[1, 3], [5, 7], [7, 11]])               # gaps: frame 0, frame 4
    stage, tau, prog = progress_labels(spans, 13, alpha)
    # frame 0 is before the first subtask: its start
    assert (stage[0], tau[0], prog[0]) == (0, 0.0, 0.0)
    # inside subtask 0: tau = (t - 1) / 2, progress = alpha_0 * tau
    np.testing.assert_allclose(prog[1:4], [0.0, 0.1, 0.2])
    # frame 4 lies between subtasks 0 and 1: the end of subtask 0
    assert (stage[4], tau[4]) == (0, 1.0) and prog[4] == pytest.approx(0.2)
    # subtask 1: P_0 + alpha_1 * (t - 5) / 2
    np.testing.assert_allclose(prog[5:7], [0.2, 0.35])
    # subtask 2 starts at 7 = end of subtask 1 (continuous), then frames after its end stay at 1
    np.testing.assert_allclose(prog[7:13], [0.5, 0.625, 0.75, 0.875, 1.0, 1.0])
    assert stage.tolist() == [0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2]


def test_frame_stage_labels_keep_regressions() -> None:
    alpha = np.array([0.25, 0.25, 0.25, 0.25])
    monotone = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3, 3])
    for got, want in zip(frame_stage_labels(monotone, alpha),
                         progress_labels(spans_from_stages(monotone, 4), 10, alpha), strict=True):
        np.testing.assert_allclose(got, want)
    dropped = np.array([0, 0, 1, 1, 2, 2, 0, 0, 1, 2, 3])     # the cube falls at frame 6
    stage, tau, prog = frame_stage_labels(dropped, alpha)
    assert stage.tolist() == dropped.tolist()                  # spans would say 2 at frames 6-8
    np.testing.assert_allclose(tau[6:8], [0.0, 0.5])           # run [6, 8) of stage 0
    np.testing.assert_allclose(prog[6:9], [0.0, 0.125, 0.25])
    assert prog[-1] == pytest.approx(1.0) and np.all(prog[6:9] < prog[5])
    with pytest.raises(ValueError, match="labels must be one of"):
        ProgressConfig(labels="stages")


def test_stage_priors_mean_fraction_renormalised() -> None:
    a = np.array([[0, 2], [2, 6], [6, 10]])                   # 10 steps: 0.2, 0.4, 0.4
    b = np.array([[0, 4], [4, 5], [5, 5]])                    # 5 steps: 0.8, 0.2, 0.0
    alpha = stage_priors([a, b], [11, 6])
    np.testing.assert_allclose(alpha, np.array([0.5, 0.3, 0.2]))
    gappy = np.array([[0, 1], [3, 5]])                        # fractions 0.1, 0.2 -> 1/3, 2/3
    np.testing.assert_allclose(stage_priors([gappy], [11]), [1 / 3, 2 / 3])


def test_annotation_file(tmp_path: Path) -> None:
    good = {"subtask_names": ["a", "b"], "episodes": {"0": [[0, 4], [5, 9]], "3": [[1, 2], [2, 6]]}}
    (tmp_path / "ann.json").write_text(json.dumps(good))
    names, spans = load_annotations(tmp_path / "ann.json")
    assert names == ("a", "b") and sorted(spans) == [0, 3]
    bad = {"subtask_names": ["a", "b"], "episodes": {"0": [[0, 4]]}}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="one span per subtask"):
        load_annotations(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="ordered and not overlap"):
        validate_spans(np.array([[0, 5], [3, 8]]), 10)
    with pytest.raises(ValueError, match=r"in \[0, 9\]"):
        validate_spans(np.array([[0, 5], [5, 10]]), 10)
    with pytest.raises(FileNotFoundError):
        load_annotations(tmp_path / "missing.json")


# ---------------------------------------------------------------- windows and rewind


def test_windows_and_rewind() -> None:
    assert frame_windows(5, 3, 2).tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 1, 3],
                                               [0, 2, 4]]
    assert rewind_sequence(4, 2).tolist() == [0, 1, 2, 3, 4, 3, 2]
    with pytest.raises(ValueError):
        rewind_sequence(2, 3)
    rng = np.random.default_rng(0)
    idx, label = rewind_windows(30, 200, 3, 1, 5, rng)
    # each window ends on its label frame, and was played forward then back: falling frames
    assert np.array_equal(idx[:, -1], label)
    assert np.all(idx[:, -2] == label + 1)
    _, _, prog = progress_labels(np.array([[0, 15], [15, 29]]), 30, np.array([0.5, 0.5]))
    assert np.all(prog[idx[:, -1]] < prog[idx[:, -2]])


def test_window_tracker_matches_training_windows_across_auto_reset() -> None:
    """Rollout windows (per env, across SB3 auto-resets) equal the training windows."""
    venv = DummyVecEnv([lambda: TimeLimit(CountEnv(terminate_at=3), max_episode_steps=6)
                        for _ in range(2)])
    tracker = WindowTracker(window=3, stride=2)
    obs = venv.reset()
    episode_frames: list[list[np.ndarray]] = [[obs[0]], [obs[1]]]
    checked = 0
    for _ in range(25):
        nxt, _, dones, infos = venv.step(np.zeros((2, 1), np.float32))
        true_next = np.stack([infos[i]["terminal_observation"] if dones[i] else nxt[i]
                              for i in range(2)])
        w_obs, w_next = tracker.windows(obs, true_next, dones)
        for i in range(2):
            frames = [*episode_frames[i], true_next[i]]
            seq = np.stack(frames)
            np.testing.assert_array_equal(w_next[i], seq[frame_windows(len(seq), 3, 2)[-1]])
            np.testing.assert_array_equal(w_obs[i], seq[frame_windows(len(seq) - 1, 3, 2)[-1]])
            episode_frames[i] = [nxt[i]] if dones[i] else frames
            checked += 1
        obs = nxt
    assert checked == 50


def test_rabc_weights_formula() -> None:
    prog = [np.array([0.0, 0.2, 0.2, 0.205, 0.1, 0.6]), np.array([0.0, 0.5, 1.0])]
    w = rabc_weights(prog, horizon=1, kappa=0.01)
    gains = np.array([0.2, 0.0, 0.005, -0.105, 0.5, 0.5, 0.5])
    mu, sigma = gains.mean(), gains.std()
    soft = np.clip((gains - (mu - 2 * sigma)) / (4 * sigma), 0, 1)
    expected = np.where(gains > 0.01, 1.0, np.where(gains >= 0, soft, 0.0))
    np.testing.assert_allclose(np.concatenate(w), expected)
    w2 = rabc_weights([np.array([0.0, 0.1, 0.3, 0.6])], horizon=2)
    assert len(w2[0]) == 3                                    # gains 0.3, 0.5, 0.3 (clipped)


# ---------------------------------------------------------------- training on pick_place


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demos") / "pick_place"
    collect(CollectConfig(env="pick_place", n_episodes=24, noise=0.1, out=str(out)),
            verbose=False)
    return out


@pytest.fixture(scope="module")
def trained(demos: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[ProgressModel, dict[str, Any], Path]:
    torch.set_num_threads(1)
    env = make_env("pick_place")
    model, report = train_progress_model(load_demos(demos), env.observation_space,
                                         env.action_space, ProgressConfig(**FAST))
    path = model.save(tmp_path_factory.mktemp("model") / "progress_model.pt")
    return model, report, path


def test_training_reaches_targets_quickly(trained: tuple[ProgressModel, dict[str, Any], Path]
                                          ) -> None:
    _, report, _ = trained
    held = report["heldout"]
    assert held["episodes"] == 6 and report["num_stages"] == 4
    assert report["subtask_names"] == ["reach", "grasp", "transport", "place"]
    assert sum(report["alpha"]) == pytest.approx(1.0, abs=1e-3)
    assert held["voc"] >= 0.95 and held["stage_acc"] >= 0.9


def test_targets_on_pick_place_with_defaults(tmp_path: Path) -> None:
    """The issue's targets with the default settings: held-out VOC >= 0.95, stage acc >= 95%."""
    torch.set_num_threads(1)
    out = tmp_path / "demos"
    collect(CollectConfig(env="pick_place", n_episodes=50, out=str(out)), verbose=False)
    env = make_env("pick_place")
    _, report = train_progress_model(load_demos(out), env.observation_space, env.action_space,
                                     ProgressConfig())
    assert report["heldout"]["voc"] >= 0.95 and report["heldout"]["stage_acc"] >= 0.95


def test_annotation_file_training_equals_stage_labels(demos: Path, tmp_path: Path) -> None:
    episodes = load_demos(demos)[:8]
    ann = {"subtask_names": ["reach", "grasp", "transport", "place"],
           "episodes": {str(ep.id): spans_from_stages(ep.stages, 4).tolist() for ep in episodes}}
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    names, spans = load_annotations(tmp_path / "ann.json")
    env = make_env("pick_place")
    cfg = ProgressConfig(epochs=2, heldout=0.25)
    _, rep_a = train_progress_model(episodes, env.observation_space, env.action_space, cfg,
                                    annotations=spans, subtask_names=names)
    _, rep_b = train_progress_model(episodes, env.observation_space, env.action_space, cfg)
    assert rep_a["alpha"] == rep_b["alpha"]
    assert rep_a["final_losses"] == pytest.approx(rep_b["final_losses"])


def test_frame_encoder_and_precomputed_embeddings(tmp_path: Path) -> None:
    out = tmp_path / "frames"
    collect(CollectConfig(env="pick_place", n_episodes=4, frames=True, frame_size=32,
                          out=str(out)), verbose=False)
    episodes = load_demos(out)
    env = make_env("pick_place")
    spec = {"target": "rewardlearn.progress.encoders:DownsampleEncoder",
            "kwargs": {"grid": 2, "frame_size": [32, 32]}}
    cfg = ProgressConfig(epochs=2, heldout=0.25)
    model, _ = train_progress_model(episodes, env.observation_space, env.action_space, cfg,
                                    encoder=spec)
    assert model.needs_frames and model.in_dim == env.observation_space.shape[0] + 12
    enc = DownsampleEncoder(grid=2)
    emb = {ep.id: enc(ep.frames) for ep in episodes}
    model2, _ = train_progress_model(episodes, env.observation_space, env.action_space, cfg,
                                     encoder=spec, embeddings=emb)
    for p1, p2 in zip(model.net.parameters(), model2.net.parameters(), strict=True):
        torch.testing.assert_close(p1, p2)
    with pytest.raises(ValueError, match="has no frames"):
        train_progress_model([*load_demos(out)[:1], _no_frames(episodes[1])],
                             env.observation_space, env.action_space, cfg, encoder=spec)
    reloaded = ProgressModel.from_payload(model.payload())
    assert reloaded.needs_frames and reloaded.encoder is not None


def _no_frames(ep: Episode) -> Episode:
    ep.frames = None
    return ep


# ---------------------------------------------------------------- checkpoints and spaces


def test_model_checkpoint_round_trip_and_space_check(
        trained: tuple[ProgressModel, dict[str, Any], Path], demos: Path) -> None:
    _model, report, path = trained
    env = make_env("pick_place")
    loaded = ProgressModel.load(path, env.observation_space, env.action_space)
    held = [ep for ep in load_demos(demos) if ep.id in report["heldout_episodes"]]
    from rewardlearn.progress.training import demo_features, demo_spans, label_demos

    demos_l = label_demos(held, demo_features(held, loaded.observation_space),
                          demo_spans(held, 4), loaded.alpha)
    assert evaluate_progress(loaded, demos_l)["voc"] == pytest.approx(report["heldout"]["voc"])
    pend = make_env("pendulum")
    with pytest.raises(SpaceMismatchError, match=r"observation space differs.*\(34,\).*\(3,\)"):
        ProgressModel.load(path, pend.observation_space, pend.action_space)
    with pytest.raises(SpaceMismatchError):
        ProgressReward(pend.observation_space, pend.action_space, path=str(path))
    potential = ProgressPotential(path=str(path))
    with pytest.raises(SpaceMismatchError):
        potential.bind(pend.observation_space, pend.action_space)
    with pytest.raises(FileNotFoundError, match="train-progress"):
        ProgressModel.load(path.with_name("nope.pt"))
    with pytest.raises(ValueError, match="not a rewardlearn progress model"):
        ProgressModel.from_payload({"format": "other"})


# ---------------------------------------------------------------- reward and potential


def _rollout(reward: Any, n_steps: int = 200, n_envs: int = 2) -> list[tuple[Any, ...]]:
    venv = RewardVecEnvWrapper(make_vec_env("pick_place", n_envs=n_envs, seed=3), reward)
    venv.reset()
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n_steps):
        act = rng.uniform(-1, 1, (n_envs, 4)).astype(np.float32)
        out.append(venv.step(act))
    venv.close()
    return out


def test_progress_reward_potential_mode(trained: tuple[ProgressModel, dict[str, Any], Path]
                                        ) -> None:
    _, _, path = trained
    env = make_env("pick_place")
    reward = ProgressReward(env.observation_space, env.action_space, path=str(path), gamma=0.9,
                            delta=0.99)                 # bonus as soon as progress >= 0.01
    steps = _rollout(reward, n_steps=160)
    prev_phi: list[float | None] = [None, None]
    for _obs, rew, dones, infos in steps:
        for i, info in enumerate(infos):
            sig = info["reward_signals"]
            assert set(sig) >= {"stage", "progress", "potential", "shaping", "bonus"}
            assert sig["stage"] in (0.0, 1.0, 2.0, 3.0) and 0.0 <= sig["progress"] <= 1.0
            assert rew[i] == pytest.approx(sig["bonus"] + sig["shaping"], abs=1e-5)
            if prev_phi[i] is not None:
                assert sig["shaping"] == pytest.approx(0.9 * sig["potential"] - prev_phi[i],
                                                       abs=1e-6)
            prev_phi[i] = None if dones[i] else sig["potential"]
    bonus = np.array([[info["reward_signals"]["bonus"] for info in s[3]] for s in steps])
    assert bonus.sum(0).tolist() == [2.0, 2.0]          # once per episode: 2 episodes of 150 steps


def test_progress_delta_mode(trained: tuple[ProgressModel, dict[str, Any], Path]) -> None:
    _, _, path = trained
    env = make_env("pick_place")
    reward = ProgressReward(env.observation_space, env.action_space, path=str(path), mode="delta")
    assert not reward.uses_shaping_gamma
    prev: list[float | None] = [None]
    for _, rew, dones, infos in _rollout(reward, n_steps=20, n_envs=1):
        p = infos[0]["reward_signals"]["progress"]
        if prev[0] is not None:
            assert rew[0] == pytest.approx(p - prev[0], abs=1e-5)
        prev[0] = None if dones[0] else p


def test_progress_level_mode(trained: tuple[ProgressModel, dict[str, Any], Path]) -> None:
    _, _, path = trained
    env = make_env("pick_place")
    reward = ProgressReward(env.observation_space, env.action_space, path=str(path),
                            mode="level", scale=2.0, offset=1.0)
    assert not reward.uses_shaping_gamma and reward.name == "progress_level"
    for _, rew, _, infos in _rollout(reward, n_steps=20, n_envs=1):
        assert rew[0] == pytest.approx(2.0 * (infos[0]["reward_signals"]["progress"] - 1.0),
                                       abs=1e-5)
    with pytest.raises(ValueError, match=r"potential.*delta.*level"):
        ProgressReward(env.observation_space, env.action_space, mode="levels")


def test_progress_shaping_and_reward_checkpoints(
        trained: tuple[ProgressModel, dict[str, Any], Path], tmp_path: Path) -> None:
    _, _, path = trained
    env = make_env("pick_place")
    obs_s, act_s = env.observation_space, env.action_space
    from rewardlearn.rewards import EnvReward

    cfg = {"name": "progress", "gamma": None,
           "potential": {"_target_": "rewardlearn.progress.potential.ProgressPotential",
                         "path": str(path)}}
    shaped = build_shaping(cfg, EnvReward(obs_s, act_s), obs_s, act_s, agent_gamma=0.99)
    reward = ProgressReward(obs_s, act_s, path=str(path), gamma=0.99)
    rng = np.random.default_rng(0)
    o = np.stack([obs_s.sample() for _ in range(3)])
    o2 = np.stack([obs_s.sample() for _ in range(3)])
    batch = TransitionBatch(o, rng.uniform(-1, 1, (3, 4)), o2, [False, True, False],
                            [False, False, True], env_rewards=np.zeros(3, np.float32))
    for module in (shaped, reward):
        saved = save_reward_model(module, tmp_path / f"{module.name}.pt")
        path.rename(path.with_suffix(".moved"))           # the checkpoint carries the model
        try:
            loaded = load_reward_model(saved, obs_s, act_s)
        finally:
            path.with_suffix(".moved").rename(path)
        np.testing.assert_allclose(loaded(batch), module(batch), atol=1e-6)
    assert isinstance(shaped, ShapedReward)
    with pytest.raises(ValueError, match="already shapes with its progress potential"):
        build_shaping(cfg, reward, obs_s, act_s, agent_gamma=0.99)


# ---------------------------------------------------------------- the command


def test_train_progress_command(demos: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    from rewardlearn.cli.train_progress import main, parse_args

    out = tmp_path / "pm" / "progress_model.pt"
    report = main(["train", f"demos={demos}", f"out={out}", "epochs=3", "heldout=0.25",
                   "hidden_sizes=[32,32]", "window=2"])
    assert out.is_file() and json.loads(out.with_suffix(".json").read_text())["model"] == str(out)
    assert report["config"]["hidden_sizes"] == [32, 32] and report["config"]["window"] == 2
    metrics = main(["eval", f"model={out}", f"demos={demos}"])
    assert metrics["episodes"] == 24
    summary = main(["rabc", f"model={out}", f"demos={demos}", "horizon=5",
                    f"out={tmp_path / 'w.npz'}"])
    with np.load(tmp_path / "w.npz") as w:
        assert len(w.files) == 24 and all(((w[k] >= 0) & (w[k] <= 1)).all() for k in w.files)
    assert summary["samples"] == sum(len(ep) for ep in load_demos(demos))
    env = make_env("pick_place")
    _, _, bc_weights = demo_arrays(str(demos), env.observation_space, env.action_space,
                                   weights=str(tmp_path / "w.npz"))  # train.py bc.weights=
    assert len(bc_weights) == summary["samples"]
    assert "held-out: VOC" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown option 'windw'"):
        parse_args(["windw=3"])
    with pytest.raises(ValueError, match="unknown command"):
        parse_args(["fit"])
    with pytest.raises(ValueError, match="give the demos"):
        main(["train"])
    with pytest.raises(ValueError, match="window must be >= 1"):
        main(["train", f"demos={demos}", "window=0"])


# ---------------------------------------------------------------- train.py


def _short(tmp_path: Path, *extra: str) -> list[str]:
    return ["env=pick_place", "agent=ppo", "total_timesteps=128", "eval.n_episodes=1",
            "video.n_episodes=1", "video.width=64", "video.height=64", "progress_bar=false",
            f"video.dir={tmp_path / 'videos'}", "+agent.kwargs.n_steps=64",
            "+agent.kwargs.batch_size=32", "+agent.kwargs.n_epochs=1", *extra]


def test_train_with_progress_reward_and_shaping(
        compose_cfg: Callable[..., DictConfig], tmp_path: Path,
        trained: tuple[ProgressModel, dict[str, Any], Path]) -> None:
    from rewardlearn.cli.train import run
    from rewardlearn.recording import read_sidecar

    _, _, path = trained
    cfg = compose_cfg(*_short(tmp_path, "reward=progress", f"reward.model.path={path}",
                              "agent.gamma=0.95"))
    summary = run(cfg, tmp_path / "run")
    assert summary["reward_training"]["gamma"] == 0.95
    side = read_sidecar(Path(summary["videos"][0]).with_suffix(".json"))
    assert len(side["signals"]["stage"]) == len(side["signals"]["progress"]) == side["length"]
    loaded = load_reward_model(tmp_path / "run" / "reward_model.pt")
    assert isinstance(loaded, ProgressReward) and loaded.gamma == 0.95

    cfg = compose_cfg(*_short(tmp_path, "env.kwargs.reward_type=sparse", "reward=env",
                              "shaping=progress", f"shaping.potential.path={path}",
                              "video.enabled=false"))
    summary = run(cfg, tmp_path / "run2")
    assert summary["reward_training"]["shaping"]["potential"] == "progress"
    assert summary["learned_return_mean"] is not None

    pend = [o for o in _short(tmp_path) if not o.startswith("env=")]
    cfg = compose_cfg(*pend, "env=pendulum", "reward=progress", f"reward.model.path={path}")
    with pytest.raises(SpaceMismatchError, match="observation space"):
        run(cfg, tmp_path / "run3")


def test_untrained_progress_reward_is_refused() -> None:
    space = gym.spaces.Box(-1, 1, (3,))
    reward = ProgressReward(space, space)
    b = TransitionBatch(np.zeros((1, 3)), np.zeros((1, 3)), np.zeros((1, 3)), [False], [False])
    with pytest.raises(RuntimeError, match=r"reward\.model\.path"):
        reward(b)
    with pytest.raises(ValueError, match=r"mode must be one of \(.potential., .delta., .level.\)"):
        ProgressReward(space, space, mode="raw")
