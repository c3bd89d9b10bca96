"""SARM labels from subtask annotations, frame windows, and rewind augmentation.

Labels follow SARM (Chen et al. 2025, stage-aware reward modeling) exactly: subtask
``k`` spans frames ``[s_k, e_k]``; ``tau = (t - s_k) / (e_k - s_k)``; the stage priors
``alpha_k`` are the mean over demos of (length of subtask ``k`` / episode
length), renormalised to sum to 1; ``progress = P_{k-1} + alpha_k * tau`` with
``P_{k-1}`` the sum of the earlier priors. Frames between two subtasks count as
the end of the previous one (``tau = 1``); frames before the first subtask as
its start.

Annotations come either from per-frame stage labels (the collect command
stores ``info["stage"]`` per observation) or from a JSON file of subtask
start/end frames::

    {"subtask_names": ["reach", "grasp", "transport", "place"],
     "episodes": {"0": [[0, 9], [10, 17], [18, 30], [31, 38]], "1": ...}}

keyed by the episode id of the demo dataset.

Example:
    >>> import numpy as np
    >>> from rewardlearn.progress.labels import spans_from_stages, progress_labels
    >>> spans = spans_from_stages(np.array([0, 0, 1, 1, 1]), num_stages=2)
    >>> spans.tolist()
    [[0, 2], [2, 4]]
    >>> stage, tau, progress = progress_labels(spans, 5, alpha=np.array([0.5, 0.5]))
    >>> progress.tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rewardlearn.stages import run_advances


def spans_from_stages(stages: np.ndarray, num_stages: int) -> np.ndarray:
    """Subtask spans ``(K, 2)`` from per-frame stage labels (``T + 1`` frames).

    The stage sequence is made monotone (running maximum: a stage once reached
    counts as started, the way a human annotator marks subtask starts);
    ``s_k`` is the first frame of stage ``k`` and ``e_k = s_{k+1}`` (the end of
    the last one is the final frame). A skipped stage gets an empty span at the
    next one's start; stages never reached get empty spans at the final frame.
    """
    stages = np.maximum.accumulate(np.asarray(stages, dtype=np.int64).reshape(-1))
    last = len(stages) - 1
    starts = np.empty(num_stages, dtype=np.int64)
    for k in range(num_stages):
        hit = np.flatnonzero(stages >= k)
        starts[k] = hit[0] if len(hit) else last
    starts[0] = 0
    ends = np.append(starts[1:], last)
    return np.stack([starts, ends], axis=1)


def validate_spans(spans: np.ndarray, n_frames: int, where: str = "annotation") -> np.ndarray:
    """Check a ``(K, 2)`` span array: ordered, within ``[0, n_frames)``; returns it as int."""
    spans = np.asarray(spans, dtype=np.int64)
    if spans.ndim != 2 or spans.shape[1] != 2:
        raise ValueError(f"{where}: spans must be a list of [start, end] pairs, got shape "
                         f"{spans.shape}")
    if (spans < 0).any() or (spans >= n_frames).any():
        raise ValueError(f"{where}: frame indices must be in [0, {n_frames - 1}], got "
                         f"{spans.tolist()}")
    if (spans[:, 1] < spans[:, 0]).any() or (np.diff(spans[:, 0]) < 0).any() or \
            (spans[:-1, 1] > spans[1:, 0]).any():
        raise ValueError(f"{where}: spans must be ordered and not overlap, got {spans.tolist()}")
    return spans


def load_annotations(path: str | os.PathLike[str]) -> tuple[tuple[str, ...], dict[int, np.ndarray]]:
    """``(subtask_names, {episode_id: spans})`` from an annotation JSON file."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"annotation file {str(file)!r} not found")
    data = json.loads(file.read_text())
    if not isinstance(data, dict) or "episodes" not in data:
        raise ValueError(f"{file}: expected {{'subtask_names': [...], 'episodes': {{id: "
                         "[[start, end], ...]}}}}")
    names = tuple(str(n) for n in data.get("subtask_names", ()))
    episodes = {int(k): np.asarray(v, dtype=np.int64) for k, v in data["episodes"].items()}
    counts = {len(v) for v in episodes.values()}
    if len(counts) > 1 or (names and counts and counts != {len(names)}):
        raise ValueError(f"{file}: every episode needs one span per subtask "
                         f"({len(names) or sorted(counts)} subtasks)")
    return names, episodes


