"""Find runs and their recorded rollouts under a root folder, and read mp4 timing.

A *run* is any folder under the root (at most :data:`MAX_DEPTH` levels down)
holding ``episode_*.json`` sidecars written by :mod:`rewardlearn.recording`.
The folder tree is rescanned at most once per :attr:`Catalog.ttl_s` and parsed
sidecars are cached by (mtime, size), so the browse page sees the rollouts of a
run that is still training without a restart, at the cost of a few ``stat``
calls per request.

Disagreement between the learned and the env reward is scale-free: within a
run, both returns are z-scored across its rollouts and a rollout's
``disagreement`` is ``z(learned_return) - z(env_return)``. Positive means the
learned reward rates the rollout higher than the env does, relative to the
run's other rollouts: where reward hacking shows up first.

Containment: :func:`resolve_inside` is the one rule for what may be read under
the root (a path, symlinks followed, must stay under the resolved root); the
server's ``/files/`` and the catalog's sidecars and summaries both use it, so a
symlinked ``episode_*.json`` pointing out of the root is skipped.
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

MAX_DEPTH = 4
SKIP_DIRS = frozenset({"__pycache__", "node_modules", "tb", "wandb", "checkpoints"})
SIDECAR_RE = re.compile(r"^episode_[A-Za-z0-9_-]+\.json$")
LABEL_DB_NAME = "labels.sqlite"
SUMMARY_KEYS = ("run", "env", "agent", "reward", "episode", "seed", "length", "env_return",
                "learned_return", "success", "terminated", "truncated", "video", "fps")


class OutsideRootError(ValueError):
    """A path that resolves (through ``..`` or symlinks) outside the served root."""


def resolve_inside(root: Path, path: Path) -> Path:
    """``path`` with symlinks resolved, provided it exists and lies under ``root``.

    ``root`` must already be resolved. Raises ``FileNotFoundError`` (an OSError)
    when nothing is there and :class:`OutsideRootError` when the real path is
    outside the root: the single containment rule of ``/files/`` and the catalog.
    """
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise FileNotFoundError(str(path)) from None
    if not real.is_relative_to(root):
        raise OutsideRootError(f"{path} is outside {root}")
    return real


def is_inside(root: Path, path: Path) -> bool:
    """True when ``path`` exists and resolves to a place under ``root``."""
    try:
        resolve_inside(root, path)
    except (OSError, OutsideRootError):
        return False
    return True


def walk_folders(root: Path, max_depth: int) -> Iterator[tuple[Path, list[os.DirEntry[str]]]]:
    """``(folder, its non-folder entries)`` for ``root`` and the folders under it, down to
    ``max_depth``; hidden names and :data:`SKIP_DIRS` are skipped, folder symlinks not
    followed, unreadable folders passed over."""
    stack: list[tuple[Path, int]] = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        files = []
        for e in entries:
            if e.name.startswith("."):
                continue
            try:
                if e.is_dir(follow_symlinks=False):
                    if depth < max_depth and e.name not in SKIP_DIRS:
                        stack.append((Path(e.path), depth + 1))
                else:
                    files.append(e)
            except OSError:
                continue
        yield folder, files


def _is_file(entry: os.DirEntry[str], follow_symlinks: bool = True) -> bool:
    try:
        return entry.is_file(follow_symlinks=follow_symlinks)
    except OSError:
        return False


def find_label_dbs(root: Path, max_depth: int = 3) -> list[Path]:
    """``labels.sqlite`` files under ``root`` (the root's own included), symlinks not followed."""
    return sorted(Path(e.path) for _, files in walk_folders(root, max_depth) for e in files
                  if e.name == LABEL_DB_NAME and _is_file(e, follow_symlinks=False))


def query_counts(db: Path) -> tuple[int, int] | None:
    """``(queries, pending)`` of a label database, opened read-only; None when it is not one."""
    if not db.is_file():
        return None
    try:
        con = sqlite3.connect(f"{db.absolute().as_uri()}?mode=ro", uri=True, timeout=1.0)
    except sqlite3.Error:
        return None
    try:
        total = con.execute("SELECT COUNT(*) FROM queries").fetchone()[0]
        pending = con.execute("SELECT COUNT(*) FROM queries q WHERE NOT EXISTS"
                              " (SELECT 1 FROM answers a WHERE a.query_id = q.id)").fetchone()[0]
        return int(total), int(pending)
    except sqlite3.Error:
        return None
    finally:
        con.close()


@dataclass
class Run:
    """One folder of recorded rollouts."""

    id: str
    path: Path
    rel: str
    sidecars: list[Path] = field(default_factory=list)


class Catalog:
    """Runs and rollouts under ``root``; thread-safe, rescanned lazily."""

    def __init__(self, root: str | os.PathLike[str], ttl_s: float = 1.0) -> None:
        self.root = Path(root).resolve()
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._runs: dict[str, Run] = {}
        self._scanned_at = -math.inf
        self._sidecars: dict[Path, tuple[tuple[int, int], dict[str, Any]]] = {}

    def scan(self, force: bool = False) -> dict[str, Run]:
        """Run id -> :class:`Run`, rescanning the tree when the last scan is stale."""
        with self._lock:
            if force or time.monotonic() - self._scanned_at > self.ttl_s:
                self._runs = self._walk()
                self._scanned_at = time.monotonic()
            return dict(self._runs)

    def _walk(self) -> dict[str, Run]:
        runs: dict[str, Run] = {}
        for folder, files in walk_folders(self.root, MAX_DEPTH):
            sidecars = [Path(e.path) for e in files if SIDECAR_RE.match(e.name) and _is_file(e)
                        and is_inside(self.root, Path(e.path))]
            if sidecars:
                rel = folder.relative_to(self.root).as_posix()
                run_id = self.root.name if rel == "." else rel
                if run_id in runs:
                    run_id = f"{run_id} (root)"
                runs[run_id] = Run(run_id, folder, "" if rel == "." else rel,
                                   sorted(sidecars))
        return runs

    def sidecar(self, path: Path) -> dict[str, Any] | None:
        """Parsed sidecar (cached while the file is unchanged); None if unreadable or outside."""
        try:
            st = resolve_inside(self.root, path).stat()
        except (OSError, OutsideRootError):
            return None
        key = (st.st_mtime_ns, st.st_size)
        with self._lock:
            hit = self._sidecars.get(path)
        if hit is not None and hit[0] == key:
            return hit[1]
        try:
            data = json.loads(resolve_inside(self.root, path).read_text())
        except (OSError, ValueError, RecursionError):
            return None
        if not isinstance(data, dict):
            return None
        with self._lock:
            self._sidecars[path] = (key, data)
        return data

    def rollouts(self, run: Run) -> list[dict[str, Any]]:
        """Summaries of a run's rollouts (no per-step arrays), with disagreement."""
        rows: list[dict[str, Any]] = []
        for path in run.sidecars:
            data = self.sidecar(path)
            if data is None:
                continue
            row = {k: data.get(k) for k in SUMMARY_KEYS}
            row["id"] = path.stem
            row["signals"] = sorted((data.get("signals") or {}).keys())
            row["env_info"] = sorted((data.get("env_info") or {}).keys())
            row["video_url"] = self.video_url(run, data)
            try:
                row["mtime"] = path.stat().st_mtime
            except OSError:
                row["mtime"] = None
            rows.append(row)
        add_disagreement(rows)
        return rows

    def video_url(self, run: Run, data: dict[str, Any]) -> str | None:
        """URL path of a sidecar's video under ``/files/``, or None if it has none."""
        video = data.get("video")
        if not isinstance(video, str) or not video:
            return None
        rel = f"{run.rel}/{video}" if run.rel else video
        return "/files/" + "/".join(_quote(p) for p in rel.split("/"))

    def run_summary(self, run: Run) -> dict[str, Any]:
        """What the runs list shows: counts, mean returns, success rate, return correlation."""
        rows = self.rollouts(run)
        first = rows[-1] if rows else {}
        env_r = [r["env_return"] for r in rows if _num(r.get("env_return"))]
        paired = [(r["env_return"], r["learned_return"]) for r in rows
                  if _num(r.get("env_return")) and _num(r.get("learned_return"))]
        succ = [bool(r["success"]) for r in rows if r.get("success") is not None]
        mtimes = [r["mtime"] for r in rows if r.get("mtime") is not None]
        return {
            "id": run.id,
            "name": first.get("run") or Path(run.rel or run.id).name,
            "path": run.rel,
            "env": first.get("env"), "agent": first.get("agent"),
            "reward": first.get("reward"),
            "n_rollouts": len(rows),
            "env_return_mean": _mean(env_r),
            "learned_return_mean": _mean([p[1] for p in paired]) if paired else None,
            "success_rate": _mean([float(s) for s in succ]) if succ else None,
            "return_corr": pearson([p[0] for p in paired], [p[1] for p in paired]),
            "updated": max(mtimes) if mtimes else None,
            "summary": self.train_summary(run),
        }

    def train_summary(self, run: Run) -> dict[str, Any] | None:
        """The run's ``summary.json`` (from train.py) when it lies under the root."""
        name = run.path.name
        for cand in (run.path / "summary.json", self.root / "runs" / name / "summary.json"):
            try:
                real = resolve_inside(self.root, cand)
                if real.is_file():
                    data = json.loads(real.read_text())
                    if not isinstance(data, dict):
                        return None
                    return {k: v for k, v in data.items() if k != "run_dir"
                            and (v is None or isinstance(v, (str, int, float, bool)))}
            except (OSError, ValueError, RecursionError):
                continue
        return None


def _quote(part: str) -> str:
    return quote(part, safe="")


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _mean(xs: list[float]) -> float | None:
    return float(sum(xs) / len(xs)) if xs else None


def zscores(xs: list[float]) -> list[float]:
    """Population z-scores; all zeros when the values do not vary."""
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs))
    if sd < 1e-12 * max(1.0, abs(m)):
        return [0.0] * len(xs)
    return [(x - m) / sd for x in xs]


