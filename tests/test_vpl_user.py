"""A new user of a reward=vpl run: rewardlearn-vpl-user asks adaptively chosen pairs (a
synthetic user, or a person over HTTP), saves their z, and rewardlearn-replay acts with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from rewardlearn.cli.replay import replay
from rewardlearn.cli.vpl_user import main as vpl_user_main
from rewardlearn.cli.vpl_user import vpl_user
from rewardlearn.rewards import load_reward_model
from rewardlearn.runs import run_config
from rewardlearn.vpl.onboard import candidate_pairs, load_user, run_candidates
from rewardlearn.vpl.population import PopulationTeacher
from rewardlearn.vpl.reward import VPLReward

ROOT = Path(__file__).resolve().parents[1]
TINY = ["env=pendulum", "agent=ppo", "reward=vpl", "teacher=population", "teacher.preset=direction",
        "total_timesteps=1024", "+agent.kwargs.n_steps=256", "+agent.kwargs.batch_size=64",
        "+agent.kwargs.n_epochs=1", "reward.model.budget=192", "reward.model.rounds=2",
        "reward.model.first_round_at=256", "reward.model.train_steps=150",
        "reward.model.hidden_sizes=[32,32]", "reward.model.segment_length=10",
        "reward.model.batch_sets=8", "reward.model.device=cpu", "eval.n_episodes=1",
        "video.enabled=false", "progress_bar=false", "torch_threads=1"]


@pytest.fixture(scope="module")
def vpl_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small train.py reward=vpl run on Pendulum: two users wanting opposite spin."""
    run_dir = tmp_path_factory.mktemp("vpl") / "run"
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    subprocess.run([sys.executable, "train.py", *TINY, f"hydra.run.dir={run_dir}"], cwd=ROOT,
                   check=True, env=env, capture_output=True, timeout=600)
    return run_dir


def test_candidates_are_the_runs_segments_without_z(vpl_run: Path) -> None:
    reward = load_reward_model(vpl_run)
    assert isinstance(reward, VPLReward)
    cands = candidate_pairs(reward, run_config(vpl_run).env, None, 6, seed=0, sim_state=True)
    assert cands.x1.shape == cands.x2.shape == (6, 10, 3 + 1 + 3)  # [s, a, s'], no z
    assert cands.states1 is not None and cands.next1 is not None
    assert cands.states1.shape[:2] == (6, 10) and cands.next1.shape[0] == 6
    # consecutive steps chain: s' of step t is s of step t + 1
    np.testing.assert_allclose(cands.x1[:, :-1, 4:], cands.x1[:, 1:, :3], atol=1e-6)
    again = candidate_pairs(reward, run_config(vpl_run).env, None, 6, seed=0)
    np.testing.assert_array_equal(again.x1, cands.x1)  # seeded
    # the run's stochastic agent too, loaded afresh (a resumed session must draw the same)
    first = run_candidates(reward, run_config(vpl_run).env, vpl_run / "agent.zip", 6, seed=3)
    torch.rand(5)  # whatever else used the generator in between
    second = run_candidates(reward, run_config(vpl_run).env, vpl_run / "agent.zip", 6, seed=3)
    np.testing.assert_array_equal(first.x1, second.x1)
    np.testing.assert_array_equal(first.x2, second.x2)


def test_a_saved_vpl_run_env_gets_its_z_wrapper_once(vpl_run: Path) -> None:
    """Hydra saves the config before train.py adds reward=vpl's z wrapper: the commands that
    act in a run's env (replay, action pairs, vpl-user) add it, and never twice."""
    from rewardlearn.cli.checks import run_env
    from rewardlearn.vpl.latent import WRAPPER_TARGET

    cfg = run_config(vpl_run)
    assert not [w for w in cfg.env.get("wrappers") or [] if w["_target_"] == WRAPPER_TARGET]
    env = run_env(cfg, cfg.env)
    again = run_env(cfg, env)
    for e in (env, again):
        assert [w["_target_"] for w in e.wrappers].count(WRAPPER_TARGET) == 1


