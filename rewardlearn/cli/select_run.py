"""Best-of-n selection in ``train.py``'s evaluation (``eval.select.*``) and in
``rewardlearn-replay`` (``select.*``): the settings checked before anything runs, and the
evaluated policy wrapped in :class:`~rewardlearn.select.modeling.BestOfN`.

``train.py`` (evaluation only; training is unchanged)::

    python train.py env=pick_place agent=ppo reward=drs ... eval.select.n=16 \\
        eval.select.scorer=reward_lookahead
    python train.py env=pendulum agent=sac reward=env eval.select.n=16 eval.select.scorer=q

``summary.json`` then holds the selected policy's evaluation and ``select`` (the settings,
decisions, scorer calls and the mean decision time).
"""

from __future__ import annotations

import logging
import uuid
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from rewardlearn.rewards.base import RewardModel, TransitionBatch
from rewardlearn.select.configuration import SelectConfig
from rewardlearn.select.lookahead import LookaheadLink, register_link, unregister_link
from rewardlearn.select.modeling import BestOfN
from rewardlearn.select.scorers import (
    EnvRewardScorer,
    LookaheadRewardScorer,
    QScorer,
    RewardScorer,
    Scorer,
    SupportGate,
    ValueScorer,
)
from rewardlearn.utils import to_dict

log = logging.getLogger("rewardlearn")

REWARD_SCORERS = ("reward", "reward_lookahead")


def select_settings(values: Any, where: str = "eval.select") -> SelectConfig:
    """The settings from a mapping; an unknown name or a bad value is refused in one line
    (``ValueError``) naming ``where`` (``eval.select``, or replay's ``select``)."""
    try:
        return SelectConfig.from_kwargs(to_dict(values))
    except (TypeError, ValueError) as err:
        raise ValueError(str(err).replace(SelectConfig.what, where)) from None


def _model_exists(source: str) -> bool:
    from rewardlearn.rewards.pretrained import is_repo_id

    return Path(source).exists() or is_repo_id(source)


def check_select(cfg: DictConfig) -> SelectConfig:
    """``eval.select`` of a ``train.py`` config, checked against the run before anything is
    built: the settings' own ranges, the scorer against the agent (``q``: SAC; ``value``:
    PPO) and the reward (``reward``/``reward_lookahead`` need a learned reward or
    ``eval.select.model``), and the model (it must load for the env's spaces). Raises
    ``ValueError`` in one line."""
    from rewardlearn.agents import configured_agent_kwargs

    sel = select_settings(cfg.eval.get("select"))
    if not sel.enabled:
        return sel
    algo = str(cfg.agent.get("algo"))
    problems = []
    if sel.scorer == "q" and algo != "sac":
        problems.append(f"scorer=q reads a SAC agent's Q critics; agent={algo} has none "
                        "(use scorer=value for PPO)")
    if sel.scorer == "value" and algo != "ppo":
        problems.append(f"scorer=value reads a PPO agent's state value; agent={algo} has none "
                        "(use scorer=q for SAC)")
    if sel.scorer in REWARD_SCORERS and sel.model is None and _ground_truth(cfg):
        problems.append(f"scorer={sel.scorer} scores with a learned reward and this run's "
                        f"reward is the env's (reward={cfg.reward.get('name')}): name one with "
                        "eval.select.model=<run folder or saved model>, or use "
                        "scorer=env_reward")
    if sel.temperature != 1.0 and algo != "ppo":
        problems.append(f"temperature={sel.temperature} scales a Gaussian policy's standard "
                        f"deviation; agent={algo} is not one (use agent=ppo, or "
                        "temperature=1)")
    elif sel.temperature != 1.0 and configured_agent_kwargs(cfg).get("use_sde", False):
        problems.append(f"temperature={sel.temperature} scales a Gaussian policy's standard "
                        "deviation; this PPO agent uses gSDE (use_sde: true, the env's "
                        "recommendation or agent.kwargs), whose noise is state-dependent: set "
                        "+agent.kwargs.use_sde=false, or temperature=1")
    if sel.model is not None and sel.scorer not in (*REWARD_SCORERS, "value"):
        problems.append(f"model= is read by the reward scorers; scorer={sel.scorer} does not "
                        "use it")
    if sel.model is not None and not _model_exists(sel.model):
        problems.append(f"model={sel.model}: no such file or folder (a run folder, a saved "
                        "reward model, a .pt or a Hub repo id)")
    if sel.support is not None and sel.model is None and not _reward_class_has_support(cfg):
        problems.append(f"support= trusts a learned reward only near the states it was fitted "
                        f"on, and this run's reward (reward={cfg.reward.get('name')}) keeps "
                        "none: use reward=action_preference or eval.select.model=<one>, or "
                        "support=null")
    if problems:
        raise ValueError("invalid eval.select settings: " + "; ".join(problems))
    if sel.model is not None:  # a model for other spaces is refused now, not after training
        from rewardlearn.env_factory import make_env

        probe = make_env(cfg.env)
        try:
            model = load_scoring_model(sel.model, probe.observation_space, probe.action_space)
        except (ValueError, TypeError, OSError) as err:
            raise ValueError(f"eval.select.model={sel.model}: {err}") from None
        finally:
            probe.close()
        if sel.support is not None and not model.has_support:
            raise ValueError(f"invalid eval.select settings: support= needs a reward that keeps "
                             f"the states it was fitted on; eval.select.model={sel.model} "
                             f"({model.name}) keeps none: use support=null")
    return sel