def pearson(a: list[float], b: list[float]) -> float | None:
    """Pearson correlation of two equal-length lists; None below 3 points or without spread."""
    if len(a) < 3:
        return None
    za, zb = zscores(a), zscores(b)
    if not any(za) or not any(zb):
        return None
    return float(sum(x * y for x, y in zip(za, zb, strict=True)) / len(a))


def add_disagreement(rows: list[dict[str, Any]]) -> None:
    """Set ``disagreement = z(learned_return) - z(env_return)`` on rows that have both.

    Rows without a learned return, or runs with fewer than two such rows, get None.
    """
    both = [r for r in rows if _num(r.get("env_return")) and _num(r.get("learned_return"))]
    for r in rows:
        r["disagreement"] = None
    if len(both) < 2:
        return
    z_env = zscores([r["env_return"] for r in both])
    z_learned = zscores([r["learned_return"] for r in both])
    for r, ze, zl in zip(both, z_env, z_learned, strict=True):
        r["disagreement"] = zl - ze


@dataclass
class Mp4Timing:
    """Frame rate and frame count of an mp4's first video track."""

    fps: float
    n_frames: int
    duration_s: float


_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


def probe_mp4(path: str | os.PathLike[str]) -> Mp4Timing | None:
    """Read fps and frame count from the mp4 box tree (no decoding); None if unreadable."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            moov = _find_top_box(f, size, b"moov")
            if moov is None:
                return None
            for trak in _boxes(moov, b"trak"):
                timing = _track_timing(trak)
                if timing is not None:
                    return timing
    except (OSError, struct.error, ValueError):
        return None
    return None


def _find_top_box(f: Any, size: int, kind: bytes) -> bytes | None:
    pos = 0
    while pos + 8 <= size:
        f.seek(pos)
        head = f.read(16)
        n, typ = struct.unpack(">I4s", head[:8])
        hdr = 8
        if n == 1:
            n, hdr = struct.unpack(">Q", head[8:16])[0], 16
        elif n == 0:
            n = size - pos
        if n < hdr:
            return None
        if typ == kind:
            if n > 64 * 1024 * 1024:
                return None
            f.seek(pos + hdr)
            data: bytes = f.read(n - hdr)
            return data
        pos += n
    return None


def _boxes(data: bytes, kind: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos + 8 <= len(data):
        n, typ = struct.unpack(">I4s", data[pos:pos + 8])
        hdr = 8
        if n == 1:
            n, hdr = struct.unpack(">Q", data[pos + 8:pos + 16])[0], 16
        elif n == 0:
            n = len(data) - pos
        if n < hdr:
            break
        if typ == kind:
            out.append(data[pos + hdr:pos + n])
        pos += n
    return out


def _track_timing(trak: bytes) -> Mp4Timing | None:
    mdia = _boxes(trak, b"mdia")
    if not mdia:
        return None
    hdlr = _boxes(mdia[0], b"hdlr")
    if not hdlr or hdlr[0][8:12] != b"vide":
        return None
    mdhd = _boxes(mdia[0], b"mdhd")
    minf = _boxes(mdia[0], b"minf")
    stbl = _boxes(minf[0], b"stbl") if minf else []
    stts = _boxes(stbl[0], b"stts") if stbl else []
    if not mdhd or not stts:
        return None
    version = mdhd[0][0]
    timescale = struct.unpack(">I", mdhd[0][20:24] if version == 1 else mdhd[0][12:16])[0]
    (count,) = struct.unpack(">I", stts[0][4:8])
    frames, units = 0, 0
    for i in range(count):
        n, delta = struct.unpack(">II", stts[0][8 + 8 * i:16 + 8 * i])
        frames += n
        units += n * delta
    if not timescale or not units or not frames:
        return None
    duration = units / timescale
    return Mp4Timing(fps=frames / duration, n_frames=frames, duration_s=duration)
