"""Perceptual rewards from a few demos: step boundaries and reward-progress correlation.

Usage::

    python bench/bench_perceptual.py                  # pick_place + metaworld_pick_place, seed 0
    python bench/bench_perceptual.py --tasks pick_place --seeds 0 1 --tcn-steps 800

Per task: collect scripted-expert demos with frames (``rewardlearn-collect``
with ``frames=true frame_size=48``; training demos from seed 0, held-out episodes
from seed 1000), fit a perceptual reward on the training demos with each encoder,
then report

* ``k auto``: the number of steps chosen automatically (elbow criterion);
* ``boundary MAE train``: mean absolute frame error of the discovered step boundaries
  (k = the number of true stages) against the true stage boundaries, on the demos;
* ``boundary MAE held-out``: the same for the model's monotone segmentation of
  held-out expert episodes;
* ``Spearman``: mean over held-out episodes of the rank correlation between the learned
  reward of each frame and its time index (expert episodes: true progress), and its
  minimum over the episodes; ``goal Spearman``: the same for the goal-embedding similarity;
* ``reward by stage``: mean learned reward per true stage on held-out episodes.

Encoders: ``tcn`` (self-supervised on the demos' frames; one fit per seed), ``state``
(raw state features), and two training-free baselines: ``downsample`` (colour means
over an 8x8 grid) and ``random resnet18`` (torchvision ResNet-18 with random weights,
frames resized to 112 px). Writes ``bench/results/perceptual.md``, with a section on PPO
with the perceptual potential vs the sparse reward when the runs of
``bench_progress_shaping.py --bc`` are in ``--ppo-runs`` (eval success per seed, and a
one-sided Mann-Whitney U test against the sparse runs of the same seeds).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import git_commit  # bench/ is on sys.path when a script runs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rewardlearn.cli.collect import CollectConfig, collect  # noqa: E402
from rewardlearn.demos import load_demos  # noqa: E402
from rewardlearn.encoders import build_encoder  # noqa: E402
from rewardlearn.perceptual import evaluate_perceptual, fit_perceptual  # noqa: E402

TASKS = {"pick_place": (20, 10), "metaworld_pick_place": (15, 10)}
"""Task -> (training demos, held-out episodes)."""
ENCODERS: dict[str, dict[str, Any]] = {
    "tcn": {"target": "tcn"},
    "state": {"target": "state"},
    "downsample": {"target": "downsample"},
    "random resnet18": {"target": "torchvision", "kwargs": {
        "arch": "resnet18", "allow_random": True, "frame_size": [112, 112]}},
}
"""Encoder label -> spec (tcn also gets the seed and ``--tcn-steps``)."""


def demos(task: str, n: int, seed: int, out: Path, frame_size: int) -> Path:
    """Collect ``n`` expert episodes with frames (reused if present)."""
    path = out / f"{task}-s{seed}-n{n}-f{frame_size}"
    if not (path / "data" / "metadata.json").is_file():
        collect(CollectConfig(env=task, n_episodes=n, seed=seed, frames=True,
                              frame_size=frame_size, out=str(path), overwrite=True),
                verbose=False)
    return path


def run_task(task: str, seeds: list[int], work: Path, tcn_steps: int, frame_size: int
             ) -> list[dict[str, Any]]:
    n_train, n_held = TASKS[task]
    train = load_demos(demos(task, n_train, 0, work, frame_size))
    held = load_demos(demos(task, n_held, 1000, work, frame_size))
    n_stages = len(train[0].subtask_names)
    rows = []
    for name, spec in ENCODERS.items():
        for seed in seeds if name == "tcn" else seeds[:1]:
            kwargs = dict(spec.get("kwargs", {}))
            if name == "tcn":
                kwargs.update(steps=tcn_steps, seed=seed)
            torch.manual_seed(seed)                 # random-weight baselines too
            enc = build_encoder({"target": spec["target"], "kwargs": kwargs})
            t0 = time.perf_counter()
            model = fit_perceptual(train, encoder=enc, n_steps=n_stages, seed=seed)
            fit_s = time.perf_counter() - t0
            auto = fit_perceptual(train, encoder=enc, fit_encoder=False, seed=seed)
            ev = evaluate_perceptual(model, held)
            rows.append({"task": task, "encoder": name, "seed": seed, "k_true": n_stages,
                         "k_auto": auto.steps.k, "train_mae": model.metrics["train_boundary_mae"],
                         "held_mae": ev.get("boundary_mae"), "spearman": ev["spearman"],
                         "spearman_min": ev["spearman_min"], "goal_spearman": ev["goal_spearman"],
                         "by_stage": ev["reward_by_stage"], "fit_s": fit_s,
                         "n_train": len(train), "n_held": len(held),
                         "len_train": [len(e) for e in train]})
            print(f"{task} {name} seed {seed}: {rows[-1]}", flush=True)
    return rows


PPO_ROWS: dict[str, str] = {
    "sparse": "sparse env reward",
    "perceptual_shaping_k5": "sparse + `shaping=perceptual`, `settings.n_steps=5`",
    "perceptual_shaping": "sparse + `shaping=perceptual` (k auto: 7)",
    "perceptual_gated_uncapped": "sparse + `shaping=perceptual`, `aggregate=gated`, no cap",
    "perceptual_shaping_uncapped": "sparse + `shaping=perceptual`, no cap (before the fix)",
    "perceptual_add": "sparse + `reward=perceptual` (`reward.mode=add`)",
    "oracle": "sparse + the env's true progress as potential (ceiling)",
}
"""Run-name prefix -> label of the PPO rows read from ``--ppo-runs``."""


def ppo_section(runs: Path) -> list[str]:
    """Eval success per seed of the PPO runs in ``runs`` (``<condition>_s<seed>/summary.json``,
    as ``bench_progress_shaping.py`` writes them), with a Mann-Whitney U test against sparse."""
    import json

    from scipy.stats import mannwhitneyu

    found: dict[str, dict[int, float]] = {}
    for cond in PPO_ROWS:
        for path in sorted(runs.glob(f"{cond}_s*/summary.json")):
            seed = path.parent.name.rpartition("_s")[2]
            if seed.isdigit():
                found.setdefault(cond, {})[int(seed)] = json.loads(path.read_text())["success_rate"]
    if "sparse" not in found:
        return []
    full = runs.resolve()
    shown = full.relative_to(ROOT) if full.is_relative_to(ROOT) else runs
    lines = [
        "", "### PPO with the perceptual potential vs the sparse reward (pick_place)", "",
        f"Runs: `{shown}` (made by `python bench/bench_progress_shaping.py --bc --timesteps "
        "300000 --conditions ...`; the table there has the other columns). PPO from the "
        "behaviour-cloned policy (`bc.demos=` the 50 clean expert demos), 300k env steps, "
        "state-feature perceptual model fitted on the same 50 demos. Eval success: "
        "deterministic policy, 50 held-out seeds. Sparse and p: the sparse runs of the same "
        "seeds, and a one-sided Mann-Whitney U test of the row against them.",
        "", "| reward | seeds | eval success per seed | mean | sparse, same seeds | p (> sparse) |",
        "|---|---|---|---|---|---|",
    ]
    sparse = found["sparse"]
    for cond, label in PPO_ROWS.items():
        if cond not in found:
            continue
        per = found[cond]
        vals = [per[k] for k in sorted(per)]
        base = [sparse[k] for k in sorted(per) if k in sparse]
        if cond == "sparse" or len(base) < 2:
            ref, p = "-", "-"
        else:
            ref = f"{100 * np.mean(base):.1f}%"
            p = f"{mannwhitneyu(vals, base, alternative='greater')[1]:.3f}"
        seeds = f"{min(per)}-{max(per)}" if len(per) > 1 else str(min(per))
        lines.append(f"| {label} | {seeds} ({len(per)}) | "
                     f"{' / '.join(f'{100 * v:.0f}' for v in vals)}% | "
                     f"**{100 * np.mean(vals):.1f}%** | {ref} | {p} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--tcn-steps", type=int, default=800)
    ap.add_argument("--frame-size", type=int, default=48)
    ap.add_argument("--work", default=str(ROOT / "runs" / "bench_perceptual"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "perceptual.md"))
    ap.add_argument("--ppo-runs", type=Path, default=ROOT / "bench" / "_work" /
                    "progress_shaping3" / "t300000_bc" / "runs",
                    help="PPO runs of bench_progress_shaping.py --bc to summarise (skipped "
                         "when absent)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = [r for task in args.tasks
            for r in run_task(task, args.seeds, work, args.tcn_steps, args.frame_size)]
    wall = time.perf_counter() - start
    commit = git_commit()
    cmd = "python bench/bench_perceptual.py " + " ".join(sys.argv[1:])
    lines = [
        "## Perceptual rewards from a few demos (Sermanet et al. 2016)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared), torch "
        f"{torch.__version__}, 1 torch thread. Commit {commit}. Command: `{cmd.strip()}` "
        f"({wall / 60:.1f} min).",
        "",
        f"Demos: scripted experts, frames {args.frame_size}x{args.frame_size}; training demos "
        "collected from seed 0, held-out episodes from seed 1000 (episode lengths vary). "
        f"Encoder seeds: {args.seeds} (tcn; the others are deterministic or seed 0). "
        f"tcn: {args.tcn_steps} Adam steps of 64 triplets. Settings: defaults of "
        "`PerceptualConfig` (normalized aggregate, linear step weights, 32 features per step), "
        "k = number of true stages for the boundary error and the Spearman columns.",
        "",
        "Boundary MAE: mean absolute frame error of the inner step boundaries vs the true "
        "stage boundaries (train: discovered on the demos; held-out: the fitted model's "
        "monotone segmentation). Spearman: per held-out episode, learned reward of each "
        "frame vs its time index (expert progress), mean (min). Goal: the same for the "
        "similarity to the demos' final-frame embedding.",
        "",
        "| task | encoder | seed | demos (train/held-out) | k true | k auto | boundary MAE "
        "train | boundary MAE held-out | Spearman mean (min) | goal Spearman | reward by true "
        "stage (held-out) | fit s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        stages = ", ".join("-" if v is None else f"{v:.2f}" for v in r["by_stage"])
        held = "-" if r["held_mae"] is None else f"{r['held_mae']:.2f}"
        lines.append(
            f"| {r['task']} | {r['encoder']} | {r['seed']} | {r['n_train']}/{r['n_held']} | "
            f"{r['k_true']} | {r['k_auto']} | {r['train_mae']:.2f} | "
            f"{held} | "
            f"{r['spearman']:.3f} ({r['spearman_min']:.3f}) | {r['goal_spearman']:.3f} | "
            f"{stages} | {r['fit_s']:.0f} |")
    lengths = {r["task"]: r["len_train"] for r in rows}
    lines += ["", "Training demo lengths (steps): " + "; ".join(
        f"{t}: {min(v)}-{max(v)} (mean {np.mean(v):.1f})" for t, v in lengths.items())]
    if args.ppo_runs.is_dir():
        lines += ppo_section(args.ppo_runs)
    lines.append("")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
