"""``python train.py env=... agent=... reward=...``: train an SB3 agent on a reward module.

A run trains the agent on the configured reward, evaluates it on the env's own
reward, saves the agent and the reward model, records evaluation rollouts
(mp4 + per-step sidecar) under ``videos/<run>/``, logs to TensorBoard and writes
``summary.json`` in the run directory. If training crashes or is interrupted,
the agent and reward model are saved first (``*_interrupted``), then the error
is raised.

Before anything is built, the settings are checked (:func:`validate_settings`:
each bad value is named with its valid range) and the run claims its folders:
the run directory, and the video folder when videos are recorded
(:func:`claim_folder`, a ``run.claim`` file locked while the run lives). A
folder that already holds another run's outputs (``summary.json``,
``agent.zip``, ``agent_interrupted.zip``, videos), or that a live run holds, is
refused; so is a folder that cannot be written. The default run folder
``runs/<date>_<time>_<env>_<agent>_<reward>_s<seed>_<id>`` ends with a random id
(the ``${run_id:}`` resolver), so runs started in the same second get their own
folders. Every output file is written to a unique temp name and renamed into
place once complete. From the command line, such input errors print one line
``error: ...`` and exit with status 1 (``HYDRA_FULL_ERROR=1`` shows the trace).
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import math
import os
import secrets
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from rewardlearn.bc import BCConfig, warm_start
from rewardlearn.env_factory import CONF_DIR, make_vec_env, to_dict
from rewardlearn.evaluation import evaluate
from rewardlearn.recording import atomic_output, write_text_atomic
from rewardlearn.rewards.base import RewardModel
from rewardlearn.rewards.checkpoint import import_class, read_checkpoint, save_reward_model
from rewardlearn.shaping import build_shaping
from rewardlearn.utils import dataclass_from_kwargs, resolve_device, set_torch_threads
from rewardlearn.wrappers.vec import RewardLoggingCallback, RewardVecEnvWrapper

log = logging.getLogger("rewardlearn")

ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": SAC}


def run_id() -> str:
    """A short random id (6 hex digits) that makes a run folder's name unique."""
    return secrets.token_hex(3)


# ``${run_id:}`` in conf/config.yaml; cached per composed config, like Hydra's ``${now:}``,
# so one run (or one sweep: Hydra copies the cache to its jobs) resolves one id.
OmegaConf.register_new_resolver("run_id", run_id, use_cache=True, replace=True)


def policy_for(space: gym.Space, policy: str) -> str:
    """``auto`` -> MultiInputPolicy for Dict, CnnPolicy for images, else MlpPolicy."""
    if policy != "auto":
        return policy
    if isinstance(space, gym.spaces.Dict):
        return "MultiInputPolicy"
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 3:
        return "CnnPolicy"
    return "MlpPolicy"


def build_reward_model(cfg: DictConfig, observation_space: gym.Space,
                       action_space: gym.Space) -> RewardModel:
    """Instantiate ``cfg.reward.model`` for the env's spaces."""
    try:
        model = instantiate(cfg.reward.model, observation_space=observation_space,
                            action_space=action_space)
    except InstantiationException as e:
        if isinstance(e.__cause__, (ValueError, TypeError, FileNotFoundError, ImportError)):
            raise e.__cause__ from None
        raise
    if not isinstance(model, RewardModel):
        raise TypeError(f"reward={cfg.reward.name} built a {type(model).__name__}, "
                        "not a rewardlearn RewardModel")
    return model


class NormalizedPolicy:
    """An agent trained under ``VecNormalize``, acting on raw observations."""

    def __init__(self, agent: BaseAlgorithm, normalizer: VecNormalize) -> None:
        self.agent = agent
        self.normalizer = normalizer

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[Any, Any]:
        return self.agent.predict(self.normalizer.normalize_obs(observation), state,
                                  episode_start, deterministic)


