"""Simulator lookahead: try candidate actions from an env's current state, then put it back.

**Simulation only.** A robot cannot take an action back; this module steps a *copy* of the
simulator state so that a scorer can read ``s'`` (and a few steps beyond) for each candidate
action, the one-step lookahead of reward-guided action selection (DeformPAM, Chen et al.,
ICRA 2025, arXiv 2410.11584 scores candidate actions with an implicit reward ``r(s, a)``;
V-GPS, Nakamoto et al., CoRL 2024, arXiv 2410.13816 with ``Q(s, a)``; a lookahead gives the
same choice to modules that score the state an action leads to, ``r(s, a, s')``).

What is saved and restored, for the env layers that :meth:`Lookahead.rollouts` steps (the
bound env minus the bookkeeping wrappers on top of it, such as SB3's ``Monitor`` and the
reward/frame/state-capture wrappers, which are never stepped):

* MuJoCo envs: the real ``mjData`` is never written. The lookahead runs on a scratch
  ``mjData`` swapped in for ``env.unwrapped.data``; each rollout starts from the real
  data's ``mjSTATE_INTEGRATION`` state (time, qpos, qvel, act, ctrl, warm start, applied
  forces, mocap, equality activations, userdata, plugin state: everything ``mj_step``
  reads, so a candidate's next state equals, bit for bit, what the real env reaches with
  that action), with ``mj_forward`` run on it for the derived quantities (and the warm
  start, which ``mj_forward`` overwrites, set again). Caveat: an env whose ``step`` reads derived
  quantities (body positions, contacts) *before* simulating sees them recomputed from the
  state here, where the real env sees those its last substep left; PickPlace and the
  Gymnasium MuJoCo envs read only ``qpos``/``qvel`` before simulating, except Ant and
  Humanoid, whose centre-of-mass "before" position then differs by one substep, the same
  offset for every candidate at a state (it does not change their ranking).
* Python state of every stepped layer: each attribute that is plain data (numbers,
  strings, numpy arrays, lists/tuples/dicts of those) is copied and written back
  (arrays in place); random generators get their bit-generator state back. This covers
  PickPlace's commanded pad position and was-lifted flag, ``TimeLimit``'s step counter,
  classic-control envs' ``state``. An attribute that aliases ``mjData`` memory, or state
  held in other objects, is not covered.

Not supported: ``SubprocVecEnv`` (the envs live in other processes).

Example:
    >>> import gymnasium as gym, numpy as np
    >>> import rewardlearn_envs  # registers rewardlearn/PickPlace-v0
    >>> env = gym.make("rewardlearn/PickPlace-v0")
    >>> obs, _ = env.reset(seed=0)
    >>> look = Lookahead(env)
    >>> tried = look.rollouts(np.array([[1, 0, 0, 0], [-1, 0, 0, 0]], np.float32))
    >>> tried.next_obs.shape, tried.rewards.shape            # (horizon, candidates, ...)
    ((1, 2, 34), (1, 2))
    >>> real = env.step(np.array([1, 0, 0, 0], np.float32))[0]  # the env never moved
    >>> bool(np.array_equal(real, tried.next_obs[0, 0]))
    True
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

_PLAIN = (type(None), bool, int, float, complex, str, bytes, np.generic)


def _is_plain(value: Any, depth: int = 0) -> bool:
    """Plain data that a copy fully captures (no env, no handles, no model)."""
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype != object
    if depth >= 3:
        return False
    if isinstance(value, (list, tuple)):
        return len(value) <= 10_000 and all(_is_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return len(value) <= 10_000 and all(
            isinstance(k, (str, int)) and _is_plain(v, depth + 1) for k, v in value.items())
    return False


PythonState = list[dict[str, Any]]
"""Per env layer, attribute name -> copied value (a generator: its :class:`_RngState`)."""


@dataclass
class _RngState:
    """A numpy generator's bit-generator state."""

    state: dict[str, Any]


def _layers(env: gym.Env) -> list[Any]:
    """``env``, ``env.env``, ... down to the unwrapped env."""
    out: list[Any] = [env]
    while isinstance(out[-1], gym.Wrapper):
        out.append(out[-1].env)
    return out


