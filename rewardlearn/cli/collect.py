"""Collect scripted-expert demonstrations (or a trained agent's rollouts) into a Minari
dataset, and load them back.

Usage::

    rewardlearn-collect env=pick_place n_episodes=20
    rewardlearn-collect env=metaworld env.task=drawer-open-v3 n_episodes=10
    rewardlearn-collect env=path/to/my_env.yaml expert=my_pkg.policies:MyExpert
    rewardlearn-collect env=pick_place n_episodes=50 noise=0.1 frames=true \\
        frame_size=84 out=data/pick_place-noisy-v0 dataset_id=rewardlearn/pick_place/noisy-v0
    rewardlearn-collect env=pick_place policy=runs/<run>/agent.zip only_success=false \\
        n_episodes=100 out=data/pick_place-policy-v0 dataset_id=rewardlearn/pick_place/policy-v0

Options (``key=value``): ``env`` (an env config by name, a path to an env YAML, or a
gymnasium id a packaged config names; ``env.<key>=value`` changes the config as on
``train.py``'s command line), ``n_episodes`` (episodes to
*keep*), ``seed`` (episode ``i`` of the run resets with ``seed + i``), ``noise`` (std of
the expert's Gaussian action noise), ``frames`` (also store rendered frames),
``frame_size``, ``out`` (dataset directory), ``dataset_id``, ``only_success`` (drop failed
episodes; collection then goes on until ``n_episodes`` are kept or ``max_tries`` episodes
were run), ``max_tries``, ``jpeg`` (JPEG-compress frames: smaller, lossy), ``overwrite``,
``policy`` (a saved SB3 agent, ``runs/<run>/agent.zip``, with its ``vecnormalize.pkl``:
record its rollouts instead of the scripted expert's, with the same per-step stage
labels, e.g. to adapt a progress model to the states that policy visits),
``deterministic`` (the agent's mean action instead of a sample; ``noise`` applies to the
scripted expert only), ``after_success`` (go on this many steps past the first success,
then end the episode as truncated, instead of ending it at success: demos that show the
outcome held, not only the frame where success first registers; a trajectory-matching
reward such as ``reward=ot`` pays for reaching the demos' last frames. Meta-World's
``terminate_on_success`` is turned off for it; an env that itself terminates at success
still ends there), ``expert`` (your own scripted policy for your own env:
``pkg.module:name``, a function ``obs -> action`` or a class built as ``cls(env)``; an env
config may name it as ``expert:``). Without ``policy`` or ``expert`` the env's packaged
expert acts (pick_place, every Meta-World task).

Storage: ``out`` is a self-contained Minari (hdf5) dataset directory, laid out exactly as
Minari keeps ``$MINARI_DATASETS_PATH/<dataset_id>/`` (``out/data/main_data.hdf5`` and
``out/data/metadata.json``). Minari can only create datasets under its datasets root, so
the dataset is created under a temporary root next to ``out`` and then moved there. Read
it with :func:`load_demos` (``load_demos("data/pick_place-expert-v0")``) or with
``minari.MinariDataset("data/pick_place-expert-v0/data")``; if ``out`` is
``$MINARI_DATASETS_PATH/<dataset_id>``, ``minari.load_dataset(dataset_id)`` works too.

Per step the dataset holds observations (``T + 1`` per episode: reset observation
included), actions, rewards, terminations, truncations and infos (``T + 1`` entries:
``stage``, ``success``, ``is_success``, ``progress``, ``dense_reward``,
``sparse_reward``, ``grasped``); the metadata holds ``subtask_names``. With
``frames=true`` observations are a dict ``{"pixels": uint8 (T+1, S, S, 3), "state":
float32 (T+1, D)}``: an env with an ``obs_mode`` setting renders them itself
(``state_pixels``), any other env's frames are rendered as training renders them (the
env config's camera).

The dataset is written with :func:`minari.create_dataset_from_buffers` rather than
``minari.DataCollector``: the collector needs ``jax`` (Minari's ``create`` extra) and
would store failed episodes too, which ``only_success`` must drop.
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from omegaconf import DictConfig, OmegaConf

from rewardlearn.cli.options import cli_args, parse_key_values, run_cli, settings_types
from rewardlearn.settings import Settings
from rewardlearn.wrappers.frames import FRAME_KEY

INFO_KEYS: dict[str, type] = {
    "stage": np.int64,
    "success": np.float64,
    "is_success": np.bool_,
    "progress": np.float64,
    "dense_reward": np.float64,
    "sparse_reward": np.float64,
    "grasped": np.bool_,
}
"""Info entries stored per step, with the dtype they are stored as."""


def resolve_env(name: str, overrides: Sequence[str] = ()) -> tuple[str, DictConfig]:
    """``(short_name, env_config)`` for an env config name, a path to an env YAML, or a
    gymnasium id that a packaged config names (``rewardlearn/PickPlace-v0``)."""
    from rewardlearn.env_factory import available_envs, env_config, is_config_path

    if not is_config_path(name) and name not in available_envs():
        for short in available_envs():
            try:
                cfg = env_config(short)
            except (ValueError, OSError):
                continue
            if str(cfg.get("id")) == name and "{" not in str(cfg.get("name")):
                name = short
                break
    cfg = env_config(name, overrides)
    short = re.sub(r"[^A-Za-z0-9_]+", "_", str(cfg.name)).strip("_")
    return short, cfg


def _expert_from(spec: str, env: gym.Env) -> Callable[[Any], np.ndarray]:
    """``expert=pkg.module:name`` (or the env config's ``expert:``): a function
    ``obs -> action``, or a class built as ``cls(env)`` whose instances are such functions."""
    from rewardlearn.utils import import_object

    obj: Any = import_object(spec, what="expert")
    build: Any = obj
    policy: Callable[[Any], np.ndarray] = build(env) if inspect.isclass(obj) else obj
    if not callable(policy):
        raise TypeError(f"expert {spec!r} is not a function obs -> action (or a class taking "
                        "the env whose instances are)")
    return policy


def _native_frames(env_cfg: DictConfig) -> bool:
    """Whether the env renders frames into its own observations (``obs_mode`` kwarg)."""
    return "obs_mode" in (env_cfg.get("kwargs") or {})


def _make_env(env_cfg: DictConfig, cfg: CollectConfig) -> gym.Env:
    """The env to collect in: an episode ends at success where the env can stop there
    (Meta-World's ``terminate_on_success``); with ``cfg.frames`` an env with its own
    ``obs_mode`` renders ``state_pixels`` observations, any other env gets the frames the
    training runs see (:class:`~rewardlearn.wrappers.FrameCapture`, the config's camera)."""
    from rewardlearn.env_factory import make_env

    plain = OmegaConf.create(OmegaConf.to_container(env_cfg, resolve=True))
    assert isinstance(plain, DictConfig)
    env_cfg = plain
    kwargs = dict(env_cfg.get("kwargs") or {})
    if str(env_cfg.id).startswith("Meta-World/"):  # MT1 draws layouts at make: seed it
        kwargs.update(terminate_on_success=cfg.after_success is None, seed=cfg.seed)
    size = None
    if cfg.frames and _native_frames(env_cfg):
        kwargs.update(obs_mode="state_pixels", width=cfg.frame_size, height=cfg.frame_size)
    elif cfg.frames:
        size = (cfg.frame_size, cfg.frame_size)
    env_cfg.kwargs = kwargs
    env = make_env(env_cfg, frame_size=size)
    if cfg.after_success is not None:
        env = SuccessTail(env, cfg.after_success, str(env_cfg.get("success_key") or "success"))
    return env


def _succeeded(info: dict[str, Any], success_key: str, terminated: bool) -> bool:
    """Whether a step's info reports success (``is_success``, else ``success_key``)."""
    return bool(float(info.get("is_success", info.get(success_key, terminated))) > 0.5)


class SuccessTail(gym.Wrapper):
    """End an episode (``truncated=True``) ``steps`` steps after its first success.

    Collection's ``after_success``: the episode goes on past the step where success first
    registers so that the recorded demo ends on the held outcome (on Meta-World's
    sweep-into the first success frame still shows the puck lifted over the hole's edge;
    ten steps later it lies in the hole). ``info["reached_success"]`` says whether success
    registered at any step so far, since success can be transient after it first does.
    An episode that terminates, or hits its time limit, before then ends as it would.
    """

    def __init__(self, env: gym.Env, steps: int, success_key: str = "success") -> None:
        super().__init__(env)
        if steps < 0:
            raise ValueError(f"after_success must be >= 0, got {steps}")
        self.steps = steps
        self.success_key = success_key
        self._left: int | None = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self._left = None
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self._left is not None:
            self._left -= 1
        elif _succeeded(info, self.success_key, False):
            self._left = self.steps
        info = dict(info, reached_success=self._left is not None)
        if self._left is not None and self._left <= 0 and not terminated:
            truncated = True
        return obs, reward, bool(terminated), bool(truncated), info


def _stage_names(env: gym.Env) -> tuple[str, ...]:
    for attr in ("SUBTASKS",):
        for holder in (env, env.unwrapped):
            names = getattr(holder, attr, None)
            if names:
                return tuple(str(n) for n in names)
        try:
            names = env.get_wrapper_attr(attr)
        except AttributeError:
            continue
        if names:
            return tuple(str(n) for n in names)
    return ()


@dataclass
class CollectConfig(Settings):
    """Options of :func:`collect` (the CLI's ``key=value`` overrides)."""

    what = "collect"
    env: str = "pick_place"
    n_episodes: int = 20
    seed: int = 0
    noise: float = 0.0
    frames: bool = False
    frame_size: int = 84
    out: str | None = None
    dataset_id: str | None = None
    only_success: bool = True
    max_tries: int | None = None
    jpeg: bool = False
    overwrite: bool = False
    policy: str | None = None
    deterministic: bool = False
    expert: str | None = None
    after_success: int | None = None
    env_overrides: list[str] = field(default_factory=list)

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (self.n_episodes >= 1, f"n_episodes must be >= 1, got {self.n_episodes}"),
            (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
            (self.noise >= 0, f"noise must be >= 0, got {self.noise}"),
            (self.frame_size >= 8, f"frame_size must be >= 8, got {self.frame_size}"),
            (self.max_tries is None or self.max_tries >= self.n_episodes,
             f"max_tries must be >= n_episodes ({self.n_episodes}) or null"),
            (self.after_success is None or self.after_success >= 0,
             f"after_success must be >= 0 (steps past the first success) or null, got "
             f"{self.after_success}"),
        ]

    def resolved(self) -> CollectConfig:
        """Copy with ``out``, ``dataset_id`` and ``max_tries`` defaults filled in."""
        short, _ = resolve_env(self.env, self.env_overrides)
        kind = "policy" if self.policy else "expert"  # whose rollouts the dataset holds
        return CollectConfig(
            **{
                **self.__dict__,
                "out": self.out or f"data/{short}-{kind}-v0",
                "dataset_id": self.dataset_id or f"rewardlearn/{short}/{kind}-v0",
                "max_tries": self.max_tries or 2 * self.n_episodes + 10,
            }
        )


@dataclass
class CollectResult:
    """What a collection run did."""

    path: Path
    dataset_id: str
    kept: int
    tried: int
    successes: int
    mean_length: float
    wall_time: float

    @property
    def success_rate(self) -> float:
        return self.successes / max(self.tried, 1)

    def summary(self) -> str:
        return (
            f"kept {self.kept}/{self.tried} episodes tried | success rate "
            f"{self.success_rate:.1%} ({self.successes}/{self.tried}) | mean length of kept "
            f"{self.mean_length:.1f} steps\n"
            f"dataset {self.dataset_id!r} written to {self.path} "
            f"(load_demos({str(self.path)!r}))\nwall time {self.wall_time:.1f} s"
        )


def parse_overrides(argv: Sequence[str]) -> CollectConfig:
    """Build a :class:`CollectConfig` from ``key=value`` tokens (``env.<key>=value`` tokens
    change the env config, as on ``train.py``'s command line)."""
    env_overrides = [a.split(".", 1)[1] for a in argv if a.startswith("env.")]
    types = {k: v for k, v in settings_types(CollectConfig).items() if k != "env_overrides"}
    values = parse_key_values([a for a in argv if not a.startswith("env.")], types)
    return CollectConfig.from_kwargs({**values, "env_overrides": env_overrides})


@contextmanager
def _datasets_root(root: Path) -> Iterator[None]:
    """Point Minari's datasets root (``MINARI_DATASETS_PATH``) at ``root`` temporarily."""
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous


def _stack_infos(infos: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """The :data:`INFO_KEYS` entries present in every info, stacked."""
    return {k: np.asarray([info[k] for info in infos], dtype=dt) for k, dt in INFO_KEYS.items()
            if all(k in info for info in infos)}


def _stack_obs(obs: list[Any]) -> Any:
    if isinstance(obs[0], dict):
        return {k: np.stack([o[k] for o in obs]) for k in obs[0]}
    return np.stack(obs)


def _serialisable_spec(env: gym.Env) -> bool:
    """Whether Minari can store the env's spec (Meta-World registers callables: it cannot)."""
    return env.spec is not None and isinstance(env.spec.entry_point, str)


def _scripted(env: gym.Env, noise: float, seed: int) -> Callable[[Any], np.ndarray]:
    """The env's scripted expert (``rewardlearn_envs.expert_for``: pick_place, every
    Meta-World task), or a clear error naming the ways to give one."""
    from rewardlearn_envs import expert_for

    try:
        return expert_for(env, noise=noise, seed=seed)
    except ValueError as err:
        raise ValueError(f"{err}; for your own env pass expert=<pkg.module:policy> (or an "
                         "'expert:' entry in its env config), or policy=runs/<run>/agent.zip"
                         ) from None


def _stored(obs: Any, info: dict[str, Any], frames_in_info: bool) -> Any:
    """The observation as stored: with frames from ``info``, ``{"state", "pixels"}``."""
    if not frames_in_info:
        return obs
    return {"state": np.asarray(obs), "pixels": np.asarray(info.pop(FRAME_KEY), np.uint8)}


def collect(cfg: CollectConfig, verbose: bool = True) -> CollectResult:
    """Run the scripted expert (or ``cfg.policy``) and write the episodes as a Minari
    dataset at ``cfg.out``."""
    import minari
    from minari.data_collector import EpisodeBuffer
    from minari.dataset.minari_dataset import parse_dataset_id

    cfg = cfg.resolved()
    assert cfg.out is not None and cfg.dataset_id is not None and cfg.max_tries is not None
    _, env_cfg = resolve_env(cfg.env, cfg.env_overrides)
    env_id = str(env_cfg.id) + (f" ({env_cfg.task})" if env_cfg.get("task") else "")
    # refuse a malformed id before collecting, not after
    try:
        _, _, version = parse_dataset_id(cfg.dataset_id)
    except (TypeError, ValueError) as exc:
        version = None
        cause: Exception | None = exc
    else:
        cause = None
    if version is None:
        raise ValueError(
            f"dataset_id={cfg.dataset_id!r} is not a Minari id: it must read "
            "[namespace/]name-v<version>, e.g. rewardlearn/pick_place/expert-v0"
            + (f" ({cause})" if isinstance(cause, ValueError) else "")) from cause
    out = Path(cfg.out).resolve()
    if out.exists() and not cfg.overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=true or another out=...")
    env = _make_env(env_cfg, cfg)  # a bad env setting is refused before anything is removed
    if out.exists():
        shutil.rmtree(out)

    agent = None
    if cfg.policy is not None:
        import torch

        from rewardlearn.agents import agent_policy

        agent = agent_policy(cfg.policy, deterministic=cfg.deterministic)
        torch.manual_seed(cfg.seed)
    subtasks = _stage_names(env)
    success_key = str(env_cfg.get("success_key") or "is_success")
    expert_spec = cfg.expert or env_cfg.get("expert")
    frames_in_info = cfg.frames and not _native_frames(env_cfg)
    observation_space = env.observation_space
    if frames_in_info:
        observation_space = gym.spaces.Dict({
            "state": env.observation_space,
            "pixels": gym.spaces.Box(0, 255, (cfg.frame_size, cfg.frame_size, 3), np.uint8)})

    start = time.perf_counter()
    buffers: list[EpisodeBuffer] = []
    lengths: list[int] = []
    tried = successes = 0
    try:
        while len(buffers) < cfg.n_episodes and tried < cfg.max_tries:
            seed = cfg.seed + tried
            obs, info = env.reset(seed=seed)
            expert = None
            if agent is None:
                expert = (_expert_from(str(expert_spec), env) if expert_spec
                          else _scripted(env, cfg.noise, seed))
            observations, infos = [_stored(obs, info, frames_in_info)], [info]
            actions: list[np.ndarray] = []
            rewards: list[float] = []
            terms: list[bool] = []
            truncs: list[bool] = []
            done = False
            while not done:
                if expert is not None:
                    action = expert(obs)
                else:
                    assert agent is not None
                    action = agent(obs["state"] if isinstance(obs, dict) else obs)
                obs, reward, terminated, truncated, info = env.step(action)
                observations.append(_stored(obs, info, frames_in_info))
                infos.append(info)
                actions.append(action)
                rewards.append(float(reward))
                terms.append(bool(terminated))
                truncs.append(bool(truncated))
                done = terminated or truncated
            tried += 1
            # past the first success it may not hold (after_success): count the episode
            success = (bool(info.get("reached_success", False))
                       or _succeeded(info, success_key, terminated))
            successes += success
            if verbose:
                print(f"episode {tried - 1} (seed {seed}): {len(actions)} steps, success={success}")
            if cfg.only_success and not success:
                continue
            lengths.append(len(actions))
            buffers.append(
                EpisodeBuffer(
                    id=len(buffers),
                    seed=seed,
                    observations=_stack_obs(observations),
                    actions=np.stack(actions),
                    rewards=rewards,
                    terminations=terms,
                    truncations=truncs,
                    infos=_stack_infos(infos),
                )
            )
        if not buffers:
            raise RuntimeError(f"no episode kept out of {tried} tried; nothing to write")
        if len(buffers) < cfg.n_episodes:
            warnings.warn(
                f"only {len(buffers)} of the {cfg.n_episodes} requested episodes were kept "
                f"after {tried} tries (max_tries={cfg.max_tries})",
                stacklevel=2,
            )

        source = (f"Scripted-expert demos of {env_id} (noise={cfg.noise})" if agent is None
                  else f"Rollouts of {cfg.policy} on {env_id}")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp_root = Path(tempfile.mkdtemp(prefix=".minari-", dir=out.parent))
        try:
            with _datasets_root(tmp_root), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r"`(code_permalink|author_email)`")
                dataset = minari.create_dataset_from_buffers(
                    dataset_id=cfg.dataset_id,
                    buffer=buffers,
                    env=env if _serialisable_spec(env) else None,
                    eval_env=env.spec if _serialisable_spec(env) else None,
                    observation_space=observation_space,
                    action_space=env.action_space,
                    algorithm_name="scripted-expert" if agent is None else "sb3-agent",
                    author="rewardlearn",
                    description=(
                        f"{source}; subtasks: {', '.join(subtasks)}. Infos per observation: "
                        f"{', '.join(INFO_KEYS)}."
                    ),
                    jpeg_encoding=cfg.jpeg,
                )
                dataset.storage.update_metadata(
                    {
                        "subtask_names": list(subtasks),
                        "num_stages": len(subtasks) or None,
                        "env_id": env_id,
                        "noise": cfg.noise,
                        "policy": cfg.policy,
                        "seed": cfg.seed,
                        "episodes_tried": tried,
                        "episodes_succeeded": successes,
                        "only_success": cfg.only_success,
                        "after_success": cfg.after_success,
                        "frames": cfg.frames,
                        "frame_size": cfg.frame_size if cfg.frames else None,
                        "stage_alignment": "infos[k][t] belongs to observations[t] (T+1 rows)",
                    }
                )
            shutil.move(str(tmp_root / cfg.dataset_id), str(out))
        finally:
            shutil.rmtree(tmp_root, ignore_errors=True)
    finally:
        env.close()

    return CollectResult(
        path=out,
        dataset_id=cfg.dataset_id,
        kept=len(buffers),
        tried=tried,
        successes=successes,
        mean_length=float(np.mean(lengths)),
        wall_time=time.perf_counter() - start,
    )


def main(argv: Sequence[str] | None = None) -> CollectResult:
    """Parse ``key=value`` overrides, collect, print a summary."""
    cfg = parse_overrides(cli_args(argv, __doc__))
    result = collect(cfg)
    print(result.summary())
    return result


def cli() -> None:
    """Console entry point (``rewardlearn-collect``); errors exit with a message, no trace."""
    run_cli(main)


if __name__ == "__main__":
    cli()
