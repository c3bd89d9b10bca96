"""PickPlace: a fast, multi-stage MuJoCo manipulation task with ground-truth stage labels.

A Cartesian suction gripper (x/y/z slide joints driven by position servos, a MuJoCo
``adhesion`` actuator on the pad) must pick a cube off a table and put it down on a
target disc. The task has four ordered subtasks, ``reach -> grasp -> transport -> place``,
and every ``info`` carries the index of the one the agent is working on, so learned
progress/stage models can be checked against ground truth.

The model is tiny (one free body, three slide joints), so an env step costs under 100
microseconds: over 10,000 steps per second on one CPU core without rendering.
"""

from __future__ import annotations

import os
from importlib import resources
from typing import Any, ClassVar, Literal

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported (offscreen rendering)

import gymnasium as gym
import mujoco
from gymnasium import spaces

from rewardlearn.rendering import FastRenderer

ObsMode = Literal["state", "pixels", "state_pixels"]
RewardType = Literal["dense", "sparse"]

CUBE_HALF = 0.02
"""Half edge length of the cube (m); the cube rests with its centre at this height."""
ACTION_SCALE = 0.02
"""Largest end-effector displacement per step (m) for an action component of 1."""
MAX_LEAD = 0.03
"""How far the commanded position may run ahead of the pad (m), to bound servo wind-up."""
WORKSPACE_LOW = np.array([-0.25, -0.25, 0.0])
WORKSPACE_HIGH = np.array([0.25, 0.25, 0.3])
SPAWN_RANGE = 0.15
"""Cube and target xy are drawn uniformly from [-SPAWN_RANGE, SPAWN_RANGE]^2."""
MIN_SEPARATION = 0.12
"""Minimal xy distance between the cube and the target at reset (m)."""
TARGET_RADIUS = 0.04
"""The cube counts as on the target when its centre is within this xy distance (m)."""
NEAR_DIST = 0.03
"""Pad-to-cube-top distance (m) below which ``reach`` is done and ``grasp`` begins."""
LIFT_HEIGHT = 0.01
"""Cube bottom height above the table (m) from which a grasped cube counts as lifted."""
CARRY_HEIGHT = 0.08
"""Reference carrying height of the cube bottom (m), used by the dense reward."""
MAX_CUBE_HEIGHT = 0.26
"""Highest the bottom of a held cube gets (pad at the workspace ceiling, cube below it)."""
REST_HEIGHT = 0.005
"""A cube whose bottom is lower than this (m) and that barely moves rests on the table."""
REST_SPEED = 0.05
"""Largest cube speed (m/s) for it to count as resting."""

_STATE_FIELDS: tuple[tuple[str, int, float, float], ...] = (
    # name, size, low, high: bounds are generous physical limits (the state is clipped to them)
    ("gripper_pos", 3, -1.0, 1.0),
    ("gripper_vel", 3, -10.0, 10.0),
    ("command_offset", 3, -1.0, 1.0),
    ("suction", 1, 0.0, 1.0),
    ("pad_contact", 1, 0.0, 1.0),
    ("was_lifted", 1, 0.0, 1.0),
    ("cube_pos", 3, -1.0, 1.0),
    ("cube_quat", 4, -1.0, 1.0),
    ("cube_linvel", 3, -10.0, 10.0),
    ("cube_angvel", 3, -100.0, 100.0),
    ("target_pos", 3, -1.0, 1.0),
    ("cube_minus_gripper", 3, -2.0, 2.0),
    ("target_minus_cube", 3, -2.0, 2.0),
)


def _layout(fields: tuple[tuple[str, int, float, float], ...]) -> dict[str, slice]:
    """Slices of each named field in the flat state vector."""
    out: dict[str, slice] = {}
    start = 0
    for name, size, _, _ in fields:
        out[name] = slice(start, start + size)
        start += size
    return out


STATE_LAYOUT: dict[str, slice] = _layout(_STATE_FIELDS)
"""Where each quantity lives in the ``"state"`` observation (see :class:`PickPlaceEnv`)."""
STATE_DIM = sum(f[1] for f in _STATE_FIELDS)
STATE_LOW = np.concatenate([np.full(f[1], f[2]) for f in _STATE_FIELDS]).astype(np.float32)
STATE_HIGH = np.concatenate([np.full(f[1], f[3]) for f in _STATE_FIELDS]).astype(np.float32)