def _snapshot(layers: list[Any]) -> PythonState:
    state: PythonState = []
    for layer in layers:
        saved: dict[str, Any] = {}
        for name, value in vars(layer).items():
            if name == "data" and _is_mujoco_data(value):
                continue
            if isinstance(value, np.random.Generator):
                saved[name] = _RngState(copy.deepcopy(dict(value.bit_generator.state)))
            elif _is_plain(value):
                saved[name] = copy.deepcopy(value)
        state.append(saved)
    return state


def _restore(layers: list[Any], state: PythonState) -> None:
    for layer, saved in zip(layers, state, strict=True):
        attrs = vars(layer)
        for name in [n for n, v in attrs.items() if n not in saved and _is_plain(v)]:
            del attrs[name]  # plain data the lookahead added
        for name, value in saved.items():
            current = attrs.get(name)
            if isinstance(value, _RngState) and isinstance(current, np.random.Generator):
                current.bit_generator.state = copy.deepcopy(value.state)
            elif (isinstance(value, np.ndarray) and isinstance(current, np.ndarray)
                  and current.shape == value.shape and current.dtype == value.dtype
                  and current.flags.writeable):
                current[...] = value  # in place: views of it stay valid
            else:
                attrs[name] = copy.deepcopy(value)


def _is_mujoco_data(value: Any) -> bool:
    try:
        import mujoco
    except ImportError:  # pragma: no cover - mujoco is a dependency
        return False
    return isinstance(value, mujoco.MjData)


def _passive_wrappers() -> tuple[type[gym.Wrapper], ...]:
    """Wrappers that only record (never change dynamics): the lookahead starts below them."""
    from gymnasium.wrappers import RecordEpisodeStatistics, RecordVideo
    from stable_baselines3.common.monitor import Monitor

    from rewardlearn.wrappers.frames import FrameCapture
    from rewardlearn.wrappers.gym import LearnedRewardWrapper
    from rewardlearn.wrappers.state import SimStateCapture

    return (Monitor, LearnedRewardWrapper, FrameCapture, SimStateCapture,
            RecordEpisodeStatistics, RecordVideo, LookaheadLink)


def dynamics_layer(env: gym.Env) -> gym.Env:
    """The outermost layer of ``env`` that is not a bookkeeping wrapper: what a lookahead
    steps (SB3's ``Monitor``, reward, frame and state capture wrappers are skipped)."""
    passive = _passive_wrappers()
    layer: Any = env
    while isinstance(layer, passive):
        layer = layer.env
    return layer


@dataclass
class Rollouts:
    """``horizon`` steps of ``M`` rollouts, each starting with one candidate action.

    Arrays are ``(H, M, ...)``: step ``k`` of rollout ``j``. ``alive[k, j]`` says the step
    was taken (no episode end before it); rows after an end repeat the last real step and
    must be masked with ``alive``. ``terminated`` and ``truncated`` are kept apart (a time
    limit is not a terminal state). ``frames`` (``(M, H + 1, h, w, 3)``, only when asked)
    are the start state and each step after it.
    """

    obs: Any
    acts: np.ndarray
    next_obs: Any
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    infos: list[list[dict[str, Any]]]
    alive: np.ndarray
    frames: np.ndarray | None = None

    @property
    def horizon(self) -> int:
        return int(self.rewards.shape[0])

    def returns(self, gamma: float = 1.0, rewards: np.ndarray | None = None) -> np.ndarray:
        """``(M,)`` discounted sums ``sum_k gamma^k r_k`` over the steps taken (``rewards``:
        ``(H, M)`` to sum instead of the env's)."""
        r = self.rewards if rewards is None else np.asarray(rewards, np.float64)
        disc = gamma ** np.arange(self.horizon)[:, None]
        return np.asarray((disc * self.alive * r).sum(0), np.float64)

    @staticmethod
    def concat(parts: list[Rollouts]) -> Rollouts:
        """Rollouts of several envs side by side (along ``M``)."""
        if len(parts) == 1:
            return parts[0]

        def cat(values: list[Any]) -> Any:
            if isinstance(values[0], dict):
                return {k: np.concatenate([v[k] for v in values], 1) for k in values[0]}
            return np.concatenate(values, 1)

        frames = [p.frames for p in parts]
        return Rollouts(
            obs=cat([p.obs for p in parts]), acts=cat([p.acts for p in parts]),
            next_obs=cat([p.next_obs for p in parts]),
            rewards=cat([p.rewards for p in parts]),
            terminated=cat([p.terminated for p in parts]),
            truncated=cat([p.truncated for p in parts]),
            infos=[[i for p in parts for i in p.infos[k]] for k in range(parts[0].horizon)],
            alive=cat([p.alive for p in parts]),
            frames=None if any(f is None for f in frames) else np.concatenate(
                [f for f in frames if f is not None], 0))


