"""VLM-RM reward: formula, CLIP loading and encoding, stride/deferral, distillation, train.py runs.

A tiny random-weight open_clip model (32 px input, 1 layer per tower) saved
as a ``local-dir:`` folder stands in for real CLIP weights, which this machine
cannot download.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import DictConfig

from rewardlearn._compat import import_open_clip
from rewardlearn.cli.train import run
from rewardlearn.recording import read_sidecar
from rewardlearn.rewards.base import TransitionBatch
from rewardlearn.vlm.distilled import (
    AsyncLabeler,
    VLMDistilledReward,
    downsample_frames,
)
from rewardlearn.vlm.loading import (
    ClipWeightsError,
    ThreadTuner,
    _auto_quick_gelu,
    cpu_has_native_bf16,
    encode_images,
    encode_texts,
    load_clip,
    preprocess_frames,
    resolve_precision,
)
from rewardlearn.vlm.reward import StrideSchedule, VLMReward
from rewardlearn.vlm.vlmrm import FrameScorer, VLMRMScorer, projection_matrix

SPACE = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _reward(tiny_dir: str, **kw: Any) -> VLMReward:
    args: dict[str, Any] = dict(goal="a humanoid robot kneeling", baseline="a humanoid robot",
                                alpha=0.5, clip_model=tiny_dir, pretrained=None, device="cpu")
    return VLMReward(SPACE, SPACE, **{**args, **kw})


def _batch(frames: np.ndarray, obs: np.ndarray | None = None, next_obs: np.ndarray | None = None,
           dones: np.ndarray | None = None) -> TransitionBatch:
    n = len(frames)
    obs = np.zeros((n, 4), np.float32) if obs is None else obs
    return TransitionBatch.from_arrays(obs, np.zeros((n, 4), np.float32),
                                       obs if next_obs is None else next_obs,
                                       terminated=dones, frames=frames)


def _frames(n: int, seed: int = 0, size: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


# -- the formula ----------------------------------------------------------------------------


def test_formula_against_hand_computed_values() -> None:
    # g = (0.6, 0.8), b = (1, 0): d = (-0.4, 0.8), |d|^2 = 0.8, alpha = 0.5:
    # P = 0.5 * d d^T / 0.8 + 0.5 I = [[0.6, -0.2], [-0.2, 0.9]]
    # x = (1, 0): (x - g) P = (0.4, -0.8) P = (0.4, -0.8), R = 1 - 0.5 * 0.8 = 0.6
    # x = (0, 1): (x - g) P = (-0.6, 0.2) P = (-0.4, 0.3), R = 1 - 0.5 * 0.25 = 0.875
    s = VLMRMScorer(torch.tensor([[0.6, 0.8]]), torch.tensor([[1.0, 0.0]]), alpha=0.5)
    assert torch.allclose(s.projection, torch.tensor([[0.6, -0.2], [-0.2, 0.9]]))
    r = s(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    assert torch.allclose(r, torch.tensor([0.6, 0.875]), atol=1e-6)


def test_formula_with_prompt_sets_against_numpy_reference() -> None:
    rng = np.random.default_rng(1)

    def unit(n: int) -> np.ndarray:
        v = rng.normal(size=(n, 8))
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    goals, bases, x = unit(3), unit(2), unit(5)
    for alpha in (0.0, 0.3, 1.0):
        g, b = goals.mean(0), bases.mean(0)  # means, not renormalised
        d = g - b
        proj = alpha * np.outer(d, d) / (d @ d) + (1 - alpha) * np.eye(8)
        expected = 1 - 0.5 * np.sum(((x - g) @ proj) ** 2, axis=1)
        s = VLMRMScorer(torch.tensor(goals), torch.tensor(bases), alpha)
        got = s(torch.tensor(x)).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert abs(np.linalg.norm(goals.mean(0)) - 1) > 1e-3  # the renormalised mean would differ


def test_alpha_zero_is_cosine_similarity_up_to_an_affine_map() -> None:
    rng = np.random.default_rng(2)
    x = torch.nn.functional.normalize(torch.tensor(rng.normal(size=(20, 6))), dim=-1)
    goal = torch.nn.functional.normalize(torch.tensor(rng.normal(size=(1, 6))), dim=-1)
    one = VLMRMScorer(goal, None, alpha=0.0)(x)
    assert torch.allclose(one, (x @ goal[0]).float(), atol=1e-6)  # one prompt: exactly cos
    goals = torch.nn.functional.normalize(torch.tensor(rng.normal(size=(3, 6))), dim=-1)
    r = VLMRMScorer(goals, goals[:1] * 0.5, alpha=0.0)(x).double()
    g = goals.mean(0)
    cos = x @ (g / g.norm())
    assert torch.allclose(r, g.norm() * cos + 0.5 * (1 - g.norm() ** 2), atol=1e-6)


def test_projection_needs_a_baseline_and_distinct_prompts() -> None:
    g = torch.tensor([1.0, 0.0])
    assert torch.equal(projection_matrix(g, None, 0.0), torch.eye(2))
    with pytest.raises(ValueError, match="baseline"):
        projection_matrix(g, None, 0.5)
    with pytest.raises(ValueError, match="same embedding"):
        projection_matrix(g, g.clone(), 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        projection_matrix(g, -g, 1.5)


# -- loading and encoding ---------------------------------------------------------------


def test_local_dir_model_encodes_batches_identically(tiny_dir: str) -> None:
    clip = load_clip(tiny_dir, device="cpu", precision="fp32")
    assert clip.image_size == (32, 32) and clip.embed_dim == 16
    frames = _frames(6)
    all_at_once = encode_images(clip, frames)
    in_pairs = encode_images(clip, frames, batch_size=2)
    one_by_one = torch.cat([encode_images(clip, frames[i:i + 1]) for i in range(6)])
    torch.testing.assert_close(all_at_once, in_pairs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(all_at_once, one_by_one, atol=1e-5, rtol=1e-5)
    assert torch.allclose(all_at_once.norm(dim=-1), torch.ones(6))


def test_cpu_bf16_casts_the_weights_and_stays_close_to_fp32(tiny_dir: str) -> None:
    fp32 = load_clip(tiny_dir, device="cpu", precision="fp32")
    bf16 = load_clip(tiny_dir, device="cpu", precision="bf16")
    assert bf16.weights_cast and not fp32.weights_cast
    assert {p.dtype for p in bf16.model.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in fp32.model.parameters()} == {torch.float32}
    frames = _frames(8)
    a, b = encode_images(fp32, frames), encode_images(bf16, frames)
    assert b.dtype == torch.float32 and torch.allclose(b.norm(dim=-1), torch.ones(8))
    assert float((a * b).sum(-1).min()) > 0.99  # cosine to the fp32 embedding
    ta, tb = encode_texts(fp32, ["a robot"]), encode_texts(bf16, ["a robot"])
    assert float((ta * tb).sum()) > 0.99


def test_preprocessing_normalises_and_resizes_like_open_clip(tiny_dir: str) -> None:
    from PIL import Image

    clip = load_clip(tiny_dir, device="cpu")
    frames = _frames(2)
    x = preprocess_frames(clip, frames)
    ref = (torch.tensor(frames).permute(0, 3, 1, 2) / 255.0 - clip.mean.view(1, 3, 1, 1)) \
        / clip.std.view(1, 3, 1, 1)
    torch.testing.assert_close(x, ref, atol=1e-5, rtol=1e-5)
    small = Image.fromarray(_frames(1, size=8)[0])
    big = np.asarray(small.resize((96, 64), Image.Resampling.NEAREST))
    oc = import_open_clip()
    pil = oc.image_transform(32, is_train=False, mean=clip.mean.tolist(),
                             std=clip.std.tolist())(Image.fromarray(big))
    ours = preprocess_frames(clip, big[None])[0]
    assert ours.shape == pil.shape == (3, 32, 32)
    assert float((ours - pil).abs().mean()) < 0.05  # bicubic in torch vs PIL


def test_text_tower_is_called_once(tiny_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    clip = load_clip(tiny_dir, device="cpu")
    calls: list[int] = []
    original: Any = clip.model.encode_text

    def counting(*a: Any, **k: Any) -> torch.Tensor:
        calls.append(1)
        return original(*a, **k)

    monkeypatch.setattr(clip.model, "encode_text", counting)
    goal, base = ["a robot doing a handstand", "a handstand"], "a robot on a floor"
    r = VLMReward(SPACE, SPACE, goal=goal, baseline=base, alpha=0.5, clip_model=tiny_dir,
                  pretrained=None, device="cpu")
    for seed in range(3):
        r.compute(_batch(_frames(2, seed)))
    VLMReward(SPACE, SPACE, goal=goal, baseline=base, alpha=0.2, clip_model=tiny_dir,
              pretrained=None, device="cpu")
    encode_texts(clip, goal)
    assert len(calls) == 1


def test_missing_weights_offline_give_a_clear_error(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    t = time.perf_counter()
    with pytest.raises(ClipWeightsError) as err:
        load_clip("ViT-B-32", "laion2b_s34b_b79k", device="cpu", cache_dir=str(tmp_path),
                  reuse=False)
    assert time.perf_counter() - t < 30
    msg = str(err.value)
    for needle in ("ViT-B-32", "laion2b_s34b_b79k", "Hugging Face cache", "pretrained=/path",
                   "local-dir:", "open_clip_config.json", "quick_gelu"):
        assert needle in msg, needle
    with pytest.raises(ClipWeightsError, match="not found"):
        load_clip("ViT-B-32", str(tmp_path / "missing.bin"), device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ClipWeightsError, match=r"open_clip_config\.json"):
        load_clip(f"local-dir:{tmp_path / 'empty'}", device="cpu")
    with pytest.raises(ValueError, match="unknown pretrained tag"):
        load_clip("ViT-B-32", "no_such_tag", device="cpu")
    with pytest.raises(ValueError, match="unknown open_clip model"):
        load_clip("ViT-Nope", None, device="cpu")


def test_missing_weights_stop_train_before_training(compose_cfg: Callable[..., DictConfig],
                                                    tmp_path: Path) -> None:
    cfg = compose_cfg("env=pendulum", "reward=vlm", "reward.model.goal=a pendulum upright",
                      "reward.model.baseline=a pendulum", "reward.model.clip_model=ViT-B-32",
                      f"reward.model.pretrained={tmp_path / 'no_weights.bin'}",
                      "progress_bar=false")
    with pytest.raises(ClipWeightsError, match=r"reward\.model\.pretrained"):
        run(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "agent_interrupted.zip").exists()


def test_thread_tuner_measures_and_follows_the_faster_count() -> None:
    tuner = ThreadTuner(candidates=(1, 2), explore_every=5)
    rate = {1: 10.0, 2: 4.0}  # images/s: one thread is faster (a loaded machine)
    chosen = []
    for _ in range(20):
        n = tuner.choose(8)
        chosen.append(n)
        tuner.record(8, n, 8 / rate[n])
    assert chosen[:3] == [2, 1, 2]  # warm-up (not recorded), then each candidate once
    assert chosen[3:].count(1) > chosen[3:].count(2) > 0  # exploits 1, still re-tries 2
    rate.update({1: 5.0, 2: 20.0})  # the load went away
    for _ in range(30):
        n = tuner.choose(8)
        tuner.record(8, n, 8 / rate[n])
    assert tuner.choose(8) == 2 or tuner.choose(8) == 2
    assert ThreadTuner.bucket(1) == 1 and ThreadTuner.bucket(5) == 8 and ThreadTuner.bucket(8) == 8


def test_precision_and_quick_gelu_choices() -> None:
    cpu = torch.device("cpu")
    native = torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    assert resolve_precision("auto", cpu) == native
    assert resolve_precision("fp16", torch.device("cuda")) == torch.float16
    with pytest.raises(ValueError, match="CUDA"):
        resolve_precision("fp16", cpu)
    assert resolve_precision("bf16", cpu) == torch.bfloat16
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_precision("int8", cpu)
    assert _auto_quick_gelu("ViT-B-32", "openai")
    assert not _auto_quick_gelu("ViT-B-32", "laion2b_s34b_b79k")
    assert _auto_quick_gelu("ViT-B-32", "/w/openai_ViT-B-32.pt")


# -- the reward module ------------------------------------------------------------------


def test_reward_is_batch_invariant_and_exports_scores(tiny_dir: str) -> None:
    frames = _frames(5)
    batched = _reward(tiny_dir).compute(_batch(frames))
    single = [_reward(tiny_dir).compute(_batch(frames[i:i + 1])).rewards[0] for i in range(5)]
    np.testing.assert_allclose(batched.rewards, single, atol=1e-5)
    np.testing.assert_array_equal(batched.signals["vlm_score"], batched.rewards)
    clip = load_clip(tiny_dir, device="cpu")
    scorer = VLMRMScorer.from_prompts(clip, "a humanoid robot kneeling", "a humanoid robot", 0.5)
    np.testing.assert_allclose(batched.rewards, FrameScorer(clip, scorer)(frames), atol=1e-6)


def test_stride_schedule_scores_first_every_kth_and_last() -> None:
    sched = StrideSchedule(3)
    obs = np.zeros((1, 4), np.float32)
    scored = []
    for t in range(8):  # one env, an episode of 8 steps; obs chain continues
        nxt = obs + 1
        done = np.array([t == 7])
        scored.append(bool(sched(_batch(_frames(1), obs, nxt, done))[0]))
        obs = nxt
    assert scored == [True, False, False, True, False, False, True, True]
    def const(v: float) -> np.ndarray:
        return np.full((1, 4), v, np.float32)

    restart = _batch(_frames(1), const(9.0), const(10.0))
    assert bool(sched(restart)[0])  # after a done: a new episode
    jump = _batch(_frames(1), const(42.0), const(43.0))
    assert bool(sched(jump)[0])  # obs is not the last next_obs: a new episode


def test_stride_holds_the_last_score(tiny_dir: str) -> None:
    r = _reward(tiny_dir, frame_stride=2)
    full = _reward(tiny_dir)
    obs = np.zeros((2, 4), np.float32)
    got, fresh, ref = [], [], []
    for t in range(5):
        frames, nxt = _frames(2, seed=t), obs + 1
        out = r.compute(_batch(frames, obs, nxt))
        got.append(out.rewards)
        fresh.append(out.signals["vlm_fresh"])
        ref.append(full.compute(_batch(frames, obs, nxt)).rewards)
        obs = nxt
    np.testing.assert_array_equal(np.stack(fresh)[:, 0], [1, 0, 1, 0, 1])
    np.testing.assert_allclose(got[1], ref[0], atol=1e-6)  # held from step 0
    np.testing.assert_allclose(got[2], ref[2], atol=1e-6)
    assert r.scorer.frames_scored == 6


def test_deferred_rollout_matches_immediate_scores(tiny_dir: str) -> None:
    now, later = _reward(tiny_dir, frame_stride=2), _reward(tiny_dir, frame_stride=2,
                                                              batch_size=3)
    obs = np.zeros((2, 4), np.float32)
    expected = []
    for t in range(6):  # reward_timing=rollout: frames queued and encoded 3 at a time
        frames, nxt = _frames(2, seed=10 + t), obs + 1
        dones = np.array([t == 3, False])
        expected.append(now.compute(_batch(frames, obs, nxt, dones)).rewards)
        later.defer_step(_batch(frames, obs, nxt, dones))
        obs = np.where(dones[:, None], 100.0 + t, nxt).astype(np.float32)
    assert later.defer_consumes_frames and later.deferrable
    got = later.compute_deferred(_batch(np.zeros((12, 0)), np.zeros((12, 4)),
                                        np.zeros((12, 4)), np.zeros(12, bool)))
    np.testing.assert_allclose(got.rewards, np.concatenate(expected), atol=1e-6)


def test_config_round_trips_through_a_checkpoint(tiny_dir: str, tmp_path: Path) -> None:
    from rewardlearn.rewards import load_reward_model, save_reward_model

    r = _reward(tiny_dir, frame_stride=3)
    loaded = load_reward_model(save_reward_model(r, tmp_path / "r.pt"), SPACE, SPACE)
    assert isinstance(loaded, VLMReward) and loaded.config() == r.config()
    frames = _frames(2)
    np.testing.assert_allclose(loaded(_batch(frames)), r(_batch(frames)), atol=1e-6)


# -- distillation -----------------------------------------------------------------------


class _SlowScorer:
    """Stands in for a FrameScorer: mean pixel value, slowly."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.frames_scored = 0
        self.gate = threading.Event()

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        self.gate.wait(timeout=10)
        time.sleep(self.delay)
        self.frames_scored += len(frames)
        return frames.reshape(len(frames), -1).mean(1).astype(np.float32)


