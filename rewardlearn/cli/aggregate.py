"""Aggregate a Hydra multirun sweep into one table and a learning-curve plot.

Usage::

    python train.py -m hydra/launcher=joblib_local seed=0,1,2 env=pendulum,hopper reward=env,mlp
    rewardlearn-aggregate multirun/2026-12-01_10-00-00
    rewardlearn-aggregate multirun/<dir> tag=rollout/ep_learned_rew_mean out=results/

Every run directory of the sweep (one with ``summary.json`` and
``.hydra/overrides.yaml``) is read; runs are grouped by the override keys whose
values vary across the sweep, except ``seed``. For each group and metric of
``summary.json`` (``env_return_mean``, ``success_rate``, ``learned_return_mean``,
``train_steps_per_s``) the table gives the number of seeds, the mean, the
sample standard deviation (``ddof=1``; 0 for one seed) and the interquartile
mean (IQM: the mean of the middle 50% of seeds after cutting
``floor(n / 4)`` from each end, as ``scipy.stats.trim_mean(x, 0.25)`` and
rliable do). Learning curves come from each run's TensorBoard scalars
(``tag``, default SB3's ``rollout/ep_rew_mean``): the mean over seeds on a
common step grid (each seed interpolated within its own logged range), shaded
by +- one standard deviation.

Writes ``aggregate.md``, ``aggregate.csv`` and ``learning_curves.png`` to
``out`` (default: the sweep directory) and prints the table.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewardlearn.cli.options import run_cli

METRICS = ("env_return_mean", "success_rate", "learned_return_mean", "train_steps_per_s")
DEFAULT_TAG = "rollout/ep_rew_mean"


@dataclass
class Run:
    """One run of a sweep: its overrides, summary and learning curve."""

    path: Path
    overrides: dict[str, str]
    summary: dict[str, Any]
    curve: tuple[np.ndarray, np.ndarray] = field(
        default_factory=lambda: (np.zeros(0), np.zeros(0)))


def iqm(values: Sequence[float]) -> float:
    """Interquartile mean: mean after cutting ``floor(n / 4)`` values from each end."""
    x = np.sort(np.asarray(values, np.float64))
    if len(x) == 0:
        return float("nan")
    k = len(x) // 4
    return float(x[k:len(x) - k].mean())


def _overrides(run_dir: Path) -> dict[str, str]:
    from omegaconf import OmegaConf

    path = run_dir / ".hydra" / "overrides.yaml"
    items = OmegaConf.to_container(OmegaConf.load(path)) if path.is_file() else []
    out: dict[str, str] = {}
    for item in items if isinstance(items, list) else []:
        key, _, value = str(item).partition("=")
        out[key.lstrip("+~")] = value
    return out


def read_curve(run_dir: Path, tag: str = DEFAULT_TAG) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of a TensorBoard scalar from all event files under ``<run>/tb``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    points: dict[int, float] = {}
    for events_dir in sorted({p.parent for p in (run_dir / "tb").rglob("events.out.tfevents*")}):
        acc = EventAccumulator(str(events_dir), size_guidance={"scalars": 0})
        acc.Reload()
        if tag in acc.Tags().get("scalars", []):
            points.update({int(s.step): float(s.value) for s in acc.Scalars(tag)})
    steps = np.asarray(sorted(points), np.float64)
    return steps, np.asarray([points[int(s)] for s in steps], np.float64)


def load_sweep(sweep_dir: str | Path, tag: str = DEFAULT_TAG) -> list[Run]:
    """All finished runs (with ``summary.json``) under a sweep directory."""
    root = Path(sweep_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"sweep directory {str(root)!r} not found")
    runs = []
    for summary in sorted(root.rglob("summary.json")):
        run_dir = summary.parent
        runs.append(Run(run_dir, _overrides(run_dir), json.loads(summary.read_text()),
                        read_curve(run_dir, tag)))
    if not runs:
        raise ValueError(f"no finished runs (summary.json) under {root}; is it a multirun "
                         "directory (multirun/<date>) and did its jobs finish?")
    return runs


def group_keys(runs: Sequence[Run]) -> list[str]:
    """Override keys whose values differ between runs, ``seed`` excluded."""
    keys = sorted({k for r in runs for k in r.overrides})
    return [k for k in keys if k != "seed"
            and len({r.overrides.get(k) for r in runs}) > 1]


def aggregate(runs: Sequence[Run], metrics: Sequence[str] = METRICS) -> tuple[list[str],
                                                                              list[dict[str, Any]]]:
    """Group keys and one row per group: ``n``, ``seeds`` and mean/std/IQM per metric."""
    keys = group_keys(runs)
    groups: dict[tuple[str, ...], list[Run]] = {}
    for r in runs:
        groups.setdefault(tuple(r.overrides.get(k, "") for k in keys), []).append(r)
    rows = []
    for label, members in groups.items():
        row: dict[str, Any] = dict(zip(keys, label, strict=True))
        row["n"] = len(members)
        row["seeds"] = " ".join(sorted((str(m.summary.get("seed", m.overrides.get("seed", "?")))
                                        for m in members), key=str))
        for metric in metrics:
            vals = [float(m.summary[metric]) for m in members
                    if isinstance(m.summary.get(metric), (int, float))]
            if not vals:
                continue
            row[f"{metric}_mean"] = float(np.mean(vals))
            row[f"{metric}_std"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
            row[f"{metric}_iqm"] = iqm(vals)
        rows.append(row)
    return keys, rows


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}" if abs(v) < 1e-3 and v else f"{v:.2f}"
    return str(v)


def markdown(keys: Sequence[str], rows: Sequence[dict[str, Any]], title: str) -> str:
    """The table: group keys, seeds, then ``mean +- std (IQM)`` per metric."""
    metrics = [m for m in METRICS if any(f"{m}_mean" in r for r in rows)]
    head = [*keys, "n", "seeds", *metrics]
    lines = [title, "", "Cells: mean +- std (IQM) over seeds.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [str(r[k]) for k in keys] + [str(r["n"]), r["seeds"]]
        for m in metrics:
            cells.append(f"{_fmt(r[f'{m}_mean'])} +- {_fmt(r[f'{m}_std'])} "
                         f"({_fmt(r[f'{m}_iqm'])})" if f"{m}_mean" in r else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_curves(runs: Sequence[Run], keys: Sequence[str], path: Path, tag: str,
                points: int = 100) -> int:
    """Mean +- std learning curve per group as a PNG; returns the number of curves drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[Run]] = {}
    for r in runs:
        label = ", ".join(f"{k}={r.overrides.get(k, '')}" for k in keys) or "all runs"
        groups.setdefault(label, []).append(r)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = 0
    for label, members in groups.items():
        curves = [r.curve for r in members if len(r.curve[0])]
        if not curves:
            continue
        lo, hi = min(c[0][0] for c in curves), max(c[0][-1] for c in curves)
        grid = np.linspace(lo, hi, points) if hi > lo else np.asarray([lo])
        ys = np.full((len(curves), len(grid)), np.nan)
        for i, (steps, vals) in enumerate(curves):
            inside = (grid >= steps[0]) & (grid <= steps[-1])
            ys[i, inside] = np.interp(grid[inside], steps, vals)
        mean, std = np.nanmean(ys, axis=0), np.nanstd(ys, axis=0)
        name = f"{label} ({len(curves)} seeds)"
        if len(grid) == 1:  # one logged point: a marker with an error bar
            ax.errorbar(grid, mean, yerr=std, marker="o", capsize=4, label=name)
        else:
            line = ax.plot(grid, mean, label=name)[0]
            ax.fill_between(grid, mean - std, mean + std, alpha=0.2, color=line.get_color())
        drawn += 1
    ax.set_xlabel("environment steps")
    ax.set_ylabel(tag)
    ax.set_title(f"{tag}: mean +- std over seeds")
    if drawn:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, f"no {tag} scalars logged", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return drawn


