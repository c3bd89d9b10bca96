"""``agent.discount_schedule=ads``: the progress recognizer, the discount it sets in the
agent, and ``train.py reward=ot agent.discount_schedule=ads`` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from omegaconf import DictConfig
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from rewardlearn.ads.callback import RECORD, DiscountScheduleCallback, set_discount
from rewardlearn.ads.configuration import ADSConfig, schedule_settings
from rewardlearn.ads.recognizer import (
    ProgressRecognizer,
    discount,
    lis_length,
    prefix_scores,
    progress_score,
)
from rewardlearn.cli.train import run

ROOT = Path(__file__).resolve().parents[1]


def test_lis_on_hand_cases() -> None:
    assert lis_length([3, 1, 2, 1, 4]) == 3  # 1, 2, 4
    assert lis_length([0, 0, 0]) == 1  # strictly increasing
    assert lis_length([5, 4, 3]) == 1 and lis_length([]) == 0
    assert lis_length([0, 2, 1, 3, 2, 4, 5, 3]) == 5  # 0, 1, 2, 4, 5
    C = np.array([[0.0, 1, 2], [2, 0, 1], [2, 1, 0]])  # a diagonal match
    assert progress_score(C, 3) == 3 and progress_score(C[::-1], 3) == 1


def test_prefix_scores_equal_the_definition_for_every_prefix() -> None:
    rng = np.random.default_rng(0)
    for trial in range(20):
        n, m = (int(x) for x in rng.integers(1, 25, 2))
        C = rng.normal(size=(n, m))
        if trial % 2:
            C = np.round(C)  # ties: the first index wins, as argmin
        naive = [lis_length(C[:k, :k].argmin(1)) for k in range(1, min(n, m) + 1)]
        assert prefix_scores(C).tolist() == naive


def _line(n: int, offset: float = 0.0) -> np.ndarray:
    """A demo or an episode whose step ``t`` is at ``t`` on a line."""
    return np.arange(1, n + 1, dtype=np.float64)[:, None] + offset


def test_progress_grows_while_the_agent_matches_the_demos_in_order() -> None:
    demos = [_line(65), _line(65, 0.01), _line(65, -0.01)]
    rec = ProgressRecognizer(demos, horizon=65)
    assert rec.reference[:20].tolist() == list(range(1, 21))  # demos match step for step
    assert rec.k == 13 and rec.gamma == pytest.approx(0.2 ** (1 / 13))  # floor(0.2 * 65)
    # an agent that follows the demos for 12 steps, then stays put: score 12 for k >= 12
    stuck = np.concatenate([_line(12), np.full((53, 1), 12.0)])
    out = rec.update([stuck])
    # k=13: 12 >= floor(0.9*13)=11 -> 14; k=14: 12 >= floor(12.6)=12 -> 15; k=15: 12 < 13
    assert rec.k == 15 and out["increments"] == 2
    assert out["agent_score"] == 12 and out["reference_score"] == 15
    assert rec.update([stuck])["increments"] == 0 and rec.k == 15
    # an agent that follows them all the way: at most 5 increments per update, up to H
    for expected in (20, 25, 30):
        rec.update([_line(65)])
        assert rec.k == expected
    for _ in range(10):
        rec.update([_line(65)])
    assert rec.k == 65 and rec.gamma == pytest.approx(0.2 ** (1 / 65))


def test_demos_of_different_lengths_give_a_reference_from_every_pair() -> None:
    """Demos that end at success differ in length. Unpadded, ``ref(k)`` past the shortest
    comes from the longer demos alone: here two of five, which match each other badly, so
    ``ref`` collapses and an agent that has not got far passes it at once. Held at their
    last state, every pair counts at every ``k`` and ``ref`` never falls."""
    short = [_line(20, 0.01 * i) for i in range(3)]
    long_ = [_line(30), _line(30)[::-1].copy()]  # the same steps in the opposite order
    plain = ProgressRecognizer([*short, *long_], horizon=30, pad=False)
    held = ProgressRecognizer([*short, *long_], horizon=30)
    assert plain.reference[19] == held.reference[19] == 20.0  # 12 of the 20 pairs match
    assert plain.reference[20] <= 2.0  # k = 21: only the two long demos' pairs are left
    assert (np.diff(held.reference) >= 0).all() and held.reference[29] == 20.0
    assert held.horizon == plain.horizon == 30
    # an agent that follows the demos for 10 steps, then stays put
    stuck = np.concatenate([_line(10), np.full((20, 1), 10.0)])
    for rec in (plain, held):
        rec.k = 21
        for _ in range(3):
            rec.update([stuck])
    assert plain.k == 30 and held.k == 21  # unpadded, k runs to the horizon


def test_the_agent_score_is_the_90th_percentile_over_episodes_and_demos() -> None:
    demos = [_line(40), _line(40, 0.01)]
    rec = ProgressRecognizer(demos, horizon=40, start=0.5)
    good, bad = _line(40), np.zeros((40, 1))
    costs = rec.costs([good] * 9 + [bad])
    assert rec.agent_score(costs, 20) == 20.0  # 18 of 20 pairs score 20
    assert rec.agent_score(rec.costs([bad] * 9 + [good]), 20) == pytest.approx(
        np.percentile([1] * 18 + [20] * 2, 90))


def test_gamma_is_alpha_to_the_one_over_k() -> None:
    for k in (1, 7, 88):
        assert discount(0.2, k) == pytest.approx(0.2 ** (1 / k))
        assert discount(0.2, k) ** k == pytest.approx(0.2)
    assert discount(0.2, 88) == pytest.approx(0.982, abs=5e-4)  # the paper's H=88 range
    assert discount(0.2, 17) == pytest.approx(0.910, abs=5e-4)  # k0 = floor(0.2 * 88)


class Walk(gym.Env):
    """obs = [t]: every policy walks along the demos, one step per step (30 steps)."""

    observation_space = gym.spaces.Box(-100, 100, (1,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.t += 1
        return np.array([self.t], np.float32), 0.0, False, self.t >= 30, {}


def _walk_venv(n: int = 2) -> DummyVecEnv:
    return DummyVecEnv([lambda: Monitor(gym.wrappers.TimeLimit(Walk(), 30))] * n)


def _callback(tmp_path: Path, **settings: Any) -> DiscountScheduleCallback:
    demos = [_line(30), _line(30, 0.01)]
    cfg = ADSConfig(update_every=60, episodes=4, **settings)
    return DiscountScheduleCallback(cfg, demos, Walk.observation_space, tmp_path)


def test_ppo_rollout_buffer_gamma_moves_with_the_schedule(tmp_path: Path) -> None:
    cb = _callback(tmp_path)
    agent = PPO("MlpPolicy", _walk_venv(), n_steps=30, batch_size=30, n_epochs=1, gamma=0.99,
                seed=0, device="cpu", policy_kwargs={"net_arch": [8]})
    agent.learn(60 * 4, callback=[cb])
    assert cb.recognizer is not None and cb.recognizer.horizon == 30  # the env's time limit
    ks = [h["k"] for h in cb.history]
    assert ks[0] == 6 and ks[-1] > ks[0]  # floor(0.2 * 30), then progress
    assert agent.gamma == pytest.approx(0.2 ** (1 / ks[-1]))
    assert agent.rollout_buffer.gamma == agent.gamma != 0.99
    record = json.loads((tmp_path / RECORD).read_text())
    assert record["k0"] == 6 and record["k"] == ks[-1] and record["gamma"] == agent.gamma


def test_sac_reads_the_new_gamma_and_vecnormalize_follows(tmp_path: Path) -> None:
    from stable_baselines3.common.vec_env import VecNormalize

    cb = _callback(tmp_path, horizon=20)
    venv = VecNormalize(_walk_venv(1), norm_obs=True, norm_reward=True, gamma=0.99)
    agent = SAC("MlpPolicy", venv, learning_starts=10, batch_size=8, seed=0, device="cpu",
                policy_kwargs={"net_arch": [8]})
    agent.learn(150, callback=[cb])
    assert cb.recognizer is not None and cb.recognizer.k > 4  # k0 = floor(0.2 * 20)
    assert agent.gamma == venv.gamma == pytest.approx(0.2 ** (1 / cb.recognizer.k))
    # the raw observations were read (not VecNormalize's): the walk matched the demos
    assert cb.history[-1]["agent_score"] >= 4
    assert set_discount(agent, 0.5) == ["model.gamma", "VecNormalize.gamma"]


def test_unknown_schedule_and_bad_settings_are_refused_listing_the_choices() -> None:
    assert schedule_settings(None) is None
    assert schedule_settings("ads") == ADSConfig()
    with pytest.raises(ValueError, match=r"'adz': unknown schedule; valid choices: ads"):
        schedule_settings("adz")
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\)"):
        schedule_settings({"name": "ads", "alpha": 1.5})
    with pytest.raises(ValueError, match=r"unknown discount_schedule setting.*did you mean alpha"):
        schedule_settings({"alpah": 0.3})


# -- end to end -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 scripted pick_place demos (about 30 steps each)."""
    from rewardlearn.cli.collect import CollectConfig, collect

    out = tmp_path_factory.mktemp("ot") / "demos"
    collect(CollectConfig(env="pick_place", n_episodes=4, out=str(out)), verbose=False)
    return out


