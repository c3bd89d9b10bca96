"""Label store: queries, leases, answers with resumable sequence numbers, export."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from rewardlearn.review import (
    AlreadyAnsweredError,
    ClipRef,
    InvalidLabelError,
    LabelStore,
    LeaseHeldError,
    StoreUnavailableError,
    UnknownQueryError,
)


def clip(name: str, start: int = 0, end: int = 25) -> ClipRef:
    return ClipRef(f"queries/{name}.mp4", start, end)


def fill(store: LabelStore, n: int, run: str = "run_a") -> list[int]:
    return [store.add_query(run, clip(f"{i}_l"), clip(f"{i}_r"), {"i": i}) for i in range(n)]


def n_answers(path: Path) -> int:
    con = sqlite3.connect(path)
    try:
        return int(con.execute("SELECT COUNT(*) FROM answers").fetchone()[0])
    finally:
        con.close()


def test_creates_database_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "labels.sqlite"
    LabelStore(path)
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()
    LabelStore(path)  # reopening an existing store is fine


def test_query_round_trip_and_answer_fields(tmp_path: Path) -> None:
    store = LabelStore(tmp_path / "l.sqlite")
    qid = store.add_query("run_a", ClipRef("q/a.mp4", 0, 50), ClipRef("q/b.mp4", 5, 30),
                          {"iteration": 3})
    assert store.pending() == 1
    q = store.claim("alice")
    assert q is not None and q.id == qid and q.run == "run_a"
    assert (q.left, q.right, q.meta) == (ClipRef("q/a.mp4", 0, 50), ClipRef("q/b.mp4", 5, 30),
                                         {"iteration": 3})
    assert q.lease_annotator == "alice" and q.lease_expires is not None
    seq = store.answer(qid, "right", "alice")
    assert seq == 1 and store.pending() == 0
    (a,) = store.answers_after(0)
    assert (a.seq, a.query_id, a.run, a.label, a.annotator) == (1, qid, "run_a", "right", "alice")
    assert a.left == ClipRef("q/a.mp4", 0, 50) and a.meta == {"iteration": 3}
    for stamp in (a.created_at, a.answered_at):
        t = datetime.fromisoformat(stamp)
        assert t.utcoffset() == timezone.utc.utcoffset(None)
    assert a.answered_at >= a.created_at


def test_claim_leases_distinct_queries_and_repeats_own(tmp_path: Path) -> None:
    store = LabelStore(tmp_path / "l.sqlite")
    ids = fill(store, 3)
    qa = store.claim("alice")
    qb = store.claim("bob")
    assert qa is not None and qb is not None
    assert (qa.id, qb.id) == (ids[0], ids[1])
    again = store.claim("alice")  # a reload shows alice the same query
    assert again is not None and again.id == ids[0]
    store.answer(ids[0], "left", "alice")
    nxt = store.claim("alice")
    assert nxt is not None and nxt.id == ids[2]
    assert store.claim("carol") is None  # everything is answered or leased
    assert store.release(ids[1], "bob")
    q = store.claim("carol")
    assert q is not None and q.id == ids[1]
    assert not store.release(ids[1], "bob")  # bob no longer holds it


def test_expired_lease_goes_to_the_next_annotator(tmp_path: Path) -> None:
    store = LabelStore(tmp_path / "l.sqlite")
    (qid,) = fill(store, 1)
    first = store.claim("alice", lease_s=0.05)
    assert first is not None and store.claim("bob") is None
    time.sleep(0.1)
    q = store.claim("bob")
    assert q is not None and q.id == qid and q.lease_annotator == "bob"


def test_claim_and_pending_by_run(tmp_path: Path) -> None:
    store = LabelStore(tmp_path / "l.sqlite")
    fill(store, 2, run="a")
    (b,) = fill(store, 1, run="b")
    assert (store.pending(), store.pending("a"), store.pending("b"), store.pending("c")) == \
        (3, 2, 1, 0)
    q = store.claim("alice", run="b")
    assert q is not None and q.id == b


def test_concurrent_claims_never_share_a_query(tmp_path: Path) -> None:
    store = LabelStore(tmp_path / "l.sqlite")
    fill(store, 8)
    got: list[int] = []
    barrier = threading.Barrier(8)

    def worker(k: int) -> None:
        barrier.wait()
        q = store.claim(f"annotator{k}")
        assert q is not None
        got.append(q.id)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 9))


WORKER = """
import sys
from rewardlearn.review import LabelStore, AlreadyAnsweredError
store = LabelStore(sys.argv[1])
done = 0
while (q := store.claim(sys.argv[2], lease_s=30)) is not None:
    store.answer(q.id, "left" if q.id % 2 else "right", sys.argv[2])
    done += 1
