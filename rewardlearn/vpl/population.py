"""``teacher=population``: ``K`` synthetic users with different hidden goals (VPL's setting).

Each user ``k`` has its own per-step reward ``r_k(s, a, s')`` and labels a segment pair as
a B-Pref teacher on that reward (:class:`~rewardlearn.preference.teachers.SyntheticTeacher`;
the oracle by default), so the users disagree exactly where their goals do. Two kinds of
user reward, both read from the next observation ``s'``:

* ``linear``: ``r = sum_j w_j s'[index_j]`` (e.g. forward vs backward velocity);
* ``target``: ``r = -||s'[index] - g|| - reach_weight * ||s'[reach]||`` (a target speed, or
  a target zone for an object plus a reach term pulling the gripper to it).

Presets (``preset``, ``auto`` picks by the env's id):

* ``direction`` (2 users): forward (``+v_x``) vs backward (``-v_x``) on any MuJoCo
  locomotion env (HalfCheetah, Hopper, Walker2d, Ant, Swimmer, Humanoid, or an env of your
  own whose first generalised velocity is the root's forward one); Pendulum
  counter-clockwise vs clockwise (``+-theta_dot``);
* ``speed`` (any ``K``): target velocities evenly spaced in ``[-v, v]`` (HalfCheetah
  ``v = 3`` m/s on ``obs[8]``, Pendulum ``v = 4`` rad/s on ``obs[2]``, other locomotion
  envs ``v = 1`` m/s);

The velocity's place in the observation is found by probing the env (:func:`velocity_index`:
the one entry that moves with the root's forward velocity), not from a table, so it follows
the env's own observation options.
* ``zone`` (any ``K``, ``pick_place``): the cube's xy at one of ``K`` zones on a circle of
  radius 0.12 m around the table centre, plus reaching (``cube - gripper``).

Example:
    >>> import numpy as np
    >>> t = PopulationTeacher(env="pendulum", preset="direction", n_users=2, seed=0)
    >>> s = np.zeros((1, 3, 3)); a = np.zeros((1, 3, 1))
    >>> fast_ccw, fast_cw = s.copy(), s.copy()
    >>> fast_ccw[..., 2], fast_cw[..., 2] = 1.0, -1.0
    >>> [t.label_user(k, (s, a, fast_ccw), (s, a, fast_cw)).labels.tolist() for k in (0, 1)]
    [[1.0], [0.0]]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from rewardlearn.preference.teachers import PreferenceLabels, SyntheticTeacher

USER_KINDS = ("linear", "target")
PRESETS = ("auto", "direction", "speed", "zone")

Side = tuple[np.ndarray, np.ndarray, np.ndarray]
"""One side of ``N`` segment pairs: ``(obs, acts, next_obs)``, each ``(N, L, dim)``."""


@dataclass(frozen=True)
class UserReward:
    """One synthetic user's per-step reward ``r_k(s, a, s')`` (see the module docstring)."""

    kind: str
    index: tuple[int, ...]
    goal: tuple[float, ...]
    reach: tuple[int, ...] = ()
    reach_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in USER_KINDS:
            raise ValueError(f"user kind must be one of {USER_KINDS}, got {self.kind!r}")
        if not self.index or len(self.index) != len(self.goal):
            raise ValueError(f"a {self.kind} user needs as many goal values as indices, got "
                             f"index {list(self.index)} and goal {list(self.goal)}")

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> UserReward:
        """From a config entry ``{kind, index, goal, reach?, reach_weight?}``."""
        unknown = sorted(set(spec) - {"kind", "index", "goal", "reach", "reach_weight"})
        if unknown:
            raise ValueError(f"unknown user setting(s) {unknown}; valid: kind, index, goal, "
                             "reach, reach_weight")
        return cls(str(spec["kind"]), tuple(int(i) for i in spec["index"]),
                   tuple(float(g) for g in spec["goal"]),
                   tuple(int(i) for i in spec.get("reach") or ()),
                   float(spec.get("reach_weight", 0.0)))

    def max_index(self) -> int:
        return max((*self.index, *self.reach))

    def __call__(self, obs: np.ndarray, acts: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        """Per-step rewards ``(...)`` of observations ``(..., D)`` (reads ``next_obs``)."""
        x = np.asarray(next_obs, np.float64)[..., list(self.index)]
        goal = np.asarray(self.goal, np.float64)
        r = x @ goal if self.kind == "linear" else -np.linalg.norm(x - goal, axis=-1)
        if self.reach and self.reach_weight:
            reach = np.asarray(next_obs, np.float64)[..., list(self.reach)]
            r = r - self.reach_weight * np.linalg.norm(reach, axis=-1)
        return np.asarray(r)


_SPEED = {"HalfCheetah": 3.0, "Pendulum": 4.0}
"""Env id prefix -> the speed range ``v`` of the ``speed`` preset (others: 1 m/s)."""
_PENDULUM_VELOCITY = 2  # obs = [cos theta, sin theta, theta_dot]


def _evenly(n: int, v: float) -> list[float]:
    return [float(g) for g in np.linspace(-v, v, n)]


def velocity_index(env_id: str, kwargs: Mapping[str, Any] | None = None) -> int | None:
    """The observation entry holding the root's forward velocity (``qvel[0]``) of a MuJoCo
    env, found by moving that velocity by 1 and reading the first entry that moves by 1
    (Gymnasium's envs put ``qvel`` before derived terms such as Humanoid's ``cvel``);
    ``None`` when the env is not a MuJoCo env with ``set_state`` and ``_get_obs``, or no
    entry follows it.

    Example:
        >>> velocity_index("HalfCheetah-v5"), velocity_index("Hopper-v5")
        (8, 5)
    """
    if env_id.split("/")[-1].split("-")[0] == "Pendulum":
        return _PENDULUM_VELOCITY
    try:
        env = gym.make(env_id, **dict(kwargs or {}))
    except Exception:  # an env that cannot be built here has no preset
        return None
    try:
        base: Any = env.unwrapped  # a MujocoEnv when it has these
        if not all(hasattr(base, a) for a in ("data", "set_state", "_get_obs")):
            return None
        env.reset(seed=0)
        data = base.data
        qpos, qvel = data.qpos.copy(), data.qvel.copy()
        if qvel.size == 0:
            return None
        base.set_state(qpos, qvel)
        before = np.asarray(base._get_obs(), np.float64).ravel()
        moved_qvel = qvel.copy()
        moved_qvel[0] += 1.0
        base.set_state(qpos, moved_qvel)
        after = np.asarray(base._get_obs(), np.float64).ravel()
        hits = np.flatnonzero(np.abs(after - before - 1.0) < 1e-6)
        return int(hits[0]) if len(hits) else None  # qvel comes before derived terms
    finally:
        env.close()


def preset_users(env_id: str, preset: str, n_users: int,
                 kwargs: Mapping[str, Any] | None = None) -> list[UserReward]:
    """The users of a preset for the env ``env_id`` made with ``kwargs`` (see the module
    docstring)."""
    base = env_id.split("/")[-1].split("-")[0]
    index = None if base == "PickPlace" or preset == "zone" else velocity_index(env_id, kwargs)
    if preset == "auto":
        if index is not None:
            preset = "direction" if n_users == 2 else "speed"
        elif base == "PickPlace":
            preset = "zone"
        else:
            raise ValueError(f"teacher=population has no preset for env {env_id} (not a "
                             "MuJoCo locomotion env, Pendulum or pick_place); give "
                             "teacher.users=[{kind: target, index: [...], goal: [...]}, ...]")
    if preset in ("direction", "speed"):
        if index is None:
            raise ValueError(f"teacher.preset={preset} needs a forward velocity in the "
                             f"observation (a MuJoCo locomotion env or Pendulum), and "
                             f"{env_id} has none that follows qvel[0]; give teacher.users")
        speed = _SPEED.get(base, 1.0)
        if preset == "direction":
            if n_users != 2:
                raise ValueError(f"teacher.preset=direction has 2 users (forward, backward), "
                                 f"got teacher.n_users={n_users}; use preset=speed for more")
            return [UserReward("linear", (index,), (1.0,)),
                    UserReward("linear", (index,), (-1.0,))]
        return [UserReward("target", (index,), (g,)) for g in _evenly(n_users, speed)]
    if preset == "zone":
        if base != "PickPlace":
            raise ValueError(f"teacher.preset=zone is for pick_place, not {env_id}")
        from rewardlearn_envs.pick_place import STATE_LAYOUT

        cube = STATE_LAYOUT["cube_pos"]
        reach = STATE_LAYOUT["cube_minus_gripper"]
        angles = [2.0 * math.pi * k / n_users for k in range(n_users)]
        return [UserReward("target", (cube.start, cube.start + 1),
                           (0.12 * math.cos(a), 0.12 * math.sin(a)),
                           tuple(range(reach.start, reach.stop)), 0.5) for a in angles]
    raise ValueError(f"teacher.preset must be one of {PRESETS}, got {preset!r}")


def _env_spec(env: Any) -> tuple[str, dict[str, Any]]:
    """The gym id and constructor keyword arguments of an env config (or its name)."""
    from rewardlearn.env_factory import env_config
    from rewardlearn.utils import to_dict

    cfg = env_config(env)
    return str(cfg.id), to_dict(cfg.get("kwargs") or {})


class PopulationTeacher:
    """``K`` synthetic users, each a B-Pref teacher on its own reward (``teacher=population``).

    Args:
        env: the env config (or its name), to pick a preset; ``None`` with ``users`` given.
        preset: ``auto``, ``direction``, ``speed`` or ``zone`` (module docstring).
        n_users: ``K`` (ignored when ``users`` is given).
        users: explicit users, ``[{kind, index, goal, reach?, reach_weight?}, ...]``.
        beta, gamma, eps_mistake, eps_equal: each user's B-Pref rationality settings
            (default: the oracle); ``eps_skip`` is not offered (thresholds differ per user).
        seed: user ``k`` draws from its own generator seeded ``1000 * seed + k``.
        name: for logs.
    """

    name = "population"

    def __init__(self, env: Any = None, preset: str = "auto", n_users: int = 2,
                 users: Sequence[Mapping[str, Any]] | None = None, beta: float = math.inf,
                 gamma: float = 1.0, eps_mistake: float = 0.0, eps_equal: float = 0.0,
                 seed: int | None = 0, name: str = "population") -> None:
        self.name = name
        if users:
            self.users = [UserReward.from_dict(u) for u in users]
        else:
            if isinstance(n_users, bool) or not isinstance(n_users, int) or n_users < 2:
                raise ValueError(f"teacher.n_users must be an integer >= 2, got {n_users!r}")
            if env is None:
                raise ValueError("teacher=population needs the env (for its preset) or users")
            env_id, kwargs = _env_spec(env)
            self.users = preset_users(env_id, str(preset), n_users, kwargs)
        self.preset = preset
        self.seed = seed
        self.eps_equal = float(eps_equal)
        self._teachers = [SyntheticTeacher(beta=beta, gamma=gamma, eps_mistake=eps_mistake,
                                           eps_equal=eps_equal,
                                           seed=None if seed is None else seed * 1000 + k,
                                           name=f"user{k}")
                          for k in range(len(self.users))]

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def user_ids(self) -> list[str]:
        """``user0``, ``user1``...: the annotator id each user's labels carry."""
        return [f"user{k}" for k in range(self.n_users)]

    def check_space(self, observation_space: gym.Space) -> None:
        """Refuse users that read observation indices the env does not have."""
        if not isinstance(observation_space, gym.spaces.Box) or \
                len(observation_space.shape) != 1:
            raise ValueError(f"teacher=population reads flat observations, got "
                             f"{observation_space}")
        dim = int(observation_space.shape[0])
        for k, user in enumerate(self.users):
            if user.max_index() >= dim:
                raise ValueError(f"teacher=population user{k} reads observation index "
                                 f"{user.max_index()}, but observations have {dim} entries")

    def user_rewards(self, user: int, side: Side) -> np.ndarray:
        """``(N, L)`` per-step rewards of user ``user`` for one side's segments."""
        obs, acts, nxt = side
        return self.users[user](obs, acts, nxt)

    def label_user(self, user: int, first: Side, second: Side) -> PreferenceLabels:
        """User ``user``'s answers for ``N`` pairs (``first[k]`` vs ``second[k]``)."""
        r1, r2 = self.user_rewards(user, first), self.user_rewards(user, second)
        teacher = self._teachers[user]
        if teacher.needs_thresholds:
            scale = float(np.mean(np.abs(np.concatenate([r1.ravel(), r2.ravel()]))))
            teacher.update_thresholds(scale, r1.shape[1])
        return teacher.label(r1, r2)


