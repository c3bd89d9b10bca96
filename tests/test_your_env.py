"""``docs/your_env.md`` runs: its env file, its config and every command it shows.

The page's ``<!-- file: NAME -->`` blocks are written into a fresh project folder and its
``<!-- run -->`` blocks run there, in order, as a new user would type them, with the
budgets cut (:data:`SMALLER`) so the walk takes about a minute.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "your_env.md"
SMALLER = {"total_timesteps=100000": "total_timesteps=2048", "n_episodes=20": "n_episodes=6",
           "n_steps=2000": "n_steps=400", "reward.model.budget=200": "reward.model.budget=12",
           "reward.model.update_every=2048": "reward.model.update_every=512"}
COMMANDS = {"rewardlearn-collect": [sys.executable, "-m", "rewardlearn.cli.collect"],
            "rewardlearn-evaluate": [sys.executable, "-m", "rewardlearn.cli.evaluate"],
            "rewardlearn-replay": [sys.executable, "-m", "rewardlearn.cli.replay"]}
TEST_ONLY = ["progress_bar=false", "torch_threads=1", "eval.n_episodes=2", "video.n_episodes=1",
             "video.width=64", "video.height=64"]


def doc_blocks() -> tuple[dict[str, str], list[str]]:
    """The page's files (name -> text) and its commands, in order."""
    text = DOC.read_text()
    files = dict(re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", text, flags=re.S))
    runs = re.findall(r"<!-- run -->\n```bash\n(.*?)```", text, flags=re.S)
    commands = [c for block in runs for c in block.replace("\\\n", " ").splitlines()
                if c.strip()]
    return files, commands


def argv(command: str) -> list[str]:
    for big, small in SMALLER.items():
        command = command.replace(big, small)
    words = shlex.split(command)
    if words[:2] == ["python", "train.py"]:
        return [sys.executable, str(ROOT / "train.py"), *words[2:], *TEST_ONLY]
    return [*COMMANDS[words[0]], *words[1:]]


def test_the_page_has_its_files_and_commands() -> None:
    files, commands = doc_blocks()
    assert set(files) == {"my_env.py", "my_env.yaml"}
    assert [c.split()[0] for c in commands] == [
        "rewardlearn-collect", "python", "python", "rewardlearn-evaluate", "rewardlearn-collect",
        "rewardlearn-replay"]


def test_the_walk_runs_for_an_env_the_package_never_saw(tmp_path: Path) -> None:
    files, commands = doc_blocks()
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    for command in commands:
        proc = subprocess.run(argv(command), cwd=tmp_path, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    for run in ("two_stage_drs", "two_stage_pref"):
        summary = json.loads((tmp_path / "runs" / run / "summary.json").read_text())
        assert summary["env"] == "two_stage_reach"
        assert summary["success_rate"] is not None and "sampled" in summary
        assert (tmp_path / "runs" / run / "reward_model" / "config.json").is_file()
    drs = json.loads((tmp_path / "runs" / "two_stage_drs" / "summary.json").read_text())
    assert drs["reward_training"]["num_stages"] == 2  # the env's SUBTASKS, via the demos
    from rewardlearn.demos import load_demos

    demos = load_demos(tmp_path / "data" / "two_stage-expert-v0")
    assert demos[0].subtask_names == ("press_button", "reach_goal")
    assert all(ep.success and ep.stages.max() == 1 for ep in demos)
    assert list((tmp_path / "runs" / "two_stage_drs" / "videos").glob("replay_s*/episode_*.mp4"))
