"""Settings of VPL, variational preference learning from many users (``conf/reward/vpl.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rewardlearn.settings import RewardModelConfig, positive_widths

SCALINGS = ("bt", "spo")
POLICY_LATENTS = ("prior", "posterior")
REWARD_FORMS = ("concat", "bilinear")


@RewardModelConfig.register_subclass("vpl")
@dataclass
class VPLConfig(RewardModelConfig):
    """Settings of ``reward=vpl`` (Poddar et al., NeurIPS 2024; the authors' control-code
    defaults where they exist: hidden 256, lr 1e-3, ``kl_weight`` 1).

    :param latent_dim: ``d``, the width of the user latent ``z`` (the code's 32 conditions an
        offline IQL policy; here ``z`` is part of an online agent's observation, so smaller).
    :param hidden_sizes: hidden widths of every MLP (reward, embeddings, posterior head).
    :param embed_dim: width of the segment and pair embeddings of the encoder.
    :param annotation_size: ``N``, pairs per annotation set (one user's labels the encoder
        reads; the code's ``set_len`` 8). Inference takes any number of pairs.
    :param kl_weight: ``beta`` of the ELBO (the KL has its 1/2; REFERENCE.md 10.2).
    :param lr: Adam learning rate.
    :param train_steps: gradient steps per round on all labels so far.
    :param batch_sets: annotation sets per gradient step.
    :param use_action, use_next_obs: the reward reads ``(s, a, s')`` by default (the synthetic
        users' rewards are functions of ``s'``).
    :param segment_length: steps per queried segment.
    :param budget: labels in all, over every user.
    :param rounds: feedback rounds (each asks ``budget / rounds`` labels, in annotation sets
        of ``annotation_size`` pairs, the users in turn).
    :param first_round_at: env steps before the first round.
    :param feedback_until: share of training by which the budget is asked.
    :param reward_form: how ``r`` reads ``z``: ``concat`` (an MLP of ``[x, z]``, as the
        paper's code) or ``bilinear`` (``r(x, z) = phi(x) . (A z + b)``: a linear read-out of
        shared step features ``phi``, with weights that move with ``z``). For each ``z`` the
        bilinear reward is one MLP's read-out, so it extrapolates past the labelled states
        as a single user's reward does; the concat MLP must build the product of ``z`` and
        the state within the labelled range and need not keep it outside.
    :param scaling: ``bt`` (the Bradley-Terry reward ``r(s, a, z)``) or ``spo`` (VPL-SPO's
        ``E_{x'}[P(x > x' | z)]`` against ``spo_samples`` stored steps, in ``[0, 1]``, §4.1).
    :param spo_samples: reference steps of ``spo`` scaling (the code averages over 1000).
    :param policy_latents: where the agent's training ``z`` comes from at each episode's
        start: ``prior`` (``z ~ N(0, I)``, the paper's relabelling) or ``posterior`` (once
        labels exist, the posterior mean ``E[z | C]`` of a random annotation set ``C`` of a
        random labelled user: the statistic a new user's ``z`` is at test time; the prior
        before the first round).
    :param latent_bank_size: annotation sets encoded after each round for ``posterior``.
    :param buffer_capacity: transitions kept for queries.
    :param device: torch device (``auto``: CUDA when present).
    :param seed: initialisation and sampling seed.
    """

    latent_dim: int = 8
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])
    embed_dim: int = 64
    annotation_size: int = 8
    kl_weight: float = 1.0
    lr: float = 1e-3
    train_steps: int = 300
    batch_sets: int = 32
    use_action: bool = True
    use_next_obs: bool = True
    segment_length: int = 50
    budget: int = 1000
    rounds: int = 5
    first_round_at: int = 1000
    feedback_until: float = 0.5
    reward_form: str = "concat"
    scaling: str = "bt"
    spo_samples: int = 256
    policy_latents: str = "prior"
    latent_bank_size: int = 256
    buffer_capacity: int = 100_000
    device: str = "auto"
    seed: int | None = 0

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (self.latent_dim >= 1, "latent_dim must be >= 1"),
            (positive_widths(self.hidden_sizes), "hidden_sizes must be positive layer widths"),
            (self.embed_dim >= 1, "embed_dim must be >= 1"),
            (self.annotation_size >= 1, "annotation_size must be >= 1"),
            (self.kl_weight >= 0, "kl_weight must be >= 0"),
            (self.lr > 0, "lr must be > 0"),
            (self.train_steps >= 1, "train_steps must be >= 1"),
            (self.batch_sets >= 1, "batch_sets must be >= 1"),
            (self.segment_length >= 2, "segment_length must be >= 2"),
            (self.budget >= self.annotation_size,
             f"budget must be >= annotation_size ({self.annotation_size}): labels come in "
             "annotation sets"),
            (self.rounds >= 1, "rounds must be >= 1"),
            (self.budget >= self.rounds * self.annotation_size,
             f"budget must be >= rounds * annotation_size ({self.rounds} * "
             f"{self.annotation_size}): every round asks at least one annotation set"),
            (self.first_round_at >= 0, "first_round_at must be >= 0"),
            (0 < self.feedback_until <= 1, "feedback_until must be in (0, 1]"),
            (self.reward_form in REWARD_FORMS, f"reward_form must be one of {REWARD_FORMS}"),
            (self.scaling in SCALINGS, f"scaling must be one of {SCALINGS}"),
            (self.spo_samples >= 1, "spo_samples must be >= 1"),
            (self.policy_latents in POLICY_LATENTS,
             f"policy_latents must be one of {POLICY_LATENTS}"),
            (self.latent_bank_size >= 1, "latent_bank_size must be >= 1"),
            (self.buffer_capacity >= self.segment_length,
             "buffer_capacity must be >= segment_length"),
        ]

    def run_warnings(self, algo: str, total_timesteps: int) -> list[str]:
        if self.first_round_at >= total_timesteps:
            return [f"first_round_at={self.first_round_at} >= total_timesteps="
                    f"{total_timesteps}: no round will run, so the agent trains on an "
                    "untrained reward"]
        return []

    def env_wrappers(self) -> list[dict[str, Any]]:
        """Env wrappers the run needs: ``z ~ N(0, I)`` appended to every observation
        (:class:`~rewardlearn.vpl.latent.AppendLatent`); ``train.py`` adds them."""
        from rewardlearn.vpl.latent import latent_wrapper

        return [latent_wrapper(self.latent_dim)]


__all__ = ["POLICY_LATENTS", "REWARD_FORMS", "SCALINGS", "VPLConfig"]
