"""Tests of the demo collection command and the demo loader."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rewardlearn_envs import STATE_DIM, PickPlaceEnv

from rewardlearn.cli.collect import CollectConfig, main, parse_overrides, resolve_env
from rewardlearn.demos import Episode, load_demos, open_dataset


def check_episode(ep: Episode) -> None:
    """Shapes and alignment every loaded episode must satisfy."""
    t = len(ep)
    assert t > 0
    assert ep.observations.shape == (t + 1, STATE_DIM)
    assert ep.actions.shape == (t, 4)
    assert ep.rewards.shape == ep.terminations.shape == ep.truncations.shape == (t,)
    assert ep.stages.shape == (t + 1,)
    assert ep.stages[0] == 0 and ep.stages[-1] == 3
    assert ep.terminations[-1] and not ep.terminations[:-1].any() and not ep.truncations.any()
    assert ep.success
    assert ep.subtask_names == PickPlaceEnv.SUBTASKS
    for key in ("stage", "success", "dense_reward", "sparse_reward", "progress"):
        assert ep.infos[key].shape == (t + 1,)
    np.testing.assert_allclose(ep.rewards, ep.infos["dense_reward"][1:])


def test_collect_and_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demos"
    result = main(["env=pick_place", "n_episodes=3", "noise=0.3", f"out={out}"])
    assert result.kept == 3 and result.tried >= 3 and result.path == out.resolve()
    printed = capsys.readouterr().out
    assert "kept 3/" in printed and str(out) in printed and "wall time" in printed
    assert (out / "data" / "metadata.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".minari-")]

    episodes = load_demos(out)
    assert len(episodes) == 3
    for ep in episodes:
        check_episode(ep)
        assert ep.frames is None
    assert len({len(ep) for ep in episodes}) > 1, "noisy episodes should differ in length"
    metadata = open_dataset(out).storage.metadata
    assert metadata["subtask_names"] == list(PickPlaceEnv.SUBTASKS)
    assert metadata["algorithm_name"] == "scripted-expert"
    assert metadata["dataset_id"] == "rewardlearn/pick_place/expert-v0"
    assert load_demos(out / "data")[0].actions.shape == episodes[0].actions.shape


def test_collect_frames(tmp_path: Path) -> None:
    out = tmp_path / "frames"
    main(["env=rewardlearn/PickPlace-v0", "n_episodes=2", "frames=true", "frame_size=16",
          f"out={out}", "seed=5"])  # fmt: skip
    episodes = load_demos(out)
    for ep in episodes:
        check_episode(ep)
        assert ep.frames is not None
        assert ep.frames.shape == (len(ep) + 1, 16, 16, 3) and ep.frames.dtype == np.uint8
        assert ep.frames.std() > 0


def test_load_by_dataset_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset_id = "rewardlearn/pick_place/test-v0"
    main(["n_episodes=1", f"dataset_id={dataset_id}", f"out={tmp_path / dataset_id}"])
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    assert len(load_demos(dataset_id)) == 1


def test_collect_leaves_minari_root_alone(tmp_path: Path) -> None:
    before = os.environ.get("MINARI_DATASETS_PATH")
    main(["n_episodes=1", f"out={tmp_path / 'a'}"])
    assert os.environ.get("MINARI_DATASETS_PATH") == before


def test_existing_output_needs_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "d"
    main(["n_episodes=1", f"out={out}"])
    with pytest.raises(FileExistsError):
        main(["n_episodes=1", f"out={out}"])
    main(["n_episodes=2", f"out={out}", "overwrite=true"])
    assert len(load_demos(out)) == 2


def test_malformed_dataset_id_refused_before_collecting(tmp_path: Path) -> None:
    out = tmp_path / "d"
    with pytest.raises(ValueError, match="Malformed dataset ID"):
        main(["n_episodes=1", f"out={out}", "dataset_id=a/noisy0.5-v0"])
    with pytest.raises(ValueError, match=r"not a Minari id: .*name-v<version>"):
        main(["n_episodes=1", f"out={out}", "dataset_id=a/noisy"])  # no version: TypeError
    assert not out.exists()


def test_overrides_and_errors() -> None:
    cfg = parse_overrides(["env=pick_place", "n_episodes=4", "noise=0.1", "frames=yes"])
    assert cfg == CollectConfig(env="pick_place", n_episodes=4, noise=0.1, frames=True)
    resolved = CollectConfig().resolved()
    assert resolved.out == "data/pick_place-expert-v0"
    assert resolved.dataset_id == "rewardlearn/pick_place/expert-v0"
    agents = CollectConfig(policy="runs/r/agent.zip").resolved()  # not an expert's rollouts
    assert (agents.out, agents.dataset_id) == ("data/pick_place-policy-v0",
                                               "rewardlearn/pick_place/policy-v0")
    short, env_cfg = resolve_env("rewardlearn/PickPlace-v0")
    assert (short, env_cfg.id) == ("pick_place", "rewardlearn/PickPlace-v0")
    assert resolve_env("Hopper-v5")[0] == "hopper"  # a packaged config names that id
    with pytest.raises(ValueError, match=r"unknown env 'NoSuch-v0'.*valid choices: .*pick_place"):
        resolve_env("NoSuch-v0")
    with pytest.raises(ValueError, match=r"no scripted expert.*expert=<pkg.module:policy>"):
        main(["env=hopper", "n_episodes=1", "out=/tmp/never-written-hopper"])
    with pytest.raises(ValueError, match="unknown option"):
        parse_overrides(["episodes=3"])
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["pick_place"])
    with pytest.raises(ValueError, match="frames"):
        parse_overrides(["frames=maybe"])
    with pytest.raises(FileNotFoundError):
        load_demos(Path(__file__).parent)


def test_cli_unknown_env_exits_with_message() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rewardlearn.cli.collect", "env=nope"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "unknown env 'nope'" in proc.stderr and "pick_place" in proc.stderr


def test_collect_rollouts_of_a_saved_agent(tmp_path: Path) -> None:
    from stable_baselines3 import PPO

    from rewardlearn.env_factory import make_env

    agent = PPO("MlpPolicy", make_env("pick_place"), seed=0)
    agent.save(tmp_path / "agent.zip")
    out = tmp_path / "rollouts"
    result = main(["env=pick_place", "n_episodes=2", "only_success=false", "deterministic=true",
                   f"policy={tmp_path / 'agent.zip'}", f"out={out}"])
    assert result.kept == 2
    [ep, _] = load_demos(out)
    expected, _ = agent.predict(ep.observations[:-1], deterministic=True)
    np.testing.assert_allclose(ep.actions, expected, atol=1e-5)
    assert ep.stages.shape == (len(ep) + 1,)
    assert open_dataset(out).storage.metadata["policy"] == str(tmp_path / "agent.zip")
    with pytest.raises(FileNotFoundError, match=r"a run.s agent\.zip"):
        main(["env=pick_place", f"policy={tmp_path / 'missing.zip'}", f"out={tmp_path / 'x'}"])


def test_after_success_leaves_a_terminating_env_alone(tmp_path: Path) -> None:
    """pick_place terminates at success: ``after_success`` cannot go past it, and the demo
    is the same as without the option."""
    plain = load_demos(main(["env=pick_place", "n_episodes=1", f"out={tmp_path / 'a'}"]).path)
    past = load_demos(main(["env=pick_place", "n_episodes=1", "after_success=5",
                            f"out={tmp_path / 'b'}"]).path)
    np.testing.assert_array_equal(plain[0].observations, past[0].observations)
    assert past[0].terminations[-1] and not past[0].truncations.any()