def agent_gamma(cfg: DictConfig) -> float:
    """The discount: ``agent.gamma``, else the env's recommendation for the algo, else 0.99."""
    if cfg.agent.get("gamma") is not None:
        return float(cfg.agent.gamma)
    recommended = to_dict(cfg.env.get("agent_kwargs", {})).get(str(cfg.agent.algo), {})
    return float(recommended.get("gamma", 0.99))


def normalize_obs_enabled(cfg: DictConfig) -> bool:
    """``agent.normalize_obs``, or the env's recommendation when that is null."""
    flag = cfg.agent.get("normalize_obs")
    return bool(cfg.env.get("normalize_obs", False) if flag is None else flag)


_ACTIVATIONS = {"relu": "ReLU", "tanh": "Tanh", "elu": "ELU", "leaky_relu": "LeakyReLU",
                "silu": "SiLU", "gelu": "GELU"}


def _policy_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Config-friendly policy kwargs: ``activation_fn: relu`` becomes ``torch.nn.ReLU``."""
    import torch.nn

    act = kwargs.get("activation_fn")
    if isinstance(act, str):
        if act not in _ACTIVATIONS:
            raise ValueError(f"unknown activation_fn {act!r}; choose from {sorted(_ACTIVATIONS)}")
        kwargs["activation_fn"] = getattr(torch.nn, _ACTIVATIONS[act])
    return kwargs


def build_agent(cfg: DictConfig, venv: VecEnv, run_dir: Path) -> BaseAlgorithm:
    """The SB3 agent: env's recommended settings, then ``agent.kwargs`` on top."""
    algo = str(cfg.agent.algo)
    if algo not in ALGOS:
        raise ValueError(f"unknown agent algo {algo!r}; valid choices: {', '.join(ALGOS)}")
    recommended = to_dict(cfg.env.get("agent_kwargs", {})).get(algo, {})
    user = to_dict(cfg.agent.kwargs)
    if "gamma" in user:
        raise ValueError("set the discount with agent.gamma=..., not agent.kwargs.gamma "
                         "(shaping and evaluation read agent.gamma)")
    kwargs: dict[str, Any] = {**recommended, **user, "gamma": agent_gamma(cfg)}
    if "policy_kwargs" in kwargs:
        kwargs["policy_kwargs"] = _policy_kwargs(dict(kwargs["policy_kwargs"]))
    return ALGOS[algo](
        policy_for(venv.observation_space, str(cfg.agent.policy)),
        venv,
        seed=int(cfg.seed),
        device=str(resolve_device(str(cfg.device))),
        tensorboard_log=str(run_dir / "tb"),
        verbose=0,
        **kwargs,
    )


# ----------------------------------------------------------------------------- settings

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


PREFERENCE_TARGET = "rewardlearn.rewards.preference.PreferenceReward"
# PreferenceConfig fields and their valid ranges: (integer?, low, high, low_open, optional).
_PREFERENCE_RULES: dict[str, tuple[bool, float | None, float | None, bool, bool]] = {
    "ensemble_size": (True, 1, None, False, False),
    "segment_length": (True, 2, None, False, False),
    "budget": (True, 0, None, False, False),
    "queries_per_round": (True, 1, None, False, False),
    "first_round_at": (True, 0, None, False, False),
    "interval": (True, 1, None, False, True),
    "feedback_until": (False, 0, 1, True, False),
    "candidates_factor": (True, 1, None, False, False),
    "hybrid_factor": (True, 1, None, False, False),
    "conservative_k": (False, 0, None, False, False),
    "lr": (False, 0, None, True, False),
    "weight_decay": (False, 0, None, False, False),
    "batch_size": (True, 1, None, False, False),
    "max_epochs": (True, 1, None, False, False),
    "early_stop_acc": (False, 0, 1, True, False),
    "buffer_capacity": (True, 1, None, False, False),
    "unsup_steps": (True, 0, None, False, False),
    "entropy_k": (True, 1, None, False, False),
}


