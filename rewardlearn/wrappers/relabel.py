"""Relabelling what the agent learns from after a reward learned during the run changes.

A reward model trained online (preference rounds, VPL rounds, a distilled VLM reward)
changes under the agent. The rollout PPO is about to learn from and SAC's replay buffer
still hold the old model's rewards. PEBBLE (Lee et al., 2021) relabels the whole replay
buffer after each update. For on-policy agents the current rollout's rewards and their
GAE advantages are rewritten (:func:`~rewardlearn.wrappers.vec.write_rollout_rewards`).
This module is the one route for all three modules.

Example:
    >>> import numpy as np
    >>> from stable_baselines3 import SAC
    >>> agent = SAC("MlpPolicy", "Pendulum-v1", learning_starts=10, buffer_size=100)
    >>> _ = agent.learn(20)
    >>> relabel_replay(agent, lambda obs, act, nxt, term: -np.abs(act[:, 0]))
    20
    >>> bool(np.allclose(agent.replay_buffer.rewards[:20, 0],
    ...                  -np.abs(agent.replay_buffer.actions[:20, 0, 0])))
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from rewardlearn.wrappers.normalize import scaled_change
from rewardlearn.wrappers.vec import find_reward_wrapper, write_rollout_rewards

Obs = Any  # a flat array, or a dict of arrays for Dict observation spaces
ReplayRewards = Callable[[Obs, np.ndarray, Obs, np.ndarray], np.ndarray]
"""``(obs, actions, next_obs, terminated) -> rewards`` over a chunk of transitions."""


def bind_reward_wrapper(venv: VecEnv, agent: BaseAlgorithm, reward: Any, name: str) -> float:
    """Check that ``reward`` is served by a :class:`RewardVecEnvWrapper` on ``venv`` that
    relabelling can follow, and return the scale of a change in the learned reward in the
    agent's reward (1 with ``reward.mode=replace``, else the wrapper's weight).

    An off-policy agent needs ``mode=replace`` and no shaping on top: the replay buffer keeps
    only the sum it was given, so a relabelled learned term cannot be recombined with it.
    """
    wrapper = find_reward_wrapper(venv)
    if wrapper is None:
        raise RuntimeError(f"reward={name} needs the env wrapped in RewardVecEnvWrapper")
    if isinstance(agent, OffPolicyAlgorithm):
        if wrapper.reward_model is not reward:
            raise ValueError(f"reward={name} with an off-policy agent cannot be combined with "
                             "shaping yet (replay relabelling would drop the shaping term); "
                             "use agent=ppo or shaping=none")
        if wrapper.mode != "replace":
            raise ValueError(f"reward={name} with an off-policy agent needs reward.mode="
                             "replace (the replay buffer is relabelled with the learned reward)")
    return 1.0 if wrapper.mode == "replace" else float(wrapper.weight)


def replay_chunks(rb: ReplayBuffer, chunk: int = 50_000
                  ) -> Iterator[tuple[slice, Obs, np.ndarray, Obs, np.ndarray]]:
    """The stored transitions flattened over envs, ``chunk`` at a time:
    ``(rows, obs, actions, next_obs, terminated)``. ``terminated`` is ``done`` and not a
    time-out. Without ``next_observations`` (SB3's ``optimize_memory_usage``), the next
    observation is the next slot's."""
    n = rb.buffer_size if rb.full else rb.pos
    flat = n * rb.n_envs

    def rows(a: np.ndarray) -> np.ndarray:
        return a[:n].reshape(flat, *a.shape[2:])

    obs_src: Any = rb.observations
    nxt_src: Any = rb.next_observations
    if isinstance(obs_src, dict):
        obs: Obs = {k: rows(v) for k, v in obs_src.items()}
        nxt: Obs = {k: rows(v) for k, v in nxt_src.items()}
    else:
        obs = rows(obs_src)
        nxt = rows(nxt_src if nxt_src is not None else np.roll(obs_src, -1, axis=0))
    acts = rb.actions[:n].reshape(flat, -1)
    term = (rb.dones[:n] * (1 - rb.timeouts[:n])).reshape(-1).astype(bool)
    for s in range(0, flat, chunk):
        sl = slice(s, min(s + chunk, flat))
        o = {k: v[sl] for k, v in obs.items()} if isinstance(obs, dict) else obs[sl]
        no = {k: v[sl] for k, v in nxt.items()} if isinstance(nxt, dict) else nxt[sl]
        yield sl, o, acts[sl], no, term[sl]


def relabel_replay(agent: OffPolicyAlgorithm, rewards_of: ReplayRewards,
                   chunk: int = 50_000) -> int:
    """Overwrite every reward in ``agent``'s replay buffer with ``rewards_of``'s; returns how
    many (``reward.mode=replace`` only: :func:`bind_reward_wrapper`)."""
    rb = agent.replay_buffer
    if rb is None or not (rb.full or rb.pos):
        return 0
    n = rb.buffer_size if rb.full else rb.pos
    out = np.empty(n * rb.n_envs, np.float32)
    for sl, obs, acts, nxt, term in replay_chunks(rb, chunk):
        out[sl] = np.asarray(rewards_of(obs, acts, nxt, term), np.float32).reshape(-1)
    rb.rewards[:n] = out.reshape(n, rb.n_envs)
    return int(out.size)


def relabel_rollout(agent: OnPolicyAlgorithm, record: tuple[np.ndarray, np.ndarray] | None,
                    rewards_of: Callable[[np.ndarray], np.ndarray], scale: float,
                    last_values: Any, dones: Any) -> bool:
    """Rewrite the rollout ``agent`` is about to learn from with the new model's rewards.

    ``record`` is the rollout's model inputs ``(n_steps, n_envs, ...)`` and the learned
    rewards it was given ``(n_steps, n_envs)``; ``rewards_of`` maps flat inputs to new
    rewards. The change, times ``scale``, goes through the agent's reward normalisation
    (:func:`scaled_change`) into the buffer's rewards and advantages. Returns whether the
    record covered the whole rollout (else nothing is written)."""
    buf = agent.rollout_buffer
    if record is None or len(record[0]) != buf.buffer_size:
        return False
    x, old = record
    new = np.asarray(rewards_of(x.reshape(-1, *x.shape[2:]))).reshape(old.shape)
    write_rollout_rewards(agent, scaled_change(agent, (new - old) * scale), last_values, dones)
    return True


__all__ = ["ReplayRewards", "bind_reward_wrapper", "relabel_replay", "relabel_rollout",
           "replay_chunks"]
