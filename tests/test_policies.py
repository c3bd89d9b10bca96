"""``agent.mean_bound``: PPO's Gaussian mean kept inside the action bounds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from rewardlearn.policies import BoundedMean, BoundedMeanPolicy, check_mean_bound

LOW, HIGH = np.array([0.0, -2.0, -1.0]), np.array([1.0, 2.0, 1.0])


def test_bounded_mean_stays_inside_each_dimensions_own_range() -> None:
    layer = BoundedMean(torch.nn.Identity(), LOW, HIGH, bound=1.0)
    raw = torch.tensor([[1e6, -1e6, 1e6], [-1e6, 1e6, -1e6], [0.5, 0.0, 0.0]])
    mu = layer(raw).numpy()
    assert (mu[:2] >= LOW - 1e-6).all() and (mu[:2] <= HIGH + 1e-6).all()
    np.testing.assert_allclose(mu[0], [1.0, -2.0, 1.0], atol=1e-5)  # saturates at the bounds
    # at the centre the map is the identity to first order: small means are left alone
    np.testing.assert_allclose(mu[2], [0.5, 0.0, 0.0], atol=1e-6)
    near = layer(torch.tensor([[0.52, 0.05, 0.02]])).numpy()[0]
    np.testing.assert_allclose(near, [0.52, 0.05, 0.02], atol=2e-3)
    wide = BoundedMean(torch.nn.Identity(), LOW, HIGH, bound=1.5)(torch.tensor([[1e6, 1e6, 1e6]]))
    np.testing.assert_allclose(wide.numpy()[0], [1.25, 3.0, 1.5], atol=1e-5)  # c + 1.5 h


def test_gradient_still_reaches_a_mean_past_the_bound() -> None:
    """Unlike a hard clamp, a mean pushed past the bound can be pulled back by training."""
    layer = BoundedMean(torch.nn.Identity(), LOW, HIGH, bound=1.0)
    raw = torch.tensor([[2.0, 4.0, 2.5]], requires_grad=True)
    layer(raw).sum().backward()
    assert raw.grad is not None and (raw.grad > 0).all()


def test_training_pulls_a_raw_mean_past_the_bound_back_inside() -> None:
    """With no signal from the loss, the bound loss alone moves the raw output back to
    |z| <= 1, where tanh still passes the policy gradient (a squash alone would not)."""
    layer = BoundedMean(torch.nn.Identity(), np.array([-1.0]), np.array([1.0]), bound=1.0)
    raw = torch.tensor([[3.0], [0.5], [-2.0]], requires_grad=True)
    (0.0 * layer(raw)).sum().backward()  # the policy loss says nothing here
    assert raw.grad is not None
    np.testing.assert_allclose(raw.grad.numpy(), [[2.0 / 3], [0.0], [-1.0 / 3]], atol=1e-6)
    param = torch.nn.Parameter(torch.tensor([[4.0]]))
    opt = torch.optim.SGD([param], lr=1.0)
    for _ in range(200):
        opt.zero_grad()
        (0.0 * layer(param)).sum().backward()
        opt.step()
    assert 1.0 <= float(param.detach()) < 1.01


def test_ppo_with_bounded_mean_learns_saves_and_loads(tmp_path: Path) -> None:
    env = gym.make("Pendulum-v1")
    agent = PPO(BoundedMeanPolicy, env, policy_kwargs={"mean_bound": 1.0}, n_steps=64,
                batch_size=32, n_epochs=1, seed=0, device="cpu")
    with torch.no_grad():  # drive the action layer's bias far out: the mean stays at <= 2
        agent.policy.action_net.net.bias.fill_(100.0)
    agent.learn(128)
    obs = np.array([[1.0, 0.0, 0.0]], np.float32)
    with torch.no_grad():
        mu = agent.policy.get_distribution(torch.as_tensor(obs)).distribution.mean
    assert float(mu.abs().max()) <= 2.0
    agent.save(tmp_path / "agent.zip")
    loaded = PPO.load(tmp_path / "agent.zip", device="cpu")
    assert isinstance(loaded.policy, BoundedMeanPolicy) and loaded.policy.mean_bound == 1.0
    np.testing.assert_allclose(loaded.predict(obs, deterministic=True)[0],
                               agent.predict(obs, deterministic=True)[0], atol=1e-6)


@pytest.mark.parametrize("bound", [0.0, -1.0, float("nan"), float("inf")])
def test_a_bound_that_is_not_a_positive_number_is_refused(bound: float) -> None:
    with pytest.raises(ValueError, match="positive number"):
        check_mean_bound(bound, gym.spaces.Box(-1, 1, (2,)))


def test_an_unbounded_or_discrete_action_space_is_refused() -> None:
    with pytest.raises(ValueError, match="bounded Box"):
        check_mean_bound(1.0, gym.spaces.Box(-np.inf, np.inf, (2,)))
    with pytest.raises(ValueError, match="bounded Box"):
        check_mean_bound(1.0, gym.spaces.Discrete(3))


def test_build_agent_uses_the_bounded_policy_only_when_asked(
        compose_cfg: Callable[..., Any], tmp_path: Path) -> None:
    from rewardlearn.agents import build_agent
    from rewardlearn.env_factory import make_vec_env

    venv = make_vec_env("pendulum", n_envs=1, seed=0)
    cfg = compose_cfg("env=pendulum", "agent=ppo", "reward=env", "agent.mean_bound=1.0")
    agent = build_agent(cfg, venv, tmp_path)
    assert isinstance(agent.policy, BoundedMeanPolicy) and agent.policy.mean_bound == 1.0
    plain = build_agent(compose_cfg("env=pendulum", "agent=ppo", "reward=env"), venv, tmp_path)
    assert not isinstance(plain.policy, BoundedMeanPolicy)


def test_train_refuses_mean_bound_for_sac_before_anything_runs(
        compose_cfg: Callable[..., Any]) -> None:
    from rewardlearn.cli.checks import SettingsError, validate_settings

    with pytest.raises(SettingsError, match=r"agent.mean_bound=1.0: applies to PPO"):
        validate_settings(compose_cfg("env=pendulum", "agent=sac", "agent.mean_bound=1.0"))
    with pytest.raises(SettingsError, match=r"agent.mean_bound=0: must be a number > 0"):
        validate_settings(compose_cfg("env=pendulum", "agent=ppo", "agent.mean_bound=0"))


def test_module_docstring_example_runs() -> None:
    import doctest

    from rewardlearn import policies

    result = doctest.testmod(policies)
    assert result.attempted > 0 and result.failed == 0


def test_pick_place_recommends_the_bound_for_ppo_and_it_can_be_turned_off(
        compose_cfg: Callable[..., Any]) -> None:
    """The suction command switches at 0: pick_place's PPO keeps its mean inside the bounds."""
    from rewardlearn.agents import agent_mean_bound

    assert agent_mean_bound(compose_cfg("env=pick_place", "agent=ppo")) == 1.0
    off = compose_cfg("env=pick_place", "agent=ppo", "env.mean_bound=null")
    assert agent_mean_bound(off) is None
    assert agent_mean_bound(compose_cfg("env=pick_place", "agent=sac")) is None
    assert agent_mean_bound(compose_cfg("env=hopper", "agent=ppo")) is None
    assert agent_mean_bound(compose_cfg("env=hopper", "agent=ppo", "agent.mean_bound=0.5")) == 0.5
