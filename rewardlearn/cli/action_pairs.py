"""``rewardlearn-action-pairs``: pairs of candidate actions from a run's policy, labelled.

Usage::

    rewardlearn-action-pairs runs/<run> n_pairs=500 out=labels/pick_place
    rewardlearn-action-pairs runs/<run> n_pairs=50 clips=true out=labels/review
    rewardlearn-action-pairs runs/<run> n_pairs=50 teacher=none out=labels/todo
    rewardlearn-action-pairs runs/<run> n_pairs=100 teacher=human out=labels/mine
    rewardlearn-review labels/mine      # people label them in the browser
    # candidates near the mean action, for a selector at eval.select.temperature=0.25:
    rewardlearn-action-pairs runs/<run> n_pairs=500 temperature=0.25 out=labels/t025
    # a second round, from the states best-of-16 by the first round's reward visits:
    python train.py env=<env> reward=action_preference reward.model.labels=labels/r1 ...
    rewardlearn-action-pairs runs/<run> n_pairs=250 select=runs/<reward run> out=labels/r2
    # then reward.model.labels=labels/r1,labels/r2

At every ``every``-th step of the run's policy (its sampled actions), two candidate actions
from the same state are stored with a label: ``teacher=oracle`` (synthetic: the env's
reward over ``horizon`` lookahead steps after each, simulation only), ``teacher=none``
(``null``, to fill in later) or ``teacher=human`` (``null``, with a clip after each candidate,
queued on the review page: :mod:`rewardlearn.select.review`). ``select=<reward model>``
moves the rollouts by best-of-``select_n`` with that reward instead of the policy's samples
(the candidates still come from the policy): the states a selector visits; with
``query=disagreement`` the pairs stored are those its ensemble is least sure of. Options:
:class:`~rewardlearn.select.configuration.PairsConfig`; the file format:
:mod:`rewardlearn.select.pairs`. ``reward=action_preference reward.model.labels=<folder>``
learns ``r(s, a)`` from the labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rewardlearn.agents import load_run_policy
from rewardlearn.cli.checks import run_env
from rewardlearn.cli.options import cli_args, parse_key_values, run_cli, settings_types
from rewardlearn.env_factory import camera_config, env_config, replay_env
from rewardlearn.runs import run_config
from rewardlearn.select.configuration import PairsConfig
from rewardlearn.select.pairs import (
    PAIRS_NAME,
    ActionOracle,
    ActionPair,
    collect_action_pairs,
    disagreement_score,
)
from rewardlearn.select.review import queue_pairs, review_db


def main(argv: Sequence[str] | None = None) -> list[ActionPair]:
    """``rewardlearn-action-pairs runs/<run> [key=value ...]``."""
    args = cli_args(argv, __doc__)
    runs = [a for a in args if "=" not in a]
    if len(runs) != 1:
        raise ValueError("give one run folder: rewardlearn-action-pairs runs/<run> "
                         f"out=<folder> [n_pairs=500]; got {len(runs)}")
    cfg = PairsConfig.from_kwargs(parse_key_values([a for a in args if "=" in a],
                                                   settings_types(PairsConfig)))
    run_dir = Path(runs[0])
    run_cfg = run_config(run_dir)
    policy = load_run_policy(run_dir)
    env = run_env(run_cfg, replay_env(run_cfg, None))
    out = Path(cfg.out) if cfg.out else run_dir / "action_pairs"
    if (out / PAIRS_NAME).exists():
        raise FileExistsError(f"{out / PAIRS_NAME} exists; choose another out=")
    teacher = None if cfg.teacher in ("none", "human") else ActionOracle(
        cfg.horizon, cfg.gamma, cfg.equal_margin, cfg.reward_key)
    size = (cfg.clip_size, cfg.clip_size) if cfg.clips or cfg.teacher == "human" else None
    behaviour = query = None
    if cfg.select is not None:
        from rewardlearn.cli.select_run import load_scoring_model
        from rewardlearn.select import BestOfN, RewardScorer

        agent: Any = getattr(policy, "agent", policy)  # the SB3 agent behind a normaliser
        model = load_scoring_model(cfg.select, agent.observation_space, agent.action_space)
        behaviour = BestOfN(policy, RewardScorer(model), cfg.select_n,
                            observation_space=agent.observation_space,
                            temperature=cfg.temperature)
        if cfg.query == "disagreement":
            query = disagreement_score(model)
    pairs = collect_action_pairs(policy, env, cfg.n_pairs, out, teacher, cfg.horizon, cfg.every,
                                 cfg.seed, size, camera_config(env_config(env)),
                                 meta={"run": str(run_dir), "env": str(env.name),
                                       "settings": cfg.to_dict()}, behaviour=behaviour,
                                 query_score=query, temperature=cfg.temperature)
    if cfg.teacher == "human":
        queued = queue_pairs(out, pairs)
        print(f"{queued} action pairs queued for people in {review_db(out)}: label them with "
              f"`rewardlearn-review {out}`; reward=action_preference "
              f"reward.model.labels={out} reads the answers")
    labelled = [p for p in pairs if p.label is not None]
    equal = sum(p.label == 0.5 for p in labelled)
    print(f"{len(pairs)} action pairs ({len(labelled)} labelled, {equal} equal) written to "
          f"{out / PAIRS_NAME}")
    if labelled and equal > len(labelled) / 2:
        print(f"warning: {equal} of {len(labelled)} labels are 'equal': the env's reward may be "
              "sparse over a short rollout; sum a dense signal instead with reward_key=<info "
              "entry> (pick_place: reward_key=dense_reward)")
    return pairs


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
