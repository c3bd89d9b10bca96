"""Review server: every endpoint, run discovery, Range requests, traversal and bad input."""

from __future__ import annotations

import http.client
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest

from rewardlearn.recording import RolloutRecord, write_sidecar, write_video
from rewardlearn.review import ClipRef, LabelStore
from rewardlearn.review.catalog import add_disagreement, probe_mp4
from rewardlearn.review.requests import parse_range
from rewardlearn.review.server import ReviewServer

RUN = "2026-01-01_00-00-00_toy_ppo_mlp_s0"
RETURNS = [(-10.0, 1.0), (-5.0, 3.0), (-20.0, 2.5), (-8.0, -1.0)]  # (env, learned) per episode


def add_rollout(folder: Path, ep: int, env_ret: float, learned_ret: float | None,
                steps: int = 6, video: bool = True, success: bool | None = None) -> None:
    """A sidecar (and a tiny mp4 of ``steps + 1`` frames at 10 fps) like evaluation writes."""
    rec = RolloutRecord(
        episode=ep, seed=100 + ep, length=steps, env_return=env_ret,
        learned_return=learned_ret, success=success, terminated=False, truncated=True,
        env_reward=[env_ret / steps] * steps,
        learned_reward=None if learned_ret is None else [learned_ret / steps] * steps,
        signals={"progress": [float("nan")] + [0.5] * (steps - 1)},
        env_info={"stage": [0.0] * steps})
    if video:
        frames = np.full((steps + 1, 16, 16, 3), 40 * ep, dtype=np.uint8)
        rec.video = write_video(folder / f"episode_{ep:03d}.mp4", frames, 10).name
        rec.fps = 10.0
    write_sidecar(folder / f"episode_{ep:03d}.json", rec,
                  {"run": folder.name, "env": "toy", "agent": "ppo", "reward": "mlp"})


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repo-like root: videos/<run>/ with 4 rollouts, runs/<run>/summary.json, clips, junk."""
    root = tmp_path_factory.mktemp("repo")
    run = root / "videos" / RUN
    for ep, (e, ell) in enumerate(RETURNS):
        add_rollout(run, ep, e, ell, success=ep % 2 == 0)
    (root / "runs" / RUN).mkdir(parents=True)
    (root / "runs" / RUN / "summary.json").write_text(json.dumps(
        {"total_timesteps": 2048, "run_dir": "/secret", "videos": ["a"]}))
    write_video(root / "videos" / "queries" / "q_left.mp4",
                np.zeros((20, 16, 16, 3), np.uint8), 10)
    write_video(root / "videos" / "queries" / "q_right.mp4",
                np.zeros((20, 16, 16, 3), np.uint8), 10)
    (root / "notes.txt").write_text("not media")
    (root / "labels.sqlite").write_bytes(b"SQLite format 3\x00")
    outside = tmp_path_factory.mktemp("outside")
    write_video(outside / "secret.mp4", np.zeros((2, 16, 16, 3), np.uint8), 10)
    (root / "videos" / "escape.mp4").symlink_to(outside / "secret.mp4")
    (root / "videos" / "inside.mp4").symlink_to(root / "videos" / "queries" / "q_left.mp4")
    return root


@pytest.fixture(scope="module")
def shared_server(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReviewServer]:
    db = tmp_path_factory.mktemp("db") / "labels.sqlite"
    with ReviewServer(tree, db=db, port=0) as srv:
        srv.app.catalog.ttl_s = 0.0
        yield srv


@pytest.fixture
def server(shared_server: ReviewServer, tmp_path: Path) -> ReviewServer:
    """The module's server with an empty label store of its own for each test."""
    shared_server.app.db_path = tmp_path / "labels.sqlite"
    shared_server.app.store = LabelStore(shared_server.app.db_path)
    return shared_server


