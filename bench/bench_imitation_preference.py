"""HumanCompatibleAI/imitation 1.0.1 preference comparisons, its tutorial settings.

Run by ``bench_preference.py`` inside imitation's own venv (it pins gymnasium
0.29 and SB3 2.2.1, so it cannot share ours). Prints one JSON line with the
true-return evaluation of the trained agent.

Usage: ``python bench_imitation_preference.py --env HalfCheetah-v4 --seed 0
--steps 300000 --comparisons 1000``
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from imitation.algorithms import preference_comparisons
from imitation.policies.base import FeedForward32Policy, NormalizeFeaturesExtractor
from imitation.rewards.reward_nets import BasicRewardNet
from imitation.util.networks import RunningNorm
from imitation.util.util import make_vec_env
from stable_baselines3 import PPO
from stable_baselines3.common.evaluation import evaluate_policy


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--env", default="HalfCheetah-v4")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=300_000)
    ap.add_argument("--comparisons", type=int, default=1000)
    ap.add_argument("--iterations", type=int, default=60)
    ap.add_argument("--eval-episodes", type=int, default=10)
    args = ap.parse_args()

    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    venv = make_vec_env(args.env, rng=rng)
    reward_net = BasicRewardNet(venv.observation_space, venv.action_space,
                                normalize_input_layer=RunningNorm)
    trainer = preference_comparisons.BasicRewardTrainer(
        preference_model=preference_comparisons.PreferenceModel(reward_net),
        loss=preference_comparisons.CrossEntropyRewardLoss(), epochs=3, rng=rng)
    agent = PPO(
        policy=FeedForward32Policy,
        policy_kwargs=dict(features_extractor_class=NormalizeFeaturesExtractor,
                           features_extractor_kwargs=dict(normalize_class=RunningNorm)),
        env=venv, seed=args.seed, n_steps=2048 // venv.num_envs, batch_size=64,
        ent_coef=0.01, learning_rate=2e-3, clip_range=0.1, gae_lambda=0.95, gamma=0.97,
        n_epochs=10,
    )
    pc = preference_comparisons.PreferenceComparisons(
        preference_comparisons.AgentTrainer(algorithm=agent, reward_fn=reward_net, venv=venv,
                                            exploration_frac=0.05, rng=rng),
        reward_net,
        num_iterations=args.iterations,
        fragmenter=preference_comparisons.RandomFragmenter(warning_threshold=0, rng=rng),
        preference_gatherer=preference_comparisons.SyntheticGatherer(rng=rng),
        reward_trainer=trainer,
        fragment_length=100,
        transition_oversampling=1,
        initial_comparison_frac=0.1,
        allow_variable_horizon=False,
        initial_epoch_multiplier=4,
        query_schedule="hyperbolic",
    )
    pc.train(total_timesteps=args.steps, total_comparisons=args.comparisons)
    train_s = time.perf_counter() - t0
    eval_env = make_vec_env(args.env, rng=np.random.default_rng(10_000 + args.seed), n_envs=1)
    returns, _ = evaluate_policy(agent, eval_env, n_eval_episodes=args.eval_episodes,
                                 deterministic=True, return_episode_rewards=True)
    print(json.dumps({"package": "imitation-1.0.1", "env": args.env, "seed": args.seed,
                      "env_return_mean": float(np.mean(returns)),
                      "env_return_std": float(np.std(returns)),
                      "comparisons": args.comparisons, "total_timesteps": args.steps,
                      "wall_s": round(train_s, 1)}))


if __name__ == "__main__":
    main()
