"""Base class of every reward module: the protocol (:mod:`.protocol`) plus saving and the Hub.

:class:`RewardModel` adds to :class:`~rewardlearn.rewards.protocol.RewardProtocol` (the
batched call over transitions and the capability flags) what a trained module needs:
``state_dict`` saving in the safe checkpoint format and huggingface_hub's
``ModelHubMixin`` (``save_pretrained``, ``from_pretrained``, ``push_to_hub``).

Example:
    >>> import numpy as np, gymnasium as gym
    >>> from rewardlearn.rewards.base import RewardModel, RewardOutput, TransitionBatch
    >>> class Speed(RewardModel):
    ...     def compute(self, batch):
    ...         return RewardOutput(np.abs(batch.acts).sum(-1))
    >>> m = Speed(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-1, 1, (2,)))
    >>> b = TransitionBatch.from_arrays(np.zeros((4, 3)), np.ones((4, 2)), np.zeros((4, 3)))
    >>> m(b).tolist()
    [2.0, 2.0, 2.0, 2.0]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import gymnasium as gym
from huggingface_hub import ModelHubMixin

from rewardlearn.rewards.pretrained import load_pretrained, save_pretrained
from rewardlearn.rewards.protocol import (
    FrameCache,
    NonFiniteRewardError,
    Obs,
    RewardOutput,
    RewardProtocol,
    TransitionBatch,
    as_obs,
    check_finite,
)

M = TypeVar("M", bound="RewardModel")


class RewardModel(ModelHubMixin, RewardProtocol, library_name="rewardlearn", license="mit",
                  tags=["rewardlearn", "reward-model", "reinforcement-learning"],
                  repo_url="https://github.com/rewardlearn/rewardlearn"):
    """Base class of every reward module: :class:`~.protocol.RewardProtocol` (the batched
    call, the capability flags, the learned state) and the Hub.

    Every module is a ``huggingface_hub.ModelHubMixin``: ``reward.save_pretrained(folder)``,
    ``reward.push_to_hub("user/name")`` and ``Class.from_pretrained("user/name" or folder,
    observation_space, action_space)`` use the package's safe format
    (:mod:`rewardlearn.rewards.pretrained`: ``config.json`` + ``model.safetensors``, no
    pickle; a registered class only, its tensors checked against their SHA-256).
    """

    def _save_pretrained(self, save_directory: Path) -> None:
        """``config.json`` + ``model.safetensors`` + the model card (the safe format)."""
        save_pretrained(self, save_directory)

    @classmethod
    def from_pretrained(cls: type[M], pretrained_model_name_or_path: str | Path,
                        observation_space: gym.Space | None = None,
                        action_space: gym.Space | None = None, *, force_download: bool = False,
                        resume_download: bool | None = None, proxies: dict | None = None,
                        token: str | bool | None = None, cache_dir: str | Path | None = None,
                        local_files_only: bool = False, revision: str | None = None,
                        **kwargs: Any) -> M:
        """Load a saved model (a folder, a run, a ``.pt`` or a Hub repo id), refusing one of
        another class or for other spaces; ``trust=[...]`` and settings overrides as
        :func:`~rewardlearn.rewards.pretrained.load_pretrained`. Runs no code from the files."""
        return cls._from_pretrained(
            model_id=str(pretrained_model_name_or_path), revision=revision,
            cache_dir=cache_dir, force_download=force_download,
            local_files_only=local_files_only, token=token,
            observation_space=observation_space, action_space=action_space, **kwargs)

    @classmethod
    def _from_pretrained(cls: type[M], *, model_id: str, revision: str | None,
                         cache_dir: str | Path | None, force_download: bool,
                         local_files_only: bool, token: str | bool | None,
                         **kwargs: Any) -> M:
        model = load_pretrained(model_id, kwargs.pop("observation_space", None),
                                kwargs.pop("action_space", None), revision=revision,
                                token=token if isinstance(token, str) else None,
                                cache_dir=None if cache_dir is None else str(cache_dir),
                                expected=None if cls is RewardModel else cls, **kwargs)
        assert isinstance(model, cls)
        return model


__all__ = [
    "FrameCache",
    "NonFiniteRewardError",
    "Obs",
    "RewardModel",
    "RewardOutput",
    "RewardProtocol",
    "TransitionBatch",
    "as_obs",
    "check_finite",
]
