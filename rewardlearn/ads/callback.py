"""``agent.discount_schedule=ads``: the discount moved during training (an SB3 callback).

:class:`DiscountScheduleCallback` watches the agent's finished training episodes (their raw
observations, before any ``VecNormalize``), asks the :class:`~rewardlearn.ads.recognizer.
ProgressRecognizer` every ``update_every`` env steps how far along the demos they get, and
sets the discount ``gamma = alpha ** (1 / k)`` everywhere the agent reads one: ``model.gamma``
(SAC/TD3 read it in ``train()``), ``model.rollout_buffer.gamma`` (PPO's returns and GAE), a
replay buffer's own ``gamma`` (SB3's n-step buffer), and the reward normaliser's
(``VecNormalize``'s discounted-return statistics). Updates happen at a rollout's end, so a
PPO rollout is discounted with one gamma and SAC's next ``train()`` uses the new one.

It works with any reward (``reward=ot``, ``perceptual``, ``progress``, the env's): its demos
are its own setting or the reward's ``reward.model.demos``. Logged to TensorBoard as
``discount/gamma``, ``discount/progress_k``, ``discount/agent_score`` and
``discount/reference_score``; its history is written to ``discount_schedule.json`` in the
run folder at each update and at the end.

Liu et al., "Imitation Learning from Observation with Automatic Discount Scheduling", ICLR
2024, arXiv 2310.07433.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from omegaconf import DictConfig
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback

from rewardlearn.ads.configuration import ADSConfig, schedule_settings
from rewardlearn.ads.recognizer import ProgressRecognizer
from rewardlearn.encoders import Encoder, build_state_encoder
from rewardlearn.rewards.base import RewardModel
from rewardlearn.rewards.features import flatten_obs

log = logging.getLogger("rewardlearn")

RECORD = "discount_schedule.json"
"""The schedule's history, in the run folder."""


def set_discount(agent: BaseAlgorithm, gamma: float) -> list[str]:
    """Set ``gamma`` wherever ``agent`` reads its discount; returns where it was set."""
    places = ["model.gamma"]
    model: Any = agent  # PPO, SAC, TD3... all keep a gamma that BaseAlgorithm does not declare
    model.gamma = float(gamma)
    for name in ("rollout_buffer", "replay_buffer"):
        buf = getattr(agent, name, None)
        if buf is not None and hasattr(buf, "gamma"):
            buf.gamma = float(gamma)
            places.append(f"model.{name}.gamma")
    norm = agent.get_vec_normalize_env()
    if norm is not None:
        norm.gamma = float(gamma)
        places.append("VecNormalize.gamma")
    return places


class DemoFeatures:
    """The recognizer's features: flat states, or a state encoder's features of them,
    standardised by the demos' statistics."""

    def __init__(self, demos: list[np.ndarray], standardize: bool, min_std: float,
                 encoder: Encoder | None = None) -> None:
        if encoder is not None and encoder.needs_frames:
            raise ValueError(f"agent.discount_schedule.encoder {encoder.name!r} reads frames; "
                             "the progress recognizer reads states (use relative or state)")
        self.encoder = encoder
        raw = [self._raw(d) for d in demos]
        rows = np.concatenate(raw)
        self.mean = rows.mean(0) if standardize else np.zeros(rows.shape[1])
        self.std = np.maximum(rows.std(0), min_std) if standardize else np.ones(rows.shape[1])
        self.demos = [(r - self.mean) / self.std for r in raw]

    def _raw(self, flat: np.ndarray) -> np.ndarray:
        if self.encoder is None:
            return np.asarray(flat, np.float64)
        return np.asarray(self.encoder.embed(np.asarray(flat)), np.float64)

    def __call__(self, flat: np.ndarray) -> np.ndarray:
        return (self._raw(flat) - self.mean) / self.std


def _take(obs: Any, i: int) -> Any:
    return {k: v[i] for k, v in obs.items()} if isinstance(obs, dict) else obs[i]


def _stack(rows: list[Any]) -> Any:
    if isinstance(rows[0], dict):
        return {k: np.stack([r[k] for r in rows]) for k in rows[0]}
    return np.stack(rows)