class UserRewardWrapper(gym.Wrapper[Any, Any, Any, Any]):
    """The env's reward replaced by one synthetic user's, the env's own kept in
    ``info["task_reward"]``: an agent trained on it is the user's oracle, and evaluation
    reports the user's return. An env-config wrapper:
    ``{_target_: rewardlearn.vpl.population.UserRewardWrapper, preset: speed, n_users: 4,
    user: 1}``.
    """

    def __init__(self, env: gym.Env, user: int = 0, preset: str = "auto", n_users: int = 2,
                 users: Sequence[Mapping[str, Any]] | None = None) -> None:
        super().__init__(env)
        spec = env.spec
        env_id = spec.id if spec is not None else type(env.unwrapped).__name__
        rewards = [UserReward.from_dict(u) for u in users] if users else \
            preset_users(env_id, preset, n_users, spec.kwargs if spec is not None else None)
        if not 0 <= user < len(rewards):
            raise ValueError(f"user must be in [0, {len(rewards) - 1}], got {user}")
        self.user = rewards[user]
        self._last_obs: np.ndarray | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._last_obs = np.asarray(obs, np.float64)
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        prev = self._last_obs if self._last_obs is not None else np.asarray(obs, np.float64)
        user_r = float(self.user(prev, np.asarray(action), np.asarray(obs, np.float64)))
        self._last_obs = np.asarray(obs, np.float64)
        return obs, user_r, terminated, truncated, {**info, "task_reward": float(reward)}


__all__ = ["PRESETS", "USER_KINDS", "PopulationTeacher", "UserReward", "UserRewardWrapper",
           "preset_users"]
