"""Checks of a ``train`` run's settings before anything is built.

:func:`validate_settings` names every bad value with its valid range (``key=value: must
be ...``), and the input files the settings name (demos, RA-BC weights, checkpoints) are
checked for existence and kind. A reward module whose class declares a
:attr:`~rewardlearn.rewards.base.RewardModel.settings_class` has its ``reward.model``
settings built (so checked) here, once: the object is handed to the module's constructor,
and its own hooks warn about the run (:meth:`~rewardlearn.settings.RewardModelConfig.run_warnings`)
and check the files it names (:meth:`~rewardlearn.settings.RewardModelConfig.check_inputs`).
No method is named here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from omegaconf import DictConfig, OmegaConf, open_dict

from rewardlearn.agents import ALGOS, REWARD_TIMINGS, on_policy
from rewardlearn.bc import BCConfig
from rewardlearn.rewards.base import RewardModel
from rewardlearn.rewards.pretrained import is_repo_id
from rewardlearn.settings import RewardModelConfig, did_you_mean
from rewardlearn.utils import import_object, resolve_device, to_dict

log = logging.getLogger("rewardlearn")


class SettingsError(ValueError):
    """One or more settings have values a run cannot use; the message names each."""


def _show(value: Any) -> str:
    if value is None:
        return "null"
    return repr(value) if isinstance(value, str) else str(value)


def _is_int(value: Any) -> bool:
    """An integer, or a float with an integral value (``total_timesteps=1e5``)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _bounds(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    def fmt(x: float) -> str:
        return str(x) if isinstance(x, int) else f"{x:g}"

    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{fmt(low)}, {fmt(high)}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {fmt(low)}"
    if high is not None:
        return f"{'<' if high_open else '<='} {fmt(high)}"
    return ""


@dataclass
class _Checks:
    """Collects the problems of a config, one ``key=value: must be ...`` line each."""

    problems: list[str] = field(default_factory=list)

    def add(self, key: str, value: Any, why: str) -> None:
        self.problems.append(f"{key}={_show(value)}: {why}")

    def integer(self, key: str, value: Any, low: int | None = None, high: int | None = None,
                optional: bool = False) -> None:
        if value is None and optional:
            return
        ok = _is_int(value) and (low is None or value >= low) and (high is None or value <= high)
        if not ok:
            rule = " ".join(x for x in ("an integer", _bounds(low, high, False, False)) if x)
            self.add(key, value, f"must be {rule}" + (" or null" if optional else ""))

    def number(self, key: str, value: Any, low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False, optional: bool = False) -> None:
        if value is None and optional:
            return
        ok = _is_number(value) and (
            low is None or (value > low if low_open else value >= low)) and (
            high is None or (value < high if high_open else value <= high))
        if not ok:
            rule = " ".join(x for x in ("a number", _bounds(low, high, low_open, high_open)) if x)
            self.add(key, value, f"must be {rule}" + (" or null" if optional else ""))

    def choice(self, key: str, value: Any, choices: Sequence[str]) -> None:
        if value not in choices:
            self.add(key, value, f"must be one of {', '.join(choices)}")

    def flag(self, key: str, value: Any) -> None:
        if not isinstance(value, bool):
            self.add(key, value, "must be true or false")


def target_class(model: DictConfig) -> type | None:
    """The class ``reward.model._target_`` names, if it is a class that imports."""
    target = str(model.get("_target_", ""))
    try:
        obj = import_object(target)
    except (ImportError, ValueError):
        return None
    return obj if isinstance(obj, type) else None


@runtime_checkable
class WrapsEnv(Protocol):
    """Reward settings whose module needs env wrappers (``reward=vpl``: ``z`` appended to
    every observation)."""

    def env_wrappers(self) -> list[dict[str, Any]]: ...


def add_env_wrappers(cfg: DictConfig, settings: RewardModelConfig | None) -> None:
    """Append the wrappers the reward's settings ask for to ``env.wrappers`` (outermost), so
    the training envs, evaluation and videos all have them."""
    if not isinstance(settings, WrapsEnv):
        return
    extra = settings.env_wrappers()
    if extra:
        with open_dict(cfg):
            cfg.env.wrappers = [*(cfg.env.get("wrappers") or []), *extra]


def run_env(cfg: DictConfig, env: DictConfig) -> DictConfig:
    """A saved run's env config ``env`` (``cfg.env``, perhaps with a camera) with the wrappers
    its reward added at training (:func:`add_env_wrappers`): Hydra saves the config before
    they are added, and the run's agent and reward model read their observations."""
    plain = OmegaConf.create({"env": OmegaConf.to_container(env, resolve=True)})
    had = list(plain.env.get("wrappers") or [])
    add_env_wrappers(plain, reward_settings(cfg))
    if had:  # a config saved after they were added (already has them): not twice
        plain.env.wrappers = had + [w for w in plain.env.wrappers[len(had):]
                                    if not any(w.get("_target_") == h.get("_target_")
                                               for h in had)]
    out = plain.env
    assert isinstance(out, DictConfig)
    return out


def reward_settings(cfg: DictConfig) -> RewardModelConfig | None:
    """Build the reward module's settings object now, so its checks run before any env;
    ``None`` for a module without a ``settings_class``.

    Keys of ``reward.model`` must be settings or the module's runtime parameters (a
    teacher); anything else is refused with the closest valid name.
    """
    model = cfg.reward.get("model")
    cls = None if model is None else target_class(model)
    if cls is None or not issubclass(cls, RewardModel) or cls.settings_class is None:
        return None
    settings_cls = cls.settings_class
    where = f"reward.model (reward={cfg.reward.get('name')})"
    keys = [str(k) for k in model if k != "_target_"]
    unknown = sorted(set(keys) - set(cls.runtime_params) - set(settings_cls.names()))
    if unknown:
        valid = sorted(set(cls.runtime_params) | set(settings_cls.names()))
        raise SettingsError(f"{where}: unknown setting(s) {unknown}"
                            f"{did_you_mean(unknown, valid)}; valid: {valid}")
    plain = OmegaConf.to_container(model, resolve=True)
    assert isinstance(plain, dict)
    values = {str(k): v for k, v in plain.items() if k in keys and k not in cls.runtime_params}
    try:
        return settings_cls.from_kwargs(values)
    except (TypeError, ValueError) as err:
        raise SettingsError(f"{where}: {err}") from None


def _check_inputs(cfg: DictConfig, settings: RewardModelConfig | None) -> None:
    """Files the settings name must exist (and be what they should) before anything runs."""
    model = cfg.reward.model
    if settings is not None:
        settings.check_inputs()
    if str(model.get("_target_", "")).endswith("checkpoint.load_reward_model"):
        path = model.get("path")
        if path is not None and not Path(str(path)).exists() and not is_repo_id(str(path)):
            raise FileNotFoundError(
                f"reward.model.path={path}: no such file or folder; pass a run "
                "(reward.model.path=runs/<run> or runs/<run>/reward_model.pt), a saved reward "
                "model folder or a Hub repo id (user/name)")
    bc = cfg.get("bc")
    if bc is None or not bc.get("demos"):
        return
    from rewardlearn.demos import open_dataset

    for demos in str(bc.demos).split(","):
        try:
            open_dataset(demos.strip())
        except FileNotFoundError as err:
            raise FileNotFoundError(f"bc.demos={bc.demos}: {err}") from None
    if bc.get("weights") is not None and not Path(str(bc.weights)).is_file():
        raise FileNotFoundError(
            f"bc.weights={bc.weights}: no such file; write it with python -m "
            "rewardlearn.cli.train_progress rabc model=<progress_model.pt> demos=<demos>")


def validate_settings(cfg: DictConfig) -> RewardModelConfig | None:
    """Check the run's settings before anything is built; raise naming every bad one.
    Returns the reward module's settings object (built once, handed to the constructor).

    Raises :class:`SettingsError` (a ``ValueError``) listing ``key=value: must be
    <valid range>`` for each problem, and ``FileNotFoundError``/``ValueError``
    for input files (``bc.demos``, ``bc.weights``, ``reward.model.resume``,
    ``reward.model.path``) that are missing or not what the setting needs.
    """
    c = _Checks()
    cloned = cfg.get("bc") is not None and bool(cfg.bc.get("demos"))
    if cloned:  # 0: the cloned policy alone, no RL (a BC run for best-of-n selection)
        c.integer("total_timesteps", cfg.get("total_timesteps"), 0)
    else:
        c.integer("total_timesteps", cfg.get("total_timesteps"), 1)
    c.integer("seed", cfg.get("seed"), 0, 2**32 - 1)
    c.integer("n_envs", cfg.get("n_envs"), 1)
    c.choice("vec_env", cfg.get("vec_env"), ("dummy", "subproc"))
    threads = cfg.get("torch_threads", "auto")
    if threads not in ("auto", "all"):
        c.integer("torch_threads", threads, 1)
    c.flag("progress_bar", cfg.get("progress_bar"))
    try:
        resolve_device(str(cfg.get("device")))
    except (ValueError, RuntimeError) as err:
        c.add("device", cfg.get("device"), str(err).splitlines()[0])
    c.choice("agent.algo", cfg.agent.get("algo"), tuple(ALGOS))
    c.choice("reward_timing", cfg.get("reward_timing", "auto"), REWARD_TIMINGS)
    if (cfg.get("reward_timing") == "rollout" and cfg.agent.get("algo") in ALGOS
            and not on_policy(str(cfg.agent.algo))):
        c.add("reward_timing", "rollout", f"needs an on-policy agent (agent={cfg.agent.algo} "
              "stores each step's reward as it goes); use step or auto")
    c.number("agent.gamma", cfg.agent.get("gamma"), 0, 1, low_open=True, optional=True)
    c.number("agent.mean_bound", cfg.agent.get("mean_bound"), 0, low_open=True, optional=True)
    if cfg.agent.get("mean_bound") is not None and cfg.agent.get("algo") not in (None, "ppo"):
        c.add("agent.mean_bound", cfg.agent.mean_bound, f"applies to PPO's Gaussian policy; "
              f"agent={cfg.agent.algo} squashes its actions already: set agent.mean_bound=null")
    c.choice("reward.mode", cfg.reward.get("mode", "replace"), ("replace", "add"))
    c.number("reward.weight", cfg.reward.get("weight", 1.0))
    c.integer("eval.n_episodes", cfg.eval.get("n_episodes"), 1)
    c.flag("eval.deterministic", cfg.eval.get("deterministic"))
    video = cfg.video
    c.flag("video.enabled", video.get("enabled"))
    if video.get("enabled"):
        n_videos = video.get("n_episodes")
        c.integer("video.n_episodes", n_videos, 0)
        c.integer("video.width", video.get("width"), 2)
        c.integer("video.height", video.get("height"), 2)
        c.number("video.fps", video.get("fps"), 0, low_open=True, optional=True)
        if video.get("dir") is not None and (not isinstance(video.get("dir"), str)
                                             or not video.get("dir")):
            c.add("video.dir", video.get("dir"), "must be a folder path or null (the run folder)")
        n_eval = cfg.eval.get("n_episodes")
        if _is_int(n_videos) and _is_int(n_eval) and 0 < n_eval < n_videos:
            log.warning("video.n_episodes=%s > eval.n_episodes=%s: the videos record evaluation "
                        "episodes, so %s will be recorded", n_videos, n_eval, n_eval)
    if cfg.get("bc") is not None:  # the bc block's own settings class does its checks
        try:
            BCConfig.from_kwargs(to_dict(cfg.bc))
        except ValueError as err:
            c.problems.append(f"bc: {err}")
    if c.problems:
        s = "s" if len(c.problems) > 1 else ""
        raise SettingsError(f"invalid setting{s}: " + "; ".join(c.problems))
    settings = reward_settings(cfg)
    if settings is not None:
        for warning in settings.run_warnings(str(cfg.agent.algo), int(cfg.total_timesteps)):
            log.warning("reward=%s: %s", cfg.reward.get("name"), warning)
    _check_inputs(cfg, settings)
    return settings
