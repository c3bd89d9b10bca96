"""``rewardlearn-push``: share a run on the Hugging Face Hub, as rl-zoo does.

Usage::

    rewardlearn-push runs/<run> --repo-id <user>/<name>          # package and upload
    rewardlearn-push runs/<run> --out hub/<run>                  # only write the folder
    rewardlearn-push runs/<run> --repo-id <user>/<name> --out hub/<run> \\
        --eval runs/<run>/evaluation.json --private

The folder holds ``agent.zip``, ``vecnormalize.pkl`` (when the run normalised
observations), the reward model in the Hub format (``reward_model/``: ``config.json`` +
``model.safetensors`` + its card), ``summary.json``, ``config.yaml``, a rollout video
(``replay.mp4``) and a ``README.md`` model card (returns, command, the ``evaluate``
metrics given with ``--eval``, else ``runs/<run>/evaluation.json`` if present).
Uploading uses ``huggingface_hub`` (log in with ``hf auth login`` or set ``HF_TOKEN``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from rewardlearn.cli.options import run_cli


def parser() -> argparse.ArgumentParser:
    """The command's arguments."""
    p = argparse.ArgumentParser(prog="rewardlearn-push", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="the run folder (runs/<run>)")
    p.add_argument("--repo-id", help="Hub repo to upload to (user/name); created if needed")
    p.add_argument("--out", help="write the packaged folder here (without --repo-id: only that)")
    p.add_argument("--eval", dest="evaluation", help="rewardlearn-evaluate JSON (out=...)")
    p.add_argument("--video", help="rollout video to include (default: the run's first)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--token", help="Hub token (default: the logged-in one / HF_TOKEN)")
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Package a run and push it, or only write the folder; returns what was done."""
    from rewardlearn.publish import package_run, push_run

    args = parser().parse_args(argv)
    if args.repo_id is None and args.out is None:
        raise ValueError("give --repo-id <user>/<name> to push, or --out <folder> to only "
                         "write the packaged run")
    if args.repo_id is None:
        folder = package_run(args.run, args.out, args.evaluation, args.video)
        print(f"run packaged in {folder}; push it later with "
              f"rewardlearn-push {args.run} --repo-id <user>/<name>")
        return {"folder": str(folder)}
    url = push_run(args.run, args.repo_id, args.out, evaluation=args.evaluation,
                   video=args.video, private=args.private or None, token=args.token)
    print(f"pushed {args.run} to https://huggingface.co/{args.repo_id} ({url})")
    return {"repo_id": args.repo_id, "commit": url, "folder": args.out}


def cli() -> None:
    """Entry point; input errors exit with a message, no trace."""
    run_cli(main)


if __name__ == "__main__":
    cli()
