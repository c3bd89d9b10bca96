"""The one protocol every reward module implements (saving and the Hub: :mod:`.base`).

A reward module is called on a *batch of transitions* and returns one reward per
transition, like imitation's ``RewardFn`` but with ``terminated`` and
``truncated`` kept apart (a time limit is not a terminal state: shaping and value
targets differ between the two) and rendered frames passed when
the module declares it needs them. One vectorised wrapper
(:class:`rewardlearn.wrappers.RewardVecEnvWrapper`) therefore serves every
module, and modules are swappable by config alone.
"""

from __future__ import annotations

import abc
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeAlias

import gymnasium as gym
import numpy as np

from rewardlearn.settings import RewardModelConfig

Obs: TypeAlias = "np.ndarray | dict[str, np.ndarray]"


def as_obs(obs: Obs) -> Obs:
    """Dict observations stored as one numpy structured array (one field per key) -> a dict.

    Reward evaluation keeps Dict observations as structured arrays so that
    indexing, repeating and tiling work as for plain arrays (images stay uint8);
    reward modules always see the dict.
    """
    if isinstance(obs, np.ndarray) and obs.dtype.names:
        return {name: obs[name] for name in obs.dtype.names}
    return obs


class NonFiniteRewardError(RuntimeError):
    """A reward module produced NaN or inf."""


@dataclass
class TransitionBatch:
    """A batch of ``B`` transitions ``(obs, acts, next_obs)``.

    ``next_obs`` is the *true* next observation: on an auto-reset it is the
    episode's last observation, never the first one of the next episode.
    ``frames`` (``(B, H, W, 3)`` uint8) are rendered from the state of
    ``next_obs`` and ``obs_frames`` from that of ``obs``; both are present only
    when the module sets ``needs_frames``. ``env_rewards`` is the env's own
    reward for the transition (used by ``reward=env`` and by shaping on top of
    it; learned modules must not read it).

    ``frame_ids``/``obs_frame_ids`` (``(B,)`` int, optional) name the frames of
    ``frames``/``obs_frames``: rows with the same id have identical frames, so a
    module may cache per-frame work by id (:class:`FrameCache`). The evaluator
    (:mod:`rewardlearn.cli.evaluate`) sets them, and its rows are then independent
    ``(s, a, s')`` queries, not consecutive steps of parallel envs; the training
    wrappers leave them ``None``. Ids are unique within a process (one id is never
    reused for another frame), and modules that ignore them give the same rewards.
    """

    obs: Obs
    acts: np.ndarray
    next_obs: Obs
    terminated: np.ndarray
    truncated: np.ndarray
    frames: np.ndarray | None = None
    obs_frames: np.ndarray | None = None
    env_rewards: np.ndarray | None = None
    infos: list[dict[str, Any]] | None = None
    frame_ids: np.ndarray | None = None
    obs_frame_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.acts)
        self.obs, self.next_obs = as_obs(self.obs), as_obs(self.next_obs)
        self.terminated = np.asarray(self.terminated, dtype=bool).reshape(n)
        self.truncated = np.asarray(self.truncated, dtype=bool).reshape(n)
        for name in ("frames", "obs_frames", "frame_ids", "obs_frame_ids"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"{len(value)} {name} for {n} transitions")
        for ids, frames in ((self.frame_ids, self.frames), (self.obs_frame_ids, self.obs_frames)):
            if ids is not None and frames is None:
                raise ValueError("frame ids given without the frames they name")

    @classmethod
    def from_arrays(
        cls,
        obs: Obs,
        acts: np.ndarray,
        next_obs: Obs,
        terminated: np.ndarray | None = None,
        truncated: np.ndarray | None = None,
        frames: np.ndarray | None = None,
        obs_frames: np.ndarray | None = None,
        frame_ids: np.ndarray | None = None,
        obs_frame_ids: np.ndarray | None = None,
    ) -> TransitionBatch:
        """Batch with all-false flags unless given."""
        n = len(acts)
        return cls(
            obs,
            np.asarray(acts),
            next_obs,
            np.zeros(n, bool) if terminated is None else terminated,
            np.zeros(n, bool) if truncated is None else truncated,
            frames,
            obs_frames,
            frame_ids=frame_ids,
            obs_frame_ids=obs_frame_ids,
        )

    @classmethod
    def concat(cls, batches: list[TransitionBatch]) -> TransitionBatch:
        """One batch of every row of ``batches``, in order (e.g. the steps of a rollout).

        Optional fields are kept only when every batch has them; ``infos`` is the
        concatenated list.

        Example:
            >>> a = TransitionBatch.from_arrays(np.zeros((2, 3)), np.zeros((2, 1)), np.ones((2, 3)))
            >>> b = TransitionBatch.from_arrays(np.ones((1, 3)), np.ones((1, 1)), np.ones((1, 3)),
            ...                                 terminated=np.array([True]))
            >>> TransitionBatch.concat([a, b]).terminated.tolist()
            [False, False, True]
        """
        if not batches:
            raise ValueError("TransitionBatch.concat needs at least one batch")

        def cat(values: list[Any]) -> Any:
            if any(v is None for v in values):
                return None
            if isinstance(values[0], dict):
                return {k: np.concatenate([v[k] for v in values]) for k in values[0]}
            return np.concatenate(values)

        def get(name: str) -> list[Any]:
            return [getattr(b, name) for b in batches]

        infos = get("infos")
        return cls(
            obs=cat(get("obs")),
            acts=cat(get("acts")),
            next_obs=cat(get("next_obs")),
            terminated=cat(get("terminated")),
            truncated=cat(get("truncated")),
            frames=cat(get("frames")),
            obs_frames=cat(get("obs_frames")),
            env_rewards=cat(get("env_rewards")),
            infos=None if any(i is None for i in infos) else [x for i in infos for x in i],
            frame_ids=cat(get("frame_ids")),
            obs_frame_ids=cat(get("obs_frame_ids")),
        )

    def __len__(self) -> int:
        return len(self.acts)

    @property
    def dones(self) -> np.ndarray:
        """``terminated | truncated`` (an episode ended, for either reason)."""
        return self.terminated | self.truncated


