"""Building a perceptual model from config values, and the perceptual / goal potentials.

:func:`build_perceptual_model` is shared by ``reward=perceptual`` and
``shaping=perceptual``: it loads a saved model (``path``) or fits one on ``demos``
(optionally saving it to ``save``), then checks it against the env's spaces.
:class:`PerceptualPotential` is ``shaping=perceptual``: ``Phi(s) = scale *
(reward(s) - offset)`` (``kind="perceptual"``) or ``Phi(s) = scale *
similarity(e(s), goal)`` (``kind="goal"``, VIP/LIV style).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from rewardlearn.encoders import as_encoder, build_encoder
from rewardlearn.perceptual.configuration import PerceptualConfig
from rewardlearn.perceptual.modeling import PerceptualModel, PerceptualPrediction
from rewardlearn.perceptual.training import DEFAULT_ENCODER, fit_perceptual
from rewardlearn.rewards.base import Obs, TransitionBatch
from rewardlearn.shaping.potentials import Potential

log = logging.getLogger("rewardlearn")

KINDS = ("perceptual", "goal")


def load_goal_frames(goal: str) -> np.ndarray:
    """Goal frames ``(N, H, W, 3)`` uint8 from an image file or a ``.npy`` of frames."""
    path = Path(goal).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"goal image {goal!r} not found (an image file or a .npy of "
                                "(H, W, 3) / (N, H, W, 3) uint8 frames)")
    if path.suffix == ".npy":
        arr = np.load(path)
    else:
        from PIL import Image

        arr = np.asarray(Image.open(path).convert("RGB"))
    arr = np.asarray(arr)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"goal {goal!r} has shape {arr.shape}; expected (H, W, 3) frames")
    return arr.astype(np.uint8)


def set_goal(model: PerceptualModel, goal: str) -> None:
    """Use the mean embedding of a goal image (or of a ``.npy`` of states/frames) as the goal."""
    if model.needs_frames:
        emb = model.embed(None, load_goal_frames(goal))
    else:
        states = np.load(Path(goal).expanduser())
        emb = model.embed(np.atleast_2d(states))
    raw = emb.mean(0)
    model.goal_raw = raw
    model.goal_z = model.standardize(raw[None])[0]


def build_perceptual_model(observation_space: gym.Space, action_space: gym.Space,
                           demos: str | None = None, path: str | None = None,
                           encoder: dict[str, Any] | str | None = None,
                           settings: dict[str, Any] | None = None, save: str | None = None,
                           goal: str | None = None, where: str = "perceptual") -> PerceptualModel:
    """A perceptual model from a saved file (``path``) or fitted on ``demos``, space-checked."""
    if path is not None:
        model = PerceptualModel.load(path, observation_space, action_space)
    elif demos is not None:
        cfg = PerceptualConfig.from_kwargs(dict(settings or {}))
        built = build_encoder(encoder or DEFAULT_ENCODER)
        log.info("%s: fitting on demos %s (encoder %s)", where, demos,
                 getattr(built, "name", type(built).__name__))
        if built is None:
            raise ValueError(f"{where}: no encoder configured")
        model = fit_perceptual(demos, encoder=as_encoder(built), config=cfg)
        model.check_spaces(observation_space, action_space,
                           where=f"{where} model fitted on demos {demos}")
        held = model.metrics.get("heldout") or {}
        log.info("%s: %d steps; held-out spearman %s, boundary mae %s", where,
                 model.steps.k, held.get("spearman"), held.get("boundary_mae"))
        if save:
            model.save(save)
    else:
        raise ValueError(f"{where}: set demos=<dataset from rewardlearn-collect ... "
                         "frames=true> (or path=<saved perceptual model>)")
    if goal is not None:
        set_goal(model, goal)
    return model


class PerceptualPotential(Potential):
    """``shaping=perceptual``: a perceptual-reward or goal-embedding potential.

    Args:
        demos, path, encoder, settings, save, goal: as :func:`build_perceptual_model`
            (built when the env's spaces are known, in :meth:`bind`).
        kind: ``perceptual`` (``Phi = scale * (reward - offset)``, reward in [0, 1]) or
            ``goal`` (``Phi = scale * goal similarity``: ``-||z - z_goal|| / sqrt(D)`` or
            cosine, see ``settings.goal_metric``).
        scale, offset: as above (``offset=1``: 0 at the last step).
        model: an already fitted model (Python use). With none of ``demos``, ``path``,
            ``model``, the model must come from :meth:`load_state_dict` (a saved shaped
            reward) before :meth:`bind`.

    Signals: ``perceptual_step`` and ``perceptual_reward`` of ``s'``.
    """

    name = "perceptual"

    def __init__(self, demos: str | None = None, path: str | None = None,
                 encoder: dict[str, Any] | str | None = None,
                 settings: dict[str, Any] | None = None, kind: str = "perceptual",
                 scale: float = 1.0, offset: float = 1.0, save: str | None = None,
                 goal: str | None = None, model: PerceptualModel | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown perceptual potential kind {kind!r}; choose from {KINDS}")
        self.demos, self.path, self.save, self.goal = demos, path, save, goal
        self.encoder = encoder
        self.settings = dict(settings or {})
        self.kind = kind
        self.name = "perceptual" if kind == "perceptual" else "perceptual_goal"
        self.scale = float(scale)
        self.offset = float(offset)
        self.model: PerceptualModel | None = None
        self._spaces: tuple[gym.Space, gym.Space] | None = None
        if model is not None:
            self._set_model(model)
        elif path is not None:
            self._set_model(PerceptualModel.load(path))

    def _set_model(self, model: PerceptualModel) -> None:
        if self._spaces is not None:
            model.check_spaces(*self._spaces, where="shaping=perceptual model")
        self.model = model
        self.needs_frames = model.needs_frames
        self.frame_size = model.frame_size

    def bind(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        self._spaces = (observation_space, action_space)
        if self.model is None and self.demos is None and self.path is None:
            return  # restored from a saved shaped reward: load_state_dict brings the model
        if self.model is None:
            self._set_model(build_perceptual_model(
                observation_space, action_space, self.demos, self.path, self.encoder,
                self.settings, self.save, self.goal, where="shaping=perceptual"))
        else:
            assert self.model is not None
            self.model.check_spaces(observation_space, action_space,
                                    where="shaping=perceptual model")

    def _model(self) -> PerceptualModel:
        if self.model is None:
            raise RuntimeError("PerceptualPotential has no model: give demos=<dataset> (fitted "
                               "in bind(), when the env's spaces are known) or path=<model>")
        return self.model

    def phi(self, pred: PerceptualPrediction) -> np.ndarray:
        """The potential of predictions."""
        if self.kind == "goal":
            return self.scale * pred.goal_similarity
        return self.scale * (pred.reward - self.offset)

    def __call__(self, obs: Obs, frames: np.ndarray | None = None) -> np.ndarray:
        return self.phi(self._model().predict(obs, frames))

    def transition(self, batch: TransitionBatch, need_obs: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        model = self._model()
        nxt = model.predict(batch.next_obs, batch.frames)
        phi_obs, phi_next = np.zeros(len(batch)), self.phi(nxt)
        if need_obs.any():
            from rewardlearn.shaping.potentials import take_rows

            rows = np.flatnonzero(need_obs)
            frames = None if batch.obs_frames is None else batch.obs_frames[rows]
            phi_obs[rows] = self.phi(model.predict(take_rows(batch.obs, rows), frames))
        signals = {"perceptual_step": nxt.step.astype(np.float64),
                   "perceptual_reward": nxt.reward}
        return phi_obs, phi_next, signals

    def config(self) -> dict[str, Any]:
        return {"encoder": self.encoder, "settings": self.settings, "kind": self.kind,
                "scale": self.scale, "offset": self.offset}

    def state_dict(self) -> dict[str, Any]:
        return {"model": self._model().payload()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "model" in state:
            self._set_model(PerceptualModel.from_payload(state["model"]))

    def summary(self) -> dict[str, Any]:
        return perceptual_summary(self._model())


def perceptual_summary(model: PerceptualModel) -> dict[str, Any]:
    """Figures of a fitted model for ``summary.json``."""
    held = model.metrics.get("heldout") or {}
    return {"perceptual_steps": model.steps.k, "encoder": model.encoder.name,
            "train_boundary_mae": model.metrics.get("train_boundary_mae"),
            "heldout_spearman": held.get("spearman"),
            "heldout_boundary_mae": held.get("boundary_mae")}


__all__ = ["KINDS", "PerceptualPotential", "build_perceptual_model", "load_goal_frames",
           "perceptual_summary", "set_goal"]
