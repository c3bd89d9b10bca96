"""Every Meta-World v3 task: scripted experts and stage labels derived from their demos.

Meta-World ships a scripted policy for each of its 50 v3 tasks
(``metaworld.policies.ENV_POLICY_MAP``) and every task's ``info`` carries
``near_object``, ``grasp_success`` and ``success``. :class:`MetaWorldStages` turns these
into the per-step stage signal that stage-aware rewards (``reward=drs``) and the demo
tools read, with **one rule for every task**:

* the ladder is ``reach`` (gripper away from the object) -> ``near_object`` (gripper at
  the object) -> ``grasped`` (at the object and ``grasp_success``); success is the end of
  the ladder (DrS's stage ``num_stages``);
* a state's raw level is the highest rung it satisfies; stages never go back within an
  episode (the running maximum);
* which rungs a task keeps is read off its scripted expert's demos
  (:func:`task_stages`): a signal that has the same value on every demo state (on
  ``drawer-close-v3`` ``grasp_success`` is 1.0 by definition; on the button tasks it is
  ``gripper open``) says nothing and is not used, and a rung is kept only when most demo
  episodes pass through it (:data:`MIN_SHARE`, half of them). A rung no demo reaches (on
  ``hammer-v3`` the gripper starts at the handle, so no state is in ``reach``: its stages
  are ``near_object`` -> ``grasped``) would be trained with no positives; a rung a few demos
  touch by chance (``push-v3``'s expert pushes the puck and registers ``grasp_success`` in
  4 of 20 episodes) would make a stage the expert does not go through, whose success
  classifier has almost no positives from the demos and which most successful episodes
  skip. Both are dropped: their states count as the kept stage below.

So ``pick-place-v3`` keeps ``(reach, near_object, grasped)``, ``push-v3`` and
``coffee-push-v3`` ``(reach, near_object)`` and ``reach-v3`` a single stage. The derivation
runs the expert on reset seeds 0-19 once per task and machine (a few seconds) and is cached
in ``$XDG_CACHE_HOME/rewardlearn/`` (``~/.cache``); pass ``stages=[...]`` to fix a ladder by
hand.

A seeded reset gives the same task layout whatever ran before and however the env was
built: ``Meta-World/MT1`` ignores ``reset(seed=...)`` (its base env's ``reset`` drops the
seed, and the layout is one of 50 drawn when the env is built, picked by an RNG only
``seed()`` reaches), so :meth:`MetaWorldStages.reset` reseeds the base env and has it draw
the layout from that RNG the way MT1 draws its 50 (the task's own sampling, with its
rejection of invalid layouts); the unseeded resets after it follow from the seed as well.
Unseeded resets keep Meta-World's MT1 protocol (one of the env's 50 layouts). Needs the
``metaworld`` extra (imported lazily).

Example:
    >>> from rewardlearn_envs.metaworld_expert import level_of
    >>> level_of({"near_object": 1.0, "grasp_success": 0.0}, ("near_object", "grasp_success"))
    1
    >>> level_of({"near_object": 1.0, "grasp_success": 1.0}, ("near_object",))
    1
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

LADDER: tuple[str, ...] = ("reach", "near_object", "grasped")
"""Stage names by raw level: 0 away from the object, 1 at it, 2 at it and grasping."""

SIGNALS: tuple[str, ...] = ("near_object", "grasp_success")
"""The ``info`` signals that raise the level (rung 1 and rung 2)."""

DERIVE_SEEDS: tuple[int, ...] = tuple(range(20))
"""Expert episodes (reset seeds) the stage ladder of a task is derived from."""

MIN_SHARE = 0.5
"""A rung is kept when at least this share of the demo episodes reach it (running maximum)."""

LADDER_RULE = 2
"""Version of the derivation rule, part of the cache's name (1: any demo state; 2: a share)."""


def metaworld_tasks() -> list[str]:
    """The Meta-World v3 task names (MT50), in Meta-World's order."""
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    return list(ALL_V3_ENVIRONMENTS)


