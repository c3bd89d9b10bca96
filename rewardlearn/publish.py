"""Runs to the Hugging Face Hub, as rl-zoo does: one folder per run, with a model card.

:func:`package_run` writes a run's shareable files into a folder::

    README.md          the run card (agent, env, reward, returns, command; model-index)
    agent.zip          the SB3 agent
    vecnormalize.pkl   observation statistics (when the run normalised observations)
    summary.json       the run's summary; config.yaml its Hydra config
    reward_model/      the reward model in the Hub format (config.json + model.safetensors)
    replay.mp4         an evaluation rollout (and replay.json, its per-step signals)
    evaluation.json    ``rewardlearn-evaluate`` results, when given

and :func:`push_run` uploads it with :class:`huggingface_hub.HfApi` (``create_repo`` +
``upload_folder``). ``agent.zip`` and ``vecnormalize.pkl`` are SB3's own pickle-based
formats: like rl-zoo's, load them only from repos you trust. The reward model loads
without running code (:mod:`rewardlearn.rewards.pretrained`).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, HfApi, ModelCardData
from omegaconf import DictConfig, OmegaConf

from rewardlearn.files import write_text_atomic
from rewardlearn.rewards.base import RewardModel
from rewardlearn.rewards.pretrained import (
    CONFIG_NAME,
    RUN_FOLDER,
    CardInfo,
    load_pretrained,
    metrics_table,
    save_pretrained,
    upload_folder,
    write_card,
)

log = logging.getLogger("rewardlearn")

EVALUATION_FILE = "evaluation.json"
"""A run's ``rewardlearn-evaluate`` result, if saved there (``out=runs/<run>/evaluation.json``)."""


