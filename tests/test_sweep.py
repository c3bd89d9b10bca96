"""Sweeps: launcher configs, multirun through joblib and submitit's local executor, aggregation."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from rewardlearn.cli import aggregate as agg
from rewardlearn.cli import objective as obj

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
LAUNCHERS = sorted(p.stem for p in (CONF / "hydra" / "launcher").glob("*.yaml"))
TINY = ["env=pendulum", "agent=sac", "reward=env", "total_timesteps=800", "video.enabled=false",
        "eval.n_episodes=1", "progress_bar=false", "torch_threads=1"]


def test_iqm_is_rliables() -> None:
    """The IQM is rliable's (floor(n / 4) cut from each end); no hand-written copy left."""
    assert not hasattr(agg, "iqm")
    stats = agg.interval_estimates({"a": [1, 2, 3, 4], "b": [0, 1, 2, 3, 4, 5, 6, 100],
                                    "c": [5.0], "d": []}, reps=20)
    assert stats["a"]["iqm"] == 2.5 and stats["b"]["iqm"] == pytest.approx(3.5)
    assert stats["c"] == {k: 5.0 for k in stats["c"]} and "d" not in stats


def test_intervals_match_rliable() -> None:
    """IQM, mean and P(X > Y) intervals equal rliable's own calls on a fixed fixture.

    rliable 1.2 resamples with numpy's global generator, so its calls here are seeded
    the same way the aggregate seeds them.
    """
    from rliable import library as rly
    from rliable import metrics

    scores = {"env": [10.0, 20.0, 60.0, 25.0, 30.0], "mlp": [-1.0, -3.0, 4.0, 0.5]}
    score_dict = {k: np.reshape(v, (-1, 1)) for k, v in scores.items()}
    ours = agg.interval_estimates(scores, reps=300, seed=7)
    for key, func in (("iqm", metrics.aggregate_iqm), ("mean", metrics.aggregate_mean)):
        np.random.seed(7)
        point, ci = rly.get_interval_estimates(score_dict, lambda s, f=func: np.array([f(s)]),
                                               reps=300)
        for name in scores:
            assert ours[name][key] == pytest.approx(point[name][0])
            assert [ours[name][f"{key}_lo"], ours[name][f"{key}_hi"]] == pytest.approx(
                ci[name][:, 0].tolist())
    assert ours["env"]["iqm_lo"] < ours["env"]["iqm"] < ours["env"]["iqm_hi"]
    assert agg.interval_estimates(scores, reps=300, seed=7) == ours  # deterministic
    assert agg.interval_estimates(scores, reps=300, seed=8) != ours
    (pair,) = agg.probability_of_improvement(scores, reps=200, seed=3)
    np.random.seed(3)
    point, ci = rly.get_interval_estimates({"p": [score_dict["env"], score_dict["mlp"]]},
                                           metrics.probability_of_improvement, reps=200)
    assert (pair["x"], pair["y"]) == ("env", "mlp") and pair["p"] == pytest.approx(point["p"])
    assert [pair["lo"], pair["hi"]] == pytest.approx(np.ravel(ci["p"]).tolist())
    assert pair["p"] == 1.0  # every env run beats every mlp run


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_launcher_configs_compose(launcher: str) -> None:
    assert {"joblib_local", "slurm", "slurm_local"} <= set(LAUNCHERS)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"hydra/launcher={launcher}"],
                      return_hydra_config=True)
    target = cfg.hydra.launcher._target_
    assert target.startswith("hydra_plugins."), target
    if launcher == "slurm":
        assert target.endswith("SlurmLauncher") and cfg.hydra.launcher.timeout_min > 0