def _reward_class(cfg: DictConfig) -> type[RewardModel] | None:
    """The reward module class a run's config builds (``None`` when it names none)."""
    from rewardlearn.cli.checks import target_class

    model = cfg.reward.get("model")
    cls = None if model is None else target_class(model)
    return cls if isinstance(cls, type) and issubclass(cls, RewardModel) else None


def _reward_class_has_support(cfg: DictConfig) -> bool:
    cls = _reward_class(cfg)
    return bool(cls is not None and cls.has_support)


def _ground_truth(cfg: DictConfig) -> bool:
    cls = _reward_class(cfg)
    return bool(cls is not None and cls.is_ground_truth)


def load_scoring_model(source: str, observation_space: Any, action_space: Any) -> RewardModel:
    """A saved reward model to score with (run folder, folder, ``.pt`` or Hub id)."""
    from rewardlearn.rewards.checkpoint import load_reward_model

    return load_reward_model(source, observation_space, action_space)


def build_scorer(sel: SelectConfig, gamma: float, agent: Any = None, normalizer: Any = None,
                 reward_model: RewardModel | None = None, mode: str = "replace",
                 weight: float = 1.0) -> Scorer:
    """The scorer ``sel.scorer`` names. ``reward_model``: the reward the agent trained on
    (``None``: the env's); ``sel.model`` replaces it for the reward scorers and ``value``.
    ``mode``/``weight``: how the run combined it with the env's (``value`` uses the same)."""
    space = None if agent is None else (agent.observation_space, agent.action_space)
    model = reward_model
    if sel.model is not None:
        if space is None:
            raise ValueError("loading eval.select.model needs the agent's spaces")
        model, mode = load_scoring_model(sel.model, *space), "replace"
    if sel.scorer in REWARD_SCORERS:
        if model is None:
            raise ValueError(f"scorer={sel.scorer} needs a reward model (eval.select.model=...)")
        labelled_at = model.summary().get("label_temperature")
        if sel.scorer == "reward" and labelled_at and labelled_at != [sel.temperature]:
            log.warning("the reward's action pairs were drawn at temperature %s and the "
                        "selector samples at %s: label at the temperature you select at "
                        "(rewardlearn-action-pairs temperature=%s)", labelled_at,
                        sel.temperature, sel.temperature)
        scorer: Scorer = RewardScorer(model) if sel.scorer == "reward" \
            else LookaheadRewardScorer(model, gamma)
        return scorer if sel.support is None else SupportGate(scorer, model, sel.support)
    if sel.scorer == "env_reward":
        return EnvRewardScorer(gamma)
    if sel.scorer == "q":
        return QScorer(agent, normalizer)
    if sel.scorer == "value":
        return ValueScorer(agent, gamma, _reward_fn(model, mode, weight), normalizer)
    raise ValueError(f"unknown scorer {sel.scorer!r}")


def _reward_fn(model: RewardModel | None, mode: str, weight: float) -> Any:
    if model is None or model.is_ground_truth:
        return None
    if mode == "replace":
        return model

    def combined(batch: TransitionBatch) -> np.ndarray:
        env = np.asarray(batch.env_rewards, np.float64)
        return env + weight * np.asarray(model(batch), np.float64)

    return combined


_SELECTORS: dict[str, weakref.ref[BestOfN]] = {}


