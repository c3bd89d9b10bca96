"""Rollout review: a local web page to watch recorded rollouts with their reward
curves, and to answer preference queries for ``teacher=human``.

``rewardlearn-review ROOT`` serves it; :class:`LabelStore` is the
queue and answer database the trainer and the server share.
"""

from rewardlearn.review.store import (
    LABELS,
    AlreadyAnsweredError,
    Answer,
    ClipRef,
    InvalidLabelError,
    LabelStore,
    LabelStoreError,
    LeaseHeldError,
    Query,
    StoreUnavailableError,
    UnknownQueryError,
)

__all__ = [
    "LABELS",
    "AlreadyAnsweredError",
    "Answer",
    "ClipRef",
    "InvalidLabelError",
    "LabelStore",
    "LabelStoreError",
    "LeaseHeldError",
    "Query",
    "ReviewServer",
    "StoreUnavailableError",
    "UnknownQueryError",
    "default_db_path",
]


def __getattr__(name: str) -> object:
    """Import the server lazily: a trainer that only needs the store skips Starlette and uvicorn."""
    if name in ("ReviewServer", "default_db_path"):
        from rewardlearn.review import server

        return getattr(server, name)
    raise AttributeError(name)