def _overrides(demos: Path, *extra: str) -> list[str]:
    return ["env=pick_place", "reward=ot", f"reward.model.demos={demos}", "n_envs=2",
            "agent.discount_schedule={name: ads, update_every: 128}", "eval.n_episodes=1",
            "video.enabled=false", "progress_bar=false", "torch_threads=1", "~teacher", *extra]


def test_train_ppo_with_ot_and_ads(compose_cfg: Callable[..., DictConfig], tmp_path: Path,
                                   demos: Path) -> None:
    cfg = compose_cfg(*_overrides(demos, "agent=ppo", "total_timesteps=512",
                                  "+agent.kwargs.n_steps=64", "+agent.kwargs.batch_size=64",
                                  "+agent.kwargs.n_epochs=1"))
    summary = run(cfg, tmp_path / "run")
    ot = summary["reward_training"]
    assert ot["episodes_scored"] > 0 and ot["scale"] > 0 and ot["demos"] == 4
    assert summary["learned_return_mean"] < 0  # -s * transport cost
    record = json.loads((tmp_path / "run" / RECORD).read_text())
    # H: the env's 150-step limit, capped at the longest demo's length (progress is counted
    # in demo steps; the demos are about 30 steps); k0 = floor(0.2 * H)
    assert record["schedule"] == "ads" and 20 <= record["horizon"] <= 40
    assert record["k0"] == int(0.2 * record["horizon"])
    assert len(record["history"]) >= 2  # the start, then updates once episodes ended
    assert record["gamma"] == pytest.approx(0.2 ** (1 / record["k"]))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    [events] = list((tmp_path / "run" / "tb").rglob("events*"))
    acc = EventAccumulator(str(events))
    acc.Reload()
    assert {"discount/gamma", "discount/progress_k",
            "rollout/ep_learned_rew_mean"} <= set(acc.Tags()["scalars"])