def _check_preference(model: DictConfig, checks: _Checks) -> None:
    """The preference reward's numeric settings (``reward.model.*``), by name."""
    for key, (integer, low, high, low_open, optional) in _PREFERENCE_RULES.items():
        if key not in model:
            continue
        name, value = f"reward.model.{key}", model.get(key)
        if integer:
            checks.integer(name, value, None if low is None else int(low),
                           None if high is None else int(high), optional)
        else:
            checks.number(name, value, low, high, low_open=low_open, optional=optional)
    sizes = model.get("hidden_sizes")
    if sizes is not None and not (
        OmegaConf.is_list(sizes) and len(sizes) > 0 and all(_is_int(h) and h >= 1 for h in sizes)
    ):
        checks.add("reward.model.hidden_sizes", sizes, "must be a list of integers >= 1")


def _preference_config(model: DictConfig) -> None:
    """Build the preference settings dataclass now, so its own checks run before any env."""
    from rewardlearn.preference.configuration import PreferenceConfig

    settings = {k: v for k, v in to_dict(model).items()
                if k not in ("_target_", "teacher", "resume")}
    try:
        PreferenceConfig.from_kwargs(settings)
    except (TypeError, ValueError) as err:
        raise SettingsError(f"reward.model (reward=preference): {err}") from None


def check_resume(path: str) -> None:
    """Refuse a ``reward.model.resume`` file that is not a preference checkpoint, by name."""
    try:
        payload = read_checkpoint(path)
    except (OSError, ValueError) as err:
        raise type(err)(f"reward.model.resume: {err}") from None
    qualified = str(payload["class"])
    try:
        from rewardlearn.rewards.preference import PreferenceReward

        is_preference = issubclass(import_class(qualified), PreferenceReward)
    except (ImportError, AttributeError, TypeError):
        is_preference = False
    state = payload["state"]
    if not is_preference or not isinstance(state, dict) or "ensemble" not in state:
        name = qualified.rpartition(":")[2] or qualified
        raise ValueError(f"{path} holds a {name} checkpoint, reward.model.resume needs a "
                         "preference checkpoint (the reward_model.pt of a reward=preference run)")


def _check_inputs(cfg: DictConfig) -> None:
    """Files the settings name must exist (and be what they should) before anything runs."""
    model = cfg.reward.model
    if str(model.get("_target_", "")) == PREFERENCE_TARGET and model.get("resume"):
        check_resume(str(model.resume))
    if str(model.get("_target_", "")).endswith("checkpoint.load_reward_model"):
        path = model.get("path")
        if path is not None and not Path(str(path)).is_file():
            raise FileNotFoundError(
                f"reward.model.path={path}: no such file; pass the reward_model.pt of a run "
                "(reward.model.path=runs/<run>/reward_model.pt)")
    bc = cfg.get("bc")
    if bc is None or not bc.get("demos"):
        return
    from rewardlearn.collect import open_dataset

    for demos in str(bc.demos).split(","):
        try:
            open_dataset(demos.strip())
        except FileNotFoundError as err:
            raise FileNotFoundError(f"bc.demos={bc.demos}: {err}") from None
    if bc.get("weights") is not None and not Path(str(bc.weights)).is_file():
        raise FileNotFoundError(
            f"bc.weights={bc.weights}: no such file; write it with python -m "
            "rewardlearn.train_progress rabc model=<progress_model.pt> demos=<demos>")