def state_progress(state: np.ndarray) -> np.ndarray:
    """The env's ``info["progress"]`` recomputed from ``"state"`` observations, batched.

    ``state`` is ``(D,)`` or ``(B, D)`` laid out as :data:`STATE_LAYOUT`; returns
    ``(B,)`` floats in [0, 1], equal to the ``info["progress"]`` the env reported with
    each observation (the stage rules of :class:`PickPlaceEnv`). An oracle potential
    for shaping experiments: ``shaping=function
    shaping.potential.function=rewardlearn_envs.pick_place:state_progress``.
    """
    s = np.atleast_2d(np.asarray(state, dtype=np.float64))
    lay = STATE_LAYOUT
    grip, cube = s[:, lay["gripper_pos"]], s[:, lay["cube_pos"]]
    target = s[:, lay["target_pos"]]
    suction = s[:, lay["suction"]][:, 0] > 0.5
    contact = s[:, lay["pad_contact"]][:, 0] > 0.5
    was_lifted = s[:, lay["was_lifted"]][:, 0] > 0.5
    cube_speed = np.linalg.norm(s[:, lay["cube_linvel"]], axis=1)
    d_reach = np.linalg.norm(grip - cube - (0.0, 0.0, CUBE_HALF), axis=1)
    d_xy = np.linalg.norm(cube[:, :2] - target[:, :2], axis=1)
    height = cube[:, 2] - CUBE_HALF
    grasped = suction & contact
    near = d_reach < NEAR_DIST
    lifted = height > LIFT_HEIGHT
    in_zone = d_xy < TARGET_RADIUS
    resting = (height < REST_HEIGHT) & (cube_speed < REST_SPEED)
    success = was_lifted & in_zone & resting & ~suction
    h = np.maximum(height, 0.0)
    place = in_zone & was_lifted & (grasped | near | ~contact) & ~success
    carry = ~place & ~success & grasped & lifted
    grasp = ~place & ~success & ~carry & (near | grasped)
    p_place = 0.6 * (1.0 - np.minimum(h / MAX_CUBE_HEIGHT, 1.0)) + 0.4 * (
        1.0 - np.tanh(10.0 * d_xy))
    p_carry = 0.2 * np.minimum(h / CARRY_HEIGHT, 1.0) + 0.8 * (1.0 - np.tanh(5.0 * d_xy))
    p_grasp = 0.5 * (1.0 - np.minimum(d_reach / NEAR_DIST, 1.0)) + grasped * (
        0.3 + 0.2 * np.minimum(h / LIFT_HEIGHT, 1.0))
    p_reach = 1.0 - np.tanh(5.0 * d_reach)
    stage = np.select([place, carry, grasp], [3, 2, 1], 0)
    p = np.select([place, carry, grasp], [p_place, p_carry, p_grasp], p_reach)
    progress = (stage + np.clip(p, 0.0, 0.99)) / 4.0
    return np.where(success, 1.0, progress)


def _model_path() -> str:
    return str(resources.files("rewardlearn_envs").joinpath("assets", "pick_place.xml"))


