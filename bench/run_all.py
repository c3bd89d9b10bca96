"""Run every benchmark script (quick or full) and regenerate the benchmark tables.

Usage::

    python bench/run_all.py --quick                 # smoke numbers, < 15 min on 2 cores
    python bench/run_all.py --full                  # the published tables (hours)
    python bench/run_all.py --quick --only foundation progress_shaping
    python bench/run_all.py --full --dry-run        # print the commands only

Every ``bench/bench_*.py`` is listed in :data:`SCRIPTS` with its quick and full
arguments (``None``: not run in that mode, with the reason); a script that is not listed
is refused by name (``tests/test_bench_run_all.py`` checks the list against the folder).
Files starting with ``_`` are helpers, not benchmarks.

``--full`` writes the tables to ``bench/results/`` and regenerates ``BENCHMARKS.md``.
``--quick`` must not overwrite published numbers: its tables go to
``bench/_work/quick/results/`` and ``bench/_work/quick/BENCHMARKS.md`` (a script
without an output option writes ``bench/results/<name>.md``; that file is moved
to the quick folder and the published one restored). Every table produced gets
a provenance line: machine, GPU, commit, seeds, the command and wall time. A
failing script is reported and the others still run (exit status 1 at the end).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

from _common import git_commit  # noqa: E402

RESULTS = BENCH / "results"
QUICK = BENCH / "_work" / "quick"


@dataclass
class Spec:
    """How to run one ``bench/bench_<name>.py``."""

    quick: list[str] | None
    full: list[str] | None = field(default_factory=list)
    seeds: str = "script default"
    out_flag: str | None = None  # the script's option for its output .md, if it has one
    note: str = ""


ON_RUNS = "analyses existing run folders: give them on its command line"
SCRIPTS: dict[str, Spec] = {
    "foundation": Spec(["--quick"], [], seeds="0"),
    "preference": Spec(["--quick", "--seeds", "0"], [], seeds="quick: 0; full: 0 1 2",
                       note="quick: Pendulum SAC 12k steps, 200 oracle comparisons"),
    "vlm": Spec(["--quick"], [], seeds="0", out_flag="--out"),
    "progress_shaping": Spec(
        ["--timesteps", "4096", "--seeds", "0", "--jobs", "2", "--conditions", "sparse",
         "shaping"], [], seeds="quick: 0; full: 0 1 2", out_flag="--out",
        note="quick: 4096 PPO steps, sparse vs shaping"),
    "evaluate": Spec(["--quick"], [], seeds="quick: 0; full: 0 1 2", out_flag="--out"),
    "perceptual": Spec(["--tasks", "pick_place", "--tcn-steps", "200"], [], seeds="0",
                       out_flag="--out", note="quick: pick_place only, 200 TCN steps"),
    "preference_first_round": Spec(
        ["--labels", "5", "--seeds", "2", "--steps", "1024"], [], seeds="quick: 0 1; full: 0-7",
        out_flag="--out", note="quick: 1024 steps, 5 labels, 2 seeds"),
    "preference_inference": Spec(["--quick"], [], seeds="-", out_flag="--out"),
    "preference_train": Spec(["--labels", "100", "--steps", "4000"], [], seeds="0",
                             note="quick: 100 labels"),
    "preference_labels": Spec(["--steps", "4096", "--seeds", "0", "--plan", "current:10:oracle",
                               "--jobs", "1"], [], seeds="quick: 0; full: 0 1 2",
                              out_flag="--out", note="quick: 4096 steps, 10 labels"),
    "drs": Spec(["--timesteps", "4096", "--seeds", "0", "--conditions", "drs"], [],
                seeds="quick: 0; full: 0-4", out_flag="--out", note="quick: 4096 PPO steps"),
    "outcomes": Spec(None, [], note="needs the DrS runs of bench_drs (--drs)"),
    "drs_classifier": Spec(["--tasks", "button-press-topdown-v3"], [], seeds="0",
                           out_flag="--out", note="quick: one task"),
    "drs_path": Spec(None, None, note=ON_RUNS),
    "cost": Spec(["--tasks", "reach-v3", "--timesteps", "4000"], [], seeds="0",
                 out_flag="--out", note="quick: one task, 4k steps; full: 8 suite tasks, 150k"),
    "suite": Spec(["--tasks", "reach-v3", "--select", "--timesteps", "8000", "--jobs", "1"],
                  None, seeds="0", out_flag="--out",
                  note="quick: one task, 8k steps; full: the commands in bench/results/suite.md"),
    "threads": Spec(["--jobs", "ppo", "--settings", "1", "all"], [], seeds="0",
                    out_flag="--out", note="quick: the PPO job only"),
    "mean_bound": Spec(["--envs", "hopper", "--seeds", "0", "--timesteps", "8192"], [],
                       seeds="quick: 0; full: 0 1 2", out_flag="--out",
                       note="quick: hopper, 8k steps"),
    "metaworld_experts": Spec(["--episodes", "2", "--tasks", "reach-v3", "push-v3"], [],
                              seeds="0-19", out_flag="--out",
                              note="quick: 2 tasks, 2 episodes"),
    "your_env": Spec(None, [], seeds="0", out_flag="--out",
                     note="full only: the quick walk is tests/test_your_env.py"),
    "select": Spec(["--smoke"], [], seeds="quick: 0; full: 0-4", out_flag="--out",
                   note="quick: --smoke budgets; full: its DrS row needs bench_drs's runs"),
    "preference_pick_place": Spec(["--timesteps", "16384", "--budget", "40", "--episodes", "2"],
                                  [], seeds="0", out_flag="--out",
                                  note="quick: 16k steps, 40 labels: a pipeline check"),
    "ilfo": Spec(["--tasks", "door-open-v3", "--timesteps", "4000", "--seeds", "0",
                  "--conditions", "dense", "ot_ads", "--jobs", "1", "--eval-episodes", "2"], [],
                 seeds="quick: 0; full: 0 1 2", out_flag="--out",
                 note="quick: door-open-v3, 4000 PPO steps, dense vs ot+ads"),
    "vpl": Spec(["--env", "pendulum", "--users", "2", "--seeds", "0", "--timesteps", "4096",
                 "--budget", "128", "--context", "8", "--heldout", "40", "--candidates", "20",
                 "--segment-episodes", "8", "--eval-episodes", "3", "--vpl-extra",
                 "reward.model.segment_length=20", "reward.model.first_round_at=500",
                 "reward.model.train_steps=50", "reward.model.hidden_sizes=[64,64]"], [],
                seeds="quick: 0; full: 0 1 2", out_flag="--out",
                note="quick: Pendulum, 2 users, 4096 steps"),
    "pearl": Spec(["--pairs", "drawer-close-v3:drawer-open-v3", "--seeds", "0",
                   "--source-timesteps", "4000", "--timesteps", "4000", "--source-budget", "40",
                   "--target-budget", "10", "--extra", "n_envs=2", "eval.n_episodes=2",
                   "--pearl-extra", "reward.model.first_round_at=1000",
                   "reward.model.target_segments=50", "reward.model.labels_per_round=200"],
                  [], seeds="quick: 0; full: 0 1 2", out_flag="--out",
                  note="quick: one task pair, 4000 steps, 2 envs"),
    "pearl_alignment": Spec(None, None, note="reads the labelled source runs of bench_pearl "
                            "and bench_suite (bench/_work): run those first, then "
                            "python bench/bench_pearl_alignment.py"),
    "eval_runs": Spec(None, None, note=ON_RUNS),
    "potential_accuracy": Spec(None, None, note=ON_RUNS),
    "probe_action_bounds": Spec(None, None, note=ON_RUNS),
    "imitation_preference": Spec(None, None, note="run by bench_preference in imitation's own "
                                                   "virtualenv (gymnasium 0.29)"),
}
"""Every benchmark script: quick and full arguments (``None``: not run in that mode)."""


def discover() -> dict[str, Path]:
    """``{name: path}`` of ``bench/bench_<name>.py`` scripts present."""
    return {p.stem.removeprefix("bench_"): p for p in sorted(BENCH.glob("bench_*.py"))}


def spec_for(name: str, path: Path) -> Spec:
    """The script's spec; a script missing from :data:`SCRIPTS` is refused."""
    if name not in SCRIPTS:
        raise KeyError(f"bench/bench_{name}.py is not listed in bench/run_all.py SCRIPTS; add "
                       "its quick and full arguments there")
    return SCRIPTS[name]