def check_task(task: str) -> str:
    """``task`` if it is a Meta-World v3 task, else ``ValueError`` listing the valid ones."""
    tasks = metaworld_tasks()
    if task not in tasks:
        import difflib

        close = difflib.get_close_matches(str(task), tasks, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ValueError(f"unknown Meta-World task {task!r}{hint}; valid tasks: "
                         f"{', '.join(sorted(tasks))}")
    return task


def metaworld_policy(task: str) -> Any:
    """A fresh scripted policy for ``task`` (``ValueError`` listing the valid tasks)."""
    from metaworld.policies import ENV_POLICY_MAP

    policy_class: Any = ENV_POLICY_MAP[check_task(task)]
    return policy_class()


def level_of(info: dict[str, Any], signals: Sequence[str]) -> int:
    """Raw level of one step's info under the used ``signals``: the highest rung met, each
    rung requiring the ones below it (``grasp_success`` counts only near the object)."""
    level = 0
    for rung, key in enumerate(SIGNALS, start=1):
        if key not in signals:
            continue
        if float(info.get(key, 0.0)) <= 0.5:
            break
        level = rung
    return level


@dataclass(frozen=True)
class StageLadder:
    """A task's stages as derived from its expert demos.

    Attributes:
        levels: the raw levels kept (indices into :data:`LADDER`), ascending.
        signals: the info signals used (a constant one is left out).
        expert_success: the expert's success rate over the derivation episodes.
    """

    levels: tuple[int, ...]
    signals: tuple[str, ...]
    expert_success: float
    always: tuple[str, ...] = ()
    """Unused signals that held on every demo state (the gripper starts at the object)."""

    @property
    def names(self) -> tuple[str, ...]:
        """Stage names; with ``near_object`` held throughout, the first stage is named after
        it (the expert never had to reach)."""
        first = "near_object" if "near_object" in self.always else LADDER[0]
        return tuple(first if k == 0 else LADDER[k] for k in self.levels)

    @property
    def has_grasp(self) -> bool:
        """Whether the expert passes into ``grasped`` from an earlier stage."""
        return 2 in self.levels and len(self.levels) > 1

    def stage(self, level: int) -> int:
        """Stage index of a raw level: the highest kept level at or below it (0 below all)."""
        idx = int(np.searchsorted(np.asarray(self.levels), level, side="right")) - 1
        return max(idx, 0)


def derive_ladder(episodes: Sequence[Sequence[dict[str, Any]]],
                  min_share: float = MIN_SHARE) -> StageLadder:
    """The stage ladder from demo episodes given as per-step infos.

    A signal equal on every state is unused; a level (as a running maximum) is kept when at
    least ``min_share`` of the episodes reach it, and when none does, the level most
    episodes reach. Infos without any of :data:`SIGNALS` (Meta-World's reset info is empty)
    are skipped.
    """
    if not 0.0 < min_share <= 1.0:
        raise ValueError(f"min_share must be in (0, 1], got {min_share}")
    episodes = [[i for i in ep if any(k in i for k in SIGNALS)] for ep in episodes]
    episodes = [ep for ep in episodes if ep]
    infos = [info for ep in episodes for info in ep]
    if not infos:
        raise ValueError("no demo states to derive stages from")
    values = {key: {float(i.get(key, 0.0)) > 0.5 for i in infos} for key in SIGNALS}
    signals = tuple(key for key in SIGNALS if len(values[key]) > 1)
    always = tuple(key for key in SIGNALS if values[key] == {True})
    reached: dict[int, int] = {}
    successes = 0
    for ep in episodes:
        level, seen = 0, set()
        for info in ep:
            level = max(level, level_of(info, signals))
            seen.add(level)
        for lv in seen:
            reached[lv] = reached.get(lv, 0) + 1
        successes += any(float(i.get("success", 0.0)) > 0.5 for i in ep)
    kept = [lv for lv, n in reached.items() if n >= min_share * len(episodes)]
    if not kept:
        kept = [max(reached, key=lambda lv: (reached[lv], -lv))]
    return StageLadder(tuple(sorted(kept)), signals, successes / len(episodes), always)


def _cache_file() -> Path:
    import metaworld

    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    version = getattr(metaworld, "__version__", "unknown")
    return root / "rewardlearn" / f"metaworld_stages-{version}-rule{LADDER_RULE}.json"


def _expert_episodes(task: str, seeds: Sequence[int], max_steps: int = 500
                     ) -> list[list[dict[str, Any]]]:
    """The expert's per-step infos on each reset seed, each episode ending at success."""
    env = gym.make("Meta-World/MT1", env_name=task, seed=int(seeds[0]))
    policy = metaworld_policy(task)
    episodes = []
    for seed in seeds:
        env.reset(seed=int(seed))
        obs, _ = env.reset()
        infos: list[dict[str, Any]] = []
        for _ in range(max_steps):
            obs, _, terminated, truncated, info = env.step(
                np.clip(policy.get_action(obs), -1.0, 1.0))
            infos.append({k: info.get(k) for k in (*SIGNALS, "success")})
            if terminated or truncated or float(info.get("success", 0.0)) > 0.5:
                break  # as collected demos: an episode ends at success
        episodes.append(infos)
    env.close()
    return episodes


@cache
def task_stages(task: str) -> StageLadder:
    """The stage ladder of a Meta-World task, derived from its expert on seeds 0-19 (cached
    on disk per Meta-World version; a cache that cannot be read or written is ignored)."""
    check_task(task)
    path = _cache_file()
    try:
        cached = json.loads(path.read_text()).get(task)
    except (OSError, ValueError):
        cached = None
    if isinstance(cached, dict):
        try:
            return StageLadder(tuple(cached["levels"]), tuple(cached["signals"]),
                               float(cached["expert_success"]), tuple(cached["always"]))
        except (KeyError, TypeError, ValueError):
            pass
    ladder = derive_ladder(_expert_episodes(task, DERIVE_SEEDS))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            table = json.loads(path.read_text())
        except (OSError, ValueError):
            table = {}
        table[task] = asdict(ladder)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(table, f, indent=1)
        os.replace(tmp, path)
    except OSError:
        pass
    return ladder


class MetaWorldExpert:
    """Meta-World's scripted policy for a task, with optional Gaussian action noise."""

    def __init__(self, task: str, noise: float = 0.0, seed: int | None = None) -> None:
        self.policy = metaworld_policy(task)
        self.noise = float(noise)
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: Any) -> np.ndarray:
        state = obs["state"] if isinstance(obs, dict) else obs
        action = np.asarray(self.policy.get_action(np.asarray(state, dtype=np.float64)),
                            dtype=np.float64)
        if self.noise > 0.0:
            action[:3] += self.rng.normal(0.0, self.noise, size=3)
        return np.clip(action, -1.0, 1.0).astype(np.float32)


