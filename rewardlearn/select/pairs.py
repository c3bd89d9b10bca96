"""Preferences over candidate actions (DeformPAM's data): which of two actions sampled from
the policy at the same state is better.

Written by ``rewardlearn-action-pairs runs/<run> out=<folder>``
(:mod:`rewardlearn.cli.action_pairs`).

DeformPAM (Chen et al., ICRA 2025, arXiv 2410.11584) rolls out a supervised policy and
has people rank candidate actions sampled from it at the same state; a reward learned from
those rankings then picks among candidates at inference. Here, at every ``every``-th step
of the policy's own rollouts (its sampled actions), two candidates ``a_A, a_B ~ pi(. | s)``
are drawn and stored with the state, a short clip after each, and a label:

* ``teacher=oracle`` (:class:`ActionOracle`), a **synthetic** teacher: it runs each
  candidate for ``horizon`` steps through a copy of the simulator state (the candidate,
  then the policy's mean action; :mod:`rewardlearn.select.lookahead`, simulation only) and
  prefers the one whose rollout earns more of the env's dense reward,
  ``sum_k gamma^k r_k`` (``reward_key``: an ``info`` entry to sum instead of the env's
  reward, such as ``dense_reward`` in an env configured sparse); returns within
  ``equal_margin`` of each other are labelled equal (0.5).
* ``teacher=none``: the label is left ``null`` for a person to fill in.

The folder holds ``pairs.jsonl``, one pair per line, the form a review page can fill as
well as the oracle (``label``: ``1`` A better, ``0`` B better, ``0.5`` equal, ``null``
not labelled yet)::

    {"id": "p000000", "obs": [...], "action_a": [...], "action_b": [...], "label": 1.0,
     "labeller": "oracle", "episode_seed": 20000, "step": 0, "clip_a": null, "clip_b": null,
     "horizon": 5, "oracle": {"return_a": -4.790, "return_b": -4.814}}

plus ``meta.json`` (env, policy, settings). Clips (``clips=true``, MuJoCo envs) show the
state and the ``horizon`` steps after each candidate, drawn from the lookahead's copy of
the simulator state. :class:`~rewardlearn.select.reward.ActionPreferenceReward`
(``reward=action_preference reward.model.labels=<folder>``) learns ``r(s, a)`` from them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewardlearn.select.lookahead import Lookahead, Rollouts

PAIRS_NAME = "pairs.jsonl"
META_NAME = "meta.json"
LABELS = (0.0, 0.5, 1.0)


@dataclass
class ActionPair:
    """One state and two candidate actions; ``label`` 1 (A better), 0 (B), 0.5 or ``None``."""

    id: str
    obs: list[float]
    action_a: list[float]
    action_b: list[float]
    label: float | None = None
    labeller: str | None = None
    episode_seed: int | None = None
    step: int | None = None
    clip_a: str | None = None
    clip_b: str | None = None
    horizon: int | None = None
    oracle: dict[str, float] = field(default_factory=dict)

    def check(self, where: str) -> None:
        if self.label is not None and self.label not in LABELS:
            raise ValueError(f"{where}: pair {self.id} has label {self.label!r}; labels are "
                             "1 (A better), 0 (B better), 0.5 (equal) or null")
        if len(self.action_a) != len(self.action_b):
            raise ValueError(f"{where}: pair {self.id} has actions of different sizes")


class ActionOracle:
    """Synthetic teacher over two candidate actions at one state (simulation only).

    ``label(rollouts)`` takes the lookahead of the two candidates (``M = 2`` rollouts of
    ``horizon`` steps: the candidate, then the policy's mean action) and returns 1 when A's
    ``sum_k gamma^k r_k`` is larger, 0 when B's is, 0.5 when they are within
    ``equal_margin``. ``r`` is the env's reward, or ``info[reward_key]`` when given.
    """

    name = "oracle"

    def __init__(self, horizon: int = 5, gamma: float = 1.0, equal_margin: float = 0.0,
                 reward_key: str | None = None) -> None:
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {gamma}")
        if equal_margin < 0:
            raise ValueError(f"equal_margin must be >= 0, got {equal_margin}")
        self.horizon = int(horizon)
        self.gamma = float(gamma)
        self.equal_margin = float(equal_margin)
        self.reward_key = reward_key

    def returns(self, rollouts: Rollouts) -> np.ndarray:
        """``(M,)`` discounted returns of the rollouts' steps taken."""
        if self.reward_key is None:
            return rollouts.returns(self.gamma)
        try:
            r = np.array([[float(info[self.reward_key]) for info in step]
                          for step in rollouts.infos])
        except KeyError:
            raise ValueError(f"the oracle reads info[{self.reward_key!r}], which this env's "
                             "steps lack") from None
        return rollouts.returns(self.gamma, r)

    def label(self, rollouts: Rollouts) -> float:
        ret_a, ret_b = self.returns(rollouts)[:2]
        if abs(ret_a - ret_b) <= self.equal_margin:
            return 0.5
        return 1.0 if ret_a > ret_b else 0.0


# ----------------------------------------------------------------------------- storage

def pairs_file(folder: str | Path) -> Path:
    """``<folder>/pairs.jsonl``; a clear error when missing."""
    path = Path(folder)
    if path.is_dir():
        path = path / PAIRS_NAME
    if not path.is_file():
        raise FileNotFoundError(f"action-pair labels {str(folder)!r} not found: a folder with "
                                f"{PAIRS_NAME} (rewardlearn-action-pairs runs/<run> "
                                "out=<folder>)")
    return path


def save_pairs(folder: str | Path, pairs: Sequence[ActionPair],
               meta: dict[str, Any] | None = None) -> Path:
    """Write ``pairs.jsonl`` (and ``meta.json``) into ``folder`` atomically."""
    from rewardlearn.files import write_text_atomic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(asdict(p)) + "\n" for p in pairs)
    if meta is not None:
        write_text_atomic(folder / META_NAME, json.dumps(meta, indent=2))
    return write_text_atomic(folder / PAIRS_NAME, text)


