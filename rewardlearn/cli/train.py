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
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
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
from omegaconf.errors import InterpolationResolutionError
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from rewardlearn.ads.callback import check_schedule, schedule_callbacks
from rewardlearn.agents import (
    NormalizedPolicy,
    agent_gamma,
    build_agent,
    defer_rewards,
    normalize_obs_enabled,
    normalize_reward_enabled,
)
from rewardlearn.bc import BCConfig, warm_start
from rewardlearn.cli.checks import (
    add_env_wrappers,
    reward_settings,
    target_class,
    validate_settings,
)
from rewardlearn.cli.objective import check_objective, is_optuna_sweep, objective_value
from rewardlearn.cli.schemas import register_reward_schemas
from rewardlearn.cli.select_run import check_select, select_for_run
from rewardlearn.env_factory import CONF_DIR, make_vec_env
from rewardlearn.files import atomic_output, write_text_atomic
from rewardlearn.publish import save_run_reward_model
from rewardlearn.rewards.base import RewardModel
from rewardlearn.rewards.checkpoint import save_reward_model
from rewardlearn.rollouts import evaluate
from rewardlearn.runs import (
    RUN_OUTPUTS,
    VIDEO_OUTPUTS,
    claim_folder,
    release_folder,
)
from rewardlearn.settings import RewardModelConfig
from rewardlearn.shaping import build_shaping
from rewardlearn.utils import auto_threads, resolve_device, set_torch_threads, to_dict
from rewardlearn.wrappers.episodic import holds_episodic
from rewardlearn.wrappers.normalize import AgentNormalize
from rewardlearn.wrappers.vec import (
    DeferredRewardCallback,
    RewardLoggingCallback,
    RewardVecEnvWrapper,
    find_reward_wrapper,
)

log = logging.getLogger("rewardlearn")

def build_reward_model(cfg: DictConfig, observation_space: gym.Space, action_space: gym.Space,
                       settings: RewardModelConfig | None = None) -> RewardModel:
    """Build ``cfg.reward.model`` for the env's spaces: a module with a ``settings_class``
    from ``settings`` (the object the checks built; built here when not given) and its
    runtime parameters (a teacher), any other target as Hydra instantiates it."""
    model_cfg = cfg.reward.model
    cls = target_class(model_cfg)
    try:
        if cls is not None and issubclass(cls, RewardModel) and cls.settings_class is not None:
            if settings is None:
                settings = reward_settings(cfg)
            runtime = {k: instantiate(model_cfg[k]) for k in cls.runtime_params
                       if k in model_cfg}
            build: Any = cls  # a RewardModel subclass taking settings= (its settings_class)
            model = build(observation_space, action_space, config=settings, **runtime)
        else:
            model = instantiate(model_cfg, observation_space=observation_space,
                                action_space=action_space)
    except InstantiationException as e:
        if isinstance(e.__cause__, (ValueError, TypeError, FileNotFoundError, ImportError)):
            raise e.__cause__ from None
        raise
    if not isinstance(model, RewardModel):
        raise TypeError(f"reward={cfg.reward.name} built a {type(model).__name__}, "
                        "not a rewardlearn RewardModel")
    return model


# ----------------------------------------------------------------------------- the run

INPUT_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, OSError, ImportError)
HYDRA_BOOKKEEPING = (".hydra", "*.log")
"""What Hydra writes into a run folder before the run starts (removed if it is refused)."""


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