class DiscountScheduleCallback(BaseCallback):
    """Moves the agent's discount with ADS (see the module docstring).

    Args:
        settings: the :class:`~rewardlearn.ads.configuration.ADSConfig`.
        demos: each demo's observations ``1..T`` (flat, raw).
        observation_space: the env's (to flatten the agent's observations alike).
        run_dir: where ``discount_schedule.json`` goes (``None``: nowhere).
    """

    def __init__(self, settings: ADSConfig, demos: list[np.ndarray],
                 observation_space: gym.Space, run_dir: Path | None = None,
                 verbose: int = 0) -> None:
        super().__init__(verbose)
        self.settings = settings
        self.features = DemoFeatures(
            demos, settings.standardize, settings.min_std,
            build_state_encoder(settings.encoder, "agent.discount_schedule.encoder"))
        self.space = observation_space
        self.run_dir = run_dir
        self.recognizer: ProgressRecognizer | None = None
        self.episodes: deque[np.ndarray] = deque(maxlen=settings.episodes)
        self._running: list[list[Any]] = []
        self._last_update = 0
        self.history: list[dict[str, float]] = []
        self.compute_s = 0.0
        """Seconds spent reading episodes and updating the recognizer."""

    def horizon(self) -> int:
        """``settings.horizon``, else the training env's time limit, else the longest demo."""
        if self.settings.horizon is not None:
            return int(self.settings.horizon)
        try:
            spec = self.training_env.get_attr("spec", [0])[0]
            limit = getattr(spec, "max_episode_steps", None)
        except (AttributeError, IndexError):
            limit = None
        return int(limit) if limit else max(len(d) for d in self.features.demos)

    def _on_training_start(self) -> None:
        s = self.settings
        if self.recognizer is None:
            t0 = time.perf_counter()
            self.recognizer = ProgressRecognizer(
                self.features.demos, self.horizon(), alpha=s.alpha, start=s.start,
                threshold=s.threshold, max_increments=s.max_increments,
                ref_percentile=s.ref_percentile, agent_percentile=s.agent_percentile,
                metric=s.metric, pad=s.pad_demos)
            self.compute_s += time.perf_counter() - t0
        self._running = [[] for _ in range(self.training_env.num_envs)]
        self._last_update = self.num_timesteps
        places = set_discount(self.model, self.recognizer.gamma)
        self._record({"k": float(self.recognizer.k), "gamma": self.recognizer.gamma})
        log.info("discount schedule ads: H=%d, k0=%d, gamma=%.4f (set in %s)",
                 self.recognizer.horizon, self.recognizer.k, self.recognizer.gamma,
                 ", ".join(places))

    def _raw_obs(self) -> tuple[Any, list[Any]]:
        """This step's raw observations and, per env, its raw terminal observation."""
        norm = self.model.get_vec_normalize_env()
        obs = self.locals["new_obs"] if norm is None else norm.get_original_obs()
        terminal = []
        for info, done in zip(self.locals["infos"], self.locals["dones"], strict=True):
            t = info.get("terminal_observation") if done else None
            if t is not None and norm is not None:
                t = norm.unnormalize_obs(t)
            terminal.append(t)
        return obs, terminal

    def _on_step(self) -> bool:
        t0 = time.perf_counter()
        obs, terminal = self._raw_obs()
        for i, done in enumerate(self.locals["dones"]):
            row = terminal[i] if done and terminal[i] is not None else _take(obs, i)
            self._running[i].append(row)
            if done:
                flat = flatten_obs(self.space, _stack(self._running[i]))
                self.episodes.append(self.features(flat))
                self._running[i] = []
        self.compute_s += time.perf_counter() - t0
        return True

    def _on_rollout_end(self) -> None:
        due = self.num_timesteps - self._last_update >= self.settings.update_every
        if not due or not self.episodes or self.recognizer is None:
            return
        self._last_update = self.num_timesteps
        t0 = time.perf_counter()
        metrics = self.recognizer.update(list(self.episodes))
        self.compute_s += time.perf_counter() - t0
        set_discount(self.model, metrics["gamma"])
        self._record(metrics)
        if metrics["increments"]:
            log.info("discount schedule ads at %d steps: k=%d, gamma=%.4f (agent score %.1f, "
                     "reference %.1f)", self.num_timesteps, int(metrics["k"]), metrics["gamma"],
                     metrics["agent_score"], metrics["reference_score"])

    def _record(self, metrics: dict[str, float]) -> None:
        entry = {"timesteps": float(self.num_timesteps), **metrics}
        self.history.append(entry)
        self.logger.record("discount/gamma", metrics["gamma"])
        self.logger.record("discount/progress_k", metrics["k"])
        for key in ("agent_score", "reference_score"):
            if key in metrics:
                self.logger.record(f"discount/{key}", metrics[key])
        self.save()

    def _on_training_end(self) -> None:
        self.save()

    def summary(self) -> dict[str, Any]:
        """The schedule's settings, its first and last state and every update."""
        rec = self.recognizer
        return {"schedule": self.settings.name, "settings": self.settings.to_dict(),
                "horizon": None if rec is None else rec.horizon,
                "k0": self.history[0]["k"] if self.history else None,
                "k": None if rec is None else rec.k,
                "gamma": None if rec is None else rec.gamma,
                "compute_s": round(self.compute_s, 3), "history": self.history}

    def save(self) -> None:
        """Write :data:`RECORD` in the run folder."""
        if self.run_dir is None:
            return
        from rewardlearn.files import write_text_atomic

        write_text_atomic(Path(self.run_dir) / RECORD, json.dumps(self.summary(), indent=2))


