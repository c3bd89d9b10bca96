"""Preference-label store: segment-pair queries and their answers in SQLite (WAL).

The trainer (``teacher=human``) writes queries with :meth:`LabelStore.add_query`;
the review server hands them to annotators with :meth:`LabelStore.claim` (a
time-limited lease, so two annotators never see the same query at once) and
records answers with :meth:`LabelStore.answer`. Every answer gets a sequence
number, assigned under SQLite's write lock in the same transaction that stores
it, so sequence order is commit order: a trainer that remembers the last
sequence number it consumed and calls :meth:`LabelStore.answers_after` with it
after a crash neither loses nor repeats a label.

Each call opens its own short-lived connection, so one store object is safe to
share between threads and any number of processes may open the same file. Only
the constructor creates the file: a database deleted, replaced or made
read-only while in use raises :class:`StoreUnavailableError` (naming the file
and the fix) instead of silently starting an empty one.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from io import StringIO
from pathlib import Path, PurePosixPath
from typing import Any, Literal

log = logging.getLogger("rewardlearn")

LABELS = ("left", "right", "equal", "skip")
LABEL_VALUES = {"left": 1.0, "right": 0.0, "equal": 0.5}
"""An answer as a preference label: left better 1, right better 0, equal 0.5 (skip: none)."""
SQLITE_MAX_INT = 2**63 - 1
CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CSV_FIELDS = ("seq", "query_id", "run", "left_video", "left_start", "left_end", "right_video",
               "right_start", "right_end", "label", "annotator", "created_at", "answered_at",
               "meta")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run TEXT NOT NULL,
    left_video TEXT NOT NULL,
    left_start INTEGER NOT NULL,
    left_end INTEGER NOT NULL,
    right_video TEXT NOT NULL,
    right_start INTEGER NOT NULL,
    right_end INTEGER NOT NULL,
    meta TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    lease_annotator TEXT,
    lease_expires REAL
);
CREATE TABLE IF NOT EXISTS answers (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    query_id INTEGER NOT NULL UNIQUE REFERENCES queries(id),
    label TEXT NOT NULL CHECK (label IN ('left', 'right', 'equal', 'skip')),
    annotator TEXT NOT NULL,
    answered_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS queries_run ON queries(run);
"""


class LabelStoreError(Exception):
    """Base class of the store's refusals (the server maps them to HTTP codes)."""


class UnknownQueryError(LabelStoreError, KeyError):
    """No query has this id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown query"


class AlreadyAnsweredError(LabelStoreError):
    """The query already has an answer; answers are never overwritten."""


class InvalidLabelError(LabelStoreError, ValueError):
    """A label, annotator name or clip reference is malformed."""


class LeaseHeldError(LabelStoreError):
    """The query is leased to another annotator (their lease has not expired)."""


class StoreUnavailableError(LabelStoreError):
    """The database file cannot be used (missing, read-only, locked, not a label store)."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message

    def __str__(self) -> str:
        return self.message