def test_train_sac_with_ot_relabels_its_replay_buffer(compose_cfg: Callable[..., DictConfig],
                                                      tmp_path: Path, demos: Path) -> None:
    cfg = compose_cfg(*_overrides(demos, "agent=sac", "total_timesteps=400",
                                  "+agent.kwargs.learning_starts=50",
                                  "+agent.kwargs.batch_size=32"))
    summary = run(cfg, tmp_path / "run")
    assert summary["reward_training"]["episodes_scored"] > 0
    from stable_baselines3 import SAC as LoadSAC

    agent = LoadSAC.load(tmp_path / "run" / "agent.zip", device="cpu")
    assert agent.gamma == json.loads((tmp_path / "run" / RECORD).read_text())["gamma"]


def test_bad_settings_stop_the_command_early_in_one_line(tmp_path: Path, demos: Path) -> None:
    cases = [
        (["agent.discount_schedule=adz"], ["agent.discount_schedule='adz': unknown schedule; "
                                           "valid choices: ads (or null for a fixed agent.gamma)"]),
        (["reward.model.reg=-1", "reward.model.variant=tot"],
         ["reg must be > 0", "variant must be one of ot, temporal"]),
        (["reward_timing=step"], ["reward_timing=step: reward module ot scores whole episodes"]),
    ]
    for k, (extra, messages) in enumerate(cases):
        out = tmp_path / f"run{k}"
        proc = subprocess.run([sys.executable, "train.py", *_overrides(demos, "agent=ppo"),
                               *extra, f"hydra.run.dir={out}"], cwd=ROOT, capture_output=True,
                              text=True, timeout=150)
        assert proc.returncode == 1, proc.stderr[-2000:]
        lines = proc.stderr.strip().splitlines()
        assert lines[-1].startswith("error: ") and sum(x.startswith("error:") for x in lines) == 1
        assert all(m in lines[-1] for m in messages), lines[-1]
        assert not out.exists()  # refused before any run folder


