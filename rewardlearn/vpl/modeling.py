"""VPL's latent-variable reward model and its ELBO (Poddar et al., NeurIPS 2024, §4).

A user is a latent ``z``. From ``N`` pairs the same user labelled,
``C = {(A_i, B_i, y_i)}``, the encoder gives a Gaussian posterior
``q(z | C) = N(mu, diag(sigma^2))``; the reward ``r(s, a, z)`` (per step; ``R(A, z)`` sums
it over a segment) explains the labels through Bradley-Terry,
``p(y_i = 1 | A_i, B_i, z) = sigmoid(R(A_i, z) - R(B_i, z))``. Training maximises the
ELBO of each set,

    ELBO(C) = E_{z ~ q(z|C)} [ sum_i log p(y_i | A_i, B_i, z) ] - beta * KL(q(z|C) || N(0, I)),

with the reparameterised sample ``z = mu + sigma * eps`` and the closed form

    KL(N(mu, sigma^2) || N(0, I)) = 1/2 * sum_d (mu_d^2 + sigma_d^2 - 1 - log sigma_d^2)

(the authors' code omits the 1/2, doubling the effective ``beta``; REFERENCE.md 10.2).

The encoder is permutation invariant and takes any number of pairs (the control code
flattens a fixed-size, ordered set, so its test context must match training's): each
segment is embedded as the mean over its steps of an MLP of the step features,
``phi(A)``; each labelled pair as ``e_i = g((2 y_i - 1) * (phi(A_i) - phi(B_i)))``
(so ``(A, B, 1)`` and ``(B, A, 0)`` are the same evidence and an "equal" label carries
none); the set as the mean of the ``e_i`` with ``log(1 + N)``, from which an MLP gives
``mu`` and ``log sigma^2``.

Example:
    >>> import torch
    >>> kl_standard_normal(torch.zeros(1, 3), torch.zeros(1, 3)).item()  # q = p
    0.0
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from rewardlearn.rewards.mlp import RunningNorm
from rewardlearn.vpl.configuration import REWARD_FORMS

LOGVAR_RANGE = (-10.0, 4.0)
"""``log sigma^2`` is clamped to this range (keeps ``exp`` finite early in training)."""


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, diag(exp(logvar))) || N(0, I)) = 1/2 sum(mu^2 + sigma^2 - 1 - log sigma^2)``
    over the last dimension."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def _mlp(in_dim: int, hidden_sizes: Sequence[int], out_dim: int) -> nn.Sequential:
    """MLP with LeakyReLU(0.2), as the authors' control code."""
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden_sizes:
        layers += [nn.Linear(d, int(h)), nn.LeakyReLU(0.2)]
        d = int(h)
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