class PickPlaceEnv(gym.Env[Any, np.ndarray]):
    """Pick a cube and place it on a target disc with a Cartesian suction gripper.

    **Action** ``Box(-1, 1, (4,), float32)``: ``a[:3]`` moves the commanded pad position by
    up to :data:`ACTION_SCALE` (2 cm) per step along world x/y/z (position servos track it;
    the command stays within :data:`MAX_LEAD` of the pad); ``a[3] > 0`` turns suction on.
    One step is ``frame_skip`` (10) physics steps of 4 ms = 40 ms.

    **Observation** (``obs_mode``): ``"state"`` is a float32 vector of length
    :data:`STATE_DIM` laid out as :data:`STATE_LAYOUT` (gripper pos/vel, command offset,
    suction on, pad-cube contact, was-lifted flag, cube pos/quat/lin-vel/ang-vel, target
    pos, cube - gripper, target - cube); ``"pixels"`` is a ``(height, width, 3)`` uint8
    image from ``camera``; ``"state_pixels"`` is a dict with both.

    **Stages** (:attr:`SUBTASKS`), computed from the physical state each step:

    0. ``reach``: the pad is farther than :data:`NEAR_DIST` from the cube's top face.
    1. ``grasp``: the pad is near the cube (or holds it) but has not lifted it.
    2. ``transport``: the cube is held by suction and lifted more than :data:`LIFT_HEIGHT`.
    3. ``place``: the held cube is above the target disc, or the lifted cube was let go
       within the disc's radius (falling onto it or resting there).

    Success (``terminated=True``): the cube, which has been carried during the episode,
    rests on the table within :data:`TARGET_RADIUS` of the target centre with suction off.
    A dropped cube sends the stage back down, so labels reflect the state, not history
    (apart from the was-lifted flag, which is part of the observation).

    **Rewards**: ``progress = (stage + p) / 4`` with ``p`` in [0, 0.99] the within-stage
    progress (reach distance; nearness + grasp + lift; carry height + distance to target;
    centring + lowering from any height), and 1 at success. ``"dense"`` (default) returns
    ``progress - 1`` in [-1, 0]: later stages always pay more, and as every non-final
    step is negative, finishing sooner is always better (no incentive to stall before the
    terminating success). ``"sparse"`` returns 1 on the success step, else 0. Both values
    and ``progress`` are always in ``info``.

    **Info** (at reset and every step): ``stage`` (int), ``subtask`` (its name),
    ``num_stages``, ``is_success`` (bool), ``success`` (0./1.), ``progress``,
    ``dense_reward``, ``sparse_reward``, ``grasped`` (bool). The env never truncates:
    the registered ``rewardlearn/PickPlace-v0`` has a 150-step ``TimeLimit``.

    Example:
        >>> import gymnasium as gym
        >>> import rewardlearn_envs  # registers rewardlearn/PickPlace-v0
        >>> from rewardlearn_envs import PickPlaceExpert
        >>> env = gym.make("rewardlearn/PickPlace-v0")
        >>> obs, info = env.reset(seed=0)
        >>> expert = PickPlaceExpert(env)
        >>> stages = [info["stage"]]
        >>> terminated = truncated = False
        >>> while not (terminated or truncated):
        ...     obs, reward, terminated, truncated, info = env.step(expert(obs))
        ...     stages.append(info["stage"])
        >>> info["is_success"], sorted(set(stages))
        (True, [0, 1, 2, 3])
        >>> env.close()
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 25}
    SUBTASKS: ClassVar[tuple[str, ...]] = ("reach", "grasp", "transport", "place")

    def __init__(
        self,
        reward_type: RewardType = "dense",
        obs_mode: ObsMode = "state",
        width: int = 84,
        height: int = 84,
        camera: str = "front",
        render_mode: str | None = None,
        render_width: int = 256,
        render_height: int = 256,
        render_camera: str | None = None,
        frame_skip: int = 10,
    ) -> None:
        if reward_type not in ("dense", "sparse"):
            raise ValueError(f"reward_type must be 'dense' or 'sparse', got {reward_type!r}")
        if obs_mode not in ("state", "pixels", "state_pixels"):
            raise ValueError(
                f"obs_mode must be 'state', 'pixels' or 'state_pixels', got {obs_mode!r}"
            )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be None or one of {self.metadata['render_modes']}, "
                f"got {render_mode!r}"
            )
        self.reward_type: RewardType = reward_type
        self.obs_mode: ObsMode = obs_mode
        self.width = int(width)
        self.height = int(height)
        self.camera = camera
        self.render_mode = render_mode
        self.render_width = int(render_width)
        self.render_height = int(render_height)
        self.render_camera = render_camera if render_camera is not None else camera
        self.frame_skip = int(frame_skip)

        self.model: mujoco.MjModel = mujoco.MjModel.from_xml_path(_model_path())
        self.data: mujoco.MjData = mujoco.MjData(self.model)
        self.num_stages = len(self.SUBTASKS)
        self.dt = float(self.model.opt.timestep) * self.frame_skip
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self.dt)}

        m = self.model
        self._grip_qadr = int(m.jnt_qposadr[m.joint("grip_x").id])
        self._grip_vadr = int(m.jnt_dofadr[m.joint("grip_x").id])
        self._cube_qadr = int(m.jnt_qposadr[m.joint("cube").id])
        self._cube_vadr = int(m.jnt_dofadr[m.joint("cube").id])
        self._pad_geom = int(m.geom("pad").id)
        self._cube_geom = int(m.geom("cube").id)
        self._target_site = int(m.site("target").id)
        self._suction_act = int(m.actuator("suction").id)

        self.action_space = spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        state_space = spaces.Box(STATE_LOW, STATE_HIGH, dtype=np.float32)
        pixel_space = spaces.Box(0, 255, shape=(self.height, self.width, 3), dtype=np.uint8)
        self.observation_space: spaces.Space[Any]
        if obs_mode == "state":
            self.observation_space = state_space
        elif obs_mode == "pixels":
            self.observation_space = pixel_space
        else:
            self.observation_space = spaces.Dict({"state": state_space, "pixels": pixel_space})

        self._obs_renderer: FastRenderer | None = None
        self._render_renderer: FastRenderer | None = None
        self._target_pos = np.zeros(3)
        self._command = np.zeros(3)
        self._was_lifted = False
        self._contact = False

    # ------------------------------------------------------------------ state access
    @property
    def gripper_pos(self) -> np.ndarray:
        """Position of the pad underside (world frame, m)."""
        return self.data.qpos[self._grip_qadr : self._grip_qadr + 3].copy()

    @property
    def command_pos(self) -> np.ndarray:
        """Pad position the servos are currently commanded to reach."""
        return self._command.copy()

    @property
    def cube_pos(self) -> np.ndarray:
        """Cube centre (world frame, m)."""
        return self.data.qpos[self._cube_qadr : self._cube_qadr + 3].copy()

    @property
    def target_pos(self) -> np.ndarray:
        """Centre of the target disc on the table."""
        return self._target_pos.copy()

    @property
    def suction_on(self) -> bool:
        """Whether the suction (adhesion) actuator is active."""
        return bool(self.data.ctrl[self._suction_act] > 0.5)

    @property
    def pad_contact(self) -> bool:
        """Whether the pad touches the cube (within the pad's 4 mm adhesion margin)."""
        d = self.data
        if d.ncon == 0:
            return False
        g = d.contact.geom[: d.ncon]
        pad, cube = self._pad_geom, self._cube_geom
        pairs = ((g[:, 0] == pad) & (g[:, 1] == cube)) | ((g[:, 0] == cube) & (g[:, 1] == pad))
        return bool(pairs.any())

    @property
    def grasped(self) -> bool:
        """Suction is on and the pad touches the cube, so adhesion holds it."""
        return self.suction_on and self.pad_contact

    # ------------------------------------------------------------------ gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Randomise gripper, cube (xy, yaw) and target (xy) from ``self.np_random``.

        ``options`` may fix ``cube_xy`` and/or ``target_xy`` (2-vectors) for scripted tests.
        """
        super().reset(seed=seed)
        options = options or {}
        rng = self.np_random
        mujoco.mj_resetData(self.model, self.data)

        cube_xy = np.asarray(
            options.get("cube_xy", rng.uniform(-SPAWN_RANGE, SPAWN_RANGE, size=2)), dtype=float
        )
        if "target_xy" in options:
            target_xy = np.asarray(options["target_xy"], dtype=float)
        else:
            target_xy = rng.uniform(-SPAWN_RANGE, SPAWN_RANGE, size=2)
            while np.linalg.norm(target_xy - cube_xy) < MIN_SEPARATION:
                target_xy = rng.uniform(-SPAWN_RANGE, SPAWN_RANGE, size=2)
        yaw = rng.uniform(-np.pi / 4, np.pi / 4)
        grip = np.array([*rng.uniform(-0.1, 0.1, size=2), rng.uniform(0.12, 0.18)])

        qpos = self.data.qpos
        qpos[self._cube_qadr : self._cube_qadr + 3] = (*cube_xy, CUBE_HALF)
        qpos[self._cube_qadr + 3 : self._cube_qadr + 7] = (np.cos(yaw / 2), 0, 0, np.sin(yaw / 2))
        qpos[self._grip_qadr : self._grip_qadr + 3] = grip
        self._target_pos = np.array([*target_xy, 0.0])
        self.model.site_pos[self._target_site, :2] = target_xy
        self._command = grip.copy()
        self.data.ctrl[:3] = grip
        self.data.ctrl[self._suction_act] = 0.0
        self._was_lifted = False
        mujoco.mj_forward(self.model, self.data)

        info = self._evaluate()
        return self._get_obs(), self._info(info)

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Move the commanded pad position, set suction, simulate ``frame_skip`` steps."""
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(4), -1.0, 1.0)
        pos = self.data.qpos[self._grip_qadr : self._grip_qadr + 3]
        command = np.clip(self._command + ACTION_SCALE * a[:3], pos - MAX_LEAD, pos + MAX_LEAD)
        self._command = np.clip(command, WORKSPACE_LOW, WORKSPACE_HIGH)
        self.data.ctrl[:3] = self._command
        self.data.ctrl[self._suction_act] = 1.0 if a[3] > 0.0 else 0.0
        mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)

        ev = self._evaluate()
        info = self._info(ev)
        reward = info["dense_reward"] if self.reward_type == "dense" else info["sparse_reward"]
        return self._get_obs(), float(reward), bool(ev["success"]), False, info

    def render(self) -> np.ndarray | None:
        """RGB frame ``(render_height, render_width, 3)`` for ``render_mode="rgb_array"``."""
        if self.render_mode != "rgb_array":
            return None
        if self._render_renderer is None:
            self._render_renderer = FastRenderer(
                self.model, self.data, self.render_width, self.render_height, self.render_camera
            )
        return self._render_renderer.render()

    def close(self) -> None:
        """Free the offscreen renderers (safe to call more than once)."""
        for renderer in (self._obs_renderer, self._render_renderer):
            if renderer is not None:
                renderer.close()
        self._obs_renderer = None
        self._render_renderer = None

    # ------------------------------------------------------------------ internals
    def _evaluate(self) -> dict[str, Any]:
        """Stage, success and within-stage progress from the current physical state."""
        d = self.data
        grip = d.qpos[self._grip_qadr : self._grip_qadr + 3]
        cube = d.qpos[self._cube_qadr : self._cube_qadr + 3]
        cube_speed = float(np.linalg.norm(d.qvel[self._cube_vadr : self._cube_vadr + 3]))
        d_reach = float(np.linalg.norm(grip - cube - (0.0, 0.0, CUBE_HALF)))
        d_xy = float(np.linalg.norm(cube[:2] - self._target_pos[:2]))
        height = float(cube[2] - CUBE_HALF)
        contact = self.pad_contact
        self._contact = contact
        suction = self.suction_on
        grasped = suction and contact
        near = d_reach < NEAR_DIST
        lifted = height > LIFT_HEIGHT
        if grasped and lifted:
            self._was_lifted = True
        in_zone = d_xy < TARGET_RADIUS
        resting = height < REST_HEIGHT and cube_speed < REST_SPEED
        success = self._was_lifted and in_zone and resting and not suction

        carry = min(max(height, 0.0) / CARRY_HEIGHT, 1.0)
        if success:
            stage, p = self.num_stages - 1, 1.0
        elif in_zone and self._was_lifted and (grasped or near or not contact):
            # held over the target, or let go there (falling onto or resting on the disc):
            # dropping the cube onto the target is a valid way to place it
            low = 1.0 - min(max(height, 0.0) / MAX_CUBE_HEIGHT, 1.0)  # every cm down counts
            stage, p = 3, 0.6 * low + 0.4 * (1.0 - np.tanh(10.0 * d_xy))
        elif grasped and lifted:
            stage, p = 2, 0.2 * carry + 0.8 * (1.0 - np.tanh(5.0 * d_xy))
        elif near or grasped:
            lift = min(max(height, 0.0) / LIFT_HEIGHT, 1.0)
            p = 0.5 * (1.0 - min(d_reach / NEAR_DIST, 1.0)) + grasped * (0.3 + 0.2 * lift)
            stage = 1
        else:
            stage, p = 0, 1.0 - np.tanh(5.0 * d_reach)
        if not success:
            p = min(max(float(p), 0.0), 0.99)
        progress = (stage + p) / self.num_stages
        return {
            "stage": stage,
            "success": success,
            "progress": float(progress),
            "grasped": grasped,
        }

    def _info(self, ev: dict[str, Any]) -> dict[str, Any]:
        success = bool(ev["success"])
        stage = int(ev["stage"])
        return {
            "stage": stage,
            "subtask": self.SUBTASKS[stage],
            "num_stages": self.num_stages,
            "is_success": success,
            "success": float(success),
            "progress": ev["progress"],
            "dense_reward": ev["progress"] - 1.0,
            "sparse_reward": float(success),
            "grasped": bool(ev["grasped"]),
        }

    def _state(self) -> np.ndarray:
        d = self.data
        gq, gv = self._grip_qadr, self._grip_vadr
        cq, cv = self._cube_qadr, self._cube_vadr
        grip = d.qpos[gq : gq + 3]
        cube = d.qpos[cq : cq + 3]
        state = np.concatenate(
            (
                grip,
                d.qvel[gv : gv + 3],
                self._command - grip,
                (float(self.suction_on), float(self._contact), float(self._was_lifted)),
                cube,
                d.qpos[cq + 3 : cq + 7],
                d.qvel[cv : cv + 6],
                self._target_pos,
                cube - grip,
                self._target_pos - cube,
            )
        )
        return np.clip(state, STATE_LOW, STATE_HIGH).astype(np.float32)

    def _pixels(self) -> np.ndarray:
        if self._obs_renderer is None:
            self._obs_renderer = FastRenderer(
                self.model, self.data, self.width, self.height, self.camera
            )
        return self._obs_renderer.render()

    def _get_obs(self) -> Any:
        if self.obs_mode == "state":
            return self._state()
        if self.obs_mode == "pixels":
            return self._pixels()
        return {"state": self._state(), "pixels": self._pixels()}