def run_config(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The run's Hydra config (``.hydra/config.yaml``, unresolved), or ``{}``."""
    path = Path(run_dir) / ".hydra" / "config.yaml"
    if not path.is_file():
        return {}
    out = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    return {str(k): v for k, v in out.items()} if isinstance(out, dict) else {}


def run_command(run_dir: str | os.PathLike[str]) -> str | None:
    """``python train.py <overrides>`` from the run's ``.hydra/overrides.yaml``, if kept."""
    path = Path(run_dir) / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    overrides = OmegaConf.to_container(OmegaConf.load(path))
    if not isinstance(overrides, list):
        return None
    return " ".join(["python train.py", *(shlex.quote(str(o)) for o in overrides)])


def _get(cfg: Mapping[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def evaluation_metrics(result: Mapping[str, Any],
                       run_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The metrics of a ``rewardlearn-evaluate`` result for one model: with ``run_dir``, the
    row of that run's reward model (its folder, ``reward_model/`` or ``reward_model.pt``,
    matched by the paths the result records); without it, the only row. A comparison's
    other models never enter (``{}`` when no row is this run's)."""
    rewards = dict(result.get("rewards") or {})
    paths = dict((result.get("setup") or {}).get("paths") or {})
    if run_dir is not None and paths:
        run = Path(run_dir).resolve()
        own = {run, run / RUN_FOLDER, run / "reward_model.pt"}
        for label, path in paths.items():
            try:
                if Path(str(path)).resolve() in own and label in rewards:
                    return dict(rewards[label])
            except OSError:
                continue
        return {}
    if len(rewards) == 1:
        return dict(next(iter(rewards.values())))
    return {}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        out = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read {path}: {err}") from None
    if not isinstance(out, dict):
        raise ValueError(f"{path} is not a JSON object")
    return out


def gym_id(cfg: Mapping[str, Any]) -> str | None:
    """The run's Gymnasium id (``Pendulum-v1``), with its task where the env takes one
    (``Meta-World/MT1 (drawer-open-v3)``); ``None`` if the config has none."""
    env_id = _get(cfg, "env.id")
    task = _get(cfg, "env.task")
    if env_id is None:
        return None
    return f"{env_id} ({task})" if isinstance(task, str) and "${" not in task else str(env_id)


def run_card_info(run_dir: str | os.PathLike[str], cfg: Mapping[str, Any] | None = None,
                  training: Mapping[str, Any] | None = None,
                  evaluation: Mapping[str, Any] | None = None) -> CardInfo:
    """What a reward model's card says about the run that trained it.

    ``cfg`` is the run's config (default: its ``.hydra/config.yaml``); ``training`` the
    reward module's ``summary()`` (default: ``summary.json``'s ``reward_training``);
    ``evaluation`` a ``rewardlearn-evaluate`` result.
    """
    run_dir = Path(run_dir)
    if isinstance(cfg, DictConfig):
        container = OmegaConf.to_container(cfg, resolve=False)
        cfg = {str(k): v for k, v in container.items()} if isinstance(container, dict) else {}
    cfg = dict(cfg) if cfg is not None else run_config(run_dir)
    summary = _read_json(run_dir / "summary.json") if (run_dir / "summary.json").is_file() else {}
    data = {key: str(value) for key in ("demos", "resume", "path")
            if isinstance(value := _get(cfg, f"reward.model.{key}"), str)}
    if _get(cfg, "reward.name") == "preference" and _get(cfg, "teacher.name"):
        data["teacher"] = str(_get(cfg, "teacher.name"))
    extra = {k: v for k, v in (("agent", _get(cfg, "agent.name")), ("seed", _get(cfg, "seed")),
                               ("run", run_dir.name)) if v is not None}
    return CardInfo(env=summary.get("env") or _get(cfg, "env.name"), env_id=gym_id(cfg),
                    command=run_command(run_dir),
                    training=dict(training if training is not None
                                  else summary.get("reward_training") or {}),
                    data=data,
                    metrics=evaluation_metrics(evaluation, run_dir) if evaluation else {},
                    extra=extra)


def save_run_reward_model(model: RewardModel, run_dir: str | os.PathLike[str],
                          cfg: Mapping[str, Any] | None = None) -> Path | None:
    """Write a run's reward model in the Hub format (``runs/<run>/reward_model/``).

    A model the run loaded (``reward=checkpoint``) keeps the card of the run that trained
    it (its command, env and training figures) and says which runs reused it. A model that
    cannot be saved (an unregistered class, settings that are not JSON) is logged, not
    raised: the run's ``reward_model.pt`` is its record then.
    """
    run_dir = Path(run_dir)
    try:
        card = run_card_info(run_dir, cfg, training=model.summary())
        extra: dict[str, Any] = {"env": card.env, "env_id": card.env_id,
                                 "seed": card.extra.get("seed"), "command": card.command,
                                 "run": run_dir.name}
        origin = dict(model.provenance)
        loaded = _get(cfg if cfg is not None else run_config(run_dir),
                      "reward.name") == "checkpoint"
        if origin and (loaded or (origin.get("run") and origin["run"] != run_dir.name)):
            reused = [*origin.get("reused_by", []), run_dir.name]
            extra = {**{k: v for k, v in origin.items() if k != "source"},
                     "reused_by": reused}
            card = CardInfo(
                env=origin.get("env") or card.env, env_id=origin.get("env_id") or card.env_id,
                command=origin.get("command"),
                training=dict(origin.get("training") or {}), data=card.data,
                extra={"trained by run": origin.get("run") or "not recorded",
                       "reused (not trained) by": ", ".join(reused),
                       "loaded from": origin.get("source")})
        else:
            extra["training"] = card.training
        return save_pretrained(model, run_dir / RUN_FOLDER, card, extra=extra)
    except (TypeError, ValueError, OSError) as err:
        log.warning("reward model not written in the Hub format (%s); reward_model.pt has it",
                    err)
        return None


# ----------------------------------------------------------------------------- run card

def _fmt(value: Any, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec) if isinstance(value, float) \
        else str(value)


def run_card(summary: Mapping[str, Any], cfg: Mapping[str, Any], files: list[str],
             command: str | None, repo_id: str | None, metrics: Mapping[str, Any]) -> str:
    """The ``README.md`` of a packaged run (rl-zoo style, with a ``model-index``)."""
    env = str(summary.get("env") or _get(cfg, "env.name") or "env")
    env_id = str(_get(cfg, "env.id") or env)  # the Gymnasium id, as rl-zoo's cards name it
    agent = str(summary.get("agent") or _get(cfg, "agent.name") or "agent")
    reward = str(summary.get("reward") or _get(cfg, "reward.name") or "reward")
    mean, std = summary.get("env_return_mean"), summary.get("env_return_std")
    results = [] if mean is None else [EvalResult(
        task_type="reinforcement-learning", dataset_type=env_id, dataset_name=env_id,
        metric_type="mean_reward", metric_value=f"{mean:.2f} +/- {std or 0.0:.2f}")]
    meta = ModelCardData(
        library_name="stable-baselines3", model_name=f"{agent}-{env_id}-{reward}",
        tags=[env_id, "reinforcement-learning", "deep-reinforcement-learning", "stable-baselines3",
              "rewardlearn", f"reward-{reward}"], eval_results=results or None).to_yaml()
    repo = repo_id or "<user>/<repo>"
    rows = [("env return (mean +- std)", f"{_fmt(mean)} +- {_fmt(std)}"),
            ("learned return (mean)", _fmt(summary.get("learned_return_mean"))),
            ("success rate", _fmt(summary.get("success_rate"))),
            ("evaluation episodes", _fmt(summary.get("eval_episodes"))),
            ("training steps", _fmt(summary.get("total_timesteps"))),
            ("seed", _fmt(summary.get("seed")))]
    lines = ["---", meta, "---", "", f"# {agent.upper()} on {env_id} with `reward={reward}`",
             "",
             f"A {agent.upper()} agent (stable-baselines3) trained by rewardlearn on the "
             f"`{reward}` reward (`env={env}`), evaluated on the env's own reward.", "",
             "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    if command:
        lines += ["", "Trained with:", "", "```bash", command, "```"]
    if metrics:
        lines += ["", "## Reward model evaluation (`rewardlearn-evaluate`)", "",
                  metrics_table(dict(metrics))]
    lines += ["", "## Files", "", *(f"- `{f}`" for f in files), "",
              "## Use", "", "```python", "from huggingface_hub import snapshot_download",
              "from stable_baselines3 import " + agent.upper(), "",
              f'folder = snapshot_download("{repo}")',
              f'agent = {agent.upper()}.load(f"{{folder}}/agent.zip")', "```", "",
              "`agent.zip` and `vecnormalize.pkl` are stable-baselines3's pickle-based formats: "
              "load them only from a repo you trust. The reward model in `reward_model/` "
              "loads without running code from the files:", "", "```bash",
              f"python train.py env=<env> reward=checkpoint reward.model.path={repo}", "```", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- package / push

def video_folders(run_dir: Path, cfg: Mapping[str, Any]) -> list[Path]:
    """The run's own video folders: ``<run>/videos`` and, for a run that wrote them
    elsewhere (``video.dir``, or an older run), ``<video.dir>/<run name>``. A folder that is a
    symbolic link is not one (it could point anywhere)."""
    where = _get(cfg, "video.dir")
    candidates = [run_dir / "videos", Path(str(where or "videos")) / run_dir.name]
    return [f.resolve() for f in candidates if f.is_dir() and not f.is_symlink()]


def own_video(path: str | os.PathLike[str], run_dir: Path, folders: list[Path]) -> Path | None:
    """``path`` (relative to the run folder, else to the working directory) if it is an mp4
    file inside one of the run's own video ``folders`` and no link; else ``None``."""
    path = Path(path)
    tries = [path] if path.is_absolute() else [run_dir / path, path]
    for candidate in tries:
        if candidate.is_symlink() or not candidate.is_file():
            continue
        real = candidate.resolve()
        if real.suffix == ".mp4" and any(real.is_relative_to(f) for f in folders):
            return real
    return None


def _video(run_dir: Path, summary: Mapping[str, Any], cfg: Mapping[str, Any],
           video: str | os.PathLike[str] | None) -> Path | None:
    """The rollout video to package: ``video`` or the first one ``summary.json`` names,
    only from the run's own video folders (a summary naming another file is not followed)."""
    folders = video_folders(run_dir, cfg)
    if video is not None:
        found = own_video(video, run_dir, folders)
        if found is None:
            raise ValueError(f"video {video}: only an .mp4 file inside the run's own video "
                             f"folder ({', '.join(map(str, folders)) or run_dir / 'videos'}) "
                             "is packaged")
        return found
    for name in [*(summary.get("videos") or []), *sorted(str(p) for f in folders
                                                         for p in f.glob("*.mp4"))]:
        found = own_video(str(name), run_dir, folders)
        if found is not None:
            return found
        log.warning("not packaging %s: not an mp4 inside the run's own video folder", name)
    return None


def _staging(out: Path) -> Path:
    """A fresh folder beside ``out`` to build the package in (renamed to ``out`` at the end,
    so a refused or failed push leaves nothing at ``out``)."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file; pass a folder to write the run into")
    if out.is_dir() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; pass a new folder to write the run into")
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))


def package_run(run_dir: str | os.PathLike[str], out: str | os.PathLike[str],
                evaluation: str | os.PathLike[str] | None = None,
                video: str | os.PathLike[str] | None = None,
                repo_id: str | None = None) -> Path:
    """Write a finished run's shareable files and card into ``out`` (see the module doc).

    Refuses a run without ``agent.zip`` (unfinished) and an ``out`` that is a file or not
    empty. ``evaluation``: a ``rewardlearn-evaluate`` JSON (default:
    ``runs/<run>/evaluation.json`` if present); ``video``: the rollout to include (default:
    the run's first video); only an mp4 inside the run's own video folder is taken. The
    package is built in a temp folder beside ``out`` and renamed into place when complete.
    """
    run_dir, out = Path(run_dir), Path(out)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} not found; pass runs/<run>")
    if not (run_dir / "agent.zip").is_file():
        raise FileNotFoundError(f"{run_dir} has no agent.zip: only a finished run is packaged")
    summary = _read_json(run_dir / "summary.json") if (run_dir / "summary.json").is_file() else {}
    cfg = run_config(run_dir)
    eval_path = Path(evaluation) if evaluation is not None else run_dir / EVALUATION_FILE
    if evaluation is not None and not eval_path.is_file():
        raise FileNotFoundError(f"evaluation file {eval_path} not found")
    result = _read_json(eval_path) if eval_path.is_file() else None
    clip = _video(run_dir, summary, cfg, video)
    stage = _staging(out)
    try:
        _fill(stage, run_dir, summary, cfg, result, clip, repo_id)
        if out.is_dir():
            out.rmdir()  # empty (checked above)
        os.rename(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return out


def _fill(stage: Path, run_dir: Path, summary: Mapping[str, Any], cfg: Mapping[str, Any],
          result: Mapping[str, Any] | None, clip: Path | None, repo_id: str | None) -> None:
    for name in ("agent.zip", "vecnormalize.pkl", "summary.json"):
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, stage / name)
    if (run_dir / ".hydra" / "config.yaml").is_file():
        shutil.copy2(run_dir / ".hydra" / "config.yaml", stage / "config.yaml")
    if result is not None:
        write_text_atomic(stage / EVALUATION_FILE, json.dumps(result, indent=2))
    if clip is not None:
        shutil.copy2(clip, stage / "replay.mp4")
        sidecar = clip.with_suffix(".json")
        if sidecar.is_file() and not sidecar.is_symlink():
            data = _read_json(sidecar)
            data["video"] = "replay.mp4"  # renamed in the package
            write_text_atomic(stage / "replay.json", json.dumps(data))
    card = run_card_info(run_dir, cfg, evaluation=result)
    if (run_dir / RUN_FOLDER / CONFIG_NAME).is_file():
        shutil.copytree(run_dir / RUN_FOLDER, stage / RUN_FOLDER)
        write_card(stage / RUN_FOLDER, card)
    elif (run_dir / "reward_model.pt").is_file():  # a run saved before the Hub format
        save_pretrained(load_pretrained(run_dir / "reward_model.pt"), stage / RUN_FOLDER, card)
    files = sorted(str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file())
    write_text_atomic(stage / "README.md", run_card(summary, cfg, ["README.md", *files],
                                                    card.command, repo_id, card.metrics))


def push_run(run_dir: str | os.PathLike[str], repo_id: str,
             out: str | os.PathLike[str] | None = None, *,
             evaluation: str | os.PathLike[str] | None = None,
             video: str | os.PathLike[str] | None = None, private: bool | None = None,
             token: str | None = None, api: HfApi | None = None) -> str:
    """Package a run (into ``out``, or a temp folder) and upload it to ``repo_id``;
    returns the commit URL."""
    message = f"Upload run {Path(run_dir).name} with rewardlearn"
    if out is not None:
        folder = package_run(run_dir, out, evaluation, video, repo_id)
        return upload_folder(folder, repo_id, private=private, token=token,
                             commit_message=message, api=api)
    with tempfile.TemporaryDirectory() as tmp:
        folder = package_run(run_dir, Path(tmp) / "run", evaluation, video, repo_id)
        return upload_folder(folder, repo_id, private=private, token=token,
                             commit_message=message, api=api)


__all__ = ["EVALUATION_FILE", "evaluation_metrics", "package_run", "push_run", "run_card",
           "run_card_info", "run_command", "run_config", "save_run_reward_model"]