def test_labeler_never_blocks_and_drops_the_oldest() -> None:
    scorer = _SlowScorer(0.01)
    lab = AsyncLabeler(scorer, batch_size=4, max_pending=8, threads=None)  # type: ignore[arg-type]
    lab.start()
    t = time.perf_counter()
    for i in range(5):
        lab.offer(np.full((4, 2), i, np.float32), np.full((4, 8, 8, 3), i, np.uint8))
    assert time.perf_counter() - t < 0.5  # the VLM is stuck; offering still returns at once
    scorer.gate.set()
    deadline = time.perf_counter() + 10
    while lab.pending and time.perf_counter() < deadline:
        time.sleep(0.01)
    lab.stop()
    x, y = lab.take()
    assert lab.offered == 20 and lab.dropped + len(y) == 20 and lab.dropped >= 8
    np.testing.assert_allclose(x[:, 0], y)  # features and scores stay paired


def test_distilled_state_model_fits_and_reports_heldout_spearman() -> None:
    r = VLMDistilledReward(SPACE, SPACE, goal="x", load_vlm=False, inputs="state",
                           min_labels=50, train_steps=400, hidden_sizes=(64, 64))
    assert not r.needs_frames and not r.callbacks()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 4)).astype(np.float32)
    y = (np.sin(x[:, 0]) + 0.5 * x[:, 1] ** 2 + 0.1 * x[:, 2]).astype(np.float32)
    held = rng.random(1000) < 0.2
    r.train_x, r.train_y = [x[~held]], [y[~held]]
    r.held_x, r.held_y = [x[held]], [y[held]]
    assert not r.compute(_batch(_frames(2), x[:2], x[:2])).rewards.any()  # 0 before the fit
    metrics = r.fit()
    assert metrics is not None and metrics["heldout_spearman"] > 0.9
    out = r.compute(_batch(_frames(2), x[:2], x[:2]))
    np.testing.assert_array_equal(out.rewards, out.signals["vlm_score_distilled"])


