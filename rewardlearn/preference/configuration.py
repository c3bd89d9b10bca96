"""Settings of preference-based reward learning (``conf/reward/preference.yaml``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rewardlearn.preference.modeling import PREFERENCE_MODELS
from rewardlearn.preference.query import QUERY_METHODS
from rewardlearn.settings import Settings, positive_widths

SCHEDULES = ("constant", "linear_decay")
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


@dataclass
class PreferenceConfig(Settings):
    """Every knob of the PEBBLE-style loop, with B-Pref/PEBBLE defaults where they exist.

    Model: ``ensemble_size`` MLPs (``hidden_sizes``, ``activation``,
    ``output_activation``) over ``r(s, a)`` (``use_action``; ``use_next_obs``
    adds ``s'``), inputs standardised; ``preference_model`` is
    ``bradley_terry`` or ``regret``. The reward used by the agent is
    ``mean - conservative_k * std`` over members. ``output_activation`` is
    ``None`` (linear) by default, not PEBBLE's tanh: the Bradley-Terry loss
    keeps widening the gap between preferred and rejected segments, and a tanh
    head answers by saturating. On HalfCheetah the tanh reward gave 0.94 at a
    true step reward of 2.3 and 0.98 at 4.7, so running twice as fast earned
    almost nothing; the linear head's agent reached a 1.2x-1.6x higher return
    (``bench/results/preference.md``).

    Feedback: ``budget`` labels in all, ``queries_per_round`` per round
    (``schedule``: ``constant`` or ``linear_decay`` over training), rounds every
    ``interval`` env steps (``None``: spread the budget evenly until
    ``feedback_until`` of training), the first at ``first_round_at`` steps,
    before the agent learns from the learned reward. ``first_round_frac``: the first
    round asks ``max(queries_per_round, ceil(first_round_frac x budget))`` labels
    (Christiano et al. 2017 took 25% of theirs up front; imitation's
    ``initial_comparison_frac``): the first reward steers the agent until the next
    round. Off by default: on HalfCheetah (PPO, 300k steps, 25 labels, 3 seeds) 0.4 kept
    57% of the true-reward return against 58% without; the first round's data, from
    PPO's near-deterministic initial policy, gave a reward with a Pearson of 0.24 with
    the true returns at 5 and at 10 labels (``bench/results/preference_first_round.md``).
    ``rounds`` (when set) asks the budget in that many rounds:
    ``queries_per_round = ceil(budget / rounds)``, replacing the value given. Few labels
    are best asked in many small, early rounds: on HalfCheetah (PPO, 300k steps, 25
    labels) ``rounds=25 feedback_until=0.25`` kept 73.5% of the true-reward return over 5
    seeds (97.2% on seeds 0-2) against 50.5% for 5 rounds until half-way: a reward
    fitted to the first five labels steered PPO's near-deterministic policy for 37k
    steps before the next round (``bench/results/preference_label_table.md``). Not with
    many labels: on Hopper at 1000 it kept 63.9% against 145.8% for the defaults (every
    query from the first quarter of the run), nor where episodes end early: on Hopper at
    100 labels the defaults' agents sampled 1126.7 on average against 675.0
    (``bench/results/preference_round_spacing.md``).
    ``round_spacing`` (``p``, with ``interval: null``): of ``n`` rounds, round ``k``
    starts at ``first + span x (k / (n - 1))^p`` steps, ``span`` running to
    ``feedback_until``; 1 spaces them evenly, ``p > 1`` packs the early rounds close
    together (the first reward is corrected within a few thousand steps) and still asks
    until ``feedback_until``. Measured no better than even spacing: HalfCheetah at 25
    labels, ``rounds=25 round_spacing=2`` (until half-way) lost 2 of 5 seeds (0-18% kept)
    where ``rounds=25 feedback_until=0.25`` kept 103.4% over the same 5
    (``bench/results/preference_round_spacing.md``): the rounds it thins out, 20k-100k
    steps, are where the failing runs' reward turned against the true one.
    Candidates: ``candidates_factor`` x the queries, picked by ``query_selection``.
    Segments have ``segment_length`` steps (shorter only while no episode is that long).

    Training: Adam (``lr``, ``weight_decay``), ``batch_size`` pairs, up to
    ``max_epochs`` per round, warm-started from the previous round's weights.
    Every round stops once train accuracy reaches ``early_stop_acc`` (PEBBLE);
    ``early_stop=heldout`` (default) also holds out ``holdout_frac`` of the labels (once
    that is at least ``holdout_min`` labels; never below) and stops when their loss has
    not improved for
    ``patience`` epochs, keeping the best epoch (``train_acc``: the PEBBLE rule
    alone, which ran on while labels could not be fit to 97%: 12.8x the time on
    10%-flipped labels, ``bench/results/preference_labels.md``). ``bagging``: each
    member fits a bootstrap resample of the labels (imitation #491). ``surf``: :class:`SurfConfig`.
    Experience: the last ``buffer_capacity`` transitions.
    ``unsup_steps`` of PEBBLE's state-entropy pre-training (k-th nearest
    neighbour, ``entropy_k``; any agent, measured worse with PPO on HalfCheetah at
    25 labels), and for off-policy agents the replay buffer relabelled after each
    reward update.

    Episodes that end early: ``absorbing`` (``auto``: on once a termination is
    seen; ``on``; ``off``) pads segments that run into a termination with
    absorbing steps of a learned reward, and the agent's reward is taken
    relative to it (see :mod:`rewardlearn.preference.modeling`). Truncations are
    never padded. ``regret_end_state``: where the regret model evaluates
    ``V(s_L)``: ``next_obs`` (Knox et al.: the state after the last action) or
    ``last_obs`` (the last observed state, the behaviour before it was fixed).

    QPA (Hu et al., ICLR 2024): ``query_pool_episodes`` draws query candidates from
    that many most recent episodes only (``null``: the whole buffer);
    ``replay_recent_fraction`` of each SAC batch comes from the last
    ``replay_recent_window`` transitions (hybrid experience replay; 0 = off).

    ``train_precision``: the ensemble's training and query-selection passes run in
    ``fp32`` or under ``bf16`` autocast (weights, optimiser state, losses, metrics and
    the agent's reward stay float32); ``auto`` picks bf16 where the hardware has
    bfloat16 matrix units (a CUDA GPU that supports it; a CPU with AVX512-BF16 or AMX)
    and fp32 elsewhere. On this project's 2-core AVX512-BF16 machine Hopper's ten
    rounds at 1000 labels took 35.5 s instead of 112 s
    (``bench/results/preference_wall_hopper.md``).

    ``background_lag``: every round after the first trains the ensemble on a worker
    thread while the agent goes on with the previous reward; the new one is installed
    (and what the agent learns from relabelled) at the first rollout end
    ``background_lag`` x the round interval after the round began, waiting there for
    the training if it has not finished. The install step depends on the settings
    only, never on timing, so a seed reruns identically. The first round, whose
    reward replaces the untrained one, always trains in the foreground; ``null``:
    every round does.
    """

    what = "preference"

    ensemble_size: int = 3
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256, 256])
    activation: str = "leaky_relu"
    output_activation: str | None = None
    use_action: bool = True
    use_next_obs: bool = False
    preference_model: str = "bradley_terry"
    conservative_k: float = 0.0
    segment_length: int = 50
    budget: int = 1000
    queries_per_round: int = 100
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
    device: str = "auto"
    seed: int | None = 0

    def normalize(self) -> None:
        self.hidden_sizes = [int(h) for h in self.hidden_sizes]
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


