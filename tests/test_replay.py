"""Replay: a saved run's agent re-recorded with its reward model's signals, for the review page."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rewardlearn.cli import replay as rp
from rewardlearn.review.catalog import Catalog, probe_mp4

ROOT = Path(__file__).resolve().parents[1]
TINY = ["agent=sac", "video.enabled=false", "progress_bar=false", "torch_threads=1"]


def _train(run_dir: Path, *overrides: str) -> Path:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "train.py", *TINY, *overrides, f"hydra.run.dir={run_dir}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny reward=preference pendulum run (a learned reward with a per-step signal)."""
    return _train(tmp_path_factory.mktemp("runs") / "pref", "env=pendulum",
                  "reward=preference", "total_timesteps=300", "eval.n_episodes=2")


def test_replay_end_to_end(pendulum_run: Path, tmp_path: Path) -> None:
    """``python -m rewardlearn.replay``: the training evaluation's episodes again, with
    per-step learned rewards and signals, in a folder the review catalog lists."""
    out = tmp_path / "videos" / "replay"
    proc = subprocess.run([sys.executable, "-m", "rewardlearn.replay", str(pendulum_run),
                           "n_episodes=2", f"out={out}", "width=64", "height=48"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "episode 1: 200 steps" in proc.stdout and f"written: {out}" in proc.stdout
    summary = json.loads((pendulum_run / "summary.json").read_text())
    sides = [json.loads((out / f"episode_{k:03d}.json").read_text()) for k in range(2)]
    for k, side in enumerate(sides):
        assert side["seed"] == 10_000 + k and side["reward"] == "preference"
        assert len(side["env_reward"]) == len(side["learned_reward"]) == side["length"] == 200
        assert len(side["signals"]["ensemble_std"]) == 200
        timing = probe_mp4(out / side["video"])
        assert timing is not None and timing.n_frames == side["length"] + 1
    # same seeds, deterministic: the returns of the run's own evaluation
    assert sum(s["env_return"] for s in sides) / 2 == pytest.approx(summary["env_return_mean"])
    assert sum(s["learned_return"] for s in sides) / 2 == pytest.approx(
        summary["learned_return_mean"], rel=1e-4)
    runs = Catalog(tmp_path / "videos").scan()
    assert list(runs) == ["replay"] and len(runs["replay"].sidecars) == 2


def test_replay_options_and_refusals(pendulum_run: Path, tmp_path: Path) -> None:
    result = rp.main([str(pendulum_run), "n_episodes=1", "reward_model=none", "seed=3",
                      f"out={tmp_path / 'a'}", "width=32", "height=32"])
    assert result["learned_returns"] is None and result["reward_model"] is None
    side = json.loads(Path(result["sidecars"][0]).read_text())
    assert side["seed"] == 3 and side["learned_reward"] is None
    with pytest.raises(FileExistsError, match="out"):  # holds episodes already
        rp.main([str(pendulum_run), "n_episodes=1", f"out={tmp_path / 'a'}"])
    with pytest.raises(ValueError, match=r"unknown option 'episodes'; options: camera, "
                                         r"deterministic, fps, height, n_episodes, out"):
        rp.main([str(pendulum_run), "episodes=2"])
    with pytest.raises(ValueError, match="not a MuJoCo env"):
        rp.main([str(pendulum_run), "camera={distance: 3}", f"out={tmp_path / 'b'}"])
    with pytest.raises(ValueError, match="give one run folder"):
        rp.main(["n_episodes=1"])


def test_replay_missing_run_or_agent(pendulum_run: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"run folder .*missing' not found; pass"):
        rp.main([str(tmp_path / "missing")])
    with pytest.raises(FileNotFoundError, match=r"has no \.hydra/config\.yaml or config\.yaml"):
        rp.main([str(tmp_path)])
    partial = tmp_path / "partial"
    shutil.copytree(pendulum_run / ".hydra", partial / ".hydra")
    with pytest.raises(FileNotFoundError, match=r"has no agent\.zip"):
        rp.main([str(partial)])
    (partial / "agent_interrupted.zip").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"agent_interrupted\.zip is there"):
        rp.main([str(partial)])


def test_replay_mujoco_camera(tmp_path: Path) -> None:
    """A camera given on the command line places the MuJoCo view; bad ones are named."""
    run = _train(tmp_path / "hopper", "env=hopper", "reward=env", "total_timesteps=64",
                 "eval.n_episodes=1")
    result = rp.main([str(run), "n_episodes=1", "camera={distance: 6, azimuth: 45}",
                      "width=64", "height=64", f"out={tmp_path / 'cam'}"])
    timing = probe_mp4(result["videos"][0])
    assert timing is not None and timing.n_frames == result["lengths"][0] + 1
    with pytest.raises(ValueError, match=r"camera: unknown field.*zoom.*fields: azimuth"):
        rp.main([str(run), "camera={zoom: 2}", f"out={tmp_path / 'bad'}"])
    with pytest.raises(ValueError, match="camera 'nope' not in the model"):
        rp.main([str(run), "camera=nope", "n_episodes=1", f"out={tmp_path / 'bad2'}"])