# -- the run's hook ---------------------------------------------------------------------------

def _demo_path(cfg: DictConfig, settings: ADSConfig) -> str:
    demos = settings.demos
    if demos is None:
        model = cfg.reward.get("model")
        demos = None if model is None else model.get("demos")
    if not demos:
        raise ValueError("agent.discount_schedule=ads needs demos: a reward with "
                         "reward.model.demos, or agent.discount_schedule={name: ads, demos: "
                         "<dataset>}")
    return str(demos)


def check_schedule(cfg: DictConfig) -> ADSConfig | None:
    """The run's ``agent.discount_schedule``, checked before anything is built (an unknown
    name lists the valid ones; its demos must exist; shaping is refused)."""
    settings = schedule_settings(cfg.agent.get("discount_schedule"))
    if settings is None:
        return None
    shaping = cfg.get("shaping")
    if shaping is not None and shaping.get("name", "none") != "none":
        raise ValueError(f"agent.discount_schedule=ads with shaping={shaping.name}: the shaping "
                         "term uses a fixed gamma, and ADS moves the agent's; use shaping=none")
    from rewardlearn.demos import open_dataset

    for path in _demo_path(cfg, settings).split(","):
        open_dataset(path.strip())
    return settings


def schedule_callbacks(cfg: DictConfig, reward_model: RewardModel | None,
                       observation_space: gym.Space, run_dir: Path | None) -> list[BaseCallback]:
    """The callback of ``agent.discount_schedule`` (none when it is null)."""
    settings = check_schedule(cfg)
    if settings is None:
        return []
    if reward_model is not None and reward_model.uses_shaping_gamma:
        raise ValueError(f"agent.discount_schedule=ads with reward {reward_model.name}, which "
                         "shapes with a fixed gamma; ADS moves the agent's")
    if cfg.agent.get("gamma") is not None:
        log.warning("agent.gamma=%s is replaced by the discount schedule", cfg.agent.gamma)
    from rewardlearn.demos import load_demo_sets
    from rewardlearn.ot.reward import demo_observations

    episodes = load_demo_sets(_demo_path(cfg, settings))
    episodes = sorted(episodes, key=lambda ep: not ep.success)
    if settings.max_demos is not None:
        episodes = episodes[: settings.max_demos]
    states, _ = demo_observations(episodes, frames=False)
    flat = [flatten_obs(observation_space, s) for s in states]
    if len(flat) < 2:
        raise ValueError(f"agent.discount_schedule=ads compares pairs of demos: it needs at "
                         f"least 2, the demos have {len(flat)}")
    return [DiscountScheduleCallback(settings, flat, observation_space, run_dir)]


__all__ = ["RECORD", "DemoFeatures", "DiscountScheduleCallback", "check_schedule",
           "schedule_callbacks", "set_discount"]
