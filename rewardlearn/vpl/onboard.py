"""A new user of a trained ``reward=vpl`` run: candidate pairs from the run's env, asked one
at a time (each chosen after the answers so far, :func:`~rewardlearn.vpl.active.next_query`),
and the user's ``z`` saved for the run's agent to act on.

The candidates are segments of the run's own agent (``z`` from the prior at each reset) and of
uniform random actions, so they cover what the agent does and what it does not. The answers
come from a person on the review page (:class:`HumanAnswers`, one rendered pair at a time) or
from a synthetic user of ``teacher=population`` (:class:`PopulationAnswers`). The result,
``<run>/users/<name>.json``, holds ``z`` (the posterior mean) with the pairs asked, the
answers and each pick's expected information; ``rewardlearn-replay <run> user=<name>`` acts
with that ``z``. A user file is never overwritten.

Example (``rewardlearn-vpl-user`` wraps it)::

    rewardlearn-vpl-user runs/<vpl run> name=alice                 # a person, on the review page
    rewardlearn-vpl-user runs/<vpl run> name=sim0 teacher=population user=0
    rewardlearn-replay runs/<vpl run> user=alice                    # the agent, acting for alice
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from rewardlearn.preference.buffer import Segments
from rewardlearn.vpl.active import QueryResult
from rewardlearn.vpl.latent import WRAPPER_TARGET, latent_wrapper
from rewardlearn.vpl.reward import VPLReward

USERS_DIR = "users"
"""Where a run's users live: ``<run>/users/<name>.json``."""
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class Candidates:
    """``C`` candidate pairs: step features ``x1``, ``x2`` ``(C, L, [s, a, s'])`` (no ``z``)
    and, for rendering clips, the simulator states of each step and after the last one."""

    x1: np.ndarray
    x2: np.ndarray
    states1: np.ndarray | None = None
    states2: np.ndarray | None = None
    next1: np.ndarray | None = None
    next2: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x1)

    def segments(self, i: int) -> tuple[Segments, Segments]:
        """Pair ``i`` as two one-segment :class:`Segments` (what a teacher asks about)."""
        out = []
        for x, st, nx in ((self.x1, self.states1, self.next1),
                          (self.x2, self.states2, self.next2)):
            length = x.shape[1]
            out.append(Segments(
                x[i:i + 1], np.zeros((1, length), np.float32), np.zeros((1, length), bool),
                np.zeros(1, np.int64), np.zeros(1, np.int64),
                None if st is None else st[i:i + 1], None if nx is None else nx[i:i + 1]))
        return out[0], out[1]


def user_env(env: DictConfig, latent_dim: int, z: np.ndarray | list[float] | None = None
             ) -> DictConfig:
    """``env`` with exactly one ``z`` wrapper, outermost: ``z`` fixed, or from the prior at
    each reset (``None``)."""
    plain = OmegaConf.to_container(env, resolve=True)
    assert isinstance(plain, dict)
    kept = [w for w in plain.get("wrappers") or []
            if not (isinstance(w, dict) and w.get("_target_") == WRAPPER_TARGET)]
    plain["wrappers"] = [*kept, latent_wrapper(latent_dim, None if z is None else
                                               [float(v) for v in np.ravel(z)])]
    out = OmegaConf.create(plain)
    assert isinstance(out, DictConfig)
    return out


def candidate_pairs(reward: VPLReward, env: DictConfig, act: Callable[[np.ndarray], Any] | None,
                    n_pairs: int, seed: int = 0, sim_state: bool = False,
                    max_episodes: int = 1000) -> Candidates:
    """``n_pairs`` random pairs of non-overlapping ``segment_length``-step windows, half of
    the segments from ``act`` (the run's agent; observation ``[s, z]`` -> action) and half
    from uniform random actions (all of them when ``act`` is None), ``z`` from the prior.

    Episode ``k`` of each source is seeded ``seed + k``, and torch's generator (a stochastic
    agent's sampling) is seeded with ``seed`` for the call and restored after, so the same
    seed draws the same candidates (what resuming a stopped session relies on);
    ``sim_state`` keeps the simulator states for rendering clips.
    """
    import torch

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return _candidate_pairs(reward, env, act, n_pairs, seed, sim_state, max_episodes)


