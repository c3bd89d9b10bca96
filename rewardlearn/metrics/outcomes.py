"""Does a learned progress signal hold on the learner's own states? Outcome ranking and
exploit probes.

* :func:`kendall_outcome`: Kendall's tau-b (scipy's) between the predicted final progress
  of each rollout and its outcome (1 success, 0 failure), on rollouts of mixed outcome.
  The outcome has two values only, so tau-b reaches 1 only when the prediction ties
  exactly as the outcomes do (every success rated 1, say); a perfect ranking with
  distinct predictions scores ``sqrt(n_s n_f / (n (n - 1) / 2))``. Hence also
* :func:`concordance`: the share of (success, failure) pairs in which the success is
  rated higher (ties count half): 1 for a perfect ranking, 0.5 for chance.
* :func:`success_failure_gap`: mean predicted final progress of the successes minus that
  of the failures.
* :func:`exploit_probe`: a model's progress on scripted exploit states (hovering over an
  untouched object, a long stall, a dropped object), against their true progress; a
  model an agent cannot farm keeps ``excess = predicted - true`` small (at most 0.1).

A *rater* maps one episode (``observations``, ``infos``; the keys of
:func:`rewardlearn_envs.probes.pick_place_probes`) to a progress in [0, 1] per state.

Example:
    >>> import numpy as np
    >>> round(kendall_outcome(np.array([0.9, 0.8, 0.2, 0.1]), np.array([1, 1, 0, 0])), 3)
    0.816
    >>> round(kendall_outcome(np.array([0.9, 0.8, 0.2, 0.1]), np.array([0, 1, 1, 0])), 3)
    0.0
    >>> success_failure_gap(np.array([0.9, 0.8, 0.2, 0.1]), np.array([1, 1, 0, 0]))
    0.7
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

Rater = Callable[[Mapping[str, Any]], np.ndarray]
"""One episode -> predicted progress per state (``T + 1`` values in [0, 1])."""


def kendall_outcome(final_progress: np.ndarray, success: np.ndarray) -> float:
    """Kendall's tau-b of predicted final progress vs outcome; ``nan`` if one outcome only."""
    from scipy.stats import kendalltau

    success = np.asarray(success, np.float64)
    if success.min() == success.max():
        return float("nan")
    return float(kendalltau(np.asarray(final_progress, np.float64), success).statistic)


def kendall_ceiling(success: np.ndarray) -> float:
    """The largest tau-b a ranking with distinct predictions can reach against a binary
    outcome: ``sqrt(n_s n_f / (n (n - 1) / 2))``. It is 0.49 for 21 successes in 150
    rollouts and 0.71 for 75, so a tau target needs rollouts of balanced outcome.

    Example:
        >>> round(kendall_ceiling(np.array([1, 1, 0, 0])), 3)
        0.816
    """
    s = np.asarray(success, bool)
    n, n_s = len(s), int(s.sum())
    if n < 2 or n_s in (0, n):
        return float("nan")
    return float(np.sqrt(n_s * (n - n_s) / (n * (n - 1) / 2)))


def furthest_stage(episode: Mapping[str, Any]) -> int:
    """The episode's outcome on the stage ladder: the furthest ``info["stage"]`` reached,
    plus one for a success (so a success ranks above holding the object at the last stage)."""
    stages = [int(info.get("stage", 0)) for info in episode.get("infos", ())]
    return (max(stages) if stages else 0) + int(bool(episode["success"]))


def concordance(final_progress: np.ndarray, success: np.ndarray) -> float:
    """Share of (success, failure) pairs rated in the right order, ties half; ``nan`` if one
    outcome only."""
    p, s = np.asarray(final_progress, np.float64), np.asarray(success, bool)
    if s.all() or not s.any():
        return float("nan")
    diff = p[s][:, None] - p[~s][None, :]
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


