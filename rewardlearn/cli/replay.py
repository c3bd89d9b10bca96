"""Re-record a saved agent's rollouts, with its reward model's per-step signals.

Usage::

    python -m rewardlearn.replay runs/<run>
    rewardlearn-replay runs/<run> n_episodes=5 seed=0 out=videos/my_replay
    rewardlearn-replay runs/<hopper run> camera='{distance: 5, azimuth: 120, elevation: -20}'
    rewardlearn-replay runs/<run> camera=track      # a camera the MuJoCo model defines
    rewardlearn-review videos                       # then browse the replay

rl-zoo's ``enjoy`` / ``record_video`` for this package: the run's ``agent.zip``
(with ``vecnormalize.pkl`` when the run normalised observations) acts in the
run's env (``.hydra/config.yaml``, or ``config.yaml`` in a folder written by
``rewardlearn-push --out``); each episode is written as ``episode_<k>.mp4`` plus
its ``episode_<k>.json`` sidecar, the folder format the review server reads
(:mod:`rewardlearn.recording`): per step the env reward, the learned reward and
every signal the reward model exposes (stage, progress, VLM score, ensemble
spread...). The reward model is the run's own (``reward_model/`` in the Hub format,
else ``reward_model.pt``; none for a ``reward=env`` run), loaded without running
code from the files; ``reward_model=<folder, .pt, run or repo id>`` scores the
rollouts with another one, ``reward_model=none`` with none.

Options: ``n_episodes`` (2), ``seed`` (episode ``k`` is seeded ``seed + k``;
default 10000, the held-out seeds of evaluation), ``deterministic`` (true),
``camera`` (MuJoCo envs: a model camera name or a YAML mapping of
:class:`~rewardlearn.rendering.CameraConfig` fields; default the env config's),
``width``/``height``/``fps`` (default the run's ``video.*``), ``out`` (default
``<run>/videos/replay_s<seed>``, or ``<video.dir>/<run name>/replay_s<seed>`` for a run
that set ``video.dir``; a folder that already holds episodes is refused, and a refused
or failed replay leaves no folder behind), ``select.<setting>`` (best-of-n action selection,
as ``train.py``'s ``eval.select``: ``select.n=16 select.scorer=reward``; docs/select.md),
``user`` (a ``reward=vpl`` run: act with a user's ``z``, a name saved by
``rewardlearn-vpl-user`` or the path of its json; without it ``z`` is drawn from the prior
each episode).
Prints one line per episode and the folder written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from rewardlearn.agents import ActPolicy, agent_policy
from rewardlearn.cli.checks import run_env
from rewardlearn.cli.options import cli_args, parse_bool, parse_key_values, run_cli
from rewardlearn.cli.select_run import replay_select_options, select_for_replay, select_settings
from rewardlearn.env_factory import env_config, make_env, replay_env
from rewardlearn.rewards.base import RewardModel
from rewardlearn.rollouts import evaluate
from rewardlearn.runs import VIDEO_OUTPUTS, agent_file, claim_folder, release_folder, run_config


def _optional_float(value: str) -> float | None:
    return None if value.strip().lower() in ("", "null", "none") else float(value)


OPTIONS: dict[str, Callable[[str], Any]] = {
    "n_episodes": int, "seed": int, "deterministic": parse_bool, "camera": str, "out": str,
    "width": int, "height": int, "fps": _optional_float, "reward_model": str, "user": str}


def reward_model_for(run_dir: Path, source: str | None, env: DictConfig
                     ) -> tuple[RewardModel | None, str | None]:
    """The reward model scoring the rollouts and where it came from (None: env reward only)."""
    from rewardlearn.rewards.checkpoint import load_reward_model
    from rewardlearn.rewards.pretrained import CONFIG_NAME, RUN_FOLDER

    if source is not None and source.strip().lower() == "none":
        return None, None
    if source is None:
        if not ((run_dir / RUN_FOLDER / CONFIG_NAME).is_file()
                or (run_dir / "reward_model.pt").is_file()):
            return None, None  # a reward=env run: no learned reward
        source = str(run_dir)
    probe = make_env(env_config(env))
    try:
        model = load_reward_model(source, probe.observation_space, probe.action_space)
    finally:
        probe.close()
    return model, source


def _with_user(run_dir: Path, env: DictConfig, user: str) -> DictConfig:
    """``env`` with the saved user's ``z`` in place of the prior draw (``reward=vpl`` runs)."""
    from rewardlearn.vpl.latent import WRAPPER_TARGET
    from rewardlearn.vpl.onboard import load_user, user_env

    if not any(isinstance(w, DictConfig) and w.get("_target_") == WRAPPER_TARGET
               for w in env.get("wrappers") or []):
        raise ValueError("user= sets a reward=vpl run's z; this run's observations carry no z")
    z = load_user(run_dir, user)
    return user_env(env, len(z), z)


