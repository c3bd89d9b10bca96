"""B-Pref simulated teachers: each rule on hand-computed cases, statistics, configs."""

from __future__ import annotations

import doctest
import math
import warnings
from pathlib import Path

import hydra.utils
import numpy as np
import pytest
from omegaconf import OmegaConf

import rewardlearn.preference.teachers as teachers_module
from rewardlearn.preference import PRESETS, PreferenceLabels, SyntheticTeacher, Teacher

CONF_DIR = Path(__file__).resolve().parents[1] / "conf" / "teacher"
# Synthetic presets only; teacher=human is tested end to end in test_human_teacher.py,
# teacher=model in test_preference_model_teacher.py, teacher=population in test_vpl.py
YAMLS = sorted(p for p in CONF_DIR.glob("*.yaml")
               if p.stem not in ("human", "model", "population"))


def _pairs(*pairs: tuple[list[float], list[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Stack ``(segment_1, segment_2)`` reward lists into two ``(N, H)`` arrays."""
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_module_doctest() -> None:
    result = doctest.testmod(teachers_module)
    assert result.attempted > 0 and result.failed == 0


def test_oracle_picks_higher_return() -> None:
    r1, r2 = _pairs(([1.0, 2.0], [0.0, 2.5]), ([0.0, 0.0], [0.0, 0.1]), ([-1.0, 0.0], [-2.0, 0.5]))
    out = SyntheticTeacher(seed=0).label(r1, r2)
    assert out.labels.tolist() == [1.0, 0.0, 1.0]
    assert out.keep.all() and out.n_skipped == 0 and not out.equal.any()


def test_oracle_tie_is_a_fair_coin_never_equal() -> None:
    r = np.ones((4000, 5))
    out = SyntheticTeacher(seed=1).label(r, r.copy())
    assert set(np.unique(out.labels).tolist()) == {0.0, 1.0}
    assert abs(out.labels.mean() - 0.5) < 0.04
    again = SyntheticTeacher(seed=1).label(r, r.copy())
    np.testing.assert_array_equal(out.labels, again.labels)


def test_myopic_flips_a_case_where_early_steps_dominate() -> None:
    # Undiscounted 10 > 9, but with gamma = 0.9 and H = 3 the weights are
    # [0.81, 0.9, 1]: 10 * 0.81 = 8.1 < 9 * 1 = 9, so the myopic teacher flips.
    r1, r2 = _pairs(([10.0, 0.0, 0.0], [0.0, 0.0, 9.0]))
    assert SyntheticTeacher.from_preset("oracle", seed=0).label(r1, r2).labels.tolist() == [1.0]
    assert SyntheticTeacher.from_preset("myopic", seed=0).label(r1, r2).labels.tolist() == [0.0]


def test_myopic_weight_direction_and_exponent() -> None:
    teacher = SyntheticTeacher(gamma=0.9)
    np.testing.assert_allclose(teacher.myopic_weights(3), [0.81, 0.9, 1.0])
    # One step apart the earlier step weighs 0.9: 1 * 0.9 vs 0.95 and vs 0.85.
    r1, r2 = _pairs(([1.0, 0.0], [0.0, 0.95]), ([1.0, 0.0], [0.0, 0.85]))
    assert teacher.label(r1, r2).labels.tolist() == [0.0, 1.0]


def test_equal_threshold_inside_boundary_outside() -> None:
    teacher = SyntheticTeacher(eps_equal=0.125, seed=0)
    teacher.update_thresholds(true_rewards_per_step_mean=1.0, segment_length=4)
    assert teacher.thres_equal == 0.5  # 0.125 * 1 * 4
    r1, r2 = _pairs(
        ([1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.75]),  # gap 0.25 < 0.5: equal
        ([0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.25, 0.25]),  # gap 0.5, not < 0.5: second
        ([1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.25]),  # gap 0.75: first
    )
    out = teacher.label(r1, r2)
    assert out.labels.tolist() == [0.5, 0.0, 1.0]
    assert out.equal.tolist() == [True, False, False]


def test_equal_uses_undiscounted_returns_and_is_never_flipped() -> None:
    # Myopic returns differ a lot (0.5 vs 1); undiscounted ones are equal.
    teacher = SyntheticTeacher(gamma=0.5, eps_equal=0.1, eps_mistake=1.0, seed=0)
    teacher.update_thresholds(true_rewards_per_step_mean=1.0, segment_length=2)
    r1, r2 = _pairs(([1.0, 0.0], [0.0, 1.0]), ([2.0, 2.0], [0.0, 0.0]))
    assert teacher.label(r1, r2).labels.tolist() == [0.5, 0.0]


def test_equal_zero_eps_never_answers_equal() -> None:
    r = np.zeros((100, 3))
    out = SyntheticTeacher(eps_equal=0.0, seed=0).label(r, r.copy())
    assert not out.equal.any()


def test_skip_drops_exactly_the_pairs_at_or_below_threshold() -> None:
    teacher = SyntheticTeacher.from_preset("skip", seed=0)  # eps_skip = 0.1
    teacher.update_thresholds(true_rewards_per_step_mean=2.5, segment_length=4)
    assert teacher.thres_skip == pytest.approx(1.0)
    r1, r2 = _pairs(
        ([0.25, 0.25, 0.25, 0.25], [0.0, 0.0, 0.0, 0.0]),  # max 1.0 <= 1.0: skipped
        ([0.0, 0.0, 0.5, 0.0], [0.0, 0.25, 0.0, 0.0]),  # max 0.5: skipped
        ([0.5, 0.5, 0.25, 0.0], [0.0, 0.0, 0.0, 0.0]),  # max 1.25: kept, first
        ([0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]),  # max 2.0: kept, second
    )
    out = teacher.label(r1, r2)
    assert out.keep.tolist() == [False, False, True, True]
    assert out.kept_indices.tolist() == [2, 3]
    assert out.kept_labels.tolist() == [1.0, 0.0]
    assert np.isnan(out.labels[:2]).all() and out.n_skipped == 2


def test_thresholds_do_not_shrink_on_a_second_update() -> None:
    # B-Pref squares eps_skip after the first round (0.1 -> 0.01); here the
    # same return scale gives the same threshold every round.
    teacher = SyntheticTeacher(eps_skip=0.1, eps_equal=0.1, seed=0)
    for _ in range(3):
        teacher.update_thresholds(true_rewards_per_step_mean=2.0, segment_length=50)
        assert teacher.thres_skip == pytest.approx(10.0)
        assert teacher.thres_equal == pytest.approx(10.0)
    teacher.update_thresholds(true_rewards_per_step_mean=4.0, segment_length=25)
    assert teacher.thres_skip == pytest.approx(10.0)
    teacher.update_thresholds(true_rewards_per_step_mean=1.0, segment_length=50)
    assert teacher.thres_skip == pytest.approx(5.0)


def test_skip_inactive_with_nonpositive_threshold_and_warns() -> None:
    teacher = SyntheticTeacher(eps_skip=0.1, eps_equal=0.1, seed=0)
    with pytest.warns(RuntimeWarning, match="skip rule is inactive"):
        teacher.update_thresholds(true_rewards_per_step_mean=-5.0, segment_length=2)
    assert teacher.thres_equal == pytest.approx(1.0)  # uses |mean|
    r1, r2 = _pairs(([-10.0, -10.0], [-1.0, -1.0]), ([-1.0, -1.0], [-1.0, -1.5]))
    out = teacher.label(r1, r2)
    assert out.keep.all()
    assert out.labels.tolist() == [0.0, 0.5]


def test_thresholded_teacher_requires_calibration() -> None:
    r = np.ones((2, 3))
    for preset in ("skip", "equal"):
        with pytest.raises(RuntimeError, match="update_thresholds"):
            SyntheticTeacher.from_preset(preset).label(r, r)


def test_segment_length_must_match_thresholds() -> None:
    teacher = SyntheticTeacher(eps_equal=0.1)
    teacher.update_thresholds(1.0, segment_length=3)
    with pytest.raises(ValueError, match="segment_length=3"):
        teacher.label(np.ones((2, 4)), np.ones((2, 4)))


@pytest.mark.parametrize(("beta", "gap"), [(1.0, 1.0), (1.0, -2.0), (1.0, 0.0), (2.0, 0.5)])
def test_noisy_matches_bradley_terry(beta: float, gap: float) -> None:
    n = 20_000
    r1 = np.full((n, 2), gap / 2.0)
    r2 = np.zeros((n, 2))
    out = SyntheticTeacher(beta=beta, seed=3).label(r1, r2)
    p = _sigmoid(beta * gap)
    tol = 4.0 * math.sqrt(p * (1.0 - p) / n)
    assert abs(out.labels.mean() - p) < tol
    assert set(np.unique(out.labels).tolist()) <= {0.0, 1.0}


def test_noisy_is_stable_for_huge_gaps() -> None:
    r1, r2 = _pairs(([1e6], [0.0]), ([0.0], [1e6]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = SyntheticTeacher(beta=1.0, seed=0).label(r1, r2)
    assert out.labels.tolist() == [1.0, 0.0]


def test_mistake_flips_about_eps_of_labels() -> None:
    n = 20_000
    r1, r2 = np.ones((n, 3)), np.zeros((n, 3))
    out = SyntheticTeacher.from_preset("mistake", seed=5).label(r1, r2)
    flipped = float((out.labels == 0.0).mean())
    assert abs(flipped - 0.1) < 4.0 * math.sqrt(0.1 * 0.9 / n)
    assert SyntheticTeacher(eps_mistake=1.0).label(r1[:5], r2[:5]).labels.tolist() == [0.0] * 5


def test_mistake_teacher_shares_random_numbers_with_oracle() -> None:
    rng = np.random.default_rng(0)
    r1, r2 = rng.normal(size=(500, 4)), rng.normal(size=(500, 4))
    oracle = SyntheticTeacher(seed=9).label(r1, r2).labels
    mistake = SyntheticTeacher(eps_mistake=0.1, seed=9).label(r1, r2).labels
    flipped = oracle != mistake
    assert 0 < flipped.sum() < 100
    np.testing.assert_array_equal(mistake[flipped], 1.0 - oracle[flipped])


def test_seed_reproducibility() -> None:
    rng = np.random.default_rng(0)
    r1, r2 = rng.normal(size=(200, 4)), rng.normal(size=(200, 4))
    a = SyntheticTeacher(beta=1.0, seed=7).label(r1, r2).labels
    b = SyntheticTeacher(beta=1.0, seed=7).label(r1, r2).labels
    c = SyntheticTeacher(beta=1.0, seed=8).label(r1, r2).labels
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_empty_batch() -> None:
    out = SyntheticTeacher(seed=0).label(np.zeros((0, 5)), np.zeros((0, 5)))
    assert len(out) == 0 and out.keep.shape == (0,)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"beta": 0.0},
        {"beta": -1.0},
        {"beta": float("nan")},
        {"gamma": 0.0},
        {"gamma": 1.1},
        {"eps_mistake": -0.1},
        {"eps_skip": 1.5},
        {"eps_equal": float("nan")},
        {"seed": 1.5},
        {"name": ""},
    ],
)
def test_invalid_parameters_raise(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SyntheticTeacher(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("r1", "r2"),
    [
        (np.zeros((3, 4)), np.zeros((3, 5))),
        (np.zeros((3, 4)), np.zeros((2, 4))),
        (np.zeros(4), np.zeros(4)),
        (np.zeros((3, 4, 1)), np.zeros((3, 4, 1))),
        (np.zeros((3, 0)), np.zeros((3, 0))),
        (np.array([[np.nan, 0.0]]), np.zeros((1, 2))),
        (np.zeros((1, 2)), np.array([[np.inf, 0.0]])),
        (np.array([["a", "b"]]), np.zeros((1, 2))),
    ],
)
def test_invalid_rewards_raise(r1: np.ndarray, r2: np.ndarray) -> None:
    with pytest.raises(ValueError):
        SyntheticTeacher().label(r1, r2)


@pytest.mark.parametrize(("mean", "length"), [(math.nan, 50), (math.inf, 50), (1.0, 0), (1.0, 2.5)])
def test_invalid_threshold_updates_raise(mean: float, length: int) -> None:
    with pytest.raises(ValueError):
        SyntheticTeacher(eps_skip=0.1).update_thresholds(mean, length)


def test_preference_labels_validation() -> None:
    with pytest.raises(ValueError, match="shape"):
        PreferenceLabels(labels=np.zeros(3), keep=np.ones(2, dtype=bool))
    with pytest.raises(ValueError, match="bool"):
        PreferenceLabels(labels=np.zeros(2), keep=np.ones(2))
    with pytest.raises(ValueError, match=r"0\.0, 0\.5 or 1\.0"):
        PreferenceLabels(labels=np.array([0.3, 1.0]), keep=np.ones(2, dtype=bool))
    ok = PreferenceLabels(labels=np.array([np.nan, 0.5]), keep=np.array([False, True]))
    assert ok.kept_labels.tolist() == [0.5] and ok.equal.tolist() == [False, True]


def test_satisfies_teacher_protocol() -> None:
    teacher: Teacher = SyntheticTeacher()
    assert isinstance(teacher, Teacher)


def test_unknown_preset_raises() -> None:
    with pytest.raises(ValueError, match="unknown teacher preset"):
        SyntheticTeacher.from_preset("human")


def test_every_preset_has_a_yaml() -> None:
    assert sorted(p.stem for p in YAMLS) == sorted(PRESETS)


@pytest.mark.parametrize("path", YAMLS, ids=[p.stem for p in YAMLS])
def test_yaml_instantiates_to_preset(path: Path) -> None:
    cfg = OmegaConf.merge(OmegaConf.create({"seed": 0}), {"teacher": OmegaConf.load(path)})
    teacher = hydra.utils.instantiate(cfg.teacher)
    assert isinstance(teacher, SyntheticTeacher)
    assert teacher.name == path.stem and teacher.seed == 0
    for key, value in PRESETS[path.stem].items():
        assert getattr(teacher, key) == value, key
