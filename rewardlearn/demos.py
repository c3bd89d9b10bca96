"""Demonstrations as numpy episodes: load the Minari datasets ``rewardlearn-collect`` writes.

A dataset is named by its folder (``data/pick_place-expert-v0``) or by a Minari dataset id;
several are given comma-separated (``demos=a,b``), and their episodes are numbered in order
so that files keyed by episode id match across commands.

Example:
    >>> from rewardlearn.demos import load_demo_sets
    >>> load_demo_sets("data/no-such-demos")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileNotFoundError: demo dataset 'data/no-such-demos' not found: ...
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Episode:
    """One demonstration, as numpy arrays.

    ``observations``, ``stages`` and ``frames`` have ``T + 1`` rows: row ``t`` is the
    observation *before* action ``t`` (row 0 is the reset observation, row ``T`` the final
    one), and ``stages[t]`` is the stage of ``observations[t]``. ``actions``, ``rewards``,
    ``terminations`` and ``truncations`` have ``T`` rows. ``infos`` holds every stored info
    entry (``T + 1`` rows, aligned with the observations).
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    stages: np.ndarray
    subtask_names: tuple[str, ...]
    frames: np.ndarray | None = None
    infos: dict[str, np.ndarray] = field(default_factory=dict)
    id: int = 0

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def success(self) -> bool:
        """Whether the episode ended in task success."""
        if "is_success" in self.infos:
            return bool(self.infos["is_success"][-1])
        return bool(self.terminations[-1])


def open_dataset(path_or_id: str | os.PathLike[str]) -> Any:
    """The :class:`minari.MinariDataset` at a dataset directory, or with a Minari dataset id.

    A directory may be the one :func:`collect` wrote (holding ``data/``) or its ``data/``.
    Anything that is not an existing directory is looked up as a dataset id in Minari's
    datasets root (``MINARI_DATASETS_PATH``, default ``~/.minari/datasets``).
    """
    import minari

    path = Path(path_or_id)
    if path.is_dir():
        for candidate in (path / "data", path):
            if (candidate / "metadata.json").is_file():
                return minari.MinariDataset(candidate)
        raise FileNotFoundError(
            f"demo dataset {str(path)!r} holds no Minari dataset (no data/metadata.json); "
            f"make demos with: {_COLLECT_HINT.format(out=path)}")
    try:
        return minari.load_dataset(str(path_or_id))
    except FileNotFoundError:  # minari's message suggests download=True, not ours to pass
        raise FileNotFoundError(
            f"demo dataset {str(path_or_id)!r} not found: no such folder, and no Minari "
            f"dataset with that id under {_minari_root()}; make demos with: "
            f"{_COLLECT_HINT.format(out=path_or_id)}") from None


_COLLECT_HINT = "rewardlearn-collect env=<env> n_episodes=20 out={out}"


def _minari_root() -> str:
    """Minari's datasets root (``MINARI_DATASETS_PATH``, default ``~/.minari/datasets``)."""
    return os.environ.get("MINARI_DATASETS_PATH") or str(Path.home() / ".minari" / "datasets")


def load_demos(path_or_id: str | os.PathLike[str]) -> list[Episode]:
    """All episodes of a demo dataset (see :func:`open_dataset`) as :class:`Episode` objects."""
    dataset = open_dataset(path_or_id)
    metadata = dataset.storage.metadata
    subtasks = tuple(str(s) for s in metadata.get("subtask_names", ()))
    episodes: list[Episode] = []
    for ep in dataset.iterate_episodes():
        obs = ep.observations
        frames = None
        if isinstance(obs, dict):
            frames = np.asarray(obs["pixels"], dtype=np.uint8) if "pixels" in obs else None
            obs = obs["state"]
        infos = {k: np.asarray(v) for k, v in ep.infos.items() if not isinstance(v, dict)}
        if "stage" in infos:
            stages = infos["stage"].astype(np.int64)
        else:
            stages = np.zeros(len(ep) + 1, dtype=np.int64)
        episodes.append(
            Episode(
                observations=np.asarray(obs),
                actions=np.asarray(ep.actions),
                rewards=np.asarray(ep.rewards),
                terminations=np.asarray(ep.terminations, dtype=bool),
                truncations=np.asarray(ep.truncations, dtype=bool),
                stages=stages,
                subtask_names=subtasks,
                frames=frames,
                infos=infos,
                id=int(ep.id),
            )
        )
    return episodes


def load_demo_sets(paths: str) -> list[Episode]:
    """The episodes of one or more comma-separated datasets (see :func:`load_demos`).

    Episode ids are renumbered 0, 1, ... in order, so that they stay unique across the
    datasets: files keyed by episode id (RA-BC weights, embeddings) written by one
    command for ``demos=a,b`` match another command given the same ``demos=a,b``.
    """
    episodes: list[Episode] = []
    for path in str(paths).split(","):
        for ep in load_demos(path.strip()):
            ep.id = len(episodes)
            episodes.append(ep)
    return episodes


__all__ = ["Episode", "load_demo_sets", "load_demos", "open_dataset"]