def stage_priors(spans: Sequence[np.ndarray], n_frames: Sequence[int]) -> np.ndarray:
    """``alpha_k``: mean over demos of (subtask length / episode length), renormalised."""
    if not spans:
        raise ValueError("stage priors need at least one annotated demo")
    fractions = [
        (np.asarray(s)[:, 1] - np.asarray(s)[:, 0]) / max(int(n) - 1, 1)
        for s, n in zip(spans, n_frames, strict=True)
    ]
    alpha = np.mean(fractions, axis=0).astype(np.float64)
    if alpha.sum() <= 0:
        raise ValueError("all annotated subtasks have zero length; check the annotations")
    return alpha / alpha.sum()


def progress_labels(spans: np.ndarray, n_frames: int, alpha: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame ``(stage, tau, progress)`` for one demo of ``n_frames`` frames."""
    spans = np.asarray(spans, dtype=np.int64)
    alpha = np.asarray(alpha, dtype=np.float64)
    cum = np.concatenate([[0.0], np.cumsum(alpha)])            # P_{k-1} = cum[k]
    t = np.arange(n_frames)
    starts, ends = spans[:, 0], spans[:, 1]
    stage = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, len(spans) - 1)
    s, e = starts[stage], ends[stage]
    length = np.maximum(e - s, 1)
    tau = np.where(e > s, (t - s) / length, 1.0)
    tau = np.where(t < s, 0.0, np.clip(tau, 0.0, 1.0))          # before the first subtask
    progress = cum[stage] + alpha[stage] * tau
    return stage.astype(np.int64), tau, progress


def frame_stage_labels(stages: np.ndarray, alpha: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame ``(stage, tau, progress)`` from per-frame stages that may go back.

    For stages read from the env (``info["stage"]``) rather than annotated spans: a
    dropped cube sends the stage back, and the running maximum of
    :func:`spans_from_stages` would label the frames after the drop with the later
    stage. Here every frame keeps its own stage, and ``tau`` runs from 0 to 1 over
    each maximal run of equal stages (ending where the next run starts; the last run
    ends on the final frame). On monotone stages this equals :func:`progress_labels`
    of :func:`spans_from_stages`.
    """
    stage = np.asarray(stages, dtype=np.int64).reshape(-1)
    alpha = np.asarray(alpha, dtype=np.float64)
    cum = np.concatenate([[0.0], np.cumsum(alpha)])
    n = len(stage)
    starts = np.flatnonzero(np.r_[True, stage[1:] != stage[:-1]])
    ends = np.r_[starts[1:], n - 1]
    run = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, n]))
    s, e = starts[run], ends[run]
    t = np.arange(n)
    tau = np.where(e > s, (t - s) / np.maximum(e - s, 1), 1.0)
    return stage, tau, cum[stage] + alpha[stage] * tau


