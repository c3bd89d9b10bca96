"""PEARL's alignment offline: how many transferred labels come out right, per alignment.

No RL: for each ``source:target`` pair, the source run's labelled segments (a
``reward=preference teacher=oracle`` run's ``reward_model.pt``) are aligned with target
segments cut from the target task's scripted expert at action-noise levels
:data:`NOISE` (10 episodes each, successes and failures kept; each segment's true return is
the sum of the target's dense reward over it), and every alignment of
:data:`ALIGNMENTS` transfers the source labels to candidate target pairs as ``reward=pearl``
does (``rewardlearn.pearl.transport``). Reported: the share of transferred labels that
agree with the target's true returns, mean and range over ``--repeats`` draws of 200 target
segments. The control row aligns the target with itself (half its segments labelled by
their true returns): the ceiling of the alignment when the geometry is the same.

    python bench/bench_pearl_alignment.py     # -> bench/results/pearl_alignment.md

Sources (default): ``bench/_work/pearl/t1000000/source_window-close-v3_s0`` (bench_pearl)
and ``bench/_work/suite/t1000000/button-press-topdown-v3/preference_s0`` (bench_suite).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _common import ROOT, add_paths, git_commit

NOISE = (0.0, 0.5, 1.0, 2.0, 4.0)
PAIRS = {
    "window-close-v3:window-open-v3":
        ROOT / "bench/_work/pearl/t1000000/source_window-close-v3_s0",
    "button-press-topdown-v3:button-press-v3":
        ROOT / "bench/_work/suite/t1000000/button-press-topdown-v3/preference_s0",
}
ALIGNMENTS: dict[str, tuple[str | None, float]] = {
    "GW on every feature (the default, as published)": (None, 1.0),
    "GW on object-centric vectors (`relative`)": ("relative", 1.0),
    "GW on distances (`distances`)": ("distances", 1.0),
    "fused GW 0.5 on distances (`structure_weight=0.5`)": ("distances", 0.5),
    "fused GW 0.1 on distances (`structure_weight=0.1`)": ("distances", 0.1),
}
"""Label -> (``align_encoder`` target, ``structure_weight``)."""


def target_segments(task: str, work: Path, length: int, per_episode: int = 5
                    ) -> tuple[list[np.ndarray], np.ndarray]:
    """Segments ``(length, obs + act)`` of the target's noisy scripted expert and their true
    returns (collected once into ``work``)."""
    from rewardlearn.demos import load_demos

    segs, rets = [], []
    rng = np.random.default_rng(0)
    for i, noise in enumerate(NOISE):
        out = work / task / f"noise{round(noise * 100)}"
        if not (out / "data" / "metadata.json").is_file():
            subprocess.run([sys.executable, "-m", "rewardlearn.cli.collect", "env=metaworld",
                            f"env.task={task}", "n_episodes=10", f"noise={noise}",
                            "only_success=false", f"seed={70_000 + 1000 * i}", f"out={out}",
                            "overwrite=true"], cwd=ROOT, check=True, capture_output=True)
        for ep in load_demos(out):
            obs, acts = np.asarray(ep.observations)[:-1], np.asarray(ep.actions)
            rew = np.asarray(ep.rewards)
            for t0 in rng.integers(0, len(acts) - length, per_episode):
                segs.append(np.concatenate([obs[t0:t0 + length], acts[t0:t0 + length]], 1))
                rets.append(float(rew[t0:t0 + length].sum()))
    return segs, np.asarray(rets)


def transfer_accuracy(src_segs: list[np.ndarray], pairs: np.ndarray, labels: np.ndarray,
                      tgt_segs: list[np.ndarray], tgt_returns: np.ndarray,
                      align: Callable[[np.ndarray], np.ndarray], structure_weight: float,
                      rng: np.random.Generator, n_candidates: int = 4000) -> float:
    """The share of transferred labels (candidate pairs drawn as ``reward=pearl`` draws
    them) that agree with the target's true returns."""
    from rewardlearn.pearl.transport import (
        candidate_pairs,
        cross_segment_distances,
        gw_plan,
        segment_distances,
        transfer_labels,
    )

    a_src = [align(s) for s in src_segs]
    a_tgt = [align(s) for s in tgt_segs]
    length = max(len(s) for s in a_src)
    cross = (cross_segment_distances(a_src, a_tgt, length) if structure_weight < 1 else None)
    plan, _ = gw_plan(segment_distances(a_src), segment_distances(a_tgt, length),
                      cross=cross, structure_weight=structure_weight)
    ti, tj = candidate_pairs(plan, pairs, n_candidates, rng)
    z, cover = transfer_labels(plan, pairs, labels, ti, tj)
    keep = (cover > 0) & (z != 0.5) & (tgt_returns[ti] != tgt_returns[tj])
    return float(((z[keep] > 0.5) == (tgt_returns[ti] > tgt_returns[tj])[keep]).mean())