def _ladder_from(task: str, stages: str | Sequence[str]) -> StageLadder:
    if isinstance(stages, str):
        if stages != "auto":
            raise ValueError(f"stages must be 'auto' or a list of {list(LADDER)}, "
                             f"got {stages!r}")
        return task_stages(task)
    names = list(stages)
    bad = [n for n in names if n not in LADDER]
    if bad or not names or len(set(names)) != len(names):
        raise ValueError(f"stages must be distinct names from {list(LADDER)}, got {names}")
    levels = tuple(sorted(LADDER.index(n) for n in names))
    return StageLadder(levels, SIGNALS, float("nan"))


class MetaWorldStages(gym.Wrapper):
    """Stage labels (and optionally frames in the observation) for any Meta-World task.

    Args:
        env: a Meta-World env (``Meta-World/MT1``), wrapped in ``FrameCapture`` when
            ``obs_mode="state_pixels"``.
        task: the Meta-World v3 task name (``drawer-open-v3``...).
        obs_mode: ``state`` or ``state_pixels`` (reads ``info["frame"]``).
        reward_type: ``dense`` (Meta-World's own shaped reward) or ``sparse`` (1 on a
            step where the task succeeds, else 0: the success signal alone).
        stages: ``auto`` (derived from the task's expert, :func:`task_stages`) or a list
            of names from :data:`LADDER`.

    ``info`` gains ``stage`` (index into the kept stages), ``subtask`` (its name),
    ``num_stages``, ``success`` (Meta-World's, this step), ``is_success`` (success reached
    at any step of the episode so far: Meta-World's own evaluation counts an episode that
    way), ``grasped``, ``dense_reward`` and ``sparse_reward`` (this step's success).
    """

    def __init__(self, env: gym.Env, task: str, obs_mode: str = "state",
                 reward_type: str = "dense", stages: str | Sequence[str] = "auto") -> None:
        super().__init__(env)
        if reward_type not in ("dense", "sparse"):
            raise ValueError(f"reward_type must be 'dense' or 'sparse', got {reward_type!r}")
        if obs_mode not in ("state", "state_pixels"):
            raise ValueError(f"obs_mode must be 'state' or 'state_pixels', got {obs_mode!r}")
        self.reward_type = reward_type
        self.task = check_task(task)
        self.ladder = _ladder_from(task, stages)
        self.SUBTASKS = self.ladder.names
        self.obs_mode = obs_mode
        self._level = 0
        self._succeeded = False
        state_space = env.observation_space
        if obs_mode == "state_pixels":
            _, info = env.reset(seed=0)
            if "frame" not in info:
                raise ValueError("obs_mode='state_pixels' needs a FrameCapture inside the wrapper")
            shape = info["frame"].shape
            self.observation_space = gym.spaces.Dict({
                "state": gym.spaces.Box(-np.inf, np.inf, state_space.shape, np.float64),
                "pixels": gym.spaces.Box(0, 255, shape, np.uint8)})
        else:
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, state_space.shape,
                                                    np.float64)

    def make_expert(self, noise: float = 0.0, seed: int | None = None) -> MetaWorldExpert:
        """The task's scripted expert (used by ``rewardlearn_envs.expert_for``)."""
        return MetaWorldExpert(self.task, noise=noise, seed=seed)

    def _obs(self, obs: Any, info: dict[str, Any]) -> Any:
        state = np.asarray(obs, dtype=np.float64)
        if self.obs_mode == "state_pixels":
            return {"state": state, "pixels": np.asarray(info.pop("frame"), dtype=np.uint8)}
        return state

    def _label(self, info: dict[str, Any], reward: float) -> dict[str, Any]:
        self._level = max(self._level, level_of(info, self.ladder.signals))
        stage = self.ladder.stage(self._level)
        success = float(info.get("success", 0.0))
        self._succeeded = self._succeeded or success > 0.5
        info.update(stage=stage, subtask=self.SUBTASKS[stage], num_stages=len(self.SUBTASKS),
                    success=success, is_success=self._succeeded,
                    grasped=float(info.get("grasp_success", 0.0)) > 0.5,
                    dense_reward=float(reward), sparse_reward=success)
        return info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[Any, dict[str, Any]]:
        if seed is None:
            obs, info = self.env.reset(options=options)
        else:
            obs, info = self._seeded_reset(int(seed), options)
        self._level = 0
        self._succeeded = False
        info = self._label(info, 0.0)
        return self._obs(obs, info), info

    def _seeded_reset(self, seed: int, options: dict[str, Any] | None
                      ) -> tuple[Any, dict[str, Any]]:
        """A reset whose layout is a function of ``seed`` alone (see the module docstring):
        the base env, reseeded, draws the layout as MT1 does when it builds its 50 (the
        task's own ``reset_model``, rejection sampling included), from its seeded RNG."""
        base: Any = self.env.unwrapped
        selector: Any = self.env
        while selector is not None and not hasattr(selector, "sample_tasks_on_reset"):
            selector = getattr(selector, "env", None)
        if not hasattr(base, "seeded_rand_vec") or selector is None:  # not MT1: plain route
            return self.env.reset(seed=seed, options=options)
        base.seed(seed)
        if selector.tasks:
            base.set_task(selector.tasks[0])  # the task's settings (observability...)
        previous = (selector.sample_tasks_on_reset, base.seeded_rand_vec)
        selector.sample_tasks_on_reset = False  # no task drawn over the one set here
        base._freeze_rand_vec, base.seeded_rand_vec = False, True
        try:
            return self.env.reset(options=options)
        finally:
            base._freeze_rand_vec = True  # the layout drawn stays until the next reset
            selector.sample_tasks_on_reset, base.seeded_rand_vec = previous

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = self._label(info, float(reward))
        if self.reward_type == "sparse":
            reward = info["sparse_reward"]
        return self._obs(obs, info), reward, terminated, truncated, info


__all__ = ["DERIVE_SEEDS", "LADDER", "LADDER_RULE", "MIN_SHARE", "SIGNALS", "MetaWorldExpert",
           "MetaWorldStages", "StageLadder", "check_task", "derive_ladder", "level_of",
           "metaworld_policy", "metaworld_tasks", "task_stages"]
