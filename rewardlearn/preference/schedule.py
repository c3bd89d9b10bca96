"""The feedback plan of ``reward=preference``: every round planned up front.

As imitation's ``query_schedule``, the whole run's rounds are known when training starts
(and logged): round ``k`` is due at env step ``at`` (counted from the start of this
``learn`` call) and asks ``queries`` labels. :class:`~rewardlearn.preference.reward.
PreferenceCallback` runs each at the first rollout end at or past its step.

The plan, from :class:`~rewardlearn.preference.configuration.PreferenceConfig`:

* the first round at ``max(first_round_at, unsup_steps)``, asking ``max(queries_per_round,
  ceil(first_round_frac * budget))`` (first round of a fresh run only);
* with ``interval`` set, a round every ``interval`` steps until the budget is spent;
* otherwise the remaining budget in rounds of ``queries_per_round`` spread until
  ``feedback_until`` of training: evenly, or with ``round_spacing = p`` at
  ``first + span * (k / (n - 1)) ** p``;
* ``schedule=linear_decay`` asks ``ceil(queries_per_round * (1 - t / total))`` at step ``t``.

Example:
    >>> from rewardlearn.preference.configuration import PreferenceConfig
    >>> plan = plan_rounds(PreferenceConfig(budget=200, queries_per_round=40), 12_000)
    >>> [(r.at, r.queries) for r in plan.rounds]
    [(1000, 40), (2250, 40), (3500, 40), (4750, 40), (6000, 40)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rewardlearn.preference.configuration import PreferenceConfig


@dataclass(frozen=True)
class FeedbackRound:
    """One planned round: due at env step ``at`` (from the start), asking ``queries``."""

    at: int
    queries: int


@dataclass(frozen=True)
class FeedbackPlan:
    """Every round of a run, in order."""

    rounds: tuple[FeedbackRound, ...]

    @property
    def labels(self) -> int:
        """Labels the plan asks in all."""
        return sum(r.queries for r in self.rounds)

    def due(self, k: int) -> FeedbackRound | None:
        """The ``k``-th round of the plan (``None`` past its end)."""
        return self.rounds[k] if 0 <= k < len(self.rounds) else None

    def describe(self) -> str:
        """One line for the log: how many rounds, at which steps, how many labels each."""
        if not self.rounds:
            return "no feedback round (no budget left)"
        steps = ", ".join(str(r.at) for r in self.rounds)
        sizes = sorted({r.queries for r in self.rounds})
        per = str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"
        return (f"{len(self.rounds)} rounds of {per} labels ({self.labels} in all) at steps "
                f"{steps}")


def _queries(cfg: PreferenceConfig, at: int, total: int, first: bool, left: int) -> int:
    q = cfg.queries_per_round
    if cfg.schedule == "linear_decay":
        q = max(1, math.ceil(q * (1.0 - min(max(at / max(total, 1), 0.0), 1.0))))
    if first:
        q = max(q, math.ceil(cfg.first_round_frac * cfg.budget))
    return min(q, left)


def plan_rounds(cfg: PreferenceConfig, total_timesteps: int, budget_left: int | None = None,
                rounds_done: int = 0) -> FeedbackPlan:
    """The rounds of a run of ``total_timesteps`` steps with ``budget_left`` labels to ask
    (default: the whole budget); ``rounds_done`` > 0 for a resumed run (no first-round
    top-up)."""
    left = cfg.budget if budget_left is None else int(budget_left)
    total = max(int(total_timesteps), 1)
    first = max(cfg.first_round_at, cfg.unsup_steps)
    rounds: list[FeedbackRound] = []
    if left <= 0:
        return FeedbackPlan(())
    if cfg.interval is not None:
        at = first
        while left > 0 and at < total:
            q = _queries(cfg, at, total, rounds_done == 0 and not rounds, left)
            rounds.append(FeedbackRound(at, q))
            left -= q
            at += int(cfg.interval)
        return FeedbackPlan(tuple(rounds))
    q0 = _queries(cfg, first, total, rounds_done == 0, left)
    n = 1 + math.ceil(max(0, left - q0) / cfg.queries_per_round)
    span = max(1, int(cfg.feedback_until * total) - first)
    if n > 1 and cfg.round_spacing != 1:
        starts = [first + round(span * (k / (n - 1)) ** cfg.round_spacing) for k in range(n)]
    else:
        gap = max(1, span // (n - 1)) if n > 1 else span
        starts = [first + k * gap for k in range(n)]
    for k, at in enumerate(starts):
        if left <= 0:
            break
        q = q0 if k == 0 else _queries(cfg, at, total, False, left)
        rounds.append(FeedbackRound(int(at), q))
        left -= q
    # a decaying schedule leaves labels over: keep asking at the last gap until the end
    gap = max(1, starts[-1] - starts[-2]) if len(starts) > 1 else span
    at = rounds[-1].at + gap
    while left > 0 and at < total:
        q = _queries(cfg, at, total, False, left)
        rounds.append(FeedbackRound(int(at), q))
        left -= q
        at += gap
    return FeedbackPlan(tuple(rounds))


__all__ = ["FeedbackPlan", "FeedbackRound", "plan_rounds"]
