"""Outcome ranking and exploit probes: the metrics, the probe states and the raters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rewardlearn.metrics.outcomes import (
    exploit_probe,
    furthest_stage,
    kendall_ceiling,
    kendall_outcome,
    outcome_ranking,
    success_failure_gap,
)


def test_kendall_and_gap_on_known_rankings() -> None:
    from scipy.stats import kendalltau

    final = np.array([0.9, 0.7, 0.6, 0.3, 0.2, 0.1])
    success = np.array([1, 1, 0, 1, 0, 0])
    assert kendall_outcome(final, success) == pytest.approx(kendalltau(final, success).statistic)
    assert success_failure_gap(final, success) == pytest.approx(
        np.mean([0.9, 0.7, 0.3]) - np.mean([0.6, 0.2, 0.1]))
    assert np.isnan(kendall_outcome(final, np.ones(6)))
    assert np.isnan(success_failure_gap(final, np.zeros(6)))


def test_outcome_ranking_reaches_its_maximum_for_a_perfect_rater() -> None:
    episodes = [{"observations": np.full((3, 1), float(i)), "success": i >= 5}
                for i in range(10)]
    out = outcome_ranking(lambda ep: ep["observations"][:, 0] / 10, episodes)
    assert out["concordance"] == 1.0 and out["kendall_tau"] == pytest.approx(np.sqrt(25 / 45))
    tied = outcome_ranking(lambda ep: np.full(3, float(ep["success"])), episodes)
    assert tied["kendall_tau"] == pytest.approx(1.0) and tied["concordance"] == 1.0
    assert out["successes"] == 5 and out["success_failure_gap"] == pytest.approx(0.5)
    assert out["kendall_tau_max"] == pytest.approx(out["kendall_tau"])  # perfect = ceiling


def test_kendall_ceiling_and_the_stage_ladder() -> None:
    from scipy.stats import kendalltau

    # 21 successes in 150: even a perfect ranking stays below 0.5; balanced: 0.71
    assert kendall_ceiling(np.r_[np.ones(21), np.zeros(129)]) == pytest.approx(0.4924, abs=1e-4)
    assert kendall_ceiling(np.r_[np.ones(75), np.zeros(75)]) == pytest.approx(0.7095, abs=1e-4)
    assert np.isnan(kendall_ceiling(np.ones(5)))
    success = np.r_[np.ones(3), np.zeros(5)].astype(bool)
    perfect = np.arange(8)[::-1]  # the successes rated highest, all ratings distinct
    assert kendall_ceiling(success) == pytest.approx(kendalltau(perfect, success).statistic)
    # the ladder: furthest stage reached, a success one above the last stage
    stages = [[0, 1, 2, 3, 3], [0, 1, 2, 3, 3], [0, 1, 1, 0, 0], [0, 0, 0, 0, 0]]
    eps = [{"observations": np.zeros((5, 1)), "success": i == 0,
            "infos": [{"stage": k} for k in st]} for i, st in enumerate(stages)]
    assert [furthest_stage(ep) for ep in eps] == [4, 3, 1, 0]
    # a rater that orders the failures by how far they got: tau on the ladder is 1,
    # one that rates every failure alike is not
    by_stage = outcome_ranking(lambda ep: np.full(5, furthest_stage(ep) / 4), eps)
    assert by_stage["kendall_tau_stage"] == pytest.approx(1.0)
    flat = outcome_ranking(lambda ep: np.full(5, float(ep["success"])), eps)
    assert flat["kendall_tau"] == pytest.approx(1.0) and flat["kendall_tau_stage"] < 0.9


def test_exploit_probe_compares_the_last_states_with_their_true_progress() -> None:
    probes = {"hover": [{"observations": np.zeros((20, 1)), "progress": np.full(20, 0.13)}]}
    farmed = exploit_probe(lambda ep: np.full(20, 0.97), probes)
    assert farmed["hover"]["excess"] == pytest.approx(0.84)
    honest = exploit_probe(lambda ep: np.full(20, 0.15), probes)
    assert honest["hover"]["excess"] == pytest.approx(0.02)


def test_pick_place_probes_are_what_they_say() -> None:
    import rewardlearn_envs  # noqa: F401
    from rewardlearn_envs.probes import pick_place_probes

    probes = pick_place_probes(seeds=[0], steps=150)
    hover, stall, drop = probes["hover"][0], probes["stall"][0], probes["drop"][0]
    assert hover["stage"].max() == 0 and not hover["success"]  # never grasps
    assert stall["progress"][-1] == pytest.approx(stall["progress"][0], abs=0.02)
    assert drop["stage"].max() >= 2 and drop["stage"][-1] < 2  # carried, then dropped
    for ep in (hover, stall, drop):
        assert len(ep["observations"]) == len(ep["progress"]) == len(ep["infos"])


def test_evaluate_reports_outcomes_and_exploit_for_a_drs_checkpoint(tmp_path: Path) -> None:
    from rewardlearn.cli.collect import CollectConfig, collect
    from rewardlearn.cli.evaluate import main
    from rewardlearn.drs.reward import DrSReward
    from rewardlearn.env_factory import make_env
    from rewardlearn.rewards import save_reward_model

    env = make_env("pick_place")
    path = save_reward_model(DrSReward(env.observation_space, env.action_space, num_stages=4),
                             tmp_path / "drs" / "reward_model.pt")
    env.close()
    rollouts = tmp_path / "rollouts"
    collect(CollectConfig(env="pick_place", n_episodes=6, noise=2.0, only_success=False,
                          out=str(rollouts), dataset_id="test/pick_place/rollouts-v0"),
            verbose=False)
    result = main([f"reward=drs:{path}", "env=pick_place", "metrics=outcomes,exploit",
                   f"rollouts={rollouts}", "n_steps=50"])
    row = result["rewards"]["drs"]
    # an untrained drs rates by stage alone: hovering over the cube is stage 0, progress 0
    assert row["hover_excess"] < 0.1 and row["stall_excess"] < 0.1
    assert "kendall_tau" in row and "success_failure_gap" in row
