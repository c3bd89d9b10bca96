"""The one rank-correlation helper and its edge-case rule."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

from rewardlearn.stats import order_correlation, pearson, spearman


def test_spearman_matches_scipy_with_ties() -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 5, 40).astype(float)
    y = np.arange(40.0)
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic)
    a, b = np.array([1, 2, 2, 3, 4.0]), np.array([1, 3, 2, 4, 5.0])
    ra = np.array([1, 2.5, 2.5, 4, 5])  # average ranks of tied values
    assert spearman(a, b) == pytest.approx(np.corrcoef(ra, b)[0, 1])
    assert spearman(np.arange(10), -np.arange(10) ** 3) == pytest.approx(-1.0)


def test_pearson_matches_scipy() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=30), rng.normal(size=30)
    assert pearson(x, y) == pytest.approx(pearsonr(x, y).statistic)


@pytest.mark.parametrize("fn", [pearson, spearman])
def test_undefined_correlations_are_nan(fn) -> None:  # type: ignore[no-untyped-def]
    assert np.isnan(fn(np.ones(5), np.arange(5.0)))
    assert np.isnan(fn(np.array([1.0]), np.array([2.0])))
    with pytest.raises(ValueError, match="3 vs 4"):
        fn(np.zeros(3), np.zeros(4))


def test_order_correlation_counts_a_constant_prediction_as_zero() -> None:
    assert order_correlation(np.ones(5), np.arange(5)) == 0.0
    assert order_correlation(np.arange(5.0), np.arange(5)) == pytest.approx(1.0)
