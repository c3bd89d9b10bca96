"""Reward evaluation of frame-reading rewards and pixel-observation envs.

A tiny random-weight open_clip model (as in ``test_vlm.py``) stands in for CLIP.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from rewardlearn.cli import evaluate as evaluate_cli
from rewardlearn.env_factory import make_env
from rewardlearn.metrics import Transitions, coverage_samples, epic_canonicalize
from rewardlearn.metrics import epic as epic_module
from rewardlearn.metrics import sampling as sampling_module
from rewardlearn.metrics.epic import RewardFn
from rewardlearn.metrics.reference import shaped
from rewardlearn.metrics.sampling import collect_rollouts
from rewardlearn.metrics.suite import evaluate_reward
from rewardlearn.rewards import load_reward_model, save_reward_model
from rewardlearn.rewards.base import FrameCache, RewardOutput, TransitionBatch
from rewardlearn.vlm.reward import VLMReward
from rewardlearn.wrappers.frames import EnvFrameSource

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _vlm(tiny_dir: str, space: gym.Space, action_space: gym.Space) -> VLMReward:
    return VLMReward(space, action_space, goal="a pendulum pointing up",
                     baseline="a pendulum", alpha=0.5, clip_model=tiny_dir, pretrained=None,
                     device="cpu", precision="fp32", threads=1, batch_size=64)


class Spy:
    """Records every batch a reward module's ``compute`` sees (monkeypatched on its class)."""

    def __init__(self) -> None:
        self.batches: list[TransitionBatch] = []
        self.rewards: list[np.ndarray] = []

    def wrap(self, compute: Any) -> Any:
        def spied(model: Any, batch: TransitionBatch) -> RewardOutput:
            out = compute(model, batch)
            self.batches.append(batch)
            self.rewards.append(np.asarray(out.rewards, np.float32))
            return out

        return spied


class PixelEnv(gym.Env):
    """A point on a line seen as a uint8 image; ``render`` shows it (and the last action).

    Image observation: a 6x6 ramp whose brightness encodes ``x``; reward ``-x^2``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = "rgb_array") -> None:
        self.observation_space = gym.spaces.Box(0, 255, (6, 6, 3), np.uint8)
        self.action_space = gym.spaces.Box(-1, 1, (1,), np.float32)
        self.render_mode = render_mode
        self.x = 0.0
        self.t = 0

    def _obs(self) -> np.ndarray:
        return image_of(self.x)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.x, self.t = float(self.np_random.uniform(-1, 1)), 0
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.x = float(np.clip(self.x + 0.3 * float(np.asarray(action).reshape(-1)[0]), -1, 1))
        self.t += 1
        terminated = abs(self.x) >= 1.0
        return self._obs(), -self.x**2, terminated, self.t >= 12, {}

    def render(self) -> np.ndarray:
        return frame_of(image_of(self.x))


def image_of(x: float) -> np.ndarray:
    level = round((x + 1.0) * 100.0)
    ramp = np.arange(6, dtype=np.int64)[None, :, None] + np.zeros((6, 1, 3), np.int64)
    return (level + ramp).astype(np.uint8)


def frame_of(image: np.ndarray) -> np.ndarray:
    """The 32x32 frame of a state, from its observation image (a 4x upsampled ramp)."""
    big = np.kron(image[..., 0], np.ones((5, 5), np.uint8))[:32, :32]
    big = np.pad(big, ((0, 32 - big.shape[0]), (0, 32 - big.shape[1])))
    return np.stack([big, 255 - big, big // 2], axis=-1).astype(np.uint8)


def brightness(obs: np.ndarray) -> np.ndarray:
    """A pixel-observation reward's ingredient: mean level of each image (x up to an affine map)."""
    return np.asarray(obs, np.float64).reshape(len(obs), -1).mean(1)


# -- (a) frames through the CLI -------------------------------------------------------------


