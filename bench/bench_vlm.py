"""VLM reward benchmarks: render + encode throughput, distillation fit, agent step rate.

Writes ``bench/results/vlm.md`` (and prints it). All measurements use ViT-B-32
with *random* weights (``pretrained=None``; this machine cannot download
weights): speed does not depend on the weights, and random-weight CLIP scores
are still a deterministic, non-trivial function of the frame, so they are a
legitimate target for measuring how well a cheap model fits a VLM reward.

1. Frames/s of render + encode for N humanoid envs (anchor camera):
   rewardlearn's batched pipeline (``FrameCapture`` renders at the model's input
   size with the fast renderer inside each env, then ``VLMReward`` encodes all
   envs' frames in one call, threads chosen per batch) vs a naive per-env,
   per-step wrapper (``env.render()`` at 480x480 with MuJoCo's default scene,
   open_clip's PIL preprocessing, one image per forward pass, torch's default
   threads). Same model object, same run, interleaved repeats. Target >= 3x.
2. Distillation: humanoid states from random actions; a random 1/k of the
   training steps is scored by the VLM and a state MLP (``VLMDistilledReward``'s
   fit) is trained on those scores; Spearman against the full VLM reward on
   held-out frames from other seeds. Target: 10x fewer calls, Spearman >= 0.9.
3. PPO env steps/s on humanoid with the env reward, ``reward=vlm``
   (every step, and ``reward_timing=rollout``) and ``reward=vlm_distilled``.

Usage: ``python bench/bench_vlm.py [--quick]``
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import git_commit  # bench/ is on sys.path when a script runs

import rewardlearn  # noqa: F401  (headless GL defaults before mujoco loads)
from rewardlearn._compat import import_open_clip
from rewardlearn.env_factory import camera_config, env_config, make_env, make_vec_env
from rewardlearn.stats import spearman
from rewardlearn.vlm.distilled import VLMDistilledReward, downsample_frames
from rewardlearn.vlm.loading import ClipBundle, load_clip, resolve_precision
from rewardlearn.vlm.reward import VLMReward
from rewardlearn.vlm.vlmrm import FrameScorer, VLMRMScorer
from rewardlearn.wrappers import RewardVecEnvWrapper
from rewardlearn.wrappers.frames import EnvFrameSource

OUT = Path(__file__).resolve().parent / "results" / "vlm.md"
GOAL, BASELINE, ALPHA = "a humanoid robot kneeling", "a humanoid robot", 0.5
VLM_KW: dict[str, Any] = dict(goal=GOAL, baseline=BASELINE, alpha=ALPHA, clip_model="ViT-B-32",
                              pretrained=None, device="cpu")
CORES = len(os.sched_getaffinity(0))


# -- 1. throughput ----------------------------------------------------------------------


def ours_fps(n_envs: int, n_frames: int, precision: str = "auto") -> float:
    """Frames/s of the real pipeline: vec env with FrameCapture + VLMReward, one call per step."""
    reward = VLMReward(None, None, precision=precision, **VLM_KW)  # type: ignore[arg-type]
    venv = RewardVecEnvWrapper(
        make_vec_env("humanoid", n_envs=n_envs, seed=0, frame_size=reward.frame_size), reward)
    venv.reset()
    rng = np.random.default_rng(0)
    act = lambda: rng.uniform(-0.4, 0.4, (n_envs, 17)).astype(np.float32)  # noqa: E731
    venv.step(act())  # warm-up
    steps = max(2, -(-n_frames // n_envs))
    t = time.perf_counter()
    for _ in range(steps):
        venv.step(act())
    dt = time.perf_counter() - t
    venv.close()
    return steps * n_envs / dt


def naive_fps(n_envs: int, n_frames: int, bundle: ClipBundle, preprocess: Any,
              scorer: VLMRMScorer, threads: int | None) -> float:
    """Frames/s of a per-env, per-step wrapper: render 480 px, PIL preprocess, 1 image per call."""
    from PIL import Image

    cam = {"trackbodyid": 1, "distance": 3.5, "lookat": np.array([0.0, 0.0, 1.0]),
           "elevation": -10.0, "azimuth": 180.0}
    import gymnasium as gym

    envs = [gym.make("Humanoid-v5", render_mode="rgb_array", width=480, height=480,
                     default_camera_config=cam) for _ in range(n_envs)]
    for i, e in enumerate(envs):
        e.reset(seed=i)
    rng = np.random.default_rng(0)
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)

    def one_step() -> None:
        for e in envs:
            _, _, term, trunc, _ = e.step(rng.uniform(-0.4, 0.4, 17).astype(np.float32))
            frame = e.render()
            x = preprocess(Image.fromarray(frame)).unsqueeze(0).to(bundle.dtype)
            with torch.no_grad():
                emb = torch.nn.functional.normalize(bundle.model.encode_image(x), dim=-1)  # type: ignore[operator]
            scorer(emb)
            if term or trunc:
                e.reset()

    one_step()  # warm-up
    steps = max(1, -(-n_frames // n_envs))
    t = time.perf_counter()
    for _ in range(steps):
        one_step()
    dt = time.perf_counter() - t
    torch.set_num_threads(before)
    for e in envs:
        e.close()
    return steps * n_envs / dt


def render_fps(fast: bool, n: int) -> float:
    """Render-only frames/s: fast renderer at 224 vs default scene at 480 + PIL resize to 224."""
    import gymnasium as gym
    from PIL import Image

    if fast:
        env = make_env("humanoid", seed=0)
        src = EnvFrameSource(env, 224, 224, camera_config(env_config("humanoid")))
        render = src.render
    else:
        env = gym.make("Humanoid-v5", render_mode="rgb_array", width=480, height=480)
        env.reset(seed=0)

        def render() -> np.ndarray:
            f = env.render()
            return np.asarray(Image.fromarray(f).resize((224, 224), Image.Resampling.BICUBIC))

    render()
    dt = 0.0
    for _ in range(n):
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            env.reset()
        t = time.perf_counter()
        render()
        dt += time.perf_counter() - t
    env.close()
    return n / dt


def encode_fps(bundle: ClipBundle, batch: int, threads: int | None, n: int) -> float:
    """Encode-only images/s at a batch size (``threads=None``: our per-batch choice)."""
    frames = np.random.default_rng(0).integers(0, 256, (batch, 224, 224, 3), dtype=np.uint8)
    scorer = FrameScorer(bundle, VLMRMScorer.from_prompts(bundle, GOAL, BASELINE, ALPHA),
                         batch_size=max(batch, 1), threads=threads)
    scorer(frames)
    reps = max(1, n // batch)
    t = time.perf_counter()
    for _ in range(reps):
        scorer(frames)
    return reps * batch / (time.perf_counter() - t)


# -- 2. distillation --------------------------------------------------------------------


def collect(n_steps: int, seed: int, pick_fraction: float, rng: np.random.Generator
            ) -> tuple[np.ndarray, list[int], list[np.ndarray]]:
    """Random-action humanoid states; frames only for a random ``pick_fraction`` of steps."""
    env = make_env("humanoid", seed=seed)
    src = EnvFrameSource(env, 224, 224, camera_config(env_config("humanoid")))
    obs, _ = env.reset(seed=seed)
    states, picked, frames = [], [], []
    ep, scale = 0, 0.4
    for t in range(n_steps):
        obs, _, term, trunc, _ = env.step(rng.uniform(-scale, scale, 17).astype(np.float32))
        states.append(obs.astype(np.float32))
        if rng.random() < pick_fraction:
            picked.append(t)
            frames.append(src.render())
        if term or trunc:
            ep += 1
            scale = float(rng.choice([0.1, 0.4, 1.0]))
            obs, _ = env.reset(seed=seed + 1000 * ep)
    src.close()
    env.close()
    return np.stack(states), picked, frames


def score_all(scorer: FrameScorer, frames: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([scorer(np.stack(frames[s:s + 256]))
                           for s in range(0, len(frames), 256)])


def distill_rows(n_steps: int, n_held: int, fractions: list[int], train_steps: int,
                 bundle: ClipBundle, bundle_bf16: ClipBundle
                 ) -> tuple[list[tuple[int, int, str, float, float]], dict[str, Any]]:
    rng = np.random.default_rng(0)
    scorer = FrameScorer(bundle, VLMRMScorer.from_prompts(bundle, GOAL, BASELINE, ALPHA),
                         batch_size=64)
    k_min = min(fractions)
    t0 = time.perf_counter()
    states, picked, frames = collect(n_steps, 0, 1.0 / k_min, rng)
    h_states, h_picked, h_frames = collect(n_held * 3, 50_000, 1.0 / 3, rng)
    h_states, h_frames = h_states[h_picked][:n_held], h_frames[:n_held]
    t1 = time.perf_counter()
    y = score_all(scorer, frames)
    y_held = score_all(scorer, h_frames)
    y_bf16 = score_all(FrameScorer(bundle_bf16, VLMRMScorer.from_prompts(
        bundle_bf16, GOAL, BASELINE, ALPHA), batch_size=64), h_frames)
    t2 = time.perf_counter()
    inputs = {"state": (states[picked], h_states),
              "pixels": (downsample_frames(np.stack(frames), 56),
                         downsample_frames(np.stack(h_frames), 56))}
    u = rng.random(len(picked))  # nested subsets: 1/k of all steps keeps u < k_min / k
    env = make_env("humanoid")
    rows = []
    for k in sorted(fractions):
        keep = u < k_min / k
        for kind, (x, x_held) in inputs.items():
            r = VLMDistilledReward(env.observation_space, env.action_space, goal=GOAL,
                                   load_vlm=False, inputs=kind,
                                   hidden_sizes=(256,) if kind == "pixels" else (256, 256),
                                   train_steps=train_steps, min_labels=10, heldout_fraction=0.0,
                                   seed=0)
            r.train_x, r.train_y = [x[keep]], [y[keep]]
            r.held_x, r.held_y = [x_held], [y_held]
            m = r.fit()
            assert m is not None
            rows.append((k, int(keep.sum()), kind, m["heldout_spearman"],
                         spearman(r.predict(x[keep]), y[keep])))
    env.close()
    info = {"bf16_spearman": spearman(y_bf16, y_held),
            "bf16_max_err": float(np.abs(y_bf16 - y_held).max()),
            "n_steps": n_steps, "n_held": len(y_held), "collect_s": t1 - t0,
            "score_s": t2 - t1, "vlm_frames": len(y) + len(y_held),
            "score_std": float(y_held.std()), "score_range": (float(y_held.min()),
                                                             float(y_held.max()))}
    return rows, info


# -- 3. agent step rate -----------------------------------------------------------------


def ppo_steps_per_s(kind: str, steps: int, n_envs: int = 4) -> tuple[float, dict[str, Any]]:
    from stable_baselines3 import PPO

    from rewardlearn.wrappers import RewardLoggingCallback
    from rewardlearn.wrappers.vec import DeferredRewardCallback

    reward: Any = None
    if kind in ("vlm", "vlm_defer"):
        reward = VLMReward(None, None, **VLM_KW)  # type: ignore[arg-type]
    elif kind == "vlm_distilled":
        probe = make_env("humanoid")
        reward = VLMDistilledReward(probe.observation_space, probe.action_space,
                                    label_fraction=0.1, train_every=1024, train_steps=100,
                                    min_labels=50, vlm_threads=1, **VLM_KW)  # inputs=pixels
        probe.close()
    frame_size = reward.frame_size if reward is not None and reward.needs_frames else None
    if kind == "env_frames":
        frame_size = (224, 224)
    venv: Any = make_vec_env("humanoid", n_envs=n_envs, seed=0, frame_size=frame_size)
    callbacks: list[Any] = []
    if reward is not None:
        reward.observation_space, reward.action_space = venv.observation_space, venv.action_space
        defer = kind == "vlm_defer"  # reward_timing=rollout: the rollout scored in batches
        venv = RewardVecEnvWrapper(venv, reward, defer=defer)
        first = DeferredRewardCallback() if defer else RewardLoggingCallback()
        callbacks = [first, *reward.callbacks()]
    agent = PPO("MlpPolicy", venv, n_steps=64, batch_size=64, n_epochs=2, seed=0, device="cpu")
    t = time.perf_counter()
    agent.learn(steps, callback=callbacks)
    dt = time.perf_counter() - t
    venv.close()
    return agent.num_timesteps / dt, reward.summary() if reward is not None else {}


# -- report -----------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer frames and steps")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    q = args.quick
    torch.set_num_threads(CORES)
    load0 = os.getloadavg()[0]
    bundle = load_clip("ViT-B-32", None, device="cpu", precision="fp32")
    bf16 = load_clip("ViT-B-32", None, device="cpu", precision="bf16")
    bf16.model.load_state_dict(bundle.model.state_dict())  # same weights, cast to bf16
    auto = "bf16" if resolve_precision("auto", torch.device("cpu")) == torch.bfloat16 else "fp32"
    oc_preprocess = import_open_clip().image_transform(
        224, is_train=False, mean=bundle.mean.tolist(), std=bundle.std.tolist())
    scorer = VLMRMScorer.from_prompts(bundle, GOAL, BASELINE, ALPHA)

    n_list = [1, 4] if q else [1, 4, 16]
    n_frames, reps = (16, 1) if q else (64, 2)
    cols = ("ours", "ours_fp32", "naive", "naive1", "naive_bf16")
    tput: dict[int, dict[str, list[float]]] = {n: {c: [] for c in cols} for n in n_list}
    for _ in range(reps):
        for n in n_list:
            tput[n]["ours"].append(ours_fps(n, n_frames, "auto"))
            tput[n]["ours_fp32"].append(ours_fps(n, n_frames, "fp32"))
            half = n_frames // 2
            tput[n]["naive"].append(naive_fps(n, half, bundle, oc_preprocess, scorer, None))
            tput[n]["naive1"].append(naive_fps(n, half, bundle, oc_preprocess, scorer, 1))
            tput[n]["naive_bf16"].append(naive_fps(n, half, bf16, oc_preprocess, scorer, None))
    r_fast, r_slow = render_fps(True, 40 if q else 150), render_fps(False, 40 if q else 150)
    enc: dict[tuple[int, int, str], float] = {}
    for b, th in [(1, 1), (1, CORES), (4, CORES), (16, 1), (16, CORES), (64, CORES)]:
        enc[(b, th, "fp32")] = encode_fps(bundle, b, th, 8 if q else 48)
        enc[(b, th, "bf16")] = encode_fps(bf16, b, th, 8 if q else 48)

    fractions = [10, 20, 50]
    d_rows, d_info = distill_rows(1000 if q else 20000, 60 if q else 500, fractions,
                                  200 if q else 2000, bundle, bf16)
    torch.set_num_threads(1)  # PPO's small MLPs: one thread; the VLM picks its own

    agent_rows = [(kind, *ppo_steps_per_s(kind, steps)) for kind, steps in
                  [("env", 1024 if q else 4096), ("env_frames", 256 if q else 1024),
                   ("vlm", 128 if q else 256), ("vlm_defer", 128 if q else 256),
                   ("vlm_distilled", 512 if q else 2048)]]

    commit = git_commit()
    load = os.getloadavg()
    med = {n: {k: float(np.median(v)) for k, v in d.items()} for n, d in tput.items()}
    lines = [
        "## VLM rewards: throughput, distillation, agent step rate",
        "",
        f"Machine: {platform.machine()}, {CORES} cores (load average {load0:.1f} at the start, "
        f"{load[0]:.1f} at the end), torch {torch.__version__} CPU, no GPU; commit {commit}; "
        f"command: `python bench/bench_vlm.py{' --quick' if q else ''}`. Model: ViT-B-32, "
        "random weights (`pretrained=None`), goal/baseline prompts "
        f"\"{GOAL}\" / \"{BASELINE}\", alpha {ALPHA}; env: humanoid, anchor camera.",
        "",
        f"### 1. Render + encode, frames/s (median of {reps} interleaved repeat(s))",
        "",
        "Both sides use the same ViT-B-32 weights. rewardlearn: `FrameCapture` renders at 224 "
        "px with the fast renderer inside each env, then `VLMReward` encodes all envs' frames "
        f"in one call, threads chosen per batch; `precision=auto` is {auto} on this CPU "
        "(the `precision=fp32` column isolates rendering and batching). Naive: a per-env "
        "wrapper that renders 480 px with MuJoCo's default scene, preprocesses with "
        "open_clip's PIL transform and encodes one image per call with torch's default "
        f"{CORES} threads in fp32 (also shown with 1 thread, and with the same bf16 weights).",
        "",
        f"| envs | rewardlearn (auto = {auto}) | rewardlearn fp32 | naive fp32 | **speed-up** "
        "(auto vs naive fp32) | fp32 vs naive fp32 | naive fp32, 1 thread | naive bf16 | "
        "auto vs naive bf16 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n in n_list:
        m = med[n]
        lines.append(f"| {n} | {m['ours']:.2f} | {m['ours_fp32']:.2f} | {m['naive']:.2f} | "
                     f"**{m['ours'] / m['naive']:.1f}x** | {m['ours_fp32'] / m['naive']:.1f}x | "
                     f"{m['naive1']:.2f} | {m['naive_bf16']:.2f} | "
                     f"{m['ours'] / m['naive_bf16']:.1f}x |")
    lines += [
        "",
        "Where the time goes (same run):",
        "",
        "| stage | setting | per second |",
        "|---|---|---|",
        f"| render | fast renderer at 224 px (FrameCapture) | {r_fast:.0f} frames |",
        f"| render | default scene at 480 px + PIL resize to 224 | {r_slow:.0f} frames |",
    ]
    for (b, th, prec), v in enc.items():
        lines.append(f"| encode | batch {b}, {th} thread(s), {prec} | {v:.2f} images |")
    lines += [
        "",
        f"bf16 fidelity: on the {d_info['n_held']} held-out frames of section 2, the bf16 "
        f"VLM-RM score has Spearman {d_info['bf16_spearman']:.4f} with the fp32 score (max "
        f"abs difference {d_info['bf16_max_err']:.2e}; fp32 score std "
        f"{d_info['score_std']:.2e}).",
        "",
        "GPU: none was available to this run; the same script measures it on a CUDA machine "
        "(device=auto, fp16 autocast) - not measured here.",
        "",
        "### 2. Distillation: VLM calls vs fit",
        "",
        f"{d_info['n_steps']} humanoid steps (random actions, action scale 0.1/0.4/1.0 per "
        f"episode); 1/k of them scored by the VLM (nested random subsets) and fitted by "
        f"`VLMDistilledReward.fit`, {300 if q else 2000} Adam steps of batch 128: `inputs=pixels`"
        " (CNN on 56 px frames, head 256) or `inputs=state` (MLP 256x256 on the 348-d "
        f"observation); Spearman vs the full VLM score on {d_info['n_held']} held-out frames "
        f"(other seeds). VLM scoring: {d_info['vlm_frames']} frames in "
        f"{d_info['score_s']:.0f} s. Held-out score std {d_info['score_std']:.4f}, range "
        f"{d_info['score_range'][0]:.4f} .. {d_info['score_range'][1]:.4f}. Random-weight CLIP "
        "scores are a deterministic function of the frame, so they are a fair target for "
        "the fit, but not a task signal. The state MLP cannot fit them: the tracking camera "
        "shows the checkered floor moving under the robot, and the x-y position is not in the "
        "observation.",
        "",
        "| VLM calls | labels | distilled model | held-out Spearman | train Spearman |",
        "|---|---|---|---|---|",
    ]
    for k, n_lab, kind, sp, sp_tr in d_rows:
        lines.append(f"| 1/{k} of steps ({k}x fewer) | {n_lab} | {kind} | **{sp:.3f}** | "
                     f"{sp_tr:.3f} |")
    lines += [
        "",
        "### 3. PPO on humanoid, 4 envs: env steps/s (n_steps 64, 2 epochs, agent on 1 "
        "thread)",
        "",
        "`env_frames`: env reward, but FrameCapture renders 224 px frames every step (the "
        "rendering cost that every frame-based reward pays); "
        "`vlm`: every step waits for the encode of 4 frames; `vlm_defer`: `reward_timing=rollout`, "
        "frames scored in batches of 64 while the rollout runs; `vlm_distilled`: label "
        "fraction 0.1 scored in a background thread (1 thread), pixel CNN fitted every 1024 "
        "steps (100 Adam steps) on the main thread.",
        "",
        "| reward | env steps/s | notes |",
        "|---|---|---|",
    ]
    for kind, sps, summ in agent_rows:
        note = ""
        if kind.startswith("vlm") and "frames_scored" in summ:
            note = f"{summ['frames_scored']} frames scored"
        if kind == "vlm_distilled":
            note = (f"VLM calls {int(summ['vlm_calls'])} of {int(summ['steps_seen'])} steps "
                    f"({100 * summ['vlm_calls_saved']:.0f}% saved), "
                    f"{int(summ['labels_dropped'])} queued frames dropped; fits "
                    f"{summ['fits']}")
        lines.append(f"| {kind} | {sps:.1f} | {note} |")
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