def test_the_recognizer_reads_a_state_encoders_features_and_refuses_frame_encoders() -> None:
    from rewardlearn.ads.callback import DemoFeatures
    from rewardlearn.encoders import DownsampleEncoder, RelativeEncoder

    rel = RelativeEncoder(pairs=[[[0, 2], [2, 4]]])
    t = np.linspace(0, 1, 20)[:, None]
    demo = np.concatenate([t * np.ones((1, 2)), np.ones((20, 2))], axis=1)
    feats = DemoFeatures([demo, demo + 5.0], standardize=False, min_std=0.01, encoder=rel)
    # a layout shifted by 5 is the same motion: the same features
    np.testing.assert_allclose(feats.demos[0], feats.demos[1], atol=1e-5)
    np.testing.assert_allclose(feats(demo), 1.0 - t * np.ones((1, 2)), atol=1e-5)
    with pytest.raises(ValueError, match="reads frames"):
        DemoFeatures([demo, demo], True, 0.01, DownsampleEncoder())


def test_train_with_object_centric_features_from_the_env_config(
        compose_cfg: Callable[..., DictConfig], tmp_path: Path, demos: Path) -> None:
    """``encoder=relative`` for the reward and the recognizer, its index ranges interpolated
    from ``env.relative_features`` (bench_ilfo's ``ot_ads_relative``)."""
    rel = "{target: relative, kwargs: ${env.relative_features}}"
    overrides = [o for o in _overrides(demos, "agent=ppo", "total_timesteps=256",
                                       "+agent.kwargs.n_steps=64",
                                       "+agent.kwargs.batch_size=64",
                                       "+agent.kwargs.n_epochs=1")
                 if not o.startswith("agent.discount_schedule")]
    cfg = compose_cfg(*overrides, f"reward.model.encoder={rel}",
                      f"agent.discount_schedule={{name: ads, update_every: 128, encoder: {rel}}}")
    summary = run(cfg, tmp_path / "run")
    assert summary["reward_training"]["metric"] == "euclidean"
    record = json.loads((tmp_path / "run" / RECORD).read_text())
    assert record["settings"]["encoder"] == {
        "target": "relative", "kwargs": {"pairs": [[[0, 3], [12, 15]], [[12, 15], [25, 28]]],
                                         "keep": [9, 10]}}
