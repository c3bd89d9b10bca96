"""Every Meta-World v3 task: an env config, scripted-expert demos and stages from the demos."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("metaworld", reason="Meta-World is the [metaworld] extra")

from rewardlearn_envs.metaworld_expert import (
    LADDER,
    derive_ladder,
    level_of,
    metaworld_tasks,
    task_stages,
)

from rewardlearn.cli.collect import CollectConfig, collect
from rewardlearn.demos import load_demos, open_dataset
from rewardlearn.env_factory import env_config, make_env

ROOT = Path(__file__).resolve().parents[1]
TASKS = [
    "assembly-v3", "basketball-v3", "bin-picking-v3", "box-close-v3", "button-press-topdown-v3",
    "button-press-topdown-wall-v3", "button-press-v3", "button-press-wall-v3",
    "coffee-button-v3", "coffee-pull-v3", "coffee-push-v3", "dial-turn-v3", "disassemble-v3",
    "door-close-v3", "door-lock-v3", "door-open-v3", "door-unlock-v3", "hand-insert-v3",
    "drawer-close-v3", "drawer-open-v3", "faucet-open-v3", "faucet-close-v3", "hammer-v3",
    "handle-press-side-v3", "handle-press-v3", "handle-pull-side-v3", "handle-pull-v3",
    "lever-pull-v3", "pick-place-wall-v3", "pick-out-of-hole-v3", "pick-place-v3",
    "plate-slide-v3", "plate-slide-side-v3", "plate-slide-back-v3", "plate-slide-back-side-v3",
    "peg-insert-side-v3", "peg-unplug-side-v3", "soccer-v3", "stick-push-v3", "stick-pull-v3",
    "push-v3", "push-wall-v3", "push-back-v3", "reach-v3", "reach-wall-v3", "shelf-place-v3",
    "sweep-into-v3", "sweep-v3", "window-open-v3", "window-close-v3"]


def test_the_task_list_is_meta_worlds() -> None:
    assert sorted(TASKS) == sorted(metaworld_tasks()) and len(TASKS) == 50


@pytest.mark.parametrize("task", TASKS)
def test_every_task_collects_seeded_expert_demos_with_stages(task: str, tmp_path: Path) -> None:
    out = tmp_path / "demos"
    res = collect(CollectConfig(env="metaworld", env_overrides=[f"task={task}"], n_episodes=2,
                                only_success=False, out=str(out)), verbose=False)
    assert res.kept == 2
    ladder = task_stages(task)
    episodes = load_demos(out)
    assert episodes[0].subtask_names == ladder.names
    for ep in episodes:
        assert (np.diff(ep.stages) >= 0).all()  # stages never go back
        assert ep.stages.min() >= 0 and ep.stages.max() < len(ladder.names)
    again = collect(CollectConfig(env="metaworld", env_overrides=[f"task={task}"],
                                  n_episodes=2, only_success=False,
                                  out=str(tmp_path / "again")), verbose=False)
    assert again.successes == res.successes  # seeded: the same episodes


def test_stages_come_from_the_demos_by_one_rule() -> None:
    """A constant signal is unused; a level no demo state reaches is dropped."""
    def ep(*rows: tuple[float, float]) -> list[dict[str, float]]:
        return [{"near_object": n, "grasp_success": g, "success": 0.0} for n, g in rows]

    grasp_always = derive_ladder([ep((0, 1), (1, 1), (1, 1))])  # grasp_success constant
    assert grasp_always.signals == ("near_object",) and grasp_always.names == ("reach",
                                                                                "near_object")
    starts_near = derive_ladder([ep((1, 0), (1, 1)), ep((1, 0), (1, 0), (1, 1))])
    assert starts_near.names == ("near_object", "grasped") and starts_near.has_grasp
    assert starts_near.signals == ("grasp_success",) and starts_near.always == ("near_object",)
    assert starts_near.stage(0) == 0 and starts_near.stage(2) == 1
    full = derive_ladder([ep((0, 0), (1, 0), (1, 1))])
    assert full.names == LADDER and full.stage(1) == 1
    assert level_of({"near_object": 0.0, "grasp_success": 1.0}, full.signals) == 0


def test_a_rung_few_demos_pass_through_is_not_a_stage() -> None:
    """push-v3's expert registers a grasp in a few episodes by chance: a rung is kept only
    when at least half the episodes reach it, and its states count as the stage below."""
    def ep(grasps: bool) -> list[dict[str, float]]:
        return [{"near_object": n, "grasp_success": g, "success": 0.0}
                for n, g in ((0, 0), (1, 0), (1, float(grasps)))]

    rare = derive_ladder([ep(True), *[ep(False) for _ in range(4)]])
    assert rare.names == ("reach", "near_object") and not rare.has_grasp
    assert rare.signals == ("near_object", "grasp_success") and rare.stage(2) == 1
    most = derive_ladder([ep(True), ep(True), ep(True), ep(False), ep(False)])
    assert most.names == LADDER and most.stage(2) == 2
    assert derive_ladder([ep(True), ep(False)], min_share=0.5).names == LADDER
    assert derive_ladder([ep(True), ep(False)], min_share=0.6).names == LADDER[:2]
    with pytest.raises(ValueError, match=r"min_share must be in \(0, 1\], got 0.0"):
        derive_ladder([ep(True)], min_share=0.0)


def test_the_packaged_ladders_of_some_tasks() -> None:
    assert task_stages("pick-place-v3").names == ("reach", "near_object", "grasped")
    assert task_stages("reach-v3").names == ("reach",)
    assert task_stages("coffee-push-v3").names == ("reach", "near_object")
    assert task_stages("push-v3").names == ("reach", "near_object")  # 4 of 20 grasp


def test_env_metaworld_takes_any_task_and_refuses_an_unknown_one() -> None:
    env = make_env(env_config("metaworld", ["task=drawer-open-v3"]), seed=0)
    _, info = env.reset(seed=0)
    assert info["num_stages"] == len(task_stages("drawer-open-v3").names)
    with pytest.raises(ValueError, match=r"unknown Meta-World task 'drawer-opn-v3' \(did you "
                                         r"mean drawer-open-v3\?\); valid tasks: assembly-v3"):
        make_env(env_config("metaworld", ["task=drawer-opn-v3"]))


def test_a_seeded_reset_gives_one_layout_whatever_ran_before() -> None:
    """Meta-World's MT1 ignores ``reset(seed=...)``: the wrapper makes the seed choose the
    layout, whatever the env's own construction seed and whatever resets came before, so
    seeded held-out evaluation episodes are the same for every condition compared."""
    cfg = env_config("metaworld", ["task=pick-place-v3"])
    a, b = make_env(cfg), make_env(cfg, seed=7)
    first, _ = a.reset(seed=10003)
    b.reset(seed=1)
    b.reset()
    other, info = b.reset(seed=10003)
    np.testing.assert_array_equal(first, other)
    np.testing.assert_array_equal(a.reset(seed=10003)[0], first)  # again, after a reset
    assert np.abs(first[-3:]).max() > 0  # the goal is observed (the task's settings hold)
    assert info["stage"] == 0 and not info["is_success"]
    assert np.abs(a.reset(seed=10004)[0] - first).max() > 1e-3  # another seed, another layout
    a.reset(seed=5)
    after_a = [a.reset()[0] for _ in range(2)]
    a.reset(seed=5)
    np.testing.assert_array_equal([a.reset()[0] for _ in range(2)], after_a)  # then unseeded


def test_collect_takes_the_train_py_form(tmp_path: Path) -> None:
    """``rewardlearn-collect env=metaworld env.task=drawer-open-v3 n_episodes=...``."""
    out = tmp_path / "drawer"
    proc = subprocess.run([sys.executable, "-m", "rewardlearn.cli.collect", "env=metaworld",
                           "env.task=drawer-open-v3", "n_episodes=2", f"out={out}"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "kept 2/2" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "rewardlearn.cli.collect", "env=metaworld",
                          "env.task=drawer-opn-v3", f"out={tmp_path / 'bad'}"],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 1 and "did you mean drawer-open-v3" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_is_success_counts_success_at_any_step() -> None:
    """Meta-World's evaluation counts an episode that succeeded at some step."""
    from rewardlearn_envs import expert_for

    env = make_env(env_config("metaworld", ["task=reach-v3"]), seed=3)
    obs, info = env.reset(seed=3)
    expert = expert_for(env, seed=3)
    reached = False
    for _ in range(150):
        obs, _, _, _, info = env.step(expert(obs))
        reached = reached or info["success"] > 0.5
        if reached:
            break
    assert reached and info["is_success"]
    for _ in range(5):  # moving away keeps the episode's success
        obs, _, _, _, info = env.step(np.array([1.0, 1.0, 1.0, 0.0], np.float32))
    assert info["is_success"]