@dataclass
class RewardOutput:
    """Rewards for a batch plus optional per-transition signals.

    ``signals`` maps a name (``"stage"``, ``"progress"``, ``"vlm_score"``...) to a
    ``(B,)`` array; wrappers put them in ``info["reward_signals"]`` and the
    rollout recorder writes them to each video's sidecar.
    """

    rewards: np.ndarray
    signals: dict[str, np.ndarray] = field(default_factory=dict)


class FrameCache:
    """Per-frame results keyed by :attr:`TransitionBatch.frame_ids` (bounded).

    :meth:`rows` computes ``fn`` once per id not seen before and returns the
    cached rows for the rest. At most ``max_items`` ids are kept (the oldest are
    dropped first); :meth:`clear` forgets all (the evaluator calls
    :meth:`RewardModel.clear_frame_cache` before and after each evaluation, and
    modules call it when their model changes).

    Example:
        >>> import numpy as np
        >>> cache = FrameCache()
        >>> frames = np.arange(3)[:, None, None, None] * np.ones((3, 2, 2, 3), np.uint8)
        >>> cache.rows(np.array([7, 8, 7]), frames[[0, 1, 0]], lambda f: f.mean((1, 2, 3)))
        array([0., 1., 0.])
        >>> cache.misses, cache.hits
        (2, 1)
    """

    def __init__(self, max_items: int = 200_000) -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {max_items}")
        self.max_items = int(max_items)
        self._memo: dict[int, np.ndarray] = {}
        self.hits = 0
        """Rows answered from the cache."""
        self.misses = 0
        """Distinct ids computed (frames passed to ``fn``)."""

    def __len__(self) -> int:
        return len(self._memo)

    def clear(self) -> None:
        """Forget every cached row (the counters are kept)."""
        self._memo.clear()

    def rows(self, ids: np.ndarray, frames: np.ndarray,
             fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """``fn(frames)`` (``(N, ...)`` per-frame results) computed once per distinct new id."""
        ids = np.asarray(ids, np.int64).reshape(-1)
        if len(ids) != len(frames):
            raise ValueError(f"{len(ids)} frame ids for {len(frames)} frames")
        if len(ids) == 0:
            return np.asarray(fn(frames[:0]))
        uniq, first, inv = np.unique(ids, return_index=True, return_inverse=True)
        keys = uniq.tolist()
        missing = [k for k, u in enumerate(keys) if u not in self._memo]
        if missing:
            new = np.asarray(fn(frames[first[missing]]))
            if len(new) != len(missing):
                raise ValueError(f"per-frame function returned {len(new)} rows for "
                                 f"{len(missing)} frames")
            for k, value in zip(missing, new, strict=True):
                self._memo[keys[k]] = value
        self.misses += len(missing)
        self.hits += len(ids) - len(missing)
        out = np.stack([self._memo[u] for u in keys])[inv.reshape(-1)]
        excess = len(self._memo) - self.max_items
        if excess > 0:
            for key in list(itertools.islice(self._memo, excess)):
                del self._memo[key]
        return out


def check_finite(rewards: np.ndarray, name: str) -> np.ndarray:
    """Raise :class:`NonFiniteRewardError` naming the module and the bad rows."""
    bad = ~np.isfinite(rewards)
    if bad.any():
        rows = np.flatnonzero(bad)[:10].tolist()
        raise NonFiniteRewardError(
            f"reward module {name} returned non-finite rewards at batch rows {rows} "
            f"(values {rewards[bad][:10].tolist()}). Check its inputs (observation scale, "
            "frames) and its checkpoint."
        )
    return rewards


class RewardProtocol(abc.ABC):
    """The batched-call protocol of every reward module, and its capability flags.

    Modules subclass :class:`~rewardlearn.rewards.base.RewardModel`, which adds saving,
    loading and the Hub on top of this; the registry and the safe format
    (:mod:`rewardlearn.rewards.registry`, :mod:`rewardlearn.rewards.pretrained`) know
    modules by this class, so they sit below the Hub layer.

    Subclasses implement :meth:`compute`. Learned modules also override
    :meth:`state_dict`/:meth:`load_state_dict` (for checkpoints) and may return
    SB3 callbacks from :meth:`callbacks` to train themselves during ``learn``.

    Capability flags (class attributes with defaults; a module sets the ones that apply,
    in its class body or in ``__init__``; nothing outside reads them with ``getattr``):

    Attributes:
        name: short name used in logs and errors.
        needs_frames: the module reads ``batch.frames``; the wrappers then render.
        frame_size: ``(height, width)`` the module wants frames at.
        is_ground_truth: the module returns the env's own reward (``reward=env``): a run
            then logs no separate learned return.
        needs_sim_states: the module (e.g. a teacher that renders or replays) needs each
            step's simulator state; the training env then records it in ``info``.
        uses_shaping_gamma: the module shapes with a potential, ``F = gamma * Phi(s') -
            Phi(s)`` (Ng et al. 1999), so it must be given the agent's discount.
        gamma: the discount of the module's own shaping when ``uses_shaping_gamma``;
            ``None`` means "the agent's", filled in by ``shaping.bind_gamma``.
        shapes_with_progress: the module already adds a progress potential, so
            ``shaping=progress`` on top of it would shape twice and is refused.
        deferrable: the reward of a transition depends only on that transition and on
            parameters that change between rollouts, never during one (a module that
            learns does it in callbacks at a rollout's end, and ``observe`` does not
            change ``compute``). An on-policy agent may then have a whole rollout's
            rewards computed in one batched call at its end (``reward_timing``; see
            :mod:`rewardlearn.wrappers.vec`), with the same result.
        info_keys: ``info`` entries the module reads for each ``s'`` (an env's stage
            signal); reward evaluation attaches them per state from its rollouts.
        has_support: the module keeps the states it was fitted on and measures how far a
            state lies from them (:meth:`support_distance`, :meth:`support_radius`), so a
            user of its scores can tell where it never saw data (``eval.select.support``).
        defer_consumes_frames: when deferred, the module takes each step's frames at
            :meth:`defer_step` (encoding them as they come), so the wrapper keeps none.
        settings_class: the module's :class:`~rewardlearn.settings.RewardModelConfig`
            dataclass (every setting and its default): ``train`` builds it from
            ``reward.model`` (so checks it) before any env is made and hands the object to
            the constructor (``config=``). ``None`` for a module without settings.
        runtime_params: constructor arguments that are objects a run supplies, not
            settings (``teacher`` of ``reward=preference``).
        legacy_settings: the values of settings whose default changed, for checkpoints
            saved before the setting existed (their saved settings lack it): such a model
            is rebuilt as it was trained, not with today's default.
    """

    name: str = "reward"
    needs_frames: bool = False
    frame_size: tuple[int, int] = (224, 224)
    is_ground_truth: bool = False
    needs_sim_states: bool = False
    uses_shaping_gamma: bool = False
    gamma: float | None = None
    shapes_with_progress: bool = False
    deferrable: bool = False
    has_support: bool = False
    defer_consumes_frames: bool = False
    info_keys: tuple[str, ...] = ()
    settings_class: ClassVar[type[RewardModelConfig] | None] = None
    runtime_params: ClassVar[tuple[str, ...]] = ()
    legacy_settings: ClassVar[dict[str, Any]] = {}
    frame_cache: FrameCache | None = None
    """Set by modules that cache per-frame work by :attr:`TransitionBatch.frame_ids`."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        self.observation_space = observation_space
        self.action_space = action_space
        self.run_dir: Path | None = None
        """Set by ``train.py``: where a module that learns may checkpoint itself."""
        self.provenance: dict[str, Any] = {}
        """Set when loaded from a saved model: where it came from and the run that trained it
        (``source``, ``command``, ``env``...), so a run that reuses it does not claim it."""

    @abc.abstractmethod
    def compute(self, batch: TransitionBatch) -> RewardOutput:
        """Rewards (``(B,)`` float) and signals for a batch of transitions."""

    def __call__(self, batch: TransitionBatch) -> np.ndarray:
        out = self.compute(batch)
        rewards = np.asarray(out.rewards, dtype=np.float32).reshape(len(batch))
        return check_finite(rewards, self.name)

    def support_distance(self, obs: Any) -> np.ndarray:
        """``(N,)`` distance of each state to the nearest state the module was fitted on
        (modules with :attr:`has_support`)."""
        raise NotImplementedError(f"reward module {self.name} keeps no fitted states "
                                  "(has_support is false)")

    def support_radius(self, quantile: float) -> float:
        """The ``quantile`` of the fitted states' distances to their nearest other fitted
        state: a state farther than this from every fitted state is outside the support
        (modules with :attr:`has_support`)."""
        raise NotImplementedError(f"reward module {self.name} keeps no fitted states "
                                  "(has_support is false)")

    def clear_frame_cache(self) -> None:
        """Forget per-frame results cached by frame id (see :class:`FrameCache`)."""
        if self.frame_cache is not None:
            self.frame_cache.clear()

    def observe(self, batch: TransitionBatch, rewards: np.ndarray) -> None:  # noqa: B027
        """Called by the wrappers after each batched reward call during training.

        Modules that learn online (preference learning, distillation) store the
        experience here; the default ignores it. ``rewards`` are the module's own.
        """

    def observe_steps(self, batches: Sequence[TransitionBatch], rewards: np.ndarray,
                      joined: TransitionBatch | None = None) -> None:
        """Consecutive steps at once (deferred rewards: one rollout), in their order.

        ``rewards``: ``(T, n_envs)``; ``joined``: ``TransitionBatch.concat(batches)`` when the
        caller has it. The default calls :meth:`observe` step by step; modules that
        store many steps override it with one vectorised pass.
        """
        for batch, r in zip(batches, rewards, strict=True):
            self.observe(batch, r)

    def defer_step(self, batch: TransitionBatch) -> None:  # noqa: B027
        """A step whose reward is deferred to the rollout's end (``reward_timing=rollout``);
        a module may start its work now (:attr:`defer_consumes_frames`). Default: nothing."""

    def compute_deferred(self, batch: TransitionBatch) -> RewardOutput:
        """The rewards of a rollout's deferred steps, joined in their order (the steps given
        to :meth:`defer_step`). Default: :meth:`compute` on them."""
        return self.compute(batch)

    def callbacks(self) -> list[Any]:
        """SB3 callbacks that train or refresh this module during ``learn``."""
        return []

    def summary(self) -> dict[str, Any]:
        """Figures about the module's own training for ``summary.json`` (labels used...)."""
        return {}

    def config(self) -> dict[str, Any]:
        """Constructor kwargs (besides the spaces) needed to rebuild the module: its settings
        (``self.cfg``, the :attr:`settings_class` object) when it has them."""
        cfg = getattr(self, "cfg", None)
        return cfg.to_dict() if isinstance(cfg, RewardModelConfig) else {}

    def agent_kwargs(self, algo: str) -> dict[str, Any]:
        """Agent settings this module needs (``algo``: ``ppo`` or ``sac``), e.g. a replay
        buffer class; ``build_agent`` merges them over the env's and the user's."""
        return {}

    def check_run(self, algo: str, total_timesteps: int) -> list[str]:
        """Warnings about this module in this run (logged before training): e.g. a budget
        that needs a schedule of its own with this agent."""
        return []

    def state_dict(self) -> dict[str, Any]:
        """Learned state; empty for modules with nothing learned."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        if state:
            raise ValueError(f"{type(self).__name__} has no learned state to load")