class Client:
    """Minimal HTTP client that returns (status, headers, body) without raising."""

    def __init__(self, srv: ReviewServer) -> None:
        self.port = srv.port

    def request(self, method: str, path: str, body: bytes | str | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        con = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            con.request(method, path, body=body, headers=headers or {})
            res = con.getresponse()
            return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read()
        finally:
            con.close()

    def get(self, path: str, **kw: Any) -> tuple[int, dict[str, str], bytes]:
        return self.request("GET", path, **kw)

    def json(self, path: str, expect: int = 200) -> Any:
        status, _, body = self.get(path)
        assert status == expect, body
        return json.loads(body)

    def post(self, path: str, obj: Any = None, raw: bytes | None = None,
             ctype: str = "application/json",
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
        body = raw if raw is not None else json.dumps(obj).encode()
        status, _, data = self.request("POST", path, body,
                                       {"Content-Type": ctype, **(headers or {})})
        return status, json.loads(data) if data else None

    def next(self, annotator: str, run: str | None = None, expect: int = 200) -> Any:
        """Lease the next query (POST /api/queue/next)."""
        body: dict[str, Any] = {"annotator": annotator}
        if run is not None:
            body["run"] = run
        status, data = self.post("/api/queue/next", body)
        assert status == expect, data
        return data


@pytest.fixture
def client(server: ReviewServer) -> Client:
    return Client(server)


def run_path(run: str = f"videos/{RUN}") -> str:
    return quote(run, safe="")


# ---------------------------------------------------------------- pages and static files


def test_pages_and_static_assets(client: Client) -> None:
    for path, marker in (("/", b"Rollouts"), ("/browse", b"Rollouts"), ("/label", b"annotator")):
        status, headers, body = client.get(path)
        assert status == 200 and marker in body
        assert headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in headers["content-security-policy"]
    for name, ctype in (("browse.js", "text/javascript"), ("label.js", "text/javascript"),
                        ("common.js", "text/javascript"), ("curves.js", "text/javascript"),
                        ("review.css", "text/css")):
        status, headers, _ = client.get(f"/static/{name}")
        assert status == 200 and headers["content-type"].startswith(ctype), name
    status, headers, body = client.request("HEAD", "/static/review.css")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0
    for bad in ("/static/nope.js", "/static/../server.py", "/static/%2e%2e%2fserver.py",
                "/static/", "/nope"):
        assert client.get(bad)[0] == 404, bad


# ---------------------------------------------------------------- runs and rollouts


def test_info_and_runs(client: Client, server: ReviewServer, tree: Path) -> None:
    info = client.json("/api/info")
    assert info["root"] == str(tree.resolve()) and info["labels"] == ["left", "right", "equal",
                                                                      "skip"]
    (run,) = client.json("/api/runs")["runs"]
    assert run["id"] == f"videos/{RUN}" and run["name"] == RUN
    assert (run["env"], run["agent"], run["reward"], run["n_rollouts"]) == ("toy", "ppo", "mlp", 4)
    assert run["env_return_mean"] == pytest.approx(np.mean([e for e, _ in RETURNS]))
    assert run["success_rate"] == 0.5
    assert run["return_corr"] == pytest.approx(np.corrcoef(np.array(RETURNS).T)[0, 1])
    assert run["summary"] == {"total_timesteps": 2048}  # no paths or lists leak


def test_rollouts_disagreement_sort_and_filters(client: Client) -> None:
    data = client.json(f"/api/runs/{run_path()}/rollouts?sort=disagreement")
    rows = data["rollouts"]
    assert (data["sort"], data["order"]) == ("disagreement", "desc")
    env, learned = np.array(RETURNS).T
    z = (learned - learned.mean()) / learned.std() - (env - env.mean()) / env.std()
    by_ep = {r["episode"]: r["disagreement"] for r in rows}
    assert [by_ep[i] for i in range(4)] == pytest.approx(z.tolist())
    assert [abs(r["disagreement"]) for r in rows] == sorted(np.abs(z).tolist(), reverse=True)
    assert rows[0]["video_url"] == f"/files/videos/{RUN}/episode_{rows[0]['episode']:03d}.mp4"
    assert "env_reward" not in rows[0]  # summaries only
    assert rows[0]["signals"] == ["progress"] and rows[0]["env_info"] == ["stage"]
    asc = client.json(f"/api/runs/{run_path()}/rollouts?sort=env_return&order=asc")["rollouts"]
    assert [r["env_return"] for r in asc] == sorted(e for e, _ in RETURNS)
    eps = client.json(f"/api/runs/{run_path()}/rollouts")["rollouts"]
    assert [r["episode"] for r in eps] == [0, 1, 2, 3]
    succ = client.json(f"/api/runs/{run_path()}/rollouts?success=false")["rollouts"]
    assert [r["episode"] for r in succ] == [1, 3]
    big = client.json(f"/api/runs/{run_path()}/rollouts?min_disagreement=1.5")["rollouts"]
    assert sorted(r["episode"] for r in big) == [i for i in range(4) if abs(z[i]) >= 1.5]
    for bad in ("sort=color", "order=up", "success=maybe", "min_disagreement=abc",
                "min_disagreement=nan"):
        status, _, body = client.get(f"/api/runs/{run_path()}/rollouts?{bad}")
        assert status == 400 and "error" in json.loads(body), bad
    assert client.get(f"/api/runs/{run_path('videos/nope')}/rollouts")[0] == 404
    assert client.get("/api/runs/..%2F..%2Fetc/rollouts")[0] == 404


def test_rollout_sidecar(client: Client) -> None:
    d = client.json(f"/api/rollouts/{run_path()}/episode_002")
    assert d["episode"] == 2 and len(d["env_reward"]) == 6 and d["fps"] == 10.0
    assert d["video_url"] == f"/files/videos/{RUN}/episode_002.mp4"
    assert d["signals"]["progress"][0] is None  # NaN becomes null (browsers' JSON has no NaN)
    assert d["disagreement"] is not None and d["run_id"] == f"videos/{RUN}"
    # Unencoded slashes in the run id work too.
    assert client.json(f"/api/rollouts/videos/{RUN}/episode_000")["episode"] == 0
    for bad in ("episode_009", "..%2Fepisode_000", "episode_000.json"):
        assert client.get(f"/api/rollouts/{run_path()}/{bad}")[0] == 404, bad


def test_new_rollouts_and_runs_appear_while_serving(tmp_path: Path) -> None:
    root = tmp_path / "live"
    root.mkdir()
    with ReviewServer(root, db=tmp_path / "live.sqlite", port=0) as srv:
        srv.app.catalog.ttl_s = 0.0
        c = Client(srv)
        assert c.json("/api/runs")["runs"] == []
        add_rollout(root / "run_x", 0, -1.0, 0.5, video=False)
        (run,) = c.json("/api/runs")["runs"]
        assert run["id"] == "run_x" and run["n_rollouts"] == 1
        add_rollout(root / "run_x", 1, -2.0, 0.7, video=False)
        rows = c.json("/api/runs/run_x/rollouts")["rollouts"]
        assert [r["episode"] for r in rows] == [0, 1] and rows[0]["video_url"] is None
        add_rollout(root / "run_y", 0, -3.0, None, video=False)
        assert {r["id"] for r in c.json("/api/runs")["runs"]} == {"run_x", "run_y"}


def test_root_may_be_a_videos_dir_or_a_single_run(tree: Path, tmp_path: Path) -> None:
    with ReviewServer(tree / "videos", db=tmp_path / "a.sqlite", port=0) as srv:
        c = Client(srv)
        (run,) = c.json("/api/runs")["runs"]
        assert run["id"] == RUN
        assert c.get(f"/files/{RUN}/episode_000.mp4")[0] == 200
    with ReviewServer(tree / "videos" / RUN, db=tmp_path / "b.sqlite", port=0) as srv:
        c = Client(srv)
        (run,) = c.json("/api/runs")["runs"]
        assert run["id"] == RUN and run["path"] == ""
        rows = c.json(f"/api/runs/{RUN}/rollouts")["rollouts"]
        assert rows[0]["video_url"] == "/files/episode_000.mp4"
        assert c.get(rows[0]["video_url"])[0] == 200


# ---------------------------------------------------------------- files, ranges, traversal


def test_file_serving_with_ranges(client: Client, tree: Path) -> None:
    data = (tree / "videos" / RUN / "episode_000.mp4").read_bytes()
    url = f"/files/videos/{RUN}/episode_000.mp4"
    status, headers, body = client.get(url)
    assert status == 200 and body == data and headers["content-type"] == "video/mp4"
    assert headers["accept-ranges"] == "bytes"
    for rng, (a, b) in (("bytes=0-99", (0, 99)), ("bytes=100-", (100, len(data) - 1)),
                        ("bytes=-50", (len(data) - 50, len(data) - 1)),
                        ("bytes=10-999999", (10, len(data) - 1))):
        status, headers, body = client.get(url, headers={"Range": rng})
        assert status == 206, rng
        assert body == data[a:b + 1]
        assert headers["content-range"] == f"bytes {a}-{b}/{len(data)}"
    status, headers, _ = client.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert status == 416 and headers["content-range"] == f"bytes */{len(data)}"
    for ignored in ("bytes=0-1,5-6", "items=0-5", "bytes=abc"):
        status, _, body = client.get(url, headers={"Range": ignored})
        assert status == 200 and body == data
    status, headers, body = client.request("HEAD", url)
    assert status == 200 and body == b"" and int(headers["content-length"]) == len(data)
    assert client.get("/files/videos/inside.mp4")[0] == 200  # symlink within the root


@pytest.mark.parametrize("path,status", [
    ("/files/../../etc/passwd", 403),
    ("/files/videos/../../etc/passwd", 403),
    ("/files/%2e%2e/%2e%2e/etc/passwd", 403),
    ("/files/videos%2f..%2f..%2fetc%2fpasswd", 403),
    ("/files/%2fetc%2fpasswd", 403),
    ("/files//etc/passwd", 403),
    ("/files/videos/escape.mp4", 403),
    ("/files/notes.txt", 403),
    ("/files/runs/" + RUN + "/summary.json", 403),
    ("/files/labels.sqlite", 403),
    ("/files/videos/..%5c..%5cetc", 403),
    ("/files/videos/a%00.mp4", 403),
    ("/files/%252e%252e/%252e%252e/etc/passwd", 404),
    ("/files/videos/missing.mp4", 404),
    ("/files/videos", 404),
    ("/files/", 404),
])
def test_no_path_traversal(client: Client, path: str, status: int) -> None:
    got, _, body = client.get(path)
    assert got == status, body
    assert b"root:" not in body


def test_foreign_host_header_is_refused(client: Client, server: ReviewServer) -> None:
    assert client.get("/api/info", headers={"Host": "evil.example:80"})[0] == 403
    assert client.get("/api/info", headers={"Host": f"localhost:{server.port}"})[0] == 200
    assert client.get("/api/info", headers={"Host": f"127.0.0.1:{server.port}"})[0] == 200


# ---------------------------------------------------------------- queue and labels


def add_queries(srv: ReviewServer, n: int) -> list[int]:
    return [srv.store.add_query(RUN, ClipRef("videos/queries/q_left.mp4", 0, 20),
                                ClipRef("videos/queries/q_right.mp4", 5, 15), {"k": k})
            for k in range(n)]


def test_queue_next_leases_distinct_queries(client: Client, server: ReviewServer) -> None:
    ids = add_queries(server, 3)
    a = client.next("alice")
    b = client.next("bob")
    assert a["query"]["id"] == ids[0] and b["query"]["id"] == ids[1]
    assert client.next("alice")["query"]["id"] == ids[0]
    left, right = a["query"]["left"], a["query"]["right"]
    assert left["url"] == "/files/videos/queries/q_left.mp4" and left["error"] is None
    assert (left["fps"], left["n_frames"], left["t_start"], left["t_end"]) == (10.0, 20, 0.0, 2.0)
    assert (right["t_start"], right["t_end"]) == (0.5, 1.5)
    assert a["query"]["meta"] == {"k": 0} and a["progress"]["pending"] == 3
    assert client.next("carol")["query"]["id"] == ids[2]
    assert client.next("dave")["query"] is None
    status, res = client.post("/api/queue/release", {"query_id": ids[1], "annotator": "bob"})
    assert status == 200 and res == {"released": True}
    assert client.next("dave")["query"]["id"] == ids[1]
    assert client.next("x", run=f"{RUN}x")["query"] is None
    for bad in ({}, {"annotator": ""}, {"annotator": "  "}, {"annotator": "a" * 101},
                {"annotator": 7}, {"annotator": "a", "run": 3}):
        assert client.post("/api/queue/next", bad)[0] == 400, bad
    assert client.post("/api/queue/release", {"query_id": "1", "annotator": "bob"})[0] == 400


def test_clip_paths_resolve_against_the_root(tree: Path, tmp_path: Path) -> None:
    with ReviewServer(tree / "videos", db=tmp_path / "l.sqlite", port=0) as srv:
        srv.store.add_query(RUN, ClipRef("videos/queries/q_left.mp4", 0, 20),
                            ClipRef("queries/missing.mp4", 0, 20), {"fps": 5})
        q = Client(srv).next("a")["query"]
        assert q["left"]["url"] == "/files/queries/q_left.mp4"
        assert q["left"]["fps"] == 5.0 and q["left"]["t_end"] == 4.0  # meta fps wins
        assert q["right"]["url"] is None and "not found" in q["right"]["error"]


def test_post_label_and_read_back(client: Client, server: ReviewServer) -> None:
    ids = add_queries(server, 3)
    status, res = client.post("/api/labels", {"query_id": ids[1], "label": "left",
                                              "annotator": " alice ", "ms": 812})
    assert status == 201 and res["seq"] == 1 and res["annotator"] == "alice"
    assert res["progress"] == {"queries": 3, "answered": 1, "pending": 2, "leased": 0}
    assert client.post("/api/labels", {"query_id": ids[0], "label": "skip",
                                       "annotator": "bob"})[0] == 201
    got = client.json("/api/labels?after=0")
    assert [(a["seq"], a["query_id"], a["label"]) for a in got["answers"]] == \
        [(1, ids[1], "left"), (2, ids[0], "skip")]
    assert got["last_seq"] == 2
    assert got["answers"][0]["left"] == {"video": "videos/queries/q_left.mp4", "start": 0,
                                         "end": 20}
    assert client.json("/api/labels?after=1")["answers"][0]["seq"] == 2
    assert client.json("/api/labels?after=2") == {"answers": [], "last_seq": 2}
    assert len(client.json("/api/labels?after=0&limit=1")["answers"]) == 1
    assert client.json(f"/api/labels?run={RUN}x")["answers"] == []
    for bad in ("after=x", "after=-1", "limit=0", "limit=99999"):
        assert client.get(f"/api/labels?{bad}")[0] == 400, bad
    stats = client.json("/api/queue/stats")
    assert (stats["answered"], stats["pending"]) == (2, 1)
    assert stats["by_label"] == {"left": 1, "skip": 1}


@pytest.mark.parametrize("body,status", [
    (b"{not json", 400),
    (b"\xff\xfe", 400),
    (b"[1, 2]", 400),
    (b'"left"', 400),
    (b"", 400),
    (json.dumps({"label": "left", "annotator": "a"}).encode(), 400),
    (json.dumps({"query_id": 1, "annotator": "a"}).encode(), 400),
    (json.dumps({"query_id": 1, "label": "left"}).encode(), 400),
    (json.dumps({"query_id": 1, "label": "LEFT", "annotator": "a"}).encode(), 400),
    (json.dumps({"query_id": 1, "label": "better", "annotator": "a"}).encode(), 400),
    (json.dumps({"query_id": "1", "label": "left", "annotator": "a"}).encode(), 400),
    (json.dumps({"query_id": 1.0, "label": "left", "annotator": "a"}).encode(), 400),
    (json.dumps({"query_id": True, "label": "left", "annotator": "a"}).encode(), 400),
    (json.dumps({"query_id": 0, "label": "left", "annotator": "a"}).encode(), 400),
    (json.dumps({"query_id": 1, "label": "left", "annotator": ""}).encode(), 400),
    (json.dumps({"query_id": 1, "label": "left", "annotator": 7}).encode(), 400),
    (json.dumps({"query_id": 1, "label": "left", "annotator": "a\u0000b"}).encode(), 400),
    (json.dumps({"query_id": 999, "label": "left", "annotator": "a"}).encode(), 404),
    (json.dumps({"query_id": 2, "label": "right", "annotator": "a"}).encode(), 409),
    (b'{"query_id": 1, "label": "left", "annotator": "' + b"a" * 70_000 + b'"}', 413),
], ids=lambda v: repr(v)[:48] if isinstance(v, bytes) else str(v))
def test_malformed_label_posts_change_nothing(client: Client, server: ReviewServer,
                                              body: bytes, status: int) -> None:
    ids = add_queries(server, 2)
    server.store.answer(ids[1], "left", "first")
    before = client.json("/api/queue/stats")
    got, res = client.post("/api/labels", raw=body)
    assert got == status and "error" in res
    assert client.json("/api/queue/stats") == before
    assert [a.label for a in server.store.answers_after(0)] == ["left"]


def test_label_post_needs_json_content_type(client: Client, server: ReviewServer) -> None:
    (qid,) = add_queries(server, 1)
    body = {"query_id": qid, "label": "left", "annotator": "a"}
    assert client.post("/api/labels", body, ctype="text/plain")[0] == 415
    assert client.post("/api/labels", body, ctype="application/x-www-form-urlencoded")[0] == 415
    assert server.store.pending() == 1
    assert client.post("/api/labels", body, ctype="application/json; charset=utf-8")[0] == 201


def test_export(client: Client, server: ReviewServer) -> None:
    ids = add_queries(server, 2)
    server.store.answer(ids[0], "equal", "alice")
    status, headers, body = client.get("/api/labels/export?fmt=csv")
    assert status == 200 and headers["content-type"].startswith("text/csv")
    assert headers["content-disposition"] == 'attachment; filename="labels.csv"'
    lines = body.decode().splitlines()
    assert lines[0].startswith("seq,query_id,run,left_video") and len(lines) == 2
    assert ",equal,alice," in lines[1]
    status, headers, body = client.get("/api/labels/export?fmt=json")
    assert status == 200 and json.loads(body)[0]["label"] == "equal"
    assert client.get("/api/labels/export?fmt=xml")[0] == 400


def test_unknown_routes_and_methods(client: Client) -> None:
    assert client.get("/api/nope")[0] == 404
    assert client.post("/api/runs", {})[0] == 405
    assert client.post("/nope", {})[0] == 404
    assert client.request("PUT", "/api/labels", b"{}")[0] == 405
    assert client.request("DELETE", "/api/labels")[0] == 405


# ---------------------------------------------------------------- helpers and CLI


def test_parse_range() -> None:
    assert parse_range("bytes=0-9", 100) == (0, 9)
    assert parse_range("bytes=90-", 100) == (90, 99)
    assert parse_range("bytes=-10", 100) == (90, 99)
    assert parse_range("bytes=-500", 100) == (0, 99)
    assert parse_range("bytes=5-2", 100) is None
    assert parse_range("bytes=0-1,3-4", 100) is None
    assert parse_range("lines=0-1", 100) is None


def test_probe_mp4_and_disagreement(tree: Path) -> None:
    timing = probe_mp4(tree / "videos" / RUN / "episode_000.mp4")
    assert timing is not None
    assert (timing.fps, timing.n_frames) == (pytest.approx(10.0), 7)
    assert probe_mp4(tree / "notes.txt") is None
    rows: list[dict[str, Any]] = [{"env_return": 1.0, "learned_return": 5.0},
                                  {"env_return": 3.0, "learned_return": 1.0},
                                  {"env_return": 2.0, "learned_return": None}]
    add_disagreement(rows)
    assert rows[0]["disagreement"] == pytest.approx(2.0) and rows[2]["disagreement"] is None
    assert rows[1]["disagreement"] == pytest.approx(-2.0)
    same: list[dict[str, Any]] = [{"env_return": 1.0, "learned_return": 2.0}] * 2
    add_disagreement(same)
    assert all(r["disagreement"] == 0.0 and not math.isnan(r["disagreement"]) for r in same)


def test_module_cli_serves(tree: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rewardlearn.cli.review", str(tree), "--port", "0",
         "--db", str(tmp_path / "cli.sqlite")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        assert "1 runs" in lines[0], lines
        url = lines[1].split()[1]
        assert url.startswith("http://127.0.0.1:")
        con = http.client.HTTPConnection(url[len("http://"):].rstrip("/"), timeout=10)
        con.request("GET", "/api/info")
        assert json.loads(con.getresponse().read())["db"] == str(tmp_path / "cli.sqlite")
        con.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    bad = subprocess.run([sys.executable, "-m", "rewardlearn.cli.review", str(tmp_path / "nope")],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "not a directory" in bad.stderr