class VPLModel(nn.Module):
    """Encoder ``q(z | C)`` and latent-conditioned reward ``r(x, z)`` (module docstring).

    Args:
        in_dim: per-step feature width (``s, a[, s']``), standardised by :attr:`norm`.
        latent_dim: ``d``.
        hidden_sizes: hidden widths of every MLP (reward, step and pair embeddings, head).
        embed_dim: width of segment and pair embeddings, and of the bilinear reward's step
            features.
        seed: initialisation seed.
        reward_form: ``concat``, ``r(x, z) = MLP([x, z])`` (the authors' code), or
            ``bilinear``, ``r(x, z) = phi(x) . (A z + b)`` with ``phi`` an MLP of the step
            features (:class:`~rewardlearn.vpl.configuration.VPLConfig`'s ``reward_form``).
    """

    norm: RunningNorm

    def __init__(self, in_dim: int, latent_dim: int = 8,
                 hidden_sizes: Sequence[int] = (256, 256), embed_dim: int = 64,
                 seed: int | None = 0, reward_form: str = "concat") -> None:
        super().__init__()
        if reward_form not in REWARD_FORMS:
            raise ValueError(f"reward_form must be one of {REWARD_FORMS}, got {reward_form!r}")
        if seed is not None:
            torch.manual_seed(seed)
        self.in_dim, self.latent_dim = int(in_dim), int(latent_dim)
        self.norm = RunningNorm(self.in_dim)
        self.step_embed = _mlp(self.in_dim, hidden_sizes, embed_dim)
        self.pair_embed = _mlp(embed_dim, hidden_sizes, embed_dim)
        self.head = _mlp(embed_dim + 1, hidden_sizes, 2 * self.latent_dim)
        self.reward_form = reward_form
        if reward_form == "concat":
            self.reward_net = _mlp(self.in_dim + self.latent_dim, hidden_sizes, 1)
        else:
            self.reward_features = _mlp(self.in_dim, hidden_sizes, embed_dim)
            self.reward_weights = nn.Linear(self.latent_dim, embed_dim)

    def segment_embedding(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``phi``: ``(..., L, F)`` steps with ``(..., L)`` 0/1 mask -> ``(..., E)``."""
        h = self.step_embed(self.norm(x)) * mask[..., None]
        return h.sum(-2) / mask.sum(-1, keepdim=True).clamp(min=1.0)

    def encode(self, x1: torch.Tensor, m1: torch.Tensor, x2: torch.Tensor, m2: torch.Tensor,
               labels: torch.Tensor, set_mask: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` ``(S, d)`` of ``S`` sets of ``N`` pairs: ``x*`` ``(S, N, L, F)``,
        ``m*`` ``(S, N, L)``, ``labels`` ``(S, N)`` (1: first preferred), ``set_mask``
        ``(S, N)`` (1: the pair is in the set)."""
        diff = self.segment_embedding(x1, m1) - self.segment_embedding(x2, m2)
        return self.encode_differences(diff, labels, set_mask)

    def encode_differences(self, diff: torch.Tensor, labels: torch.Tensor,
                           set_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`encode` from the pairs' ``phi(A) - phi(B)`` ``(S, N, E)`` (computed once
        when many label assignments of the same pairs are encoded, as active queries do)."""
        e = self.pair_embed((2.0 * labels - 1.0)[..., None] * diff) * set_mask[..., None]
        n = set_mask.sum(-1, keepdim=True)
        pooled = e.sum(-2) / n.clamp(min=1.0)
        out = self.head(torch.cat([pooled, torch.log1p(n)], -1))
        mu, logvar = out.chunk(2, -1)
        return mu, logvar.clamp(*LOGVAR_RANGE)

    def rewards(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``r(x, z)``: features ``(..., F)`` and latents ``(..., d)`` broadcast together."""
        if self.reward_form == "bilinear":  # phi(x) once per step, A z + b once per latent
            return (self.reward_features(self.norm(x)) * self.reward_weights(z)).sum(-1)
        lead = torch.broadcast_shapes(x.shape[:-1], z.shape[:-1])
        xs = self.norm(x).expand(*lead, self.in_dim)
        zs = z.expand(*lead, self.latent_dim)
        return self.reward_net(torch.cat([xs, zs], -1)).squeeze(-1)

    def returns(self, x: torch.Tensor, mask: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``R(seg, z) = sum_t r(x_t, z)``: ``x`` ``(S, N, L, F)``, ``z`` ``(S, d)`` (one per
        set) -> ``(S, N)``."""
        r = self.rewards(x, z[:, None, None, :])
        return (r * mask).sum(-1)

    def logits(self, x1: torch.Tensor, m1: torch.Tensor, x2: torch.Tensor, m2: torch.Tensor,
               z: torch.Tensor) -> torch.Tensor:
        """``R(A, z) - R(B, z)`` ``(S, N)``: the logit of ``P(A preferred | z)``."""
        return self.returns(x1, m1, z) - self.returns(x2, m2, z)


def elbo_loss(model: VPLModel, batch: dict[str, torch.Tensor], kl_weight: float = 1.0,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """``-ELBO`` averaged over the batch's sets (module docstring), and its parts.

    ``batch``: ``x1, m1, x2, m2, labels, set_mask`` as :meth:`VPLModel.encode` takes them.
    Returns ``(loss, {"loss", "bce", "kl", "acc"})``: ``bce`` is the summed label
    cross-entropy per set, ``kl`` the mean KL, ``acc`` the share of decided labels whose
    preferred side the sampled ``z`` scores higher.
    """
    mu, logvar = model.encode(batch["x1"], batch["m1"], batch["x2"], batch["m2"],
                              batch["labels"], batch["set_mask"])
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    z = mu + torch.exp(0.5 * logvar) * eps
    logits = model.logits(batch["x1"], batch["m1"], batch["x2"], batch["m2"], z)
    mask = batch["set_mask"]
    bce = (F.binary_cross_entropy_with_logits(logits, batch["labels"], reduction="none")
           * mask).sum(-1)
    kl = kl_standard_normal(mu, logvar)
    loss = (bce + kl_weight * kl).mean()
    with torch.no_grad():
        decided = (batch["labels"] != 0.5) & (mask > 0)
        right = ((logits > 0).float() == batch["labels"]) & decided
        acc = float(right.sum() / decided.sum().clamp(min=1))
    return loss, {"loss": float(loss.detach()), "bce": float(bce.detach().mean()),
                  "kl": float(kl.detach().mean()), "acc": acc}


def spo_rewards(model: VPLModel, x: torch.Tensor, z: torch.Tensor, reference: torch.Tensor,
                chunk: int = 65_536) -> torch.Tensor:
    """VPL-SPO's rescaled reward ``E_{x' ~ D}[P(x > x' | z)]`` in ``[0, 1]`` (§4.1):
    ``mean_m sigmoid(r(x, z) - r(x'_m, z))`` over ``M`` reference steps ``x'`` ``(M, F)``.

    Bradley-Terry fixes ``r(., z)`` only up to a scale and offset per ``z``; the expected
    win rate against the data does not depend on the offset and is bounded for every ``z``.
    """
    out = []
    rows = max(1, chunk // max(len(reference), 1))  # rows per call: ``rows * M`` reward calls
    for s in range(0, len(x), rows):
        xb, zb = x[s:s + rows], z[s:s + rows]
        r = model.rewards(xb, zb)
        r_ref = model.rewards(reference[None], zb[:, None])
        out.append(torch.sigmoid(r[:, None] - r_ref).mean(1))
    return torch.cat(out) if out else torch.zeros(0, device=x.device)


__all__ = ["LOGVAR_RANGE", "VPLModel", "elbo_loss", "kl_standard_normal", "spo_rewards"]
