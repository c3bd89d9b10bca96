"""``teacher=human``: people label segment pairs in the rollout-review page.

Each query's two segments are re-rendered from their simulator states
(captured during training by :class:`~rewardlearn.wrappers.state.SimStateCapture`)
into short mp4 clips under ``<root>/<run>/queries/``, and the pair is put in
the review page's label store (SQLite, WAL). The pair's reward-model inputs are
saved beside the clips (``q<id>.npz``), so an answer that arrives after a crash
can still be used. Answers are consumed in the store's commit order from the
last sequence number the trainer saw, which the reward checkpoint keeps: a
resumed run neither loses nor repeats a label.

``wait="block"`` pauses training until every query of the round is answered
(or ``timeout_s`` passes); ``wait="continue"`` keeps training and folds answers
in at later rounds as they arrive.

Serve the page with ``rewardlearn-review <root>`` (the same root and
database as here; :meth:`HumanTeacher.review_command` says exactly what to run,
and the log repeats it with every round). Serving a folder above the root (the
repo root) also works: the server finds the one trainer database under it. Clip
paths in the database are relative to the database's folder when the clips lie
under it (always, with the default database), else to the root; the review
server looks them up in that order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rewardlearn.preference.buffer import Segments
from rewardlearn.recording import write_video
from rewardlearn.review.store import ClipRef, LabelStore

log = logging.getLogger("rewardlearn")

LABEL_VALUES = {"left": 1.0, "right": 0.0, "equal": 0.5}
WAIT_MODES = ("block", "continue")


@dataclass
class LabelledPair:
    """One answered query, as the reward learner stores it."""

    x1: np.ndarray
    x2: np.ndarray
    term1: np.ndarray
    term2: np.ndarray
    label: float
    query_id: int


class HumanTeacher:
    """Asks people through the label store; see the module docstring.

    Args:
        env: the env config (clips are rendered in a private copy of the env).
        root: the folder the review page serves (``videos`` by default, where
            train.py records rollouts).
        db: label database; default ``<root>/labels.sqlite`` (the page's default).
        wait: ``block`` or ``continue`` (see the module docstring).
        timeout_s: longest wait per round in ``block`` mode (``None``: no limit).
        clip_size: clip height and width in pixels.
        fps: clip frame rate (default: the env's ``render_fps``).
    """

    name = "human"
    needs_sim_states = True

    def __init__(self, env: Any, root: str = "videos", db: str | None = None,
                 wait: str = "block", timeout_s: float | None = None, clip_size: int = 192,
                 fps: float | None = None, poll_s: float = 0.5, name: str = "human") -> None:
        if wait not in WAIT_MODES:
            raise ValueError(f"wait must be one of {WAIT_MODES}, got {wait!r}")
        self.name = name
        self.env_cfg = env
        self.root = Path(root)
        self.db_path = Path(db) if db else self.root / "labels.sqlite"
        self.wait = wait
        self.timeout_s = timeout_s
        self.clip_size = int(clip_size)
        self.fps = fps
        self.poll_s = poll_s
        self.run = "run"
        self.last_seq = 0
        self._resumed = False
        self._store: LabelStore | None = None
        self._renderer: Any = None

    @property
    def store(self) -> LabelStore:
        if self._store is None:
            self.root.mkdir(parents=True, exist_ok=True)
            self._store = LabelStore(self.db_path)
        return self._store

    def bind(self, run_dir: Path) -> None:
        """Name queries after the run (its folder name), as rollouts are.

        A resumed teacher keeps the run it started with, so answers to queries
        asked before the interruption are still found.
        """
        if not self._resumed:
            self.run = run_dir.name

    @property
    def query_dir(self) -> Path:
        return self.root / self.run / "queries"

    def _clip_renderer(self) -> Any:
        if self._renderer is None:
            from rewardlearn.env_factory import camera_config, env_config, make_env
            from rewardlearn.wrappers.frames import EnvFrameSource

            cfg = env_config(self.env_cfg)
            env = make_env(cfg, render_mode="rgb_array")
            env.reset(seed=0)
            fps = self.fps or float(env.metadata.get("render_fps") or 30)
            source = EnvFrameSource(env, self.clip_size, self.clip_size, camera_config(cfg))
            self._renderer = (env, source, fps)
        return self._renderer

    def _write_clip(self, states: np.ndarray, name: str) -> ClipRef:
        from rewardlearn.wrappers.state import restore_sim_state

        env, source, fps = self._clip_renderer()
        frames = []
        for s in states:
            restore_sim_state(env, s)
            frames.append(source.render())
        path = write_video(self.query_dir / name, frames, fps)
        return ClipRef(self.clip_path(path), 0, len(frames))

    def clip_path(self, path: Path) -> str:
        """How a clip is named in the database: relative to the database's folder when
        it lies under it (where the review server looks first), else to the root."""
        real = path.resolve()
        for base in (self.db_path.parent, self.root):
            try:
                return real.relative_to(base.resolve()).as_posix()
            except ValueError:
                continue
        return path.relative_to(self.root).as_posix()

    def review_command(self) -> str:
        """The command that serves the label page for this teacher's queries."""
        cmd = f"rewardlearn-review {self.root}"
        if self.db_path.absolute() != (self.root / "labels.sqlite").absolute():
            cmd += f" --db {self.db_path}"
        return cmd

    def ask(self, first: Segments, second: Segments, round_: int) -> int:
        """Render and enqueue ``len(first)`` queries; returns how many were asked."""
        if first.states is None or second.states is None:
            raise RuntimeError("the human teacher needs simulator states in the segments "
                               "(make the envs with sim_state=True)")
        self.query_dir.mkdir(parents=True, exist_ok=True)
        for k in range(len(first)):
            stem = f"r{round_:03d}_{k:03d}"
            left = self._write_clip(first.states[k], f"{stem}_left.mp4")
            right = self._write_clip(second.states[k], f"{stem}_right.mp4")
            qid = self.store.add_query(self.run, left, right,
                                       meta={"round": round_, "pair": k,
                                             "length": first.length})
            np.savez(self.query_dir / f"q{qid}.npz", x1=first.features[k],
                     x2=second.features[k], term1=first.terminated[k],
                     term2=second.terminated[k])
        log.info("asked %d queries (round %d): label them at the review page (%s)",
                 len(first), round_, self.review_command())
        return len(first)

    def collect(self, expected: int) -> list[LabelledPair]:
        """Answers after the last one consumed (waiting per ``wait``); skips are dropped."""
        if self.wait == "block" and expected > 0:
            answers = self.store.wait_answers(self.last_seq, self.run, min_count=expected,
                                              timeout_s=self.timeout_s, poll_s=self.poll_s)
        else:
            answers = self.store.answers_after(self.last_seq, self.run)
        out = []
        for a in answers:
            self.last_seq = max(self.last_seq, a.seq)
            if a.label not in LABEL_VALUES:
                continue
            data = np.load(self.query_dir / f"q{a.query_id}.npz")
            out.append(LabelledPair(data["x1"], data["x2"], data["term1"], data["term2"],
                                    LABEL_VALUES[a.label], a.query_id))
        return out

    def pending(self) -> int:
        return self.store.pending(self.run)

    def state_dict(self) -> dict[str, Any]:
        return {"last_seq": self.last_seq, "run": self.run}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_seq = int(state["last_seq"])
        self.run = str(state["run"])
        self._resumed = True

    def close(self) -> None:
        if self._renderer is not None:
            env, source, _ = self._renderer
            source.close()
            env.close()
            self._renderer = None