def validate_settings(cfg: DictConfig) -> None:
    """Check the run's settings before anything is built; raise naming every bad one.

    Raises :class:`SettingsError` (a ``ValueError``) listing ``key=value: must be
    <valid range>`` for each problem, and ``FileNotFoundError``/``ValueError``
    for input files (``bc.demos``, ``bc.weights``, ``reward.model.resume``,
    ``reward.model.path``) that are missing or not what the setting needs.
    """
    c = _Checks()
    c.integer("total_timesteps", cfg.get("total_timesteps"), 1)
    c.integer("seed", cfg.get("seed"), 0, 2**32 - 1)
    c.integer("n_envs", cfg.get("n_envs"), 1)
    c.choice("vec_env", cfg.get("vec_env"), ("dummy", "subproc"))
    c.integer("torch_threads", cfg.get("torch_threads"), 1, optional=True)
    c.flag("progress_bar", cfg.get("progress_bar"))
    try:
        resolve_device(str(cfg.get("device")))
    except (ValueError, RuntimeError) as err:
        c.add("device", cfg.get("device"), str(err).splitlines()[0])
    c.choice("agent.algo", cfg.agent.get("algo"), tuple(ALGOS))
    c.number("agent.gamma", cfg.agent.get("gamma"), 0, 1, low_open=True, optional=True)
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
        if not isinstance(video.get("dir"), str) or not video.get("dir"):
            c.add("video.dir", video.get("dir"), "must be a folder path")
        n_eval = cfg.eval.get("n_episodes")
        if _is_int(n_videos) and _is_int(n_eval) and 0 < n_eval < n_videos:
            log.warning("video.n_episodes=%s > eval.n_episodes=%s: the videos record evaluation "
                        "episodes, so %s will be recorded", n_videos, n_eval, n_eval)
    bc = cfg.get("bc")
    if bc is not None:
        c.integer("bc.epochs", bc.get("epochs"), 1)
        c.integer("bc.batch_size", bc.get("batch_size"), 1)
        c.number("bc.lr", bc.get("lr"), 0, low_open=True)
        c.number("bc.log_std", bc.get("log_std"), optional=True)
        c.flag("bc.only_success", bc.get("only_success"))
        c.number("bc.min_obs_std", bc.get("min_obs_std"), 0)
        c.choice("bc.obs_norm", bc.get("obs_norm"), ("demos", "running"))
        c.integer("bc.max_episodes", bc.get("max_episodes"), 1, optional=True)
        if bc.get("weights") is not None and not bc.get("demos"):
            c.add("bc.weights", bc.get("weights"), "needs bc.demos (the demos it weights)")
    model = cfg.reward.get("model")
    preference = model is not None and str(model.get("_target_", "")) == PREFERENCE_TARGET
    if preference:
        _check_preference(model, c)
    if c.problems:
        s = "s" if len(c.problems) > 1 else ""
        raise SettingsError(f"invalid setting{s}: " + "; ".join(c.problems))
    if preference:
        _preference_config(model)
        if model.get("budget", 1) > 0 and model.get("first_round_at", 0) >= cfg.total_timesteps:
            log.warning("reward.model.first_round_at=%s >= total_timesteps=%s: no feedback "
                        "round will run, so the agent trains on an untrained reward",
                        model.first_round_at, cfg.total_timesteps)
    _check_inputs(cfg)


# ----------------------------------------------------------------------------- run folders

CLAIM_FILE = "run.claim"
RUN_OUTPUTS = ("summary.json", "agent.zip", "agent_interrupted.zip")
VIDEO_OUTPUTS = ("episode_*.mp4", "episode_*.json")

_HELD: dict[str, int] = {}  # folder -> descriptor of its locked claim file
_HANDED_OVER: set[str] = set()  # claimed by the Hydra callback for this process's run()


class RunDirError(FileExistsError):
    """A folder holds another run's outputs, or another live run uses it."""


def _unwritable(setting: str, folder: Path, err: OSError) -> OSError:
    return PermissionError(
        f"{setting}: cannot write to {folder} ({err.strerror or err}); "
        f"set {setting} to a writable folder")