def label_temperature(folder: str | Path) -> float:
    """The sampling temperature a labels folder's candidates were drawn at (its
    ``meta.json``; ``1``, the policy's own, when it does not say)."""
    meta = pairs_file(folder).parent / META_NAME
    if not meta.is_file():
        return 1.0
    return float(json.loads(meta.read_text()).get("temperature", 1.0))


def load_pairs(folder: str | Path) -> list[ActionPair]:
    """Every pair of a labels folder (or ``pairs.jsonl``), labelled or not, checked."""
    path = pairs_file(folder)
    pairs = []
    names = set(ActionPair.__dataclass_fields__)
    for i, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{i + 1}: not JSON ({err})") from None
        unknown = sorted(set(row) - names)
        if unknown:
            raise ValueError(f"{path}:{i + 1}: unknown field(s) {unknown}; fields: "
                             f"{sorted(names)}")
        pair = ActionPair(**row)
        pair.check(f"{path}:{i + 1}")
        pairs.append(pair)
    return pairs


def label_arrays(pairs: Sequence[ActionPair]) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                        np.ndarray]:
    """``(obs, action_a, action_b, label)`` arrays of the labelled pairs."""
    done = [p for p in pairs if p.label is not None]
    if not done:
        return (np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32),
                np.zeros((0, 0), np.float32), np.zeros(0, np.float32))
    return (np.asarray([p.obs for p in done], np.float32),
            np.asarray([p.action_a for p in done], np.float32),
            np.asarray([p.action_b for p in done], np.float32),
            np.asarray([p.label for p in done], np.float32))


# ----------------------------------------------------------------------------- collection

