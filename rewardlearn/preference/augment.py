"""Label-efficiency helpers: SURF's pseudo-labels and temporal crops, bagged members.

* SURF (Park et al., ICLR 2022): unlabelled segment pairs whose predicted
  ``P(first preferred)`` is confident, ``max(p, 1 - p) > tau``, get the
  pseudo-label ``1[p > 0.5]`` and join the Bradley-Terry loss with weight
  ``lambda``; labelled pairs are trained on random *temporal crops*: both sides
  cut to the same length ``H' ~ U[ceil(min_frac * H), H]`` at independent
  offsets, the label kept.
* Bagging (imitation issue #491): each ensemble member fits its own bootstrap
  resample of the labels (``n`` draws with replacement), so the members'
  disagreement reflects label uncertainty, not only their initialisation.

Example:
    >>> import numpy as np
    >>> idx, lab = pseudo_labels(np.array([0.995, 0.6, 0.002, 0.5]), tau=0.99)
    >>> idx.tolist(), lab.tolist()
    ([0, 2], [1.0, 0.0])
    >>> c, s1, s2 = crop_windows(np.array([50, 50]), 0.5, np.random.default_rng(0))
    >>> bool(((c >= 25) & (s1 + c <= 50) & (s2 + c <= 50)).all())
    True
"""

from __future__ import annotations

import numpy as np
import torch


def pseudo_labels(probs: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices and hard labels of the pairs whose ``P(first)`` is confident (SURF).

    A pair is kept when ``max(p, 1 - p) > tau`` (strictly above the threshold);
    its pseudo-label is ``1.0`` if ``p > 0.5`` else ``0.0``.
    """
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    keep = np.flatnonzero(np.maximum(p, 1.0 - p) > tau)
    return keep, (p[keep] > 0.5).astype(np.float32)


def crop_windows(lengths: np.ndarray, min_frac: float, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SURF temporal crops: per pair a shared length and an offset per side.

    Args:
        lengths: ``(B,)`` steps per side of each pair (both sides are equally long).
        min_frac: the shortest crop, as a fraction of the segment length.
    Returns:
        ``(crop_len, start_1, start_2)``, each ``(B,)``; ``start + crop_len <= length``.
    """
    n = np.asarray(lengths, dtype=np.int64)
    lo = np.clip(np.ceil(min_frac * n).astype(np.int64), 1, n)
    c = rng.integers(lo, n + 1)
    return c, rng.integers(0, n - c + 1), rng.integers(0, n - c + 1)


def crop_batch(batch: dict[str, torch.Tensor], crop_len: np.ndarray, start1: np.ndarray,
               start2: np.ndarray) -> dict[str, torch.Tensor]:
    """Cut a :meth:`PreferenceDataset.tensors` batch to the given windows (label kept).

    Each side keeps steps ``start .. start + crop_len - 1``; ``s_L`` becomes the row
    after the window's last real step, or the stored ``s_L`` when the window
    reaches the segment's last real step.
    """
    x = batch["x1"]
    dev = x.device
    B, L = batch["real1"].shape
    pos = torch.arange(L, device=dev)
    c = torch.as_tensor(crop_len, device=dev)
    keep = (pos[None, :] < c[:, None]).float()
    out = dict(batch)
    out["length"] = c
    rows = torch.arange(B, device=dev)
    for side, start in (("1", start1), ("2", start2)):
        s = torch.as_tensor(start, device=dev)
        g = (s[:, None] + pos[None, :]).clamp(max=L - 1)
        xs = batch[f"x{side}"]
        out[f"x{side}"] = xs.gather(1, g[..., None].expand(-1, -1, xs.shape[-1]))
        real = batch[f"real{side}"].gather(1, g) * keep
        out[f"real{side}"] = real
        out[f"abs{side}"] = batch[f"abs{side}"].gather(1, g) * keep
        out[f"term{side}"] = batch[f"term{side}"].gather(1, g) & keep.bool()
        n_real = batch[f"real{side}"].sum(1).long()
        last = s + real.sum(1).long() - 1  # the window's last real step, in the segment
        inner = last < n_real - 1
        after = xs[rows, (last + 1).clamp(0, L - 1)]
        out[f"next{side}"] = torch.where(inner[:, None], after, batch[f"next{side}"])
    return out


def bootstrap_indices(pool: np.ndarray, n_members: int, rng: np.random.Generator
                      ) -> list[np.ndarray]:
    """One bootstrap resample (``len(pool)`` draws with replacement) of ``pool`` per member."""
    pool = np.asarray(pool, dtype=np.int64)
    return [pool[rng.integers(0, len(pool), size=len(pool))] for _ in range(n_members)]


__all__ = ["bootstrap_indices", "crop_batch", "crop_windows", "pseudo_labels"]