def _stack(rows: list[Any]) -> Any:
    if isinstance(rows[0], dict):
        return {k: np.stack([np.asarray(r[k]) for r in rows]) for k in rows[0]}
    return np.stack([np.asarray(r) for r in rows])


class _MjScratch:
    """A scratch ``mjData`` for the lookahead; the real one is only read."""

    def __init__(self, base: Any) -> None:
        import mujoco

        self.mujoco = mujoco
        self.base = base
        self.real = base.data
        self.scratch = copy.copy(base.data)
        self.spec = mujoco.mjtState.mjSTATE_INTEGRATION
        self.size = mujoco.mj_stateSize(base.model, self.spec)

    def state(self, data: Any) -> np.ndarray:
        out = np.empty(self.size, np.float64)
        self.mujoco.mj_getState(self.base.model, data, out, self.spec)
        return out

    def load(self, state: np.ndarray) -> None:
        """The scratch data at ``state`` with its derived quantities computed from it;
        ``mj_forward`` overwrites the solver's warm start (part of the state), so the state
        is set again after it: stepping then matches the real data bit for bit."""
        model, scratch = self.base.model, self.scratch
        self.mujoco.mj_setState(model, scratch, state, self.spec)
        self.mujoco.mj_forward(model, scratch)
        self.mujoco.mj_setState(model, scratch, state, self.spec)