def test_distilled_pixel_model_fits_frames(tmp_path: Path) -> None:
    r = VLMDistilledReward(SPACE, SPACE, goal="x", load_vlm=False, pixel_size=16,
                           min_labels=50, train_steps=150, train_batch_size=64,
                           hidden_sizes=(32,))
    assert r.needs_frames and r.pixels
    frames = _frames(600, seed=3)
    frames[:, :16] //= np.arange(1, 601, dtype=np.uint8).reshape(-1, 1, 1, 1) % 7 + 1
    y = frames[:, :16].reshape(600, -1).mean(1).astype(np.float32)  # brightness of the top half
    x = downsample_frames(frames, 16)
    assert x.shape == (600, 3, 16, 16) and x.dtype == np.uint8
    r.train_x, r.train_y, r.held_x, r.held_y = [x[:500]], [y[:500]], [x[500:]], [y[500:]]
    metrics = r.fit()
    assert metrics is not None and metrics["heldout_spearman"] > 0.9
    out = r.compute(_batch(frames[:3]))
    assert out.rewards.shape == (3,) and np.isfinite(out.rewards).all()
    r.frame_size = (32, 32)
    from rewardlearn.rewards import load_reward_model, save_reward_model

    loaded = load_reward_model(save_reward_model(r, tmp_path / "d.pt"), SPACE, SPACE)
    assert isinstance(loaded, VLMDistilledReward) and loaded.frame_size == (32, 32)
    np.testing.assert_allclose(loaded.compute(_batch(frames[:3])).rewards, out.rewards, atol=1e-6)