@pytest.mark.parametrize("task", ["push-v3", "lever-pull-v3", "window-open-v3"])
def test_relative_features_index_the_hand_the_object_and_the_goal(task: str) -> None:
    """``conf/env/metaworld.yaml``'s ``relative_features``: object minus hand and goal minus
    object, read from where every v3 task puts them (the hand is ``tcp_center``'s body)."""
    from rewardlearn.encoders import build_encoder

    cfg = env_config("metaworld", [f"task={task}"])
    enc = build_encoder({"target": "relative", "kwargs": dict(cfg.relative_features)})
    env = make_env(cfg, seed=1)
    obs, _ = env.reset(seed=1)
    raw = env.unwrapped
    feats = enc.embed(obs[None])[0]  # type: ignore[union-attr]
    obj = np.asarray(raw._get_pos_objects())[:3]
    np.testing.assert_allclose(obs[0:3], raw.data.mocap_pos[0], atol=0.02)
    np.testing.assert_allclose(feats[:3], obj - obs[0:3], atol=1e-5)
    np.testing.assert_allclose(feats[3:6], np.asarray(raw._target_pos) - obj, atol=1e-5)
    env.close()


def test_collect_after_success_records_the_held_outcome(tmp_path: Path) -> None:
    """``after_success=N``: the demo goes on N steps past its first success and ends
    truncated there; without it the demo ends, terminated, at the first success."""
    kw = dict(env="metaworld", env_overrides=["task=sweep-into-v3"], n_episodes=2)
    at = load_demos(collect(CollectConfig(**kw, out=str(tmp_path / "at")), verbose=False).path)
    past = collect(CollectConfig(**kw, after_success=10, out=str(tmp_path / "past")),
                   verbose=False)
    assert past.successes == past.kept == 2
    for a, b in zip(at, load_demos(past.path), strict=True):
        first = int(np.argmax(b.infos["success"] > 0.5))  # observation index of first success
        assert len(a) == first and a.terminations[-1]
        assert len(b) == first + 10 and b.truncations[-1] and not b.terminations.any()
        np.testing.assert_array_equal(b.observations[: len(a) + 1], a.observations)
    assert open_dataset(past.path).storage.metadata["after_success"] == 10
    with pytest.raises(ValueError, match="after_success must be >= 0"):
        CollectConfig(after_success=-1)
