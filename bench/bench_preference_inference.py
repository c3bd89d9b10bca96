"""Per-step cost of the preference reward: stacked inference against the members one by one.

A preference run calls the reward ensemble once per env step (``n_envs`` rows). On a fast
env and agent (Hopper, PPO: ~0.5 ms per step in all) that call is a large share of the
run. :meth:`RewardEnsemble.predict` runs each layer of all members as one batched matmul;
:meth:`RewardEnsemble.forward` calls the ``E`` member MLPs one after the other. This
script times both on the default ensemble (3 members, 3 x 256 hidden, LeakyReLU) for a
few batch sizes, interleaving the two in rounds so that load changes hit both alike, and
reports the median time per call and the ratio. Writes ``--out``.

Usage::

    python bench/bench_preference_inference.py
    python bench/bench_preference_inference.py --quick
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import git_commit  # noqa: E402

from rewardlearn.preference.modeling import RewardEnsemble  # noqa: E402

# per-step feature width (obs + action) of a few envs
ENVS = {"Hopper-v5": 11 + 3, "HalfCheetah-v5": 17 + 6, "rewardlearn/PickPlace-v0": 34 + 4}


def per_call_us(fn: Callable[[torch.Tensor], object], x: torch.Tensor, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn(x)
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64, 1024])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--quick", action="store_true", help="3 rounds, fewer calls")
    ap.add_argument("--out", type=Path,
                    default=ROOT / "bench" / "results" / "preference_inference.md")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rounds = 3 if args.quick else args.rounds
    rows = []
    for env, dim in ENVS.items():
        ens = RewardEnsemble(dim, 3, (256, 256, 256), seed=0).eval()
        ens.norm.update(torch.randn(1000, dim))
        for batch in args.batches:
            x = torch.randn(batch, dim)
            calls = max(5, (200 if args.quick else 1000) // max(1, batch // 8))
            with torch.no_grad():
                torch.testing.assert_close(ens.predict(x), ens(x))
                for _ in range(20):  # warm-up
                    ens(x), ens.predict(x)
                times: dict[str, list[float]] = {"forward": [], "predict": []}
                for _ in range(rounds):
                    times["forward"].append(per_call_us(ens, x, calls))
                    times["predict"].append(per_call_us(ens.predict, x, calls))
            fwd, pred = (float(np.median(times[k])) for k in ("forward", "predict"))
            ratios = np.array(times["forward"]) / np.array(times["predict"])
            rows.append(f"| {env} | {dim} | {batch} | {fwd:.1f} | {pred:.1f} | "
                        f"**{np.median(ratios):.2f}x** ({ratios.min():.2f}-{ratios.max():.2f}) |")
            print(rows[-1], flush=True)
    lines = [
        "## Preference reward inference: stacked members against one call per member",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, CPU torch "
        f"{torch.__version__}, one torch thread; commit {git_commit()}; command: "
        f"`python bench/bench_preference_inference.py {' '.join(sys.argv[1:])}`.",
        "Default ensemble (3 members, 3 x 256 hidden, LeakyReLU, input standardisation); "
        f"median time per call over {rounds} interleaved rounds; 'speed-up' = median of the "
        "per-round ratios forward / predict (range over rounds). A preference run calls it "
        "once per env step with `n_envs` rows.",
        "",
        "| env (feature width) | width | rows per call | `forward` (us) | `predict` (us) "
        "| speed-up |",
        "|---|---|---|---|---|---|",
        *rows,
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
