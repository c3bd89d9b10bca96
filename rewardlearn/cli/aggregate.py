"""Aggregate a Hydra multirun sweep: rliable statistics, a performance profile, learning curves.

Usage::

    python train.py -m env=pendulum agent=sac reward=env,preference seed=0,1,2
    rewardlearn-aggregate multirun/2026-12-01_10-00-00_ab12cd
    rewardlearn-aggregate multirun/<dir> metric=env_return_mean reps=2000 seed=0 out=results/

Every run directory of the sweep (one with ``summary.json`` and
``.hydra/overrides.yaml``) is read; runs are grouped by the override keys whose
values vary across the sweep, except ``seed``. Statistics come from rliable
(Agarwal et al., NeurIPS 2021), each run being one score on one task:

- per group and metric of ``summary.json`` (``env_return_mean``,
  ``success_rate``, ``learned_return_mean``, ``train_steps_per_s``): the
  interquartile mean (IQM, ``metrics.aggregate_iqm``: ``floor(n / 4)`` runs cut
  from each end) and the mean, each with a 95% stratified-bootstrap confidence
  interval (``rly.get_interval_estimates``, percentile method), the sample
  standard deviation (``ddof=1``) and the number of runs;
- for ``metric`` (default ``env_return_mean``): the probability of improvement
  ``P(X > Y)`` of each pair of groups with its interval
  (``metrics.probability_of_improvement``), and the performance profile (the
  fraction of runs scoring above each threshold, rliable's score distribution,
  with its bootstrap band) plotted with ``plot_utils.plot_performance_profiles``.

Intervals from 3 seeds are wide; that is what they should say. Options:
``reps`` (bootstrap resamples, default 2000), ``seed`` (of the resampling, so a
table is reproducible), ``metric``, ``tag`` (the TensorBoard scalar of the
learning curves, default SB3's ``rollout/ep_rew_mean``: mean over seeds on a
common step grid, shaded by +- one standard deviation) and ``out``.

Writes ``aggregate.md``, ``aggregate.csv``, ``performance_profile.png`` and
``learning_curves.png`` to ``out`` (default: the sweep directory) and prints the
table.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewardlearn.cli.options import cli_args, parse_key_values, run_cli

METRICS = ("env_return_mean", "success_rate", "learned_return_mean", "train_steps_per_s")
DEFAULT_TAG = "rollout/ep_rew_mean"
DEFAULT_METRIC = "env_return_mean"
DEFAULT_REPS = 2000
CONFIDENCE = 0.95
OPTIONS: dict[str, Callable[[str], Any]] = {"out": str, "tag": str, "metric": str,
                                             "reps": int, "seed": int}


@dataclass
class Run:
    """One run of a sweep: its overrides, summary and learning curve."""

    path: Path
    overrides: dict[str, str]
    summary: dict[str, Any]
    curve: tuple[np.ndarray, np.ndarray] = field(
        default_factory=lambda: (np.zeros(0), np.zeros(0)))


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


# ----------------------------------------------------------------------------- rliable


def _scores(values: Sequence[float]) -> np.ndarray:
    """rliable's score matrix: ``(runs, tasks)``, here one task (the sweep's env)."""
    return np.asarray(values, np.float64).reshape(-1, 1)


def _iqm(scores: np.ndarray) -> np.ndarray:
    from rliable import metrics

    return np.array([metrics.aggregate_iqm(scores)])


def _mean(scores: np.ndarray) -> np.ndarray:
    from rliable import metrics

    return np.array([metrics.aggregate_mean(scores)])


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed numpy's global generator for the block, then restore it.

    rliable 1.2 draws its bootstrap indices with ``np.random.choice`` (the
    ``random_state`` it accepts never reaches them), so a reproducible interval
    needs the global generator seeded.
    """
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _intervals(score_dict: Mapping[str, Any], func: Callable[..., Any], reps: int,
               seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``rly.get_interval_estimates`` (95%, percentile), reproducible for a seed."""
    from rliable import library as rly

    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    with _seeded(seed):
        return rly.get_interval_estimates(dict(score_dict), func, reps=reps,
                                          confidence_interval_size=CONFIDENCE)


def interval_estimates(groups: Mapping[str, Sequence[float]], reps: int = DEFAULT_REPS,
                       seed: int = 0) -> dict[str, dict[str, float]]:
    """IQM and mean with their stratified-bootstrap 95% intervals, per group.

    Returns ``{group: {iqm, iqm_lo, iqm_hi, mean, mean_lo, mean_hi}}``; groups
    without values are left out.
    """
    score_dict = {g: _scores(v) for g, v in groups.items() if len(v)}
    out: dict[str, dict[str, float]] = {g: {} for g in score_dict}
    for name, func in (("iqm", _iqm), ("mean", _mean)):  # one call each, as rliable's examples
        points, cis = _intervals(score_dict, func, reps, seed)
        for g in score_dict:
            lo, hi = np.ravel(cis[g])
            out[g].update({name: float(np.ravel(points[g])[0]), f"{name}_lo": float(lo),
                           f"{name}_hi": float(hi)})
    return out


def probability_of_improvement(groups: Mapping[str, Sequence[float]],
                               reps: int = DEFAULT_REPS, seed: int = 0
                               ) -> list[dict[str, Any]]:
    """``P(X > Y)`` with its 95% interval for every pair of groups (in the given order)."""
    from rliable import metrics

    pairs = [(x, y) for x, y in itertools.combinations(groups, 2)
             if len(groups[x]) and len(groups[y])]
    score_dict = {f"{i}": [_scores(groups[x]), _scores(groups[y])]
                  for i, (x, y) in enumerate(pairs)}
    points, cis = _intervals(score_dict, metrics.probability_of_improvement, reps, seed)
    out = []
    for i, (x, y) in enumerate(pairs):
        lo, hi = np.ravel(cis[f"{i}"])
        out.append({"x": x, "y": y, "p": float(points[f"{i}"]), "lo": float(lo),
                    "hi": float(hi)})
    return out


def performance_profile(groups: Mapping[str, Sequence[float]], taus: np.ndarray,
                        reps: int = DEFAULT_REPS, seed: int = 0
                        ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Fraction of runs scoring above each ``tau`` per group, with its 95% bootstrap band
    (``rly.create_performance_profile``)."""
    from rliable import library as rly

    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    score_dict = {g: _scores(v) for g, v in groups.items() if len(v)}
    with _seeded(seed):
        return rly.create_performance_profile(score_dict, taus, reps=reps,
                                              confidence_interval_size=CONFIDENCE)


def plot_profile(groups: Mapping[str, Sequence[float]], metric: str, path: Path,
                 reps: int = DEFAULT_REPS, seed: int = 0, points: int = 101) -> None:
    """The performance profile of ``metric`` as a PNG (rliable's ``plot_utils``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rliable import plot_utils

    values = np.concatenate([np.asarray(v, np.float64) for v in groups.values()])
    lo, hi = float(values.min()), float(values.max())
    pad = 0.05 * (hi - lo) if hi > lo else max(abs(lo) * 0.05, 1.0)
    taus = np.linspace(lo - pad, hi + pad, points)
    profiles, cis = performance_profile(groups, taus, reps, seed)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    plot_utils.plot_performance_profiles(
        profiles, taus, performance_profile_cis=cis, ax=ax, xlabel=f"{metric} ($\\tau$)",
        ylabel="fraction of runs $> \\tau$", legend=True, labelsize="large",
        ticklabelsize="medium", legendsize="medium")
    ax.set_title(f"performance profile of {metric} (95% bootstrap bands)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------- table


def group_label(keys: Sequence[str], overrides: Mapping[str, str]) -> str:
    """``reward=env, lr=0.1``; ``all runs`` when nothing varies."""
    return ", ".join(f"{k}={overrides.get(k, '')}" for k in keys) or "all runs"


def metric_values(runs: Sequence[Run], metric: str) -> list[float]:
    """The runs' numeric values of a summary field (null and missing ones left out)."""
    return [float(r.summary[metric]) for r in runs
            if isinstance(r.summary.get(metric), (int, float))
            and not isinstance(r.summary.get(metric), bool)]


def numeric_fields(runs: Sequence[Run]) -> list[str]:
    """Summary fields with a number in at least one run (the valid ``metric`` values)."""
    return sorted({k for r in runs for k, v in r.summary.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)})