def _fake_run(root: Path, name: str, overrides: list[str], summary: dict[str, object],
              curve: list[tuple[int, float]]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    run = root / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (run / "summary.json").write_text(json.dumps(summary))
    writer = SummaryWriter(str(run / "tb" / "train_1"))
    for step, value in curve:
        writer.add_scalar("rollout/ep_rew_mean", value, step)
    writer.close()


def test_aggregate_groups_seeds_and_plots(tmp_path: Path) -> None:
    returns = {("env", 0): 10.0, ("env", 1): 20.0, ("env", 2): 60.0, ("mlp", 0): -1.0,
               ("mlp", 1): -3.0}
    for (reward, seed), ret in returns.items():
        _fake_run(tmp_path, f"{reward}_{seed}", [f"reward={reward}", f"seed={seed}", "n_envs=1"],
                  {"env_return_mean": ret, "success_rate": None, "seed": seed},
                  [(100, ret / 2), (200, ret)])
    result = agg.main([str(tmp_path), "reps=50"])
    assert result["keys"] == ["reward"] and result["runs"] == 5 and result["curves"] == 2
    rows = {r["reward"]: r for r in result["rows"]}
    assert rows["env"]["n"] == 3 and rows["env"]["seeds"] == "0 1 2"
    assert rows["env"]["env_return_mean_mean"] == pytest.approx(30.0)
    assert rows["env"]["env_return_mean_std"] == pytest.approx(np.std([10, 20, 60], ddof=1))
    assert rows["mlp"]["env_return_mean_iqm"] == pytest.approx(-2.0)
    assert 10.0 <= rows["env"]["env_return_mean_iqm_lo"] <= 30 <= rows["env"][
        "env_return_mean_iqm_hi"] <= 60.0
    assert "success_rate_mean" not in rows["env"]  # null in every run: left out
    for name in ("learning_curves.png", "performance_profile.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    md = (tmp_path / "aggregate.md").read_text()
    env = rows["env"]
    assert (f"| env | 3 | 0 1 2 | 30.00 [{env['env_return_mean_iqm_lo']:.2f}, "
            f"{env['env_return_mean_iqm_hi']:.2f}] | 30.00 [") in md
    assert "| reward=env | reward=mlp | 1.00 [1.00, 1.00] |" in md  # every env run beats mlp
    assert "reward,n,seeds" in (tmp_path / "aggregate.csv").read_text()
    steps, values = agg.read_curve(tmp_path / "env_0")
    assert steps.tolist() == [100, 200] and values.tolist() == [5.0, 10.0]


def test_aggregate_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        agg.main([str(tmp_path / "missing")])
    with pytest.raises(ValueError, match="no finished runs"):
        agg.main([str(tmp_path)])
    with pytest.raises(ValueError, match="unknown option 'bogus'; options: metric, out, reps"):
        agg.main([str(tmp_path), "bogus=1"])
    with pytest.raises(ValueError, match="one sweep directory at a time"):
        agg.main([str(tmp_path), str(tmp_path)])
    _fake_run(tmp_path, "r0", ["seed=0"], {"env_return_mean": 1.0, "success_rate": None}, [])
    with pytest.raises(ValueError, match=r"unknown metric 'success_rate'.*valid: env_return_mean"):
        agg.main([str(tmp_path), "metric=success_rate", "reps=10"])


def _multirun(launcher: str, sweep_dir: Path, *extra: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "train.py", "-m", f"hydra/launcher={launcher}", "seed=0,1",
           f"hydra.sweep.dir={sweep_dir}", f"video.dir={sweep_dir}/videos", *TINY, *extra]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.parametrize("launcher", [
    "joblib_local",
    pytest.param("slurm_local", marks=pytest.mark.slow),  # 17 s idle, ~40 s on a busy 2-core box
])
def test_multirun_two_seeds_then_aggregate(launcher: str, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    extra = ["hydra.launcher.n_jobs=2"] if launcher == "joblib_local" else []
    _multirun(launcher, sweep, *extra)
    summaries = sorted(sweep.glob("*/summary.json"))
    assert len(summaries) == 2
    assert {json.loads(p.read_text())["seed"] for p in summaries} == {0, 1}
    result = agg.run_aggregate(sweep, reps=50)
    assert result["runs"] == 2 and len(result["rows"]) == 1 and result["rows"][0]["n"] == 2
    assert result["curves"] == 1  # SAC logs ep_rew_mean after 4 episodes (800 steps)
    assert f"hydra/launcher={launcher}" in result["markdown"]
    if launcher == "slurm_local":
        assert (sweep / ".submitit").is_dir()


# ----------------------------------------------------------------------------- Optuna

OPTUNA_SWEEPERS = sorted(p.stem for p in (CONF / "hydra" / "sweeper").glob("*.yaml"))


def _search_space(sweeper: str) -> dict[str, Any]:
    """The sweeper config's params, parsed as Hydra parses them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"hydra/sweeper={sweeper}"],
                      return_hydra_config=True)
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper")
    assert cfg.hydra.sweeper.direction == "maximize" and cfg.hydra.sweeper.storage is None
    parser = OverridesParser.create()
    return {k: parser.parse_override(f"{k}={v}").value()
            for k, v in cfg.hydra.sweeper.params.items()}


def _inside(value: Any, space: Any) -> bool:
    if hasattr(space, "list"):  # choice(...)
        return value in space.list
    return space.start <= value <= space.end  # interval(...)


@pytest.mark.parametrize("sweeper", OPTUNA_SWEEPERS)
def test_sweeper_search_space_names_real_settings(sweeper: str) -> None:
    """Every searched key is a PreferenceConfig field and every choice a valid value."""
    from rewardlearn.preference.configuration import PreferenceConfig
    from rewardlearn.preference.query import QUERY_METHODS

    space = _search_space(sweeper)
    fields = {f.name for f in dataclasses.fields(PreferenceConfig)}
    assert {"reward.model.lr", "reward.model.ensemble_size", "reward.model.segment_length",
            "reward.model.query_selection", "reward.model.queries_per_round"} <= set(space)
    for key in space:
        assert key.startswith("reward.model.") and key.split(".")[-1] in fields, key
    assert set(space["reward.model.query_selection"].list) <= set(QUERY_METHODS)
    assert "log" in space["reward.model.lr"].tags


def test_objective_names_and_errors() -> None:
    summary = {"env_return_mean": -150.0, "success_rate": None, "seed": 0,
               "reward_training": {"heldout_acc": 0.75, "labels_used": 40}}
    assert obj.objective_value(summary, "env_return_mean") == -150.0
    assert obj.objective_value(summary, "reward_training.heldout_acc") == 0.75
    assert obj.check_objective("reward_training.heldout_acc") == "reward_training.heldout_acc"
    with pytest.raises(ValueError, match="unknown objective 'env_return'; valid: env_return_mean"):
        obj.check_objective("env_return")
    with pytest.raises(ValueError, match=r"'success_rate' is not a number .*env_return_mean"):
        obj.objective_value(summary, "success_rate")
    assert obj.is_optuna_sweep("hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper")
    assert not obj.is_optuna_sweep("hydra._internal.core_plugins.basic_sweeper.BasicSweeper")


OPTUNA_TINY = ["env=pendulum", "agent=sac", "reward=preference", "total_timesteps=300",
               "video.enabled=false", "eval.n_episodes=1", "progress_bar=false",
               "torch_threads=1", "hydra/sweeper=preference_optuna"]


def _optuna(sweep: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "train.py", "-m", *OPTUNA_TINY, f"hydra.sweep.dir={sweep}", *extra]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_optuna_sweep_three_trials(tmp_path: Path) -> None:
    """3 trials run, their parameters lie in the search space, the best value is recorded."""
    from omegaconf import OmegaConf

    sweep = tmp_path / "optuna"
    proc = _optuna(sweep, "hydra.sweeper.n_trials=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(p.parent for p in sweep.glob("*/summary.json"))
    assert len(runs) == 3
    space = _search_space("preference_optuna")
    returns = []
    for run in runs:
        cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
        for key, values in space.items():
            assert _inside(OmegaConf.select(cfg, key), values), (key, run)
        summary = json.loads((run / "summary.json").read_text())
        assert set(obj.OBJECTIVES) <= set(summary)
        returns.append(summary["env_return_mean"])
    results = OmegaConf.load(sweep / "optimization_results.yaml")
    assert results.best_value == pytest.approx(max(returns))
    assert set(results.best_params) == set(space)
    assert all(_inside(v, space[k]) for k, v in results.best_params.items())


def test_optuna_sweep_unknown_objective_fails_before_training(tmp_path: Path) -> None:
    proc = _optuna(tmp_path / "bad", "hydra.sweeper.n_trials=1", "objective=return")
    assert proc.returncode != 0
    assert "unknown objective 'return'; valid: env_return_mean" in proc.stderr
    assert not list((tmp_path / "bad").glob("*/agent.zip"))
