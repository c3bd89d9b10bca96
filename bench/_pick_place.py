"""pick_place helpers shared by the benchmark scripts: a PPO run, how far its agent gets,
and the progress model the shaping benchmarks train (collected and trained once)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PPO = ["agent=ppo", "n_envs=8"]
"""PPO as the pick_place benchmarks run it (the env's recommended settings, 8 envs)."""


NOISY_DEMOS: tuple[float, ...] = (0.5, 1.0)
"""Action-noise levels of the extra scripted-expert demos (50 successful ones per level)."""

FAILURE_DEMOS: tuple[tuple[float, int], ...] = ((1.0, 50), (2.0, 100))
"""(action noise, episodes) of the expert rollouts kept whether or not they succeed: drops,
regrasps and stalls, labelled with each frame's own stage (``labels=frames``)."""


def prepare_model(work: Path, noisy: tuple[float, ...] = NOISY_DEMOS
                  ) -> tuple[Path, dict[str, Any]]:
    """Collect demos and train the progress model (reused if present).

    The model trains on 50 clean expert demos plus 50 successful demos per level in
    ``noisy`` (the expert with Gaussian action noise: wider coverage of the states a
    learning policy visits, still labelled by ``info["stage"]``), plus the noisy expert
    rollouts of :data:`FAILURE_DEMOS` whatever their outcome, all with per-frame stage
    labels (``train_progress``'s default ``labels=frames``). It is evaluated on
    20 separate clean expert demos (VOC, stage accuracy) and, off the demo manifold,
    on 20 episodes of the expert with action noise 1.0 (Spearman of predicted vs the
    env's ``info["progress"]``, stage accuracy).
    """
    from rewardlearn.cli.collect import CollectConfig, collect
    from rewardlearn.cli.train_progress import cmd_train
    from rewardlearn.utils import set_torch_threads

    model_path = work / "progress_model.pt"
    report_path = work / "progress_model.json"
    if model_path.is_file() and report_path.is_file():
        return model_path, json.loads(report_path.read_text())

    def demos(name: str, **kw: Any) -> Path:
        out = work / name
        if not out.exists():
            collect(CollectConfig(env="pick_place", out=str(out),
                                  dataset_id=f"rewardlearn/pick_place/{name}-v0",
                                  **{"only_success": True, **kw}), verbose=False)
        return out

    sets = [demos("demos", n_episodes=50)]
    sets += [demos(f"demos-noise{round(n * 100)}", n_episodes=50, noise=n,
                   seed=5000 + 1000 * i) for i, n in enumerate(noisy)]
    sets += [demos(f"rollouts-noise{round(n * 100)}", n_episodes=k, noise=n, only_success=False,
                   seed=7000 + 1000 * i) for i, (n, k) in enumerate(FAILURE_DEMOS)]
    (work / "demo_sets.txt").write_text(",".join(map(str, sets)))
    set_torch_threads(1)  # the small network trains fastest on one thread
    report = cmd_train({"demos": ",".join(map(str, sets)), "env": "pick_place",
                        "out": str(model_path)})  # rewardlearn-train-progress
    report["demo_counts"] = {"expert": 50, **{f"noise {n}": 50 for n in noisy},
                             **{f"noise {n} (any outcome)": k for n, k in FAILURE_DEMOS}}
    report["clean_eval"] = clean_eval(model_path, demos("demos-eval", n_episodes=20,
                                                          seed=9000))
    report["off_manifold"] = off_manifold(model_path)
    report_path.write_text(json.dumps(report, indent=2))
    return model_path, report


def clean_eval(model_path: Path, demos: Path) -> dict[str, Any]:
    """VOC and stage accuracy on separate clean expert demos (``train_progress eval``)."""
    from rewardlearn.cli.train_progress import cmd_eval

    out = cmd_eval({"model": str(model_path), "demos": str(demos)})
    out.pop("per_episode")
    return out


def off_manifold(model_path: Path, episodes: int = 20, noise: float = 1.0) -> dict[str, float]:
    """Predicted vs true progress on noisy-expert episodes (states off the clean demos)."""
    import gymnasium as gym
    import rewardlearn_envs  # noqa: F401  (registers the env)
    from rewardlearn_envs import PickPlaceExpert

    from rewardlearn.progress.modeling import ProgressModel
    from rewardlearn.progress.potential import ProgressScorer
    from rewardlearn.rewards.base import TransitionBatch
    from rewardlearn.stats import order_correlation as spearman

    model = ProgressModel.load(str(model_path))
    true, pred, stage, pred_stage = [], [], [], []
    env = gym.make("rewardlearn/PickPlace-v0")
    for k in range(episodes):
        obs, info = env.reset(seed=20_000 + k)
        scorer, expert = ProgressScorer(model), PickPlaceExpert(env, noise=noise, seed=k)
        done = False
        while not done:
            action = expert(obs)
            nxt, _, term, trunc, info = env.step(action)
            _, p = scorer.score(TransitionBatch(obs=obs[None], acts=action[None],
                                                next_obs=nxt[None], terminated=np.array([term]),
                                                truncated=np.array([trunc])))
            true.append(info["progress"])
            stage.append(info["stage"])
            pred.append(float(p.progress[0]))
            pred_stage.append(int(p.stage[0]))
            obs, done = nxt, term or trunc
    env.close()
    return {"spearman": spearman(np.array(pred), np.array(true)),
            "stage_acc": float(np.mean(np.array(stage) == np.array(pred_stage))),
            "steps": len(true), "noise": noise}




def pick_place_run(run_dir: Path, overrides: list[str], log: Path,
                   env: str = "pick_place") -> dict[str, Any]:
    """One ``train.py`` run of PPO on pick_place (or ``env``; 8 envs, one torch thread,
    50 eval episodes, no videos) into ``run_dir``, reused when its ``summary.json`` exists;
    its summary."""
    summary_file = run_dir / "summary.json"
    if not summary_file.is_file():
        cmd = [sys.executable, "train.py", f"env={env}", *PPO, *overrides,
               "torch_threads=1", "video.enabled=false", "progress_bar=false",
               "eval.n_episodes=50", "~teacher", f"hydra.run.dir={run_dir}"]
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as f:
            subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, check=True)
    summary: dict[str, Any] = json.loads(summary_file.read_text())
    return summary


def stages_reached(run_dir: Path, episodes: int = 20, env_name: str | None = None
                   ) -> dict[str, Any]:
    """Furthest stage of each deterministic evaluation episode (how far the policy gets),
    on pick_place or on the env config ``env_name`` (any env with ``info["stage"]``)."""
    import gymnasium as gym
    import rewardlearn_envs  # noqa: F401  (registers the env)

    from rewardlearn.agents import agent_policy
    from rewardlearn.env_factory import make_env

    act = agent_policy(str(run_dir / "agent.zip"), deterministic=True)
    env = (gym.make("rewardlearn/PickPlace-v0", reward_type="sparse") if env_name is None
           else make_env(env_name, seed=10_000))
    furthest = []
    for k in range(episodes):
        obs, info = env.reset(seed=10_000 + k)
        stage, done = int(info["stage"]), False
        while not done:
            obs, _, terminated, truncated, info = env.step(act(obs))
            stage = max(stage, int(info["stage"]))
            done = terminated or truncated
        furthest.append(stage)
    env.close()
    return {"furthest_stage": furthest}


def fmt_steps(steps: list[int | None]) -> str:
    return ", ".join("never" if s is None else f"{s / 1000:.0f}k" for s in steps)
