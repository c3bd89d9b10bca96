"""Potentials ``Phi(s)`` for potential-based shaping, and the interface to write new ones.

A potential maps a batch of observations (and, when it declares ``needs_frames``,
the frames rendered from them) to one float per row. Shaping only ever adds
``gamma * Phi(s') - Phi(s)``, so any potential keeps the optimal policy
(Ng, Harada & Russell 1999); a good one makes it faster to find.

Built in: :class:`FunctionPotential` (a user function by dotted path),
:class:`ValuePotential` (a learned SB3 value function: a saved agent, or the
training agent's own critic), :class:`GoalEmbeddingPotential` (distance or
cosine similarity to a goal embedding under any embedding function: the hook
for perceptual/goal-embedding models) and
:class:`rewardlearn.progress.potential.ProgressPotential` (a stage-aware progress
model).

Example:
    >>> import numpy as np
    >>> from rewardlearn.shaping.potentials import FunctionPotential
    >>> phi = FunctionPotential(lambda obs: obs.sum(axis=1))
    >>> phi(np.array([[1.0, 2.0], [3.0, 4.0]])).tolist()
    [3.0, 7.0]
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecNormalize

from rewardlearn.rewards.base import Obs, TransitionBatch
from rewardlearn.rewards.registry import allow_subclasses_of
from rewardlearn.utils import check_code_file, import_object


def take_rows(obs: Obs, rows: np.ndarray) -> Obs:
    """Rows ``rows`` (indices or a boolean mask) of a batch of observations."""
    if isinstance(obs, dict):
        return {k: np.asarray(v)[rows] for k, v in obs.items()}
    return np.asarray(obs)[rows]


def _rows(obs: Obs) -> int:
    return len(next(iter(obs.values()))) if isinstance(obs, dict) else len(obs)


def _row(obs: Obs, i: int) -> Obs:
    if isinstance(obs, dict):
        return {k: np.asarray(v)[i] for k, v in obs.items()}
    return np.asarray(obs)[i]


@allow_subclasses_of
class Potential(abc.ABC):
    """Base class of shaping potentials.

    Subclasses implement :meth:`__call__` (``Phi`` of a batch of observations).
    A potential that depends on more than the current observation (a window of
    past frames, say) overrides :meth:`transition` instead, which sees the whole
    batch of transitions.

    Attributes:
        needs_frames: ``Phi`` reads rendered frames (``batch.obs_frames`` for ``s``,
            ``batch.frames`` for ``s'``); the wrappers then render.
        frame_size: ``(height, width)`` of those frames.
        name: short name for logs and errors.
    """

    needs_frames: bool = False
    frame_size: tuple[int, int] = (224, 224)
    name: str = "potential"

    @abc.abstractmethod
    def __call__(self, obs: Obs, frames: np.ndarray | None = None) -> np.ndarray:
        """``Phi`` of each observation, shape ``(B,)``."""

    def bind(self, observation_space: gym.Space, action_space: gym.Space) -> None:  # noqa: B027
        """Called once with the env's spaces; raise ``ValueError`` if they do not fit."""

    def transition(
        self, batch: TransitionBatch, need_obs: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """``(Phi(obs), Phi(next_obs), signals)`` for a batch.

        ``Phi(obs)`` is only needed for the rows in the boolean mask ``need_obs``
        (the others come from the shaping cache); other rows may hold anything.
        """
        n = len(batch)
        phi_next = np.asarray(self(batch.next_obs, batch.frames), dtype=np.float64).reshape(n)
        phi_obs = np.zeros(n)
        if need_obs.any():
            rows = np.flatnonzero(need_obs)
            frames = None if batch.obs_frames is None else batch.obs_frames[rows]
            phi_obs[rows] = np.asarray(self(take_rows(batch.obs, rows), frames)).reshape(-1)
        return phi_obs, phi_next, {}

    def observe(self, batch: TransitionBatch) -> None:  # noqa: B027
        """Sees every training batch after it was scored (a potential that learns online)."""

    def callbacks(self) -> list[Any]:
        """SB3 callbacks the potential needs during ``learn`` (e.g. to see the agent)."""
        return []

    def config(self) -> dict[str, Any]:
        """Constructor kwargs to rebuild the potential."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Learned state (checkpointed with the shaped reward module)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        if state:
            raise ValueError(f"{type(self).__name__} has no state to load")

    def summary(self) -> dict[str, Any]:
        """Figures for ``summary.json``."""
        return {}


class FunctionPotential(Potential):
    """``Phi`` from a user function given by dotted path.

    Args:
        function: ``"my_pkg.my_module:phi"``; called as ``phi(obs)`` on a batch
            (``(B, ...)`` array or dict of arrays) and must return ``B`` floats.
            With ``batched=False`` it is called once per observation instead.
        scale: multiplies the function's value.
        offset: subtracted before scaling, ``Phi = scale * (phi(obs) - offset)``; e.g.
            ``offset=1`` for a progress in [0, 1] gives ``Phi = 0`` at completion, so
            entering a terminal success state (``Phi = 0`` there) costs nothing.
        batched: whether the function takes a batch.
        needs_frames: the function takes ``(obs, frames)`` and reads the frames.
    """

    name = "function"

    def __init__(self, function: str | Callable[..., Any], scale: float = 1.0,
                 batched: bool = True, needs_frames: bool = False, offset: float = 0.0
                 ) -> None:
        self.function_path = function if isinstance(function, str) else None
        fn = (import_object(function, what="shaping function") if isinstance(function, str)
              else function)
        if not callable(fn):
            raise TypeError(f"shaping function {function!r} is not callable")
        self.fn: Callable[..., Any] = fn
        self.scale = float(scale)
        self.offset = float(offset)
        self.batched = bool(batched)
        self.needs_frames = bool(needs_frames)

    def __call__(self, obs: Obs, frames: np.ndarray | None = None) -> np.ndarray:
        n = _rows(obs)
        if self.batched:
            args: tuple[Any, ...] = (obs, frames) if self.needs_frames else (obs,)
            out = np.asarray(self.fn(*args), dtype=np.float64)
        else:
            values = []
            for i in range(n):
                one = _row(obs, i)
                args = (one, None if frames is None else frames[i]) if self.needs_frames \
                    else (one,)
                values.append(float(np.asarray(self.fn(*args))))
            out = np.asarray(values, dtype=np.float64)
        if out.shape != (n,):
            raise ValueError(f"shaping function {self.function_path or self.fn!r} returned shape "
                             f"{out.shape} for {n} observations; it must return one float "
                             "per observation")
        return self.scale * (out - self.offset)

    def config(self) -> dict[str, Any]:
        if self.function_path is None:
            raise ValueError("a FunctionPotential built from a callable cannot be saved; "
                             "pass the function as a dotted path")
        return {"function": self.function_path, "scale": self.scale, "offset": self.offset,
                "batched": self.batched, "needs_frames": self.needs_frames}


def _find_normalizer(venv: VecEnv | None) -> VecNormalize | None:
    env: Any = venv
    while isinstance(env, VecEnvWrapper):
        if isinstance(env, VecNormalize):
            return env
        env = env.venv
    return None


class _BindAgent(BaseCallback):
    """Hands the training agent (and its observation normaliser) to a ValuePotential."""

    def __init__(self, potential: ValuePotential) -> None:
        super().__init__()
        self.potential = potential

    def _on_training_start(self) -> None:
        self.potential.set_agent(self.model, _find_normalizer(self.training_env))

    def _on_step(self) -> bool:
        return True


class ValuePotential(Potential):
    """``Phi(s) = scale * V(s)`` from an SB3 agent's critic.

    Args:
        path: a saved agent (``runs/<run>/agent.zip``); its ``vecnormalize.pkl``
            next to it is used when present. ``None``: the *training* agent's own
            critic, which changes as it learns (dynamic shaping: each ``Phi(s)`` is
            the value computed when ``s`` was entered).
        algo: ``ppo`` or ``sac`` (for ``path``). SAC's value is
            ``min_i Q_i(s, mu(s))`` at its deterministic action.
        scale: multiplies the value.
        device: torch device of the loaded agent.
    """

    name = "value"

    def __init__(self, path: str | None = None, algo: str = "ppo", scale: float = 1.0,
                 device: str = "cpu") -> None:
        self.path = path
        self.algo = algo
        self.scale = float(scale)
        self.device = device
        self.agent: BaseAlgorithm | None = None
        self.normalizer: VecNormalize | None = None
        if path is not None:
            self._load(path)

    def _load(self, path: str) -> None:
        from stable_baselines3 import PPO, SAC

        algos: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": SAC}
        if self.algo not in algos:
            raise ValueError(f"unknown algo {self.algo!r} for shaping=value; choose ppo or sac")
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"value agent {path!r} not found; pass a run's agent.zip")
        # from a saved reward model's settings: only a path the user trusts (SB3 unpickles
        # vecnormalize.pkl and cloudpickled entries of the zip)
        check_code_file(str(path), "an SB3 agent (SB3 unpickles its vecnormalize.pkl and "
                        "cloudpickled entries of the zip)")
        agent = algos[self.algo].load(file, device=self.device)
        normalizer = None
        stats = file.with_name("vecnormalize.pkl")
        if stats.is_file():
            import pickle

            with stats.open("rb") as f:
                normalizer = pickle.load(f)
        self.set_agent(agent, normalizer)

    def bind(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        if self.agent is None:
            return
        from rewardlearn.rewards.spaces import check_spaces, describe_space

        check_spaces(describe_space(self.agent.observation_space),
                     describe_space(self.agent.action_space), observation_space, action_space,
                     where=f"value agent {self.path}")

    def set_agent(self, agent: BaseAlgorithm, normalizer: VecNormalize | None = None) -> None:
        """Use ``agent``'s critic from now on (observations normalised by ``normalizer``)."""
        self.agent = agent
        self.normalizer = normalizer

    def __call__(self, obs: Obs, frames: np.ndarray | None = None) -> np.ndarray:
        if self.agent is None:
            raise RuntimeError("ValuePotential has no agent yet: give a path, or use it during "
                               "training (its callback binds the training agent)")
        if self.normalizer is not None:
            obs = self.normalizer.normalize_obs(obs)
        policy: Any = self.agent.policy
        with torch.no_grad():
            obs_t, _ = policy.obs_to_tensor(obs)
            if hasattr(policy, "predict_values"):
                values = policy.predict_values(obs_t)
            else:
                actions = policy.actor(obs_t, deterministic=True)
                values = torch.min(torch.cat(policy.critic(obs_t, actions), dim=1), dim=1,
                                   keepdim=True).values
        return self.scale * values.reshape(-1).cpu().numpy().astype(np.float64)

    def callbacks(self) -> list[Any]:
        return [_BindAgent(self)] if self.path is None else []

    def config(self) -> dict[str, Any]:
        return {"path": self.path, "algo": self.algo, "scale": self.scale, "device": self.device}


class GoalEmbeddingPotential(Potential):
    """Closeness to a goal under an embedding: the perceptual/goal-embedding hook.

    ``Phi(s) = -scale * ||e(s) - g||`` (``metric="l2"``) or
    ``scale * cos(e(s), g)`` (``metric="cosine"``), with ``e`` any embedding
    function and ``g`` the goal's embedding (VIP, Ma et al. 2023; LIV, Ma et al. 2023).

    Args:
        embed: dotted path of a callable ``embed(obs, frames) -> (B, D)`` (or an
            object with such an ``embed`` method), e.g. a frozen image encoder.
        goal: ``.npy`` file with the goal embedding ``(D,)``.
        metric: ``l2`` or ``cosine``.
        scale: multiplies the potential.
        needs_frames: the embedding reads frames (rendered at ``frame_size``).
        frame_size: ``[height, width]`` of those frames.
    """

    name = "goal"

    def __init__(self, embed: str | Callable[..., Any], goal: str | np.ndarray | list[float],
                 metric: str = "l2", scale: float = 1.0, needs_frames: bool = False,
                 frame_size: tuple[int, int] | list[int] = (224, 224)) -> None:
        if metric not in ("l2", "cosine"):
            raise ValueError(f"metric must be 'l2' or 'cosine', got {metric!r}")
        self.embed_path = embed if isinstance(embed, str) else None
        obj = import_object(embed, what="goal embedding") if isinstance(embed, str) else embed
        fn = getattr(obj, "embed", obj)
        if not callable(fn):
            raise TypeError(f"embedding {embed!r} is neither callable nor has .embed")
        self.embed_fn: Callable[..., Any] = fn
        self.goal_path = goal if isinstance(goal, str) else None
        raw = np.load(goal) if isinstance(goal, str) else goal
        self.goal = np.asarray(raw, dtype=np.float64).reshape(-1)
        self.metric = metric
        self.scale = float(scale)
        self.needs_frames = bool(needs_frames)
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))

    def __call__(self, obs: Obs, frames: np.ndarray | None = None) -> np.ndarray:
        e = np.asarray(self.embed_fn(obs, frames), dtype=np.float64)
        if e.ndim != 2 or e.shape[1] != self.goal.shape[0]:
            raise ValueError(f"embedding returned shape {e.shape}; expected (B, "
                             f"{self.goal.shape[0]}) to match the goal embedding")
        if self.metric == "l2":
            return -self.scale * np.linalg.norm(e - self.goal, axis=1)
        norms = np.linalg.norm(e, axis=1) * np.linalg.norm(self.goal) + 1e-12
        return self.scale * (e @ self.goal) / norms

    def config(self) -> dict[str, Any]:
        if self.embed_path is None:
            raise ValueError("a GoalEmbeddingPotential built from a callable cannot be saved; "
                             "pass the embedding as a dotted path")
        return {"embed": self.embed_path, "goal": self.goal_path or self.goal.tolist(),
                "metric": self.metric, "scale": self.scale, "needs_frames": self.needs_frames,
                "frame_size": list(self.frame_size)}


__all__ = [
    "FunctionPotential",
    "GoalEmbeddingPotential",
    "Potential",
    "ValuePotential",
    "take_rows",
]
