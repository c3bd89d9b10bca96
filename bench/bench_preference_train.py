"""Seconds per feedback round of the preference ensemble, old vs new training, same process.

Fills a segment buffer from Hopper-v5 with random actions (true env reward,
terminations, absorbing padding on), labels ``--labels`` pairs with the oracle,
trains a warm model on all but the last round's labels, then times one more
round's ``train()`` on the full fixed label set from that same warm state, once
per setting. Accuracy: the ensemble's on 2000 fresh oracle-labelled pairs.

Usage::

    nice -n 10 python bench/bench_preference_train.py --labels 1000 --round 100
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import io
import json
import pstats
import time

import gymnasium as gym
import numpy as np
import torch

from rewardlearn.preference.buffer import SegmentBuffer
from rewardlearn.preference.configuration import PreferenceConfig
from rewardlearn.preference.learner import PreferenceLearner
from rewardlearn.preference.modeling import RewardEnsemble
from rewardlearn.preference.teachers import SyntheticTeacher


def fill_buffer(steps: int, seed: int) -> SegmentBuffer:
    env = gym.make("Hopper-v5")
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    act_shape = (3,)
    buf = SegmentBuffer(1, 11 + 3, capacity=steps)
    for _ in range(steps):
        act = rng.uniform(-1, 1, act_shape).astype(np.float32)
        nxt, r, term, trunc, _ = env.step(act)
        buf.add(np.concatenate([obs, act])[None].astype(np.float32), np.array([r]),
                np.array([term]), np.array([trunc]), next_states=nxt[None])
        obs = env.reset()[0] if term or trunc else nxt
    return buf


def accuracy(learner: PreferenceLearner, buf: SegmentBuffer, n: int = 2000) -> float:
    rng = np.random.default_rng(123)
    a = buf.sample(n, 50, rng, absorbing=True)
    b = buf.sample(n, 50, rng, absorbing=True)
    ra, rb = a.true_rewards.sum(1), b.true_rewards.sum(1)
    decided = ra != rb
    pred = learner.segment_returns(a) > learner.segment_returns(b)
    return float((pred == (ra > rb))[decided].mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--labels", type=int, default=1000)
    ap.add_argument("--round", type=int, default=100, help="labels of the timed round")
    ap.add_argument("--steps", type=int, default=30_000)
    ap.add_argument("--warm-epochs", type=int, default=50, help="epochs of the warm-up round")
    ap.add_argument("--max-epochs", type=int, default=200, help="cap of the timed rounds")
    ap.add_argument("--teacher", default="oracle", help="B-Pref preset labelling the pairs")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    buf = fill_buffer(args.steps, 0)
    base = PreferenceConfig(budget=args.labels, queries_per_round=args.round, device="cpu",
                            absorbing="on", query_selection="uniform", seed=0,
                            max_epochs=args.max_epochs)
    learner_cfg = PreferenceConfig(**{**base.to_dict(), "max_epochs": args.warm_epochs})
    learner = PreferenceLearner(learner_cfg, RewardEnsemble(
        14, 3, base.hidden_sizes, seed=0), SyntheticTeacher.from_preset(args.teacher, seed=0),
        torch.device("cpu"))
    learner.fit_normalizer(buf)
    rng = np.random.default_rng(0)
    a = buf.sample(args.labels, 50, rng, absorbing=True)
    b = buf.sample(args.labels, 50, rng, absorbing=True)
    lab = learner.teacher.label(a.true_rewards, b.true_rewards)
    learner.dataset.add(a, b, lab.labels, 0)
    warm_n = args.labels - args.round
    full = learner.dataset
    learner.dataset = copy.deepcopy(full)
    for key in ("x1", "x2", "term1", "term2", "labels", "rounds", "pad1", "pad2", "next1",
                "next2"):
        setattr(learner.dataset, key, getattr(full, key)[:warm_n])
    t0 = time.perf_counter()
    warm_stats = learner.train()
    warm_s = time.perf_counter() - t0
    learner.dataset = full
    warm_state = copy.deepcopy(learner.ensemble.state_dict())
    warm_opt = copy.deepcopy(learner.optimizer.state_dict())
    results: dict[str, dict[str, float]] = {}
    settings = {"train_acc (old default)": {},
                "heldout, patience 3": {"early_stop": "heldout"}}
    for name, over in settings.items():
        learner.cfg = PreferenceConfig(**{**base.to_dict(), **over})
        learner.ensemble.load_state_dict(warm_state)
        learner.optimizer.load_state_dict(warm_opt)
        learner.rng = np.random.default_rng(1)
        prof = cProfile.Profile() if args.profile else None
        t0 = time.perf_counter()
        if prof:
            prof.enable()
        stats = learner.train()
        if prof:
            prof.disable()
        secs = time.perf_counter() - t0
        results[name] = {"seconds": secs, "epochs": stats["epochs"],
                         "fresh_pair_accuracy": accuracy(learner, buf)}
        if prof:
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(12)
            print(out.getvalue())
    old, new = results["train_acc (old default)"], results["heldout, patience 3"]
    print(json.dumps({"warm_round": {"labels": warm_n, "seconds": warm_s, **warm_stats},
                      "timed_round_labels": args.labels, **results,
                      "speedup": old["seconds"] / new["seconds"]}, indent=1))


if __name__ == "__main__":
    main()