def _command(sweep_dir: Path) -> str:
    from omegaconf import OmegaConf

    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        return "(multirun.yaml not found)"
    cfg = OmegaConf.load(path)
    hydra_args = [str(t) for t in OmegaConf.select(cfg, "hydra.overrides.hydra") or []
                  if not str(t).startswith("hydra.mode=")]
    task = [str(t) for t in OmegaConf.select(cfg, "hydra.overrides.task") or []]
    return "python train.py -m " + " ".join(hydra_args + task)


def run_aggregate(sweep_dir: str | Path, out: str | Path | None = None,
                  tag: str = DEFAULT_TAG) -> dict[str, Any]:
    """Read a sweep, write the table (md, csv) and the plot; returns paths and rows."""
    root = Path(sweep_dir)
    runs = load_sweep(root, tag)
    keys, rows = aggregate(runs)
    out_dir = Path(out) if out else root
    out_dir.mkdir(parents=True, exist_ok=True)
    title = (f"Sweep `{root}`: {len(runs)} runs, {len(rows)} groups. "
             f"Command: `{_command(root)}`")
    md = markdown(keys, rows, title)
    (out_dir / "aggregate.md").write_text(md)
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with (out_dir / "aggregate.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    curves = plot_curves(runs, keys, out_dir / "learning_curves.png", tag)
    return {"markdown": md, "rows": rows, "keys": keys, "runs": len(runs), "curves": curves,
            "files": [str(out_dir / n) for n in ("aggregate.md", "aggregate.csv",
                                                  "learning_curves.png")]}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``rewardlearn-aggregate <sweep dir> [out=...] [tag=...]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or any(a in ("-h", "--help", "help") for a in args):
        print(__doc__)
        raise SystemExit(0)
    sweep, opts = None, {"out": None, "tag": DEFAULT_TAG}
    for token in args:
        key, sep, value = token.partition("=")
        if not sep:
            if sweep is not None:
                raise ValueError(f"one sweep directory at a time; got {sweep!r} and {token!r}")
            sweep = token
        elif key in opts:
            opts[key] = value
        else:
            raise ValueError(f"unknown option {key!r}; options: out, tag")
    if sweep is None:
        raise ValueError("give the sweep directory: rewardlearn-aggregate multirun/<dir>")
    result = run_aggregate(sweep, opts["out"], str(opts["tag"]))
    print(result["markdown"])
    print("written: " + ", ".join(result["files"]) + f" ({result['curves']} curves)")
    return result


def cli() -> None:
    """Entry point; input errors exit with a message, no trace."""
    run_cli(main)


if __name__ == "__main__":
    cli()
