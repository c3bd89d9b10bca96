"""Collect scripted-expert demonstrations (or a trained agent's rollouts) into a Minari
dataset, and load them back.

Usage::

    rewardlearn-collect env=pick_place n_episodes=20
    rewardlearn-collect env=pick_place n_episodes=50 noise=0.1 frames=true \\
        frame_size=84 out=data/pick_place-noisy-v0 dataset_id=rewardlearn/pick_place/noisy-v0
    rewardlearn-collect env=pick_place policy=runs/<run>/agent.zip only_success=false \\
        n_episodes=100 out=data/pick_place-policy-v0 dataset_id=rewardlearn/pick_place/policy-v0

Options (``key=value``): ``env`` (short name or gymnasium id), ``n_episodes`` (episodes to
*keep*), ``seed`` (episode ``i`` of the run resets with ``seed + i``), ``noise`` (std of
the expert's Gaussian action noise), ``frames`` (also store rendered frames),
``frame_size``, ``out`` (dataset directory), ``dataset_id``, ``only_success`` (drop failed
episodes; collection then goes on until ``n_episodes`` are kept or ``max_tries`` episodes
were run), ``max_tries``, ``jpeg`` (JPEG-compress frames: smaller, lossy), ``overwrite``,
``policy`` (a saved SB3 agent, ``runs/<run>/agent.zip``, with its ``vecnormalize.pkl``:
record its rollouts instead of the scripted expert's, with the same per-step stage
labels, e.g. to adapt a progress model to the states that policy visits),
``deterministic`` (the agent's mean action instead of a sample; ``noise`` applies to the
scripted expert only).

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
``frames=true`` the env runs with ``obs_mode="state_pixels"``, so observations are a
dict ``{"pixels": uint8 (T+1, S, S, 3), "state": float32 (T+1, D)}``.

The dataset is written with :func:`minari.create_dataset_from_buffers` rather than
``minari.DataCollector``: the collector needs ``jax`` (Minari's ``create`` extra) and
would store failed episodes too, which ``only_success`` must drop.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from rewardlearn.cli.options import cli_args, parse_key_values, run_cli, settings_types
from rewardlearn.settings import Settings

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


def _env_choices() -> dict[str, str]:
    """Short env names with a scripted expert, mapped to gymnasium ids.

    Besides ``rewardlearn_envs.SUPPORTED_ENVS``, every ``conf/env`` Meta-World config
    whose task has a scripted policy in ``rewardlearn_envs.metaworld_expert``.
    """
    from rewardlearn_envs import SUPPORTED_ENVS

    return {**SUPPORTED_ENVS, **{k: v[0] for k, v in _metaworld_choices().items()}}


def _metaworld_choices() -> dict[str, tuple[str, str]]:
    """``conf/env`` name -> (gymnasium id, Meta-World task) for tasks with a scripted expert."""
    from rewardlearn_envs.metaworld_expert import METAWORLD_TASKS

    from rewardlearn.env_factory import available_envs, env_config

    out: dict[str, tuple[str, str]] = {}
    for name in available_envs():
        cfg = env_config(name)
        task = (cfg.get("kwargs") or {}).get("env_name")
        if str(cfg.id).startswith("Meta-World/") and task in METAWORLD_TASKS:
            out[name] = (str(cfg.id), str(task))
    return out


def _make_env(short: str, env_id: str, cfg: CollectConfig) -> gym.Env:
    """The env to collect in: frames in a dict observation when ``cfg.frames``."""
    metaworld = _metaworld_choices()
    if short in metaworld:
        from rewardlearn_envs.metaworld_expert import MetaWorldStages

        from rewardlearn.env_factory import env_config, make_env

        env_cfg = env_config(short)
        env_cfg.kwargs.terminate_on_success = True  # a demo ends at success
        env_cfg.kwargs.seed = cfg.seed  # MT1 draws its task layouts at make time
        env_cfg.wrappers = []  # the stage labels are added below, outside the frames
        size = (cfg.frame_size, cfg.frame_size) if cfg.frames else None
        inner = make_env(env_cfg, frame_size=size)
        return MetaWorldStages(inner, metaworld[short][1],
                               obs_mode="state_pixels" if cfg.frames else "state")
    kwargs: dict[str, Any] = {}
    if cfg.frames:
        kwargs = {"obs_mode": "state_pixels", "width": cfg.frame_size, "height": cfg.frame_size}
    return gym.make(env_id, **kwargs)


def resolve_env(name: str) -> tuple[str, str]:
    """``(short_name, gymnasium_id)`` for a short name or a full id with a scripted expert."""
    choices = _env_choices()
    if name in choices:
        return name, choices[name]
    for short, env_id in choices.items():
        if name == env_id:
            return short, env_id
    valid = ", ".join(f"{short} ({env_id})" for short, env_id in sorted(choices.items()))
    raise ValueError(f"unknown env {name!r}; valid choices: {valid}")


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

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (self.n_episodes >= 1, f"n_episodes must be >= 1, got {self.n_episodes}"),
            (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
            (self.noise >= 0, f"noise must be >= 0, got {self.noise}"),
            (self.frame_size >= 8, f"frame_size must be >= 8, got {self.frame_size}"),
            (self.max_tries is None or self.max_tries >= self.n_episodes,
             f"max_tries must be >= n_episodes ({self.n_episodes}) or null"),
        ]

    def resolved(self) -> CollectConfig:
        """Copy with ``out``, ``dataset_id`` and ``max_tries`` defaults filled in."""
        short, _ = resolve_env(self.env)
        return CollectConfig(
            **{
                **self.__dict__,
                "out": self.out or f"data/{short}-expert-v0",
                "dataset_id": self.dataset_id or f"rewardlearn/{short}/expert-v0",
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
    """Build a :class:`CollectConfig` from ``key=value`` tokens."""
    return CollectConfig.from_kwargs(parse_key_values(argv, settings_types(CollectConfig)))


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


def collect(cfg: CollectConfig, verbose: bool = True) -> CollectResult:
    """Run the scripted expert (or ``cfg.policy``) and write the episodes as a Minari
    dataset at ``cfg.out``."""
    import minari
    from minari.data_collector import EpisodeBuffer
    from minari.dataset.minari_dataset import parse_dataset_id
    from rewardlearn_envs import expert_for

    cfg = cfg.resolved()
    assert cfg.out is not None and cfg.dataset_id is not None and cfg.max_tries is not None
    _, env_id = resolve_env(cfg.env)
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
    if out.exists():
        if not cfg.overwrite:
            raise FileExistsError(f"{out} exists; pass overwrite=true or another out=...")
        shutil.rmtree(out)

    agent = None
    if cfg.policy is not None:
        import torch

        from rewardlearn.agents import agent_policy

        agent = agent_policy(cfg.policy, deterministic=cfg.deterministic)
        torch.manual_seed(cfg.seed)
    short, _ = resolve_env(cfg.env)
    env = _make_env(short, env_id, cfg)
    subtasks = tuple(getattr(env, "SUBTASKS", ()) or getattr(env.unwrapped, "SUBTASKS", ()))

    start = time.perf_counter()
    buffers: list[EpisodeBuffer] = []
    lengths: list[int] = []
    tried = successes = 0
    try:
        while len(buffers) < cfg.n_episodes and tried < cfg.max_tries:
            seed = cfg.seed + tried
            expert = expert_for(env, noise=cfg.noise, seed=seed) if agent is None else None
            obs, info = env.reset(seed=seed)
            observations, infos = [obs], [info]
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
                observations.append(obs)
                infos.append(info)
                actions.append(action)
                rewards.append(float(reward))
                terms.append(bool(terminated))
                truncs.append(bool(truncated))
                done = terminated or truncated
            tried += 1
            success = bool(info.get("is_success", terminated))
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
                    observation_space=env.observation_space,
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
                        "num_stages": len(subtasks),
                        "env_id": env_id,
                        "noise": cfg.noise,
                        "policy": cfg.policy,
                        "seed": cfg.seed,
                        "episodes_tried": tried,
                        "episodes_succeeded": successes,
                        "only_success": cfg.only_success,
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