def _build(cfg: DictConfig, run_dir: Path, settings: RewardModelConfig | None = None
           ) -> _Built:
    """Envs, reward model, agent and BC warm start: everything before training."""
    threads = cfg.get("torch_threads", "auto")
    if threads != "auto":
        set_torch_threads(threads)
    probe = make_vec_env(cfg.env, n_envs=1, seed=int(cfg.seed))
    obs_space, act_space = probe.observation_space, probe.action_space
    probe.close()
    reward_model = build_reward_model(cfg, obs_space, act_space, settings)
    reward_model.run_dir = run_dir
    reward_model = build_shaping(cfg.shaping, reward_model, obs_space, act_space, agent_gamma(cfg))
    learned = not reward_model.is_ground_truth
    if threads == "auto":
        n = auto_threads(resolve_device(str(cfg.device)), reward_model.needs_frames)
        log.info("torch_threads=auto: %d thread%s", n, "s" if n > 1 else "")
        set_torch_threads(n)
    defer = learned and defer_rewards(str(cfg.get("reward_timing", "auto")), str(cfg.agent.algo),
                                      reward_model.name, reward_model.deferrable,
                                      episodic=holds_episodic(reward_model))

    frame_size = reward_model.frame_size if reward_model.needs_frames else None
    venv: VecEnv = make_vec_env(cfg.env, n_envs=int(cfg.n_envs), seed=int(cfg.seed),
                                frame_size=frame_size, vec_env=str(cfg.vec_env),
                                sim_state=reward_model.needs_sim_states)
    try:
        callbacks: list[Any] = []
        if learned:
            venv = RewardVecEnvWrapper(venv, reward_model, mode=str(cfg.reward.mode),
                                       weight=float(cfg.reward.weight), defer=defer)
            # first: the deferred rewards go into the rollout before anything reads them
            logging_cb = DeferredRewardCallback() if defer else RewardLoggingCallback()
            callbacks = [logging_cb, *reward_model.callbacks()]
        normalizer: VecNormalize | None = None
        norm_obs, norm_reward = normalize_obs_enabled(cfg), normalize_reward_enabled(cfg)
        if norm_obs or norm_reward:  # above the reward wrapper: the agent's rewards, any kind
            normalizer = AgentNormalize(venv, norm_obs=norm_obs, norm_reward=norm_reward,
                                        gamma=agent_gamma(cfg), defer_rewards=defer)
            venv = normalizer
        agent = build_agent(cfg, venv, run_dir, reward_model)
        callbacks += schedule_callbacks(cfg, reward_model if learned else None, obs_space,
                                        run_dir)  # agent.discount_schedule (ADS)
        bc_summary = None
        if cfg.get("bc") is not None and cfg.bc.get("demos"):
            bc_cfg = BCConfig.from_kwargs(to_dict(cfg.bc))
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


def video_folder(cfg: DictConfig, run_dir: Path) -> Path:
    """Where a run's videos go: ``<run>/videos`` (``video.dir: null``), else
    ``<video.dir>/<run name>``."""
    where = cfg.video.get("dir")
    return run_dir / "videos" if not where else Path(str(where)) / run_dir.name


