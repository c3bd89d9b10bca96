"""Potential-based shaping on top of any reward module (Ng, Harada & Russell, ICML 1999).

``r' = r + gamma * Phi(s') - Phi(s)`` with three rules that are easy to get wrong:

* ``Phi(s') = 0`` when the transition ``terminated`` (the shaping term is ``-Phi(s)``);
* at a time-limit truncation ``s'`` is the *true* last observation (the wrappers
  pass it) and the full ``gamma * Phi(s')`` is kept: truncation is not terminal;
* ``Phi(s)`` is the value computed when ``s`` was entered (the previous step's
  ``Phi(s')``, or at the first step of an episode ``Phi`` of the reset
  observation), so a potential that changes during training shapes
  consistently (dynamic shaping, Devlin & Kudenko 2012).

The cache is kept per env index (the batch row). After an auto-reset the row's
``obs`` is the next episode's first observation: its cached value was dropped
when the episode ended, so it is computed fresh. A cached value is used only if
the row's observation is the one it was computed for; anything else (an
external ``reset()``, a new batch size) falls back to computing ``Phi(s)``.

Example:
    >>> import numpy as np, gymnasium as gym
    >>> from rewardlearn.rewards.base import TransitionBatch
    >>> from rewardlearn.rewards.env import EnvReward
    >>> from rewardlearn.shaping import FunctionPotential, ShapedReward
    >>> space = gym.spaces.Box(-10, 10, (1,))
    >>> shaped = ShapedReward(space, space, base=EnvReward(space, space),
    ...                       potential=FunctionPotential(lambda o: o[:, 0]), gamma=0.5)
    >>> b = TransitionBatch(np.array([[1.0], [1.0]]), np.zeros((2, 1)), np.array([[4.0], [4.0]]),
    ...                     terminated=[False, True], truncated=[False, False],
    ...                     env_rewards=np.array([0.0, 1.0]))
    >>> shaped(b).tolist()   # 0 + 0.5*4 - 1, and 1 + 0 - 1 at the terminal state
    [1.0, 0.0]
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from rewardlearn.rewards.base import Obs, RewardModel, RewardOutput, TransitionBatch
from rewardlearn.shaping.potentials import Potential
from rewardlearn.utils import import_object


def _flat_rows(obs: Obs, n: int) -> np.ndarray:
    """``(n, -1)`` view of a batch of observations (dict entries concatenated)."""
    if isinstance(obs, dict):
        return np.concatenate([np.asarray(obs[k]).reshape(n, -1) for k in sorted(obs)], axis=1)
    return np.asarray(obs).reshape(n, -1)


class PotentialCache:
    """Per env index: the potential of its current observation, and that observation.

    Example:
        >>> import numpy as np
        >>> c = PotentialCache()
        >>> c.lookup(np.zeros((2, 1)))[1].tolist()        # nothing cached yet
        [False, False]
        >>> c.store(np.ones((2, 1)), np.array([5.0, 6.0]), dones=np.array([False, True]))
        >>> phi, hit = c.lookup(np.ones((2, 1)))
        >>> hit.tolist(), float(phi[0])                        # env 1 ended: dropped
        ([True, False], 5.0)
    """

    def __init__(self) -> None:
        self._obs: np.ndarray | None = None
        self._phi: np.ndarray | None = None
        self._valid: np.ndarray | None = None

    def lookup(self, obs: Obs) -> tuple[np.ndarray, np.ndarray]:
        """``(phi, hit)``: cached potentials and which rows may use them."""
        n = len(next(iter(obs.values()))) if isinstance(obs, dict) else len(obs)
        if self._obs is None or self._phi is None or self._valid is None or len(self._phi) != n:
            return np.zeros(n), np.zeros(n, dtype=bool)
        flat = _flat_rows(obs, n)
        if flat.shape != self._obs.shape:
            return np.zeros(n), np.zeros(n, dtype=bool)
        same = np.all(flat == self._obs, axis=1)
        return self._phi.copy(), self._valid & same

    def store(self, next_obs: Obs, phi_next: np.ndarray, dones: np.ndarray) -> None:
        """Remember ``Phi(s')`` as the potential of each env's new current state.

        Rows whose episode ended are dropped: their next ``obs`` is a reset one.
        """
        n = len(phi_next)
        self._obs = _flat_rows(next_obs, n).copy()
        self._phi = np.asarray(phi_next, dtype=np.float64).copy()
        self._valid = ~np.asarray(dones, dtype=bool)

    def clear(self) -> None:
        """Forget everything (the next call computes every ``Phi(s)``)."""
        self._obs = self._phi = self._valid = None


class ShapingTerm:
    """The shaping rules on top of precomputed potentials, with the per-env cache.

    ``__call__(batch, phi_obs_fresh, phi_next)`` returns ``(F, phi_s, phi_next_used)``
    where ``F = gamma * phi_next_used - phi_s``, ``phi_next_used`` is ``0`` at
    ``terminated`` rows and ``phi_s`` comes from the cache where it holds the row's
    observation, else from ``phi_obs_fresh``. Use :meth:`need_obs` first to learn
    which rows need a fresh ``Phi(s)``.
    """

    def __init__(self, gamma: float | None = None) -> None:
        self.gamma = gamma
        self.cache = PotentialCache()

    def need_obs(self, batch: TransitionBatch) -> np.ndarray:
        """Rows whose ``Phi(s)`` is not cached (first step of an episode, say)."""
        return ~self.cache.lookup(batch.obs)[1]

    def __call__(self, batch: TransitionBatch, phi_obs_fresh: np.ndarray,
                 phi_next: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.gamma is None:
            raise RuntimeError("shaping gamma is not set: give gamma=..., or let train.py set "
                               "it to the agent's discount")
        cached, hit = self.cache.lookup(batch.obs)
        phi_s = np.where(hit, cached, np.asarray(phi_obs_fresh, dtype=np.float64))
        phi_next = np.asarray(phi_next, dtype=np.float64).reshape(len(batch))
        phi_next_used = np.where(batch.terminated, 0.0, phi_next)
        term = self.gamma * phi_next_used - phi_s
        self.cache.store(batch.next_obs, phi_next, batch.dones)
        return term, phi_s, phi_next_used


class ShapingGamma:
    """Mixin: a ``gamma`` attribute kept in ``self.term`` (a :class:`ShapingTerm`)."""

    term: ShapingTerm

    @property
    def gamma(self) -> float | None:
        """The discount used in the shaping term (``None``: not bound yet)."""
        return self.term.gamma

    @gamma.setter
    def gamma(self, value: float | None) -> None:
        self.term.gamma = None if value is None else float(value)


def _spec(obj: Any) -> dict[str, Any]:
    cls = type(obj)
    return {"class": f"{cls.__module__}:{cls.__qualname__}", "config": obj.config()}


def _from_spec(spec: Any, base: type, what: str, *args: Any) -> Any:
    """Build a saved ``{"class": "module:Name", "config": {...}}`` spec; the class must be a
    ``base`` subclass (under a saved model's import guard: a registered one)."""
    if not (isinstance(spec, dict) and isinstance(spec.get("class"), str)
            and isinstance(spec.get("config", {}), dict)):
        raise ValueError(f"the saved {what} must be {{'class': 'module:Name', 'config': "
                         f"{{...}}}}, got {type(spec).__name__}")
    cls = import_object(spec["class"], base=base, what=f"saved {what}")
    return cls(*args, **spec.get("config", {}))


class ShapedReward(ShapingGamma, RewardModel):
    """A reward module plus potential-based shaping: ``r + gamma * Phi(s') - Phi(s)``.

    Args:
        observation_space, action_space: the env's spaces.
        base: any :class:`RewardModel` (``EnvReward`` for the env's own reward), or
            its saved spec (when loading a checkpoint).
        potential: a :class:`Potential`, or its saved spec.
        gamma: the agent's discount. ``None`` until :func:`rewardlearn.shaping.bind_gamma`
            sets it (train.py does, from the agent's config).

    Signals: the base's own, plus ``potential`` (``Phi(s')`` as used, 0 at
    terminal states), ``shaping`` (the added term) and ``base_reward``.
    ``observe`` passes the *base* rewards to the base module, so a module that
    learns from its own rewards (preference relabelling) never sees the shaping, and
    the batch to the potential (one refined online, ``shaping=progress``).
    """

    uses_shaping_gamma = True

    def __init__(self, observation_space: gym.Space, action_space: gym.Space,
                 base: RewardModel | dict[str, Any], potential: Potential | dict[str, Any],
                 gamma: float | None = None) -> None:
        super().__init__(observation_space, action_space)
        self.base: RewardModel = base if isinstance(base, RewardModel) else \
            _from_spec(base, RewardModel, "base reward", observation_space, action_space)
        self.potential: Potential = potential if isinstance(potential, Potential) else \
            _from_spec(potential, Potential, "potential")
        self.potential.bind(observation_space, action_space)
        self.term = ShapingTerm(gamma)
        self.name = f"{self.base.name}+shaping[{self.potential.name}]"
        self._frames_from_parts()
        self._last_base: np.ndarray | None = None

    def _frames_from_parts(self) -> None:
        """``needs_frames``/``frame_size`` from the base and the potential (they may change
        when a saved model's state is loaded into them)."""
        wants = [m for m in (self.base, self.potential) if m.needs_frames]
        self.needs_frames = bool(wants)
        if wants:
            sizes = {tuple(m.frame_size) for m in wants}
            if len(sizes) > 1:
                raise ValueError(f"the base reward and the potential want frames of different "
                                 f"sizes {sorted(sizes)}; give them the same frame_size")
            self.frame_size = wants[0].frame_size

    def compute(self, batch: TransitionBatch) -> RewardOutput:
        base_out = self.base.compute(batch)
        base = np.asarray(base_out.rewards, dtype=np.float64).reshape(len(batch))
        phi_obs, phi_next, pot_signals = self.potential.transition(batch,
                                                                   self.term.need_obs(batch))
        term, _, phi_used = self.term(batch, phi_obs, phi_next)
        self._last_base = base.astype(np.float32)
        signals = {**base_out.signals, **pot_signals, "base_reward": base,
                   "potential": phi_used, "shaping": term}
        return RewardOutput(base + term, signals)

    def observe(self, batch: TransitionBatch, rewards: np.ndarray) -> None:
        base = self._last_base if self._last_base is not None else rewards
        self.base.observe(batch, base)
        self.potential.observe(batch)

    def callbacks(self) -> list[Any]:
        return [*self.base.callbacks(), *self.potential.callbacks()]

    def summary(self) -> dict[str, Any]:
        return {**self.base.summary(), "shaping": {"potential": self.potential.name,
                                                   "gamma": self.gamma,
                                                   **self.potential.summary()}}

    def config(self) -> dict[str, Any]:
        return {"base": _spec(self.base), "potential": _spec(self.potential),
                "gamma": self.gamma}

    def state_dict(self) -> dict[str, Any]:
        return {"base": self.base.state_dict(), "potential": self.potential.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.base.load_state_dict(state.get("base", {}))
        self.potential.load_state_dict(state.get("potential", {}))
        self._frames_from_parts()


__all__ = ["PotentialCache", "ShapedReward", "ShapingGamma", "ShapingTerm"]
