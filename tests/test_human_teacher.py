"""teacher=human end to end: training asks, a scripted annotator answers over HTTP."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from conftest import annotate_over_http
from omegaconf import DictConfig

from rewardlearn.cli.train import run
from rewardlearn.preference.human import HumanTeacher
from rewardlearn.preference.reward import PreferenceReward
from rewardlearn.review.server import ReviewServer
from rewardlearn.review.store import LabelStore
from rewardlearn.rewards import load_reward_model


def test_human_teacher_training_receives_posted_labels(
        compose_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    cfg = compose_cfg(
        "env=hopper", "agent=ppo", "reward=preference", "teacher=human",
        f"teacher.root={videos}", "total_timesteps=400", "+agent.kwargs.n_steps=100",
        "+agent.kwargs.batch_size=50", "+agent.kwargs.n_epochs=1",
        "reward.model.budget=4", "reward.model.queries_per_round=2",
        "reward.model.first_round_at=100", "reward.model.interval=100",
        "reward.model.segment_length=5", "reward.model.hidden_sizes=[16]",
        "teacher.clip_size=32", "teacher.timeout_s=60", "eval.n_episodes=1",
        "video.n_episodes=0", "progress_bar=false")
    stop = threading.Event()
    answered: list[int] = []
    with ReviewServer(videos, port=0) as server:
        worker = threading.Thread(target=annotate_over_http,
                                  args=(server.url, stop), kwargs={"answered": answered})
        worker.start()
        try:
            summary = run(cfg, tmp_path / "run")
        finally:
            stop.set()
            worker.join(10)
    assert summary["reward_training"]["labels_used"] == 4
    assert sorted(answered) == [1, 2, 3, 4]
    store = LabelStore(videos / "labels.sqlite")
    rows = store.answers_after(0)
    assert [a.label for a in rows] == ["left"] * 4 and {a.annotator for a in rows} == {"bot"}
    assert all((videos / a.left.video).is_file() for a in rows)
    saved = load_reward_model(tmp_path / "run" / "reward_model.pt")
    assert isinstance(saved, PreferenceReward)
    assert saved.learner.dataset.labels == [1.0] * 4


def test_clip_paths_follow_the_database_folder(tmp_path: Path) -> None:
    """Clip paths are relative to the database's folder (where the review server looks first)."""
    videos = tmp_path / "videos"
    clip = videos / "run_a" / "queries" / "r000_000_left.mp4"
    default = HumanTeacher(env=None, root=str(videos))
    assert default.clip_path(clip) == "run_a/queries/r000_000_left.mp4"
    assert default.review_command() == f"rewardlearn-review {videos}"
    above = HumanTeacher(env=None, root=str(videos), db=str(tmp_path / "labels.sqlite"))
    assert above.clip_path(clip) == "videos/run_a/queries/r000_000_left.mp4"
    assert above.review_command() == \
        f"rewardlearn-review {videos} --db {tmp_path / 'labels.sqlite'}"
    apart = HumanTeacher(env=None, root=str(videos), db=str(tmp_path / "dbs" / "l.sqlite"))
    assert apart.clip_path(clip) == "run_a/queries/r000_000_left.mp4"
