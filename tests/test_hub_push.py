"""Runs and reward models to and from the Hub, against a mocked ``HfApi`` (no network)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import rewardlearn.rewards.pretrained as pretrained
from rewardlearn.cli import convert as convert_cli
from rewardlearn.cli import push as push_cli
from rewardlearn.publish import package_run, save_run_reward_model
from rewardlearn.rewards import load_reward_model, save_reward_model
from rewardlearn.rewards.base import TransitionBatch
from rewardlearn.rewards.checkpoint import UnsafeCheckpointError
from rewardlearn.rewards.mlp import MLPReward

OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)


class FakeApi:
    """Records ``create_repo``/``upload_folder`` and keeps each repo's files in a folder."""

    def __init__(self, remote: Path) -> None:
        self.remote = remote
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def create_repo(self, repo_id: str, **kw: Any) -> Any:
        from huggingface_hub import RepoUrl

        self.calls.append(("create_repo", {"repo_id": repo_id, **kw}))
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, *, repo_id: str, folder_path: str, **kw: Any) -> Any:
        self.calls.append(("upload_folder", {"repo_id": repo_id, "folder_path": folder_path,
                                             **kw}))
        shutil.copytree(folder_path, self.remote / repo_id, dirs_exist_ok=True)

        class Info:
            commit_url = f"https://huggingface.co/{repo_id}/commit/abc"

        return Info()


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    fake = FakeApi(tmp_path / "remote")
    monkeypatch.setattr(pretrained, "HfApi", lambda token=None: fake)
    return fake


def _model() -> MLPReward:
    m = MLPReward(OBS, ACT, hidden_sizes=(8,), device="cpu", seed=2)
    m.fit_normalizer(_batch(64, 3))
    return m


def _batch(n: int, seed: int = 0) -> TransitionBatch:
    rng = np.random.default_rng(seed)
    return TransitionBatch.from_arrays(rng.normal(size=(n, 3)), rng.uniform(-1, 1, (n, 1)),
                                       rng.normal(size=(n, 3)))


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A finished run's folder as train.py leaves it (agent and video are stand-ins)."""
    run = tmp_path / "runs" / "2026_pendulum_sac_mlp_s0"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text(
        "env:\n  name: pendulum\nagent:\n  name: sac\nreward:\n  name: mlp\n  model:\n"
        "    hidden_sizes: [8]\nseed: 0\n")
    (run / ".hydra" / "overrides.yaml").write_text("- env=pendulum\n- reward=mlp\n- seed=0\n")
    (run / "agent.zip").write_bytes(b"PK agent")
    (run / "vecnormalize.pkl").write_bytes(b"stats")
    videos = run / "videos"
    videos.mkdir(parents=True)
    (videos / "episode_0.mp4").write_bytes(b"mp4")
    (videos / "episode_0.json").write_text("{}")
    model = _model()
    save_reward_model(model, run / "reward_model.pt")
    assert save_run_reward_model(model, run) == run / "reward_model"
    (run / "summary.json").write_text(json.dumps({
        "env": "pendulum", "agent": "sac", "reward": "mlp", "seed": 0,
        "env_return_mean": -150.5, "env_return_std": 12.25, "learned_return_mean": -3.0,
        "success_rate": None, "eval_episodes": 5, "total_timesteps": 1000,
        "videos": ["videos/episode_0.mp4"], "reward_training": {"updates": 3}}))
    return run


def test_a_run_writes_its_reward_model_in_the_hub_format(run: Path) -> None:
    folder = run / "reward_model"
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors",
                                                  "README.md"}
    card = (folder / "README.md").read_text()
    assert "for pendulum" in card and "python train.py env=pendulum reward=mlp seed=0" in card
    b = _batch(50)
    np.testing.assert_array_equal(load_reward_model(run, OBS, ACT)(b),
                                  load_reward_model(run / "reward_model.pt", OBS, ACT)(b))


