"""HTTP server of the rollout review pages and their JSON API (Starlette served by uvicorn).

Pages: ``/`` (browse runs, rollouts and the player with reward curves) and
``/label`` (preference queue). Files: ``/files/<path>`` serves media under the
root (mp4 with HTTP Range requests, so browsers can seek), nothing else. API:

=======  ==================================  ===========================================
method   path                                what
=======  ==================================  ===========================================
GET      /api/info                           root, database, label names
GET      /api/runs                           runs with rollout counts, mean returns,
                                             success rate, return correlation
GET      /api/runs/<run>/rollouts            rollout summaries; ``sort`` (episode,
                                             disagreement, env_return, learned_return,
                                             length, success, mtime), ``order``
                                             (asc/desc), ``success`` (true/false),
                                             ``min_disagreement`` (on its magnitude)
GET      /api/rollouts/<run>/<rollout>       the full sidecar + ``video_url``
POST     /api/queue/next                     ``{annotator, run?}``: lease the next query
                                             (one lease per annotator: asking again
                                             returns the same one); ``hint`` when empty
POST     /api/queue/release                  ``{query_id, annotator}``: give a lease back
GET      /api/queue/stats                    pending / answered / leased, per run, label,
                                             annotator
POST     /api/labels                         ``{query_id, label, annotator}`` -> 201
GET      /api/labels?after=SEQ               answers after a sequence number (``run``,
                                             ``limit`` optional)
GET      /api/labels/export?fmt=csv|json     every answer as a download
=======  ==================================  ===========================================

Errors are JSON ``{"error": ...}`` with 400 (malformed: bad JSON, JSON nested
deeper than :data:`MAX_JSON_DEPTH`, integers outside SQLite's range), 403
(outside the root, not a media file, foreign ``Host`` or ``Origin``), 404
(unknown), 405, 409 (already answered, or leased to another annotator), 413
(body over :data:`MAX_BODY`), 415 (POST without ``application/json``: with the
``Origin`` check, what keeps other web sites from posting), 416, and 503 when
the label database is missing, read-only or locked (the message names the file
and the fix; a label that could not be stored is never answered with 2xx).

When bound to a loopback address, requests whose ``Host`` is not a literal
loopback address (127.0.0.0/8, ``[::1]``, ``localhost``) or the name the server
was bound to are refused (DNS rebinding). Every POST whose ``Origin`` differs
from its ``Host`` is refused (:class:`ReviewASGI`). Connections that stall for
:data:`REQUEST_TIMEOUT_S` while sending a request or reading an answer are closed
(:class:`ReviewProtocol`).

Endpoints run in Starlette's thread pool (the store opens a connection per call);
:class:`ReviewServer` runs uvicorn (h11) in a background thread or the foreground.

Clip paths of queries are looked up relative to the label database's folder
(where ``teacher=human`` writes them), then the root, then the folder of a run
with the query's run name. When the database in use has no pending queries but
another one under (or just above) the root does, ``/api/info`` and an empty
``/api/queue/next`` carry a ``hint`` saying which folder to serve or which
``--db`` to pass.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import h11
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from rewardlearn.review.catalog import (
    Catalog,
    Mp4Timing,
    OutsideRootError,
    Run,
    find_label_dbs,
    probe_mp4,
    query_counts,
    resolve_inside,
)
from rewardlearn.review.requests import (
    MAX_JSON_DEPTH,
    HTTPError,
    finite,
    host_allowed,
    is_loopback,
    parse_annotator,
    parse_host,
    parse_int,
    parse_query_id,
    parse_range,
    store_status,
    too_deep,
)
from rewardlearn.review.store import (
    LABELS,
    SQLITE_MAX_INT,
    ClipRef,
    LabelStore,
    LabelStoreError,
    Query,
    StoreUnavailableError,
)

log = logging.getLogger("rewardlearn.review")

DEFAULT_DB_NAME = "labels.sqlite"
DEFAULT_PORT = 8765
MAX_BODY = 64 * 1024
REQUEST_TIMEOUT_S = 30.0
HINT_TTL_S = 5.0
STATIC_DIR = Path(__file__).resolve().with_name("static")
MEDIA_TYPES = {".mp4": "video/mp4", ".webm": "video/webm",
               ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".gif": "image/gif"}
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml",
                ".png": "image/png", ".ico": "image/x-icon"}
PAGES = {"/": "browse.html", "/browse": "browse.html", "/label": "label.html"}
SORT_KEYS = ("episode", "disagreement", "env_return", "learned_return", "length", "success",
             "mtime")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "media-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
           "Content-Security-Policy": CSP}


def default_db_path(root: str | Path) -> Path:
    """Where the label database lives unless ``--db`` says otherwise: ``<root>/labels.sqlite``."""
    return Path(root).resolve() / DEFAULT_DB_NAME


def choose_db(root: Path) -> Path:
    """The label database to use when ``--db`` is not given.

    ``<root>/labels.sqlite`` when it holds queries; otherwise the one trainer
    database with queries under the root (serving a repo root finds
    ``videos/labels.sqlite``, where ``teacher=human`` writes); otherwise
    ``<root>/labels.sqlite`` (and the page shows a hint when several exist).
    """
    default = root / DEFAULT_DB_NAME
    counts = query_counts(default)
    if counts is not None and counts[0] > 0:
        return default
    found = [p for p in find_label_dbs(root) if p != default
             and (c := query_counts(p)) is not None and c[0] > 0]
    if len(found) == 1:
        log.info("using the label database found under the root: %s", found[0])
        return found[0]
    return default


class ReviewApp:
    """Everything a request needs: the root, its runs and the label store."""

    def __init__(self, root: str | Path, db: str | Path | None = None,
                 lease_s: float = 120.0) -> None:
        if isinstance(lease_s, bool) or not isinstance(lease_s, (int, float)) \
                or not math.isfinite(lease_s) or lease_s <= 0:
            raise ValueError(f"lease must be a finite number of seconds > 0, got {lease_s!r}")
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise NotADirectoryError(f"review root is not a directory: {root}")
        self.catalog = Catalog(self.root)
        self.db_path = Path(db).absolute() if db is not None else choose_db(self.root)
        self.store = LabelStore(self.db_path, lazy=True)  # made at the first query
        self.lease_s = float(lease_s)
        self._timing: dict[Path, tuple[tuple[int, int], Mp4Timing | None]] = {}
        self._lock = threading.Lock()
        self._hint: tuple[float, Path, str | None] | None = None
        self._logged: dict[str, float] = {}

    def media_path(self, path: Path) -> Path:
        """``path`` resolved, if it is a media file under the root; else HTTPError 403/404."""
        try:
            real = resolve_inside(self.root, path)
        except OutsideRootError:
            raise HTTPError(403, "outside the review root") from None
        except OSError:
            raise HTTPError(404, "not found") from None
        if not real.is_file():
            raise HTTPError(404, "not found")
        if real.suffix.lower() not in MEDIA_TYPES:
            raise HTTPError(403, "only media files are served")
        return real

    def resolve_file(self, rel: str) -> Path:
        """The media file at ``rel`` (already URL-decoded) under the root.

        403 for ``..``/absolute paths, paths (or symlinks) resolving outside the
        root and non-media files; 404 when nothing is there.
        """
        if "\x00" in rel or "\\" in rel:
            raise HTTPError(403, "forbidden path")
        parts = rel.split("/")
        if rel.startswith("/") or any(p in ("..", ".") for p in parts) or \
                (parts and parts[0].endswith(":")):
            raise HTTPError(403, "forbidden path")
        if not rel or any(p == "" for p in parts):
            raise HTTPError(404, "not found")
        return self.media_path(self.root.joinpath(*parts))

    def run(self, run_id: str) -> Run:
        """A discovered run, or 404."""
        run = self.catalog.scan().get(run_id)
        if run is None:
            raise HTTPError(404, f"unknown run {run_id!r}")
        return run

    def timing(self, path: Path) -> Mp4Timing | None:
        """fps and frame count of an mp4 (cached while the file is unchanged)."""
        try:
            st = path.stat()
        except OSError:
            return None
        key = (st.st_mtime_ns, st.st_size)
        with self._lock:
            hit = self._timing.get(path)
        if hit is not None and hit[0] == key:
            return hit[1]
        timing = probe_mp4(path)
        with self._lock:
            self._timing[path] = (key, timing)
        return timing

    def clip_bases(self, run: str | None = None) -> list[Path]:
        """Folders a clip path may be relative to, in order: the database's folder
        (``teacher=human`` writes clips there), the root, and the parent of any
        run folder named like the query's run."""
        bases = [self.db_path.parent.resolve(), self.root]
        if run:
            bases += [r.path.parent for r in self.catalog.scan().values() if r.path.name == run]
        out: list[Path] = []
        for b in bases:
            if b not in out:
                out.append(b)
        return out

    def clip_json(self, clip: ClipRef, meta: dict[str, Any],
                  run: str | None = None) -> dict[str, Any]:
        """A clip reference with its URL and the time range to loop, for the label page.

        The path is looked up under :meth:`clip_bases`; a path that starts with
        the root's own folder name (``videos/...`` when serving ``videos/``)
        also works. The file must lie under the root.
        """
        out: dict[str, Any] = {"video": clip.video, "start": clip.start, "end": clip.end,
                               "url": None, "fps": None, "n_frames": None,
                               "t_start": None, "t_end": None, "error": None}
        rel = clip.video.replace("\\", "/")
        bases = self.clip_bases(run)
        candidates = [b.joinpath(*rel.split("/")) for b in bases]
        first, _, rest = rel.partition("/")
        if rest and first == self.root.name:
            candidates.append(self.root.joinpath(*rest.split("/")))
        path: Path | None = None
        refused: str | None = None
        for cand in candidates:
            try:
                path = self.media_path(cand)
                break
            except HTTPError as e:
                if e.status != 404 and refused is None:
                    refused = f"{clip.video}: {cand} is {e.message}"
        if path is None:
            looked = ", ".join(str(b) for b in bases)
            out["error"] = refused or (
                f"{clip.video}: not found (looked under {looked}); serve the folder that "
                f"holds the clips and the label database, or pass --db")
            return out
        out["url"] = "/files/" + "/".join(_quote(p) for p in
                                          path.relative_to(self.root).parts)
        timing = self.timing(path)
        fps = meta.get("fps")
        if not (isinstance(fps, (int, float)) and not isinstance(fps, bool) and fps > 0
                and math.isfinite(fps)):
            fps = timing.fps if timing else None
        if fps:
            out["fps"] = float(fps)
            out["t_start"] = clip.start / fps
            end = min(clip.end, timing.n_frames) if timing else clip.end
            out["t_end"] = max(end, clip.start + 1) / fps
        if timing:
            out["n_frames"] = timing.n_frames
        return out

    def query_json(self, q: Query) -> dict[str, Any]:
        """A query as the label page needs it."""
        return {"id": q.id, "run": q.run, "meta": q.meta, "created_at": q.created_at,
                "lease_annotator": q.lease_annotator, "lease_expires": q.lease_expires,
                "left": self.clip_json(q.left, q.meta, q.run),
                "right": self.clip_json(q.right, q.meta, q.run)}

    def progress(self) -> dict[str, Any]:
        """Queue counts for the label page's progress line."""
        s = self.store.stats()
        return {k: s[k] for k in ("queries", "answered", "pending", "leased")}

    def hint(self) -> str | None:
        """Which folder to serve or ``--db`` to pass, when this database has no pending
        queries but another label database under (or just above) the root has."""
        now = time.monotonic()
        with self._lock:
            cached = self._hint
        if cached is not None and now - cached[0] < HINT_TTL_S and cached[1] == self.db_path:
            return cached[2]
        text = self._compute_hint()
        with self._lock:
            self._hint = (now, self.db_path, text)
        return text

    def _compute_hint(self) -> str | None:
        own = query_counts(self.db_path)
        if own is not None and own[1] > 0:
            return None
        mine = self.db_path.resolve()
        cands = find_label_dbs(self.root)
        cands += [a / DEFAULT_DB_NAME for a in list(self.root.parents)[:2]]
        others: list[tuple[Path, int]] = []
        for p in cands:
            counts = query_counts(p)
            if counts is not None and counts[1] > 0 and p.resolve() != mine \
                    and all(p != o for o, _ in others):
                others.append((p, counts[1]))
        if not others:
            return None
        listed = "; ".join(f"{p} ({n} pending)" for p, n in others[:5])
        best = others[0][0]
        fix = f"serve its folder (rewardlearn-review {best.parent})"
        if best.parent.resolve().is_relative_to(self.root):
            fix += f" or restart with --db {best}"
        return (f"No pending queries in the label database in use ({self.db_path}), but "
                f"other label databases have some: {listed}. To label them, {fix}.")

    def note_store_error(self, err: StoreUnavailableError) -> None:
        """Log a database problem (each distinct message at most once a minute)."""
        now = time.monotonic()
        with self._lock:
            last = self._logged.get(err.message)
            if last is not None and now - last < 60:
                return
            self._logged[err.message] = now
        log.error("%s", err.message)


