"""Runs never overwrite each other, outputs are written atomically, bad settings stop a run.

Issue items: unique run folders, claimed folders and unique temp files (2); output
folders checked before training, videos and sidecars that are complete or absent (4);
settings validated before anything runs, named with their valid range (5).
"""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import rewardlearn.cli.train as train
import rewardlearn.files as files
import rewardlearn.recording as recording
from rewardlearn.cli.checks import SettingsError, validate_settings
from rewardlearn.cli.train import run
from rewardlearn.recording import RolloutRecord, write_sidecar, write_video
from rewardlearn.rewards import (
    MLPReward,
    TransitionBatch,
    load_reward_model,
    save_reward_model,
)
from rewardlearn.runs import RUN_OUTPUTS, RunDirError, claim_folder, release_folder

ROOT = Path(__file__).resolve().parents[1]
FAST = ["env=pendulum", "agent=sac", "reward=env", "total_timesteps=300",
        "+agent.kwargs.learning_starts=100", "eval.n_episodes=1", "progress_bar=false"]


@pytest.fixture
def no_envs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a run gets as far as building an env."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the run built an env; it should have stopped before")

    monkeypatch.setattr(train, "make_vec_env", refuse)


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ----------------------------------------------------------------- 2: unique run folders


def _run_dir(*overrides: str) -> str:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
    first = str(cfg.hydra.run.dir)
    assert str(cfg.hydra.run.dir) == first  # one id per composed config
    return first


def test_default_run_folders_are_unique_and_readable() -> None:
    oracle = _run_dir("teacher=oracle")
    noisy = _run_dir("teacher=noisy")
    pattern = r"runs/\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_pendulum_sac_preference_s0_[0-9a-f]{6}"
    assert re.fullmatch(pattern, oracle) and re.fullmatch(pattern, noisy)
    assert oracle != noisy


def test_sweep_folders_carry_the_id_too() -> None:
    cfg_text = (ROOT / "conf" / "config.yaml").read_text()
    sweep = re.search(r"sweep:\n\s+dir: (.*)\n\s+subdir: (.*)\n", cfg_text)
    assert sweep is not None
    assert "${run_id:}" in sweep.group(1) and "${run_id:}" in sweep.group(2)


@pytest.mark.parametrize("output", ["summary.json", "agent.zip", "agent_interrupted.zip"])
def test_folder_of_a_finished_run_is_refused_before_anything_runs(
        compose_cfg: Callable[..., DictConfig], tmp_path: Path, no_envs: None,
        output: str) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / output).write_text("the other run's")
    cfg = compose_cfg(*FAST, "video.enabled=false")
    with pytest.raises(RunDirError, match=rf"already holds another run's outputs \({output}\)"
                                          r".*set hydra\.run\.dir to a new folder"):
        run(cfg, run_dir)
    assert (run_dir / output).read_text() == "the other run's"


def test_video_folder_of_another_run_is_refused(compose_cfg: Callable[..., DictConfig],
                                                tmp_path: Path, no_envs: None) -> None:
    videos = tmp_path / "videos"
    (videos / "run").mkdir(parents=True)
    (videos / "run" / "episode_000.mp4").write_bytes(b"other")
    cfg = compose_cfg(*FAST, f"video.dir={videos}")
    with pytest.raises(RunDirError, match=r"episode_000\.mp4.*set video\.dir"):
        run(cfg, tmp_path / "run")
    assert (videos / "run" / "episode_000.mp4").read_bytes() == b"other"


