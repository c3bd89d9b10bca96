"""The source task's labels: every labelled pair a ``reward=preference`` run kept.

A preference run saves each labelled pair's per-step features and its label in
``reward_model.pt`` (``state["dataset"]``: synthetic teachers' labels and the review page's
human answers alike), so a labelled run is PEARL's source. Each distinct segment becomes
one source point; the pairs index them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rewardlearn.rewards.torchfile import read_checkpoint


@dataclass
class SourceLabels:
    """Distinct source segments ``(L_k, F)`` and labelled pairs of them (1: first preferred)."""

    segments: list[np.ndarray]
    pairs: np.ndarray
    labels: np.ndarray
    path: str
    segment_length: int

    def __len__(self) -> int:
        return len(self.labels)


def source_file(path: str) -> Path:
    """A run folder's ``reward_model.pt``, or the file itself."""
    p = Path(path)
    return p / "reward_model.pt" if p.is_dir() else p


def read_source(path: str, max_pairs: int | None = None, seed: int | None = 0) -> SourceLabels:
    """The labelled pairs of a ``reward=preference`` run (its folder or ``reward_model.pt``);
    at most ``max_pairs`` of them, drawn at random (seeded). Refused in one line when the
    file is missing or holds no preference labels."""
    file = source_file(path)
    if not file.is_file():
        raise FileNotFoundError(f"reward.model.source={path}: no such file; pass a labelled "
                                "run (runs/<run> or runs/<run>/reward_model.pt of a "
                                "reward=preference run)")
    payload = read_checkpoint(file)
    state = payload.get("state")
    data = state.get("dataset") if isinstance(state, dict) else None
    if not isinstance(data, dict) or not {"x1", "x2", "labels"} <= set(data):
        name = str(payload.get("class", "?")).rpartition(":")[2]
        raise ValueError(f"reward.model.source={path} holds a {name} checkpoint without "
                         "preference labels; pass the reward_model.pt of a reward=preference "
                         "run")
    labels = np.asarray(data["labels"], np.float64)
    if len(labels) < 2:
        raise ValueError(f"reward.model.source={path} has {len(labels)} labelled pair(s); "
                         "PEARL needs at least 2")
    order = np.arange(len(labels))
    if max_pairs is not None and len(order) > max_pairs:
        order = np.sort(np.random.default_rng(seed).choice(len(order), max_pairs,
                                                           replace=False))
    index: dict[bytes, int] = {}
    segments: list[np.ndarray] = []

    def point(x: np.ndarray) -> int:
        arr = np.ascontiguousarray(np.asarray(x, np.float32))
        key = arr.tobytes() + str(arr.shape).encode()
        if key not in index:
            index[key] = len(segments)
            segments.append(arr)
        return index[key]

    pairs = np.array([[point(data["x1"][i]), point(data["x2"][i])] for i in order], np.int64)
    lengths = [len(s) for s in segments]
    return SourceLabels(segments, pairs, labels[order], str(file), int(max(lengths)))


__all__ = ["SourceLabels", "read_source", "source_file"]
