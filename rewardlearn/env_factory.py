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
import sys
from collections.abc import Callable, Mapping, Sequence
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

CONFIG_DIR_ENV = "REWARDLEARN_CONFIG_DIR"
"""Environment variable naming folders (``:``-separated) of your own configs, laid out as
``conf/`` is (``<folder>/env/<name>.yaml``); every command looks there before the package."""

_IMPORT_HOOKS: dict[str, str] = {
    "rewardlearn/": "rewardlearn_envs",
    "Meta-World/": "metaworld",
}


def user_config_dirs() -> list[Path]:
    """The folders of :data:`CONFIG_DIR_ENV`, in order."""
    raw = os.environ.get(CONFIG_DIR_ENV, "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]


def env_config_dirs() -> list[Path]:
    """Where env configs are looked up by name: your folders first, then the package's."""
    return [*(d / "env" for d in user_config_dirs()), CONF_DIR / "env"]


def available_envs() -> list[str]:
    """Names of the env configs (the package's ``conf/env`` and your config folders)."""
    return sorted({p.stem for d in env_config_dirs() for p in d.glob("*.yaml")})


def is_config_path(name: str) -> bool:
    """Whether ``name`` names a YAML file rather than a config by name."""
    return str(name).endswith((".yaml", ".yml"))


def _find_env(name: str, base: Path | None = None) -> Path:
    """The file of env config ``name``: a path to a YAML file, else ``<dir>/<name>.yaml`` in
    ``base`` (the folder of the config that names it in its ``defaults``) or
    :func:`env_config_dirs`."""
    if is_config_path(name):
        path = Path(name).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"env config {name!r}: no such file")
        add_import_path(path.resolve().parent)  # a module beside the yaml (my_env.py) imports
        return path
    for folder in [*([base] if base is not None else []), *env_config_dirs()]:
        if (folder / f"{name}.yaml").is_file():
            return folder / f"{name}.yaml"
    import difflib

    close = difflib.get_close_matches(str(name), available_envs(), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise ValueError(f"unknown env {name!r}{hint}; valid choices: {', '.join(available_envs())} "
                     f"or a path to an env YAML file (env=path/to/my_env.yaml)")


def add_import_path(folder: Path) -> None:
    """Let ``folder``'s modules import, here and in worker processes (``PYTHONPATH``): the
    folder of an env yaml given by path, so ``id: my_env:MyTask-v0`` finds ``my_env.py``."""
    entry = str(folder)
    if entry not in sys.path:
        sys.path.insert(0, entry)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if entry not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([entry, *paths])


def _load_env_file(path: Path, seen: tuple[Path, ...] = ()) -> DictConfig:
    """An env YAML with its ``defaults`` list merged in (Hydra's group defaults: names of
    sibling env configs, ``_self_`` last unless placed)."""
    if path.resolve() in seen:
        raise ValueError(f"env config {path}: its defaults list includes itself")
    loaded = OmegaConf.load(path)
    if not isinstance(loaded, DictConfig):
        raise ValueError(f"env config {path} is not a mapping")
    cfg = loaded
    defaults = cfg.pop("defaults", None)
    if defaults is None:
        return cfg
    entries = [str(d) for d in defaults] if isinstance(defaults, ListConfig) else None
    if entries is None:
        raise ValueError(f"env config {path}: defaults must be a list of env config names")
    if "_self_" not in entries:
        entries.append("_self_")
    parts = [cfg if entry == "_self_" else _load_env_file(
        _find_env(entry, path.parent), (*seen, path.resolve())) for entry in entries]
    merged = OmegaConf.merge(*parts)
    assert isinstance(merged, DictConfig)
    return merged


def env_config(name_or_cfg: str | os.PathLike[str] | Mapping[str, Any] | DictConfig,
               overrides: Sequence[str] = ()) -> DictConfig:
    """The env config for a name (your config folders, then ``conf/env/<name>.yaml``), a path
    to a YAML file, or the given config itself; ``overrides`` are ``key=value`` changes
    (``task=drawer-open-v3``, as ``env.task=...`` on the command line).

    Example:
        >>> env_config("metaworld", ["task=drawer-open-v3"]).name
        'metaworld_drawer-open-v3'
    """
    if isinstance(name_or_cfg, DictConfig):
        cfg = name_or_cfg
    elif isinstance(name_or_cfg, Mapping):
        cfg = OmegaConf.create(dict(name_or_cfg))
    else:
        cfg = _load_env_file(_find_env(str(name_or_cfg)))
    if overrides:
        merged = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
        assert isinstance(merged, DictConfig)
        cfg = merged
    for key in ("id", "name"):
        if OmegaConf.select(cfg, key) is None:
            raise ValueError(f"env config {name_or_cfg!r} has no {key!r}: an env config names "
                             "its gymnasium id and a short name (docs/your_env.md)")
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
    if str(cfg.id).startswith("Meta-World/") and "env_name" in kwargs:
        from rewardlearn_envs.metaworld_expert import check_task

        check_task(str(kwargs["env_name"]))  # an unknown task lists the valid ones
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

# ----------------------------------------------------------------------------- a saved run's env

def parse_camera(value: str) -> dict[str, Any] | str:
    """``camera=``: a YAML mapping of CameraConfig fields, else a model camera name."""
    import yaml

    from rewardlearn.rendering import CameraConfig

    text = value.strip()
    if not text.startswith("{"):
        return text
    try:
        cam = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"camera: not a YAML mapping ({err})") from None
    fields = set(CameraConfig.__dataclass_fields__) - {"extra"}
    unknown = sorted(set(cam) - fields) if isinstance(cam, dict) else []
    if not isinstance(cam, dict) or unknown:
        raise ValueError(f"camera: unknown field(s) {', '.join(map(str, unknown)) or text!r}; "
                         f"fields: {', '.join(sorted(fields))}")
    return cam


def replay_env(cfg: DictConfig, camera: str | None) -> DictConfig:
    """The run's env config, with ``camera`` set when given (MuJoCo envs only)."""
    env = OmegaConf.create(OmegaConf.to_container(cfg.env, resolve=True))
    if not isinstance(env, DictConfig):
        raise ValueError(f"the run's env setting is not a mapping: {env!r}")
    if camera is None:
        return env
    probe = make_env(env_config(env))
    try:
        mujoco = hasattr(probe.unwrapped, "model") and hasattr(probe.unwrapped, "data")
    finally:
        probe.close()
    if not mujoco:
        raise ValueError(f"camera= places a MuJoCo camera; env {env.name!r} is not a MuJoCo "
                         "env and renders its own view (leave camera out)")
    env.camera = parse_camera(camera)
    return env
