"""``teacher=model``: a model answers the preference queries (RL-VLM-F, Wang et al., ICML 2024).

Each query's two segments are rendered from their simulator states into frames
and handed, with the task text, to one of:

* a user function, ``function="package.module:function"``, called as
  ``fn(frames_1, frames_2, task)`` with ``(T, H, W, 3)`` uint8 frames, returning
  ``1`` (first preferred), ``0`` (second), ``0.5`` (equal) or ``None`` (no
  preference: the pair is dropped, as RL-VLM-F drops its "no preference"
  answers); a VLM behind an API fits here;
* a CLIP scorer (``clip_model=...``, :mod:`rewardlearn.vlm`): each segment scores
  the sum over its frames of the cosine similarity to the task prompt; the
  higher sum wins, ``|difference| <= equal_margin`` answers equal.

Answers are cached on disk under ``cache_dir``, one small JSON file per
query, keyed by a hash of both segments' content (features, absorbing mask,
simulator states) and the teacher's identity (function path, or CLIP model,
weights and prompt, frame size and stride), and written atomically
(:mod:`rewardlearn.files`). A rerun with the same seed draws the same segments
and asks the model nothing twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rewardlearn.files import write_text_atomic
from rewardlearn.preference.buffer import Segments
from rewardlearn.preference.teachers import PreferenceLabels
from rewardlearn.utils import import_object

log = logging.getLogger("rewardlearn")

Answer = float | None
PairFunction = Callable[[np.ndarray, np.ndarray, str], Any]
DEFAULT_CACHE = Path.home() / ".cache" / "rewardlearn" / "teacher_labels"


def import_function(path: str) -> PairFunction:
    """The callable named ``module:function`` (:func:`rewardlearn.utils.import_object`)."""
    if ":" not in str(path):
        raise ValueError(f"teacher.function must be 'module:function', got {path!r}")
    obj = import_object(path, what="teacher.function")
    if not callable(obj):
        raise TypeError(f"teacher.function {path!r} is not callable")
    return obj


def segment_hash(segs: Segments, k: int) -> str:
    """Content hash of segment ``k`` (features, absorbing steps, simulator states)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(segs.features[k]).tobytes())
    if segs.absorbing is not None:
        h.update(np.ascontiguousarray(segs.absorbing[k]).tobytes())
    if segs.states is not None:
        h.update(np.ascontiguousarray(segs.states[k]).tobytes())
    return h.hexdigest()


def _as_answer(value: Any) -> Answer:
    """A model's answer as 1.0 / 0.0 / 0.5, or ``None`` for no preference."""
    if value is None:
        return None
    v = float(value)
    if v not in (0.0, 0.5, 1.0):
        raise ValueError(f"the model teacher answered {value!r}; expected 1, 0, 0.5 or None")
    return v