class Lookahead:
    """Steps candidate actions from ``env``'s current state and leaves ``env`` as it was.

    Args:
        env: a single env (not vectorised); the layers below its bookkeeping wrappers are
            stepped (:func:`dynamics_layer`).
    """

    def __init__(self, env: gym.Env) -> None:
        self.env = env
        self.stepped = dynamics_layer(env)
        self.layers = _layers(self.stepped)
        self.base: Any = self.stepped.unwrapped
        self._mj: _MjScratch | None = None
        self._renderer: Any = None
        self.steps_taken = 0
        """Simulator steps run by lookaheads so far (for timing reports)."""

    def _scratch(self) -> _MjScratch | None:
        if not _is_mujoco_data(getattr(self.base, "data", None)):
            return None
        if self._mj is None or self._mj.real is not self.base.data:
            self._mj = _MjScratch(self.base)
        return self._mj

    @contextmanager
    def _swapped(self) -> Iterator[tuple[_MjScratch | None, PythonState, np.ndarray | None]]:
        """Scratch data swapped in; on exit the real data and every layer's Python state are
        back, whatever happened."""
        mj = self._scratch()
        python = _snapshot(self.layers)
        physics = None if mj is None else mj.state(mj.real)
        if mj is not None:
            self.base.data = mj.scratch
        try:
            yield mj, python, physics
        finally:
            if mj is not None:
                self.base.data = mj.real
            _restore(self.layers, python)

    def _frame(self, mj: _MjScratch | None, size: tuple[int, int],
               camera: Any) -> np.ndarray:
        if mj is None:
            raise ValueError("lookahead clips are drawn for MuJoCo envs only")
        from rewardlearn.rendering import FastRenderer

        if self._renderer is None or self._renderer.model is not self.base.model:
            self._renderer = FastRenderer(self.base.model, mj.scratch, size[1], size[0], camera)
        self._renderer.data = mj.scratch
        return np.asarray(self._renderer.render()).copy()

    def rollouts(self, first_actions: np.ndarray, horizon: int = 1,
                 policy: Callable[[Any], np.ndarray] | None = None, obs: Any = None,
                 frames: tuple[int, int] | None = None, camera: Any = None) -> Rollouts:
        """``M`` rollouts of ``horizon`` steps from the current state: rollout ``j`` takes
        ``first_actions[j]``, then ``policy`` (a batched ``obs -> actions``; required when
        ``horizon > 1``) for the remaining steps, all rollouts' observations in one call per
        step. A rollout stops at the first ``terminated`` or ``truncated``. ``obs`` is the
        env's current observation (recorded as each rollout's first ``obs``; ``None`` if not
        given). ``frames`` (``(height, width)``, MuJoCo only) also draws each rollout as a
        clip."""
        first_actions = np.asarray(first_actions)
        m = len(first_actions)
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        if horizon > 1 and policy is None:
            raise ValueError("a lookahead of more than one step needs a policy for the steps "
                             "after the candidate action")
        if horizon > 1 and obs is None:
            raise ValueError("a lookahead of more than one step needs the current obs")
        with self._swapped() as (mj, start_py, start_phys):
            start_obs = obs
            py_states: list[PythonState] = [start_py] * m
            phys: list[np.ndarray | None] = [start_phys] * m
            obs_now: list[Any] = [start_obs] * m
            alive = np.zeros((horizon, m), bool)
            rec: dict[str, list[list[Any]]] = {k: [] for k in (
                "obs", "acts", "next_obs", "rewards", "terminated", "truncated", "infos")}
            clips: list[list[np.ndarray]] = [[] for _ in range(m)]
            if frames is not None:
                if mj is not None and start_phys is not None:
                    mj.load(start_phys)
                first = self._frame(mj, frames, camera)
                for clip in clips:
                    clip.append(first)
            running = np.ones(m, bool)
            for k in range(horizon):
                if k == 0:
                    acts = first_actions
                else:
                    assert policy is not None
                    acts = np.array(rec["acts"][-1], copy=True)
                    idx = np.flatnonzero(running)
                    if len(idx):
                        acts[idx] = np.asarray(policy(_stack([obs_now[j] for j in idx])))
                row: dict[str, list[Any]] = {key: [] for key in rec}
                for j in range(m):
                    if not running[j]:  # after an end: repeat the last step, masked by alive
                        for key in rec:
                            row[key].append(rec[key][-1][j])
                        continue
                    _restore(self.layers, py_states[j])
                    if mj is not None:
                        state = phys[j]
                        assert state is not None
                        mj.load(state)
                    nxt, r, term, trunc, info = self.stepped.step(acts[j])
                    self.steps_taken += 1
                    alive[k, j] = True
                    for key, value in zip(
                            ("obs", "acts", "next_obs", "rewards", "terminated", "truncated",
                             "infos"),
                            (obs_now[j], np.asarray(acts[j]), nxt, float(r), bool(term),
                             bool(trunc), info), strict=True):
                        row[key].append(value)
                    if frames is not None:
                        clips[j].append(self._frame(mj, frames, camera))
                    if term or trunc:
                        running[j] = False
                    elif k < horizon - 1:
                        obs_now[j] = nxt
                        py_states[j] = _snapshot(self.layers)
                        phys[j] = None if mj is None else mj.state(mj.scratch)
                for key in rec:
                    rec[key].append(row[key])
            if frames is not None:
                for clip in clips:  # a rollout that ended early holds its last frame
                    clip.extend([clip[-1]] * (horizon + 1 - len(clip)))
        return Rollouts(
            obs=_stack([_stack(r) for r in rec["obs"]]),
            acts=np.stack([np.stack(r) for r in rec["acts"]]),
            next_obs=_stack([_stack(r) for r in rec["next_obs"]]),
            rewards=np.asarray(rec["rewards"], np.float64),
            terminated=np.asarray(rec["terminated"], bool),
            truncated=np.asarray(rec["truncated"], bool),
            infos=rec["infos"], alive=alive,
            frames=None if frames is None else np.stack([np.stack(c) for c in clips]))

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


class LookaheadLink(gym.Wrapper):
    """Hands the env it wraps to a :class:`~rewardlearn.select.modeling.BestOfN` that was
    registered under ``link`` (:func:`register_link`), so a selector can look ahead in an
    env that code it does not control builds from an env config (``train.py``'s
    evaluation adds ``{_target_: rewardlearn.select.lookahead.LookaheadLink, link: <id>}``
    to the env's ``wrappers:``). It changes nothing else."""

    def __init__(self, env: gym.Env, link: str) -> None:
        super().__init__(env)
        if link not in _LINKS:
            raise ValueError(f"no selector registered under link {link!r}")
        _LINKS[link](self)


_LINKS: dict[str, Callable[[gym.Env], None]] = {}


def register_link(key: str, bind: Callable[[gym.Env], None]) -> None:
    """Call ``bind(env)`` whenever a :class:`LookaheadLink` with ``link=key`` is built."""
    _LINKS[key] = bind


def unregister_link(key: str) -> None:
    _LINKS.pop(key, None)


__all__ = ["Lookahead", "LookaheadLink", "Rollouts", "dynamics_layer", "register_link",
           "unregister_link"]
