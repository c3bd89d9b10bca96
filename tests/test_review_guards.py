"""Review server guards: Host/Origin, containment, leases, bad input, dead databases, CLI,
CSV formula cells, stalled connections, and serving a repo root next to a trainer's queue."""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_review_server import Client, add_rollout

from rewardlearn.cli.review import main
from rewardlearn.recording import write_video
from rewardlearn.review import ClipRef, LabelStore
from rewardlearn.review.catalog import OutsideRootError, resolve_inside
from rewardlearn.review.requests import host_allowed, parse_host, too_deep
from rewardlearn.review.server import ReviewProtocol, ReviewServer

RUN = "2026-02-03_04-05-06_hopper_ppo_preference_s0"


def clip_file(path: Path, n: int = 12) -> Path:
    return write_video(path, np.zeros((n, 16, 16, 3), np.uint8), 10)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A served folder with one run and two query clips."""
    r = tmp_path / "root"
    add_rollout(r / "run_a", 0, -1.0, 0.5, video=False)
    clip_file(r / "queries" / "l.mp4")
    clip_file(r / "queries" / "r.mp4")
    return r


@pytest.fixture
def server(root: Path, tmp_path: Path) -> Iterator[ReviewServer]:
    with ReviewServer(root, db=tmp_path / "db" / "labels.sqlite", port=0) as srv:
        srv.app.catalog.ttl_s = 0.0
        yield srv


@pytest.fixture
def client(server: ReviewServer) -> Client:
    return Client(server)


def add_queries(srv: ReviewServer, n: int, run: str = "run_a") -> list[int]:
    return [srv.store.add_query(run, ClipRef("queries/l.mp4", 0, 12),
                                ClipRef("queries/r.mp4", 0, 12), {"k": k}) for k in range(n)]


def leased(client: Client) -> int:
    return int(client.json("/api/queue/stats")["leased"])


# ---------------------------------------------------------------- Host and Origin


@pytest.mark.parametrize("host", [
    "127.attacker.example:{port}", "127.attacker.example", "127.0.0.1.evil.example:{port}",
    "127.1:{port}", "localhost.evil.example:{port}", "[::1]evil.example", "[::1]:{port}x",
    "evil.example:80@127.0.0.1", "127.0.0.1:99999", "127.0.0.1:{port}:{port}",
    "0x7f000001:{port}", "[127.0.0.1]:{port}", "::1", "evil.example", " ",
])
def test_host_must_be_a_literal_loopback_address(client: Client, server: ReviewServer,
                                                 host: str) -> None:
    (qid,) = add_queries(server, 1)
    server.store.answer(qid, "left", "alice")
    hdr = {"Host": host.format(port=server.port)}
    status, _, body = client.get("/api/labels/export?fmt=csv", headers=hdr)
    assert status == 403 and b"alice" not in body
    assert client.get("/api/info", headers=hdr)[0] == 403
    status, _, _ = client.request("POST", "/api/labels", json.dumps(
        {"query_id": qid, "label": "right", "annotator": "mallory"}).encode(),
        {**hdr, "Content-Type": "application/json"})
    assert status == 403
    assert [a.annotator for a in server.store.answers_after(0)] == ["alice"]


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "127.0.0.1", "127.0.0.2:{port}",
                                  "127.255.255.254", "localhost:{port}", "LocalHost",
                                  "[::1]:{port}", "[::1]", "[::ffff:127.0.0.1]:{port}"])
def test_loopback_hosts_are_accepted(client: Client, server: ReviewServer, host: str) -> None:
    assert client.get("/api/info", headers={"Host": host.format(port=server.port)})[0] == 200


def test_host_parsing_and_the_bound_name() -> None:
    assert parse_host("127.0.0.1:8765") == ("127.0.0.1", 8765)
    assert parse_host("[::1]:80") == ("::1", 80)
    assert parse_host("LOCALHOST") == ("localhost", None)
    for bad in ("", "a:b:c", "[::1", "[nope]:1", "h:", "h:-1", "h:1x", "h:٣", "a/b", "u@h"):
        assert parse_host(bad) is None, bad
    assert host_allowed("review-box:8765", "review-box")
    assert host_allowed("[::1]:1", "review-box")
    assert not host_allowed("review-box:8765", None)
    assert not host_allowed("127.review-box:8765", "review-box")


def test_server_bound_to_a_name_accepts_that_name(root: Path, tmp_path: Path) -> None:
    with ReviewServer(root, db=tmp_path / "l.sqlite", host="localhost", port=0) as srv:
        c = Client(srv)
        assert c.get("/api/info", headers={"Host": f"localhost:{srv.port}"})[0] == 200
        assert c.get("/api/info", headers={"Host": f"127.attacker:{srv.port}"})[0] == 403


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"}, {"Origin": "null"},
    {"Origin": "http://127.0.0.1:1"}, {"Origin": "http://localhost:{port}"},
    {"Origin": "file://"}, {"Origin": "http://[::1"},
    {"Sec-Fetch-Site": "cross-site"},
])
def test_cross_origin_posts_are_refused(client: Client, server: ReviewServer,
                                        headers: dict[str, str]) -> None:
    (qid,) = add_queries(server, 1)
    hdr = {k: v.format(port=server.port) for k, v in headers.items()}
    status, res = client.post("/api/queue/next", {"annotator": "mallory"}, headers=hdr)
    assert status == 403 and "error" in res
    status, res = client.post("/api/labels", {"query_id": qid, "label": "left",
                                              "annotator": "mallory"}, headers=hdr)
    assert status == 403
    assert leased(client) == 0 and server.store.pending() == 1


def test_same_origin_posts_are_accepted(client: Client, server: ReviewServer) -> None:
    (qid,) = add_queries(server, 1)
    same = {"Origin": f"http://127.0.0.1:{server.port}", "Sec-Fetch-Site": "same-origin"}
    status, res = client.post("/api/queue/next", {"annotator": "alice"}, headers=same)
    assert status == 200 and res["query"]["id"] == qid
    assert client.post("/api/labels", {"query_id": qid, "label": "left", "annotator": "alice"},
                       headers=same)[0] == 201


# ---------------------------------------------------------------- containment


def test_symlinked_sidecar_out_of_the_root_is_skipped(root: Path, client: Client,
                                                      tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "episode_009.json").write_text(json.dumps(
        {"episode": 9, "env_return": 1.0, "secret": "TOPSECRET", "video": "x.mp4"}))
    (root / "run_a" / "episode_001.json").symlink_to(outside / "episode_009.json")
    (root / "run_b").mkdir()
    (root / "run_b" / "episode_000.json").symlink_to(outside / "episode_009.json")
    # A symlink that stays inside the root is fine (as for /files/).
    (root / "run_a" / "episode_002.json").symlink_to(root / "run_a" / "episode_000.json")
    rows = client.json("/api/runs/run_a/rollouts")["rollouts"]
    assert [r["id"] for r in rows] == ["episode_000", "episode_002"]
    status, _, body = client.get("/api/rollouts/run_a/episode_001")
    assert status == 404 and b"TOPSECRET" not in body
    runs = client.json("/api/runs")["runs"]
    assert [r["id"] for r in runs] == ["run_a"]
    assert client.get("/api/rollouts/run_a/episode_002")[0] == 200
    for path in ("/api/runs", "/api/runs/run_a/rollouts"):
        assert b"TOPSECRET" not in client.get(path)[2]


def test_one_containment_rule(root: Path, tmp_path: Path) -> None:
    real_root = root.resolve()
    assert resolve_inside(real_root, root / "queries" / "l.mp4") == real_root / "queries/l.mp4"
    (root / "out.mp4").symlink_to(clip_file(tmp_path / "o.mp4"))
    with pytest.raises(OutsideRootError):
        resolve_inside(real_root, root / "out.mp4")
    with pytest.raises(OutsideRootError):
        resolve_inside(real_root, root / ".." / "o.mp4")
    with pytest.raises(FileNotFoundError):
        resolve_inside(real_root, root / "missing.mp4")


# ---------------------------------------------------------------- leases


def test_leasing_is_a_post(client: Client, server: ReviewServer) -> None:
    add_queries(server, 5)
    for name in ("a", "b", "c", "d", "e"):
        status, headers, body = client.get(f"/api/queue/next?annotator={name}")
        assert status == 405 and headers["allow"] == "POST" and b"POST" in body
    assert client.request("HEAD", "/api/queue/next?annotator=a")[0] == 405
    assert leased(client) == 0 and server.store.pending() == 5
    # Not JSON (what a cross-site form can send): refused, nothing leased.
    assert client.post("/api/queue/next", raw=b"annotator=a",
                       ctype="application/x-www-form-urlencoded")[0] == 415
    assert leased(client) == 0
    assert client.next("a")["query"] is not None and leased(client) == 1


def test_one_lease_per_annotator(client: Client, server: ReviewServer) -> None:
    a_ids = add_queries(server, 3, run="run_a")
    b_ids = add_queries(server, 3, run="run_b")
    first = client.next("alice")["query"]["id"]
    assert [client.next("alice")["query"]["id"] for _ in range(3)] == [first] * 3
    assert first == a_ids[0] and leased(client) == 1
    # Asking for another run gives the held lease back first.
    assert client.next("alice", run="run_b")["query"]["id"] == b_ids[0]
    assert leased(client) == 1
    assert client.next("bob")["query"]["id"] == a_ids[0]
    assert leased(client) == 2


def test_answer_checks_the_lease_holder(client: Client, server: ReviewServer) -> None:
    ids = add_queries(server, 2)
    assert client.next("alice")["query"]["id"] == ids[0]
    status, res = client.post("/api/labels", {"query_id": ids[0], "label": "left",
                                              "annotator": "mallory"})
    assert status == 409 and "leased to another annotator" in res["error"]
    assert server.store.pending() == 2
    status, res = client.post("/api/labels", {"query_id": ids[0], "label": "left",
                                              "annotator": "alice"})
    assert status == 201 and res["annotator"] == "alice"
    # A query nobody holds can be answered by anyone (scripts, the trainer's tools).
    assert client.post("/api/labels", {"query_id": ids[1], "label": "skip",
                                       "annotator": "bob"})[0] == 201


def test_expired_lease_no_longer_blocks_answers(root: Path, tmp_path: Path) -> None:
    with ReviewServer(root, db=tmp_path / "l.sqlite", port=0, lease_s=0.2) as srv:
        c = Client(srv)
        (qid,) = add_queries(srv, 1)
        assert c.next("alice")["query"]["id"] == qid
        assert c.post("/api/labels", {"query_id": qid, "label": "left",
                                      "annotator": "bob"})[0] == 409
        time.sleep(0.3)
        assert c.post("/api/labels", {"query_id": qid, "label": "left",
                                      "annotator": "bob"})[0] == 201


# ---------------------------------------------------------------- bad input is a 4xx


@pytest.mark.parametrize("qid", [2**63, 10**30, -(2**63) - 1, 99999999999999999999999])
def test_huge_query_ids_are_400(client: Client, server: ReviewServer, qid: int) -> None:
    add_queries(server, 1)
    for path, body in (("/api/labels", {"query_id": qid, "label": "left", "annotator": "a"}),
                       ("/api/queue/release", {"query_id": qid, "annotator": "a"})):
        status, res = client.post(path, body)
        assert status == 400 and "query_id" in res["error"], (path, res)
    assert server.store.pending() == 1


@pytest.mark.parametrize("query", ["after=99999999999999999999999", "after=9223372036854775808",
                                   "limit=99999999999999999999999", "after=1" + "0" * 5000])
def test_huge_integer_parameters_are_400(client: Client, query: str) -> None:
    status, _, body = client.get(f"/api/labels?{query}")
    err = json.loads(body)["error"]
    assert status == 400 and ("must be an integer" in err or "out of range" in err), err
    assert client.json("/api/labels?after=9223372036854775807") == {
        "answers": [], "last_seq": 9223372036854775807}


@pytest.mark.parametrize("body", [
    b"[" * 30_000 + b"]" * 30_000,
    b'{"query_id": 1, "label": "left", "annotator": "a", "x": ' + b"[" * 30_000 + b"]" * 30_000
    + b"}",
    b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
], ids=["array", "inside-a-label", "object"])
def test_deep_json_is_400(client: Client, server: ReviewServer, body: bytes) -> None:
    add_queries(server, 1)
    for path in ("/api/labels", "/api/queue/next", "/api/queue/release"):
        status, res = client.post(path, raw=body)
        assert status == 400 and "nested deeper" in res["error"], path
    assert server.store.pending() == 1 and leased(client) == 0


def test_json_depth_scanner() -> None:
    assert not too_deep('{"a": [[["[[[[[[[[[[[[[[[[[[[[[[[[[[[["]]]}', 5)
    assert not too_deep('{"a": "\\"[[[[[[[[[[[[[[[[[[[[[["}', 3)
    assert too_deep("[[[[[[]]]]]]", 5) and not too_deep("[[[[[]]]]]", 5)


def test_big_body_is_413(client: Client) -> None:
    status, res = client.post("/api/queue/next", raw=b'{"annotator": "' + b"a" * 70_000 + b'"}')
    assert status == 413 and "larger than" in res["error"]


@pytest.mark.parametrize("lease", [0, -1, float("inf"), float("nan")])
def test_server_refuses_bad_leases(root: Path, tmp_path: Path, lease: float) -> None:
    with pytest.raises(ValueError, match="lease"):
        ReviewServer(root, db=tmp_path / "l.sqlite", port=0, lease_s=lease)


# ---------------------------------------------------------------- CLI


@pytest.mark.parametrize("args,message", [
    (["--lease", "0"], "--lease: must be a finite number of seconds > 0"),
    (["--lease", "inf"], "--lease: must be a finite number"),
    (["--lease", "nan"], "--lease: must be a finite number"),
    (["--lease", "soon"], "--lease: not a number"),
    (["--port", "99999"], "--port: 99999 is not a port number"),
    (["--port", "-1"], "--port: -1 is not a port number"),
    (["--db", "{tmp}"], "is a directory"),
    (["--db", "{tmp}/file.txt/labels.sqlite"], "is not a directory"),
])
def test_cli_rejects_bad_options_in_one_line(root: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str],
                                             args: list[str], message: str) -> None:
    (tmp_path / "file.txt").write_text("x")
    argv = [str(root), *(a.format(tmp=tmp_path) for a in args)]
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert "error:" in err.strip().splitlines()[-1]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_cli_rejects_an_unwritable_db_folder(root: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(SystemExit):
            main([str(root), "--db", str(locked / "labels.sqlite")])
    finally:
        locked.chmod(0o700)
    assert "not writable" in capsys.readouterr().err


# ---------------------------------------------------------------- database gone or read-only


def test_deleted_database_gives_503_naming_the_file(client: Client, server: ReviewServer) -> None:
    (qid,) = add_queries(server, 1)
    db = server.app.db_path
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    for method, path, body in (
            ("GET", "/api/queue/stats", None), ("GET", "/api/labels?after=0", None),
            ("GET", "/api/labels/export?fmt=csv", None),
            ("POST", "/api/queue/next", {"annotator": "a"}),
            ("POST", "/api/labels", {"query_id": qid, "label": "left", "annotator": "a"})):
        if method == "GET":
            status, _, raw = client.get(path)
            res = json.loads(raw)
        else:
            status, res = client.post(path, body)
        assert status == 503, (path, res)
        assert str(db) in res["error"] and "missing" in res["error"]
        assert "restart" in res["error"] and res["db"] == str(db)
    assert not db.exists()  # not silently recreated empty (the trainer would lose its queue)
    assert client.get("/api/info")[0] == 200


def test_replaced_database_gives_503(client: Client, server: ReviewServer) -> None:
    (qid,) = add_queries(server, 1)
    db = server.app.db_path
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.write_bytes(b"")
    status, res = client.post("/api/labels", {"query_id": qid, "label": "left",
                                              "annotator": "a"})
    assert status == 503 and "no label tables" in res["error"] and str(db) in res["error"]


def test_read_only_database_never_acknowledges_a_label(client: Client,
                                                       server: ReviewServer) -> None:
    (qid,) = add_queries(server, 1)
    server.store._mode = "ro"  # what SQLite does with a write-protected file
    status, res = client.post("/api/labels", {"query_id": qid, "label": "left",
                                              "annotator": "a"})
    assert status == 503 and "read-only" in res["error"] and str(server.app.db_path) in \
        res["error"] and "writable" in res["error"]
    status, res = client.post("/api/queue/next", {"annotator": "a"})
    assert status == 503 and "read-only" in res["error"]
    server.store._mode = "rw"
    assert server.store.pending() == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_write_protected_database_gives_503(client: Client, server: ReviewServer) -> None:
    (qid,) = add_queries(server, 1)
    db = server.app.db_path
    db.chmod(0o444)
    try:
        status, res = client.post("/api/labels", {"query_id": qid, "label": "left",
                                                  "annotator": "a"})
    finally:
        db.chmod(0o644)
    assert status == 503 and "read-only" in res["error"]
    assert server.store.pending() == 1


def test_store_refuses_a_directory(tmp_path: Path) -> None:
    from rewardlearn.review import StoreUnavailableError

    with pytest.raises(StoreUnavailableError, match="is a directory"):
        LabelStore(tmp_path)


# ---------------------------------------------------------------- CSV, timeouts


def test_csv_export_neutralises_formulas(client: Client, server: ReviewServer) -> None:
    names = ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)", "plain"]
    for name in names:
        qid = server.store.add_query("=run", ClipRef("-clip.mp4", 0, 2),
                                     ClipRef("\tq.mp4", 0, 2))
        server.store.answer(qid, "left", name)
    qid = server.store.add_query("\r=cmd", ClipRef("a.mp4", 0, 2), ClipRef("b.mp4", 0, 2))
    server.store.answer(qid, "skip", "x")
    status, _, body = client.get("/api/labels/export?fmt=csv")
    assert status == 200
    rows = list(csv.DictReader(io.StringIO(body.decode(), newline="")))
    assert [r["annotator"] for r in rows] == ["'" + n for n in names[:4]] + ["plain", "x"]
    assert all(r["run"] == "'=run" and r["left_video"] == "'-clip.mp4"
               and r["right_video"] == "'\tq.mp4" for r in rows[:5])
    assert rows[5]["run"] == "'\r=cmd"
    assert rows[0]["meta"] == "{}" and rows[0]["left_start"] == "0"
    # JSON keeps the values as they are.
    data = json.loads(client.get("/api/labels/export?fmt=json")[2])
    assert data[0]["annotator"] == names[0] and data[0]["run"] == "=run"


def test_stalled_connections_time_out(root: Path, tmp_path: Path) -> None:
    assert ReviewProtocol.timeout_s == 30
    with ReviewServer(root, db=tmp_path / "l.sqlite", port=0, request_timeout_s=0.3) as srv:
        for partial in (b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                        b"POST /api/labels HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                        b"application/json\r\nContent-Length: 100\r\n\r\n{\"query"):
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
                s.sendall(partial)
                t0 = time.monotonic()
                assert s.recv(1024) == b""  # closed by the server, no 500
                assert time.monotonic() - t0 < 5
        assert Client(srv).get("/api/info")[0] == 200


# ---------------------------------------------------------------- serving a repo root


def trainer_queue(videos: Path, n: int = 2, run: str = RUN) -> LabelStore:
    """What ``teacher=human`` leaves: VIDEOS/labels.sqlite and VIDEOS/<run>/queries/*.mp4."""
    store = LabelStore(videos / "labels.sqlite")
    for k in range(n):
        for side in ("left", "right"):
            clip_file(videos / run / "queries" / f"r000_{k:03d}_{side}.mp4")
        store.add_query(run, ClipRef(f"{run}/queries/r000_{k:03d}_left.mp4", 0, 12),
                        ClipRef(f"{run}/queries/r000_{k:03d}_right.mp4", 0, 12),
                        {"round": 0, "pair": k})
    return store


def check_clips(c: Client, prefix: str) -> None:
    q = c.next("alice")["query"]
    assert q is not None
    for side in ("left", "right"):
        assert q[side]["error"] is None, q[side]
        assert q[side]["url"] == f"/files/{prefix}{RUN}/queries/r000_000_{side}.mp4"
        assert c.get(q[side]["url"])[0] == 200
    assert q[side]["n_frames"] == 12


def test_repo_root_finds_the_trainers_database(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    trainer_queue(repo / "videos")
    # An empty ROOT/labels.sqlite left by an earlier serve does not hide it.
    LabelStore(repo / "labels.sqlite")
    with ReviewServer(repo, port=0) as srv:
        assert srv.app.db_path == repo / "videos" / "labels.sqlite"
        check_clips(Client(srv), "videos/")


def test_db_pointing_at_the_trainers_database_serves_its_clips(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    trainer_queue(repo / "videos")
    with ReviewServer(repo, db=repo / "videos" / "labels.sqlite", port=0) as srv:
        check_clips(Client(srv), "videos/")
    with ReviewServer(repo / "videos", db=repo / "videos" / "labels.sqlite", port=0) as srv:
        check_clips(Client(srv), "")


def test_clips_resolve_in_the_run_folder(tmp_path: Path) -> None:
    """A database kept elsewhere: clips are found beside the run's rollouts."""
    repo = tmp_path / "repo"
    elsewhere = tmp_path / "dbs"
    trainer_queue(repo / "videos")
    add_rollout(repo / "videos" / RUN, 0, -1.0, 0.5, video=False)
    elsewhere.mkdir()
    (repo / "videos" / "labels.sqlite").rename(elsewhere / "labels.sqlite")
    with ReviewServer(repo, db=elsewhere / "labels.sqlite", port=0) as srv:
        check_clips(Client(srv), "videos/")


def test_empty_queue_says_which_folder_to_serve(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    trainer_queue(repo / "videos")
    trainer_queue(repo / "videos_old", n=1)
    with ReviewServer(repo, port=0) as srv:
        assert srv.app.db_path == repo / "labels.sqlite"  # two candidates: no guessing
        c = Client(srv)
        res = c.next("alice")
        assert res["query"] is None
        for db in (repo / "videos" / "labels.sqlite", repo / "videos_old" / "labels.sqlite"):
            assert str(db) in res["hint"]
        assert "--db" in res["hint"] and "rewardlearn-review" in res["hint"]
        assert c.json("/api/info")["hint"] == res["hint"]
    # Serving one run's folder: the trainer's database is one level up.
    with ReviewServer(repo / "videos" / RUN, port=0) as srv:
        hint = Client(srv).next("alice")["hint"]
        assert str(repo / "videos" / "labels.sqlite") in hint
        assert f"rewardlearn-review {repo / 'videos'}" in hint
    # No other queue, or this one has work: no hint.
    with ReviewServer(repo / "videos", port=0) as srv:
        c = Client(srv)
        assert c.json("/api/info")["hint"] is None
        assert "hint" not in c.next("alice")


def test_label_page_posts_for_a_lease_and_shows_the_hint(client: Client) -> None:
    js = client.get("/static/label.js")[2].decode()
    assert 'api("/api/queue/next", { annotator: name })' in js
    assert "queue/next?annotator" not in js and "data.hint" in js
    assert b'id="queue-hint"' in client.get("/label")[2]


def test_answered_label_survives_a_failing_progress_count(client: Client,
                                                         server: ReviewServer,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a stored label gets a 2xx; a stored one is never reported as failed."""
    (qid,) = add_queries(server, 1)
    from rewardlearn.review import StoreUnavailableError

    def broken() -> Any:
        raise StoreUnavailableError(server.app.db_path, "gone")

    monkeypatch.setattr(server.app, "progress", broken)
    status, res = client.post("/api/labels", {"query_id": qid, "label": "left",
                                              "annotator": "a"})
    assert status == 201 and res["progress"] is None
    assert sqlite3.connect(server.app.db_path).execute(
        "SELECT COUNT(*) FROM answers").fetchone()[0] == 1
