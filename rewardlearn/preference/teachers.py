"""B-Pref simulated teachers (Lee et al. 2021) that label segment pairs from true rewards.

A teacher receives the env's true per-step rewards of the two segments of each
of ``N`` pairs, ``(N, H)`` arrays, and answers with :class:`PreferenceLabels`:
``1.0`` when the first segment is preferred, ``0.0`` for the second, ``0.5``
for "equally preferable", and a ``keep`` mask that is ``False`` where the
teacher skipped the pair. The rules run in B-Pref's order (Lee et al., NeurIPS 2021 benchmarks):

1. skip: drop the pair if ``max(R1, R2) <= thres_skip`` (undiscounted returns);
2. equal: ``|R1 - R2| < thres_equal`` (undiscounted) gives ``0.5``;
3. myopic: step ``t`` of an ``H``-step segment weighs ``gamma ** (H - 1 - t)``;
4. rationality: ``beta = inf`` labels deterministically, a finite ``beta > 0``
   samples "first preferred" with probability ``sigmoid(beta * (R1 - R2))``;
5. mistake: flip the (non-equal) label with probability ``eps_mistake``.

Two bugs of the B-Pref code are not reproduced: ``eps_skip`` is applied once
per threshold update (B-Pref squares it after the first round), and thresholds
are computed from the segment length actually labelled.

Example:
    >>> import numpy as np
    >>> from rewardlearn.preference.teachers import SyntheticTeacher
    >>> oracle = SyntheticTeacher.from_preset("oracle", seed=0)
    >>> r1 = np.array([[1.0, 1.0], [0.0, 0.0]])
    >>> r2 = np.array([[0.0, 0.5], [1.0, 0.0]])
    >>> oracle.label(r1, r2).labels.tolist()
    [1.0, 0.0]
    >>> equal = SyntheticTeacher.from_preset("equal", seed=0)
    >>> equal.update_thresholds(true_rewards_per_step_mean=7.5, segment_length=2)
    >>> equal.thres_equal  # 0.1 * 7.5 * 2; returns 2 vs 0.5 and 0 vs 1
    1.5
    >>> equal.label(r1, r2).labels.tolist()
    [1.0, 0.5]
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

import numpy as np

_ORACLE: Final[dict[str, float]] = {
    "beta": math.inf,
    "gamma": 1.0,
    "eps_mistake": 0.0,
    "eps_skip": 0.0,
    "eps_equal": 0.0,
}

#: B-Pref's six teacher presets, each the oracle with one setting changed; keys
#: are :class:`SyntheticTeacher` arguments.
PRESETS: Final[dict[str, dict[str, float]]] = {
    "oracle": dict(_ORACLE),
    "noisy": {**_ORACLE, "beta": 1.0},
    "myopic": {**_ORACLE, "gamma": 0.9},
    "mistake": {**_ORACLE, "eps_mistake": 0.1},
    "skip": {**_ORACLE, "eps_skip": 0.1},
    "equal": {**_ORACLE, "eps_equal": 0.1},
}

_VALID_LABELS: Final = (0.0, 0.5, 1.0)


@dataclass(frozen=True)
class PreferenceLabels:
    """A teacher's answers for ``N`` segment pairs.

    ``labels[i]`` is ``1.0`` (first segment preferred), ``0.0`` (second) or
    ``0.5`` (equally preferable, the soft Bradley-Terry target); ``keep[i]`` is
    ``False`` where the teacher skipped pair ``i``. Labels of skipped pairs
    carry no information; :class:`SyntheticTeacher` sets them to NaN so a
    consumer that forgets the mask gets a NaN loss rather than silent bias.
    """

    labels: np.ndarray
    keep: np.ndarray

    def __post_init__(self) -> None:
        """Check shapes, dtypes and that every kept label is 0, 0.5 or 1."""
        labels = np.asarray(self.labels, dtype=np.float64)
        keep = np.asarray(self.keep)
        if labels.ndim != 1 or keep.shape != labels.shape:
            raise ValueError(
                f"labels and keep must both have shape (N,); got {labels.shape} and {keep.shape}"
            )
        if keep.dtype != np.bool_:
            raise ValueError(f"keep must be a bool array, got dtype {keep.dtype}")
        kept = labels[keep]
        if not np.isin(kept, _VALID_LABELS).all():
            bad = np.unique(kept[~np.isin(kept, _VALID_LABELS)])
            raise ValueError(f"kept labels must be 0.0, 0.5 or 1.0; got {bad.tolist()}")
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "keep", keep)

    def __len__(self) -> int:
        """Number of pairs asked, skipped ones included."""
        return int(self.labels.shape[0])

    @property
    def kept_indices(self) -> np.ndarray:
        """Indices (into the queried pairs) of the pairs that were answered."""
        return np.flatnonzero(self.keep)

    @property
    def kept_labels(self) -> np.ndarray:
        """Labels of the answered pairs, aligned with :attr:`kept_indices`."""
        return self.labels[self.keep]

    @property
    def equal(self) -> np.ndarray:
        """``(N,)`` bool: pairs answered as "equally preferable"."""
        return self.keep & (self.labels == 0.5)

    @property
    def n_skipped(self) -> int:
        """Number of pairs the teacher declined to answer."""
        return int((~self.keep).sum())


@runtime_checkable
class Teacher(Protocol):
    """Anything that answers segment-pair queries: a simulated or, later, a human teacher.

    Deliberately minimal, a ``name`` for logs and one ``label`` call, because
    that call is all the preference loop needs and both kinds can satisfy it:
    the loop always holds the true per-step rewards of the segments it samples
    (the env reward stored with each transition), so passing them costs
    nothing. A simulated teacher labels from them; a human teacher uses only
    their shape ``(N, H)`` and looks up the clips of the current query, which
    it is handed when built or before the call. The output contract,
    :class:`PreferenceLabels` with its ``equal`` and ``skip`` answers, is what
    keeps the two interchangeable. Threshold calibration
    (:meth:`SyntheticTeacher.update_thresholds`) is left out: it only makes
    sense for a simulated teacher, so the loop calls it when the teacher is one.
    """

    name: str

    def label(self, rewards_1: np.ndarray, rewards_2: np.ndarray) -> PreferenceLabels:
        """Answer ``N`` queries given the two segments' ``(N, H)`` true per-step rewards."""
        ...