def check_id(value: object, name: str = "query_id", lo: int = 1) -> int:
    """``value`` as an integer in ``[lo, 2**63 - 1]`` (SQLite's range), else InvalidLabelError."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidLabelError(f"{name} must be an integer")
    if not lo <= value <= SQLITE_MAX_INT:
        raise InvalidLabelError(f"{name} must be between {lo} and {SQLITE_MAX_INT}")
    return int(value)


def csv_safe(value: object) -> object:
    """A CSV cell that spreadsheets do not run as a formula (OWASP: prefix a single quote)."""
    if isinstance(value, str) and value.startswith(CSV_FORMULA_START):
        return "'" + value
    return value


def explain_db_error(path: Path, err: Exception) -> str:
    """A one-line account of why the label database at ``path`` failed, with the fix."""
    text = str(err)
    low = text.lower()
    if not path.exists():
        return (f"label database {path} is missing (deleted or moved while in use?): restore "
                f"it, or restart the review server / trainer to create a new empty one")
    if "readonly" in low or "read-only" in low or not os.access(path, os.W_OK) \
            or not os.access(path.parent, os.W_OK):
        return (f"label database {path} is read-only: make the file and its folder "
                f"{path.parent} writable (SQLite also writes {path.name}-wal and "
                f"{path.name}-shm there)")
    if "no such table" in low:
        return (f"label database {path} has no label tables (replaced by another file while "
                f"in use?): restore it, or restart the review server to create them ({text})")
    if "locked" in low or "busy" in low:
        return f"label database {path} is locked by another process; try again ({text})"
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        return (f"{path} is not a usable SQLite label database ({text}): point --db at "
                f"another file")
    return f"label database {path} cannot be used: {text}"


@dataclass(frozen=True)
class ClipRef:
    """Frame range ``[start, end)`` of an mp4 clip, its path relative to the served root."""

    video: str
    start: int
    end: int

    def __post_init__(self) -> None:
        if not isinstance(self.video, str) or not self.video.strip():
            raise InvalidLabelError("clip video must be a non-empty path")
        p = PurePosixPath(self.video.replace("\\", "/"))
        if p.is_absolute() or ".." in p.parts:
            raise InvalidLabelError(
                f"clip video must be relative to the review root without '..': {self.video!r}")
        if not (isinstance(self.start, int) and isinstance(self.end, int)) \
                or isinstance(self.start, bool) or isinstance(self.end, bool):
            raise InvalidLabelError("clip start and end must be integers (frame indices)")
        if self.start < 0 or self.end <= self.start:
            raise InvalidLabelError(f"clip frame range must satisfy 0 <= start < end, "
                                    f"got [{self.start}, {self.end})")


@dataclass
class Query:
    """A segment pair waiting for (or holding) a preference."""

    id: int
    run: str
    left: ClipRef
    right: ClipRef
    meta: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    lease_annotator: str | None = None
    lease_expires: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Answer:
    """An answered query; ``seq`` increases in commit order (resume point for trainers)."""

    seq: int
    query_id: int
    run: str
    left: ClipRef
    right: ClipRef
    label: str
    annotator: str
    created_at: str
    answered_at: str
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def flat(self) -> dict[str, Any]:
        """One CSV row: clip refs spread over columns, meta as JSON text."""
        return {
            "seq": self.seq, "query_id": self.query_id, "run": self.run,
            "left_video": self.left.video, "left_start": self.left.start,
            "left_end": self.left.end, "right_video": self.right.video,
            "right_start": self.right.start, "right_end": self.right.end,
            "label": self.label, "annotator": self.annotator,
            "created_at": self.created_at, "answered_at": self.answered_at,
            "meta": json.dumps(self.meta, sort_keys=True),
        }


def utc_now() -> str:
    """Current time as UTC ISO-8601 with milliseconds, e.g. ``2026-01-02T03:04:05.678+00:00``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def check_annotator(annotator: object) -> str:
    """Return a stripped annotator name, refusing empty, overlong or control-char names."""
    if not isinstance(annotator, str):
        raise InvalidLabelError("annotator must be a string")
    name = annotator.strip()
    if not name or len(name) > 100 or any(ord(c) < 32 for c in name):
        raise InvalidLabelError("annotator must be 1-100 printable characters")
    return name


