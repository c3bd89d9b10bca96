"""How well learned potentials track pick_place's true progress on a policy's own states.

Usage::

    python bench/bench_potential_accuracy.py --policy <run dir> \\
        --progress [<name>=]<model.pt> [...] --perceptual-demos <demos> [--episodes 30]

Rolls out the trained (or behaviour-cloned) PPO agent in ``--policy`` (``agent.zip`` and
``vecnormalize.pkl``, as ``train.py`` writes them) with its stochastic policy, the states
shaping sees during training, and scores every state with each potential. Reported per
potential, against the env's true progress (:func:`rewardlearn_envs.pick_place.state_progress`):
Spearman of the values, Pearson of the per-step changes (what shaping adds to the reward),
the fraction of the true-stage states scored in each quarter of [0, 1], and the Spearman
within each true stage (does the potential order the states of one stage?).
``--env-stage`` adds, per progress model, the same model with the env's stage given
(``shaping.potential.stage_key=stage``). Progress models
score through :class:`~rewardlearn.progress.ProgressScorer` (the windows of training time),
the perceptual potential (state features, fitted on ``--perceptual-demos``) per state.
Writes ``bench/results/potential_accuracy.md``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import git_commit  # noqa: E402


def rollouts(policy: Path, episodes: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Observation sequences of ``episodes`` stochastic episodes (held-out reset seeds), and
    the env's ``info["stage"]`` of every state after the first."""
    import gymnasium as gym
    import rewardlearn_envs  # noqa: F401  (registers the env)
    import torch

    from rewardlearn.agents import agent_policy

    act = agent_policy(str(policy / "agent.zip"))
    torch.manual_seed(0)
    env = gym.make("rewardlearn/PickPlace-v0", reward_type="sparse")
    out, stages = [], []
    for k in range(episodes):
        obs, _ = env.reset(seed=20_000 + k)
        seq, stage, done = [obs], [], False
        while not done:
            obs, _, terminated, truncated, info = env.step(act(obs))
            seq.append(obs)
            stage.append(int(info["stage"]))
            done = terminated or truncated
        out.append(np.asarray(seq))
        stages.append(np.asarray(stage))
    env.close()
    return out, stages