class SyntheticTeacher:
    """A B-Pref simulated teacher (see the module docstring for the five rules).

    Args:
        beta: rationality. ``inf`` labels deterministically by the (myopic)
            return; a finite ``beta > 0`` samples "first preferred" with
            probability ``sigmoid(beta * (R1 - R2))``.
        gamma: myopia in ``(0, 1]``; step ``t`` of ``H`` weighs
            ``gamma ** (H - 1 - t)`` in the comparison (1 = not myopic).
        eps_mistake: probability in ``[0, 1]`` of flipping a non-equal label.
        eps_skip: skip threshold as a fraction of the typical segment return.
        eps_equal: equal threshold as a fraction of the typical segment return.
        seed: seed of the teacher's own ``np.random.Generator``.
        name: preset name, for logs and configs.

    Ties: with ``beta = inf`` a pair whose comparison returns are exactly equal
    (and not caught by the equal rule) gets a fair coin from the teacher's
    generator. That is the ``beta -> inf`` limit of the Bradley-Terry teacher
    at a zero gap (``sigmoid(0) = 1/2``); "first wins", B-Pref's choice,
    biases the reward model towards whichever segment is listed first, and
    ``0.5`` would contradict "``eps_equal = 0`` never answers equal".

    Randomness: every :meth:`label` call draws exactly ``2 N`` uniforms (one
    for rationality or ties, one for mistakes) whatever the settings, so two
    teachers with the same seed see common random numbers: a ``mistake``
    teacher differs from the ``oracle`` only on the pairs it flipped.
    """

    def __init__(
        self,
        beta: float = float("inf"),
        gamma: float = 1.0,
        eps_mistake: float = 0.0,
        eps_skip: float = 0.0,
        eps_equal: float = 0.0,
        seed: int | None = None,
        name: str = "oracle",
    ) -> None:
        beta = float(beta)
        if math.isnan(beta) or beta <= 0.0:
            raise ValueError(f"beta must be > 0 (inf for a deterministic teacher), got {beta}")
        gamma = float(gamma)
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma must lie in (0, 1], got {gamma}")
        eps = {"eps_mistake": eps_mistake, "eps_skip": eps_skip, "eps_equal": eps_equal}
        for key, value in eps.items():
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{key} must lie in [0, 1], got {value}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)):
            raise ValueError(f"seed must be an int or None, got {seed!r}")
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        self.beta = beta
        self.gamma = gamma
        self.eps_mistake = float(eps_mistake)
        self.eps_skip = float(eps_skip)
        self.eps_equal = float(eps_equal)
        self.seed = seed
        self.name = name
        self._rng = np.random.default_rng(seed)
        self._thres_skip = 0.0
        self._thres_equal = 0.0
        self._segment_length: int | None = None

    @classmethod
    def from_preset(cls, preset: str, seed: int | None = None) -> SyntheticTeacher:
        """Build one of B-Pref's presets (:data:`PRESETS`) without Hydra."""
        if preset not in PRESETS:
            raise ValueError(f"unknown teacher preset {preset!r}; choose from {sorted(PRESETS)}")
        return cls(**PRESETS[preset], seed=seed, name=preset)

    def __repr__(self) -> str:
        return (
            f"SyntheticTeacher(name={self.name!r}, beta={self.beta}, gamma={self.gamma}, "
            f"eps_mistake={self.eps_mistake}, eps_skip={self.eps_skip}, "
            f"eps_equal={self.eps_equal}, seed={self.seed})"
        )

    @property
    def needs_thresholds(self) -> bool:
        """Whether :meth:`update_thresholds` must be called before :meth:`label`."""
        return self.eps_skip > 0.0 or self.eps_equal > 0.0

    @property
    def thres_skip(self) -> float:
        """Current skip threshold on the undiscounted segment return."""
        return self._thres_skip

    @property
    def thres_equal(self) -> float:
        """Current equal threshold on the undiscounted return gap."""
        return self._thres_equal

    def update_thresholds(self, true_rewards_per_step_mean: float, segment_length: int) -> None:
        """Rescale the skip and equal thresholds to the recent true return of a segment.

        ``thres_skip = eps_skip * m * H`` and ``thres_equal = eps_equal * |m| * H``
        with ``m`` the recent mean true reward per step (e.g. over the agent's
        latest training episodes) and ``H`` the segment length. Calling it again
        replaces the thresholds; ``eps`` is never compounded.

        The skip rule ("both segments are poor") assumes returns that grow from
        zero, as in DMControl and Meta-World: like B-Pref, it is inactive while
        ``thres_skip <= 0`` (a warning says so), because with negative rewards
        ``max(R1, R2) <= eps * m * H`` would drop almost every pair. The equal
        rule only needs the return's scale, hence ``|m|``, which equals B-Pref
        for non-negative rewards and keeps the rule working for negative ones.
        """
        m = float(true_rewards_per_step_mean)
        if not math.isfinite(m):
            raise ValueError(f"true_rewards_per_step_mean must be finite, got {m}")
        if isinstance(segment_length, bool) or not isinstance(segment_length, int | np.integer):
            raise ValueError(f"segment_length must be an int, got {segment_length!r}")
        if segment_length < 1:
            raise ValueError(f"segment_length must be >= 1, got {segment_length}")
        horizon = int(segment_length)
        self._thres_skip = self.eps_skip * m * horizon
        self._thres_equal = self.eps_equal * abs(m) * horizon
        self._segment_length = horizon
        if self.eps_skip > 0.0 and self._thres_skip <= 0.0:
            warnings.warn(
                f"teacher {self.name!r}: skip threshold {self._thres_skip} <= 0 "
                f"(mean true reward per step {m}); the skip rule is inactive until it is positive",
                RuntimeWarning,
                stacklevel=2,
            )

    def myopic_weights(self, segment_length: int) -> np.ndarray:
        """``(H,)`` weights ``gamma ** (H - 1 - t)``: the last step weighs 1."""
        return self.gamma ** np.arange(segment_length - 1, -1, -1, dtype=np.float64)

    def label(self, rewards_1: np.ndarray, rewards_2: np.ndarray) -> PreferenceLabels:
        """Label ``N`` pairs given each segment's ``(N, H)`` true per-step rewards."""
        r1 = _as_reward_matrix(rewards_1, "rewards_1")
        r2 = _as_reward_matrix(rewards_2, "rewards_2")
        if r1.shape != r2.shape:
            raise ValueError(f"rewards_1 and rewards_2 differ in shape: {r1.shape} vs {r2.shape}")
        n, horizon = r1.shape
        if self.needs_thresholds:
            if self._segment_length is None:
                raise RuntimeError(
                    f"teacher {self.name!r} uses skip/equal thresholds: call "
                    "update_thresholds(true_rewards_per_step_mean, segment_length) before label()"
                )
            if horizon != self._segment_length:
                raise ValueError(
                    f"segments have {horizon} steps but the thresholds were set for "
                    f"segment_length={self._segment_length}; call update_thresholds again"
                )

        u_rational = self._rng.random(n)
        u_mistake = self._rng.random(n)

        ret_1, ret_2 = r1.sum(axis=1), r2.sum(axis=1)
        keep = np.ones(n, dtype=bool)
        if self.eps_skip > 0.0 and self._thres_skip > 0.0:
            keep = np.maximum(ret_1, ret_2) > self._thres_skip
        equal = np.abs(ret_1 - ret_2) < self._thres_equal

        weights = self.myopic_weights(horizon)
        gap = r1 @ weights - r2 @ weights
        if math.isinf(self.beta):
            first = np.where(gap == 0.0, u_rational < 0.5, gap > 0.0)
        else:
            first = u_rational < _sigmoid(self.beta * gap)
        labels = first.astype(np.float64)

        flip = (u_mistake < self.eps_mistake) & ~equal
        labels[flip] = 1.0 - labels[flip]
        labels[equal] = 0.5
        labels[~keep] = np.nan
        return PreferenceLabels(labels=labels, keep=keep)


def _as_reward_matrix(rewards: np.ndarray, what: str) -> np.ndarray:
    """Validate one ``(N, H)`` finite reward array and return it as float64."""
    arr = np.asarray(rewards)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{what} must be a real-valued array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{what} must have shape (N, H), got {arr.shape}")
    if arr.shape[1] < 1:
        raise ValueError(f"{what} segments must have at least one step, got shape {arr.shape}")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} contains NaN or inf")
    return arr


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """Overflow-free logistic function."""
    return np.exp(-np.logaddexp(0.0, -x))
