"""``python -m rewardlearn.review ROOT``: serve the rollout review and labelling pages."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from rewardlearn.review.server import DEFAULT_PORT, ReviewServer, default_db_path


def build_parser() -> argparse.ArgumentParser:
    """Command-line options (also used by the ``rewardlearn-review`` console script)."""
    p = argparse.ArgumentParser(
        prog="python -m rewardlearn.review",
        description="Serve a local web page to watch recorded rollouts with their reward "
                    "curves and to label preference queries.")
    p.add_argument("root", nargs="?", default=".",
                   help="folder to serve: a videos/ dir, a runs/ dir or a repo root "
                        "(runs are found as sub-folders holding episode_*.json sidecars)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (0: any free port)")
    p.add_argument("--db", type=Path, default=None,
                   help="label database (SQLite); default ROOT/labels.sqlite")
    p.add_argument("--lease", type=float, default=120.0,
                   help="seconds a query stays reserved for the annotator it was shown to")
    p.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return p


def main(argv: list[str] | None = None) -> int:
    """Start the server and serve until Ctrl-C."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    root = Path(args.root)
    if not root.is_dir():
        print(f"error: {root} is not a directory", file=sys.stderr)
        return 2
    try:
        server = ReviewServer(root, args.db, args.host, args.port, args.lease)
    except OSError as e:
        print(f"error: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 2
    runs = server.app.catalog.scan()
    db = args.db or default_db_path(root)
    print(f"rollout review of {server.app.root} ({len(runs)} runs; labels in {db})")
    if not runs:
        hint = " (train.py writes them to videos/<run>/; serve the repo root or videos/)" \
            if not (server.app.root / "videos").is_dir() else ""
        print(f"no episode_*.json sidecars found yet; new ones appear live{hint}")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
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


if __name__ == "__main__":
    sys.exit(main())