def default_out(cfg: DictConfig, run_dir: Path, seed: int) -> Path:
    """``<run>/videos/replay_s<seed>``, or ``<video.dir>/<run name>/replay_s<seed>`` for a run
    that wrote its videos to ``video.dir``."""
    video_dir = OmegaConf.select(cfg, "video.dir", default=None)
    folder = run_dir / "videos" if not video_dir else Path(str(video_dir)) / run_dir.name
    return folder / f"replay_s{seed}"


def replay(run_dir: str | Path, n_episodes: int = 2, seed: int = 10_000,
           deterministic: bool = True, camera: str | None = None, out: str | Path | None = None,
           width: int | None = None, height: int | None = None, fps: float | None = None,
           reward_model: str | None = None, select: dict[str, Any] | None = None,
           user: str | None = None) -> dict[str, Any]:
    """Record ``n_episodes`` of the run's agent into ``out`` (mp4 + sidecar each).

    ``select``: best-of-n selection settings (:class:`~rewardlearn.select.SelectConfig`,
    ``select.n=16 select.scorer=reward`` on the command line; the scorer reads the replay's
    reward model unless ``select.model``). Returns the folder, the files and each episode's
    returns.
    """
    run_dir = Path(run_dir)
    cfg = run_config(run_dir)
    agent = agent_file(run_dir)
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    video = cfg.get("video") or {}
    size = (int(height or video.get("height", 256)), int(width or video.get("width", 256)))
    if min(size) < 16:
        raise ValueError(f"width and height must be >= 16 pixels, got {size[1]}x{size[0]}")
    env = run_env(cfg, replay_env(cfg, camera))
    if user is not None:
        env = _with_user(run_dir, env, user)
    model, source = reward_model_for(run_dir, reward_model, env)
    policy: Any = ActPolicy(agent_policy(agent, deterministic=deterministic))
    selector = None
    if select and select_settings(select, "select").enabled:  # rewardlearn/select/
        selector, env = select_for_replay(run_dir, cfg, env, select, model)
        policy = selector
    folder = Path(out) if out is not None else default_out(cfg, run_dir, seed)
    claim_folder(folder, VIDEO_OUTPUTS, "out")
    try:
        result = evaluate(policy, env, n_episodes=n_episodes, seed=seed, reward_model=model,
                          deterministic=deterministic, n_videos=n_episodes, video_dir=folder,
                          video_size=size, fps=fps or video.get("fps"),
                          meta={"run": f"{run_dir.name} (replay)", "env": env.name,
                                "agent": OmegaConf.select(cfg, "agent.name", default=None),
                                "reward": OmegaConf.select(cfg, "reward.name", default=None),
                                "replay_of": str(run_dir), "reward_model": source,
                                **({"user": user} if user is not None else {})})
    except BaseException:
        release_folder(folder, discard=True)
        raise
    release_folder(folder)
    review_root = folder.parent if out is not None else folder.parent.parent
    return {"out": str(folder), "review_root": str(review_root), "videos": result.videos,
            "sidecars": result.sidecars,
            "env_returns": result.env_returns, "learned_returns": result.learned_returns,
            "lengths": result.lengths, "reward_model": source,
            "select": None if selector is None else selector.summary()}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``rewardlearn-replay runs/<run> [n_episodes=...] [camera=...] ...``."""
    args = cli_args(argv, __doc__)
    runs = [a for a in args if "=" not in a]
    if len(runs) != 1:
        raise ValueError("give one run folder: rewardlearn-replay runs/<run> [n_episodes=2] "
                         f"[camera=...]; got {len(runs)}: {' '.join(runs) or '(none)'}")
    opts = parse_key_values([a for a in args if "=" in a], {**OPTIONS, **replay_select_options()})
    select = {k.split(".", 1)[1]: opts.pop(k) for k in list(opts) if k.startswith("select.")}
    result = replay(runs[0], **opts, select=select or None)
    learned = result["learned_returns"] or [None] * len(result["env_returns"])
    for k, (env_r, lr, n) in enumerate(zip(result["env_returns"], learned, result["lengths"],
                                           strict=True)):
        shown = "-" if lr is None else f"{lr:.2f}"
        print(f"episode {k}: {n} steps, env return {env_r:.2f}, learned return {shown}")
    print(f"env return {np.mean(result['env_returns']):.2f} over {len(result['env_returns'])} "
          f"episodes; reward model: {result['reward_model'] or 'none (env reward only)'}")
    if result["select"]:
        sel = result["select"]
        print(f"best-of-{sel['n']} by scorer={sel['scorer']}: {sel['decisions']} decisions, "
              f"{sel['decision_ms_mean']} ms each")
    print(f"written: {result['out']} ({len(result['videos'])} videos + sidecars); "
          f"browse: rewardlearn-review {result['review_root']}")
    return result


def cli() -> None:
    """Entry point; input errors exit with a message, no trace."""
    run_cli(main)


__all__ = ["cli", "main", "replay"]

if __name__ == "__main__":
    cli()
