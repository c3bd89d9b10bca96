"""Run folders: unique names, one live run per folder, and finished runs never overwritten.

A run claims its folder (:func:`claim_folder`: a ``run.claim`` file locked with ``flock``
while the run lives, removed when it ends), and a folder that already holds a
finished run's outputs, or that another live run holds, is refused before anything is
built. The default folder name ends with ``${run_id:}``, a random id, so runs started in
the same second get their own folders.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import secrets
import shutil
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from filelock import BaseFileLock, FileLock, SoftFileLock, Timeout
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("rewardlearn")


def run_id() -> str:
    """A short random id (6 hex digits) that makes a run folder's name unique."""
    return secrets.token_hex(3)


# ``${run_id:}`` in conf/config.yaml; cached per composed config, like Hydra's ``${now:}``,
# so one run (or one sweep: Hydra copies the cache to its jobs) resolves one id.
OmegaConf.register_new_resolver("run_id", run_id, use_cache=True, replace=True)


CLAIM_FILE = "run.claim"
HOLDER_FILE = "run.claim.json"
"""Who holds the claim (pid, host, start, argv): beside the lock, which a contender opens."""
RUN_OUTPUTS = ("summary.json", "agent.zip", "agent_interrupted.zip")
VIDEO_OUTPUTS = ("episode_*.mp4", "episode_*.json")

_HELD: dict[str, BaseFileLock] = {}  # folder -> its held claim lock
_CREATED: dict[str, Path] = {}  # folder -> the topmost folder its claim created
_HANDED_OVER: set[str] = set()  # claimed by the Hydra callback for this process's run()


class RunDirError(FileExistsError):
    """A folder holds another run's outputs, or another live run uses it."""


def _unwritable(setting: str, folder: Path, err: OSError) -> OSError:
    return PermissionError(
        f"{setting}: cannot write to {folder} ({err.strerror or err}); "
        f"set {setting} to a writable folder")


def _holder(folder: Path) -> str:
    """Who holds a folder's claim, from its holder file."""
    try:
        info = json.loads((folder / HOLDER_FILE).read_text() or "{}")
        return f"pid {info['pid']} on {info['host']}, started {info['started']}"
    except (OSError, ValueError, KeyError):
        return "a process starting up"


def claim_folder(folder: str | os.PathLike[str], outputs: Sequence[str], setting: str,
                 hand_over: bool = False) -> None:
    """Claim ``folder`` for this run, or refuse it naming ``setting``.

    Creates the folder and locks ``<folder>/run.claim`` (:mod:`filelock`, released when
    the process ends or :func:`release_folder` is called), then writes who holds it
    (``run.claim.json``), which also proves the folder is writable. Raises
    :class:`RunDirError` if another live run holds the lock or the folder already holds a
    file matching one of ``outputs``, and ``PermissionError`` if it cannot be written.
    """
    folder = Path(folder)
    created = next((p for p in [*reversed(folder.absolute().parents), folder.absolute()]
                    if not p.exists()), None)
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
        lock = FileLock(folder / CLAIM_FILE, is_singleton=False, thread_local=False)
        lock.acquire(timeout=0)
    except Timeout:
        raise RunDirError(
            f"{folder} is in use by another run ({_holder(folder)}); two runs must not share a "
            f"folder: set {setting} to a new folder") from None
    except RunDirError:
        raise
    except NotImplementedError as err:  # a filesystem without locks
        log.warning("cannot lock %s (%s): a concurrent run into it would not be refused",
                    folder / CLAIM_FILE, err)
        lock = SoftFileLock(folder / ".run.claim.soft", is_singleton=False, thread_local=False)
        lock.acquire(timeout=0)
    except OSError as err:
        raise _unwritable(setting, folder, err) from None
    try:
        found = sorted({Path(p).name for pattern in outputs
                        for p in glob.glob(str(folder / pattern))})
        if found:
            shown = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
            raise RunDirError(
                f"{folder} already holds another run's outputs ({shown}); they are not "
                f"overwritten: set {setting} to a new folder (or delete that one)")
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S"), "argv": sys.argv}
        with open(folder / HOLDER_FILE, "w") as f:
            f.write(json.dumps(info))
            f.flush()
            os.fsync(f.fileno())
    except RunDirError:
        lock.release()
        raise
    except OSError as err:
        lock.release()
        raise _unwritable(setting, folder, err) from None
    _HELD[key] = lock
    if created is not None:
        _CREATED[key] = created
    if hand_over:
        _HANDED_OVER.add(key)


def release_folder(folder: str | os.PathLike[str], discard: bool = False,
                   bookkeeping: Sequence[str] = ()) -> None:
    """Release a claim of :func:`claim_folder`: its ``run.claim`` file is removed while the
    lock is still held (the run's record is its ``.hydra/`` and outputs; a claim file left
    behind means its process was killed, and the next run takes it over).

    ``discard`` (a run that stopped before writing anything there) also removes the folder
    if that leaves it empty, after removing the ``bookkeeping`` entries (glob patterns: Hydra's
    ``.hydra/`` and log) when the claim created the folder.
    """
    folder = Path(folder)
    key = str(folder.resolve())
    _HANDED_OVER.discard(key)
    lock = _HELD.pop(key, None)
    created = _CREATED.pop(key, None)
    if lock is None:
        return
    with contextlib.suppress(OSError):
        (folder / HOLDER_FILE).unlink()
        (folder / CLAIM_FILE).unlink()
    if discard:
        if created is not None:
            for pattern in bookkeeping:
                for entry in folder.glob(pattern):
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        with contextlib.suppress(OSError):
                            entry.unlink()
        _remove_empty(folder.absolute(), created)
    lock.release()


def _remove_empty(folder: Path, top: Path | None) -> None:
    """Remove ``folder`` and the parents up to ``top`` (the ones a claim created) while empty."""
    path = folder
    while True:
        try:
            path.rmdir()
        except OSError:
            return
        if top is None or path == top or path.parent == path:
            return
        path = path.parent

# ----------------------------------------------------------------------------- a finished run

CONFIG_FILES = (".hydra/config.yaml", "config.yaml")  # a run; a rewardlearn-push folder


def run_config(run_dir: Path) -> DictConfig:
    """The run's saved Hydra config; a clear error for a folder that is not a run."""
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {str(run_dir)!r} not found; pass a folder "
                                "train.py wrote: runs/<run> (or multirun/<sweep>/<n>_...)")
    for name in CONFIG_FILES:
        if (run_dir / name).is_file():
            cfg = OmegaConf.load(run_dir / name)
            if not isinstance(cfg, DictConfig) or cfg.get("env") is None:
                raise ValueError(f"{run_dir / name} is not a train.py config (no env)")
            return cfg
    raise FileNotFoundError(f"{run_dir} has no {' or '.join(CONFIG_FILES)}: cannot tell which "
                            "env the agent acts in; pass a run folder train.py wrote")


def agent_file(run_dir: Path) -> Path:
    """``<run>/agent.zip``; a clear error when the run did not finish."""
    path = run_dir / "agent.zip"
    if path.is_file():
        return path
    hint = (" (agent_interrupted.zip is there: the run stopped before the end)"
            if (run_dir / "agent_interrupted.zip").is_file() else
            " (a run writes it when training ends)")
    raise FileNotFoundError(f"{run_dir} has no agent.zip{hint}")


__all__ = ["CLAIM_FILE", "CONFIG_FILES", "RUN_OUTPUTS", "VIDEO_OUTPUTS", "RunDirError",
           "agent_file", "claim_folder", "release_folder", "run_config", "run_id"]
