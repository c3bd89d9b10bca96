"""Transition distributions for reward evaluation: rollouts and coverage samples.

Distances between rewards are measured over transitions ``(s, a, s')`` drawn
from an evaluation distribution ``D`` (:func:`collect_rollouts`: episodes of a
policy in the env, random actions by default). EPIC's canonicalisation also
needs a *coverage* distribution of states ``D_S`` and actions ``D_A``
(:func:`coverage_samples`): states are drawn from the states visited in the
rollouts (both ``s`` and ``s'``, uniformly), actions either uniformly from the
action space (``actions="uniform"``, the default) or from the actions taken in
the rollouts (``actions="rollout"``). ``E[R(x, A, S')]`` is estimated over ``M``
pairs ``(A_j, S'_j)`` and ``E[R(S, A, S')]`` over the ``M x M`` grid of the same
state draws ``S_k`` with those pairs.

Every distinct state the rollouts visit (the state after each reset and after
each step) has an index; each transition keeps the index of its ``s`` and
``s'`` (``Rollouts.obs_ids``/``next_ids``) and coverage states keep theirs.
For rewards that read rendered frames, :func:`collect_rollouts` renders each
state once per frame size (``frames=``) into a :class:`FrameTable`, and the
metrics build each reward call's ``frames``/``obs_frames`` by indexing that
table, passing the frame ids along (:attr:`TransitionBatch.frame_ids`) so the
reward can encode each distinct frame once. Observations may be flat vectors or
uint8 images (pixel-observation envs); images stay uint8, and reward calls
that carry frames or images are cut to :data:`FRAME_ROWS` rows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from rewardlearn.agents import ActFn
from rewardlearn.rendering import CameraConfig
from rewardlearn.rewards.base import RewardModel, TransitionBatch
from rewardlearn.wrappers.frames import EnvFrameSource

FrameSize = tuple[int, int]

FRAME_ROWS = 256
"""Most rows per reward call when the call carries frames or image observations."""
IMAGE_BYTES = 64 << 20
"""Most bytes of frames plus image observations per reward call."""

_id_lock = threading.Lock()
_next_frame_id = 0


def reserve_frame_ids(n: int) -> int:
    """First of ``n`` frame ids no other table in this process uses."""
    global _next_frame_id
    with _id_lock:
        base = _next_frame_id
        _next_frame_id += int(n)
    return base


@dataclass
class FrameTable:
    """Rendered frames of the rollout states at one size: ``frames[k]`` shows state ``k``.

    State ``k``'s frame id (:attr:`TransitionBatch.frame_ids`) is ``id_base + k``,
    unique within the process, so a reward's frame cache never confuses tables.
    """

    frames: np.ndarray
    id_base: int

    @property
    def size(self) -> FrameSize:
        """``(height, width)`` of the frames."""
        return int(self.frames.shape[1]), int(self.frames.shape[2])

    def ids(self, states: np.ndarray | int) -> np.ndarray:
        """Frame ids of state indices."""
        return self.id_base + np.asarray(states, np.int64)


FrameTables = Mapping[FrameSize, FrameTable]


def reads_frames(reward: Any) -> bool:
    """Whether a reward (module or callable with a ``needs_frames`` attribute) reads frames."""
    return bool(getattr(reward, "needs_frames", False))


def frame_size_of(reward: Any) -> FrameSize:
    """The ``(height, width)`` a frame-reading reward wants its frames at."""
    h, w = getattr(reward, "frame_size", (224, 224))
    return int(h), int(w)


def frame_table(reward: Any, frames: FrameTables | None) -> FrameTable | None:
    """The table at ``reward``'s frame size, or ``None`` for a reward that reads no frames."""
    if not reads_frames(reward):
        return None
    size = frame_size_of(reward)
    if not frames or size not in frames:
        have = sorted(frames) if frames else "none"
        raise ValueError(
            f"{getattr(reward, 'name', type(reward).__name__)} reads {size[0]}x{size[1]} frames, "
            f"but the transitions carry frames at {have}; collect the rollouts with "
            f"collect_rollouts(..., frames=[{size}])")
    return frames[size]


def is_image(obs: Any) -> bool:
    """uint8 observations (images of a pixel-observation env), or dict observations
    (structured arrays, see :func:`~rewardlearn.rewards.base.as_obs`) holding an image."""
    if not isinstance(obs, np.ndarray):
        return False
    if obs.dtype.names:
        return any(obs.dtype[name].base == np.uint8 for name in obs.dtype.names)
    return bool(obs.dtype == np.uint8)