def grouped(runs: Sequence[Run]) -> tuple[list[str], dict[str, list[Run]]]:
    """Group keys and the runs of each group, in sweep order."""
    keys = group_keys(runs)
    groups: dict[str, list[Run]] = {}
    for r in runs:
        groups.setdefault(group_label(keys, r.overrides), []).append(r)
    return keys, groups


def aggregate(runs: Sequence[Run], metrics: Sequence[str] = METRICS,
              reps: int = DEFAULT_REPS, seed: int = 0
              ) -> tuple[list[str], list[dict[str, Any]]]:
    """Group keys and one row per group: ``n``, ``seeds`` and, per metric,
    ``<metric>_{n,iqm,iqm_lo,iqm_hi,mean,mean_lo,mean_hi,std}``."""
    keys, groups = grouped(runs)
    rows = []
    for members in groups.values():
        row: dict[str, Any] = {k: members[0].overrides.get(k, "") for k in keys}
        row["n"] = len(members)
        row["seeds"] = " ".join(sorted((str(m.summary.get("seed", m.overrides.get("seed", "?")))
                                        for m in members), key=str))
        rows.append(row)
    for metric in metrics:
        values = {g: metric_values(members, metric) for g, members in groups.items()}
        stats = interval_estimates(values, reps, seed)
        for row, g in zip(rows, groups, strict=True):
            if g not in stats:
                continue
            vals = values[g]
            row[f"{metric}_n"] = len(vals)
            row.update({f"{metric}_{k}": v for k, v in stats[g].items()})
            row[f"{metric}_std"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
    return keys, rows


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}" if abs(v) < 1e-3 and v else f"{v:.2f}"
    return str(v)