# -- train.py end to end ----------------------------------------------------------------


def _short(tmp_path: Path, tiny_dir: str, *extra: str) -> list[str]:
    return ["env=humanoid", "env.max_episode_steps=60", "agent=ppo", "n_envs=2",
            "total_timesteps=256", "+agent.kwargs.n_steps=64", "+agent.kwargs.batch_size=64",
            "+agent.kwargs.n_epochs=1", "eval.n_episodes=1", "video.n_episodes=1",
            "video.width=32", "video.height=32", f"video.dir={tmp_path / 'videos'}",
            "progress_bar=false", "torch_threads=1", "reward.model.goal=a humanoid robot kneeling",
            "reward.model.baseline=a humanoid robot", f"reward.model.clip_model={tiny_dir}",
            "reward.model.pretrained=null", "reward.model.device=cpu", *extra]


@pytest.mark.parametrize("extra", [["reward.model.frame_stride=3"],
                                   ["reward_timing=rollout", "reward.model.batch_size=16"],
                                   ["reward.model.frame_stride=3", "reward_timing=rollout"]])
def test_vlm_reward_trains_end_to_end(compose_cfg: Callable[..., DictConfig], tmp_path: Path,
                                      tiny_dir: str, extra: list[str]) -> None:
    cfg = compose_cfg(*_short(tmp_path, tiny_dir, "reward=vlm", *extra))
    summary = run(cfg, tmp_path / "run")
    info = summary["reward_training"]
    assert info["transitions"] >= 256 and info["frames_scored"] > 0
    if "reward.model.frame_stride=3" in extra:
        assert info["frames_scored"] < info["transitions"]
    [video] = summary["videos"]
    side = read_sidecar(Path(video).with_suffix(".json"))
    assert len(side["signals"]["vlm_score"]) == side["length"]
    np.testing.assert_allclose(side["signals"]["vlm_score"], side["learned_reward"], atol=1e-6)


def test_vlm_distilled_trains_end_to_end(compose_cfg: Callable[..., DictConfig], tmp_path: Path,
                                         tiny_dir: str) -> None:
    cfg = compose_cfg(*_short(tmp_path, tiny_dir, "reward=vlm_distilled",
                              "reward.model.label_fraction=0.5", "reward.model.min_labels=20",
                              "reward.model.train_every=64", "reward.model.train_steps=20",
                              "reward.model.hidden_sizes=[32]"))
    summary = run(cfg, tmp_path / "run")
    info = summary["reward_training"]
    assert 0 < info["vlm_calls"] < info["steps_seen"] == 256
    assert info["fits"] >= 1 and 0.0 < info["vlm_calls_saved"] < 1.0
    assert info["inputs"] == "pixels"
    [video] = summary["videos"]
    side = read_sidecar(Path(video).with_suffix(".json"))
    assert len(side["signals"]["vlm_score_distilled"]) == side["length"]