def linked_env_config(env_cfg: Any, selector: BestOfN) -> DictConfig:
    """A copy of an env config whose envs, once built (by ``rollouts.evaluate``, any code
    that makes envs from a config), bind themselves to ``selector`` for its lookahead: a
    :class:`~rewardlearn.select.lookahead.LookaheadLink` is appended to its ``wrappers``."""
    from rewardlearn.env_factory import env_config

    for key in [k for k, ref in _SELECTORS.items() if ref() is None]:
        del _SELECTORS[key]
        unregister_link(key)
    key = uuid.uuid4().hex
    ref = weakref.ref(selector)
    _SELECTORS[key] = ref

    def bind(env: Any) -> None:
        target = ref()
        if target is None:
            raise ValueError("the selector this env was linked to is gone")
        target.bind(env)

    register_link(key, bind)
    cfg = OmegaConf.create(OmegaConf.to_container(env_config(env_cfg), resolve=True))
    assert isinstance(cfg, DictConfig)
    wrappers = list(cfg.get("wrappers") or [])
    link = f"{LookaheadLink.__module__}.{LookaheadLink.__qualname__}"
    cfg.wrappers = [*wrappers, {"_target_": link, "link": key}]
    return cfg


def select_for_run(cfg: DictConfig, policy: Any, agent: Any, normalizer: Any,
                   reward_model: RewardModel | None) -> tuple[Any, Any, BestOfN | None]:
    """``(policy, env config, selector)`` for ``train.py``'s evaluation: the policy and
    ``cfg.env`` unchanged when ``eval.select.n`` is 1, else a :class:`BestOfN` around the
    policy and, for a lookahead scorer, the env config that binds it."""
    from rewardlearn.agents import agent_gamma

    sel = select_settings(cfg.eval.get("select"))
    if not sel.enabled:
        return policy, cfg.env, None
    gamma = sel.gamma if sel.gamma is not None else agent_gamma(cfg)
    scorer = build_scorer(sel, gamma, agent, normalizer, reward_model,
                          str(cfg.reward.get("mode", "replace")),
                          float(cfg.reward.get("weight", 1.0)))
    selector = BestOfN(policy, scorer, sel.n, sel.horizon, sel.include_mean,
                       observation_space=agent.observation_space, temperature=sel.temperature)
    env = linked_env_config(cfg.env, selector) if scorer.lookahead else cfg.env
    return selector, env, selector


def select_for_replay(run_dir: Path, run_cfg: DictConfig, env_cfg: DictConfig,
                      options: Mapping[str, Any], reward_model: RewardModel | None
                      ) -> tuple[BestOfN, DictConfig]:
    """``rewardlearn-replay``'s ``select.*``: the run's agent behind :class:`BestOfN` (its
    scorer reads the replay's reward model unless ``select.model``), and the env config."""
    from rewardlearn.agents import NormalizedPolicy, agent_gamma, load_run_agent

    sel = select_settings(options, "select")
    agent, normalizer = load_run_agent(run_dir)
    policy = agent if normalizer is None else NormalizedPolicy(agent, normalizer)
    algo = "sac" if hasattr(agent, "critic") else "ppo"
    if sel.scorer == "q" and algo != "sac":
        raise ValueError("select.scorer=q reads a SAC agent's Q critics; this run's agent is "
                         "PPO (use select.scorer=value)")
    if sel.scorer == "value" and algo != "ppo":
        raise ValueError("select.scorer=value reads a PPO agent's state value; this run's agent "
                         "is SAC (use select.scorer=q)")
    if sel.scorer in REWARD_SCORERS and sel.model is None and reward_model is None:
        raise ValueError(f"select.scorer={sel.scorer} scores with a reward model and this run "
                         "has none (reward=env): give select.model=<run or saved model>, or use "
                         "select.scorer=env_reward")
    gamma = sel.gamma if sel.gamma is not None else agent_gamma(run_cfg)
    scorer = build_scorer(sel, gamma, agent, normalizer, reward_model,
                          str(OmegaConf.select(run_cfg, "reward.mode", default="replace")),
                          float(OmegaConf.select(run_cfg, "reward.weight", default=1.0)))
    selector = BestOfN(policy, scorer, sel.n, sel.horizon, sel.include_mean,
                       observation_space=agent.observation_space, temperature=sel.temperature)
    env = linked_env_config(env_cfg, selector) if scorer.lookahead else env_cfg
    return selector, env


def replay_select_options() -> dict[str, Any]:
    """``select.<setting>`` converters for ``rewardlearn-replay``'s ``key=value`` options."""
    from rewardlearn.cli.options import settings_types

    return {f"select.{k}": v for k, v in settings_types(SelectConfig).items()}


__all__ = ["build_scorer", "check_select", "linked_env_config", "replay_select_options",
           "select_for_replay", "select_for_run", "select_settings"]
