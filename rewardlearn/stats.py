"""Correlations used across the package, with one rule for the edge cases.

The rule (scipy's): a correlation of fewer than 2 paired values, or of a side that is
constant, is undefined and returns ``nan``. Callers that need a number there say so
where they call (a constant progress prediction orders nothing, so VOC counts it as 0).

Example:
    >>> import numpy as np
    >>> spearman(np.arange(5), np.arange(5) ** 3)
    1.0
    >>> bool(np.isnan(spearman(np.ones(4), np.arange(4))))
    True
"""

from __future__ import annotations

import numpy as np


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; ``nan`` when undefined (see the module's rule)."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if len(a) != len(b):
        raise ValueError(f"correlation of {len(a)} vs {len(b)} values")
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def ranks(x: np.ndarray) -> np.ndarray:
    """0-based ranks, ties sharing their mean rank (as Spearman's rho needs)."""
    x = np.asarray(x, np.float64).ravel()
    order = np.argsort(x, kind="mergesort")
    r = np.empty(len(x), np.float64)
    r[order] = np.arange(len(x), dtype=np.float64)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=r)
    return np.asarray((sums / counts)[inverse])


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho: the Pearson correlation of the average ranks; ``nan`` when undefined."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if len(a) != len(b):
        raise ValueError(f"correlation of {len(a)} vs {len(b)} values")
    return pearson(ranks(a), ranks(b))


def order_correlation(values: np.ndarray, order: np.ndarray) -> float:
    """How well ``values`` follow ``order`` (e.g. time): Spearman's rho, with 0 where it is
    undefined, since a constant prediction orders nothing. This is SARM's value-order
    correlation (VOC) when ``order`` is the time index of a successful demo."""
    rho = spearman(values, order)
    return 0.0 if np.isnan(rho) else rho
