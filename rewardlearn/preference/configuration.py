"""Settings of preference-based reward learning (``conf/reward/preference.yaml``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rewardlearn.preference.modeling import PREFERENCE_MODELS
from rewardlearn.preference.query import QUERY_METHODS
from rewardlearn.rewards.checkpoint import import_class, read_checkpoint
from rewardlearn.rewards.registry import REWARD_CLASSES
from rewardlearn.settings import RewardModelConfig, Settings, positive_widths

SCHEDULES = ("constant", "linear_decay")
FEW_LABELS = 100
"""Budgets up to this many labels get the few-label schedule hint with PPO."""
ABSORBING_MODES = ("auto", "on", "off")
REGRET_END_STATES = ("next_obs", "last_obs")
EARLY_STOPS = ("train_acc", "heldout")
TRAIN_PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class SurfConfig(Settings):
    """SURF (Park et al., ICLR 2022), ``reward.model.surf.*``; off by default.

    ``enabled``: pseudo-labels and crops on. Pseudo-labels: each round draws
    ``unlabelled_ratio`` x (labels + one round's queries) unlabelled pairs (at most
    ``max_unlabelled``); every epoch the pairs whose ensemble-mean ``P(first)``
    has ``max(p, 1 - p) > tau`` get the label ``1[p > 0.5]`` and join the loss
    with weight ``weight`` (the paper's lambda). Crops (``crop``): each labelled
    pair is trained on both sides cut to one random length in
    ``[ceil(crop_min * H), H]`` at independent offsets, the label kept.
    """

    what = "preference surf"

    enabled: bool = False
    tau: float = 0.99
    weight: float = 1.0
    unlabelled_ratio: float = 4.0
    max_unlabelled: int = 5000
    crop: bool = True
    crop_min: float = 0.8

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (0.5 <= self.tau < 1, "tau must be in [0.5, 1)"),
            (self.weight >= 0, "weight must be >= 0"),
            (self.unlabelled_ratio >= 0, "unlabelled_ratio must be >= 0"),
            (self.max_unlabelled >= 1, "max_unlabelled must be >= 1"),
            (0 < self.crop_min <= 1, "crop_min must be in (0, 1]"),
        ]


@RewardModelConfig.register_subclass("preference")
@dataclass
class PreferenceConfig(RewardModelConfig):
    """Settings of ``reward=preference``: a PEBBLE-style loop (Lee et al. 2021; B-Pref
    defaults where they exist). Measured effects of each option: ``docs/preference.md``.

    :param ensemble_size: reward MLPs in the ensemble.
    :param hidden_sizes: hidden layer widths of each member.
    :param activation: hidden activation.
    :param output_activation: ``None`` (linear); PEBBLE's ``tanh`` saturates under the
        Bradley-Terry loss.
    :param use_action: ``r(s, a)`` rather than ``r(s)``.
    :param use_next_obs: add ``s'`` to the inputs.
    :param preference_model: ``bradley_terry`` or ``regret`` (Knox et al.).
    :param conservative_k: the agent's reward is ``mean - k * std`` over members.
    :param segment_length: steps per queried segment.
    :param budget: labels in all.
    :param queries_per_round: labels per round (replaced by ``ceil(budget / rounds)``).
    :param rounds: ask the budget in this many rounds (``None``: ``queries_per_round``).
    :param round_spacing: ``p``: round ``k`` of ``n`` starts at
        ``first + span * (k / (n - 1)) ** p`` (1: evenly spaced).
    :param schedule: ``constant`` or ``linear_decay`` queries per round.
    :param first_round_at: env steps before the first round.
    :param first_round_frac: the first round asks ``max(queries_per_round,
        ceil(frac * budget))`` labels.
    :param interval: env steps between rounds (``None``: spread until ``feedback_until``).
    :param feedback_until: share of training by which the budget is asked.
    :param query_selection: ``disagreement``, ``uniform``, ``entropy``, ``kcenter`` or a
        hybrid (``kcenter_disagreement``, ``kcenter_entropy``).
    :param candidates_factor: candidate pairs per query.
    :param hybrid_factor: the k-center hybrids' pre-selection factor.
    :param lr: Adam learning rate of the ensemble.
    :param weight_decay: Adam weight decay.
    :param batch_size: label pairs per step.
    :param max_epochs: epochs per round at most.
    :param early_stop_acc: stop a round at this train accuracy (PEBBLE).
    :param buffer_capacity: transitions kept for queries.
    :param unsup_steps: PEBBLE's state-entropy pre-training steps (0: off).
    :param entropy_k: its k-th nearest neighbour.
    :param absorbing: ``auto``, ``on`` or ``off``: pad segments that end in a termination.
    :param regret_end_state: the regret model's ``V(s_L)``: ``next_obs`` or ``last_obs``.
    :param early_stop: ``heldout`` (held-out loss stalls) or ``train_acc`` (PEBBLE only).
    :param holdout_frac: share of labels held out (``early_stop=heldout``).
    :param holdout_min: hold out only once that share is at least this many labels.
    :param patience: epochs without held-out improvement before stopping.
    :param bagging: each member fits a bootstrap resample of the labels (imitation #491).
    :param surf: :class:`SurfConfig` (pseudo-labels and temporal crops; off).
    :param query_pool_episodes: QPA: candidates from this many recent episodes (``None``:
        all).
    :param replay_recent_fraction: QPA hybrid replay (SAC): share of each batch from recent
        steps.
    :param replay_recent_window: what counts as recent, in transitions.
    :param train_precision: ``auto`` (bf16 autocast where the hardware has it), ``fp32``,
        ``bf16``.
    :param background_lag: later rounds train on a thread and land this share of a round
        interval later (``None``: in the foreground).
    :param demos: demonstration datasets (comma-separated Minari folders or ids, as
        ``rewardlearn-collect`` writes them) whose segments are queried against the agent's
        (Ibarz et al., NeurIPS 2018): the labels then see the later stages that an early
        agent never reaches. Synthetic teachers label them from the demos' stored rewards.
    :param demo_fraction: share of the candidate segments, on either side of a pair, that
        are demos' (so ``demo_fraction**2`` of the pairs compare two demo segments).
    :param resume: a saved ``reward_model.pt`` of this module to continue from.
    :param device: torch device (``auto``: CUDA when present).
    :param seed: initialisation and sampling seed.
    """

    ensemble_size: int = 3
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256, 256])
    activation: str = "leaky_relu"
    output_activation: str | None = None
    use_action: bool = True
    use_next_obs: bool = False
    preference_model: str = "bradley_terry"
    conservative_k: float = 0.0
    segment_length: int = 50
    budget: int = 200
    queries_per_round: int = 40
    rounds: int | None = None
    round_spacing: float = 1.0
    schedule: str = "constant"
    first_round_at: int = 1000
    first_round_frac: float = 0.0
    interval: int | None = None
    feedback_until: float = 0.5
    query_selection: str = "disagreement"
    candidates_factor: int = 10
    hybrid_factor: int = 5
    lr: float = 3e-4
    weight_decay: float = 0.0
    batch_size: int = 128
    max_epochs: int = 200
    early_stop_acc: float = 0.97
    buffer_capacity: int = 100_000
    unsup_steps: int = 0
    entropy_k: int = 5
    absorbing: str = "auto"
    regret_end_state: str = "next_obs"
    early_stop: str = "heldout"
    holdout_frac: float = 0.1
    holdout_min: int = 5
    patience: int = 3
    bagging: bool = False
    surf: Any = field(default_factory=SurfConfig)
    query_pool_episodes: int | None = None
    replay_recent_fraction: float = 0.0
    replay_recent_window: int = 10_000
    train_precision: str = "auto"
    background_lag: float | None = 0.5
    demos: str | None = None
    demo_fraction: float = 0.25
    resume: str | None = None
    device: str = "auto"
    seed: int | None = 0

    def run_warnings(self, algo: str, total_timesteps: int) -> list[str]:
        out = []
        if self.first_round_at >= total_timesteps:
            out.append(f"first_round_at={self.first_round_at} >= total_timesteps="
                       f"{total_timesteps}: no feedback round will run, so the agent trains "
                       "on an untrained reward")
        if (algo == "ppo" and self.budget <= FEW_LABELS and self.rounds is None
                and self.interval is None):
            out.append(f"few labels (budget {self.budget}) with PPO: where episodes do not end "
                       "early, reward.model.rounds=25 reward.model.feedback_until=0.25 asks "
                       "them in small early rounds (measured: docs/preference.md)")
        return out

    def check_inputs(self) -> None:
        if self.resume:
            read_resume_file(str(self.resume))
        if self.demos:
            from rewardlearn.demos import open_dataset

            for path in str(self.demos).split(","):
                open_dataset(path.strip())  # a missing dataset is named before anything runs

    def normalize(self) -> None:
        if self.rounds is not None and self.rounds >= 1:
            self.queries_per_round = max(1, math.ceil(self.budget / self.rounds))
        if self.surf is None:
            self.surf = SurfConfig()
        elif not isinstance(self.surf, SurfConfig):
            self.surf = SurfConfig.from_kwargs(dict(self.surf))

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (self.preference_model in PREFERENCE_MODELS,
             f"preference_model must be one of {PREFERENCE_MODELS}"),
            (self.query_selection in QUERY_METHODS,
             f"query_selection must be one of {QUERY_METHODS}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}"),
            (self.ensemble_size >= 1, "ensemble_size must be >= 1"),
            (positive_widths(self.hidden_sizes), "hidden_sizes must be positive layer widths"),
            (self.segment_length >= 2, "segment_length must be >= 2"),
            (self.budget >= 1, "budget must be >= 1 (with 0 the agent would train on an "
             "untrained reward; reuse a trained one with reward=checkpoint)"),
            (self.queries_per_round >= 1, "queries_per_round must be >= 1"),
            (self.rounds is None or self.rounds >= 1, "rounds must be >= 1 or null"),
            (self.interval is None or self.interval >= 1, "interval must be >= 1 or null"),
            (self.round_spacing > 0, "round_spacing must be > 0"),
            (self.interval is None or self.round_spacing == 1,
             "round_spacing spaces rounds over feedback_until; it needs interval: null"),
            (0 < self.feedback_until <= 1, "feedback_until must be in (0, 1]"),
            (self.conservative_k >= 0, "conservative_k must be >= 0"),
            (self.candidates_factor >= 1, "candidates_factor must be >= 1"),
            (0 < self.early_stop_acc <= 1, "early_stop_acc must be in (0, 1]"),
            (self.lr > 0, "lr must be > 0"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.max_epochs >= 1, "max_epochs must be >= 1"),
            (self.buffer_capacity >= self.segment_length,
             "buffer_capacity must be >= segment_length"),
            (self.first_round_at >= 0, "first_round_at must be >= 0"),
            (0 <= self.first_round_frac <= 1, "first_round_frac must be in [0, 1]"),
            (self.hybrid_factor >= 1, "hybrid_factor must be >= 1"),
            (self.unsup_steps >= 0, "unsup_steps must be >= 0"),
            (self.entropy_k >= 1, "entropy_k must be >= 1"),
            (self.absorbing in ABSORBING_MODES, f"absorbing must be one of {ABSORBING_MODES}"),
            (0.0 < self.demo_fraction <= 1.0,
             f"demo_fraction must be in (0, 1], got {self.demo_fraction}"),
            (self.regret_end_state in REGRET_END_STATES,
             f"regret_end_state must be one of {REGRET_END_STATES}"),
            (self.early_stop in EARLY_STOPS, f"early_stop must be one of {EARLY_STOPS}"),
            (0 < self.holdout_frac < 1, "holdout_frac must be in (0, 1)"),
            (self.holdout_min >= 1, "holdout_min must be >= 1"),
            (self.patience >= 1, "patience must be >= 1"),
            (self.query_pool_episodes is None or self.query_pool_episodes >= 1,
             "query_pool_episodes must be >= 1 or null"),
            (0 <= self.replay_recent_fraction <= 1, "replay_recent_fraction must be in [0, 1]"),
            (self.replay_recent_window >= 1, "replay_recent_window must be >= 1"),
            (self.train_precision in TRAIN_PRECISIONS,
             f"train_precision must be one of {TRAIN_PRECISIONS}"),
            (self.background_lag is None or 0 < self.background_lag <= 1,
             "background_lag must be in (0, 1] or null"),
        ]


def read_resume_file(path: str) -> dict[str, Any]:
    """The payload of a ``reward.model.resume`` file; refused, by name, unless it is a
    preference checkpoint (unreadable files and other modules' checkpoints alike)."""
    try:
        payload = read_checkpoint(path)
    except (OSError, ValueError) as err:
        raise type(err)(f"reward.model.resume: {err}") from None
    qualified = str(payload["class"])
    try:
        is_preference = issubclass(import_class(qualified), REWARD_CLASSES["PreferenceReward"])
    except (ImportError, AttributeError, TypeError):
        is_preference = False
    state = payload["state"]
    if not is_preference or not isinstance(state, dict) or "ensemble" not in state:
        name = qualified.rpartition(":")[2] or qualified
        raise ValueError(f"{path} holds a {name} checkpoint, reward.model.resume needs a "
                         "preference checkpoint (the reward_model.pt of a reward=preference run)")
    return payload