def test_push_a_run_packages_and_uploads_through_hfapi(run: Path, api: FakeApi,
                                                       tmp_path: Path) -> None:
    evaluation = tmp_path / "eval.json"
    evaluation.write_text(json.dumps({"setup": {}, "rewards": {"mlp": {"epic": 0.125,
                                                                      "pref_acc": 0.875}}}))
    out = push_cli.main([str(run), "--repo-id", "me/pendulum-run", "--eval", str(evaluation)])
    assert out["commit"].endswith("/commit/abc")
    assert [c[0] for c in api.calls] == ["create_repo", "upload_folder"]
    assert api.calls[0][1]["exist_ok"] is True
    remote = api.remote / "me" / "pendulum-run"
    files = {str(p.relative_to(remote)) for p in remote.rglob("*") if p.is_file()}
    assert files == {"README.md", "agent.zip", "vecnormalize.pkl", "summary.json", "config.yaml",
                     "evaluation.json", "replay.mp4", "replay.json", "reward_model/config.json",
                     "reward_model/model.safetensors", "reward_model/README.md"}
    card = (remote / "README.md").read_text()
    assert "library_name: stable-baselines3" in card and "-150.50 +/- 12.25" in card
    assert "| epic | 0.125 |" in card and "python train.py env=pendulum" in card
    assert "| epic | 0.125 |" in (remote / "reward_model" / "README.md").read_text()