def run_candidates(reward: VPLReward, env: DictConfig, agent: str | Path, n_pairs: int,
                   seed: int = 0, sim_state: bool = False) -> Candidates:
    """:func:`candidate_pairs` from a saved agent (``agent.zip``), loaded under the same seed:
    an agent whose exploration noise is drawn when it loads (gSDE) acts the same each time."""
    import torch

    from rewardlearn.agents import agent_policy

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        act = agent_policy(str(agent))
        return candidate_pairs(reward, env, act, n_pairs, seed, sim_state)


def _candidate_pairs(reward: VPLReward, env: DictConfig,
                     act: Callable[[np.ndarray], Any] | None, n_pairs: int, seed: int,
                     sim_state: bool, max_episodes: int) -> Candidates:
    from rewardlearn.env_factory import env_config, make_env
    from rewardlearn.wrappers.state import STATE_KEY

    if n_pairs < 1:
        raise ValueError(f"candidates must be >= 1, got {n_pairs}")
    length = reward.cfg.segment_length
    cfg = env_config(user_env(env, reward.cfg.latent_dim))
    sources: list[Callable[[np.ndarray], Any] | None] = [None] if act is None else [act, None]
    need = 2 * n_pairs
    feats: list[np.ndarray] = []
    states: list[np.ndarray] = []
    after: list[np.ndarray] = []
    for s_i, source in enumerate(sources):
        env_ = make_env(cfg, seed=seed + 10_000 * s_i, sim_state=sim_state)
        quota = need // len(sources) + (need % len(sources) if s_i == 0 else 0)
        got = 0
        try:
            for ep in range(max_episodes):
                if got >= quota:
                    break
                obs, info = env_.reset(seed=seed + 10_000 * s_i + ep)
                rows: list[np.ndarray] = []
                sims: list[Any] = [info.get(STATE_KEY)]
                done = False
                while not done:
                    a = env_.action_space.sample() if source is None else source(obs)
                    nxt, _, terminated, truncated, info = env_.step(a)
                    rows.append(reward.step_features(obs[None], np.asarray(a)[None],
                                                     nxt[None])[0])
                    sims.append(info.get(STATE_KEY))
                    obs, done = nxt, bool(terminated or truncated)
                steps = np.asarray(rows, np.float32)
                for start in range(0, len(steps) - length + 1, length):
                    if got >= quota:
                        break
                    feats.append(steps[start:start + length])
                    if sim_state:
                        states.append(np.stack(sims[start:start + length]))
                        after.append(np.asarray(sims[start + length]))
                    got += 1
        finally:
            env_.close()
        if got < quota:
            raise ValueError(f"{max_episodes} episodes gave {got} segments of {length} steps, "
                             f"{quota} needed: lower candidates= or reward.model.segment_length")
    order = np.random.default_rng(seed).permutation(need)
    a_idx, b_idx = order[:n_pairs], order[n_pairs:]
    x = np.stack(feats)
    if not sim_state:
        return Candidates(x[a_idx], x[b_idx])
    st, nx = np.stack(states), np.stack(after)
    return Candidates(x[a_idx], x[b_idx], st[a_idx], st[b_idx], nx[a_idx], nx[b_idx])


class PopulationAnswers:
    """A synthetic user of ``teacher=population`` answering candidate pairs (user ``user``)."""

    def __init__(self, teacher: Any, user: int, reward: VPLReward, cands: Candidates) -> None:
        n = len(teacher.users)
        if not 0 <= user < n:
            raise ValueError(f"user must be in [0, {n - 1}] (the run's {n} users), got {user}")
        self.teacher, self.user, self.reward, self.cands = teacher, user, reward, cands

    def __call__(self, i: int) -> float:
        side = self.reward.split_side
        lab = self.teacher.label_user(self.user, side(self.cands.x1[i:i + 1]),
                                      side(self.cands.x2[i:i + 1]))
        return float(lab.labels[0])