def aligner(target: str | None) -> Callable[[np.ndarray], np.ndarray]:
    """Per-step features the alignment compares (Meta-World's ``relative_features``)."""
    if target is None:
        return lambda seg: np.asarray(seg, np.float64)
    from omegaconf import OmegaConf

    from rewardlearn.encoders import build_encoder

    cfg = OmegaConf.load(ROOT / "conf" / "env" / "metaworld.yaml")
    kwargs = OmegaConf.to_container(cfg.relative_features, resolve=True)
    enc: Any = build_encoder({"target": target, "kwargs": kwargs})
    return lambda seg: np.asarray(enc.embed(np.asarray(seg)[:, :39]), np.float64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", nargs="+", default=list(PAIRS),
                    help="source:target; the source run is --source-of or the default")
    ap.add_argument("--source-of", nargs="*", default=[],
                    help="source:target=<run folder> for pairs without a default source")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--source-pairs", type=int, default=300)
    add_paths(ap, "pearl_alignment")
    args = ap.parse_args()
    from rewardlearn.pearl.source import read_source

    sources = {**PAIRS, **{k: Path(v) for k, v in (s.split("=", 1) for s in args.source_of)}}
    t0 = time.perf_counter()
    rows = []
    for pair in args.pairs:
        _, tgt = pair.split(":")
        src = read_source(str(sources[pair]), args.source_pairs, seed=0)
        segs, rets = target_segments(tgt, args.work, src.segment_length)
        for label, (target, weight) in ALIGNMENTS.items():
            align = aligner(target)
            accs, ctrl = [], []
            for rep in range(args.repeats):
                rng = np.random.default_rng(rep)
                pick = rng.choice(len(segs), 200, replace=False)
                tsegs, trets = [segs[i] for i in pick], rets[pick]
                accs.append(transfer_accuracy(src.segments, src.pairs, src.labels, tsegs,
                                              trets, align, weight, rng))
                # control: the target's own first 100 segments, labelled by true return
                sp = rng.integers(0, 100, (args.source_pairs, 2))
                sp = sp[sp[:, 0] != sp[:, 1]]
                slab = (trets[sp[:, 0]] > trets[sp[:, 1]]).astype(float)
                ctrl.append(transfer_accuracy(tsegs[:100], sp, slab, tsegs[100:], trets[100:],
                                              align, weight, rng))
            rows.append((pair, label, accs, ctrl))
            print(f"{pair} | {label}: {np.mean(accs):.1%} (control {np.mean(ctrl):.1%})",
                  flush=True)
    lines = [
        "## PEARL's alignment offline: transferred-label accuracy per alignment", "",
        f"Machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, no GPU; commit "
        f"{git_commit(dirty=True)}; command: `python bench/bench_pearl_alignment.py "
        f"{' '.join(sys.argv[1:])}`; {(time.perf_counter() - t0) / 60:.1f} min.", "",
        f"Source: a `reward=preference teacher=oracle` run's labelled pairs "
        f"({args.source_pairs} drawn). Target: 200 segments of the source's length, drawn "
        f"from the target's scripted expert at action noise {', '.join(map(str, NOISE))} "
        "(10 episodes each), true return = the dense reward's sum over the segment. "
        "Accuracy: transferred labels (4000 candidate pairs drawn as `reward=pearl` draws "
        "them, those with labelled mass) that agree with the true returns; mean (min-max) "
        f"over {args.repeats} draws. Control: the target aligned with itself (100 segments "
        "labelled by their true returns -> the other 100).", "",
        "| source -> target | alignment | transferred-label accuracy "
        "| control (target -> itself) |",
        "|---|---|---|---|"]
    for pair, label, accs, ctrl in rows:
        lines.append(f"| {pair.replace(':', ' -> ')} | {label} | **{np.mean(accs):.1%}** "
                     f"({min(accs):.0%}-{max(accs):.0%}) | {np.mean(ctrl):.1%} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