def collect_action_pairs(policy: Any, env: Any, n_pairs: int, out: str | Path | None = None,
                         teacher: ActionOracle | None = None, horizon: int = 5,
                         every: int = 5, seed: int = 0,
                         clip_size: tuple[int, int] | None = None, camera: Any = None,
                         fps: float | None = None, max_episodes: int = 10_000,
                         meta: dict[str, Any] | None = None,
                         behaviour: Any = None,
                         query_score: Callable[[np.ndarray, np.ndarray], float] | None = None,
                         query_window: int = 500, temperature: float = 1.0) -> list[ActionPair]:
    """Roll out ``policy`` (its sampled actions) in ``env`` (a gymnasium env or an env config)
    and, at every ``every``-th step, store two candidates ``a_A, a_B ~ pi(. | s)`` with a
    ``horizon``-step lookahead after each (the candidate, then the policy's mean action;
    simulation only), labelled by ``teacher`` (``None``: unlabelled), until ``n_pairs``.
    Episode ``k`` resets with ``seed + k``. ``clip_size`` (``(height, width)``) also writes
    each lookahead as ``clips/<id>_a.mp4`` / ``_b.mp4`` (MuJoCo envs); with ``out`` the pairs
    are saved there (:func:`save_pairs`). Returns the pairs.

    ``behaviour``: what moves the rollout instead of ``policy``'s samples (SB3's ``predict``,
    called with ``deterministic=True``), typically the :class:`~rewardlearn.select.BestOfN`
    selector of an earlier round's reward. The candidates still come from ``policy``, but
    from the states the selector visits: a reward fitted on the policy's own states alone
    may never see the states its selector drives into (DAgger's argument, Ross et al. 2011).

    ``temperature``: the policy's Gaussian standard deviation is scaled by it, for the
    candidates and for the rollout's own sampled actions
    (:func:`~rewardlearn.select.modeling.sample_actions`). Label at the temperature the
    selector will sample at: its candidates then differ as the labelled ones did, at states
    like the ones it visits.
    """
    import gymnasium as gym

    from rewardlearn.env_factory import make_env
    from rewardlearn.select.modeling import check_temperature, sample_actions

    if n_pairs < 1 or every < 1 or horizon < 1:
        raise ValueError(f"n_pairs, every and horizon must be >= 1, got {n_pairs}, {every}, "
                         f"{horizon}")
    if teacher is not None and teacher.horizon != horizon:
        raise ValueError(f"the teacher's horizon ({teacher.horizon}) differs from the "
                         f"lookahead's ({horizon})")
    if clip_size is not None and out is None:
        raise ValueError("clips are written into out=<folder>: give one")
    actor = check_temperature(policy, temperature) or False  # before any env is made
    own = not isinstance(env, gym.Env)
    env = make_env(env) if own else env
    if not isinstance(env.observation_space, gym.spaces.Box):
        raise ValueError(f"action pairs store flat state observations; this env's are "
                         f"{env.observation_space}")
    look = Lookahead(env)
    fps = fps or float(env.metadata.get("render_fps") or 30)

    def mean_action(obs: Any) -> np.ndarray:
        return np.asarray(policy.predict(obs, deterministic=True)[0])

    def draw(obs: Any, n: int) -> np.ndarray:
        """``(n, A)`` sampled actions at one state (``predict`` at temperature 1)."""
        if temperature != 1.0:
            return sample_actions(policy, np.asarray(obs)[None], n, temperature, actor=actor)
        if n == 1:
            return np.asarray(policy.predict(obs, deterministic=False)[0])[None]
        return np.asarray(policy.predict(np.stack([obs] * n), deterministic=False)[0])

    pairs: list[ActionPair] = []
    scores: list[float] = []
    t0 = time.perf_counter()
    try:
        for k in range(max_episodes):
            obs, _ = env.reset(seed=seed + k)
            step, done = 0, False
            while not done and len(pairs) < n_pairs:
                cand = None
                if query_score is None:
                    take = step % every == 0
                else:
                    cand = draw(obs, 2)
                    scores.append(float(query_score(np.asarray(obs), cand)))
                    recent = scores[-query_window:]
                    take = (step % every == 0 if len(scores) <= 20 else
                            recent[-1] >= float(np.quantile(recent, 1.0 - 1.0 / every)))
                if take:
                    if cand is None:
                        cand = draw(obs, 2)
                    ro = look.rollouts(cand, horizon, mean_action if horizon > 1 else None,
                                       obs=obs, frames=clip_size, camera=camera)
                    pair = ActionPair(
                        id=f"p{len(pairs):06d}", obs=np.asarray(obs, float).tolist(),
                        action_a=np.asarray(cand[0], float).tolist(),
                        action_b=np.asarray(cand[1], float).tolist(),
                        episode_seed=seed + k, step=step, horizon=horizon)
                    if teacher is not None:
                        pair.label, pair.labeller = teacher.label(ro), teacher.name
                        ret = teacher.returns(ro)
                        pair.oracle = {"return_a": float(ret[0]), "return_b": float(ret[1])}
                    if clip_size is not None and ro.frames is not None and out is not None:
                        pair.clip_a, pair.clip_b = _write_clips(Path(out), pair.id, ro.frames,
                                                                fps)
                    pairs.append(pair)
                action = (draw(obs, 1)[0] if behaviour is None
                          else np.asarray(behaviour.predict(obs, deterministic=True)[0]))
                obs, _, terminated, truncated, _ = env.step(action)
                done = bool(terminated or truncated)
                step += 1
            if len(pairs) >= n_pairs:
                break
    finally:
        look.close()
        if own:
            env.close()
    if out is not None:
        info = {"n_pairs": len(pairs), "horizon": horizon, "every": every, "seed": seed,
                "teacher": None if teacher is None else {
                    "name": teacher.name, "gamma": teacher.gamma,
                    "equal_margin": teacher.equal_margin, "reward_key": teacher.reward_key},
                "wall_s": round(time.perf_counter() - t0, 2), "temperature": temperature,
                "behaviour": "policy samples" if behaviour is None else type(behaviour).__name__,
                "query": f"every {every} steps" if query_score is None else
                f"top 1/{every} of the last {query_window} query scores",
                **(meta or {})}
        save_pairs(out, pairs, info)
    return pairs


def disagreement_score(model: Any) -> Callable[[np.ndarray, np.ndarray], float]:
    """``query_score`` of :func:`collect_action_pairs` from a fitted action-preference
    reward: its ensemble's disagreement on the two candidates."""
    if not hasattr(model, "pair_disagreement"):
        raise ValueError(f"query=disagreement needs an action-preference reward (an ensemble "
                         f"over (s, a)); {type(model).__name__} has none")

    def score(obs: np.ndarray, cand: np.ndarray) -> float:
        return float(model.pair_disagreement(obs[None], cand[:1], cand[1:2])[0])

    return score


def _write_clips(folder: Path, pid: str, frames: np.ndarray, fps: float) -> tuple[str, str]:
    from rewardlearn.recording import write_video

    names = []
    for side, clip in zip("ab", frames[:2], strict=True):
        name = f"clips/{pid}_{side}.mp4"
        write_video(folder / name, list(clip), fps)
        names.append(name)
    return names[0], names[1]


__all__ = ["ActionOracle", "ActionPair", "collect_action_pairs", "disagreement_score",
           "label_arrays", "load_pairs", "pairs_file", "save_pairs"]

