"""Do learned progress signals hold off the demos? Outcome ranking and exploit probes on
pick_place, for the progress model and ``reward=drs`` checkpoints.

Usage::

    python bench/bench_outcomes.py --drs bench/_work/drs/t1000000/runs/drs_s0 ...
    python bench/bench_outcomes.py --progress-work bench/_work/progress_shaping --drs ...

Rollouts: 150 scripted-expert episodes with action noise ``--noise`` (default 1.25, about
half succeed) kept whatever their outcome (``rewardlearn-collect ... noise=1.25
only_success=false``, seeds 20000+): Kendall's tau-b between each model's predicted final
progress and the outcome, the most a perfect ranking can reach on them (tau-b against a
binary outcome is capped at ``sqrt(n_s n_f / C(n, 2))``: 0.49 at noise 2.0, where 21 of 150
succeed, hence the balanced default), tau-b against the furthest stage reached (an ordinal
outcome that also orders the failures), and the success-failure gap. Probes
(:mod:`rewardlearn_envs.probes`, 5 seeds, 150 steps): hover over the untouched cube, a
stall, a dropped cube; predicted vs true progress over the last 10 states. For
``reward=drs`` the progress is its level ``(k + alpha tanh(D_k)) / K`` (1 at success).
The progress model is the one ``bench_progress_shaping.py`` trains (``--progress-work``,
made there if missing). Writes ``bench/results/outcomes.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from _common import add_paths, git_commit  # bench/ is on sys.path when a script runs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def rollouts(work: Path, noise: float) -> list[dict[str, Any]]:
    """150 noisy expert episodes of any outcome, as rater episodes."""
    from rewardlearn.cli.collect import CollectConfig, collect
    from rewardlearn.metrics.outcomes import episodes_from_dataset

    out = work / f"rollouts-noise{round(noise * 100)}"
    if not out.exists():
        collect(CollectConfig(env="pick_place", n_episodes=150, noise=noise, only_success=False,
                              seed=20000, out=str(out),
                              dataset_id="rewardlearn/pick_place/outcomes-v0"), verbose=False)
    return episodes_from_dataset(str(out))


def load_spaces() -> tuple[Any, Any]:
    """pick_place's observation and action spaces."""
    from rewardlearn.env_factory import make_env

    env = make_env("pick_place")
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drs", type=Path, nargs="*", default=[],
                        help="run folders of reward=drs runs (their reward_model.pt)")
    parser.add_argument("--progress-work", type=Path, default=None,
                        help="bench_progress_shaping.py's work folder (its progress model)")
    parser.add_argument("--noise", type=float, default=1.25,
                        help="action noise of the scripted expert's rollouts")
    add_paths(parser, "outcomes")
    args = parser.parse_args()

    import rewardlearn_envs  # noqa: F401  (registers the env)
    from rewardlearn_envs.probes import pick_place_probes

    from rewardlearn.metrics.outcomes import exploit_probe, outcome_ranking, rater_for
    from rewardlearn.rewards.checkpoint import load_reward_model
    from rewardlearn.utils import set_torch_threads

    set_torch_threads(1)
    args.work.mkdir(parents=True, exist_ok=True)
    episodes = rollouts(args.work, args.noise)
    probes = pick_place_probes(seeds=range(5), steps=150)
    raters: dict[str, Any] = {}
    if args.progress_work is not None:
        from _pick_place import prepare_model

        from rewardlearn.progress.reward import ProgressReward

        model_path, _ = prepare_model(args.progress_work)
        env_spaces = load_spaces()
        raters["progress model (`rewardlearn-train-progress`, bench_progress_shaping's data)"] = (
            rater_for(ProgressReward(*env_spaces, path=str(model_path))))
    for run in args.drs:
        raters[f"`reward=drs`, {run.name} (after training)"] = rater_for(
            load_reward_model(run / "reward_model.pt"))
    rows = []
    for name, rate in raters.items():
        ranking = outcome_ranking(rate, episodes)
        probe = exploit_probe(rate, probes)
        rows.append({"model": name, **ranking, "probes": probe})
        print(name, json.dumps({**ranking, "probes": probe}, default=float))
    commit = git_commit()
    n_succ = int(sum(ep["success"] for ep in episodes))
    lines = ["## Outcome ranking and exploit probes on pick_place", "",
             f"Commit {commit}; command: `python bench/bench_outcomes.py"
             + (f" --progress-work {args.progress_work}" if args.progress_work else "")
             + (" --drs " + " ".join(map(str, args.drs)) if args.drs else "")
             + f" --noise {args.noise}`.", "",
             f"Rollouts: 150 noisy expert episodes (action noise {args.noise}), {n_succ} "
             "successes. Kendall's tau-b of predicted final progress vs outcome (success), "
             "with the most a perfect ranking with distinct ratings can reach on these outcomes "
             "(max; a rater that reads the success signal, as `reward=drs` does, rates every "
             "success exactly 1 and may exceed it), and vs the "
             "furthest stage reached (+1 for a success; orders the failures too); "
             "concordance = share of "
             "(success, failure) pairs with the success rated higher (ties half; 1 perfect, "
             "0.5 chance); gap = mean final progress of successes minus failures. Probes: "
             "5 seeds x 150 steps; predicted / true progress over the last 10 states "
             "(excess = predicted - true; target <= 0.1).",
             "", "| model | Kendall tau (max) | tau vs stage | concordance | gap | hover | stall "
             "| drop |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [f"{r['probes'][p]['predicted']:.3f} / {r['probes'][p]['true']:.3f} "
                 f"({r['probes'][p]['excess']:+.3f})" for p in ("hover", "stall", "drop")]
        lines.append(f"| {r['model']} | {r['kendall_tau']:.3f} ({r['kendall_tau_max']:.3f}) | "
                     f"{r['kendall_tau_stage']:.3f} | {r['concordance']:.3f} | "
                     f"{r['success_failure_gap']:.3f} | " + " | ".join(cells) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