print(done)
"""


def test_two_processes_label_each_query_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    store = LabelStore(path)
    fill(store, 40)
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(path), name],
                              stdout=subprocess.PIPE, text=True) for name in ("p1", "p2")]
    counts = [int(p.communicate(timeout=60)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(counts) == 40
    answers = store.answers_after(0)
    assert [a.seq for a in answers] == list(range(1, 41))
    assert sorted(a.query_id for a in answers) == list(range(1, 41))
    assert store.pending() == 0


def test_bad_answers_raise_and_change_nothing(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    store = LabelStore(path)
    (qid,) = fill(store, 1)
    with pytest.raises(InvalidLabelError):
        store.answer(qid, "better", "alice")
    with pytest.raises(InvalidLabelError):
        store.answer(qid, "left", "   ")
    with pytest.raises(InvalidLabelError):
        store.answer(qid, "left", "a\nb")
    with pytest.raises(UnknownQueryError):
        store.answer(999, "left", "alice")
    assert n_answers(path) == 0 and store.pending() == 1
    store.answer(qid, "equal", "alice")
    with pytest.raises(AlreadyAnsweredError):
        store.answer(qid, "left", "bob")
    (a,) = store.answers_after(0)
    assert (a.label, a.annotator) == ("equal", "alice")


@pytest.mark.parametrize("bad", [
    ("/abs/clip.mp4", 0, 5), ("../up.mp4", 0, 5), ("q/../../x.mp4", 0, 5), ("", 0, 5),
    ("q.mp4", 5, 5), ("q.mp4", -1, 5), ("q.mp4", 0.0, 5), ("q.mp4", True, 5),
])
def test_clip_refs_are_validated(bad: tuple[object, object, object]) -> None:
    with pytest.raises(InvalidLabelError):
        ClipRef(*bad)  # type: ignore[arg-type]


def test_trainer_resumes_after_crash_without_loss_or_repeat(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    annotator = LabelStore(path)
    ids = fill(annotator, 6)
    for qid in ids[:3]:
        annotator.answer(qid, "left", "alice")
    trainer = LabelStore(path)
    consumed = trainer.answers_after(0)
    last = consumed[-1].seq
    del trainer  # the training process dies here, having saved `last` with its checkpoint
    for qid in ids[3:]:
        annotator.answer(qid, "right", "alice")
    resumed = LabelStore(path).answers_after(last)
    assert [a.query_id for a in consumed + resumed] == ids
    assert [a.seq for a in consumed + resumed] == list(range(1, 7))
    assert LabelStore(path).answers_after(last, limit=2) == resumed[:2]
    assert LabelStore(path).answers_after(0, run="other") == []


def test_export_csv_and_json(tmp_path: Path) -> None:
    store = LabelStore(tmp_path / "l.sqlite")
    ids = fill(store, 3)
    store.answer(ids[1], "left", "alice")
    store.answer(ids[0], "skip", "bob")
    j = store.export("json", tmp_path / "out" / "labels.json")
    rows = json.loads(j.read_text())
    assert [(r["seq"], r["query_id"], r["label"], r["annotator"]) for r in rows] == \
        [(1, ids[1], "left", "alice"), (2, ids[0], "skip", "bob")]
    assert rows[0]["left"] == {"video": "queries/1_l.mp4", "start": 0, "end": 25}
    c = store.export("csv", tmp_path / "labels.csv")
    table = list(csv.DictReader(io.StringIO(c.read_text())))
    assert [r["label"] for r in table] == ["left", "skip"]
    assert table[0]["right_video"] == "queries/1_r.mp4" and json.loads(table[0]["meta"]) == {"i": 1}
    with pytest.raises(InvalidLabelError):
        store.export("xml", tmp_path / "x")  # type: ignore[arg-type]


def test_stats(tmp_path: Path) -> None:
    store = LabelStore(tmp_path / "l.sqlite")
    ids = fill(store, 3, run="a") + fill(store, 1, run="b")
    store.answer(ids[0], "left", "alice")
    store.answer(ids[3], "equal", "bob")
    store.claim("carol")
    s = store.stats()
    assert (s["queries"], s["answered"], s["pending"], s["leased"]) == (4, 2, 2, 1)
    assert s["by_label"] == {"left": 1, "equal": 1}
    assert s["by_annotator"] == {"alice": 1, "bob": 1}
    assert s["runs"] == {"a": {"queries": 3, "answered": 1}, "b": {"queries": 1, "answered": 1}}


def test_wait_answers_blocks_until_labels_arrive(tmp_path: Path) -> None:
    store = LabelStore(tmp_path / "l.sqlite")
    ids = fill(store, 3)
    store.answer(ids[0], "left", "alice")
    timer = threading.Timer(0.15, lambda: store.answer(ids[1], "right", "bob"))
    timer.start()
    got = store.wait_answers(after_id=0, min_count=2, timeout_s=10, poll_s=0.02)
    timer.join()
    assert [a.query_id for a in got] == ids[:2]
    t0 = time.monotonic()
    assert len(store.wait_answers(after_id=2, timeout_s=0.1, poll_s=0.02)) == 0
    assert time.monotonic() - t0 < 2


def test_one_lease_per_annotator_across_runs(tmp_path: Path) -> None:
    store = LabelStore(tmp_path / "l.sqlite")
    (a,) = fill(store, 1, run="a")
    (b,) = fill(store, 1, run="b")
    qa = store.claim("alice", run="a")
    assert qa is not None and qa.id == a
    qb = store.claim("alice", run="b")  # gives the lease on `a` back first
    assert qb is not None and qb.id == b
    assert store.stats()["leased"] == 1
    q = store.claim("bob", run="a")
    assert q is not None and q.id == a


def test_answer_refuses_a_query_leased_to_someone_else(tmp_path: Path) -> None:
    store = LabelStore(tmp_path / "l.sqlite")
    (qid,) = fill(store, 1)
    store.claim("alice")
    with pytest.raises(LeaseHeldError, match="leased to another annotator"):
        store.answer(qid, "left", "bob")
    assert store.pending() == 1
    assert store.answer(qid, "left", "alice") == 1


@pytest.mark.parametrize("lease", [0, -1.0, float("inf"), float("nan")])
def test_claim_refuses_bad_leases(tmp_path: Path, lease: float) -> None:
    store = LabelStore(tmp_path / "l.sqlite")
    fill(store, 1)
    with pytest.raises(InvalidLabelError, match="finite"):
        store.claim("alice", lease_s=lease)


@pytest.mark.parametrize("bad", [2**63, -(2**63) - 1, 10**30])
def test_ids_outside_sqlite_range_are_refused(tmp_path: Path, bad: int) -> None:
    store = LabelStore(tmp_path / "l.sqlite")
    for call in (lambda: store.answer(bad, "left", "a"), lambda: store.release(bad, "a"),
                 lambda: store.get_query(bad), lambda: store.answers_after(bad)):
        with pytest.raises(InvalidLabelError):
            call()


def test_vanished_database_is_not_recreated(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    store = LabelStore(path)
    (qid,) = fill(store, 1)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    with pytest.raises(StoreUnavailableError, match="missing") as e:
        store.answer(qid, "left", "alice")
    assert str(path) in str(e.value) and not path.exists()
    with pytest.raises(StoreUnavailableError):
        store.answers_after(0)
    LabelStore(path)  # a new store (a restart) creates it again
    assert store.pending() == 0


def test_csv_export_quotes_formula_cells(tmp_path: Path) -> None:
    store = LabelStore(tmp_path / "l.sqlite")
    qid = store.add_query("@run", ClipRef("=cmd.mp4", 0, 2), ClipRef("q/+x.mp4", 0, 2))
    store.answer(qid, "left", "-alice")
    (row,) = csv.DictReader(io.StringIO(store.export_text("csv"), newline=""))
    assert (row["run"], row["left_video"], row["right_video"], row["annotator"]) == \
        ("'@run", "'=cmd.mp4", "q/+x.mp4", "'-alice")
    assert json.loads(store.export_text("json"))[0]["annotator"] == "-alice"
