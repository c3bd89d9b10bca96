"""Helpers shared by the bench scripts (run as ``python bench/<script>.py``)."""

from __future__ import annotations

import argparse
import glob
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def add_paths(parser: argparse.ArgumentParser, work: str, out: str | None = None) -> None:
    """``--work`` (the runs, ``bench/_work/<work>``) and ``--out`` (the table,
    ``bench/results/<out or work>.md``), the two paths every bench script takes."""
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "_work" / work,
                        help="folder of the runs (a run already there is reused)")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "bench" / "results" / f"{out or work}.md",
                        help="the results table")


def train_run(run_dir: Path, overrides: list[str], log: Path | None = None,
              label: str | None = None) -> dict[str, Any]:
    """One ``python train.py <overrides> hydra.run.dir=<run_dir>`` run, its output (after the
    command line) in ``log`` (default ``<run_dir>.log``); reused when its ``summary.json``
    exists. With ``label``, prints when it starts and ends. Returns the summary."""
    summary_file = run_dir / "summary.json"
    if not summary_file.is_file():
        log = log or run_dir.with_suffix(".log")
        log.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "train.py", *overrides, f"hydra.run.dir={run_dir}"]
        if label:
            print(f"[{time.strftime('%H:%M:%S')}] start {label}", flush=True)
        with log.open("w") as f:
            f.write(" ".join(cmd[1:]) + "\n")
            f.flush()
            subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, check=True)
        if label:
            print(f"[{time.strftime('%H:%M:%S')}] done {label}", flush=True)
    summary: dict[str, Any] = json.loads(summary_file.read_text())
    return summary


def git_commit(root: Path = ROOT, dirty: bool = False) -> str:
    """The short hash of the checkout's HEAD, for a results table's header; with ``dirty``,
    ``+dirty`` when tracked files differ from it."""
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                         capture_output=True, text=True).stdout.strip()
    if not sha:
        return "unknown (not a git checkout)"
    if dirty and subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=root).returncode:
        sha += "+dirty"
    return sha


def training_curve(run_dir: Path) -> dict[str, Any]:
    """First step with a successful training episode, the first with a 50% training success
    rate (last 100 episodes), and the final training success rate."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = glob.glob(str(run_dir / "tb" / "**" / "events*"), recursive=True)
    if not files:
        return {"first_success_step": None, "half_success_step": None,
                "train_success_final": None}
    # the newest log: a run restarted in the same folder (after an interrupted one) writes
    # a second tb/<algo>_<n> beside the first
    acc = EventAccumulator(max(files, key=lambda f: Path(f).stat().st_mtime))
    acc.Reload()
    if "rollout/success_rate" not in acc.Tags()["scalars"]:
        return {"first_success_step": None, "half_success_step": None,
                "train_success_final": None}
    events = acc.Scalars("rollout/success_rate")
    first = next((e.step for e in events if e.value > 0), None)
    half = next((e.step for e in events if e.value >= 0.5), None)
    return {"first_success_step": first, "half_success_step": half,
            "train_success_final": float(events[-1].value)}


def collect_demos(env_args: list[str], out: Path, n: int, after_success: int | None = None
                  ) -> Path:
    """``n`` scripted-expert demos into ``out`` with ``rewardlearn-collect <env_args>``,
    collected once (reused when ``out`` holds them). ``after_success``: recorded that many
    steps past the first success (collect's option). Demos already there that were recorded
    otherwise are refused, not mixed (demos from before the option carry no key: taken as
    asked)."""
    meta = out / "data" / "metadata.json"
    if not meta.is_file():
        tail = [] if after_success is None else [f"after_success={after_success}"]
        subprocess.run([sys.executable, "-m", "rewardlearn.cli.collect", *env_args,
                        f"n_episodes={n}", f"out={out}", "overwrite=true", *tail],
                       cwd=ROOT, check=True, capture_output=True)
        return out
    had = json.loads(meta.read_text()).get("after_success", after_success)
    if had != after_success:
        raise SystemExit(f"{out} holds demos recorded with after_success={had}, not "
                         f"{after_success}: use another folder")
    return out
