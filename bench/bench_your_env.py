"""``docs/your_env.md`` run as written: the page's env, config and commands at full budgets.

Usage::

    python bench/bench_your_env.py                  # writes bench/results/your_env.md
    python bench/bench_your_env.py --work /tmp/walk --out /tmp/your_env.md

``tests/test_your_env.py`` runs the same page with the budgets cut; this script runs it
as a user would (PPO, 100k steps, seed 0, one run per reward), adding only
``progress_bar=false torch_threads=1`` to ``train.py``. The page's files are written into
``--work`` (emptied first) and each command runs there in order. The table gives each
trained run's success with the mean action and with sampled actions over
``eval.n_episodes`` held-out episodes, its wall time, and the lines of
``rewardlearn-evaluate``'s table.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

from _common import add_paths, git_commit  # noqa: E402
from test_your_env import COMMANDS, doc_blocks  # noqa: E402

EXTRA = ["progress_bar=false", "torch_threads=1"]


def argv(command: str) -> list[str]:
    """The page's command as it runs here (``python train.py`` by this interpreter)."""
    words = shlex.split(command)
    if words[:2] == ["python", "train.py"]:
        return [sys.executable, str(ROOT / "train.py"), *words[2:], *EXTRA]
    return [*COMMANDS[words[0]], *words[1:]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_paths(ap, "your_env")
    args = ap.parse_args()
    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    files, commands = doc_blocks()
    for name, text in files.items():
        (args.work / name).write_text(text)
    t0 = time.time()
    walls: dict[str, float] = {}
    evaluate_out = ""
    for command in commands:
        start = time.time()
        proc = subprocess.run(argv(command), cwd=args.work, capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"failed: {command}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
        walls[command] = time.time() - start
        if command.startswith("rewardlearn-evaluate"):
            evaluate_out = proc.stdout
        print(f"{walls[command]:7.1f} s  {command}", flush=True)
    rows = []
    for run in ("two_stage_drs", "two_stage_pref"):
        summary = json.loads((args.work / "runs" / run / "summary.json").read_text())
        command = next(c for c in commands if f"hydra.run.dir=runs/{run}" in c)
        det, sam = summary["deterministic"], summary["sampled"]
        rows.append(f"| `{run}` | {det['success_rate']:.0%} | {sam['success_rate']:.0%} | "
                    f"{det['env_return_mean']:.1f} | {walls[command] / 60:.1f} |")
    text = "\n".join([
        "# docs/your_env.md, run as written", "",
        f"Commit {git_commit(dirty=True)}; command: `python bench/bench_your_env.py` "
        f"({(time.time() - t0) / 60:.0f} min on {os.cpu_count()} cores). The page's "
        "commands run in order in a fresh folder, at the page's budgets (PPO, 100k steps, "
        "seed 0), with `progress_bar=false torch_threads=1` added to `train.py`.", "",
        "| run | success (mean action) | success (sampled) | env return (mean action) | "
        "wall (min) |", "|---|---|---|---|---|", *rows, "",
        "`rewardlearn-evaluate` on both learned rewards (the page's section 5):", "",
        "```", evaluate_out.strip(), "```", ""])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