def failure_aware_labels(stages: np.ndarray, success: bool, alpha: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame ``(stage, tau, progress, advancing)`` where only advancing runs get a clock.

    Like :func:`frame_stage_labels` (every frame keeps the env's own stage, so a dropped
    object's frames return to the lower stage), but ``tau`` rises from 0 to 1 over a run
    of equal stages only when that run *advanced* (:func:`rewardlearn.stages.run_advances`:
    the next stage is higher, or it is the last run of a successful episode). Frames of a
    run that never advanced (a stall, the carry before a drop, a failed episode's last
    stage) keep ``tau = 0``: ``progress = P_{k-1}``, the stage's start level, however long
    the run lasted. ``advancing`` marks the frames that got the clock.

    Example:
        >>> import numpy as np
        >>> stage, tau, prog, adv = failure_aware_labels(np.array([0, 0, 1, 1, 1]), False,
        ...                                              np.array([0.5, 0.5]))
        >>> tau.tolist(), adv.tolist()       # stage 1 stalled to the end: no rising target
        ([0.0, 0.5, 0.0, 0.0, 0.0], [True, True, False, False, False])
    """
    stage, tau, _ = frame_stage_labels(stages, alpha)
    advancing = run_advances(stage, success)
    tau = np.where(advancing, tau, 0.0)
    cum = np.concatenate([[0.0], np.cumsum(np.asarray(alpha, dtype=np.float64))])
    return stage, tau, cum[stage] + np.asarray(alpha, np.float64)[stage] * tau, advancing


def window_positions(end: int, window: int, stride: int) -> np.ndarray:
    """Positions ``end - (window-1-j) * stride`` (``j = 0..window-1``), clipped at 0."""
    return np.maximum(end - (window - 1 - np.arange(window)) * stride, 0)


def frame_windows(n_frames: int, window: int, stride: int) -> np.ndarray:
    """``(n_frames, window)`` frame indices of the window ending at every frame."""
    return np.stack([window_positions(t, window, stride) for t in range(n_frames)])


def rewind_sequence(t: int, r: int) -> np.ndarray:
    """Frames ``0..t`` then back ``t-1, ..., t-r``: the episode played forward, then rewound."""
    if not 1 <= r <= t:
        raise ValueError(f"rewind length must be in [1, {t}], got {r}")
    return np.concatenate([np.arange(t + 1), np.arange(t - 1, t - r - 1, -1)])


def rewind_windows(n_frames: int, count: int, window: int, stride: int, max_rewind: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` rewound windows of one demo: ``(frame indices (count, window), label frame)``.

    Each plays the demo to a random frame ``t`` and back ``r`` frames; the window
    ends on frame ``t - r`` and takes that frame's labels (progress falling).
    """
    if n_frames < 2 or count <= 0:
        return np.zeros((0, window), np.int64), np.zeros(0, np.int64)
    idx = np.empty((count, window), np.int64)
    label = np.empty(count, np.int64)
    for c in range(count):
        t = int(rng.integers(1, n_frames))
        r = int(rng.integers(1, min(t, max_rewind) + 1))
        seq = rewind_sequence(t, r)
        idx[c] = seq[window_positions(len(seq) - 1, window, stride)]
        label[c] = seq[-1]
    return idx, label


class WindowTracker:
    """Per env index: the recent feature history, for windows at rollout time.

    ``windows(obs_feats, next_feats, dones)`` returns the windows ending at each
    row's ``obs`` and ``next_obs``. A row's history continues only if its
    ``obs`` is the last frame it holds; otherwise (first step, an episode start
    after an auto-reset, an external reset) it restarts from ``obs``, and the
    window repeats the episode's first frame before it, as in training.

    Example:
        >>> import numpy as np
        >>> tr = WindowTracker(window=3, stride=1)
        >>> w, w2 = tr.windows(np.array([[0.0]]), np.array([[1.0]]), np.array([False]))
        >>> w[0, :, 0].tolist(), w2[0, :, 0].tolist()
        ([0.0, 0.0, 0.0], [0.0, 0.0, 1.0])
        >>> w, w2 = tr.windows(np.array([[1.0]]), np.array([[2.0]]), np.array([False]))
        >>> w2[0, :, 0].tolist()
        [0.0, 1.0, 2.0]
    """

    def __init__(self, window: int, stride: int) -> None:
        self.window = int(window)
        self.stride = int(stride)
        self.span = (self.window - 1) * self.stride + 1
        self._hist: list[list[np.ndarray]] = []

    def _gather(self, hist: list[np.ndarray]) -> np.ndarray:
        return np.stack([hist[p] for p in window_positions(len(hist) - 1, self.window,
                                                             self.stride)])

    def restarts(self, obs_feats: np.ndarray) -> np.ndarray:
        """Rows whose history would restart at ``obs`` (an episode start, as :meth:`windows`
        decides it)."""
        n = len(obs_feats)
        if len(self._hist) != n:
            return np.ones(n, bool)
        return np.array([not h or not np.array_equal(h[-1], obs_feats[i])
                         for i, h in enumerate(self._hist)], bool)

    def windows(self, obs_feats: np.ndarray, next_feats: np.ndarray, dones: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        n = len(obs_feats)
        if len(self._hist) != n:
            self._hist = [[] for _ in range(n)]
        w_obs = np.empty((n, self.window, obs_feats.shape[1]), dtype=np.float32)
        w_next = np.empty_like(w_obs)
        for i in range(n):
            hist = self._hist[i]
            if not hist or not np.array_equal(hist[-1], obs_feats[i]):
                hist = [np.array(obs_feats[i], copy=True)]
            w_obs[i] = self._gather(hist)
            hist = [*hist, np.array(next_feats[i], copy=True)][-self.span:]
            w_next[i] = self._gather(hist)
            self._hist[i] = [] if dones[i] else hist
        return w_obs, w_next

    def clear(self) -> None:
        """Forget every history."""
        self._hist = []


__all__ = [
    "WindowTracker",
    "failure_aware_labels",
    "frame_stage_labels",
    "frame_windows",
    "load_annotations",
    "progress_labels",
    "rewind_sequence",
    "rewind_windows",
    "spans_from_stages",
    "stage_priors",
    "validate_spans",
    "window_positions",
]