def test_synthetic_users_get_their_own_z_and_the_agent_acts_with_it(
        vpl_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reward = load_reward_model(vpl_run)
    assert isinstance(reward, VPLReward)
    zs = []
    for user in (0, 1):
        out = vpl_user_main([str(vpl_run), f"name=sim{user}", "teacher=population",
                             f"user={user}", "n_queries=6", "candidates=30"])
        saved = json.loads(Path(out["file"]).read_text())
        assert Path(out["file"]) == vpl_run / "users" / f"sim{user}.json"
        assert len(saved["asked"]) == 6 and len({a["pair"] for a in saved["asked"]}) == 6
        assert saved["criterion"] == "bald" and saved["user"] == user
        zs.append(load_user(vpl_run, f"sim{user}"))
        np.testing.assert_allclose(zs[-1], saved["z"])
    assert "act for this user: rewardlearn-replay" in capsys.readouterr().out
    # the saved z's rank the users' own held-out pairs as they do
    teacher = PopulationTeacher(env="pendulum", preset="direction", n_users=2)
    held = candidate_pairs(reward, run_config(vpl_run).env, None, 100, seed=99)
    x, y = held.x1, held.x2
    for user, z in enumerate(zs):
        truth = teacher.label_user(user, reward.split_side(x), reward.split_side(y)).labels
        with torch.no_grad():
            zt = torch.as_tensor(z)[None, None]
            cols = reward.columns
            rx = reward.model.rewards(torch.as_tensor(x[..., cols]), zt).sum(-1).numpy()
            ry = reward.model.rewards(torch.as_tensor(y[..., cols]), zt).sum(-1).numpy()
        assert np.mean((rx > ry) == (truth == 1.0)) > 0.8, user
    # a saved user is never overwritten
    with pytest.raises(FileExistsError, match=r"sim0\.json exists"):
        vpl_user(vpl_run, "sim0", teacher="population", user=1)
    # the agent acts with the user's z: the replay's observations end with it
    res = replay(vpl_run, n_episodes=1, out=tmp_path / "rp", user="sim1")
    side = json.loads(Path(res["sidecars"][0]).read_text())
    assert side["user"] == "sim1"
    with pytest.raises(FileNotFoundError, match="this run's users: sim0, sim1"):
        replay(vpl_run, n_episodes=1, out=tmp_path / "rp2", user="nobody")


def test_a_person_answers_on_the_review_page(vpl_run: Path) -> None:
    from conftest import annotate_over_http

    from rewardlearn.review.server import ReviewServer

    users = vpl_run / "users"
    users.mkdir(exist_ok=True)
    stop = threading.Event()
    with ReviewServer(users, port=0) as server:
        worker = threading.Thread(target=annotate_over_http,
                                  args=(server.url, stop, (("carol", "left"),)))
        worker.start()
        try:
            out = vpl_user(vpl_run, "carol", n_queries=2, candidates=8, timeout_s=60,
                           clip_size=32)
        finally:
            stop.set()
            worker.join(10)
    saved = json.loads(Path(out["file"]).read_text())
    assert [a["label"] for a in saved["asked"]] == [1.0, 1.0]  # "left" each time
    assert saved["annotators"] == ["carol", "carol"] and saved["teacher"] == "human"
    assert len(list((users / "carol" / "queries").glob("*.mp4"))) == 4  # two clips per pair


def test_a_stopped_session_goes_on_without_asking_again(vpl_run: Path) -> None:
    """A person answers one pair (the second 'skip'), the command times out on the next; run
    again, it reuses those answers, numbers new clips after the old ones, and asks only the
    rest."""
    from rewardlearn.review.store import LabelStore

    db = vpl_run / "users" / "labels.sqlite"
    script = iter(["right", "skip"])
    stop = threading.Event()

    def person(limit: int) -> None:  # answers up to ``limit`` queries of run "erin", in order
        done = 0
        while not stop.is_set() and done < limit:
            q = LabelStore(db).claim("erin", run="erin") if db.is_file() else None
            if q is None:
                stop.wait(0.05)
                continue
            LabelStore(db).answer(q.id, next(script, "left"), "erin")
            done += 1

    worker = threading.Thread(target=person, args=(2,))
    worker.start()
    try:
        with pytest.raises(TimeoutError, match="run the same command again"):
            vpl_user(vpl_run, "erin", n_queries=2, candidates=8, timeout_s=3, clip_size=32)
    finally:
        stop.set()
        worker.join(10)
    assert not (vpl_run / "users" / "erin.json").exists()
    first = [(q.id, q.left.video) for q in LabelStore(db).queries("erin")]
    assert len(first) == 3  # answered "right", answered "skip", then one unanswered
    stop.clear()
    worker = threading.Thread(target=person, args=(1,))
    worker.start()
    try:
        out = vpl_user(vpl_run, "erin", n_queries=2, candidates=8, timeout_s=30, clip_size=32)
    finally:
        stop.set()
        worker.join(10)
    saved = json.loads(Path(out["file"]).read_text())
    assert [a["label"] for a in saved["asked"]] == [0.0, 1.0]  # the first answer, reused
    queries = LabelStore(db).queries("erin")
    assert [(q.id, q.left.video) for q in queries][:3] == first  # nothing rewritten
    # the query left unanswered was waited on, not queued twice: every query is answered
    assert len(LabelStore(db).answers_after(0, "erin")) == len(queries)
    assert len({q.left.video for q in queries}) == len(queries)  # new clips, new names


def test_bad_requests_are_refused_before_anything_runs(vpl_run: Path) -> None:
    with pytest.raises(ValueError, match="name must be 1-64 letters"):
        vpl_user(vpl_run, "../x", teacher="population", user=0)
    with pytest.raises(ValueError, match="unknown teacher 'oracle'; valid: human, population"):
        vpl_user(vpl_run, "a", teacher="oracle")
    with pytest.raises(ValueError, match="unknown criterion 'mi'; valid: bald, posterior"):
        vpl_user(vpl_run, "a", teacher="population", user=0, criterion="mi")
    with pytest.raises(ValueError, match="teacher=population needs user="):
        vpl_user(vpl_run, "a", teacher="population")
    with pytest.raises(ValueError, match=r"user must be in \[0, 1\]"):
        vpl_user(vpl_run, "a", teacher="population", user=5, candidates=4, n_queries=1)
    with pytest.raises(ValueError, match="name=<user> is required"):
        vpl_user_main([str(vpl_run)])
    assert not (vpl_run / "users" / "a.json").exists()