def test_cli_evaluates_a_vlm_checkpoint_on_the_frames_of_the_rendered_states(
        tiny_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = make_env("pendulum", seed=0, render_mode="rgb_array")
    path = save_reward_model(_vlm(tiny_dir, env.observation_space, env.action_space),
                             tmp_path / "vlm.pt")
    spy = Spy()
    monkeypatch.setattr(VLMReward, "compute", spy.wrap(VLMReward.compute))
    out = tmp_path / "eval.json"
    result = evaluate_cli.main([f"reward=vlm:{path}", "env=pendulum", "metrics=epic,returns",
                                "n_steps=40", "n_eval=20", "n_samples=6",
                                "max_episode_steps=15", f"out={out}"])
    assert json.loads(out.read_text())["cost"]["vlm"] == result["cost"]["vlm"]
    assert 0.0 <= result["rewards"]["vlm"]["epic"] <= 1.0
    assert result["setup"]["frame_sizes"] == [[32, 32]]
    # rows queried: EPIC's N + 2 N M + M M, then every rollout transition for the returns
    assert result["cost"]["vlm"]["queries"] == 20 + 2 * 20 * 6 + 6 * 6 + 40
    assert sum(len(b) for b in spy.batches) == result["cost"]["vlm"]["queries"]
    assert all(b.frames is not None and b.frames.shape[1:] == (32, 32, 3) for b in spy.batches)

    # the same frame id always comes with the same frame
    seen: dict[int, np.ndarray] = {}
    for b in spy.batches:
        assert b.frames is not None and b.frame_ids is not None
        for fid, frame in zip(b.frame_ids.tolist(), b.frames, strict=True):
            np.testing.assert_array_equal(seen.setdefault(fid, frame), frame)
    assert result["cost"]["vlm"]["frames_encoded"] == len(seen)
    assert len(seen) <= result["setup"]["states"] == 40 + result["setup"]["episodes"]

    # the returns rows are the rollout's real transitions: re-render each next state
    # (Pendulum's frame shows the angle and the last torque) with the training frame source
    returns_batch = spy.batches[-1]
    assert len(returns_batch) == 40
    src = EnvFrameSource(env, 32, 32, None)
    base = env.unwrapped
    env.reset(seed=1)
    for row in range(40):
        nxt = np.asarray(returns_batch.next_obs)[row]
        base.state = np.array([np.arctan2(nxt[1], nxt[0]), nxt[2]])  # type: ignore[attr-defined]
        base.last_u = float(np.clip(returns_batch.acts[row][0], -2, 2))  # type: ignore[attr-defined]
        assert returns_batch.frames is not None
        np.testing.assert_array_equal(returns_batch.frames[row], src.render())
    env.close()

    # the evaluator's rewards are VLMReward's on those frames, called directly (no ids)
    monkeypatch.undo()
    direct = load_reward_model(path, env.observation_space, env.action_space)
    for b, got in zip(spy.batches[::25], spy.rewards[::25], strict=True):
        assert b.frames is not None
        plain = TransitionBatch.from_arrays(b.obs, b.acts, b.next_obs, frames=np.array(b.frames))
        np.testing.assert_allclose(direct(plain), got, rtol=1e-5, atol=1e-6)


# -- (b) EPIC invariances and (c) the frame cache -------------------------------------------


def test_epic_of_a_frame_reward_is_zero_to_its_shaping_and_one_to_its_negation(
        tiny_dir: str) -> None:
    env = make_env("pendulum", seed=0, render_mode="rgb_array")
    vlm = _vlm(tiny_dir, env.observation_space, env.action_space)
    gamma = 0.9

    def phi(obs: np.ndarray) -> np.ndarray:
        o = np.asarray(obs, np.float64)
        return 3.0 * o[:, 0] - o[:, 2] ** 2

    rewards: dict[str, RewardFn] = {
        "same": vlm, "shaped": shaped(vlm, phi, gamma, scale=2.5, shift=-1.0),
        "negated": shaped(vlm, lambda o: np.zeros(len(o)), gamma, scale=-1.0)}
    result = evaluate_reward(rewards, env, "Pendulum-v1", reference=vlm,
                                          gamma=gamma, n_steps=60, n_eval=40, n_samples=12,
                                          seed=3, max_episode_steps=20,
                                          metrics=("epic", "starc"))
    env.close()
    r = result["rewards"]
    assert r["same"]["epic"] < 1e-3 and r["shaped"]["epic"] < 1e-3
    assert r["shaped"]["starc"] < 1e-3
    assert r["negated"]["epic"] > 1 - 1e-3 and r["negated"]["starc"] > 1 - 1e-3


def test_cache_encodes_each_distinct_frame_once_and_changes_no_reward(
        tiny_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = make_env("pendulum", seed=0, render_mode="rgb_array")
    vlm = _vlm(tiny_dir, env.observation_space, env.action_space)
    spy = Spy()
    monkeypatch.setattr(VLMReward, "compute", spy.wrap(VLMReward.compute))
    before = vlm.scorer.frames_scored
    result = evaluate_reward({"vlm": vlm}, env, "Pendulum-v1",
                                          reference=lambda b: np.asarray(b.acts)[:, 0],
                                          n_steps=80, n_eval=30, n_samples=10, seed=1,
                                          max_episode_steps=25, n_pairs=10, segment_length=5,
                                          metrics=("epic", "pref", "returns"))
    monkeypatch.undo()
    encoded = vlm.scorer.frames_scored - before
    distinct = len(np.unique(np.concatenate([b.frame_ids for b in spy.batches
                                             if b.frame_ids is not None])))
    queries = result["cost"]["vlm"]["queries"]
    assert encoded == distinct == result["cost"]["vlm"]["frames_encoded"]  # once per frame
    assert queries == 30 + 2 * 30 * 10 + 10 * 10 + 2 * 10 * 5 + 80
    assert queries > 10 * encoded
    assert len(vlm.frame_cache) == 0  # cleared after the evaluation

    # the same canonicalisation without ids (every row encoded again) gives the same values
    ro = collect_rollouts(env, 50, seed=2, max_episode_steps=20, frames=[vlm.frame_size])
    assert ro.obs_ids is not None and ro.next_ids is not None
    trans = Transitions(ro.obs[:15], ro.acts[:15], ro.next_obs[:15], ro.obs_ids[:15],
                        ro.next_ids[:15], ro.frames)
    cov = coverage_samples(ro, env.action_space, 8, seed=2)

    def no_ids(batch: TransitionBatch) -> np.ndarray:
        return vlm(TransitionBatch.from_arrays(batch.obs, batch.acts, batch.next_obs,
                                               frames=batch.frames, obs_frames=batch.obs_frames))

    no_ids.needs_frames = True  # type: ignore[attr-defined]
    no_ids.frame_size = vlm.frame_size  # type: ignore[attr-defined]
    before = vlm.scorer.frames_scored
    slow = epic_canonicalize(no_ids, trans, cov, 0.99)
    assert vlm.scorer.frames_scored - before == 15 + 2 * 15 * 8 + 8 * 8
    before = vlm.scorer.frames_scored
    fast = epic_canonicalize(vlm, trans, cov, 0.99)
    assert vlm.scorer.frames_scored - before <= 15 + 8
    vlm.clear_frame_cache()
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-5)
    env.close()


def test_frame_cache_is_bounded_and_keyed_by_id() -> None:
    calls: list[int] = []

    def fn(frames: np.ndarray) -> np.ndarray:
        calls.append(len(frames))
        return frames.reshape(len(frames), -1)[:, 0].astype(np.float64)

    cache = FrameCache(max_items=3)
    frames = np.arange(5, dtype=np.uint8)[:, None, None, None] * np.ones((5, 2, 2, 3), np.uint8)
    out = cache.rows(np.array([10, 11, 10, 12]), frames[[0, 1, 0, 2]], fn)
    np.testing.assert_array_equal(out, [0, 1, 0, 2])
    assert calls == [3] and (cache.hits, cache.misses) == (1, 3)
    out = cache.rows(np.array([13, 12]), frames[[3, 2]], fn)  # 12 cached, 13 new; 10 dropped
    np.testing.assert_array_equal(out, [3, 2])
    assert calls == [3, 1] and len(cache) == 3
    cache.rows(np.array([10]), frames[[0]], fn)
    assert calls == [3, 1, 1]  # 10 was the oldest, so it was evicted and is encoded again
    with pytest.raises(ValueError, match="frame ids"):
        cache.rows(np.array([1, 2]), frames[:1], fn)
    cache.clear()
    assert len(cache) == 0


# -- (d) pixel-observation envs -------------------------------------------------------------


def test_pixel_observation_env_evaluates_in_bounded_uint8_chunks(
        tiny_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = PixelEnv()
    vlm = _vlm(tiny_dir, env.observation_space, env.action_space)
    seen: list[TransitionBatch] = []

    def pixel_reward(batch: TransitionBatch) -> np.ndarray:
        seen.append(batch)
        return brightness(np.asarray(batch.next_obs)) - 0.3 * np.asarray(batch.acts)[:, 0]

    def phi(obs: np.ndarray) -> np.ndarray:
        return np.sin(brightness(obs) / 40.0)

    spy = Spy()
    monkeypatch.setattr(VLMReward, "compute", spy.wrap(VLMReward.compute))
    monkeypatch.setattr(sampling_module, "FRAME_ROWS", 4)  # several calls per grid row
    rewards: dict[str, RewardFn] = {
        "pixels": pixel_reward, "pixels_shaped": shaped(pixel_reward, phi, 0.95, 0.5, 2.0),
        "vlm": vlm, "vlm_negated": shaped(vlm, lambda o: np.zeros(len(o)), 0.95, -2.0)}
    result = evaluate_reward(rewards, env, "PixelEnv", reference=pixel_reward,
                                          gamma=0.95, n_steps=60, n_eval=25, n_samples=9, seed=0,
                                          n_pairs=8, segment_length=4)
    r = result["rewards"]
    assert r["pixels"]["epic"] < 1e-6 and r["pixels_shaped"]["epic"] < 1e-6
    assert r["pixels_shaped"]["starc"] < 1e-6
    # Pearson distance: d(R, ref)^2 + d(-R, ref)^2 = (1 - rho) / 2 + (1 + rho) / 2 = 1
    assert 0.0 < r["vlm"]["epic"] < 1.0
    assert abs(r["vlm"]["epic"] ** 2 + r["vlm_negated"]["epic"] ** 2 - 1.0) < 1e-6
    assert result["cost"]["vlm"]["queries"] == result["cost"]["pixels"]["queries"]

    # observations stay uint8 images, every call carrying images is at most FRAME_ROWS rows
    assert seen and all(np.asarray(b.obs).dtype == np.uint8 for b in seen)
    assert all(len(b) <= 4 and np.asarray(b.obs).shape[1:] == (6, 6, 3) for b in seen)
    # every frame passed to the VLM, on every row of every query, is the frame of its state
    assert spy.batches
    for b in spy.batches:
        assert b.frames is not None and b.obs_frames is not None and len(b) <= 4
        for row in range(len(b)):
            np.testing.assert_array_equal(b.frames[row], frame_of(np.asarray(b.next_obs)[row]))
            np.testing.assert_array_equal(b.obs_frames[row], frame_of(np.asarray(b.obs)[row]))

    # reference=env would regress on state vectors: refused before any rollout
    with pytest.raises(ValueError, match=r"reference=<reward_model\.pt>"):
        evaluate_reward({"pixels": pixel_reward}, env, "PixelEnv", n_steps=10)


def test_pixel_rollouts_and_coverage_keep_images_and_state_indices() -> None:
    env = PixelEnv()
    ro = collect_rollouts(env, 30, seed=4, frames=(32, 32))
    assert ro.obs.dtype == np.uint8 and ro.obs.shape == (30, 6, 6, 3)
    assert ro.obs_ids is not None and ro.next_ids is not None
    table = ro.frames[(32, 32)]
    assert len(table.frames) == ro.n_states == 30 + ro.n_episodes
    for t in range(30):
        np.testing.assert_array_equal(table.frames[ro.next_ids[t]], frame_of(ro.next_obs[t]))
        np.testing.assert_array_equal(table.frames[ro.obs_ids[t]], frame_of(ro.obs[t]))
    # within an episode, s_{t+1} is the same state (same index) as s'_t
    same_ep = ro.episode[1:] == ro.episode[:-1]
    np.testing.assert_array_equal(ro.obs_ids[1:][same_ep], ro.next_ids[:-1][same_ep])
    assert not (ro.terminated & ro.truncated).any()
    cov = coverage_samples(ro, env.action_space, 20, seed=0)
    assert cov.states.dtype == np.uint8 and cov.state_ids is not None
    for k in range(20):
        np.testing.assert_array_equal(table.frames[cov.state_ids[k]], frame_of(cov.states[k]))


def test_chunk_size_does_not_change_the_canonicalisation(
        tiny_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = PixelEnv()
    vlm = _vlm(tiny_dir, env.observation_space, env.action_space)
    ro = collect_rollouts(env, 40, seed=5, frames=[vlm.frame_size])
    assert ro.obs_ids is not None and ro.next_ids is not None
    trans = Transitions(ro.obs[:10], ro.acts[:10], ro.next_obs[:10], ro.obs_ids[:10],
                        ro.next_ids[:10], ro.frames)
    cov = coverage_samples(ro, env.action_space, 7, seed=5)
    whole = epic_canonicalize(vlm, trans, cov, 0.9)
    monkeypatch.setattr(sampling_module, "FRAME_ROWS", 3)
    monkeypatch.setattr(epic_module, "rows_per_call", sampling_module.rows_per_call)
    vlm.clear_frame_cache()
    chunked = epic_canonicalize(vlm, trans, cov, 0.9)
    np.testing.assert_allclose(chunked, whole, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="reads 32x32 frames"):
        epic_canonicalize(vlm, Transitions(trans.obs, trans.acts, trans.next_obs), cov, 0.9)


def test_pick_place_pixels_through_the_cli(tiny_dir: str, tmp_path: Path) -> None:
    from rewardlearn.env_factory import env_config

    cfg = env_config("pick_place")
    cfg.kwargs = {**cfg.kwargs, "obs_mode": "pixels"}
    env = make_env(cfg)
    assert env.observation_space.dtype == np.uint8
    path = save_reward_model(_vlm(tiny_dir, env.observation_space, env.action_space),
                             tmp_path / "vlm.pt")
    env.close()
    result = evaluate_cli.main([f"reward=vlm:{path}", "env=pick_place", "obs_mode=pixels",
                                f"reference={path}", "metrics=epic,returns", "n_steps=20",
                                "n_eval=8", "n_samples=4"])
    assert result["rewards"]["vlm"]["epic"] < 1e-3  # the reference is the same checkpoint
    assert result["cost"]["vlm"]["queries"] == 8 + 2 * 8 * 4 + 4 * 4 + 20
    assert result["cost"]["vlm"]["frames_encoded"] <= result["setup"]["states"] == 21


# -- (e) Dict observations (state + image) ----------------------------------------------------


class DictEnv(gym.ObservationWrapper):
    """:class:`PixelEnv` observed as ``{"state": [x], "pixels": image}``."""

    def __init__(self) -> None:
        super().__init__(PixelEnv())
        self.observation_space = gym.spaces.Dict({
            "state": gym.spaces.Box(-1, 1, (1,), np.float32),
            "pixels": gym.spaces.Box(0, 255, (6, 6, 3), np.uint8)})

    def observation(self, observation: np.ndarray) -> dict[str, np.ndarray]:
        x = float(self.env.unwrapped.x)  # type: ignore[attr-defined]
        return {"state": np.array([x], np.float32), "pixels": observation}


def test_dict_observation_env_evaluates_with_dicts_and_uint8_images() -> None:
    env = DictEnv()
    ro = collect_rollouts(env, 40, seed=1)
    assert set(ro.obs.dtype.names or ()) == {"state", "pixels"}
    assert ro.obs["pixels"].dtype == np.uint8 and ro.obs["state"].shape == (40, 1)
    seen: list[TransitionBatch] = []

    def state_reward(batch: TransitionBatch) -> np.ndarray:
        seen.append(batch)
        nxt = batch.next_obs
        assert isinstance(nxt, dict) and isinstance(batch.obs, dict)
        return -np.asarray(nxt["state"], np.float64)[:, 0] ** 2

    def phi(obs: dict[str, np.ndarray]) -> np.ndarray:
        return np.cos(3.0 * np.asarray(obs["state"], np.float64)[:, 0])

    result = evaluate_reward(
        {"same": state_reward, "shaped": shaped(state_reward, phi, 0.9, 3.0, -1.5),
         "negated": shaped(state_reward, lambda o: np.zeros(len(o["state"])), 0.9, -1.0)},
        env, "DictEnv", reference=state_reward, gamma=0.9, n_steps=40, n_eval=15, n_samples=6,
        n_pairs=6, segment_length=4)
    r = result["rewards"]
    assert r["same"]["epic"] < 1e-6 and r["shaped"]["epic"] < 1e-6
    assert r["negated"]["epic"] > 1 - 1e-6
    # the image entry of every query's observation is the image of its state (x is stored
    # as float32, so the image level may round one step apart)
    assert seen
    for b in seen:
        assert isinstance(b.obs, dict) and isinstance(b.next_obs, dict)
        for o in (b.obs, b.next_obs):
            assert o["pixels"].dtype == np.uint8
            for row in range(len(b)):
                want = image_of(float(o["state"][row, 0])).astype(int)
                assert np.abs(o["pixels"][row].astype(int) - want).max() <= 1
