"""``reward=ot``: an optimal-transport proxy reward from observation-only demos.

Imitation from observation: the demos give states (or frames), no actions and no stage
signal. Each agent episode ``o_1..o_T`` is matched with each demo ``e_1..e_T'`` by entropic
optimal transport, and step ``i`` pays the cost of what it was matched with::

    P = Sinkhorn(1/T, 1/T', C, reg)          C_ij = c(phi(o_i), phi(e_j))
    r_i = -s * sum_j P_ij C_ij               (the demo with the best total kept)

(ROT, Haldar et al. CoRL 2022, and the ADS paper's reward, Liu et al. ICLR 2024; Sinkhorn
imitation, Papagiannis & Li 2022). ``variant=temporal`` uses TemporalOT's context cost and
band mask (Fu et al., NeurIPS 2024). ``s`` is set once, from the first episode, so that its
return is -10. Code: :mod:`rewardlearn.ot.modeling` (Sinkhorn, costs, masks).

The reward of a step depends on the whole episode, so it is computed when the episode ends
(:class:`~rewardlearn.wrappers.episodic.EpisodicReward`): at a PPO rollout's end, or written
into SAC's replay buffer when the episode ends. Signals: ``ot_cost`` (the step's transport
cost), ``ot_demo`` (the matched demo), ``episode_partial``.

Example:
    rewardlearn-collect env=metaworld env.task=door-open-v3 n_episodes=10
    python train.py env=metaworld env.task=door-open-v3 agent=ppo n_envs=8 reward=ot \\
        reward.model.demos=data/metaworld_door_open_v3-expert-v0 agent.discount_schedule=ads
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from rewardlearn.demos import Episode
from rewardlearn.encoders import Encoder, as_encoder, build_encoder
from rewardlearn.ot.configuration import OTConfig
from rewardlearn.ot.modeling import OTScorer, pairwise_cost
from rewardlearn.rewards.base import RewardOutput, TransitionBatch
from rewardlearn.rewards.features import flatten_obs
from rewardlearn.wrappers.episodic import EpisodicReward

log = logging.getLogger("rewardlearn")


def demo_observations(episodes: Sequence[Episode], frames: bool
                      ) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """Each demo's ``s'`` rows (observations ``1..T``) and, with ``frames``, its frames: the
    only parts of a demo the OT reward reads (never its actions)."""
    states = [np.asarray(ep.observations)[1:] for ep in episodes]
    if not frames:
        return states, None
    missing = [ep.id for ep in episodes if ep.frames is None]
    if missing:
        raise ValueError(f"the OT reward's encoder reads frames, but demos {missing[:5]} have "
                         "none: collect them with rewardlearn-collect ... frames=true")
    return states, [np.asarray(ep.frames)[1:] for ep in episodes]


class OTReward(EpisodicReward):
    """The per-episode OT proxy reward against observation-only demos.

    Args:
        observation_space, action_space: the env's spaces.
        config: the :class:`~rewardlearn.ot.configuration.OTConfig`, or **kwargs: its
            fields.
    """

    name = "ot"
    settings_class = OTConfig

    def __init__(self, observation_space: gym.Space, action_space: gym.Space,
                 config: OTConfig | None = None, **kwargs: Any) -> None:
        super().__init__(observation_space, action_space)
        self.cfg = OTConfig.build(config, **kwargs)
        built = build_encoder(self.cfg.encoder) if self.cfg.encoder else None
        self.encoder: Encoder | None = None if built is None else as_encoder(built)
        if self.encoder is not None:
            self.needs_frames = bool(self.encoder.needs_frames)
            self.frame_size = tuple(self.encoder.frame_size)  # type: ignore[assignment]
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self.scale: float | None = self.cfg.scale
        self.scorer: OTScorer | None = None
        self.demo_progress: list[np.ndarray] | None = None
        """Each demo's recorded ``info["progress"]`` per ``s'`` row, when every demo has one
        (for :meth:`matched_progress`)."""
        self.saved_metric: str | None = None
        """The metric a loaded checkpoint was scored with (kept whatever ``auto`` means now)."""
        self.episodes_scored = 0
        self.history: list[float] = []
        """The raw (unscaled) return of each complete episode scored in training."""
        if self.cfg.demos:
            self.fit(self._load_demos())

    # -- demos ----------------------------------------------------------------------------

    def _load_demos(self) -> list[Episode]:
        from rewardlearn.demos import load_demo_sets

        episodes = load_demo_sets(str(self.cfg.demos))
        episodes = sorted(episodes, key=lambda ep: not ep.success)  # successes first
        if self.cfg.max_demos is not None:
            episodes = episodes[: self.cfg.max_demos]
        return episodes

    def fit(self, episodes: Sequence[Episode]) -> None:
        """Demo features (and the standardisation, and a trainable encoder) from demos."""
        needs_frames = self.encoder is not None and self.encoder.needs_frames
        states, frames = demo_observations(episodes, needs_frames)
        flat = [flatten_obs(self.observation_space, s) for s in states]
        if self.encoder is not None and self.encoder.trainable:
            self.encoder.fit(flat, frames)
        raw = [self._features(x, None if frames is None else frames[k])
               for k, x in enumerate(flat)]
        if self.state_features and self.cfg.standardize:
            rows = np.concatenate(raw)  # as a loaded model holds them
            self.mean = rows.mean(0)
            self.std = np.maximum(rows.std(0), self.cfg.min_std)
        feats = [self._standardize(x) for x in raw]
        self._set_demos(feats)
        progress = [ep.infos.get("progress") for ep in episodes]
        self.demo_progress = (None if any(p is None or len(p) != len(ep.observations)
                                          for p, ep in zip(progress, episodes, strict=True))
                              else [np.asarray(p, np.float64)[1:] for p in progress])
        log.info("ot: %d demos (%s steps), %s cost on %s, variant %s", len(feats),
                 ", ".join(str(len(f)) for f in feats), self.metric,
                 "states" if self.encoder is None else self.encoder.name, self.cfg.variant)

    def _set_demos(self, feats: Sequence[np.ndarray]) -> None:
        c = self.cfg
        self.scorer = OTScorer(list(feats), metric=self.metric, variant=c.variant, reg=c.reg,
                               n_iters=c.n_iters, k_c=c.context, k_m=c.band,
                               pad=c.pad_demos)

    def _standardize(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self.mean is None or self.std is None:
            return x
        return (x - self.mean) / self.std

    # -- the reward -------------------------------------------------------------------------

    @property
    def state_features(self) -> bool:
        """Whether the features come from the state (no encoder, or one that reads no
        frames): those are standardised by the demos' statistics and compared with the
        euclidean cost under ``metric=auto``."""
        return self.encoder is None or not self.encoder.needs_frames

    @property
    def metric(self) -> str:
        """The cost metric in use: ``metric``, or for ``auto`` euclidean on state features
        and cosine on a frame encoder's embeddings (ROT's costs)."""
        if self.cfg.metric != "auto":
            return self.cfg.metric
        if self.saved_metric is not None:
            return self.saved_metric
        return "euclidean" if self.state_features else "cosine"

    def _features(self, flat: np.ndarray, frames: np.ndarray | None) -> np.ndarray:
        """Unstandardised features of flat observations (and their frames)."""
        if self.encoder is None:
            return np.asarray(flat, np.float64)
        return np.asarray(self.encoder.embed(flat, frames if self.encoder.needs_frames
                                             else None), np.float64)

    def episode_features(self, batch: TransitionBatch) -> np.ndarray:
        return self._standardize(self._features(
            flatten_obs(self.observation_space, batch.next_obs), batch.frames))

    def signal_names(self) -> tuple[str, ...]:
        return ("ot_cost", "ot_demo")

    def score_episodes(self, episodes: Sequence[np.ndarray],
                       complete: Sequence[bool]) -> list[RewardOutput]:
        """``-s * sum_j P_ij C_ij`` per step against the best demo; the scale is set from the
        first complete episode (or the first prefix, if a prefix comes first)."""
        if self.scorer is None:
            raise RuntimeError("reward=ot has no demos: set reward.model.demos=<dataset>")
        scores = [self.scorer.score(x, prefix=not done) for x, done in zip(episodes, complete,
                                                                           strict=True)]
        if self.scale is None:
            order = sorted(range(len(scores)), key=lambda k: not complete[k])
            for k in order:
                total = float(np.sum(scores[k].rewards))
                if abs(total) > 1e-12:
                    self.scale = self.cfg.target_return / abs(total)
                    log.info("ot: reward scale %.4g set from the first %s episode (raw return "
                             "%.4g)", self.scale, "complete" if complete[k] else "partial",
                             total)
                    break
        s = 1.0 if self.scale is None else self.scale
        outs = []
        for sc, done in zip(scores, complete, strict=True):
            if done:
                self.episodes_scored += 1
                self.history.append(float(np.sum(sc.rewards)))
            outs.append(RewardOutput(s * sc.rewards,
                                     {"ot_cost": -sc.rewards,
                                      "ot_demo": np.full(len(sc.rewards), float(sc.demo))}))
        return outs

    def episode_rewards(self, observations: Any, frames: np.ndarray | None = None
                        ) -> np.ndarray:
        """The (scaled) per-step rewards of one whole episode given its ``s'`` observations
        (and frames), outside an env: for evaluations and tests."""
        n = len(observations["state"] if isinstance(observations, dict) else observations)
        batch = TransitionBatch.from_arrays(observations, np.zeros((n, 1)), observations,
                                            frames=frames)
        out = self.score_episodes([self.episode_features(batch)], [True])[0]
        return np.asarray(out.rewards)

    def matched_progress(self, observations: Any, frames: np.ndarray | None = None
                         ) -> np.ndarray:
        """How far into the demos each state looks: the position of its nearest demo state in
        the reward's features and cost, as that demo's recorded progress where the demos
        carried ``info["progress"]``, else as the fraction ``j / (T' - 1)`` of the demo's
        steps. The OT reward pays a state for resembling demo states, so a state it places
        far beyond its true progress is one the reward can be exploited with (the exploit
        probes of ``rewardlearn-evaluate metrics=exploit``)."""
        if self.scorer is None:
            raise RuntimeError("reward=ot has no demos: set reward.model.demos=<dataset>")
        n = len(observations["state"] if isinstance(observations, dict) else observations)
        batch = TransitionBatch.from_arrays(observations, np.zeros((n, 1)), observations,
                                            frames=frames)
        x = self.episode_features(batch)
        best = np.full(n, np.inf)
        out = np.zeros(n)
        for k, demo in enumerate(self.scorer.demos):
            cost = pairwise_cost(x, demo, self.scorer.metric)
            j = cost.argmin(1)
            c = cost[np.arange(n), j]
            scale = (self.demo_progress[k] if self.demo_progress is not None
                     else np.arange(len(demo)) / max(len(demo) - 1, 1))
            closer = c < best
            best[closer], out[closer] = c[closer], scale[j[closer]]
        return out

    # -- saving -----------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:  # the demo features are in the state
        return {**self.cfg.to_dict(), "demos": None}

    def state_dict(self) -> dict[str, Any]:
        if self.scorer is None:
            return {}
        state: dict[str, Any] = {"demos": [np.asarray(d, np.float64) for d in self.scorer.demos],
                                 "scale": self.scale, "metric": self.metric}
        if self.mean is not None and self.std is not None:
            state.update(mean=self.mean, std=self.std)
        if self.demo_progress is not None:
            state["progress"] = [np.asarray(p, np.float64) for p in self.demo_progress]
        if self.encoder is not None:
            state["encoder"] = self.encoder.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        saved = state.get("metric")
        if saved is None and self.encoder is not None and "mean" not in state:
            saved = "cosine"  # saved when metric=auto meant cosine for every encoder
        self.saved_metric = None if saved is None else str(saved)
        if self.encoder is not None:
            self.encoder.load_state_dict(state.get("encoder") or {})
        if "mean" in state:
            self.mean = np.asarray(state["mean"], np.float64)
            self.std = np.asarray(state["std"], np.float64)
        self.scale = None if state.get("scale") is None else float(state["scale"])
        progress = state.get("progress")
        self.demo_progress = (None if progress is None
                              else [np.asarray(p, np.float64) for p in progress])
        self._set_demos([np.asarray(d, np.float64) for d in state["demos"]])

    def summary(self) -> dict[str, Any]:
        raw = self.history
        return {"demos": 0 if self.scorer is None else len(self.scorer.demos),
                "variant": self.cfg.variant, "metric": self.metric,
                "scale": self.scale, "episodes_scored": self.episodes_scored,
                "train_reward_s": round(self.deferred_s, 3),
                "raw_return_first": raw[0] if raw else None,
                "raw_return_last": raw[-1] if raw else None}


__all__ = ["OTReward", "demo_observations"]
