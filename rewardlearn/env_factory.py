"""Build Gymnasium envs and SB3 vector envs from ``conf/env/<name>.yaml`` configs.

An env config names a Gymnasium id plus what the rest of the package needs to
know about it: constructor kwargs, time limit, the info key that reports
success, the camera for frames and videos, and recommended agent settings.

Example:
    >>> from rewardlearn.env_factory import make_env
    >>> env = make_env("pendulum", seed=0)
    >>> env.spec.id
    'Pendulum-v1'
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import gymnasium as gym
from omegaconf import DictConfig, ListConfig, OmegaConf
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from rewardlearn.utils import import_object, to_dict
from rewardlearn.wrappers.frames import FrameCapture
from rewardlearn.wrappers.state import SimStateCapture

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

_IMPORT_HOOKS: dict[str, str] = {
    "rewardlearn/": "rewardlearn_envs",
    "Meta-World/": "metaworld",
}


def available_envs() -> list[str]:
    """Names of the env configs under ``conf/env``."""
    return sorted(p.stem for p in (CONF_DIR / "env").glob("*.yaml"))


def env_config(name_or_cfg: str | Mapping[str, Any] | DictConfig) -> DictConfig:
    """The env config for a name (``conf/env/<name>.yaml``), or the given config itself."""
    if isinstance(name_or_cfg, DictConfig):
        return name_or_cfg
    if isinstance(name_or_cfg, Mapping):
        return OmegaConf.create(dict(name_or_cfg))
    path = CONF_DIR / "env" / f"{name_or_cfg}.yaml"
    if not path.is_file():
        raise ValueError(
            f"unknown env {name_or_cfg!r}; valid choices: {', '.join(available_envs())}"
        )
    cfg = OmegaConf.load(path)
    assert isinstance(cfg, DictConfig)
    return cfg


def _import_for(env_id: str) -> None:
    """Import the package that registers ``env_id`` (custom tasks, Meta-World)."""
    for prefix, module in _IMPORT_HOOKS.items():
        if env_id.startswith(prefix):
            try:
                __import__(module)
            except ImportError as e:
                extra = " (pip install 'rewardlearn[metaworld]')" if module == "metaworld" else ""
                raise ImportError(f"env {env_id} needs the package {module}{extra}: {e}") from e


def make_env(
    cfg: str | Mapping[str, Any] | DictConfig,
    seed: int | None = None,
    render_mode: str | None = None,
    frame_size: tuple[int, int] | None = None,
    monitor: bool = False,
    sim_state: bool = False,
) -> gym.Env:
    """Make one env from a config.

    Args:
        cfg: an env config or its name (see :func:`available_envs`).
        seed: seeds the env's first reset and its action space.
        render_mode: passed to ``gym.make`` (``"rgb_array"`` for videos of
            non-MuJoCo envs; MuJoCo envs are drawn by the fast renderer anyway).
        frame_size: ``(height, width)``: add :class:`FrameCapture` so every
            step's info carries the frame (reward modules that read pixels).
        monitor: wrap in SB3's ``Monitor`` (episode stats in ``info``).
        sim_state: add :class:`SimStateCapture` (``info["sim_state"]`` each step),
            so steps can be re-rendered later (clips for human labellers).
    """
    cfg = env_config(cfg)
    kwargs = to_dict(cfg.get("kwargs"))
    if render_mode is None and frame_size is not None:
        render_mode = "rgb_array"
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    _import_for(cfg.id)
    if cfg.get("max_episode_steps") is not None:
        kwargs["max_episode_steps"] = int(cfg.max_episode_steps)
    if str(cfg.id).startswith("Meta-World/") and seed is not None:
        # MT1 draws its task layouts at construction from numpy's global RNG unless seeded;
        # some global states yield a duplicate layout and metaworld's assertion fails
        kwargs.setdefault("seed", seed)
    try:
        env = gym.make(cfg.id, **kwargs)
    except gym.error.Error as e:
        raise ValueError(f"could not make env {cfg.get('name', cfg.id)} ({cfg.id}): {e}") from e
    env = apply_wrappers(env, cfg.get("wrappers"))
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    if monitor:
        env = Monitor(env, info_keywords=tuple(k for k in [cfg.get("success_key")] if k))
    if sim_state:
        env = SimStateCapture(env)
    if frame_size is not None:
        height, width = frame_size
        env = FrameCapture(env, width=width, height=height, camera=camera_config(cfg))
    return env


def apply_wrappers(env: gym.Env, specs: Any) -> gym.Env:
    """Wrap ``env`` in the env config's ``wrappers:`` list, innermost first.

    Each entry is ``{_target_: dotted.Class, **kwargs}`` and is called as
    ``Class(env, **kwargs)``; the Meta-World configs use it to add stage labels
    (``rewardlearn_envs.metaworld_expert.MetaWorldStages``) that stage-aware rewards read.
    """
    if specs is None:
        return env
    if isinstance(specs, ListConfig):
        specs = OmegaConf.to_container(specs, resolve=True)
    if not isinstance(specs, list):
        raise ValueError(f"env wrappers must be a list of {{_target_: ...}} (got {specs!r})")
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict) or not isinstance(spec.get("_target_"), str):
            raise ValueError(f"env wrappers[{i}] must be a mapping with _target_: "
                             f"dotted.path.Class (got {spec!r})")
        kwargs = {k: v for k, v in spec.items() if k != "_target_"}
        try:
            wrapper = import_object(spec["_target_"])
        except (ImportError, AttributeError, ValueError) as e:
            raise ValueError(f"env wrappers[{i}]: cannot import {spec['_target_']!r}: {e}"
                             ) from e
        env = wrapper(env, **kwargs)
    return env


def camera_config(cfg: DictConfig) -> dict[str, Any] | str | None:
    """The env's camera setting for frames and videos (``camera:`` in its config)."""
    cam = cfg.get("camera")
    if cam is None or isinstance(cam, str):
        return cam
    return to_dict(cam)


def make_vec_env(
    cfg: str | Mapping[str, Any] | DictConfig,
    n_envs: int = 1,
    seed: int = 0,
    frame_size: tuple[int, int] | None = None,
    vec_env: str = "dummy",
    sim_state: bool = False,
) -> VecEnv:
    """``n_envs`` Monitor-wrapped copies of the env in an SB3 vector env.

    Env ``i`` is seeded with ``seed + i``. ``vec_env="subproc"`` runs each env
    in its own process (rendering happens in the worker, where the frame is
    captured before the auto-reset).
    """
    cfg = env_config(cfg)
    if vec_env not in ("dummy", "subproc"):
        raise ValueError(f"unknown vec_env {vec_env!r}; choose 'dummy' or 'subproc'")

    def thunk(i: int) -> Callable[[], gym.Env]:
        return lambda: make_env(cfg, seed=seed + i, frame_size=frame_size, monitor=True,
                                sim_state=sim_state)

    fns = [thunk(i) for i in range(n_envs)]
    venv: VecEnv = SubprocVecEnv(fns) if vec_env == "subproc" else DummyVecEnv(fns)
    venv.seed(seed)
    return venv
