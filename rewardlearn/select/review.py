"""People label action pairs on the review page (DeformPAM's human rankings, as pairs).

``rewardlearn-action-pairs runs/<run> teacher=human out=<folder>`` writes the pairs with a
clip after each candidate (``clips/<id>_a.mp4`` / ``_b.mp4``: the same start state, then
the candidate and ``horizon - 1`` steps of the policy's mean action) and puts every
unlabelled pair in ``<folder>/labels.sqlite``, the review page's label store, as a query
whose left clip is candidate A and right clip candidate B. ``rewardlearn-review <folder>``
serves the page; each annotator holds one lease at a time, and answers are never
overwritten (:class:`~rewardlearn.review.store.LabelStore`).

Nothing is copied back by hand: :func:`apply_answers` folds the store's answers into the
pairs when they are read (``reward=action_preference reward.model.labels=<folder>``), so
``pairs.jsonl`` stays as written and the store, SQLite with a write-ahead log, is the
durable record of every human label. An answer never replaces a label the pair already
has (an oracle's, or a first answer to a pair queued twice); ``skip`` leaves the pair
unlabelled; the labeller is ``human:<annotator>``.

Example:
    >>> import tempfile
    >>> from rewardlearn.select.pairs import ActionPair
    >>> folder = tempfile.mkdtemp()
    >>> pairs = [ActionPair("p000000", [0.0], [0.1], [-0.1], clip_a="clips/p000000_a.mp4",
    ...                     clip_b="clips/p000000_b.mp4", horizon=5)]
    >>> queue_pairs(folder, pairs)
    1
    >>> queue_pairs(folder, pairs)   # already queued: not asked twice
    0
    >>> from rewardlearn.review.store import LabelStore
    >>> store = LabelStore(review_db(folder))
    >>> q = store.claim("ann")
    >>> _ = store.answer(q.id, "right", "ann")
    >>> labelled, n = apply_answers(folder, pairs)
    >>> n, labelled[0].label, labelled[0].labeller
    (1, 0.0, 'human:ann')
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

from rewardlearn.review.store import LABEL_VALUES, ClipRef, LabelStore
from rewardlearn.select.pairs import ActionPair

DB_NAME = "labels.sqlite"
KIND = "action pair"


def review_db(folder: str | Path) -> Path:
    """The label store of a pairs folder: ``<folder>/labels.sqlite``."""
    return Path(folder) / DB_NAME


def _run(folder: str | Path) -> str:
    """The run name the page shows for the folder's queries (its folder name)."""
    return Path(folder).resolve().name


def queue_pairs(folder: str | Path, pairs: Sequence[ActionPair]) -> int:
    """Put every unlabelled pair with clips that is not queued yet in the folder's label
    store; returns how many were queued. Pairs without clips are refused (a person needs
    something to watch)."""
    todo = [p for p in pairs if p.label is None]
    missing = [p.id for p in todo if not (p.clip_a and p.clip_b and p.horizon)]
    if missing:
        raise ValueError(f"{len(missing)} unlabelled pair(s) have no clips (first: "
                         f"{missing[0]}); write them with clips=true (teacher=human does)")
    store = LabelStore(review_db(folder))
    run = _run(folder)
    queued = {q.meta.get("pair") for q in store.queries() if q.meta.get("kind") == KIND}
    n = 0
    for p in todo:
        if p.id in queued:
            continue
        assert p.clip_a and p.clip_b and p.horizon
        frames = int(p.horizon) + 1  # the start state, then each lookahead step
        store.add_query(run, ClipRef(p.clip_a, 0, frames), ClipRef(p.clip_b, 0, frames),
                        meta={"kind": KIND, "pair": p.id, "step": p.step,
                              "question": "same start: which action does better?"})
        n += 1
    return n


def apply_answers(folder: str | Path, pairs: Sequence[ActionPair]
                  ) -> tuple[list[ActionPair], int]:
    """Copies of ``pairs`` with the review page's answers of ``folder`` filled in (first
    answer per pair, in commit order; a pair's own label is kept); and how many were
    filled. A folder without a label store gives the pairs back unchanged."""
    out = [copy.copy(p) for p in pairs]
    db = review_db(folder)
    if not db.is_file():
        return out, 0
    by_id = {p.id: p for p in out}
    n = 0
    for a in LabelStore(db).answers_after(0):  # the folder's store: every query is its own
        pair = by_id.get(str(a.meta.get("pair")))
        if a.meta.get("kind") != KIND or pair is None or pair.label is not None \
                or a.label not in LABEL_VALUES:
            continue
        pair.label, pair.labeller = LABEL_VALUES[a.label], f"human:{a.annotator}"
        n += 1
    return out, n


__all__ = ["DB_NAME", "apply_answers", "queue_pairs", "review_db"]
