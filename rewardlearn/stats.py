"""Correlations used across the package, with one rule for the edge cases.

The rule (scipy's): a correlation of fewer than 2 paired values, or of a side that is
constant, is undefined and returns ``nan``. Callers that need a number there say so
where they call (a constant progress prediction orders nothing, so VOC counts it as 0).

Example:
    >>> import numpy as np
    >>> round(spearman(np.arange(5), np.arange(5) ** 3), 9)
    1.0
    >>> bool(np.isnan(spearman(np.ones(4), np.arange(4))))
    True
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Flat float arrays, or ``None`` when the correlation is undefined (the module's rule)."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if len(a) != len(b):
        raise ValueError(f"correlation of {len(a)} vs {len(b)} values")
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return a, b


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation (``scipy.stats.pearsonr``); ``nan`` when undefined."""
    pair = _pair(a, b)
    return float("nan") if pair is None else float(stats.pearsonr(*pair).statistic)


def ranks(x: np.ndarray) -> np.ndarray:
    """0-based ranks, ties sharing their mean rank (``scipy.stats.rankdata`` - 1)."""
    return np.asarray(stats.rankdata(np.asarray(x, np.float64).ravel()) - 1.0)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho (``scipy.stats.spearmanr``: the Pearson correlation of the average
    ranks); ``nan`` when undefined."""
    pair = _pair(a, b)
    return float("nan") if pair is None else float(stats.spearmanr(*pair).statistic)


def order_correlation(values: np.ndarray, order: np.ndarray) -> float:
    """How well ``values`` follow ``order`` (e.g. time): Spearman's rho, with 0 where it is
    undefined, since a constant prediction orders nothing. This is SARM's value-order
    correlation (VOC) when ``order`` is the time index of a successful demo."""
    rho = spearman(values, order)
    return 0.0 if np.isnan(rho) else rho