def progress_values(model_path: str, episodes: list[np.ndarray],
                    stages: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """A progress model's prediction for every state, with the windows of rollout time;
    with ``stages``, tau conditioned on the env's stage (``shaping.potential.stage_key``)."""
    from rewardlearn.progress import ProgressModel
    from rewardlearn.progress.potential import ProgressScorer
    from rewardlearn.rewards.base import TransitionBatch

    scorer = ProgressScorer(ProgressModel.load(model_path))
    out = []
    for e, seq in enumerate(episodes):
        n = len(seq) - 1
        values = []
        for t in range(n):
            last = t == n - 1
            batch = TransitionBatch.from_arrays(seq[t:t + 1], np.zeros((1, 4), np.float32),
                                                seq[t + 1:t + 2], np.array([last]),
                                                np.array([False]))
            known = None if stages is None else stages[e][t:t + 1]
            before, after = scorer.score(batch, known)
            if t == 0:
                values.append(before.progress[0])
            values.append(after.progress[0])
        out.append(np.asarray(values))
    return out


def parse_settings(entry: str) -> tuple[str, dict[str, Any]]:
    """``name=key:value,key:value`` (values read as YAML) -> name and settings."""
    import yaml

    name, _, rest = entry.partition("=")
    settings = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition(":")
        settings[key.strip()] = yaml.safe_load(value)
    return name or "defaults", settings


def perceptual_values(demos: str, episodes: list[np.ndarray],
                      settings: dict[str, Any] | None = None) -> list[np.ndarray]:
    """The perceptual potential (state features) fitted on ``demos``, for every state."""
    import gymnasium as gym

    from rewardlearn.perceptual.potential import PerceptualPotential

    env = gym.make("rewardlearn/PickPlace-v0")
    potential = PerceptualPotential(demos=demos, encoder={"target": "state", "kwargs": {}},
                                    settings=settings)
    potential.bind(env.observation_space, env.action_space)
    return [np.asarray(potential(seq)) for seq in episodes]


def accuracy(values: list[np.ndarray], truth: list[np.ndarray]) -> dict[str, Any]:
    """Spearman of values, Pearson of per-step changes, and scored quarter per true stage."""
    from scipy.stats import pearsonr, spearmanr

    v, t = np.concatenate(values), np.concatenate(truth)
    dv = np.concatenate([np.diff(x) for x in values])
    dt = np.concatenate([np.diff(x) for x in truth])
    stage = np.minimum((t * 4).astype(int), 3)
    within = {k: float(spearmanr(v[stage == k], t[stage == k])[0])
              for k in range(4) if (stage == k).sum() > 5}
    spread = {}
    for k in range(4):
        sel = stage == k
        if sel.any():
            lo = (v[sel] - v.min()) / max(v.max() - v.min(), 1e-9)
            spread[k] = np.bincount(np.minimum((lo * 4).astype(int), 3), minlength=4) / sel.sum()
    return {"spearman": float(spearmanr(v, t)[0]), "delta_pearson": float(pearsonr(dv, dt)[0]),
            "spread": spread, "within": within,
            "steps": {k: int((stage == k).sum()) for k in range(4)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", type=Path, required=True)
    parser.add_argument("--progress", nargs="*", default=[])
    parser.add_argument("--perceptual-demos", default=None)
    parser.add_argument("--perceptual-settings", nargs="*", default=["defaults="],
                        help="perceptual variants, each name=key:value,key:value (settings of "
                             "PerceptualConfig), e.g. 'uncapped=max_deviation:null'")
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--env-stage", action="store_true",
                        help="also score each progress model with the env's stage given "
                             "(tau from the model), as shaping.potential.stage_key=stage does")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" /
                        "potential_accuracy.md")
    args = parser.parse_args()
    from rewardlearn_envs.pick_place import state_progress

    episodes, env_stages = rollouts(args.policy, args.episodes)
    truth = [state_progress(seq) for seq in episodes]
    steps = sum(len(s) - 1 for s in episodes)
    rows: list[tuple[str, dict[str, Any]]] = []
    for entry in args.progress:
        name, _, path = entry.rpartition("=")
        rows.append((f"progress model: {name or path} (`{path}`)",
                     accuracy(progress_values(path, episodes), truth)))
        if args.env_stage:
            rows.append((f"progress model: {name or path}, stage from the env "
                         "(`shaping.potential.stage_key=stage`)",
                         accuracy(progress_values(path, episodes, env_stages), truth)))
    for entry in args.perceptual_settings if args.perceptual_demos else []:
        name, settings = parse_settings(entry)
        rows.append((f"perceptual potential, {name} (state features, "
                     f"`{args.perceptual_demos}`)",
                     accuracy(perceptual_values(args.perceptual_demos, episodes, settings),
                              truth)))
    commit = git_commit()
    lines = [
        "## Learned potentials on a policy's own states (pick_place)",
        "",
        f"Commit {commit}; command: `python bench/bench_potential_accuracy.py "
        f"{shlex.join(sys.argv[1:])}`.",
        f"{args.episodes} stochastic episodes of `{args.policy}` ({steps} steps), scored against "
        "the env's true progress. Quarter columns: where the states of each true stage land "
        "in the potential's range (0-25-50-75-100%); a perfect potential puts stage k in "
        "quarter k.",
        "",
        "| potential | Spearman | Pearson of per-step change | true reach / grasp / transport "
        "/ place states, share in the top quarter | Spearman within each true stage "
        "(states) |",
        "|---|---|---|---|---|",
    ]
    for name, acc in rows:
        top = " / ".join(f"{acc['spread'][k][3]:.0%}" if k in acc["spread"] else "-"
                         for k in range(4))
        inside = " / ".join(f"{acc['within'][k]:.3f} ({acc['steps'][k]})" if k in acc["within"]
                            else "-" for k in range(4))
        lines.append(f"| {name} | {acc['spearman']:.3f} | {acc['delta_pearson']:.3f} | {top} "
                     f"| {inside} |")
        print(f"{name}: spearman {acc['spearman']:.3f}, delta pearson {acc['delta_pearson']:.3f}, "
              f"within stages {inside}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