def _holder(fd: int) -> str:
    """Who holds a claim file, from what it says."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return f"pid {info['pid']} on {info['host']}, started {info['started']}"
    except (OSError, ValueError, KeyError):
        return "a process starting up"


def claim_folder(folder: str | os.PathLike[str], outputs: Sequence[str], setting: str,
                 hand_over: bool = False) -> None:
    """Claim ``folder`` for this run, or refuse it naming ``setting``.

    Creates the folder and locks ``<folder>/run.claim`` (``flock``, released when
    the process ends or :func:`release_folder` is called); writing the claim
    also proves the folder is writable. Raises :class:`RunDirError` if another
    live run holds the lock or the folder already holds a file matching one of
    ``outputs``, and ``PermissionError`` if it cannot be written. The claim
    file stays as a record of the last run that held the folder.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        key = str(folder.resolve())
        if key in _HELD:
            if key not in _HANDED_OVER:
                raise RunDirError(f"{folder} is in use by another run in this process; "
                                  f"set {setting} to a new folder")
            if not hand_over:
                _HANDED_OVER.discard(key)
            return
        fd = os.open(folder / CLAIM_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except RunDirError:
        raise
    except OSError as err:
        raise _unwritable(setting, folder, err) from None
    try:
        _lock(fd, folder, setting)
        found = sorted({Path(p).name for pattern in outputs
                        for p in glob.glob(str(folder / pattern))})
        if found:
            shown = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
            raise RunDirError(
                f"{folder} already holds another run's outputs ({shown}); they are not "
                f"overwritten: set {setting} to a new folder (or delete that one)")
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S"), "argv": sys.argv}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        os.fsync(fd)
    except RunDirError:
        os.close(fd)
        raise
    except OSError as err:
        os.close(fd)
        raise _unwritable(setting, folder, err) from None
    _HELD[key] = fd
    if hand_over:
        _HANDED_OVER.add(key)


def _lock(fd: int, folder: Path, setting: str) -> None:
    try:
        import fcntl
    except ImportError:  # no flock (Windows): the outputs check still applies
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise RunDirError(
            f"{folder} is in use by another run ({_holder(fd)}); two runs must not share "
            f"a folder: set {setting} to a new folder") from None
    except OSError as err:  # a filesystem without locks
        log.warning("cannot lock %s (%s): a concurrent run into it would not be refused",
                    folder / CLAIM_FILE, err)


def release_folder(folder: str | os.PathLike[str], discard: bool = False) -> None:
    """Release a claim of :func:`claim_folder`; its ``run.claim`` file stays as a record.

    ``discard`` (a run that stopped before writing anything there) removes the
    claim file, while still holding its lock, and the folder if that leaves it empty.
    """
    folder = Path(folder)
    key = str(folder.resolve())
    _HANDED_OVER.discard(key)
    fd = _HELD.pop(key, None)
    if fd is None:
        return
    if discard:
        with contextlib.suppress(OSError):
            (folder / CLAIM_FILE).unlink()
            folder.rmdir()
    os.close(fd)


class ClaimRunDir(Callback):
    """Hydra callback: claim ``hydra.run.dir`` before Hydra writes ``.hydra/`` into it.

    So a run refused for its folder leaves the folder's ``.hydra`` record (the
    settings of the run that is there) untouched. :func:`run` takes the claim over.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            folder = Path(str(config.hydra.run.dir))
        except Exception:  # an interpolation only the job can resolve: run() claims then
            return
        try:
            claim_folder(folder, RUN_OUTPUTS, "hydra.run.dir", hand_over=True)
        except OSError as err:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            raise SystemExit(f"error: {err}") from None


# ----------------------------------------------------------------------------- the run

INPUT_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, OSError, ImportError)


@dataclass
class _Built:
    """What the set-up phase of :func:`run` builds."""

    reward_model: RewardModel
    learned: bool
    venv: VecEnv
    normalizer: VecNormalize | None
    agent: BaseAlgorithm
    callbacks: list[Any]
    bc_summary: dict[str, Any] | None


def _build(cfg: DictConfig, run_dir: Path) -> _Built:
    """Envs, reward model, agent and BC warm start: everything before training."""
    set_torch_threads(cfg.get("torch_threads"))
    probe = make_vec_env(cfg.env, n_envs=1, seed=int(cfg.seed))
    obs_space, act_space = probe.observation_space, probe.action_space
    probe.close()
    reward_model = build_reward_model(cfg, obs_space, act_space)
    reward_model.run_dir = run_dir
    reward_model = build_shaping(cfg.shaping, reward_model, obs_space, act_space, agent_gamma(cfg))
    learned = not getattr(reward_model, "is_ground_truth", False)

    frame_size = reward_model.frame_size if reward_model.needs_frames else None
    venv: VecEnv = make_vec_env(cfg.env, n_envs=int(cfg.n_envs), seed=int(cfg.seed),
                                frame_size=frame_size, vec_env=str(cfg.vec_env),
                                sim_state=bool(getattr(reward_model, "needs_sim_states", False)))
    try:
        callbacks: list[Any] = []
        if learned:
            venv = RewardVecEnvWrapper(venv, reward_model, mode=str(cfg.reward.mode),
                                       weight=float(cfg.reward.weight))
            callbacks = [RewardLoggingCallback(), *reward_model.callbacks()]
        normalizer: VecNormalize | None = None
        if normalize_obs_enabled(cfg):
            normalizer = VecNormalize(venv, norm_obs=True, norm_reward=False,
                                      gamma=agent_gamma(cfg))
            venv = normalizer
        agent = build_agent(cfg, venv, run_dir)
        bc_summary = None
        if cfg.get("bc") is not None and cfg.bc.get("demos"):
            bc_cfg = dataclass_from_kwargs(BCConfig, to_dict(cfg.bc), "bc")
            bc_summary = warm_start(agent, bc_cfg, normalizer, seed=int(cfg.seed))
    except BaseException:
        venv.close()
        raise
    return _Built(reward_model, learned, venv, normalizer, agent, callbacks, bc_summary)


def _save_agent(agent: BaseAlgorithm, path: Path, overwrite: bool = False) -> None:
    with atomic_output(path, overwrite) as tmp, open(tmp, "wb") as f:
        agent.save(f)


def _save_normalizer(normalizer: VecNormalize, path: Path, overwrite: bool = False) -> None:
    with atomic_output(path, overwrite) as tmp:
        normalizer.save(str(tmp))


def _save_interrupted(built: _Built, run_dir: Path) -> None:
    """Salvage what training had (``*_interrupted``); a failing save is logged, not raised."""
    saves: list[tuple[str, Any]] = [
        ("agent_interrupted.zip", lambda p: _save_agent(built.agent, p, overwrite=True))]
    if built.normalizer is not None:
        normalizer = built.normalizer
        saves.append(("vecnormalize_interrupted.pkl",
                      lambda p: _save_normalizer(normalizer, p, overwrite=True)))
    if built.learned:
        saves.append(("reward_model_interrupted.pt",
                      lambda p: save_reward_model(built.reward_model, p)))
    for name, save in saves:
        try:
            save(run_dir / name)
        except Exception as err:  # keep the training error as the one raised
            log.error("could not save %s: %s", run_dir / name, err)


def run(cfg: DictConfig, run_dir: Path, exit_on_input_error: bool = False) -> dict[str, Any]:
    """Train, evaluate, record and summarise one run; returns the summary.

    Settings are validated and the run directory (and video folder) claimed
    before anything is built. ``exit_on_input_error`` (the command line) turns
    an error of that set-up phase (a bad setting, a missing or wrong input
    file, a refused folder) into ``SystemExit("error: ...")``: one line, exit
    status 1, no trace.
    """
    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    claimed: list[Path] = []
    new_video_dir: Path | None = None
    try:
        try:
            validate_settings(cfg)
            claim_folder(run_dir, RUN_OUTPUTS, "hydra.run.dir")
            claimed.append(run_dir)
            video_dir = Path(cfg.video.dir) / run_dir.name
            n_videos = int(cfg.video.n_episodes) if cfg.video.enabled else 0
            if n_videos:
                new_video_dir = None if video_dir.exists() else video_dir
                claim_folder(video_dir, VIDEO_OUTPUTS, "video.dir")
                claimed.append(video_dir)
            built = _build(cfg, run_dir)
        except BaseException as err:
            if new_video_dir is not None and new_video_dir in claimed:
                release_folder(new_video_dir, discard=True)  # leave no empty video folder
            if (isinstance(err, INPUT_ERRORS) and exit_on_input_error
                    and os.environ.get("HYDRA_FULL_ERROR") != "1"):
                raise SystemExit(f"error: {err}") from None
            raise
        return _train_and_report(cfg, run_dir, built, video_dir, n_videos, t0)
    finally:
        for folder in claimed:
            release_folder(folder)


def _train_and_report(cfg: DictConfig, run_dir: Path, built: _Built, video_dir: Path,
                      n_videos: int, t0: float) -> dict[str, Any]:
    """Train the built agent, save it, evaluate, record videos, write ``summary.json``."""
    agent, normalizer, reward_model, learned = (built.agent, built.normalizer,
                                                built.reward_model, built.learned)
    log.info("training %s on %s with reward=%s for %d steps (%d envs) -> %s", cfg.agent.name,
             cfg.env.name, cfg.reward.name, cfg.total_timesteps, cfg.n_envs, run_dir)
    t_train = time.perf_counter()
    try:
        agent.learn(int(cfg.total_timesteps), callback=built.callbacks,
                    progress_bar=bool(cfg.progress_bar), tb_log_name="train")
    except BaseException:
        _save_interrupted(built, run_dir)
        log.error("training stopped; agent and reward model saved in %s (*_interrupted)", run_dir)
        raise
    finally:
        built.venv.close()
    train_s = time.perf_counter() - t_train
    _save_agent(agent, run_dir / "agent.zip")
    if normalizer is not None:
        _save_normalizer(normalizer, run_dir / "vecnormalize.pkl")
        normalizer.training = False
    if learned:
        save_reward_model(reward_model, run_dir / "reward_model.pt",
                          extra={"env": cfg.env.name, "seed": int(cfg.seed)})

    result = evaluate(
        agent if normalizer is None else NormalizedPolicy(agent, normalizer),
        cfg.env,
        n_episodes=int(cfg.eval.n_episodes),
        reward_model=reward_model if learned else None,
        deterministic=bool(cfg.eval.deterministic),
        n_videos=n_videos,
        video_dir=video_dir,
        video_size=(int(cfg.video.height), int(cfg.video.width)),
        fps=cfg.video.fps,
        meta={"run": run_dir.name, "env": cfg.env.name, "reward": cfg.reward.name,
              "agent": cfg.agent.name},
    )
    summary: dict[str, Any] = {
        **result.summary(),
        "total_timesteps": int(cfg.total_timesteps),
        "wall_s": round(time.perf_counter() - t0, 2),
        "train_wall_s": round(train_s, 2),
        "train_steps_per_s": round(int(cfg.total_timesteps) / max(train_s, 1e-9), 1),
        "videos": result.videos,
        "reward_training": reward_model.summary() if learned else None,
        "bc": built.bc_summary,
        "env": cfg.env.name,
        "agent": cfg.agent.name,
        "reward": cfg.reward.name,
        "seed": int(cfg.seed),
        "run_dir": str(run_dir),
    }
    write_text_atomic(run_dir / "summary.json", json.dumps(summary, indent=2), overwrite=False)
    log.info("env return %.1f +- %.1f | learned %s | success %s | %.0f s",
             summary["env_return_mean"], summary["env_return_std"],
             summary["learned_return_mean"], summary["success_rate"], summary["wall_s"])
    return summary


def main(cfg: DictConfig) -> dict[str, Any]:
    """Hydra entry point: the run directory is Hydra's output dir.

    A single run (not a ``-m`` sweep) reports input errors as one line (see :func:`run`).
    """
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    return run(cfg, run_dir, exit_on_input_error=hydra_cfg.mode == RunMode.RUN)


cli = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")(main)

__all__ = ["ClaimRunDir", "RunDirError", "SettingsError", "build_agent", "build_reward_model",
           "claim_folder", "cli", "main", "release_folder", "run", "validate_settings"]
