"""Atomic file output: nothing a run or a user wrote is ever left half-written or clobbered.

Every file is written to a unique temp name in its folder (pid + random, so two writers
never share one) and renamed into place only once complete; ``overwrite=False`` refuses
to replace an existing file without a check-then-replace race.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "summary.json"
    >>> _ = write_text_atomic(path, "{}", overwrite=False)
    >>> write_text_atomic(path, "{}", overwrite=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileExistsError: ... already exists; not overwritten
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def unique_temp(path: Path) -> Path:
    """A temp name next to ``path`` that no other writer uses (pid + random)."""
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


@contextmanager
def atomic_output(path: str | os.PathLike[str], overwrite: bool = True,
                  allow_empty: bool = False) -> Iterator[Path]:
    """Write ``path`` through a unique temp file in its folder, published only on success.

    Yields the temp path to write; when the block ends normally the temp file
    (which must exist and, unless ``allow_empty``, not be empty) replaces
    ``path``. On any exception, ``KeyboardInterrupt`` included, the temp file is
    removed and the exception re-raised, so ``path`` never holds a partial file.
    ``overwrite=False`` refuses (``FileExistsError``) to replace an existing
    ``path`` instead of replacing it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = unique_temp(path)
    try:
        yield tmp
        size = tmp.stat().st_size if tmp.is_file() else -1
        if size < 0 or (size == 0 and not allow_empty):
            raise OSError(f"writing {path} failed: the temp file {tmp.name} is "
                          + ("missing" if size < 0 else "empty"))
        _publish(tmp, path, overwrite)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _publish(tmp: Path, path: Path, overwrite: bool) -> None:
    """Move ``tmp`` onto ``path`` atomically; without ``overwrite``, never replace a file."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails if path exists: no check-then-replace race
    except FileExistsError:
        raise FileExistsError(f"{path} already exists; not overwritten") from None
    except OSError:  # a filesystem without hard links
        if path.exists():
            raise FileExistsError(f"{path} already exists; not overwritten") from None
        os.replace(tmp, path)
        return
    tmp.unlink()


def write_text_atomic(path: str | os.PathLike[str], text: str, overwrite: bool = True) -> Path:
    """Write ``text`` to ``path`` atomically (unique temp file, fsync, rename)."""
    path = Path(path)
    with atomic_output(path, overwrite, allow_empty=True) as tmp, \
            open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    return path


__all__ = ["atomic_output", "unique_temp", "write_text_atomic"]