def success_failure_gap(final_progress: np.ndarray, success: np.ndarray) -> float:
    """Mean predicted final progress of successes minus failures; ``nan`` if one is empty."""
    p, s = np.asarray(final_progress, np.float64), np.asarray(success, bool)
    if s.all() or not s.any():
        return float("nan")
    return round(float(p[s].mean() - p[~s].mean()), 12)


def outcome_ranking(rate: Rater, episodes: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Kendall tau (and its ceiling), concordance and success-failure gap of a rater's final
    progress on ``episodes``; ``kendall_tau_stage`` is tau-b against :func:`furthest_stage`,
    an ordinal outcome that also orders the failures."""
    from scipy.stats import kendalltau

    final = np.array([float(np.asarray(rate(ep))[-1]) for ep in episodes])
    success = np.array([bool(ep["success"]) for ep in episodes])
    ladder = np.array([furthest_stage(ep) for ep in episodes], np.float64)
    tau_stage = (float(kendalltau(final, ladder).statistic) if ladder.min() < ladder.max()
                 else float("nan"))
    return {"kendall_tau": kendall_outcome(final, success),
            "kendall_tau_max": kendall_ceiling(success),
            "kendall_tau_stage": tau_stage,
            "concordance": concordance(final, success),
            "success_failure_gap": success_failure_gap(final, success),
            "episodes": float(len(episodes)), "successes": float(success.sum())}


def exploit_probe(rate: Rater, probes: Mapping[str, Sequence[Mapping[str, Any]]],
                  last: int = 10) -> dict[str, dict[str, float]]:
    """Per probe: predicted and true progress (mean over the last ``last`` states of each
    episode, then over episodes), and ``excess = predicted - true``."""
    out: dict[str, dict[str, float]] = {}
    for name, episodes in probes.items():
        pred = [float(np.mean(np.asarray(rate(ep))[-last:])) for ep in episodes]
        true = [float(np.mean(np.asarray(ep["progress"])[-last:])) for ep in episodes]
        out[name] = {"predicted": float(np.mean(pred)), "true": float(np.mean(true)),
                     "excess": float(np.mean(pred) - np.mean(true))}
    return out


def episodes_from_dataset(path: str) -> list[dict[str, Any]]:
    """A demo/rollout dataset (``rewardlearn-collect ... only_success=false``) as rater
    episodes: observations, per-state ``stage``/``is_success`` infos, outcome, true progress
    (where the env records it)."""
    from rewardlearn.demos import load_demo_sets

    out = []
    for ep in load_demo_sets(path):
        success = ep.infos.get("is_success", np.zeros(len(ep.stages), bool))
        infos = [{"stage": int(k), "is_success": bool(s)}
                 for k, s in zip(ep.stages, success, strict=True)]
        out.append({"observations": ep.observations, "infos": infos, "success": ep.success,
                    "progress": ep.infos.get("progress")})
    return out


def rater_for(model: Any) -> Rater | None:
    """The progress rater of a reward module, if it has a progress: a progress model
    (``reward=progress*``), ``reward=drs``'s level, or the demo progress ``reward=ot``
    matches each state with; ``None`` for other modules."""
    from rewardlearn.drs.reward import DrSReward
    from rewardlearn.ot.reward import OTReward
    from rewardlearn.progress.reward import ProgressReward
    from rewardlearn.progress.training import rate_states

    if isinstance(model, DrSReward):
        return lambda ep: np.asarray(model.progress(ep["observations"], ep["infos"]))
    if isinstance(model, OTReward):
        return lambda ep: model.matched_progress(ep["observations"])
    if isinstance(model, ProgressReward) and model.scorer is not None:
        progress_model = model.scorer.model
        return lambda ep: rate_states(progress_model, ep["observations"])
    return None


__all__ = ["Rater", "concordance", "episodes_from_dataset", "exploit_probe", "furthest_stage",
           "kendall_ceiling", "kendall_outcome", "outcome_ranking", "rater_for",
           "success_failure_gap"]