class Stopped(SystemExit):
    """The process was asked to stop (SIGTERM: ``timeout``, a scheduler's preemption, a
    container stop); raised in the main thread so the run saves what it has first."""


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into :class:`Stopped` (exit status 143) while the block runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise Stopped(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(cfg: DictConfig, run_dir: Path, exit_on_input_error: bool = False) -> dict[str, Any]:
    """Train, evaluate, record and summarise one run; returns the summary.

    Settings are validated and the run directory (and a video folder outside it) claimed
    before anything is built. ``exit_on_input_error`` (the command line) turns an error of
    that set-up phase (a bad setting, a missing or wrong input file, a refused folder) into
    ``SystemExit("error: ...")``: one line, exit status 1, no trace. SIGTERM and Ctrl-C
    while training save ``agent_interrupted.zip`` (and the reward model) first.
    """
    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    claimed: list[Path] = []
    video_dir = video_folder(cfg, run_dir)
    new_video_dir = None if video_dir.exists() else video_dir
    with _stop_on_sigterm():
        try:
            try:
                settings = validate_settings(cfg)  # built once, handed to the module
                check_schedule(cfg)  # agent.discount_schedule
                check_select(cfg)  # eval.select: best-of-n selection at evaluation
                add_env_wrappers(cfg, settings)
                claim_folder(run_dir, RUN_OUTPUTS, "hydra.run.dir")
                claimed.append(run_dir)
                n_videos = int(cfg.video.n_episodes) if cfg.video.enabled else 0
                if n_videos and not video_dir.resolve().is_relative_to(run_dir.resolve()):
                    claim_folder(video_dir, VIDEO_OUTPUTS, "video.dir")
                    claimed.append(video_dir)
                built = _build(cfg, run_dir, settings)
            except BaseException as err:
                for folder in claimed:  # refused before training: leave no folder behind
                    release_folder(folder, discard=True, bookkeeping=HYDRA_BOOKKEEPING)
                claimed.clear()
                if (isinstance(err, INPUT_ERRORS) and exit_on_input_error
                        and os.environ.get("HYDRA_FULL_ERROR") != "1"):
                    raise SystemExit(f"error: {err}") from None
                raise
            return _train_and_report(cfg, run_dir, built, video_dir, n_videos, t0)
        finally:
            for folder in claimed:
                release_folder(folder)
            if new_video_dir is not None:
                with contextlib.suppress(OSError):
                    new_video_dir.rmdir()  # leave no empty video folder


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process, all its threads, and its reaped child
    processes (``vec_env=subproc``'s workers once the envs are closed)."""
    if sys.platform == "win32":  # no getrusage: this process only
        return time.process_time()
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _reward_time(venv: VecEnv, train_s: float, callbacks: Sequence[Any] = ()
                 ) -> dict[str, float]:
    """The learned reward's cost inside the run: ``reward_calls_s``, the seconds in the
    module's calls from the reward wrapper (scoring, observing:
    :attr:`RewardVecEnvWrapper.reward_s`); ``reward_update_s``, the seconds its own training
    took between rollouts (DrS's classifier updates, online progress refinement:
    :attr:`~rewardlearn.stages.PeriodicUpdate.update_s`); ``reward_s``, their sum, and
    ``reward_share`` of ``train_wall_s``. Measured inside the run, so other jobs on the
    machine do not move it as they move a wall-time comparison of two runs."""
    from rewardlearn.stages import PeriodicUpdate

    wrapper = find_reward_wrapper(venv)
    if wrapper is None:
        return {}
    update_s = sum(cb.update_s for cb in callbacks if isinstance(cb, PeriodicUpdate))
    total = wrapper.reward_s + update_s
    return {"reward_s": round(total, 2), "reward_calls_s": round(wrapper.reward_s, 2),
            "reward_update_s": round(update_s, 2),
            "reward_share": round(total / max(train_s, 1e-9), 4)}


def _train_and_report(cfg: DictConfig, run_dir: Path, built: _Built, video_dir: Path,
                      n_videos: int, t0: float) -> dict[str, Any]:
    """Train the built agent, save it, evaluate, record videos, write ``summary.json``."""
    agent, normalizer, reward_model, learned = (built.agent, built.normalizer,
                                                built.reward_model, built.learned)
    log.info("training %s on %s with reward=%s for %d steps (%d envs) -> %s", cfg.agent.name,
             cfg.env.name, cfg.reward.name, cfg.total_timesteps, cfg.n_envs, run_dir)
    t_train, cpu_train = time.perf_counter(), _cpu_s()
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
    # for cost comparisons on a shared machine: wall time moves with whatever else runs
    # (2.5x on the 2-core bench machine), CPU seconds less, though not free of it (shared
    # caches; +-10% between like runs in bench/results/suite_cost.md)
    train_cpu_s = _cpu_s() - cpu_train
    _save_agent(agent, run_dir / "agent.zip")
    if normalizer is not None:
        _save_normalizer(normalizer, run_dir / "vecnormalize.pkl")
        normalizer.training = False
    if learned:
        save_reward_model(reward_model, run_dir / "reward_model.pt",
                          extra={"env": cfg.env.name, "seed": int(cfg.seed)})
        save_run_reward_model(reward_model, run_dir, cfg)  # Hub format: runs/<run>/reward_model/

    policy = agent if normalizer is None else NormalizedPolicy(agent, normalizer)
    # eval.select.n > 1: the policy behind best-of-n selection (rewardlearn/select/)
    policy, eval_env, selector = select_for_run(cfg, policy, agent, normalizer,
                                                reward_model if learned else None)
    primary = bool(cfg.eval.deterministic)
    results = {}
    for deterministic in (primary, not primary):  # the headline one first, with the videos
        results[deterministic] = evaluate(
            policy,
            eval_env,
            n_episodes=int(cfg.eval.n_episodes),
            reward_model=reward_model if learned else None,
            deterministic=deterministic,
            n_videos=n_videos if deterministic == primary else 0,
            video_dir=video_dir,
            video_size=(int(cfg.video.height), int(cfg.video.width)),
            fps=cfg.video.fps,
            meta={"run": run_dir.name, "env": cfg.env.name, "reward": cfg.reward.name,
                  "agent": cfg.agent.name, "deterministic": deterministic},
        )
    result = results[primary]
    summary: dict[str, Any] = {
        **result.summary(),
        "eval_policy": "mean action" if primary else "sampled actions",
        "deterministic": results[True].summary(),
        "sampled": results[False].summary(),
        "total_timesteps": int(cfg.total_timesteps),
        "wall_s": round(time.perf_counter() - t0, 2),
        "train_wall_s": round(train_s, 2),
        "train_cpu_s": round(train_cpu_s, 2),
        "train_steps_per_s": round(int(cfg.total_timesteps) / max(train_s, 1e-9), 1),
        **_reward_time(built.venv, train_s, built.callbacks),
        "videos": [_relative(v, run_dir) for v in result.videos],
        "reward_training": reward_model.summary() if learned else None,
        "bc": built.bc_summary,
        "select": None if selector is None else selector.summary(),
        "env": cfg.env.name,
        "agent": cfg.agent.name,
        "reward": cfg.reward.name,
        "seed": int(cfg.seed),
        "run_dir": str(run_dir),
    }
    write_text_atomic(run_dir / "summary.json", json.dumps(summary, indent=2), overwrite=False)
    other = summary["sampled" if primary else "deterministic"]
    log.info("env return %.1f +- %.1f (%s: %.1f) | learned %s | success %s (%s) | %.0f s",
             summary["env_return_mean"], summary["env_return_std"],
             "sampled" if primary else "mean action", other["env_return_mean"],
             summary["learned_return_mean"], summary["success_rate"], other["success_rate"],
             summary["wall_s"])
    return summary


class PrepareRun(Callback):
    """Hydra callback: check the settings and claim ``hydra.run.dir`` before Hydra creates it
    and writes ``.hydra/`` into it.

    A run refused for a bad setting or for its folder leaves no folder behind (and a folder
    that holds another run keeps its ``.hydra`` record untouched); :func:`run` takes the
    claim over.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            folder = Path(str(config.hydra.run.dir))
        except Exception:  # an interpolation only the job can resolve: run() checks then
            return
        try:
            with contextlib.suppress(InterpolationResolutionError):
                validate_settings(config)
                check_schedule(config)
                check_select(config)
            claim_folder(folder, RUN_OUTPUTS, "hydra.run.dir", hand_over=True)
        except INPUT_ERRORS as err:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            raise SystemExit(f"error: {err}") from None


def _relative(path: str, run_dir: Path) -> str:
    """``path`` relative to the run folder when inside it (a run folder moves whole)."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(run_dir.resolve()))
    except ValueError:
        return str(p.resolve())


def main(cfg: DictConfig) -> dict[str, Any] | float:
    """Hydra entry point: the run directory is Hydra's output dir; returns the summary.

    A single run (not a ``-m`` sweep) reports input errors as one line (see :func:`run`).
    Under the Optuna sweeper it returns the summary's ``cfg.objective`` field instead
    (:mod:`rewardlearn.cli.objective`), checked before training.
    """
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    optuna = hydra_cfg.mode == RunMode.MULTIRUN and is_optuna_sweep(
        hydra_cfg.sweeper.get("_target_"))
    objective = check_objective(cfg.get("objective", "env_return_mean")) if optuna else None
    summary = run(cfg, run_dir, exit_on_input_error=hydra_cfg.mode == RunMode.RUN)
    return summary if objective is None else objective_value(summary, objective)


register_reward_schemas()  # reward.model defaults come from the settings dataclasses
_hydra_main = hydra.main(version_base="1.3", config_path=str(CONF_DIR),
                         config_name="config")(main)

_USER_ENV_DIRS: list[str] = []


def _searchpath(argv: list[str], folders: list[str]) -> list[str]:
    """``argv`` with ``folders`` added to ``hydra.searchpath`` (kept with the user's own)."""
    if not folders:
        return argv
    given = [a for a in argv if a.startswith("hydra.searchpath=")]
    paths = [f"file://{Path(f).resolve()}" for f in folders]
    if given:
        existing = given[-1].split("=", 1)[1].strip().strip("[]")
        paths = [p.strip() for p in existing.split(",") if p.strip()] + paths
        argv = [a for a in argv if not a.startswith("hydra.searchpath=")]
    return [*argv, f"hydra.searchpath=[{','.join(paths)}]"]


def prepare_command_line(argv: list[str]) -> list[str]:
    """The ``train.py`` arguments Hydra gets: ``env=path/to/my_env.yaml`` becomes a config of
    a temporary group folder on Hydra's search path, and :data:`CONFIG_DIR_ENV` folders join
    that path; then every ``key=value`` is checked against the composed config, so a typo
    (``reward.model.budgett=10``) is refused in one line naming the closest key, before any
    run folder exists."""
    import atexit
    import shutil
    import tempfile

    from rewardlearn.env_factory import (
        add_import_path,
        available_envs,
        is_config_path,
        user_config_dirs,
    )

    argv = list(argv)
    folders = [str(d) for d in user_config_dirs()]
    for i, arg in enumerate(argv):
        key, sep, value = arg.partition("=")
        if key == "env" and sep and is_config_path(value):
            path = Path(value).expanduser()
            if not path.is_file():
                raise SystemExit(f"error: env={value}: no such file")
            add_import_path(path.resolve().parent)  # my_env.py beside my_env.yaml imports
            tmp = tempfile.mkdtemp(prefix="rewardlearn-conf-")
            atexit.register(shutil.rmtree, tmp, True)
            (Path(tmp) / "env").mkdir()
            stem = path.stem if path.stem not in available_envs() else f"{path.stem}__user"
            (Path(tmp) / "env" / f"{stem}.yaml").symlink_to(path.resolve())
            argv[i] = f"env={stem}"
            folders.append(tmp)
    argv = _searchpath(argv, folders)
    check_overrides(argv)
    return argv


def _kwargs_hint(cfg: DictConfig, parent: str, leaf: str, key: str,
                 overrides: list[str]) -> str:
    """The one-line error for a new key of a keyword-argument map (``agent.kwargs``): add it
    with ``+``, unless the agent's constructor has no such argument (with the closest)."""
    import inspect

    from rewardlearn.agents import ALGOS
    from rewardlearn.settings import did_you_mean

    given = next(o for o in overrides if o.split("=", 1)[0] == key)
    algo = ALGOS.get(str(OmegaConf.select(cfg, "agent.algo"))) if parent == "agent.kwargs" \
        else None
    if algo is not None:
        params = [p for p in inspect.signature(algo.__init__).parameters if p != "self"]
        if leaf not in params:
            return (f"error: {algo.__name__} takes no argument {leaf!r}"
                    f"{did_you_mean([leaf], params)}; {parent} is passed to "
                    f"{algo.__name__}(...)")
    return (f"error: {parent} has no {leaf!r} yet; add it with +{given} ({parent} is passed "
            "to its constructor as keyword arguments)")


def check_overrides(argv: list[str]) -> None:
    """Compose the config as Hydra will; an override of a key it lacks exits with one line
    (``error: reward.model has no setting 'budgett' (did you mean budget?)``). Sweeps and
    Hydra's own flags are left to Hydra."""
    import re

    from hydra import compose, initialize_config_dir
    from hydra.errors import ConfigCompositionException

    if any(a.startswith("-") for a in argv):
        return
    overrides = [a for a in argv if "=" in a and not a.startswith(("hydra.", "hydra/"))]
    if any("," in a.split("=", 1)[1] and not a.split("=", 1)[1].startswith(("[", "{"))
           for a in overrides):
        return  # a sweep list: Hydra's -m handles it
    searchpath = [a for a in argv if a.startswith("hydra.searchpath=")]
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            compose(config_name="config", overrides=[*searchpath, *overrides])
    except ConfigCompositionException as err:
        text = str(err) + " " + str(err.__cause__ or "")
        match = re.search(r"Could not override '([^']+)'", text)
        if match is None or "No match in the defaults list" in text:
            return  # Hydra's own message lists the valid choices
        key = match.group(1)
        parent, _, leaf = key.rpartition(".")
        try:
            with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
                base = compose(config_name="config", overrides=[
                    *searchpath, *(o for o in overrides if o.split("=", 1)[0] != key)])
        except ConfigCompositionException:
            return
        node = OmegaConf.select(base, parent) if parent else base
        if not isinstance(node, DictConfig):
            return
        from rewardlearn.settings import did_you_mean

        where = parent or "the config"
        if parent.rpartition(".")[2].endswith("kwargs"):  # passed on as is: any key goes
            raise SystemExit(_kwargs_hint(base, parent, leaf, key, overrides)) from None
        raise SystemExit(f"error: {where} has no setting {leaf!r}"
                         f"{did_you_mean([leaf], [str(k) for k in node])}; valid: "
                         f"{', '.join(sorted(str(k) for k in node))}") from None
    except Exception:  # anything else is Hydra's to report
        return


def cli() -> None:
    """``rewardlearn-train``: :func:`prepare_command_line`, then Hydra."""
    import sys

    sys.argv[1:] = prepare_command_line(sys.argv[1:])
    _hydra_main()


__all__ = ["PrepareRun", "Stopped", "build_reward_model", "check_overrides", "cli", "main",
           "prepare_command_line", "run", "video_folder"]