class HumanAnswers:
    """A person on the review page: each pair is rendered and queued, and the answer waited
    for; a skip returns None (the pair is not counted).

    Resumable: answers already in the store for this user's queries (an earlier session that
    stopped before the user's file was written) are matched to the candidates and reused
    without asking again, and new clips are numbered after the old ones, so nothing answered
    is lost or overwritten. Candidates are the same when the command is run again with the
    same seed, and so are the picks while the answers are.
    """

    def __init__(self, teacher: Any, cands: Candidates, timeout_s: float | None = None,
                 poll_s: float = 0.5) -> None:
        if cands.states1 is None:
            raise ValueError("a person needs clips: collect the candidates with sim_state=True")
        self.teacher, self.cands = teacher, cands
        self.timeout_s, self.poll_s = timeout_s, poll_s
        self.annotators: list[str | None] = []
        self.known: dict[int, tuple[float | None, str]] = {}
        self.asked = len(list(teacher.query_dir.glob("r*_left.mp4")))
        self.queued: set[int] = set()  # candidates already queued (answered or not)
        if teacher.db_path.is_file():
            for q in teacher.store.queries(teacher.run):
                j = self._match(q.id)
                if j is not None:
                    self.queued.add(j)
            self._take(teacher.store.answers_after(0, teacher.run), want=None)

    def _match(self, query_id: int) -> int | None:
        """The candidate pair a stored query showed (by its step features), if any."""
        path = self.teacher.query_dir / f"q{query_id}.npz"
        if not path.is_file():
            return None
        data = np.load(path)
        x1, x2 = data["x1"], data["x2"]
        if x1.shape != self.cands.x1.shape[1:]:
            return None
        hit = np.flatnonzero((self.cands.x1 == x1).all((1, 2)) & (self.cands.x2 == x2).all((1, 2)))
        return int(hit[0]) if len(hit) else None

    def _take(self, answers: list[Any], want: int | None) -> bool:
        """Record ``answers``; True when one of them answers candidate ``want``."""
        from rewardlearn.review.store import LABEL_VALUES

        found = False
        for a in answers:
            self.teacher.last_seq = max(self.teacher.last_seq, a.seq)
            j = self._match(a.query_id)
            if j is None:
                continue
            self.known[j] = (LABEL_VALUES.get(a.label), a.annotator)
            found = found or j == want
        return found

    def __call__(self, i: int) -> float | None:
        if i not in self.known:
            if i not in self.queued:  # a query left unanswered by a stopped session is waited on
                first, second = self.cands.segments(i)
                self.teacher.ask(first, second, self.asked)
                self.asked += 1
                self.queued.add(i)
            while True:
                got = self.teacher.store.wait_answers(self.teacher.last_seq, self.teacher.run,
                                                      1, self.timeout_s, self.poll_s)
                if not got:
                    raise TimeoutError(
                        f"no answer within {self.timeout_s} s; the answers so far are kept in "
                        f"{self.teacher.db_path}: run the same command again to go on")
                if self._take(got, want=i):
                    break
        label, who = self.known[i]
        if label is not None:
            self.annotators.append(who)
        return label


def check_name(name: str) -> str:
    """A user name usable as a file name: letters, digits, ``_ . -``, up to 64 characters."""
    if not NAME_PATTERN.match(name):
        raise ValueError(f"name must be 1-64 letters, digits, '_', '.' or '-' (starting with a "
                         f"letter or digit), got {name!r}")
    return name


def user_file(run_dir: Path, name: str) -> Path:
    """``<run>/users/<name>.json``."""
    return Path(run_dir) / USERS_DIR / f"{check_name(name)}.json"


def save_user(path: Path, result: QueryResult, info: dict[str, Any]) -> Path:
    """Write the user's file; refused when it exists (two runs at once: one wins, the other
    gets the error), so a user's answers are never overwritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {**info, "z": [float(v) for v in result.mu],
            "logvar": [float(v) for v in result.logvar],
            "asked": [{"pair": int(i), "label": float(y), "information": float(g)}
                      for i, y, g in zip(result.indices, result.labels, result.gains,
                                         strict=True)]}
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise FileExistsError(f"{path} exists: that user is saved already; choose another "
                              "name=") from None
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    return path


def load_user(run_dir: Path, user: str) -> np.ndarray:
    """A user's ``z``: ``user`` is a name saved under ``<run>/users/`` or a path to its json."""
    path = Path(user)
    if path.suffix != ".json":
        path = user_file(run_dir, user)
    if not path.is_file():
        saved = sorted(p.stem for p in (Path(run_dir) / USERS_DIR).glob("*.json"))
        raise FileNotFoundError(f"no user file {path}; this run's users: "
                                f"{', '.join(saved) or 'none yet (rewardlearn-vpl-user)'}")
    data = json.loads(path.read_text())
    return np.asarray(data["z"], np.float32)


__all__ = ["USERS_DIR", "Candidates", "HumanAnswers", "PopulationAnswers", "candidate_pairs",
           "check_name", "load_user", "run_candidates", "save_user", "user_env",
           "user_file"]
