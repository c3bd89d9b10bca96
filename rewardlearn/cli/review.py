"""``rewardlearn-review ROOT``: serve the rollout review and labelling pages."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from pathlib import Path

from rewardlearn.review.server import DEFAULT_PORT, ReviewServer, is_loopback
from rewardlearn.review.store import LabelStoreError


def port_number(text: str) -> int:
    """``--port``: an integer from 0 (any free port) to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0..65535; 0: any free)")
    return port


def lease_seconds(text: str) -> float:
    """``--lease``: a finite number of seconds > 0."""
    try:
        lease = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(lease) or lease <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text}")
    return lease


def db_problem(db: Path) -> str | None:
    """Why ``--db`` cannot be a label database (a folder, an unwritable place), or None."""
    if db.is_dir():
        return f"--db {db} is a directory; give a file path such as {db / 'labels.sqlite'}"
    if db.exists():
        if not db.is_file():
            return f"--db {db} is not a regular file"
        if not os.access(db, os.R_OK | os.W_OK):
            return f"--db {db} is not writable (labels could not be stored)"
    parent = db.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"--db {db}: {parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"--db {db}: folder {parent} is not writable (SQLite writes the db and its " \
               "-wal/-shm files there)"
    return None


def build_parser() -> argparse.ArgumentParser:
    """Command-line options (also used by the ``rewardlearn-review`` console script)."""
    p = argparse.ArgumentParser(
        prog="rewardlearn-review",
        description="Serve a local web page to watch recorded rollouts with their reward "
                    "curves and to label preference queries.")
    p.add_argument("root", nargs="?", default=".",
                   help="folder to serve: a videos/ dir, a runs/ dir or a repo root "
                        "(runs are found as sub-folders holding episode_*.json sidecars)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=port_number, default=DEFAULT_PORT,
                   help="port (0: any free port)")
    p.add_argument("--db", type=Path, default=None,
                   help="label database (SQLite); default ROOT/labels.sqlite, or the one "
                        "trainer database (teacher=human: VIDEO_DIR/labels.sqlite) found "
                        "under ROOT")
    p.add_argument("--lease", type=lease_seconds, default=120.0,
                   help="seconds a query stays reserved for the annotator it was shown to")
    p.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return p


def main(argv: list[str] | None = None) -> int:
    """Start the server and serve until Ctrl-C."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    root = Path(args.root)
    if not root.is_dir():
        print(f"error: {root} is not a directory", file=sys.stderr)
        return 2
    if args.db is not None and (problem := db_problem(args.db)):
        parser.error(problem)
    try:
        server = ReviewServer(root, args.db, args.host, args.port, args.lease)
    except LabelStoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (OSError, OverflowError) as e:
        print(f"error: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 2
    runs = server.app.catalog.scan()
    db = server.app.db_path
    state = "" if server.app.store.exists else ", created at the first label"
    print(f"rollout review of {server.app.root} ({len(runs)} runs; labels in {db}{state})")
    if not runs:
        where = " (train.py writes them to runs/<run>/videos/; serve runs/ or the repo root)"
        print(f"no episode_*.json sidecars found yet; new ones appear live{where}")
    hint = server.app.hint()
    if hint:
        print(f"hint: {hint}")
    if not is_loopback(args.host):
        print(f"warning: listening on {args.host}: anyone who can reach this address can "
              "watch the videos and post labels")
    print(f"open {server.url}/  (labelling: {server.url}/label)  -- Ctrl-C to stop",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


def cli() -> None:
    """Console entry point (``rewardlearn-review``)."""
    sys.exit(main())


if __name__ == "__main__":
    cli()