@pytest.fixture
def live_holder(tmp_path: Path) -> Iterator[Path]:
    """Another process holding ``tmp_path/shared`` the way a live run does."""
    folder = tmp_path / "shared"
    folder.mkdir()
    code = ("import json, os, sys\n"
            "from filelock import FileLock\n"
            f"lock = FileLock({str(folder / 'run.claim')!r})\n"
            "lock.acquire()\n"
            f"open({str(folder / 'run.claim.json')!r}, 'w').write(json.dumps("
            "{'pid': os.getpid(), 'host': 'here', 'started': 'now'}))\n"
            "print('held', flush=True)\n"
            "sys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    yield folder
    proc.kill()
    proc.wait()


def test_folder_held_by_a_live_run_is_refused_then_free_once_it_ends(
        compose_cfg: Callable[..., DictConfig], live_holder: Path, no_envs: None) -> None:
    cfg = compose_cfg(*FAST, "video.enabled=false")
    with pytest.raises(RunDirError, match=r"in use by another run \(pid \d+ on here"):
        run(cfg, live_holder)
    assert _files(live_holder) == ["run.claim", "run.claim.json"]  # the holder's, untouched


def test_stale_claim_of_a_dead_run_is_taken_over(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    code = ("import os\n"
            "from rewardlearn.runs import claim_folder\n"
            f"claim_folder({str(folder)!r}, (), 'hydra.run.dir')\n"
            "os._exit(0)\n")  # killed: its claim files stay behind
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert json.loads((folder / "run.claim.json").read_text())["pid"] != os.getpid()
    claim_folder(folder, RUN_OUTPUTS, "hydra.run.dir")
    try:
        assert json.loads((folder / "run.claim.json").read_text())["pid"] == os.getpid()
        with pytest.raises(RunDirError, match="in use by another run in this process"):
            claim_folder(folder, RUN_OUTPUTS, "hydra.run.dir")
    finally:
        release_folder(folder)


def test_two_writers_of_one_reward_model_use_their_own_temp_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second save that starts and ends while the first is writing: both succeed."""
    env = gym.make("Pendulum-v1")
    first = MLPReward(env.observation_space, env.action_space, hidden_sizes=(4,), seed=1)
    second = MLPReward(env.observation_space, env.action_space, hidden_sizes=(4,), seed=2)
    path = tmp_path / "reward_model.pt"
    real_save, temps = torch.save, []

    def interleaved(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        temps.append(Path(f))
        real_save(obj, f, *args, **kwargs)
        if len(temps) == 1:
            save_reward_model(second, path)  # the other run writes meanwhile

    monkeypatch.setattr(torch, "save", interleaved)
    save_reward_model(first, path)
    assert len(set(temps)) == 2 and all(t.parent == tmp_path for t in temps)
    assert _files(tmp_path) == ["reward_model.pt"]
    monkeypatch.setattr(torch, "save", real_save)
    batch = TransitionBatch.from_arrays(np.ones((4, 3)), np.zeros((4, 1)), np.ones((4, 3)))
    np.testing.assert_allclose(load_reward_model(path)(batch), first(batch))  # the last to end


def test_refused_folder_keeps_its_hydra_record_from_the_command_line(tmp_path: Path) -> None:
    run_dir = tmp_path / "shared"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text("teacher: oracle\n")
    (run_dir / "summary.json").write_text("{}")
    out = subprocess.run([sys.executable, "train.py", "teacher=noisy",
                          f"hydra.run.dir={run_dir}", f"video.dir={tmp_path / 'videos'}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == (
        f"error: {run_dir} already holds another run's outputs (summary.json); they are not "
        "overwritten: set hydra.run.dir to a new folder (or delete that one)")
    assert (run_dir / ".hydra" / "config.yaml").read_text() == "teacher: oracle\n"
    assert not (tmp_path / "videos").exists()


# ------------------------------------------------------- 4: outputs checked, written whole


def test_unwritable_video_dir_stops_the_run_before_training(
        compose_cfg: Callable[..., DictConfig], tmp_path: Path, no_envs: None) -> None:
    (tmp_path / "a_file").write_text("")
    cfg = compose_cfg(*FAST, f"video.dir={tmp_path / 'a_file' / 'videos'}")
    with pytest.raises(PermissionError, match=r"^video\.dir: cannot write to .*a_file/videos/run"
                                              r".*set video\.dir to a writable folder"):
        run(cfg, tmp_path / "run")
    assert "agent.zip" not in _files(tmp_path / "run")


def test_unwritable_run_dir_stops_the_run(compose_cfg: Callable[..., DictConfig],
                                          tmp_path: Path, no_envs: None) -> None:
    (tmp_path / "a_file").write_text("")
    with pytest.raises(PermissionError, match=r"^hydra\.run\.dir: cannot write to"):
        run(compose_cfg(*FAST, "video.enabled=false"), tmp_path / "a_file" / "run")


def _frames(n: int = 6) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (n, 32, 32, 3), dtype=np.uint8)


def test_video_and_sidecar_are_written_whole(tmp_path: Path) -> None:
    video = write_video(tmp_path / "episode_000.mp4", _frames(), 10)
    rec = RolloutRecord(0, 0, 5, 1.0, None, None, False, True, [0.2] * 5)
    write_sidecar(video.with_suffix(".json"), rec)
    assert _files(tmp_path) == ["episode_000.json", "episode_000.mp4"]
    assert video.read_bytes()[4:8] == b"ftyp" and video.stat().st_size > 500


def test_final_file_is_never_overwritten_silently(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    files.write_text_atomic(path, "first", overwrite=False)
    with pytest.raises(FileExistsError, match=r"summary\.json already exists; not overwritten"):
        files.write_text_atomic(path, "second", overwrite=False)
    assert path.read_text() == "first" and _files(tmp_path) == ["summary.json"]


class _FailingContainer:
    """A container that has begun the file, then fails at the second frame: an encoder
    error (an OSError as on a full disk) or Ctrl-C."""

    def __init__(self, path: Path, failure: BaseException) -> None:
        path.write_bytes(b"\0" * 48)
        self.failure, self.frames = failure, 0

    def __enter__(self) -> _FailingContainer:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_stream(self, *args: Any, **kwargs: Any) -> Any:
        import types

        return types.SimpleNamespace(encode=lambda frame=None: [])

    def mux(self, packets: Any) -> None:
        self.frames += 1
        if self.frames == 2:
            raise self.failure


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"),
                                     KeyboardInterrupt()])
def test_a_failing_encoder_raises_and_leaves_no_mp4(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    failure: BaseException) -> None:
    monkeypatch.setattr(recording, "_open_container",
                        lambda path: _FailingContainer(path, failure))
    out = tmp_path / "videos"
    if isinstance(failure, OSError):
        with pytest.raises(OSError, match=r"writing video .*episode_000\.mp4 failed: .*No "
                                          r"space left on device"):
            write_video(out / "episode_000.mp4", _frames(), 10)
    else:
        with pytest.raises(KeyboardInterrupt):
            write_video(out / "episode_000.mp4", _frames(), 10)
    assert _files(out) == []


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_the_real_encoder_on_a_full_device_raises(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    real = recording._open_container
    monkeypatch.setattr(recording, "_open_container", lambda path: real(Path("/dev/full")))
    with pytest.raises(OSError, match="No space left on device"):
        write_video(tmp_path / "episode_000.mp4", _frames(), 10)
    assert _files(tmp_path) == []


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"),
                                     KeyboardInterrupt()])
def test_failed_sidecar_write_leaves_no_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             failure: BaseException) -> None:
    def fail(fd: int) -> None:
        raise failure

    monkeypatch.setattr(recording.os, "fsync", fail)
    rec = RolloutRecord(0, 0, 1, 1.0, None, None, False, True, [1.0])
    with pytest.raises(type(failure)):
        write_sidecar(tmp_path / "episode_000.json", rec)
    assert _files(tmp_path) == []


# ------------------------------------------------------------ 5: settings checked first


PREF = r"reward.model \(reward=preference\): invalid preference settings: "


@pytest.mark.parametrize(("overrides", "message"), [
    (["total_timesteps=0"], "total_timesteps=0: must be an integer >= 1"),
    (["total_timesteps=-5"], "total_timesteps=-5: must be an integer >= 1"),
    (["total_timesteps=abc"], "total_timesteps='abc': must be an integer >= 1"),
    (["n_envs=0"], "n_envs=0: must be an integer >= 1"),
    (["seed=-1"], r"seed=-1: must be an integer in \[0, 4294967295\]"),
    (["eval.n_episodes=-1"], "eval.n_episodes=-1: must be an integer >= 1"),
    (["video.width=0"], "video.width=0: must be an integer >= 2"),
    (["video.n_episodes=-1"], "video.n_episodes=-1: must be an integer >= 0"),
    (["video.fps=0"], "video.fps=0: must be a number > 0 or null"),
    (["bc.epochs=0"], "bc: invalid bc settings: epochs must be >= 1, got 0"),
    (["bc.epochs=abc"], r"bc: invalid bc settings: epochs must be an integer \(got 'abc'\)"),
    (["bc.batch_size=0"], "bc: invalid bc settings: batch_size must be >= 1, got 0"),
    (["bc.lr=0"], "bc: invalid bc settings: lr must be > 0, got 0"),
    (["bc.demos=d", "bc.weights=w.npz", "bc.demos=null"],
     r"bc: invalid bc settings: weights needs demos"),
    (["reward.model.budget=abc"], PREF + r"budget must be an integer \(got 'abc'\)"),
    (["reward.model.batch_size=0"], PREF + r"batch_size must be >= 1 \(got 0\)"),
    (["reward.model.budget=0"], PREF + r"budget must be >= 1 \(with 0 the agent would train on an "
     r"untrained reward; reuse a trained one with reward=checkpoint\) \(got 0\)"),
    (["reward.model.segment_length=1"], PREF + r"segment_length must be >= 2 \(got 1\)"),
    (["reward.model.ensemble_size=0"], PREF + r"ensemble_size must be >= 1 \(got 0\)"),
    (["reward.model.lr=0"], PREF + r"lr must be > 0 \(got 0\)"),
    (["reward.model.feedback_until=1.5"],
     r"invalid preference settings: feedback_until must be in \(0, 1\] \(got 1.5\)"),
    (["reward.model.query_selection=best"], "query_selection must be one of"),
])
def test_bad_setting_is_named_with_its_valid_range(compose_cfg: Callable[..., DictConfig],
                                                   tmp_path: Path, no_envs: None,
                                                   overrides: list[str], message: str) -> None:
    cfg = compose_cfg(*overrides)
    with pytest.raises(SettingsError, match=message):
        run(cfg, tmp_path / "run")
    assert _files(tmp_path) == []  # refused before the run claimed or wrote anything


def test_every_bad_setting_is_listed_at_once(compose_cfg: Callable[..., DictConfig]) -> None:
    with pytest.raises(SettingsError, match=r"^invalid settings: total_timesteps=0: .*; "
                                            r"n_envs=0: .*"):
        validate_settings(compose_cfg("total_timesteps=0", "n_envs=0"))


def test_good_settings_pass(compose_cfg: Callable[..., DictConfig]) -> None:
    validate_settings(compose_cfg())
    validate_settings(compose_cfg("total_timesteps=1e5", "reward=env", "video.enabled=false"))


def _checkpoint(tmp_path: Path) -> Path:
    env = gym.make("Pendulum-v1")
    return save_reward_model(MLPReward(env.observation_space, env.action_space,
                                       hidden_sizes=(4,)), tmp_path / "mlp.pt")


def test_resume_from_a_non_preference_checkpoint_is_named(
        compose_cfg: Callable[..., DictConfig], tmp_path: Path, no_envs: None) -> None:
    path = _checkpoint(tmp_path)
    cfg = compose_cfg(f"reward.model.resume={path}", "video.enabled=false")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))} holds a MLPReward "
                                         r"checkpoint, reward\.model\.resume needs a preference "
                                         r"checkpoint"):
        run(cfg, tmp_path / "run")


@pytest.mark.parametrize("damage", ["truncated", "random"])
def test_unreadable_resume_checkpoint_names_the_file(
        compose_cfg: Callable[..., DictConfig], tmp_path: Path, no_envs: None,
        damage: str) -> None:
    path = _checkpoint(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else os.urandom(300))
    cfg = compose_cfg(f"reward.model.resume={path}", "video.enabled=false")
    with pytest.raises(ValueError, match=rf"^reward\.model\.resume: cannot read reward "
                                         rf"checkpoint {re.escape(str(path))}: not a "
                                         r"rewardlearn checkpoint \("):
        run(cfg, tmp_path / "run")


def test_missing_reward_checkpoint_path_is_named(compose_cfg: Callable[..., DictConfig],
                                                 tmp_path: Path, no_envs: None) -> None:
    cfg = compose_cfg("reward=checkpoint", f"reward.model.path={tmp_path / 'nope.pt'}",
                      "video.enabled=false")
    with pytest.raises(FileNotFoundError, match=r"^reward\.model\.path=.*nope\.pt: no such file"):
        run(cfg, tmp_path / "run")


def test_bad_setting_from_the_command_line_is_one_line(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "train.py", "total_timesteps=0",
                          f"hydra.run.dir={tmp_path / 'run'}", f"video.dir={tmp_path / 'v'}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        "error: invalid setting: total_timesteps=0: must be an integer >= 1")


# ------------------------------------- stopped and refused runs leave nothing half-done


def test_a_refused_setting_leaves_no_run_folder(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "refused"
    out = subprocess.run([sys.executable, "train.py", "total_timesteps=0",
                          f"hydra.run.dir={run_dir}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "total_timesteps=0" in out.stderr
    assert not (tmp_path / "runs").exists()


def test_a_run_refused_while_building_leaves_no_run_folder(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "refused"
    out = subprocess.run([sys.executable, "train.py", "reward=checkpoint",
                          f"reward.model.path={tmp_path / 'missing.pt'}", "~teacher",
                          f"hydra.run.dir={run_dir}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "missing.pt" in out.stderr
    assert not run_dir.exists()


def test_sigterm_saves_the_run_and_leaves_no_claim_or_empty_folder(tmp_path: Path) -> None:
    import signal
    import time

    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "train.py", "env=pendulum", "agent=sac",
                             "reward=mlp", "total_timesteps=100000", "progress_bar=false",
                             "+agent.kwargs.learning_starts=100", "torch_threads=1",
                             "~teacher", f"hydra.run.dir={run_dir}"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    deadline = time.monotonic() + 120
    while not list(run_dir.glob("tb/*/events*")) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(3.0)  # a few hundred training steps
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, output
    assert (run_dir / "agent_interrupted.zip").is_file(), output
    assert (run_dir / "reward_model_interrupted.pt").is_file()
    assert not (run_dir / "run.claim").exists()
    assert not (run_dir / "videos").exists()
    assert not (tmp_path / "videos").exists()


def test_videos_live_in_the_run_folder_and_summary_names_them_from_it(
        compose_cfg: Callable[..., DictConfig], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = compose_cfg(*FAST, "video.n_episodes=1", "video.width=32", "video.height=32")
    summary = run(cfg, tmp_path / "runs" / "r")
    assert summary["videos"] == ["videos/episode_000.mp4"]
    assert (tmp_path / "runs" / "r" / "videos" / "episode_000.json").is_file()
    assert not (tmp_path / "videos").exists() and not (tmp_path / "runs" / "r" /
                                                        "run.claim").exists()


def test_a_refused_replay_leaves_no_folder(tmp_path: Path) -> None:
    from rewardlearn.cli.replay import replay

    out = tmp_path / "new" / "deep" / "replay"
    with pytest.raises(FileNotFoundError):
        replay(tmp_path / "not_a_run", out=out)
    assert not (tmp_path / "new").exists()
    claim_folder(out, RUN_OUTPUTS, "out")
    release_folder(out, discard=True)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("argv,message", [
    (["reward=preference", "reward.model.budgett=10"],
     "error: reward.model has no setting 'budgett' (did you mean budget?); valid: "),
    (["agent=sac", "agent.kwargs.learning_starts=100"],
     "error: agent.kwargs has no 'learning_starts' yet; add it with "
     "+agent.kwargs.learning_starts=100"),
    (["agent=ppo", "agent.kwargs.n_stepz=100"],
     "error: PPO takes no argument 'n_stepz' (did you mean n_steps?)"),
])
def test_a_mistyped_override_is_named_in_one_line_before_hydra_runs(
        argv: list[str], message: str, tmp_path: Path) -> None:
    """``train.py``'s command line is composed first: a key the config lacks exits with one
    line naming the closest valid key, before Hydra makes a run folder."""
    from rewardlearn.cli.train import check_overrides

    with pytest.raises(SystemExit) as err:
        check_overrides([*argv, f"hydra.run.dir={tmp_path / 'run'}"])
    text = str(err.value)
    assert text.startswith(message) and "\n" not in text
    assert not (tmp_path / "run").exists()
    check_overrides(["reward=preference", "reward.model.budget=10"])  # a valid key passes