class LabelStore:
    """Queries and preference answers in one SQLite file (WAL journal)."""

    def __init__(self, path: str | os.PathLike[str], timeout_s: float = 30.0,
                 lazy: bool = False) -> None:
        """``lazy``: a database that does not exist yet is created by the first query added
        (a folder only browsed on the review page gets no file); until then reads see an
        empty store."""
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreUnavailableError(self.path, f"label database {self.path} is a directory: "
                                        "give the path of a file (e.g. labels.sqlite)")
        self.timeout_s = timeout_s
        self._mode = "rw"  # after creation: never recreate a file that vanished
        self._ready = False
        if not lazy or self.path.exists():
            self._create()

    def _create(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreUnavailableError(self.path, f"cannot create the folder of label "
                                        f"database {self.path}: {e}") from None
        existed = self.path.exists()
        with self._connect(create=True) as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(_SCHEMA)
        if not existed:
            log.info("created label database %s", self.path)
        self._ready = True

    def _missing(self) -> bool:
        """Whether a lazy store's file does not exist yet (nothing was ever stored)."""
        if self._ready:
            return False
        if self.path.exists():  # another process (a trainer) created it
            self._create()
            return False
        return True

    @property
    def exists(self) -> bool:
        """Whether the database file exists (a lazy store's is made at the first query)."""
        return not self._missing()

    @contextmanager
    def _connect(self, create: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection; sqlite errors about the file become :class:`StoreUnavailableError`."""
        uri = f"{self.path.absolute().as_uri()}?mode={'rwc' if create else self._mode}"
        try:
            con = sqlite3.connect(uri, uri=True, timeout=self.timeout_s, isolation_level=None)
            try:
                con.row_factory = sqlite3.Row
                con.execute("PRAGMA synchronous=FULL")
                con.execute("PRAGMA foreign_keys=ON")
                yield con
            finally:
                con.close()
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError):
            raise
        except sqlite3.DatabaseError as e:
            raise StoreUnavailableError(self.path, explain_db_error(self.path, e)) from e

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A transaction holding the write lock from its start (serialises writers)."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                with suppress(sqlite3.Error):  # the original error says more
                    con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def add_query(self, run: str, left: ClipRef, right: ClipRef,
                  meta: dict[str, Any] | None = None) -> int:
        """Queue a segment pair for labelling; returns its query id."""
        if not isinstance(run, str) or not run:
            raise InvalidLabelError("run must be a non-empty string")
        if not isinstance(left, ClipRef) or not isinstance(right, ClipRef):
            raise InvalidLabelError("left and right must be ClipRef")
        meta_text = json.dumps(meta or {}, sort_keys=True)
        if not self._ready:
            self._create()
        with self._write() as con:
            cur = con.execute(
                "INSERT INTO queries (run, left_video, left_start, left_end, right_video,"
                " right_start, right_end, meta, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (run, left.video, left.start, left.end, right.video, right.start, right.end,
                 meta_text, utc_now()))
            qid = cur.lastrowid
        assert qid is not None
        return int(qid)

    def pending(self, run: str | None = None) -> int:
        """Number of unanswered queries (of ``run``, or all)."""
        sql = ("SELECT COUNT(*) FROM queries q WHERE NOT EXISTS"
               " (SELECT 1 FROM answers a WHERE a.query_id = q.id)")
        args: tuple[Any, ...] = ()
        if run is not None:
            sql += " AND q.run = ?"
            args = (run,)
        if self._missing():
            return 0
        with self._connect() as con:
            return int(con.execute(sql, args).fetchone()[0])

    def claim(self, annotator: str, lease_s: float = 120, run: str | None = None) -> Query | None:
        """Lease the next unanswered query to ``annotator`` for ``lease_s`` seconds.

        An annotator holds at most one lease: one who already holds a live lease
        gets that query again (a page reload does not burn queries), and asking
        for another run gives the held one back first. Otherwise the oldest
        query that nobody holds, or whose lease expired, is leased. ``None`` when
        nothing is left.
        """
        name = check_annotator(annotator)
        if not (isinstance(lease_s, (int, float)) and math.isfinite(lease_s) and lease_s > 0):
            raise InvalidLabelError(f"lease_s must be a finite number > 0, got {lease_s!r}")
        now = time.time()
        if self._missing():
            return None
        run_sql, run_args = ("AND q.run = ?", (run,)) if run is not None else ("", ())
        unanswered = "NOT EXISTS (SELECT 1 FROM answers a WHERE a.query_id = q.id)"
        with self._write() as con:
            row = con.execute(
                f"SELECT q.* FROM queries q WHERE {unanswered} {run_sql}"
                " AND q.lease_annotator = ? AND q.lease_expires > ? ORDER BY q.id LIMIT 1",
                (*run_args, name, now)).fetchone()
            # Whatever else this annotator holds goes back to the queue.
            con.execute("UPDATE queries SET lease_annotator = NULL, lease_expires = NULL"
                        " WHERE lease_annotator = ? AND id != ?",
                        (name, row["id"] if row is not None else -1))
            if row is None:
                row = con.execute(
                    f"SELECT q.* FROM queries q WHERE {unanswered} {run_sql}"
                    " AND (q.lease_expires IS NULL OR q.lease_expires <= ?)"
                    " ORDER BY q.id LIMIT 1", (*run_args, now)).fetchone()
            if row is None:
                return None
            con.execute("UPDATE queries SET lease_annotator = ?, lease_expires = ? WHERE id = ?",
                        (name, now + lease_s, row["id"]))
            query = _query(row)
        query.lease_annotator, query.lease_expires = name, now + lease_s
        return query

    def release(self, query_id: int, annotator: str) -> bool:
        """Give a leased query back to the queue; True if ``annotator`` held it."""
        name = check_annotator(annotator)
        query_id = check_id(query_id)
        if self._missing():
            return False
        with self._write() as con:
            cur = con.execute(
                "UPDATE queries SET lease_annotator = NULL, lease_expires = NULL"
                " WHERE id = ? AND lease_annotator = ?", (query_id, name))
            return cur.rowcount > 0

    def get_query(self, query_id: int) -> Query:
        """The query with this id (answered or not)."""
        query_id = check_id(query_id)
        if self._missing():
            raise UnknownQueryError(f"no query with id {query_id}")
        with self._connect() as con:
            row = con.execute("SELECT * FROM queries WHERE id = ?", (query_id,)).fetchone()
        if row is None:
            raise UnknownQueryError(f"no query with id {query_id}")
        return _query(row)

    def queries(self, run: str | None = None) -> list[Query]:
        """Every query (of ``run``, or all), answered or not, oldest first."""
        if self._missing():
            return []
        args: tuple[Any, ...] = ()
        sql = "SELECT * FROM queries"
        if run is not None:
            sql, args = sql + " WHERE run = ?", (run,)
        with self._connect() as con:
            rows = con.execute(sql + " ORDER BY id", args).fetchall()
        return [_query(r) for r in rows]

    def answer(self, query_id: int, label: str, annotator: str) -> int:
        """Store ``annotator``'s ``label`` for a query; returns the answer's sequence number.

        Raises :class:`InvalidLabelError` for a label outside ``left/right/equal/skip``,
        a bad name or an id outside SQLite's integer range,
        :class:`UnknownQueryError` for an unknown id, :class:`AlreadyAnsweredError`
        when the query has an answer and :class:`LeaseHeldError` when another
        annotator holds a live lease on it; none of them changes the database.
        """
        if label not in LABELS:
            raise InvalidLabelError(f"label must be one of {', '.join(LABELS)}; got {label!r}")
        name = check_annotator(annotator)
        query_id = check_id(query_id)
        if self._missing():
            raise UnknownQueryError(f"no query with id {query_id}")
        with self._write() as con:
            row = con.execute("SELECT lease_annotator, lease_expires FROM queries WHERE id = ?",
                              (query_id,)).fetchone()
            if row is None:
                raise UnknownQueryError(f"no query with id {query_id}")
            if con.execute("SELECT 1 FROM answers WHERE query_id = ?",
                           (query_id,)).fetchone() is not None:
                raise AlreadyAnsweredError(f"query {query_id} is already answered")
            holder, expires = row["lease_annotator"], row["lease_expires"]
            if holder is not None and holder != name and expires is not None \
                    and expires > time.time():
                left = max(1, math.ceil(expires - time.time()))
                raise LeaseHeldError(
                    f"query {query_id} is leased to another annotator for {left} more s; "
                    "answer the query the queue gave you (POST /api/queue/next)")
            cur = con.execute(
                "INSERT INTO answers (query_id, label, annotator, answered_at) VALUES (?,?,?,?)",
                (query_id, label, name, utc_now()))
            con.execute("UPDATE queries SET lease_annotator = NULL, lease_expires = NULL"
                        " WHERE id = ?", (query_id,))
            seq = cur.lastrowid
        assert seq is not None
        return int(seq)

    def answers_after(self, after_id: int = 0, run: str | None = None,
                      limit: int | None = None) -> list[Answer]:
        """Answers with sequence number > ``after_id``, in sequence (= commit) order."""
        after_id = check_id(after_id, "after", lo=0)
        if limit is not None:
            limit = check_id(limit, "limit", lo=0)
        sql = ("SELECT a.seq, a.label, a.annotator, a.answered_at, q.* FROM answers a"
               " JOIN queries q ON q.id = a.query_id WHERE a.seq > ?")
        args: list[Any] = [after_id]
        if run is not None:
            sql += " AND q.run = ?"
            args.append(run)
        sql += " ORDER BY a.seq"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        if self._missing():
            return []
        with self._connect() as con:
            rows = con.execute(sql, args).fetchall()
        return [_answer(r) for r in rows]

    def wait_answers(self, after_id: int = 0, run: str | None = None, min_count: int = 1,
                     timeout_s: float | None = None, poll_s: float = 0.5) -> list[Answer]:
        """Block until at least ``min_count`` answers follow ``after_id`` (or the timeout).

        Returns every answer after ``after_id`` available at that point, possibly
        fewer than ``min_count`` when ``timeout_s`` ran out: for a trainer that
        waits for a human between reward-model updates.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            answers = self.answers_after(after_id, run)
            if len(answers) >= min_count:
                return answers
            if deadline is not None and time.monotonic() >= deadline:
                return answers
            wait = poll_s if deadline is None else min(poll_s, deadline - time.monotonic())
            time.sleep(max(0.0, wait))

    def stats(self) -> dict[str, Any]:
        """Counts for the progress display: totals, per run, per label, per annotator."""
        now = time.time()
        if self._missing():
            return {"queries": 0, "answered": 0, "pending": 0, "leased": 0, "by_label": {},
                    "by_annotator": {}, "runs": {}}
        with self._connect() as con:
            total = con.execute("SELECT COUNT(*) FROM queries").fetchone()[0]
            answered = con.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
            leased = con.execute(
                "SELECT COUNT(*) FROM queries q WHERE q.lease_expires > ? AND NOT EXISTS"
                " (SELECT 1 FROM answers a WHERE a.query_id = q.id)", (now,)).fetchone()[0]
            by_label = dict(con.execute(
                "SELECT label, COUNT(*) FROM answers GROUP BY label").fetchall())
            by_annotator = dict(con.execute(
                "SELECT annotator, COUNT(*) FROM answers GROUP BY annotator").fetchall())
            runs = {r[0]: {"queries": r[1], "answered": r[2]} for r in con.execute(
                "SELECT q.run, COUNT(*), COUNT(a.seq) FROM queries q"
                " LEFT JOIN answers a ON a.query_id = q.id GROUP BY q.run").fetchall()}
        return {"queries": total, "answered": answered, "pending": total - answered,
                "leased": leased, "by_label": by_label, "by_annotator": by_annotator,
                "runs": runs}

    def export(self, fmt: Literal["csv", "json"], path: str | os.PathLike[str],
               run: str | None = None) -> Path:
        """Write every answer (sequence order) as CSV or JSON; returns the path."""
        if fmt not in ("csv", "json"):
            raise InvalidLabelError(f"export format must be csv or json, got {fmt!r}")
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(self.export_text(fmt, run), newline="")
        return out

    def export_text(self, fmt: Literal["csv", "json"], run: str | None = None) -> str:
        """The export as a string (what :meth:`export` writes).

        CSV cells that start with ``= + - @``, a tab or a carriage return get a
        leading single quote, so a spreadsheet shows them instead of running a
        formula an annotator name or a clip path smuggled in.
        """
        answers = self.answers_after(0, run)
        if fmt == "json":
            return json.dumps([a.to_dict() for a in answers], indent=1)
        if fmt != "csv":
            raise InvalidLabelError(f"export format must be csv or json, got {fmt!r}")
        buf = StringIO()
        # CRLF rows (RFC 4180): a cell holding \r or \n is quoted, so it cannot split a row.
        writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\r\n")
        writer.writeheader()
        for a in answers:
            writer.writerow({k: csv_safe(v) for k, v in a.flat().items()})
        return buf.getvalue()


def _clips(row: sqlite3.Row) -> tuple[ClipRef, ClipRef]:
    return (ClipRef(row["left_video"], int(row["left_start"]), int(row["left_end"])),
            ClipRef(row["right_video"], int(row["right_start"]), int(row["right_end"])))


def _query(row: sqlite3.Row) -> Query:
    left, right = _clips(row)
    return Query(id=int(row["id"]), run=row["run"], left=left, right=right,
                 meta=json.loads(row["meta"]), created_at=row["created_at"],
                 lease_annotator=row["lease_annotator"], lease_expires=row["lease_expires"])


def _answer(row: sqlite3.Row) -> Answer:
    left, right = _clips(row)
    return Answer(seq=int(row["seq"]), query_id=int(row["id"]), run=row["run"], left=left,
                  right=right, label=row["label"], annotator=row["annotator"],
                  created_at=row["created_at"], answered_at=row["answered_at"],
                  meta=json.loads(row["meta"]))