def machine() -> str:
    """CPU, cores and GPU, in words."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = f"GPU {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return f"{platform.machine()} {platform.processor() or ''}".strip() + f", {cores} cores, {gpu}"


def commit() -> str:
    """Short HEAD commit, ``+dirty`` if tracked files differ from it."""
    return git_commit(ROOT, dirty=True)


def provenance(mode: str, cmd: list[str], spec: Spec, wall_s: float) -> str:
    """The line appended to each table this run produced."""
    shown = " ".join(["python", *cmd[1:]])
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    note = f" ({spec.note})" if spec.note else ""
    return (f"\n_Produced by `python bench/run_all.py --{mode}`{note}: `{shown}`; machine "
            f"{machine()}; commit {commit()}; seeds {spec.seeds}; {when}; {wall_s:.0f} s._\n")


def run_script(name: str, path: Path, spec: Spec, mode: str, dry_run: bool) -> dict[str, object]:
    """Run one script; returns its record (status, wall time, table path)."""
    args = spec.quick if mode == "quick" else spec.full
    if args is None:
        why = spec.note or f"no {mode} mode"
        print(f"== {name}: skipped ({why})")
        return {"name": name, "status": f"skipped ({why})"}
    source = path.read_text()
    missing = [a for a in [*args, spec.out_flag or ""] if a.startswith("--") and a not in source]
    if missing:  # the script changed since SCRIPTS was written: say so rather than crash
        print(f"== {name}: bench/bench_{name}.py has no {', '.join(missing)}; skipped")
        return {"name": name, "status": f"skipped (no {' '.join(missing)})"}
    out_dir = QUICK / "results" if mode == "quick" else RESULTS
    table = out_dir / f"{name}.md"
    default_table = RESULTS / f"{name}.md"
    cmd = [sys.executable, str(path.relative_to(ROOT)), *args]
    if spec.out_flag:
        cmd += [spec.out_flag, str(table.relative_to(ROOT))]
    if dry_run:
        print(" ".join(cmd[1:]))
        return {"name": name, "status": "dry-run", "command": " ".join(cmd[1:])}
    published = default_table.read_bytes() if default_table.is_file() else None
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT)
    wall = time.perf_counter() - t0
    if mode == "quick" and not spec.out_flag and default_table.is_file():
        produced = default_table.read_bytes()
        if produced != published:  # move the quick table aside, restore the published one
            table.write_bytes(produced)
            if published is None:
                default_table.unlink()
            else:
                default_table.write_bytes(published)
    record: dict[str, object] = {"name": name, "command": " ".join(cmd[1:]),
                                 "wall_s": round(wall, 1), "returncode": proc.returncode}
    if proc.returncode == 0 and table.is_file():
        with table.open("a") as f:
            f.write(provenance(mode, cmd, spec, wall))
        record.update(status="ok", table=str(table.relative_to(ROOT)))
    else:
        record["status"] = "failed" if proc.returncode else "ok (no table written)"
    print(f"== {name}: {record['status']} in {wall:.0f} s", flush=True)
    return record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quick", action="store_true", help="smoke numbers (< 15 min)")
    mode.add_argument("--full", action="store_true", help="the published tables (hours)")
    ap.add_argument("--only", nargs="+", default=None, help="script names (e.g. foundation)")
    ap.add_argument("--skip", nargs="+", default=[], help="script names to leave out")
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = ap.parse_args(argv)
    kind = "quick" if args.quick else "full"
    present = discover()
    wanted = args.only or sorted(set(present) | set(SCRIPTS),
                                 key=lambda n: (list(SCRIPTS).index(n) if n in SCRIPTS
                                                else len(SCRIPTS), n))
    unknown = [n for n in (args.only or []) if n not in present and n not in SCRIPTS]
    if unknown:
        known = ", ".join(sorted(set(present) | set(SCRIPTS)))
        ap.error(f"unknown script(s) {unknown}; known: {known}")
    records = []
    for name in wanted:
        if name in args.skip:
            continue
        if name not in present:
            print(f"== {name}: bench/bench_{name}.py not found, skipped")
            records.append({"name": name, "status": "missing"})
            continue
        records.append(run_script(name, present[name], spec_for(name, present[name]), kind,
                                  args.dry_run))
    if args.dry_run:
        return 0
    sys.path.insert(0, str(BENCH))
    import _benchmarks_md

    if kind == "full":
        _benchmarks_md.main()
        out_md = ROOT / "BENCHMARKS.md"
    else:
        out_md = QUICK / "BENCHMARKS.md"
        _benchmarks_md.main(QUICK / "results", out_md)
    log = (QUICK if kind == "quick" else BENCH / "_work") / f"run_all_{kind}.json"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(json.dumps(records, indent=2))
    print(f"\n{'script':<18} {'status':<24} wall")
    for r in records:
        print(f"{r['name']:<18} {r['status']!s:<24} {r.get('wall_s', '-')}")
    print(f"tables collected in {out_md.relative_to(ROOT)}; timings in {log.relative_to(ROOT)}")
    return int(any(r["status"] == "failed" for r in records))


if __name__ == "__main__":
    raise SystemExit(main())
