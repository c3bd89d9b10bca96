"""Hybrid experience replay for SAC (QPA, Hu et al., ICLR 2024).

QPA's point: the learned reward is most accurate on what the current policy
does (its queries come from recent episodes), so the critic should also see
recent transitions more often. Each SAC batch takes ``recent_fraction`` of its
rows uniformly from the last ``recent_window`` stored steps and the rest
uniformly from the whole buffer.

Wired in by :func:`rewardlearn.agents.build_agent` from the reward module's
:meth:`~rewardlearn.preference.reward.PreferenceReward.agent_kwargs`
(``reward.model.replay_recent_fraction`` / ``replay_recent_window``).

Example:
    >>> import numpy as np
    >>> hybrid_indices(8, pos=3, full=True, buffer_size=10, recent_fraction=1.0,
    ...                recent_window=2, rng=np.random.default_rng(0)).tolist()  # steps 1 and 2
    [1, 1, 1, 2, 2, 2, 2, 2]
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize


def hybrid_indices(batch_size: int, pos: int, full: bool, buffer_size: int,
                   recent_fraction: float, recent_window: int,
                   rng: np.random.Generator) -> np.ndarray:
    """Row indices: ``round(recent_fraction * batch_size)`` from the ``recent_window`` most
    recent rows (those before ``pos``, wrapping), the rest uniform over all stored rows."""
    stored = buffer_size if full else pos
    n_recent = round(recent_fraction * batch_size)
    window = max(1, min(int(recent_window), stored))
    recent = (pos - 1 - rng.integers(0, window, size=n_recent)) % buffer_size
    uniform = rng.integers(0, stored, size=batch_size - n_recent)
    return np.concatenate([recent, uniform]).astype(np.int64)


class HybridReplayBuffer(ReplayBuffer):
    """SB3 :class:`ReplayBuffer` whose batches mix recent and uniform transitions.

    Args:
        recent_fraction: share of each batch from the recent window (0 = SB3's uniform).
        recent_window: how many most recent rows (per env) count as recent.
        **kwargs: :class:`ReplayBuffer` arguments (``optimize_memory_usage`` unsupported).
    """

    def __init__(self, *args: Any, recent_fraction: float = 0.5, recent_window: int = 10_000,
                 seed: int | None = None, **kwargs: Any) -> None:
        if kwargs.get("optimize_memory_usage"):
            raise ValueError("hybrid replay does not support optimize_memory_usage")
        super().__init__(*args, **kwargs)
        if not 0.0 <= recent_fraction <= 1.0:
            raise ValueError(f"recent_fraction must be in [0, 1], got {recent_fraction}")
        self.recent_fraction = float(recent_fraction)
        self.recent_window = int(recent_window)
        self._rng = np.random.default_rng(seed)

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> ReplayBufferSamples:
        idx = hybrid_indices(batch_size, self.pos, self.full, self.buffer_size,
                             self.recent_fraction, self.recent_window, self._rng)
        return self._get_samples(idx, env=env)


__all__ = ["HybridReplayBuffer", "hybrid_indices"]
