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
from rewardlearn.review.store import LABEL_VALUES, ClipRef, LabelStore

log = logging.getLogger("rewardlearn")

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
    pad1: int = 0
    pad2: int = 0
    next1: np.ndarray | None = None
    next2: np.ndarray | None = None
    annotator: str = ""
    """Who answered (the review page's annotator name; ``reward=vpl`` treats each as a user)."""


class StateRenderer:
    """Frames of saved simulator states, drawn in a private copy of the env.

    Args:
        env: the env config (or its name).
        size: frame height and width in pixels.
        fps: clip frame rate (default: the env's ``render_fps``).
    """

    def __init__(self, env: Any, size: int, fps: float | None = None) -> None:
        from rewardlearn.env_factory import camera_config, env_config, make_env
        from rewardlearn.wrappers.frames import EnvFrameSource

        cfg = env_config(env)
        self.env = make_env(cfg, render_mode="rgb_array")
        self.env.reset(seed=0)
        self.fps = float(fps or self.env.metadata.get("render_fps") or 30)
        self.source = EnvFrameSource(self.env, size, size, camera_config(cfg))

    def frames(self, states: np.ndarray) -> np.ndarray:
        """``(T, size, size, 3)`` uint8 frames of ``states`` ``(T, S)``."""
        from rewardlearn.wrappers.state import restore_sim_state

        out = []
        for s in states:
            restore_sim_state(self.env, s)
            out.append(self.source.render())
        return np.stack(out)

    def close(self) -> None:
        self.source.close()
        self.env.close()


class HumanTeacher:
    """Asks people through the label store; see the module docstring.

    Args:
        env: the env config (clips are rendered in a private copy of the env).
        root: the folder the review page serves; ``None``: the folder that holds the run
            folder (``runs/``: the page then shows every run's videos and queries).
        db: label database; default ``<root>/labels.sqlite`` (the page's default).
        wait: ``block`` or ``continue`` (see the module docstring).
        timeout_s: longest wait per round in ``block`` mode (``None``: no limit).
        clip_size: clip height and width in pixels.
        fps: clip frame rate (default: the env's ``render_fps``).
    """

    name = "human"
    needs_sim_states = True

    def __init__(self, env: Any, root: str | None = None, db: str | None = None,
                 wait: str = "block", timeout_s: float | None = None, clip_size: int = 192,
                 fps: float | None = None, poll_s: float = 0.5, name: str = "human") -> None:
        if wait not in WAIT_MODES:
            raise ValueError(f"wait must be one of {WAIT_MODES}, got {wait!r}")
        self.name = name
        self.env_cfg = env
        self.root = Path(root) if root else Path("runs")
        self._root_given = bool(root)
        self._db = Path(db) if db else None
        self.wait = wait
        self.timeout_s = timeout_s
        self.clip_size = int(clip_size)
        self.fps = fps
        self.poll_s = poll_s
        self.run = "run"
        self.last_seq = 0
        self._resumed = False
        self._store: LabelStore | None = None
        self._renderer: StateRenderer | None = None

    @property
    def db_path(self) -> Path:
        return self._db if self._db is not None else self.root / "labels.sqlite"

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
        if not self._root_given and self._store is None:
            self.root = Path(run_dir).parent

    @property
    def query_dir(self) -> Path:
        return self.root / self.run / "queries"

    def _clip_renderer(self) -> StateRenderer:
        if self._renderer is None:
            self._renderer = StateRenderer(self.env_cfg, self.clip_size, self.fps)
        return self._renderer

    def _write_clip(self, states: np.ndarray, name: str) -> ClipRef:
        renderer = self._clip_renderer()
        frames = list(renderer.frames(states))
        path = write_video(self.query_dir / name, frames, renderer.fps)
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
            n1, n2 = int(first.real_lengths()[k]), int(second.real_lengths()[k])
            extra = {} if first.next_state is None or second.next_state is None else \
                {"next1": first.next_state[k], "next2": second.next_state[k]}
            np.savez(self.query_dir / f"q{qid}.npz", x1=first.features[k, :n1],
                     x2=second.features[k, :n2], term1=first.terminated[k, :n1],
                     term2=second.terminated[k, :n2], pad1=first.length - n1,
                     pad2=second.length - n2, **extra)
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
            out.append(LabelledPair(
                data["x1"], data["x2"], data["term1"], data["term2"], LABEL_VALUES[a.label],
                a.query_id, int(data["pad1"]) if "pad1" in data else 0,
                int(data["pad2"]) if "pad2" in data else 0,
                data.get("next1"), data.get("next2"), a.annotator))
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
            self._renderer.close()
            self._renderer = None
