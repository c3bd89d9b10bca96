"""``teacher=model`` (RL-VLM-F): a scripted function and a random-weight CLIP answer queries
from frames; the disk cache means a rerun with the same seed asks nothing twice."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from rewardlearn.preference.buffer import SegmentBuffer
from rewardlearn.preference.configuration import PreferenceConfig
from rewardlearn.preference.learner import PreferenceLearner
from rewardlearn.preference.model_teacher import ModelTeacher
from rewardlearn.preference.modeling import RewardEnsemble
from rewardlearn.preference.reward import PreferenceReward

CALLS: list[tuple[int, int]] = []


def scripted(frames_1: np.ndarray, frames_2: np.ndarray, task: str) -> float | None:
    """Prefers the brighter clip; no preference on a tie (dropped)."""
    assert task == "go right" and frames_1.ndim == 4 and frames_1.shape[-1] == 3
    CALLS.append((len(frames_1), len(frames_2)))
    b1, b2 = float(frames_1.mean()), float(frames_2.mean())
    if b1 == b2:
        return None
    return 1.0 if b1 > b2 else 0.0


def _render(states: np.ndarray) -> np.ndarray:
    """A frame per state, filled with the state's first value (as uint8)."""
    v = np.clip(states[:, 0], 0, 255).astype(np.uint8)
    return np.broadcast_to(v[:, None, None, None], (len(v), 32, 32, 3)).copy()


def _buffer() -> SegmentBuffer:
    """Simulator state = [position]; episodes of 30 steps."""
    rng = np.random.default_rng(0)
    buf = SegmentBuffer(n_envs=1, feature_dim=2)
    for t in range(600):
        pos = float(rng.integers(0, 4) * 60)
        buf.add(np.array([[pos, 1.0]], np.float32), np.array([pos], np.float32),
                np.array([False]), np.array([t % 30 == 29]), states=np.array([[pos]]))
    return buf


def _run(cache: Path, rounds: int = 2) -> tuple[PreferenceLearner, ModelTeacher]:
    teacher = ModelTeacher(task="go right", function=f"{__name__}:scripted", cache_dir=str(cache),
                           frame_stride=2, render=_render)
    cfg = PreferenceConfig(segment_length=4, budget=40, queries_per_round=20, hidden_sizes=[8],
                           max_epochs=2, device="cpu", seed=0, use_action=False)
    learner = PreferenceLearner(cfg, RewardEnsemble(2, 2, [8], seed=0), teacher,
                                torch.device("cpu"))
    buf = _buffer()
    for _ in range(rounds):
        learner.run_round(buf, 20)
    return learner, teacher


def test_function_teacher_answers_and_a_rerun_asks_nothing_twice(tmp_path: Path) -> None:
    CALLS.clear()
    first, teacher = _run(tmp_path / "cache")
    assert teacher.calls == len(CALLS) == 40 and teacher.cache_hits == 0
    assert all(n == 3 for pair in CALLS for n in pair)  # stride 2 of 4 steps: 0, 2 and the last
    kept = first.labels_used
    assert 0 < kept <= 40  # ties ("no preference") are dropped
    # labels follow the script: brighter (higher position) first preferred
    for x1, x2, lab in zip(first.dataset.x1, first.dataset.x2, first.dataset.labels,
                           strict=True):
        assert lab == (1.0 if x1[[0, 2, 3], 0].mean() > x2[[0, 2, 3], 0].mean() else 0.0)
    CALLS.clear()
    again, teacher2 = _run(tmp_path / "cache")
    assert teacher2.calls == 0 and not CALLS and teacher2.cache_hits == 40
    assert again.dataset.labels == first.dataset.labels
    files = list((tmp_path / "cache").rglob("*.json"))
    assert len(files) == 40 and not list((tmp_path / "cache").rglob("*.tmp"))
    # another teacher identity (task text) does not reuse the answers
    other = ModelTeacher(task="go left", function=f"{__name__}:scripted",
                         cache_dir=str(tmp_path / "cache"), render=_render)
    assert other.identity != teacher.identity


def test_clip_teacher_compares_summed_frame_scores(tiny_dir: str, tmp_path: Path) -> None:
    buf = _buffer()
    rng = np.random.default_rng(1)
    a, b = buf.sample(6, 4, rng), buf.sample(6, 4, rng)
    teacher = ModelTeacher(task="a bright square", clip_model=tiny_dir, cache_dir=str(tmp_path),
                           render=_render)
    out = teacher.label_segments(a, b)
    assert teacher.calls == 6 and out.keep.all()
    assert a.states is not None and b.states is not None
    for k in range(6):
        s1 = teacher.clip_scores(_render(a.states[k])).sum()
        s2 = teacher.clip_scores(_render(b.states[k])).sum()
        expected = 0.5 if s1 == s2 else float(s1 > s2)
        assert out.labels[k] == expected
    rerun = ModelTeacher(task="a bright square", clip_model=tiny_dir, cache_dir=str(tmp_path),
                         render=_render)
    again = rerun.label_segments(a, b)
    assert rerun.calls == 0 and np.array_equal(again.labels, out.labels)


def test_model_teacher_config_and_refusals(compose_cfg: Callable[..., DictConfig],
                                           tmp_path: Path) -> None:
    cfg = compose_cfg("env=pendulum", "reward=preference", "teacher=model",
                      f"teacher.function={__name__}:scripted", f"teacher.cache_dir={tmp_path}")
    teacher = instantiate(cfg.teacher)
    assert isinstance(teacher, ModelTeacher) and teacher.needs_sim_states
    space = gym.spaces.Box(-1, 1, (2,))
    with pytest.raises(ValueError, match="exactly one of"):
        PreferenceReward(space, space, teacher=ModelTeacher(), device="cpu", hidden_sizes=[4])
    with pytest.raises(ImportError, match="no_such_mod"):
        PreferenceReward(space, space, teacher=ModelTeacher(function="no_such_mod:f"),
                         device="cpu", hidden_sizes=[4])
    bad = ModelTeacher(function=f"{__name__}:_render")
    with pytest.raises(ValueError, match="module:function"):
        ModelTeacher(function="nocolon").validate()
    assert bad.identity.startswith("function:")