def _quote(part: str) -> str:
    return quote(part, safe="")


def _json(obj: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON answer with :data:`HEADERS`; NaN/inf become null (browsers' JSON has no NaN)."""
    return JSONResponse(finite(obj), status, {**HEADERS, **(headers or {})})


async def _body_json(request: Request) -> dict[str, Any]:
    """The JSON object a POST carries: 413 past :data:`MAX_BODY` (by ``Content-Length``
    before reading anything, else while reading), 415 unless ``application/json``, 400
    when not UTF-8 JSON, nested too deep or not an object."""
    size = request.headers.get("content-length", "")  # h11 lets digits only through
    if len(size) > 9 or int(size or 0) > MAX_BODY:
        raise HTTPError(413, f"body larger than {MAX_BODY} bytes")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise HTTPError(415, "Content-Type must be application/json")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise HTTPError(413, f"body larger than {MAX_BODY} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPError(400, "body is not valid UTF-8 JSON") from None
    if too_deep(text):
        raise HTTPError(400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise HTTPError(400, "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise HTTPError(400, "body must be a JSON object")
    return data


class ReviewASGI:
    """The ASGI application over a :class:`ReviewApp`: the ``Host`` and ``Origin`` checks,
    then Starlette's routes; every error is answered as JSON.

    Not Starlette's ``TrustedHostMiddleware``: that matches names against a list (no
    127.0.0.0/8, any port text after the name) and refuses with 400. Sync endpoints run in
    Starlette's thread pool (files, SQLite); POST ones read their body on the event loop.
    """

    def __init__(self, app: ReviewApp, bound_host: str, loopback_only: bool) -> None:
        self.app = app
        self.bound_host = bound_host
        self.loopback_only = loopback_only
        routes = [*(Route(path, self.static) for path in PAGES),
                  Route("/static/{name:path}", self.static),
                  Route("/files/{rel:path}", self.file),
                  Route("/api/info", self.info),
                  Route("/api/runs", self.runs),
                  Route("/api/runs/{run:path}/rollouts", self.rollouts),
                  Route("/api/rollouts/{run:path}/{rollout}", self.rollout),
                  Route("/api/queue/next", self.post_next, methods=["POST"]),
                  Route("/api/queue/release", self.post_release, methods=["POST"]),
                  Route("/api/queue/stats", self.stats),
                  Route("/api/labels", self.post_label, methods=["POST"]),
                  Route("/api/labels", self.labels),
                  Route("/api/labels/export", self.export)]
        errors = (HTTPError, HTTPException, LabelStoreError, ClientDisconnect, Exception)
        self.router = Starlette(routes=routes, exception_handlers={e: self.error for e in errors})
        self.router.router.redirect_slashes = False  # 404 as before, not a redirect built from Host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """403 for a foreign ``Host`` (DNS rebinding) or a cross-origin POST; else route."""
        headers = Headers(scope=scope)
        try:
            self.check_host(headers.get("host"))
            if scope["method"] == "POST":
                self.check_origin(headers)
        except HTTPError as e:
            return await _json({"error": e.message}, e.status, e.headers)(scope, receive, send)
        await self.router(scope, receive, send)

    def check_host(self, host: str | None) -> None:
        """On loopback: ``Host`` must be a loopback address or the bound name (or absent)."""
        if self.loopback_only and host is not None and not host_allowed(host, self.bound_host):
            raise HTTPError(403, "host not allowed (the review server answers loopback "
                                 "addresses and the host it was bound to only)",
                            {"Connection": "close"})

    def check_origin(self, headers: Headers) -> None:
        """Refuse a POST from another origin (browsers send ``Origin`` with every POST)."""
        if headers.get("sec-fetch-site", "").lower() == "cross-site":
            raise HTTPError(403, "cross-site request refused")
        origin = headers.get("origin")
        if origin is None:
            return
        try:
            o = urlsplit(origin.strip())
            oport = o.port
        except ValueError:
            raise HTTPError(403, "malformed Origin") from None
        if o.scheme not in ("http", "https") or not o.hostname:
            raise HTTPError(403, f"cross-origin request refused (Origin {origin!r})")
        oport = oport or (443 if o.scheme == "https" else 80)
        host = headers.get("host")
        if host is None:
            if self.loopback_only and not is_loopback(o.hostname) \
                    and o.hostname != self.bound_host:
                raise HTTPError(403, f"cross-origin request refused (Origin {origin!r})")
            return
        parsed = parse_host(host)
        if parsed is None or parsed[0] != o.hostname.lower() or (parsed[1] or 80) != oport:
            raise HTTPError(403, f"cross-origin request refused (Origin {origin!r} is not "
                                 f"this server, {host!r})")

    def error(self, request: Request, exc: Exception) -> Response:
        """The JSON answer to an exception an endpoint (or the router) raised."""
        if isinstance(exc, HTTPError):
            return _json({"error": exc.message}, exc.status, exc.headers)
        if isinstance(exc, HTTPException):  # router: no such path or method
            allow = (exc.headers or {}).get("Allow")
            message = f"{request.method} {request.url.path}: use {allow}" if allow else "not found"
            if allow == "POST":  # the queue's POSTs change state (GET /api/queue/next once did)
                message += " with a JSON body (Content-Type: application/json)"
            return _json({"error": message}, exc.status_code, exc.headers)
        if isinstance(exc, StoreUnavailableError):
            self.app.note_store_error(exc)
            return _json({"error": exc.message, "db": str(exc.path)}, 503)
        if isinstance(exc, LabelStoreError):
            return _json({"error": str(exc)}, store_status(exc))
        if isinstance(exc, ClientDisconnect):  # stalled or gone client: nobody reads this
            return Response(status_code=400)
        # Starlette re-raises it afterwards, and uvicorn logs it and closes the connection.
        return _json({"error": "internal server error"}, 500, {"Connection": "close"})

    def static(self, request: Request) -> Response:
        """A page (``/``, ``/label``) or an asset under ``/static/``."""
        name = str(request.path_params.get("name", PAGES.get(request.url.path, "")))
        path = STATIC_DIR / name
        if "/" in name or "\\" in name or name.startswith(".") or not path.is_file() \
                or path.suffix not in STATIC_TYPES:
            raise HTTPError(404, "not found")
        return FileResponse(path, media_type=STATIC_TYPES[path.suffix], headers=HEADERS)

    def file(self, request: Request) -> Response:
        """A media file under the root, honouring a single-range ``Range`` header."""
        path = self.app.resolve_file(request.path_params["rel"])
        st = path.stat()
        rng = request.headers.get("range")
        try:
            byte_range = parse_range(rng, st.st_size) if rng else None
        except HTTPError as e:
            raise HTTPError(416, e.message, {"Content-Range": f"bytes */{st.st_size}"}) from None
        # FileResponse reads Range from the scope: leave it the one range parse_range took
        # (it answers several as multipart, malformed ones 400: players want the whole file).
        headers = [(k, v) for k, v in request.scope["headers"] if k != b"range"]
        if byte_range is not None:
            headers.append((b"range", "bytes={}-{}".format(*byte_range).encode()))
        request.scope["headers"] = headers
        return FileResponse(path, media_type=MEDIA_TYPES[path.suffix.lower()], stat_result=st,
                            headers={**HEADERS, "Cache-Control": "no-cache"})

    def info(self, request: Request) -> Response:
        app = self.app
        return _json({"root": str(app.root), "db": str(app.db_path), "labels": list(LABELS),
                      "runs": len(app.catalog.scan()), "hint": app.hint()})

    def runs(self, request: Request) -> Response:
        runs = [self.app.catalog.run_summary(r) for r in self.app.catalog.scan().values()]
        runs.sort(key=lambda r: (r["updated"] or 0, r["id"]), reverse=True)
        return _json({"runs": runs})

    def rollouts(self, request: Request) -> Response:
        run = self.app.run(request.path_params["run"])
        return _json({"run": run.id, **self._rollouts(run, dict(request.query_params))})

    def rollout(self, request: Request) -> Response:
        run = self.app.run(request.path_params["run"])
        return _json(self._rollout(run, request.path_params["rollout"]))

    def stats(self, request: Request) -> Response:
        return _json(self.app.store.stats())

    def labels(self, request: Request) -> Response:
        q = request.query_params
        after = parse_int(q.get("after", "0"), "after", 0, SQLITE_MAX_INT)
        limit = parse_int(q.get("limit", "1000"), "limit", 1, 10_000)
        answers = self.app.store.answers_after(after, q.get("run") or None, limit=limit)
        return _json({"answers": [a.to_dict() for a in answers],
                      "last_seq": answers[-1].seq if answers else after})

    def export(self, request: Request) -> Response:
        fmt = request.query_params.get("fmt", "json")
        if fmt not in ("csv", "json"):
            raise HTTPError(400, "fmt must be csv or json")
        text = self.app.store.export_text("csv" if fmt == "csv" else "json",
                                          request.query_params.get("run") or None)
        return Response(text, media_type="text/csv" if fmt == "csv" else "application/json",
                        headers={**HEADERS, "Content-Disposition":
                                 f'attachment; filename="labels.{fmt}"'})

    async def post_label(self, request: Request) -> Response:
        return _json(await run_in_threadpool(self._post_label, await _body_json(request)), 201)

    async def post_next(self, request: Request) -> Response:
        return _json(await run_in_threadpool(self._post_next, await _body_json(request)))

    async def post_release(self, request: Request) -> Response:
        data = await _body_json(request)
        qid, who = parse_query_id(data.get("query_id")), parse_annotator(data.get("annotator"))
        return _json({"released": await run_in_threadpool(self.app.store.release, qid, who)})

    def _rollouts(self, run: Run, q: dict[str, str]) -> dict[str, Any]:
        rows = self.app.catalog.rollouts(run)
        sort = q.get("sort", "episode")
        if sort not in SORT_KEYS:
            raise HTTPError(400, f"sort must be one of {', '.join(SORT_KEYS)}")
        order = q.get("order", "desc" if sort == "disagreement" else "asc")
        if order not in ("asc", "desc"):
            raise HTTPError(400, "order must be asc or desc")
        success = q.get("success", "")
        if success not in ("", "any", "true", "false"):
            raise HTTPError(400, "success must be true, false or any")
        if success in ("true", "false"):
            rows = [r for r in rows if r.get("success") is (success == "true")]
        if q.get("min_disagreement"):
            try:
                lo = float(q["min_disagreement"])
            except ValueError:
                raise HTTPError(400, "min_disagreement must be a number") from None
            if not math.isfinite(lo):
                raise HTTPError(400, "min_disagreement must be finite")
            rows = [r for r in rows if r["disagreement"] is not None
                    and abs(r["disagreement"]) >= lo]

        def key(r: dict[str, Any]) -> tuple[bool, float, str]:
            v = r.get(sort)
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                return (order == "asc", 0.0, r["id"])
            x = abs(float(v)) if sort == "disagreement" else float(v)
            return (order != "asc", x, r["id"])

        rows.sort(key=key, reverse=order == "desc")
        return {"sort": sort, "order": order, "rollouts": finite(rows)}

    def _rollout(self, run: Run, rollout: str) -> dict[str, Any]:
        path = next((p for p in run.sidecars if p.stem == rollout), None)
        data = self.app.catalog.sidecar(path) if path is not None else None
        if data is None:
            raise HTTPError(404, f"unknown rollout {rollout!r} in run {run.id!r}")
        rows = {r["id"]: r for r in self.app.catalog.rollouts(run)}
        out = dict(data)
        out["id"] = rollout
        out["run_id"] = run.id
        out["video_url"] = self.app.catalog.video_url(run, data)
        out["disagreement"] = rows.get(rollout, {}).get("disagreement")
        if not out.get("fps") and out["video_url"]:
            try:
                video = self.app.media_path(run.path / str(data.get("video")))
            except HTTPError:
                video = None
            timing = self.app.timing(video) if video is not None else None
            out["fps"] = timing.fps if timing else None
        return dict(finite(out))

    def _post_label(self, data: dict[str, Any]) -> dict[str, Any]:
        """Store an answer; 201 only once it is stored."""
        missing = [k for k in ("query_id", "label", "annotator") if k not in data]
        if missing:
            raise HTTPError(400, f"missing field(s): {', '.join(missing)}")
        qid, label = parse_query_id(data["query_id"]), data["label"]
        if not isinstance(label, str) or label not in LABELS:
            raise HTTPError(400, f"label must be one of {', '.join(LABELS)}")
        annotator = parse_annotator(data["annotator"])
        seq = self.app.store.answer(qid, label, annotator)
        try:
            progress = self.app.progress()
        except StoreUnavailableError:
            progress = None  # the label is stored; only the counts failed
        return {"seq": seq, "query_id": qid, "label": label, "annotator": annotator,
                "progress": progress}

    def _post_next(self, data: dict[str, Any]) -> dict[str, Any]:
        """Lease the next query to ``annotator`` (the one it holds, if any)."""
        annotator = parse_annotator(data.get("annotator"))
        run = data.get("run")
        if run is not None and not isinstance(run, str):
            raise HTTPError(400, "run must be a string")
        app = self.app
        claimed = app.store.claim(annotator, app.lease_s, run=run or None)
        out: dict[str, Any] = {"query": app.query_json(claimed) if claimed else None,
                               "progress": app.progress()}
        if claimed is None:
            out["hint"] = app.hint()
        return out


class ReviewProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections that stall for :attr:`timeout_s` while
    sending a request or while not reading an answer (uvicorn itself times out only idle
    keep-alive connections, so a slow client could hold one open for ever)."""

    timeout_s: float = REQUEST_TIMEOUT_S
    _stall: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def pause_writing(self) -> None:
        super().pause_writing()
        self._watch()

    def resume_writing(self) -> None:
        super().resume_writing()
        self._watch()

    def _watch(self) -> None:
        """(Re)start the timer while a request is incomplete or the client reads nothing;
        it closes the connection unanswered (an endpoint waiting for the body sees a
        disconnect)."""
        if self._stall is not None:
            self._stall.cancel()
        waiting = self.conn.their_state in (h11.IDLE, h11.SEND_BODY) or self.flow.write_paused
        self._stall = self.loop.call_later(self.timeout_s, self.transport.abort) \
            if waiting and not self.transport.is_closing() else None


class ReviewServer:
    """The review server, run in a background thread (``start``) or in the foreground.

    ``port=0`` picks a free port; ``url`` says which. Usable as a context manager.
    """

    def __init__(self, root: str | Path, db: str | Path | None = None,
                 host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 lease_s: float = 120.0, request_timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.app = ReviewApp(root, db, lease_s)
        host = host.strip("[]")
        # Bound here, so a taken port fails now and ``url`` is known before serving.
        self.socket = socket.create_server(
            (host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._address: tuple[str, int] = self.socket.getsockname()[:2]
        loopback_only = is_loopback(host) or is_loopback(str(self._address[0]))

        class Protocol(ReviewProtocol):
            timeout_s = request_timeout_s

        verbose = log.isEnabledFor(logging.DEBUG)  # -v: uvicorn logs every request
        config = uvicorn.Config(
            ReviewASGI(self.app, host.lower(), loopback_only), http=Protocol,
            ws="none", lifespan="off", loop="asyncio", proxy_headers=False,
            server_header=False, log_config=None, timeout_graceful_shutdown=2,
            log_level=logging.INFO if verbose else logging.WARNING)
        self.uvicorn = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def store(self) -> LabelStore:
        return self.app.store

    @property
    def port(self) -> int:
        return int(self._address[1])

    @property
    def url(self) -> str:
        host = str(self._address[0])
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def start(self) -> ReviewServer:
        """Serve in a daemon thread; returns self once uvicorn accepts connections."""
        self._thread = threading.Thread(target=self.serve_forever, name="rewardlearn-review",
                                        daemon=True)
        self._thread.start()
        while not self.uvicorn.started:
            if not self._thread.is_alive():
                raise RuntimeError("the review server stopped while starting (see the log)")
            time.sleep(0.01)
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until :meth:`close` (or Ctrl-C / SIGTERM in the main thread)."""
        self.uvicorn.run(sockets=[self.socket])

    def close(self) -> None:
        """Stop serving and release the socket."""
        self.uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.socket.close()

    def __enter__(self) -> ReviewServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