class ModelTeacher:
    """Answers queries with a function or a CLIP scorer; see the module docstring.

    Args:
        env: the env config (frames are rendered from simulator states in a copy).
        task: the task text handed to the model (the CLIP prompt).
        function: ``module:function`` of a pair function (exclusive with ``clip_model``).
        clip_model, pretrained: CLIP weights for the scorer
            (:func:`rewardlearn.vlm.loading.load_clip`).
        equal_margin: CLIP scorer: score differences up to this answer "equal".
        frame_size: rendered frame height and width.
        frame_stride: every ``frame_stride``-th step of a segment is rendered.
        cache_dir: the label cache (default ``~/.cache/rewardlearn/teacher_labels``).
        device: CLIP device.
        render: ``states (T, S) -> frames (T, H, W, 3)``, instead of rendering ``env``.
    """

    needs_sim_states = True

    def __init__(self, env: Any = None, task: str = "", function: str | None = None,
                 clip_model: str | None = None, pretrained: str | None = None,
                 equal_margin: float = 0.0, frame_size: int = 224, frame_stride: int = 1,
                 cache_dir: str | None = None, device: str = "cpu",
                 render: Callable[[np.ndarray], np.ndarray] | None = None,
                 name: str = "model") -> None:
        if frame_stride < 1 or frame_size < 8 or equal_margin < 0:
            raise ValueError("teacher=model: frame_stride must be >= 1, frame_size >= 8 and "
                             f"equal_margin >= 0 (got {frame_stride}, {frame_size}, "
                             f"{equal_margin})")
        self.name = name
        self.env_cfg = env
        self.task = str(task or "")
        self.function = function
        self.clip_model, self.pretrained = clip_model, pretrained
        self.equal_margin = float(equal_margin)
        self.frame_size, self.frame_stride = int(frame_size), int(frame_stride)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else DEFAULT_CACHE
        self.device = device
        self._render = render
        self._renderer: Any = None
        self._fn: PairFunction | None = None
        self._scorer: Any = None
        self.calls = 0  # model calls made (cache misses)
        self.cache_hits = 0

    def validate(self) -> None:
        """Refuse a teacher that names no model (called before training starts)."""
        if (self.function is None) == (self.clip_model is None):
            raise ValueError("teacher=model needs exactly one of teacher.function "
                             "('module:function') and teacher.clip_model")
        if self.function is not None:
            import_function(self.function)

    @property
    def identity(self) -> str:
        """What the cache key says about the teacher: a change here asks again."""
        who = f"function:{self.function}" if self.function else \
            f"clip:{self.clip_model}:{self.pretrained}:{self.equal_margin}"
        return f"{who}|task:{self.task}|size:{self.frame_size}|stride:{self.frame_stride}"

    def cache_key(self, first: Segments, second: Segments, k: int) -> str:
        h = hashlib.sha256(self.identity.encode())
        h.update(segment_hash(first, k).encode())
        h.update(segment_hash(second, k).encode())
        return h.hexdigest()

    def _cache_path(self, key: str) -> Path:
        return self.cache_dir / key[:2] / f"{key}.json"

    def _cached(self, key: str) -> tuple[bool, Answer]:
        path = self._cache_path(key)
        if not path.is_file():
            return False, None
        try:
            return True, _as_answer(json.loads(path.read_text())["label"])
        except (OSError, ValueError, KeyError):
            return False, None  # a damaged entry is asked again and rewritten

    def frames(self, states: np.ndarray) -> np.ndarray:
        """Frames of every ``frame_stride``-th state (the last one always included)."""
        take = np.unique(np.r_[np.arange(0, len(states), self.frame_stride), len(states) - 1])
        if self._render is not None:
            return np.asarray(self._render(states[take]))
        if self._renderer is None:
            from rewardlearn.preference.human import StateRenderer

            self._renderer = StateRenderer(self.env_cfg, self.frame_size)
        frames: np.ndarray = self._renderer.frames(states[take])
        return frames

    def _ask(self, frames_1: np.ndarray, frames_2: np.ndarray) -> Answer:
        self.calls += 1
        if self.function is not None:
            if self._fn is None:
                self._fn = import_function(self.function)
            return _as_answer(self._fn(frames_1, frames_2, self.task))
        s1, s2 = self.clip_scores(frames_1), self.clip_scores(frames_2)
        gap = float(s1.sum() - s2.sum())
        if abs(gap) <= self.equal_margin:
            return 0.5
        return 1.0 if gap > 0 else 0.0

    def clip_scores(self, frames: np.ndarray) -> np.ndarray:
        """Per-frame cosine similarity of CLIP image embeddings to the task prompt."""
        if self._scorer is None:
            from rewardlearn.vlm.loading import load_clip
            from rewardlearn.vlm.vlmrm import FrameScorer, VLMRMScorer

            if not self.task:
                raise ValueError("teacher=model with a CLIP scorer needs teacher.task (the prompt)")
            bundle = load_clip(str(self.clip_model), self.pretrained, device=self.device,
                               precision="fp32")
            self._scorer = FrameScorer(bundle, VLMRMScorer.from_prompts(bundle, self.task,
                                                                        None, 0.0))
        scores: np.ndarray = self._scorer(frames)
        return scores

    def label_segments(self, first: Segments, second: Segments) -> PreferenceLabels:
        """Answer ``len(first)`` queries, from the cache where asked before."""
        self.validate()
        if first.states is None or second.states is None:
            raise RuntimeError("teacher=model needs simulator states in the segments "
                               "(make the envs with sim_state=True)")
        labels = np.full(len(first), np.nan)
        keep = np.zeros(len(first), bool)
        for k in range(len(first)):
            key = self.cache_key(first, second, k)
            hit, answer = self._cached(key)
            if hit:
                self.cache_hits += 1
            else:
                answer = self._ask(self.frames(first.states[k]), self.frames(second.states[k]))
                write_text_atomic(self._cache_path(key), json.dumps(
                    {"label": answer, "teacher": self.identity}))
            if answer is not None:
                labels[k], keep[k] = answer, True
        log.info("teacher=model: %d answers (%d from the cache, %d dropped as no preference)",
                 len(first), self.cache_hits, int((~keep).sum()))
        return PreferenceLabels(labels=labels, keep=keep)

    def label(self, rewards_1: np.ndarray, rewards_2: np.ndarray) -> PreferenceLabels:
        """Not used: the model teacher looks at the segments (:meth:`label_segments`)."""
        raise RuntimeError("teacher=model answers from frames; the learner calls label_segments")

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


__all__ = ["ModelTeacher", "import_function", "segment_hash"]
