"""Settings of reward-guided action selection (``eval.select``) and of the action-preference
reward (``reward=action_preference``, ``conf/reward/action_preference.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from rewardlearn.settings import RewardModelConfig, Settings, positive_widths


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


@dataclass
class SelectConfig(Settings):
    """``eval.select`` of ``conf/config.yaml`` (and ``select.*`` of ``rewardlearn-replay``).

    Best-of-``n`` selection (:class:`~rewardlearn.select.modeling.BestOfN`; DeformPAM, Chen et
    al., ICRA 2025; V-GPS, Nakamoto et al., CoRL 2024): at each evaluation step, ``n``
    candidate actions are sampled from the agent's policy (with ``include_mean`` and the
    deterministic evaluation, the first is its mean action), scored in one call, and the
    best is executed. ``n=1`` is off.

    ``scorer`` (:mod:`rewardlearn.select.scorers`): ``reward`` (``r(s, a)`` of a reward
    module: the run's own, or ``model``), ``reward_lookahead`` (that module over ``s'``
    from a lookahead), ``env_reward`` (the env's reward over a lookahead: a ceiling),
    ``q`` (``min(Q1, Q2)`` of a SAC agent), ``value`` (the run's reward plus a PPO agent's
    ``V(s')`` over a lookahead). Lookahead scorers step a copy of the simulator state:
    simulation only. ``horizon``: lookahead steps (the candidate, then the policy's mean
    action), lookahead scorers only. ``gamma``: their discount (``null``: the agent's).
    ``model``: a reward model to score with instead of the run's (a run folder, a saved
    model folder, a ``.pt`` or a Hub repo id).
    ``support``: trust the reward only near the states it was fitted on
    (:class:`~rewardlearn.select.scorers.SupportGate`; ``reward=action_preference``): at a
    state farther from every labelled state than this quantile of the labelled states'
    own nearest-neighbour distances, the policy's own action is kept. ``null``: off.
    ``temperature``: the candidates are drawn with the policy's Gaussian standard deviation
    scaled by it (``1``: the policy's own; below 1, near its mean action). Use the
    temperature the reward's action pairs were labelled at (``rewardlearn-action-pairs
    temperature=``). Needs an on-policy agent with a Gaussian (PPO) unless it is 1.
    """

    what = "eval.select"
    n: int = 1
    scorer: str = "reward"
    horizon: int = 1
    gamma: float | None = None
    model: str | None = None
    include_mean: bool = True
    support: float | None = None
    temperature: float = 1.0

    @property
    def enabled(self) -> bool:
        """Whether selection is on (``n > 1``)."""
        return self.n > 1

    def checks(self) -> list[tuple[bool, str]]:
        from rewardlearn.select.scorers import LOOKAHEAD_SCORERS, SCORERS

        return [
            (_count(self.n) and self.n >= 1, f"n must be an integer >= 1 (1: off), "
             f"got {self.n!r}"),
            (self.scorer in SCORERS, f"scorer must be one of {', '.join(SCORERS)}, "
             f"got {self.scorer!r}"),
            (_count(self.horizon) and self.horizon >= 1,
             f"horizon must be an integer >= 1, got {self.horizon!r}"),
            (not _count(self.horizon) or self.horizon == 1 or self.scorer in LOOKAHEAD_SCORERS,
             f"horizon={self.horizon} needs a scorer that looks ahead "
             f"({', '.join(LOOKAHEAD_SCORERS)}); scorer={self.scorer} scores (s, a)"),
            (self.gamma is None or (isinstance(self.gamma, (int, float))
                                    and 0.0 < self.gamma <= 1.0),
             f"gamma must be in (0, 1] or null (the agent's), got {self.gamma!r}"),
            (isinstance(self.include_mean, bool), "include_mean must be true or false"),
            (self.support is None or (isinstance(self.support, (int, float))
                                      and 0.0 < self.support <= 1.0),
             f"support must be a quantile in (0, 1] or null (off), got {self.support!r}"),
            (_positive(self.temperature),
             f"temperature must be a number > 0 (1: the policy's own distribution), got "
             f"{self.temperature!r}"),
            (self.support is None or self.scorer in ("reward", "reward_lookahead"),
             f"support gates a learned reward's scores: scorer={self.scorer} has none "
             "(use scorer=reward or reward_lookahead, or support=null)"),
        ]


@RewardModelConfig.register_subclass("action_preference")
@dataclass
class ActionPreferenceConfig(RewardModelConfig):
    """Knobs of :class:`~rewardlearn.select.reward.ActionPreferenceReward`.

    ``labels``: a folder of labelled action pairs (:mod:`rewardlearn.select.pairs`:
    ``pairs.jsonl``, written by ``rewardlearn-action-pairs``; unlabelled pairs are
    skipped), or several, comma-separated (rounds of labels), of which the first
    ``max_labels`` labelled ones are used. The model,
    an ensemble of ``n_members`` MLPs ``r_e(s, a)`` (``hidden_sizes``, ``activation``) over
    standardised ``[s, a]``, is fitted at construction with the Bradley-Terry loss over the
    two candidates of each pair, ``P(a_A > a_B | s) = sigmoid(r(s, a_A) - r(s, a_B))``
    (labels 1, 0 or 0.5 for equal), ``epochs`` passes of Adam (``lr``, ``weight_decay``,
    ``batch_size`` pairs), keeping ``heldout`` of the pairs aside to report accuracy on
    (``0``: none). The reward is the members' mean. A saved model keeps its weights and is
    not refitted when loaded.
    """

    labels: str | None = None
    max_labels: int | None = None
    n_members: int = 3
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])
    activation: str = "leaky_relu"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    epochs: int = 200
    batch_size: int = 128
    heldout: float = 0.1
    device: str = "cpu"
    seed: int = 0

    def check_inputs(self) -> None:
        from rewardlearn.select.pairs import pairs_file

        if self.labels is None:
            raise ValueError("reward.model.labels: reward=action_preference learns from labelled "
                             "action pairs; give their folder (rewardlearn-action-pairs "
                             "runs/<run> out=<folder>)")
        for folder in str(self.labels).split(","):
            pairs_file(folder.strip())  # refuses a missing folder or file

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (self.max_labels is None or self.max_labels >= 1, "max_labels must be >= 1 or null"),
            (self.n_members >= 1, f"n_members must be >= 1, got {self.n_members}"),
            (positive_widths(self.hidden_sizes), "hidden_sizes must be positive layer widths"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (0.0 <= self.heldout < 1.0, f"heldout must be in [0, 1), got {self.heldout}"),
        ]


PAIR_QUERIES = ("every", "disagreement")
"""Which steps' candidate pairs are stored (``collect_action_pairs``'s ``query_score``)."""

PAIR_TEACHERS = ("oracle", "none", "human")
"""Who labels action pairs: the synthetic oracle, nobody yet, or people on the review page."""


@dataclass
class PairsConfig(Settings):
    """Options of ``rewardlearn-action-pairs <run>`` (:mod:`rewardlearn.select.pairs`).

    ``teacher=human`` writes the clips whatever ``clips`` says and queues every pair on the
    review page (:mod:`rewardlearn.select.review`).

    ``select``: a saved reward model (run folder, folder, ``.pt`` or Hub id) whose best-of-
    ``select_n`` selector (:class:`~rewardlearn.select.BestOfN`, the run's policy proposing)
    moves the rollouts, so the next round of pairs comes from the states that selector
    visits; ``null``: the policy's own sampled actions. Candidates always come from the
    run's policy. ``query``: ``every`` stores the pair of every ``every``-th step;
    ``disagreement`` scores every step's pair by the ``select`` model's ensemble
    disagreement (an action-preference reward) and stores those in the top ``1 / every``
    (the same number of labels, spent where the last round's reward is unsure).
    ``temperature``: the candidates and the rollout's sampled actions are drawn with the
    policy's Gaussian standard deviation scaled by it (``select=``'s selector samples at it
    too); label at the temperature the selector will use (``eval.select.temperature``)."""

    what = "pairs"
    out: str | None = None
    n_pairs: int = 500
    horizon: int = 5
    every: int = 5
    seed: int = 20_000
    teacher: str = "oracle"
    gamma: float = 1.0
    equal_margin: float = 0.0
    reward_key: str | None = None
    clips: bool = False
    clip_size: int = 128
    select: str | None = None
    select_n: int = 16
    query: str = "every"
    temperature: float = 1.0

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (self.query in PAIR_QUERIES,
             f"query must be one of {', '.join(PAIR_QUERIES)}, got {self.query!r}"),
            (self.query != "disagreement" or self.select is not None,
             "query=disagreement scores pairs by an earlier round's reward: give "
             "select=<its reward model>"),
            (_count(self.select_n) and self.select_n >= 2,
             f"select_n must be an integer >= 2, got {self.select_n!r}"),
            (_positive(self.temperature),
             f"temperature must be a number > 0 (1: the policy's own), got {self.temperature!r}"),
            (self.n_pairs >= 1, f"n_pairs must be >= 1, got {self.n_pairs}"),
            (self.horizon >= 1, f"horizon must be >= 1, got {self.horizon}"),
            (self.every >= 1, f"every must be >= 1, got {self.every}"),
            (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
            (self.teacher in PAIR_TEACHERS,
             f"teacher must be one of {', '.join(PAIR_TEACHERS)}, got {self.teacher!r}"),
            (0.0 < self.gamma <= 1.0, f"gamma must be in (0, 1], got {self.gamma}"),
            (self.equal_margin >= 0, f"equal_margin must be >= 0, got {self.equal_margin}"),
            (self.clip_size >= 16, f"clip_size must be >= 16, got {self.clip_size}"),
        ]


__all__ = ["ActionPreferenceConfig", "PairsConfig", "SelectConfig"]
