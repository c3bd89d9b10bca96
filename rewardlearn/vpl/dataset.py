"""Labelled segment pairs, each with the user (annotator) who labelled it.

VPL's training unit is an *annotation set*: ``N`` pairs labelled by one user. The store
keeps every pair with its user id (``user0``... for ``teacher=population``, the review
page's annotator name for ``teacher=human``); :meth:`UserPairs.sample_sets` draws sets of
up to ``N`` pairs of one user (users uniformly, a user's pairs without replacement), so
every epoch sees new combinations of the same labels.

Example:
    >>> import numpy as np
    >>> d = UserPairs.empty(length=2, dim=1)
    >>> d.add(np.zeros((3, 2, 1)), np.ones((3, 2, 1)), np.zeros(3), "ann", 0)
    >>> d.add(np.zeros((1, 2, 1)), np.ones((1, 2, 1)), np.ones(1), "bob", 0)
    >>> d.user_names(), d.indices("bob").tolist()
    (['ann', 'bob'], [3])
    >>> idx, mask = d.sample_sets(4, 2, np.random.default_rng(0))
    >>> idx.shape, sorted(set(mask.sum(1).tolist()))
    ((4, 2), [1.0, 2.0])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


def _pad(x: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """``(n, l, F)`` -> ``(n, length, F)`` zero-padded, and the real lengths ``(n,)``."""
    x = np.asarray(x, np.float32)
    n, steps = x.shape[:2]
    if steps > length:
        raise ValueError(f"segments of {steps} steps do not fit pairs of {length} steps")
    out = np.zeros((n, length, x.shape[2]), np.float32)
    out[:, :steps] = x
    return out, np.full(n, steps, np.int64)


@dataclass
class UserPairs:
    """``P`` labelled pairs ``(x1[p], x2[p], labels[p])`` of segments up to ``length`` steps
    of ``dim`` features, labelled by ``users[p]`` in round ``rounds[p]``."""

    length: int
    dim: int
    x1: np.ndarray
    x2: np.ndarray
    len1: np.ndarray
    len2: np.ndarray
    labels: np.ndarray
    users: list[str]
    rounds: np.ndarray

    @classmethod
    def empty(cls, length: int, dim: int) -> UserPairs:
        z = np.zeros((0, length, dim), np.float32)
        i = np.zeros(0, np.int64)
        return cls(int(length), int(dim), z, z.copy(), i, i.copy(), np.zeros(0, np.float32),
                   [], i.copy())

    def __len__(self) -> int:
        return len(self.labels)

    def add(self, x1: np.ndarray, x2: np.ndarray, labels: np.ndarray, user: str | list[str],
            round_: int, len1: np.ndarray | None = None, len2: np.ndarray | None = None
            ) -> None:
        """Add ``n`` pairs ``(n, l, F)`` (``l <= length``; ``len*``: real steps of each, default
        ``l``) labelled by ``user`` (one id, or one per pair)."""
        a, la = _pad(x1, self.length)
        b, lb = _pad(x2, self.length)
        n = len(a)
        users = [user] * n if isinstance(user, str) else list(user)
        if len(users) != n or len(labels) != n or len(b) != n:
            raise ValueError(f"{n} pairs with {len(b)} second sides, {len(labels)} labels and "
                             f"{len(users)} users")
        self.x1 = np.concatenate([self.x1, a])
        self.x2 = np.concatenate([self.x2, b])
        self.len1 = np.concatenate([self.len1, la if len1 is None else np.asarray(len1)])
        self.len2 = np.concatenate([self.len2, lb if len2 is None else np.asarray(len2)])
        self.labels = np.concatenate([self.labels, np.asarray(labels, np.float32)])
        self.users += [str(u) for u in users]
        self.rounds = np.concatenate([self.rounds, np.full(n, int(round_), np.int64)])

    def user_names(self) -> list[str]:
        """Every user id, in the order first seen."""
        return list(dict.fromkeys(self.users))

    def indices(self, user: str) -> np.ndarray:
        """The pairs ``user`` labelled."""
        return np.flatnonzero(np.asarray(self.users, dtype=object) == user)

    def sample_sets(self, n_sets: int, set_size: int, rng: np.random.Generator,
                    users: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``n_sets`` annotation sets of up to ``set_size`` pairs of one user each:
        ``(idx, mask)`` ``(n_sets, set_size)`` (users uniformly among ``users``, default all;
        a user with fewer pairs fills part of the set, the rest masked out)."""
        names = users if users is not None else self.user_names()
        if not names:
            raise ValueError("no labelled pairs to draw annotation sets from")
        per_user = {u: self.indices(u) for u in names}
        idx = np.zeros((n_sets, set_size), np.int64)
        mask = np.zeros((n_sets, set_size), np.float32)
        for s, u in enumerate(rng.choice(len(names), size=n_sets)):
            pool = per_user[names[int(u)]]
            k = min(set_size, len(pool))
            idx[s, :k] = rng.choice(pool, size=k, replace=False)
            mask[s, :k] = 1.0
        return idx, mask

    def step_masks(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(..., length)`` 0/1 masks of the real steps of both sides of pairs ``idx``."""
        t = np.arange(self.length)
        return ((t < self.len1[idx][..., None]).astype(np.float32),
                (t < self.len2[idx][..., None]).astype(np.float32))

    def tensors(self, idx: np.ndarray, set_mask: np.ndarray, device: torch.device
                ) -> dict[str, torch.Tensor]:
        """The batch :func:`~rewardlearn.vpl.modeling.elbo_loss` takes for sets ``idx``."""
        m1, m2 = self.step_masks(idx)
        arrays = {"x1": self.x1[idx], "x2": self.x2[idx], "m1": m1, "m2": m2,
                  "labels": self.labels[idx], "set_mask": np.asarray(set_mask, np.float32)}
        return {k: torch.as_tensor(v, device=device) for k, v in arrays.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"length": self.length, "dim": self.dim, "x1": self.x1, "x2": self.x2,
                "len1": self.len1, "len2": self.len2, "labels": self.labels,
                "users": list(self.users), "rounds": self.rounds}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> UserPairs:
        return cls(int(state["length"]), int(state["dim"]),
                   np.asarray(state["x1"], np.float32), np.asarray(state["x2"], np.float32),
                   np.asarray(state["len1"], np.int64), np.asarray(state["len2"], np.int64),
                   np.asarray(state["labels"], np.float32), [str(u) for u in state["users"]],
                   np.asarray(state["rounds"], np.int64))


def set_batch(x1: np.ndarray, x2: np.ndarray, labels: np.ndarray, device: torch.device,
              len1: np.ndarray | None = None, len2: np.ndarray | None = None
              ) -> dict[str, torch.Tensor]:
    """One annotation set of ``n`` pairs ``(n, L, F)`` as a batch of ``S = 1`` set (a new
    user's labels, to infer their ``z``)."""
    n, length = x1.shape[:2]
    t = np.arange(length)
    l1 = np.full(n, length) if len1 is None else np.asarray(len1)
    l2 = np.full(n, length) if len2 is None else np.asarray(len2)
    arrays = {"x1": np.asarray(x1, np.float32)[None], "x2": np.asarray(x2, np.float32)[None],
              "m1": (t < l1[:, None]).astype(np.float32)[None],
              "m2": (t < l2[:, None]).astype(np.float32)[None],
              "labels": np.asarray(labels, np.float32)[None],
              "set_mask": np.ones((1, n), np.float32)}
    return {k: torch.as_tensor(v, device=device) for k, v in arrays.items()}


__all__ = ["UserPairs", "set_batch"]