def test_out_only_writes_the_folder_and_refuses_a_full_one(run: Path, api: FakeApi,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "hub" / "run"
    push_cli.main([str(run), "--out", str(out)])
    assert (out / "agent.zip").is_file() and (out / "reward_model" / "config.json").is_file()
    assert api.calls == []
    with pytest.raises(FileExistsError, match="not empty"):
        package_run(run, out)
    with pytest.raises(ValueError, match="--repo-id"):
        push_cli.main([str(run)])
    (run / "agent.zip").unlink()
    with pytest.raises(FileNotFoundError, match=r"no agent\.zip"):
        package_run(run, tmp_path / "other")


def test_a_run_without_the_hub_folder_is_converted_when_packaged(run: Path,
                                                                  tmp_path: Path) -> None:
    shutil.rmtree(run / "reward_model")
    out = package_run(run, tmp_path / "pkg")
    b = _batch(20)
    np.testing.assert_array_equal(load_reward_model(out / "reward_model", OBS, ACT)(b),
                                  load_reward_model(run / "reward_model.pt", OBS, ACT)(b))


def test_push_to_hub_and_load_by_repo_id(api: FakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model()
    url = pretrained.push_to_hub(model, "me/mlp-reward")
    assert url.endswith("/commit/abc")
    asked: dict[str, Any] = {}

    def fake_download(repo_id: str, **kw: Any) -> str:
        asked.update(repo_id=repo_id, **kw)
        return str(api.remote / repo_id)

    monkeypatch.setattr(pretrained, "snapshot_download", fake_download)
    loaded = pretrained.load_pretrained("me/mlp-reward@v1", OBS, ACT, expected=MLPReward)
    assert asked["repo_id"] == "me/mlp-reward" and asked["revision"] == "v1"
    assert "agent.zip" not in str(asked["allow_patterns"])  # no pickles fetched
    np.testing.assert_array_equal(loaded(_batch(30)), model(_batch(30)))
    with pytest.raises(TypeError, match="not a PreferenceReward"):
        from rewardlearn.preference.reward import PreferenceReward

        pretrained.load_pretrained("me/mlp-reward", expected=PreferenceReward)


def test_a_repo_id_reads_the_hub_cache_offline(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The real snapshot_download with HF_HUB_OFFLINE=1: a cached repo loads, others say so."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hub"
    repo = cache / "models--me--cached"
    commit = "b" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    model = _model()
    pretrained.save_pretrained(model, repo / "snapshots" / commit)
    loaded = pretrained.load_pretrained("hf://me/cached", OBS, ACT, cache_dir=str(cache))
    np.testing.assert_array_equal(loaded(_batch(10)), model(_batch(10)))
    with pytest.raises(FileNotFoundError, match=r"'me/missing'.*HF_HUB_OFFLINE is set"):
        pretrained.load_pretrained("me/missing", cache_dir=str(cache))
    with pytest.raises(FileNotFoundError, match="not found"):
        load_reward_model(tmp_path / "nope.pt")


def test_reward_checkpoint_accepts_a_folder_or_repo_id(compose_cfg: Any, run: Path) -> None:
    from rewardlearn.cli.checks import _check_inputs

    for path in (str(run), str(run / "reward_model"), "me/some-reward"):
        _check_inputs(compose_cfg("reward=checkpoint", f"reward.model.path={path}"), None)
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        _check_inputs(compose_cfg("reward=checkpoint", "reward.model.path=runs/x/nope.pt"), None)


class _Evil:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.target,))


def test_convert_writes_the_hub_format_and_needs_trust_for_a_pickle(tmp_path: Path) -> None:
    model = _model()
    pt = save_reward_model(model, tmp_path / "reward_model.pt")
    out = convert_cli.main([str(pt), str(tmp_path / "converted")])
    np.testing.assert_array_equal(pretrained.load_pretrained(out)(_batch(9)), model(_batch(9)))
    # an old checkpoint whose state holds an object only a full unpickle rebuilds
    payload = torch.load(pt, weights_only=True)
    target = tmp_path / "ran"
    payload["extra"] = {"note": _Evil(target)}
    torch.save(payload, tmp_path / "old.pt")
    with pytest.raises(UnsafeCheckpointError, match=r"rewardlearn-convert .*old.pt <out> --trust"):
        convert_cli.main([str(tmp_path / "old.pt"), str(tmp_path / "o2")])
    assert not target.exists()
    # a trusted old file with a harmless non-plain value (a date): converted with --trust
    import datetime

    payload["extra"] = {"saved": datetime.date(2024, 5, 1)}
    torch.save(payload, tmp_path / "dated.pt")
    with pytest.raises(UnsafeCheckpointError, match=r"datetime\.date"):
        load_reward_model(tmp_path / "dated.pt")
    out = convert_cli.main([str(tmp_path / "dated.pt"), str(tmp_path / "o3"), "--trust"])
    assert json.loads((out / "config.json").read_text())["extra"] == {"saved": "2024-05-01"}
    np.testing.assert_array_equal(load_reward_model(out)(_batch(9)), model(_batch(9)))


# ----------------------------------------------------------------------------- what a push takes

def test_a_summary_naming_a_file_outside_the_run_does_not_package_it(run: Path,
                                                                      tmp_path: Path) -> None:
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0")
    summary = json.loads((run / "summary.json").read_text())
    (run / "videos" / "link.mp4").symlink_to(secret)
    summary["videos"] = [str(secret), "/etc/passwd", "videos/link.mp4", "../passwd"]
    (run / "summary.json").write_text(json.dumps(summary))
    out = package_run(run, tmp_path / "pkg")
    packaged = (out / "replay.mp4").read_bytes()
    assert packaged == b"mp4"  # the run's own video, found in its folder instead
    with pytest.raises(ValueError, match=r"only an \.mp4 file inside the run.s own video"):
        package_run(run, tmp_path / "pkg2", video=str(secret))
    assert not (tmp_path / "pkg2").exists()


def test_a_legacy_video_folder_outside_the_run_is_still_its_own(
        run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    legacy = tmp_path / "videos" / run.name
    legacy.mkdir(parents=True)
    (run / "videos" / "episode_0.mp4").rename(legacy / "episode_0.mp4")
    summary = json.loads((run / "summary.json").read_text())
    summary["videos"] = [f"videos/{run.name}/episode_0.mp4"]
    (run / "summary.json").write_text(json.dumps(summary))
    monkeypatch.chdir(tmp_path)
    assert (package_run(run, tmp_path / "pkg") / "replay.mp4").read_bytes() == b"mp4"


def test_out_that_is_a_file_is_one_line_and_a_refusal_leaves_nothing(run: Path,
                                                                     tmp_path: Path) -> None:
    target = tmp_path / "a_file"
    target.write_text("x")
    proc = subprocess.run([sys.executable, "-m", "rewardlearn.cli.push", str(run), "--out",
                           str(target)], capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.strip().count("\n") == 0
    assert "is a file" in proc.stderr and target.read_text() == "x"
    out = tmp_path / "pkg"
    with pytest.raises(ValueError):
        package_run(run, out, video="/etc/passwd")
    assert not out.exists() and not list(tmp_path.glob(".pkg.partial-*"))
    assert (package_run(run, out) / "agent.zip").is_file()  # the rerun is not blocked


def test_the_packaged_sidecar_names_the_renamed_video(run: Path, tmp_path: Path) -> None:
    (run / "videos" / "episode_0.json").write_text(json.dumps({"video": "episode_0.mp4",
                                                               "env_reward": [1.0]}))
    out = package_run(run, tmp_path / "pkg")
    sidecar = json.loads((out / "replay.json").read_text())
    assert sidecar["video"] == "replay.mp4" and sidecar["env_reward"] == [1.0]


# ----------------------------------------------------------------- ModelHubMixin, cards

def test_every_reward_class_is_a_model_hub_mixin() -> None:
    from huggingface_hub import ModelHubMixin

    from rewardlearn.rewards.registry import REWARD_CLASSES

    for name in REWARD_CLASSES:
        cls = REWARD_CLASSES[name]
        assert issubclass(cls, ModelHubMixin), name
        assert callable(cls.from_pretrained) and callable(cls.save_pretrained)


def test_the_mixin_saves_loads_and_pushes_the_safe_format(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.hub_mixin as hub_mixin

    model = _model()
    model.save_pretrained(tmp_path / "saved")
    assert {p.name for p in (tmp_path / "saved").iterdir()} == {"config.json",
                                                                "model.safetensors",
                                                                "README.md"}
    loaded = MLPReward.from_pretrained(tmp_path / "saved", OBS, ACT)
    np.testing.assert_array_equal(loaded(_batch(20)), model(_batch(20)))
    fake = FakeApi(tmp_path / "remote")
    monkeypatch.setattr(hub_mixin, "HfApi", lambda **kw: fake)
    model.push_to_hub("me/mixin-reward")
    remote = fake.remote / "me" / "mixin-reward"
    assert (remote / "model.safetensors").is_file()
    card = (remote / "README.md").read_text()
    assert "license: mit" in card and "library_name: rewardlearn" in card
    assert pretrained.package_version() in card


def test_a_run_card_names_the_gym_id_and_a_reused_model_keeps_its_origin(
        run: Path, tmp_path: Path) -> None:
    """``reward=checkpoint`` reuse: the card keeps the training command and says it was
    reused, instead of claiming the reuse run trained it."""
    (run / ".hydra" / "config.yaml").write_text(
        "env:\n  name: pendulum\n  id: Pendulum-v1\nagent:\n  name: sac\nreward:\n  name: mlp\n"
        "seed: 0\n")
    model = load_reward_model(run, OBS, ACT)
    assert save_run_reward_model(model, run) is not None
    card = (run / "reward_model" / "README.md").read_text()
    assert "Pendulum-v1" in card and "(`env=pendulum`)" in card
    reuse = tmp_path / "runs" / "reuse"
    (reuse / ".hydra").mkdir(parents=True)
    (reuse / ".hydra" / "config.yaml").write_text(
        "env:\n  name: pendulum\n  id: Pendulum-v1\nreward:\n  name: checkpoint\nseed: 3\n")
    (reuse / ".hydra" / "overrides.yaml").write_text("- reward=checkpoint\n")
    reused = load_reward_model(run, OBS, ACT)
    assert save_run_reward_model(reused, reuse) is not None
    card = (reuse / "reward_model" / "README.md").read_text()
    assert "python train.py env=pendulum reward=mlp seed=0" in card  # the training command
    assert "reused (not trained) by | reuse" in card
    assert "python train.py reward=checkpoint" not in card


def test_a_card_takes_only_its_own_models_metrics(run: Path, tmp_path: Path) -> None:
    from rewardlearn.publish import evaluation_metrics

    other = tmp_path / "runs" / "other"
    result = {"rewards": {"mine": {"epic": 0.1}, "theirs": {"epic": 0.9}},
              "setup": {"paths": {"mine": str(run), "theirs": str(other)}}}
    assert evaluation_metrics(result, run) == {"epic": 0.1}
    assert evaluation_metrics(result, tmp_path / "unrelated") == {}
    assert evaluation_metrics({"rewards": {"a": {"x": 1}, "b": {"x": 2}}}) == {}