def _ci(row: Mapping[str, Any], name: str) -> str:
    return f"{_fmt(row[name])} [{_fmt(row[name + '_lo'])}, {_fmt(row[name + '_hi'])}]"


def markdown(keys: Sequence[str], rows: Sequence[dict[str, Any]], title: str,
             improvements: Sequence[dict[str, Any]] = (), metric: str = DEFAULT_METRIC,
             reps: int = DEFAULT_REPS, seed: int = 0) -> str:
    """One table per metric (IQM [lo, hi], mean [lo, hi], std, n) and the P(X > Y) table."""
    lines = [title, "", f"IQM and mean over runs with 95% stratified-bootstrap confidence "
             f"intervals (rliable, {reps} resamples, seed {seed}); std: sample standard "
             "deviation; n: runs with a value.", ""]
    head = [*keys, "n", "seeds", "IQM [95% CI]", "mean [95% CI]", "std"]
    for m in [m for m in dict.fromkeys([*METRICS, metric]) if any(f"{m}_iqm" in r for r in rows)]:
        lines += [f"### {m}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            cells = [str(r[k]) for k in keys] + [str(r.get(f"{m}_n", 0)), r["seeds"]]
            cells += [_ci(r, f"{m}_iqm"), _ci(r, f"{m}_mean"), _fmt(r[f"{m}_std"])] \
                if f"{m}_iqm" in r else ["-", "-", "-"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if improvements:
        lines += [f"### Probability of improvement ({metric})", "",
                  "| X | Y | P(X > Y) [95% CI] |", "|---|---|---|"]
        lines += [f"| {i['x']} | {i['y']} | {_fmt(i['p'])} [{_fmt(i['lo'])}, {_fmt(i['hi'])}] |"
                  for i in improvements]
        lines.append("")
    return "\n".join(lines)


def plot_curves(runs: Sequence[Run], keys: Sequence[str], path: Path, tag: str,
                points: int = 100) -> int:
    """Mean +- std learning curve per group as a PNG; returns the number of curves drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[Run]] = {}
    for r in runs:
        groups.setdefault(group_label(keys, r.overrides), []).append(r)
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
                  tag: str = DEFAULT_TAG, metric: str = DEFAULT_METRIC,
                  reps: int = DEFAULT_REPS, seed: int = 0) -> dict[str, Any]:
    """Read a sweep; write the tables (md, csv), the performance profile and the curves.

    Returns the markdown, rows, group keys, pairwise improvements, run count,
    curve count and the written files.
    """
    root = Path(sweep_dir)
    runs = load_sweep(root, tag)
    valid = numeric_fields(runs)
    if metric not in valid:
        raise ValueError(f"unknown metric {metric!r}: no run's summary.json has a number "
                         f"under it; valid: {', '.join(valid)}")
    metrics = list(dict.fromkeys([*METRICS, metric]))
    keys, rows = aggregate(runs, metrics, reps, seed)
    _, groups = grouped(runs)
    scores = {g: metric_values(members, metric) for g, members in groups.items()}
    improvements = probability_of_improvement(scores, reps, seed)
    out_dir = Path(out) if out else root
    out_dir.mkdir(parents=True, exist_ok=True)
    title = (f"Sweep `{root}`: {len(runs)} runs, {len(rows)} groups. "
             f"Command: `{_command(root)}`")
    md = markdown(keys, rows, title, improvements, metric, reps, seed)
    (out_dir / "aggregate.md").write_text(md)
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with (out_dir / "aggregate.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    plot_profile(scores, metric, out_dir / "performance_profile.png", reps, seed)
    curves = plot_curves(runs, keys, out_dir / "learning_curves.png", tag)
    return {"markdown": md, "rows": rows, "keys": keys, "improvements": improvements,
            "runs": len(runs), "curves": curves,
            "files": [str(out_dir / n) for n in ("aggregate.md", "aggregate.csv",
                                                  "performance_profile.png",
                                                  "learning_curves.png")]}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``rewardlearn-aggregate <sweep dir> [metric=...] [reps=...] [seed=...] [out=...]
    [tag=...]``."""
    args = cli_args(argv, __doc__)
    if not args:
        print(__doc__)
        raise SystemExit(0)
    dirs = [a for a in args if "=" not in a]
    if len(dirs) > 1:
        raise ValueError(f"one sweep directory at a time; got {', '.join(map(repr, dirs))}")
    if not dirs:
        raise ValueError("give the sweep directory: rewardlearn-aggregate multirun/<dir>")
    opts = parse_key_values([a for a in args if "=" in a], OPTIONS)
    result = run_aggregate(dirs[0], opts.get("out"), opts.get("tag", DEFAULT_TAG),
                           opts.get("metric", DEFAULT_METRIC), opts.get("reps", DEFAULT_REPS),
                           opts.get("seed", 0))
    print(result["markdown"])
    print("written: " + ", ".join(result["files"]) + f" ({result['curves']} curves)")
    return result


def cli() -> None:
    """Entry point; input errors exit with a message, no trace."""
    run_cli(main)


if __name__ == "__main__":
    cli()
