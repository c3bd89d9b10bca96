"""A new user of a ``reward=vpl`` run: ask them a few pairs, each chosen after their answers
so far, and save their ``z`` so the run's agent acts for them.

Usage::

    rewardlearn-vpl-user runs/<vpl run> name=alice                # a person: label on the page
    rewardlearn-review runs/<vpl run>/users                       # (in another shell)
    rewardlearn-vpl-user runs/<vpl run> name=sim0 teacher=population user=0   # a synthetic user
    rewardlearn-replay runs/<vpl run> user=alice                  # the agent, acting for alice

Candidates: ``candidates`` (100) random pairs of ``reward.model.segment_length``-step
segments, half from the run's agent and half from random actions
(:func:`rewardlearn.vpl.onboard.candidate_pairs`). Each next pair is the one with the most
expected information about ``z`` given the answers so far (``criterion``: ``bald``, the
default, or ``posterior``; :mod:`rewardlearn.vpl.active`), ``n_queries`` (10) in all.

``teacher=human`` (the default): each pair is rendered as two clips under
``<run>/users/<name>/queries/`` and queued in ``<run>/users/labels.sqlite``; the command
waits for the answer (``timeout_s``, default none), and a skipped pair is replaced by the
next best. Stopped before the end (a timeout, Ctrl-C), the same command goes on where it
stopped: the answers given are read back from the store, not asked again.
``teacher=population user=<k>``: the run's synthetic user ``k`` answers (a run trained with
``teacher=population``).

Writes ``<run>/users/<name>.json`` (``z``, its log-variance, the pairs asked, the answers and
each pick's information); an existing name is refused, never overwritten. Options:
``name`` (required), ``teacher``, ``user``, ``n_queries``, ``candidates``, ``criterion``,
``samples`` (128 posterior draws of ``z`` per pick), ``seed`` (0), ``timeout_s``,
``clip_size`` (192).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hydra.utils import instantiate

from rewardlearn.cli.options import cli_args, parse_key_values, run_cli
from rewardlearn.env_factory import replay_env
from rewardlearn.runs import agent_file, run_config
from rewardlearn.vpl.active import CRITERIA, ask_adaptively

TEACHERS = ("human", "population")
OPTIONS: dict[str, Callable[[str], Any]] = {
    "name": str, "teacher": str, "user": int, "n_queries": int, "candidates": int,
    "criterion": str, "samples": int, "seed": int, "timeout_s": float, "clip_size": int}


def vpl_user(run_dir: str | Path, name: str, teacher: str = "human", user: int | None = None,
             n_queries: int = 10, candidates: int = 100, criterion: str = "bald",
             samples: int = 128, seed: int = 0, timeout_s: float | None = None,
             clip_size: int = 192) -> dict[str, Any]:
    """Ask a new user and save their ``z`` (module docstring); returns the saved file's path,
    ``z`` and the pairs asked."""
    from rewardlearn.preference.human import HumanTeacher
    from rewardlearn.rewards import load_reward_model
    from rewardlearn.vpl.onboard import (
        HumanAnswers,
        PopulationAnswers,
        run_candidates,
        save_user,
        user_env,
        user_file,
    )
    from rewardlearn.vpl.reward import VPLReward

    run_dir = Path(run_dir)
    out = user_file(run_dir, name)  # checks the name
    if teacher not in TEACHERS:
        raise ValueError(f"unknown teacher {teacher!r}; valid: {', '.join(TEACHERS)}")
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; valid: {', '.join(CRITERIA)}")
    if samples < 2:
        raise ValueError(f"samples (posterior draws of z per pick) must be >= 2, got {samples}")
    if not 1 <= n_queries <= candidates:
        raise ValueError(f"n_queries must be in [1, candidates={candidates}], got {n_queries}")
    if teacher == "population" and user is None:
        raise ValueError("teacher=population needs user=<index> (which synthetic user answers)")
    if teacher == "human" and user is not None:
        raise ValueError("user= picks a synthetic user; with teacher=human a person answers")
    if out.exists():
        raise FileExistsError(f"{out} exists: that user is saved already; choose another name=")
    cfg = run_config(run_dir)
    reward = load_reward_model(run_dir)
    if not isinstance(reward, VPLReward):
        raise ValueError(f"{run_dir} is a reward={cfg.reward.get('name')} run; "
                         "rewardlearn-vpl-user needs a reward=vpl run")
    population = None
    if teacher == "population":
        pop_cfg = cfg.get("teacher")
        used = None if pop_cfg is None else pop_cfg.get("name")
        if used != "population":
            raise ValueError(f"teacher=population needs a run trained with teacher=population; "
                             f"{run_dir} used teacher={used}")
        population = instantiate(pop_cfg)
        n = len(population.users)
        if not 0 <= int(user or 0) < n:
            raise ValueError(f"user must be in [0, {n - 1}] (the run's {n} users), got {user}")
    env = replay_env(cfg, None)
    cands = run_candidates(reward, env, agent_file(run_dir), candidates, seed=seed,
                           sim_state=teacher == "human")
    answer: Any
    human: HumanTeacher | None = None
    if population is not None:
        answer = PopulationAnswers(population, int(user or 0), reward, cands)
    else:
        human = HumanTeacher(user_env(env, reward.cfg.latent_dim),
                             root=str(run_dir / "users"), wait="block", timeout_s=timeout_s,
                             clip_size=clip_size)
        human.run = name
        print(f"label {n_queries} pairs for {name!r} at the review page: "
              f"{human.review_command()}", flush=True)
        answer = HumanAnswers(human, cands, timeout_s)
    try:
        result = ask_adaptively(reward, cands.x1, cands.x2, answer, n_queries,
                                criterion, samples, seed)  # type: ignore[arg-type]
    finally:
        if human is not None:
            human.close()
    info: dict[str, Any] = {"name": name, "run": str(run_dir), "teacher": teacher, "user": user,
            "criterion": criterion, "candidates": candidates, "samples": samples, "seed": seed}
    if isinstance(answer, HumanAnswers):
        info["annotators"] = answer.annotators
    path = save_user(out, result, info)
    return {"file": str(path), "z": result.mu.tolist(), "asked": result.indices.tolist(),
            "labels": result.labels.tolist(), "information": result.gains}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``rewardlearn-vpl-user runs/<vpl run> name=<user> [teacher=...] ...``."""
    args = cli_args(argv, __doc__)
    runs = [a for a in args if "=" not in a]
    if len(runs) != 1:
        raise ValueError("give one reward=vpl run folder: rewardlearn-vpl-user runs/<run> "
                         f"name=<user>; got {len(runs)}: {' '.join(runs) or '(none)'}")
    opts = parse_key_values([a for a in args if "=" in a], OPTIONS)
    if "name" not in opts:
        raise ValueError("name=<user> is required (the user's file: <run>/users/<name>.json)")
    result = vpl_user(runs[0], **opts)
    print(f"asked {len(result['asked'])} pairs; z = "
          f"[{', '.join(f'{v:.3f}' for v in result['z'])}]")
    print(f"written: {result['file']}; act for this user: rewardlearn-replay {runs[0]} "
          f"user={opts['name']}")
    return result


def cli() -> None:
    """Entry point; input errors exit with a message, no trace."""
    run_cli(main)


__all__ = ["cli", "main", "vpl_user"]

if __name__ == "__main__":
    cli()
