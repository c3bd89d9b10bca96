"""End-to-end runs of train.py's pipeline: a short smoke run per env config."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from rewardlearn.cli.train import run
from rewardlearn.env_factory import available_envs, make_env
from rewardlearn.recording import read_sidecar
from rewardlearn.rewards import MLPReward, SpaceMismatchError, save_reward_model
from rewardlearn.runs import RunDirError

SUMMARY_KEYS = {"env_return_mean", "env_return_std", "learned_return_mean", "success_rate",
                "total_timesteps", "wall_s", "train_wall_s", "train_cpu_s", "videos"}


def _short(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "total_timesteps=128", "eval.n_episodes=1", "video.n_episodes=1", "video.width=64",
        "video.height=64", "progress_bar=false", f"video.dir={tmp_path / 'videos'}",
        "agent=ppo", "+agent.kwargs.n_steps=64", "+agent.kwargs.batch_size=32",
        "+agent.kwargs.n_epochs=1", *extra,
    ]


@pytest.mark.parametrize("env", available_envs())
def test_smoke_run_per_env(compose_cfg: Callable[..., DictConfig], tmp_path: Path,
                           env: str) -> None:
    if env.startswith("metaworld"):
        pytest.importorskip("metaworld", reason="Meta-World is the [metaworld] extra")
    cfg = compose_cfg(*_short(tmp_path, f"env={env}", "reward=mlp",
                              "reward.model.hidden_sizes=[32,32]"))
    summary = run(cfg, tmp_path / "run")
    assert set(summary) >= SUMMARY_KEYS
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == summary
    assert (tmp_path / "run" / "agent.zip").is_file()
    assert (tmp_path / "run" / "reward_model.pt").is_file()
    assert summary["learned_return_mean"] is not None
    assert summary["train_cpu_s"] > 0 and 0 < summary["train_wall_s"] <= summary["wall_s"]
    assert (summary["success_rate"] is None) == (cfg.env.success_key is None)
    [video] = summary["videos"]
    assert Path(video).stat().st_size > 0
    side = read_sidecar(Path(video).with_suffix(".json"))
    assert len(side["env_reward"]) == len(side["learned_reward"]) == side["length"]
    assert side["terminated"] != side["truncated"]
    leftovers = [p for d in (tmp_path / "run", Path(video).parent) for p in d.iterdir()
                 if p.name.endswith(".tmp")]
    assert leftovers == []


def test_env_reward_run_with_sac(compose_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    cfg = compose_cfg("env=pendulum", "agent=sac", "reward=env", "total_timesteps=300",
                      "+agent.kwargs.learning_starts=100", "eval.n_episodes=2",
                      "video.enabled=false", "progress_bar=false")
    summary = run(cfg, tmp_path / "run")
    assert summary["learned_return_mean"] is None and summary["videos"] == []
    assert summary["success_rate"] is None and summary["total_timesteps"] == 300
    assert (tmp_path / "run" / "tb").is_dir()


def test_checkpoint_for_other_env_is_refused(compose_cfg: Callable[..., DictConfig],
                                             tmp_path: Path) -> None:
    pend = make_env("pendulum")
    path = save_reward_model(MLPReward(pend.observation_space, pend.action_space,
                                       hidden_sizes=(4,)), tmp_path / "r.pt")
    cfg = compose_cfg(*_short(tmp_path, "env=hopper", "reward=checkpoint",
                              f"reward.model.path={path}"))
    with pytest.raises(SpaceMismatchError, match=r"observation space.*\(3,\).*\(11,\)"):
        run(cfg, tmp_path / "run")


def test_crash_saves_agent_and_reward_model(compose_cfg: Callable[..., DictConfig],
                                            tmp_path: Path) -> None:
    cfg = compose_cfg(*_short(tmp_path, "env=pendulum", "reward=mlp",
                              "reward.model.hidden_sizes=[4]"))
    import rewardlearn.rewards.mlp as mlp

    calls = {"n": 0}
    original = mlp.MLPReward.compute

    def flaky(self: mlp.MLPReward, batch):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] > 50:
            raise RuntimeError("boom")
        return original(self, batch)

    mlp.MLPReward.compute = flaky  # type: ignore[method-assign]
    try:
        with pytest.raises(RuntimeError, match="boom"):
            run(cfg, tmp_path / "run")
    finally:
        mlp.MLPReward.compute = original  # type: ignore[method-assign]
    assert (tmp_path / "run" / "agent_interrupted.zip").is_file()
    assert (tmp_path / "run" / "reward_model_interrupted.pt").is_file()


def test_finished_run_is_not_overwritten(compose_cfg: Callable[..., DictConfig],
                                         tmp_path: Path) -> None:
    cfg = compose_cfg("env=pendulum", "agent=sac", "reward=env", "total_timesteps=200",
                      "+agent.kwargs.learning_starts=100", "eval.n_episodes=1",
                      "video.enabled=false", "progress_bar=false")
    summary = run(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "run.claim").exists()  # removed when the run ended
    before = (tmp_path / "run" / "summary.json").read_text()
    with pytest.raises(RunDirError, match=r"already holds another run's outputs \(agent\.zip, "
                                          r"summary\.json\)"):
        run(compose_cfg("env=pendulum", "agent=sac", "reward=env", "seed=1",
                        "video.enabled=false"), tmp_path / "run")
    assert (tmp_path / "run" / "summary.json").read_text() == before
    assert json.loads(before) == summary and summary["train_steps_per_s"] > 0


def test_summary_evaluates_the_mean_action_and_samples(
        compose_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    """``summary.json`` keeps both evaluations (docs/agents.md): the Gaussian's mean and
    sampled actions, each over ``eval.n_episodes`` (default >= 10); the top level repeats
    the one ``eval.deterministic`` names."""
    assert int(compose_cfg().eval.n_episodes) >= 10
    cfg = compose_cfg("env=pendulum", "agent=ppo", "reward=env", "total_timesteps=128",
                      "+agent.kwargs.n_steps=64", "+agent.kwargs.batch_size=32",
                      "eval.n_episodes=2", "eval.deterministic=false", "video.enabled=false",
                      "progress_bar=false", "seed=3")
    summary = run(cfg, tmp_path / "run")
    det, sampled = summary["deterministic"], summary["sampled"]
    assert det["eval_episodes"] == sampled["eval_episodes"] == 2
    assert summary["eval_policy"] == "sampled actions"
    assert summary["env_return_mean"] == sampled["env_return_mean"]
    assert det["env_return_mean"] != sampled["env_return_mean"]  # two different evaluations
