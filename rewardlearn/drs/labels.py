"""Failure-aware stage labels and the per-stage state buffers of DrS.

The rule (DrS, Mu et al. 2024): a state in stage ``k`` is a *positive* of stage ``k``'s
classifier when its trajectory went on to reach a later stage (or success) after it, and
a *negative* when the trajectory ended without getting past stage ``k`` from there. No
clock is involved: a state where the policy stalls, hovers or drops the object is a
negative however long the episode ran, and a dropped object's states are labelled by
the stage they are in (the env's stage goes back down). The stage reading is shared with
the progress model's failure-aware labels (:mod:`rewardlearn.stages`).

Example:
    >>> import numpy as np
    >>> stages = np.array([0, 0, 1, 1, 0, 0])      # grasped, then dropped, never recovered
    >>> episode_labels(stages, success=False, num_stages=3)
    (array([0, 0, 1, 1, 0, 0]), array([ True,  True, False, False, False, False]))
"""

from __future__ import annotations

import numpy as np

from rewardlearn.stages import best_after


def episode_labels(stages: np.ndarray, success: bool, num_stages: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``(stage, positive)`` for each state of one finished episode.

    Args:
        stages: the stage of each state, in time order (the states ``s'`` the agent entered).
        success: whether the episode ended in success (the last state then counts as stage
            ``num_stages``, beyond every classifier).
        num_stages: the number of stages (classifiers).

    A state is positive when a *later* state of the episode has a higher stage; the
    success state itself (the last one of a successful episode) is positive too.
    """
    k = np.asarray(stages, np.int64).reshape(-1)
    positive = best_after(k, success, num_stages) > k
    if success and len(k):
        positive[-1] = True
    return k, positive


def positive_tail(stages: np.ndarray, positive: np.ndarray, tail: float) -> np.ndarray:
    """Rows to train on: every negative, and of each stage's positives in one episode only
    the last ``tail`` fraction in time (at least one).

    ``tail = 1`` is DrS as published: every state of a run that went on to advance is a
    positive, so the first states of a stage (the object just lifted, high over the target)
    count as much as the ones right before the stage is done (set down, about to release).
    A smaller tail keeps only the states close to each stage's exit, so a stage's score
    rises towards the way out of it, and a policy holding still early in a stage is scored
    below the demos' states near its end.

    Example:
        >>> k = np.array([0, 0, 0, 0, 1, 1, 1, 1])
        >>> pos = np.array([True, True, True, True, False, False, False, False])
        >>> positive_tail(k, pos, 0.5).astype(int).tolist()
        [0, 0, 1, 1, 1, 1, 1, 1]
    """
    if not 0.0 < tail <= 1.0:
        raise ValueError(f"tail must be in (0, 1], got {tail}")
    k = np.asarray(stages, np.int64).reshape(-1)
    pos = np.asarray(positive, bool).reshape(-1)
    keep = ~pos
    for stage in np.unique(k[pos]):
        idx = np.flatnonzero(pos & (k == stage))
        n = max(1, int(np.ceil(tail * len(idx))))
        keep[idx[-n:]] = True
    return keep


def _fifo_write(buffer: np.ndarray, start: int, rows: np.ndarray) -> int:
    """Write ``rows`` into the ring ``buffer`` from index ``start`` (the oldest rows are
    overwritten once it is full); returns the next write index."""
    rows = np.asarray(rows)[-len(buffer):]
    idx = (start + np.arange(len(rows))) % len(buffer)
    buffer[idx] = rows
    return int((start + len(rows)) % len(buffer))


class StageBuffers:
    """Per-stage FIFO buffers of positive and negative feature rows.

    Demo rows are kept apart and never dropped, so the classifiers cannot forget what
    success looks like while the agent's own data churns.
    """

    def __init__(self, num_stages: int, dim: int, capacity: int) -> None:
        self.num_stages, self.dim, self.capacity = num_stages, dim, capacity
        self.demo_pos = [np.zeros((0, dim), np.float32) for _ in range(num_stages)]
        self._rows = {(k, lab): np.zeros((capacity, dim), np.float32)
                      for k in range(num_stages) for lab in (True, False)}
        self._count = {key: 0 for key in self._rows}
        self._next = {key: 0 for key in self._rows}

    def add_demo(self, features: np.ndarray, stages: np.ndarray, positive: np.ndarray) -> None:
        """Demo states that advanced become permanent positives of their stage."""
        for k in range(self.num_stages):
            rows = features[(stages == k) & positive]
            if len(rows):
                self.demo_pos[k] = np.concatenate([self.demo_pos[k], rows.astype(np.float32)])

    def add(self, features: np.ndarray, stages: np.ndarray, positive: np.ndarray) -> None:
        """Agent states, labelled by :func:`episode_labels`."""
        for k in range(self.num_stages):
            for lab in (True, False):
                rows = features[(stages == k) & (positive == lab)]
                key = (k, lab)
                self._next[key] = _fifo_write(self._rows[key], self._next[key], rows)
                self._count[key] = min(self.capacity, self._count[key] + len(rows))

    def counts(self, k: int) -> tuple[int, int]:
        """``(positives incl. demos, negatives)`` held for stage ``k``."""
        return len(self.demo_pos[k]) + self._count[(k, True)], self._count[(k, False)]

    def sample(self, k: int, n: int, positive: bool, rng: np.random.Generator) -> np.ndarray:
        """``n`` rows of stage ``k`` with the label, uniformly over all held rows."""
        demo = self.demo_pos[k] if positive else self.demo_pos[k][:0]
        agent = self._rows[(k, positive)]
        idx = rng.integers(0, len(demo) + self._count[(k, positive)], n)
        from_demo = idx < len(demo)
        out = np.empty((n, self.dim), np.float32)
        out[from_demo] = demo[idx[from_demo]]
        out[~from_demo] = agent[idx[~from_demo] - len(demo)]
        return out

    def state_dict(self) -> dict[str, object]:
        return {"demo_pos": self.demo_pos,
                "rows": {f"{k}_{int(lab)}": self._rows[(k, lab)][: self._count[(k, lab)]]
                         for (k, lab) in self._rows}}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.demo_pos = [np.asarray(a, np.float32) for a in state["demo_pos"]]  # type: ignore[attr-defined]
        rows: dict[str, np.ndarray] = state["rows"]  # type: ignore[assignment]
        for (k, lab), buf in self._rows.items():
            saved = np.asarray(rows[f"{k}_{int(lab)}"], np.float32)[-self.capacity:]
            buf[: len(saved)] = saved
            self._count[(k, lab)] = len(saved)
            self._next[(k, lab)] = len(saved) % self.capacity


def trajectory_outcome(stages: np.ndarray, success: bool, num_stages: int) -> tuple[int, int]:
    """``(level, length)`` of one finished episode under DrS's published rule.

    ``level`` is the best stage the episode reached (``num_stages`` on success); a failed
    episode is cut after the last state at that stage (``length`` states kept), so what it
    did after falling back is not counted as having reached ``level``.

    Example:
        >>> trajectory_outcome(np.array([0, 1, 1, 0, 0]), success=False, num_stages=3)
        (1, 3)
        >>> trajectory_outcome(np.array([0, 1, 2]), success=True, num_stages=3)
        (3, 3)
    """
    k = np.asarray(stages, np.int64).reshape(-1)
    if success or not len(k):
        return (num_stages if success else 0), len(k)
    best = int(k.max())
    return best, int(len(k) - np.argmax(k[::-1] == best))


class TrajectoryBuffers:
    """Whole trajectories filed by the best stage they reached (DrS's published code).

    Level ``j`` holds the states of episodes whose best stage was ``j`` (``num_stages``:
    success, where the demos go and stay). Stage ``k``'s classifier takes as positives every
    state of levels ``> k`` (the approach, the grasp, the placing: all of an episode that got
    past ``k``) and as negatives every state of levels ``<= k``; both are sampled uniformly
    over their rows. Unlike :class:`StageBuffers`, a stage-``k`` classifier thus also sees
    the later-stage states its stage leads to, which gives its score a direction towards
    them even where the agent has never been (Mu et al. 2024, ``drs_learn_reward``).
    The same interface as :class:`StageBuffers`: ``counts``, ``sample``, ``demo_pos``.
    """

    def __init__(self, num_stages: int, dim: int, capacity: int) -> None:
        self.num_stages, self.dim, self.capacity = num_stages, dim, capacity
        self.demo_pos = [np.zeros((0, dim), np.float32) for _ in range(num_stages + 1)]
        """Permanent rows per level (the demos; failed demos at their best stage)."""
        self._rows = [np.zeros((capacity, dim), np.float32) for _ in range(num_stages + 1)]
        self._count = [0] * (num_stages + 1)
        self._next = [0] * (num_stages + 1)

    def add_demo(self, features: np.ndarray, level: int) -> None:
        """A demo episode's states, kept for the whole run at its ``level``."""
        self.demo_pos[level] = np.concatenate([self.demo_pos[level],
                                               np.asarray(features, np.float32)])

    def add_episode(self, features: np.ndarray, level: int) -> None:
        """An agent episode's states at ``level`` (FIFO per level, oldest dropped)."""
        self._next[level] = _fifo_write(self._rows[level], self._next[level], features)
        self._count[level] = min(self.capacity, self._count[level] + len(features))

    def _levels(self, k: int, positive: bool) -> range:
        return range(k + 1, self.num_stages + 1) if positive else range(0, k + 1)

    def _sizes(self, k: int, positive: bool) -> list[tuple[int, int]]:
        return [(len(self.demo_pos[j]), self._count[j]) for j in self._levels(k, positive)]

    def counts(self, k: int) -> tuple[int, int]:
        """``(positives incl. demos, negatives incl. failed demos)`` for stage ``k``."""
        return (sum(a + b for a, b in self._sizes(k, True)),
                sum(a + b for a, b in self._sizes(k, False)))

    def sample(self, k: int, n: int, positive: bool, rng: np.random.Generator) -> np.ndarray:
        """``n`` rows of stage ``k``'s positives or negatives, uniformly over all held rows."""
        blocks: list[np.ndarray] = []
        for j in self._levels(k, positive):
            blocks += [self.demo_pos[j], self._rows[j][: self._count[j]]]
        sizes = np.array([len(b) for b in blocks])
        idx = rng.integers(0, int(sizes.sum()), n)
        ends = np.cumsum(sizes)
        which = np.searchsorted(ends, idx, side="right")
        out = np.empty((n, self.dim), np.float32)
        for b in np.unique(which):
            sel = which == b
            out[sel] = blocks[b][idx[sel] - (ends[b] - sizes[b])]
        return out


__all__ = ["StageBuffers", "TrajectoryBuffers", "episode_labels", "positive_tail",
           "trajectory_outcome"]