def rows_per_call(rows: int, obs: np.ndarray, table: FrameTable | None) -> int:
    """``rows`` cut to :data:`FRAME_ROWS` and :data:`IMAGE_BYTES` when calls carry images."""
    row_bytes = 0
    if is_image(obs):
        row_bytes += 2 * int(np.prod(obs.shape[1:])) * obs.itemsize
    if table is not None:
        row_bytes += 2 * int(np.prod(table.frames.shape[1:])) * table.frames.itemsize
    if row_bytes == 0:
        return max(1, int(rows))
    return max(1, min(int(rows), FRAME_ROWS, IMAGE_BYTES // row_bytes))


@dataclass
class Rollouts:
    """Flat transitions of several episodes with their env rewards and episode ids."""

    obs: np.ndarray
    acts: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    env_rewards: np.ndarray
    episode: np.ndarray
    obs_ids: np.ndarray | None = None
    """State index of each transition's ``obs`` (``None``: not tracked)."""
    next_ids: np.ndarray | None = None
    """State index of each transition's ``next_obs``."""
    frames: dict[FrameSize, FrameTable] = field(default_factory=dict)
    """Rendered frames of every state, per frame size (empty: none rendered)."""
    state_infos: list[dict[str, Any]] = field(default_factory=list)
    """The scalar entries of the env's ``info`` for every state (by state index): what a
    reward that reads an env signal (a stage) is given for that state."""

    def __len__(self) -> int:
        return len(self.acts)

    def info_lookup(self) -> dict[bytes, dict[str, Any]]:
        """Observation bytes -> that state's info, over every state of the rollouts."""
        out: dict[bytes, dict[str, Any]] = {}
        if not self.state_infos or self.obs_ids is None or self.next_ids is None:
            return out
        for arr, ids in ((self.obs, self.obs_ids), (self.next_obs, self.next_ids)):
            for row, k in zip(arr, ids, strict=True):
                out.setdefault(np.ascontiguousarray(row).tobytes(), self.state_infos[int(k)])
        return out

    def batch(self, idx: np.ndarray | slice | None = None) -> TransitionBatch:
        """The transitions (all, or rows ``idx``) as a :class:`TransitionBatch`."""
        sel = slice(None) if idx is None else idx
        b = TransitionBatch(self.obs[sel], self.acts[sel], self.next_obs[sel],
                            self.terminated[sel], self.truncated[sel])
        b.env_rewards = self.env_rewards[sel]
        return b

    @property
    def n_episodes(self) -> int:
        return len(np.unique(self.episode))

    @property
    def n_states(self) -> int:
        """Distinct states visited (indices ``0 .. n_states - 1``)."""
        if self.obs_ids is None or self.next_ids is None or not len(self):
            return 0
        return int(max(self.obs_ids.max(), self.next_ids.max())) + 1


def _obs_dtype(env: gym.Env) -> np.dtype[Any]:
    """float32 for state vectors, uint8 for images, a structured dtype for Dict spaces.

    A Dict of Boxes is stored as one structured array with a field per key (see
    :func:`~rewardlearn.rewards.base.as_obs`); other spaces are refused.
    """
    space = env.observation_space

    def box_dtype(box: gym.Space, what: str) -> np.dtype[Any]:
        if not isinstance(box, gym.spaces.Box):
            raise ValueError(
                f"reward evaluation samples array observations (state vectors, uint8 images, "
                f"or a Dict of them); {what} is {box} (use obs_mode=state or obs_mode=pixels)")
        return np.dtype(np.uint8 if box.dtype == np.uint8 else np.float32)

    if isinstance(space, gym.spaces.Dict):
        return np.dtype([(str(k), box_dtype(sub, f"entry {k!r} of this env's observations"),
                          tuple(sub.shape or ())) for k, sub in space.spaces.items()])
    return box_dtype(space, "this env's observation space")


def _stack_obs(items: list[Any], dtype: np.dtype[Any]) -> np.ndarray:
    """Observations (arrays, or dicts for a structured ``dtype``) as one array of ``dtype``."""
    if not dtype.names:
        return np.asarray(items, dtype)
    out = np.empty(len(items), dtype)
    for name in dtype.names:
        out[name] = np.stack([np.asarray(o[name]) for o in items]) if items else out[name]
    return out


def _frame_sizes(frames: FrameSize | Sequence[FrameSize] | None) -> list[FrameSize]:
    if frames is None:
        return []
    items: list[Any] = list(frames)
    if len(items) == 2 and all(isinstance(v, int | np.integer) for v in items):
        items = [tuple(items)]
    sizes = sorted({(int(h), int(w)) for h, w in items})
    if any(h < 1 or w < 1 for h, w in sizes):
        raise ValueError(f"frame sizes must be positive (height, width), got {sizes}")
    return sizes


def collect_rollouts(env: gym.Env, n_steps: int, seed: int = 0, policy: ActFn | None = None,
                     max_episode_steps: int | None = None,
                     frames: FrameSize | Sequence[FrameSize] | None = None,
                     camera: CameraConfig | dict[str, Any] | str | None = None) -> Rollouts:
    """Run ``policy`` (uniform random actions if ``None``) for ``n_steps`` transitions.

    ``next_obs`` is the true next observation (also at episode ends), and
    ``terminated``/``truncated`` are kept apart. ``max_episode_steps`` cuts
    episodes short (truncation) so short budgets still see several episodes.

    ``frames``: one ``(height, width)`` or several: render every distinct state
    (after each reset and each step, before any reset) once per size with the
    training wrappers' frame source (:class:`~rewardlearn.wrappers.frames.EnvFrameSource`,
    ``camera`` as in the env config); non-MuJoCo envs must be made with
    ``render_mode="rgb_array"``.
    """
    obs_dtype = _obs_dtype(env)
    sizes = _frame_sizes(frames)
    sources: list[EnvFrameSource] = []
    rendered: dict[FrameSize, list[np.ndarray]] = {size: [] for size in sizes}
    rows: dict[str, list[Any]] = {k: [] for k in ("obs", "acts", "next_obs", "term", "trunc",
                                                  "rew", "ep", "obs_id", "next_id")}
    n_states = 0
    infos: list[dict[str, Any]] = []

    def new_state(info: dict[str, Any]) -> int:
        nonlocal n_states
        for size, source in zip(sizes, sources, strict=True):
            rendered[size].append(np.array(source.render(), np.uint8, copy=True))
        infos.append({k: v for k, v in info.items() if np.isscalar(v)})
        n_states += 1
        return n_states - 1

    try:
        sources.extend(EnvFrameSource(env, w, h, camera) for h, w in sizes)
        env.action_space.seed(seed)
        obs, info = env.reset(seed=seed)
        cur = new_state(info)
        ep, t = 0, 0
        for step in range(int(n_steps)):
            act = env.action_space.sample() if policy is None else policy(
                obs if isinstance(obs, dict) else np.asarray(obs))
            nxt, rew, term, trunc, info = env.step(act)
            t += 1
            nxt_id = new_state(info)
            trunc = bool(trunc) or (max_episode_steps is not None and t >= max_episode_steps)
            for key, value in (("obs", obs), ("acts", act), ("next_obs", nxt), ("term", term),
                               ("trunc", trunc and not term), ("rew", rew), ("ep", ep),
                               ("obs_id", cur), ("next_id", nxt_id)):
                rows[key].append(value)
            obs, cur = nxt, nxt_id
            if (term or trunc) and step + 1 < int(n_steps):
                ep, t = ep + 1, 0
                obs, info = env.reset()
                cur = new_state(info)
    finally:
        for source in sources:
            source.close()
    tables = {size: FrameTable(np.stack(rendered[size]).astype(np.uint8, copy=False),
                               reserve_frame_ids(n_states)) for size in sizes}
    return Rollouts(
        _stack_obs(rows["obs"], obs_dtype), np.asarray(rows["acts"], np.float32),
        _stack_obs(rows["next_obs"], obs_dtype), np.asarray(rows["term"], bool),
        np.asarray(rows["trunc"], bool), np.asarray(rows["rew"], np.float64),
        np.asarray(rows["ep"], np.int64), np.asarray(rows["obs_id"], np.int64),
        np.asarray(rows["next_id"], np.int64), tables, infos,
    )


@dataclass
class Coverage:
    """``M`` action/next-state pairs from ``D_A x D_S`` and ``M`` states ``S ~ D_S``.

    :func:`coverage_samples` uses the same state draws for ``S`` and ``S'`` (as
    the EPIC authors' code does): then ``E[gamma Phi(S') - gamma Phi(S)]`` cancels
    exactly on the samples, so a potential-shaped reward canonicalises to exactly
    the same values as the original (not only up to a constant).
    """

    states: np.ndarray
    actions: np.ndarray
    next_states: np.ndarray
    state_ids: np.ndarray | None = None
    """Rollout state index of each of ``states`` (``None``: not tracked)."""
    next_state_ids: np.ndarray | None = None
    """Rollout state index of each of ``next_states``."""


def coverage_samples(rollouts: Rollouts, action_space: gym.Space, n_samples: int = 256,
                     actions: str = "uniform", seed: int = 0) -> Coverage:
    """Independent draws of ``S ~ D_S``, ``A ~ D_A``, ``S' ~ D_S`` (see module doc)."""
    if actions not in ("uniform", "rollout"):
        raise ValueError(f"unknown coverage actions {actions!r}; choose 'uniform' or 'rollout'")
    rng = np.random.default_rng(seed)
    n = len(rollouts)
    draws = rng.integers(2 * n, size=n_samples)  # the pool is obs then next_obs
    first = draws < n
    s2 = np.empty((n_samples, *rollouts.obs.shape[1:]), rollouts.obs.dtype)
    s2[first] = rollouts.obs[draws[first]]
    s2[~first] = rollouts.next_obs[draws[~first] - n]
    ids = None
    if rollouts.obs_ids is not None and rollouts.next_ids is not None:
        ids = np.where(first, rollouts.obs_ids[np.minimum(draws, n - 1)],
                       rollouts.next_ids[np.maximum(draws - n, 0)])
    if actions == "rollout":
        a = rollouts.acts[rng.integers(len(rollouts), size=n_samples)]
    else:
        action_space.seed(int(rng.integers(2**31)))
        a = np.stack([np.asarray(action_space.sample(), np.float32) for _ in range(n_samples)])
    return Coverage(s2, a.astype(np.float32), s2, ids, ids)


def reward_on(model: RewardModel | Callable[[TransitionBatch], np.ndarray], obs: np.ndarray,
              acts: np.ndarray, next_obs: np.ndarray, terminated: np.ndarray | None = None,
              chunk: int = 65536, *, truncated: np.ndarray | None = None,
              obs_ids: np.ndarray | None = None, next_ids: np.ndarray | None = None,
              frames: FrameTables | None = None) -> np.ndarray:
    """Rewards of ``model`` for arrays of transitions, in chunks (float64).

    For a model that reads frames, ``frames`` (the rollouts' tables) and the
    state indices ``obs_ids``/``next_ids`` give each row its ``obs_frames``,
    ``frames`` and frame ids. Calls carrying frames or images are cut to
    :func:`rows_per_call` rows.
    """
    n = len(acts)
    out = np.empty(n, np.float64)
    term = np.zeros(n, bool) if terminated is None else np.asarray(terminated, bool)
    trunc = np.zeros(n, bool) if truncated is None else np.asarray(truncated, bool)
    table = frame_table(model, frames)
    if table is not None and (obs_ids is None or next_ids is None):
        raise ValueError(f"{getattr(model, 'name', 'this reward')} reads frames: give the state "
                         "indices of the transitions (obs_ids, next_ids)")
    chunk = rows_per_call(chunk, obs, table)
    for i in range(0, n, chunk):
        sl = slice(i, i + chunk)
        extra: dict[str, Any] = {}
        if table is not None:
            assert obs_ids is not None and next_ids is not None
            o, nx = np.asarray(obs_ids[sl]), np.asarray(next_ids[sl])
            extra = {"frames": table.frames[nx], "obs_frames": table.frames[o],
                     "frame_ids": table.ids(nx), "obs_frame_ids": table.ids(o)}
        batch = TransitionBatch.from_arrays(obs[sl], acts[sl], next_obs[sl], term[sl], trunc[sl],
                                            **extra)
        out[sl] = np.asarray(model(batch), np.float64)
    return out


__all__ = ["FRAME_ROWS", "Coverage", "FrameTable", "FrameTables", "Rollouts", "collect_rollouts",
           "coverage_samples", "frame_size_of", "frame_table", "is_image", "reads_frames",
           "reserve_frame_ids", "reward_on", "rows_per_call"]
