"""``reward=pearl``: Meta-World preference labels transferred from a source task to a target
task by Gromov-Wasserstein, with zero or a few target labels.

Usage::

    python bench/bench_pearl.py          # 2 task pairs, 3 seeds, 1M PPO steps per run
    python bench/bench_pearl.py --pairs window-close-v3:window-open-v3 --seeds 0 \
        --conditions reference pearl

For each ``source:target`` pair and seed (one ``python train.py`` process per run, PPO with
``conf/env/metaworld.yaml``'s settings, 8 envs):

1. source: ``reward=preference teacher=oracle`` on the source task, ``--source-budget``
   scripted labels (the source run's ``reward_model.pt`` keeps every labelled pair);
2. on the target task, the conditions of ``--conditions``:

   * ``pearl``: ``reward=pearl reward.model.source=<source run>``, no target label;
   * ``pearl_few``: the same plus ``reward.model.target_budget=<--target-budget>`` real
     target labels;
   * ``preference_few``: ``reward=preference`` with those ``--target-budget`` labels only;
   * ``reference``: ``reward=preference teacher=oracle`` with ``--source-budget`` (1000)
     target labels: the run PEARL's zero-label success is measured against (>= 70% of it
     is the target). bench_suite's run of the same command is reused (``--reference-from``);
   * ``dense``: Meta-World's own dense reward.

Default pairs: target tasks where the 1000-label reference reaches >= 50% success in
``bench/results/suite.md`` (window-open 100%, handle-press 82%), each from a task of the same
mechanism with other motion (window-close, handle-press-side).

Reported: evaluation success and return (the env's, 50 held-out episodes), and for PEARL the
transferred-label accuracy against the target task's scripted oracle (its true returns;
``reward_training.transfer_acc_mean``, mean over rounds), the labels kept and their
coverage. Writes ``bench/results/pearl.md`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import add_paths, git_commit, train_run  # bench/ is on sys.path when a script runs

ROOT = Path(__file__).resolve().parents[1]
COMMON = ["env=metaworld", "agent=ppo", "n_envs=8", "torch_threads=1", "video.enabled=false",
          "progress_bar=false", "eval.n_episodes=50"]
CONDITIONS = ("reference", "pearl", "pearl_distances", "pearl_few", "preference_few", "dense")
DISTANCES = ["reward.model.align_encoder={target: distances, kwargs: ${env.relative_features}}",
             "reward.model.structure_weight=0.5"]
"""Align on hand-to-object and object-to-goal distances (the same when the target turns or
mirrors the source's geometry), fused GW with equal weight on structure and features."""
LABELS = {"reference": "preference, {full} target labels (the reference)",
          "pearl": "PEARL, 0 target labels",
          "pearl_distances": "PEARL, 0 target labels, aligned on distances (fused GW 0.5)",
          "pearl_few": "PEARL + {b} target labels",
          "preference_few": "preference, {b} target labels only",
          "dense": "Meta-World dense reward"}


def train(run_dir: Path, overrides: list[str], log: Path) -> dict[str, Any]:
    """One ``train.py`` run into ``run_dir`` (reused when its ``summary.json`` exists)."""
    return train_run(run_dir, [*COMMON, *overrides], log)


def condition(name: str, source: Path, args: argparse.Namespace) -> list[str]:
    pearl = ["reward=pearl", f"reward.model.source={source}", *args.pearl_extra]
    return {"pearl": pearl,
            "pearl_distances": [*pearl, *DISTANCES],
            "pearl_few": [*pearl, f"reward.model.target_budget={args.target_budget}"],
            "preference_few": ["reward=preference", f"reward.model.budget={args.target_budget}",
                               *args.preference_extra],
            "reference": ["env.reward_type=dense", "reward=preference", "teacher=oracle",
                          f"reward.model.budget={args.source_budget}", *args.preference_extra],
            "dense": ["reward=env", "~teacher"]}[name]


def suite_reference(task: str, seed: int, args: argparse.Namespace) -> Path | None:
    """bench_suite's finished ``preference`` run (1000 oracle labels) of the same command,
    if there is one and nothing is overridden."""
    if args.reference_from is None or args.extra or args.preference_extra \
            or args.source_budget != 1000:
        return None
    out = args.reference_from / f"t{args.timesteps}" / task / f"preference_s{seed}"
    return out if (out / "summary.json").is_file() else None


def run_pair(pair: str, seed: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    src, tgt = pair.split(":")
    source = work / f"source_{src}_s{seed}"
    train(source, [f"env.task={src}", "reward=preference", "teacher=oracle",
                   f"reward.model.budget={args.source_budget}",
                   f"total_timesteps={args.source_timesteps}", f"seed={seed}", *args.extra,
                   *args.preference_extra],
          work / "logs" / f"source_{src}_s{seed}.log")
    out: dict[str, Any] = {"pair": pair, "seed": seed}
    for cond in args.conditions:
        reused = suite_reference(tgt, seed, args) if cond == "reference" else None
        if reused is not None:
            summary = json.loads((reused / "summary.json").read_text())
            out.setdefault("reused", {})[cond] = str(reused)
        else:
            summary = train(work / f"{cond}_{tgt}_s{seed}",
                            [f"env.task={tgt}", *condition(cond, source, args),
                             f"total_timesteps={args.timesteps}", f"seed={seed}", *args.extra],
                            work / "logs" / f"{cond}_{tgt}_s{seed}.log")
        training = summary.get("reward_training") or {}
        out[cond] = {"success": summary["success_rate"], "return": summary["env_return_mean"],
                     "transfer_acc": training.get("transfer_acc_mean"),
                     "labels": training.get("labels_used"),
                     "coverage": training.get("coverage"),
                     "train_wall_s": summary["train_wall_s"]}
    (work / f"result_{src}_{tgt}_s{seed}.json").write_text(json.dumps(out, indent=2))
    return out


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v:.0%}" if pct else f"{v:.3g}"


def write_report(out: Path, results: list[dict[str, Any]], args: argparse.Namespace,
                 command: str, wall_s: float) -> None:
    lines = [
        "## PEARL: preference labels transferred across Meta-World tasks (PPO)", "",
        f"Machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, no GPU; commit "
        f"{git_commit(dirty=True)}; seeds {' '.join(map(str, args.seeds))}; command: "
        f"`{command}`; {wall_s / 60:.1f} min wall time in this call (finished runs are "
        "reused).", "",
        f"Source: `reward=preference teacher=oracle`, {args.source_budget} scripted labels, "
        f"{args.source_timesteps} steps. Target runs: {args.timesteps} steps, 8 envs, "
        "`conf/env/metaworld.yaml`'s PPO settings; success and return of 50 held-out episodes "
        "(mean action). The reference row reuses bench_suite's run of the same command where "
        "it exists (`--reference-from`)"
        + (f"; overridden for every run by `{' '.join(args.extra)}`" if args.extra else "")
        + ". Transferred-label accuracy: the kept transferred labels against the "
        "target task's scripted oracle (its true segment returns), mean over rounds.", "",
        "| source -> target | seed | condition | eval success | eval return | transferred-label "
        "accuracy | labels trained on | coverage (last round) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: (r["pair"], r["seed"])):
        for cond in args.conditions:
            c = r[cond]
            lines.append(f"| {r['pair'].replace(':', ' -> ')} | {r['seed']} | "
                         f"{LABELS[cond].format(b=args.target_budget, full=args.source_budget)} | "
                         f"{_fmt(c['success'], True)} | {_fmt(c['return'])} | "
                         f"{_fmt(c['transfer_acc'], True)} | {_fmt(c['labels'])} | "
                         f"{_fmt(c['coverage'])} |")
    lines += ["", "Means over seeds (ratio: the condition's mean success over the reference's; "
              "the target asks >= 70% for PEARL with 0 target labels):", "",
              "| source -> target | condition | eval success | ratio to the reference | "
              "transferred-label accuracy |", "|---|---|---|---|---|"]
    for pair in args.pairs:
        rs = [r for r in results if r["pair"] == pair]
        for cond in args.conditions:
            succ = [r[cond]["success"] for r in rs if r[cond]["success"] is not None]
            acc = [r[cond]["transfer_acc"] for r in rs if r[cond]["transfer_acc"] is not None]
            ref = [r["reference"]["success"] for r in rs if "reference" in r
                   and r["reference"]["success"] is not None]
            ratio = (float(np.mean(succ)) / float(np.mean(ref))
                     if succ and ref and np.mean(ref) > 0 else None)
            lines.append(f"| {pair.replace(':', ' -> ')} | "
                         f"{LABELS[cond].format(b=args.target_budget, full=args.source_budget)} | "
                         f"{_fmt(np.mean(succ) if succ else None, True)} | "
                         f"{_fmt(ratio, True)} | "
                         f"{_fmt(np.mean(acc) if acc else None, True)} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", nargs="+", default=["window-close-v3:window-open-v3",
                                                       "handle-press-side-v3:handle-press-v3"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--conditions", nargs="+", choices=CONDITIONS, default=list(CONDITIONS))
    parser.add_argument("--source-timesteps", type=int, default=1_000_000)
    parser.add_argument("--timesteps", type=int, default=1_000_000)
    parser.add_argument("--source-budget", type=int, default=1000)
    parser.add_argument("--target-budget", type=int, default=50)
    parser.add_argument("--extra", nargs="*", default=[],
                        help="more train.py overrides for every run (e.g. n_envs=4)")
    parser.add_argument("--pearl-extra", nargs="*", default=[],
                        help="overrides for the PEARL runs (reward.model.rounds=5)")
    parser.add_argument("--preference-extra", nargs="*", default=[],
                        help="overrides for the reward=preference runs (source and baseline)")
    parser.add_argument("--reference-from", type=Path,
                        default=ROOT / "bench" / "_work" / "suite",
                        help="bench_suite's work folder: its preference run of the same "
                             "command is the reference (none: run it)")
    add_paths(parser, "pearl")
    args = parser.parse_args()
    bad = [p for p in args.pairs if p.count(":") != 1]
    if bad:
        parser.error(f"--pairs takes source:target, got {bad}")
    work = args.work / f"t{args.timesteps}"
    work.mkdir(parents=True, exist_ok=True)
    command = "python bench/bench_pearl.py " + " ".join(sys.argv[1:])
    t0 = time.perf_counter()
    results = []
    for pair in args.pairs:
        for seed in args.seeds:
            r = run_pair(pair, seed, args, work)
            results.append(r)
            print(f"{pair} seed {seed}: " + ", ".join(
                f"{c} success {_fmt(r[c]['success'], True)} transfer acc "
                f"{_fmt(r[c]['transfer_acc'], True)}" for c in args.conditions), flush=True)
    write_report(args.out, results, args, command, time.perf_counter() - t0)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
