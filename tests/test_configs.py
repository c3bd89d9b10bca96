"""Every config-group option composes, and bad names list the valid choices."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import CONF_DIR
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from rewardlearn.cli.train import build_reward_model
from rewardlearn.env_factory import available_envs, env_config, make_env
from rewardlearn.rewards import MLPReward, save_reward_model
from rewardlearn.vlm.loading import ClipWeightsError

GROUPS = ["env", "agent", "reward", "shaping", "teacher"]
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF_DIR / g).glob("*.yaml"))]
ROOT = Path(__file__).resolve().parents[1]


def test_every_group_has_options() -> None:
    for group in GROUPS:
        assert any(o[0] == group for o in OPTIONS), f"conf/{group}/ has no options"


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes(compose_cfg: Callable[..., DictConfig], group: str, option: str,
                         tmp_path: Path) -> None:
    overrides = [f"{group}={option}"]
    if (group, option) == ("reward", "checkpoint"):
        env = make_env("pendulum")
        path = save_reward_model(MLPReward(env.observation_space, env.action_space,
                                           hidden_sizes=(4,)), tmp_path / "r.pt")
        overrides.append(f"reward.model.path={path}")
    cfg = compose_cfg(*overrides)
    # a generic config (env=metaworld) names itself after its task: metaworld_reach-v3
    assert cfg[group].name == option or cfg[group].name.startswith(f"{option}_")
    if group == "env":
        assert cfg.env.id and env_config(option).name == cfg.env.name
    if group == "reward" and not OmegaConf.missing_keys(cfg.reward):
        env = make_env("pendulum")
        try:
            model = build_reward_model(cfg, env.observation_space, env.action_space)
        except ClipWeightsError as e:  # offline machine: the error must say how to fix it
            assert "local-dir:" in str(e) or "local" in str(e).lower()
        except Exception as e:  # a value the user must give (goal...), named in the error
            assert "Missing mandatory value" in str(e), e
        else:
            assert model.name
    if group == "teacher":
        assert instantiate(cfg.teacher) is not None


def test_unknown_env_lists_choices() -> None:
    with pytest.raises(ValueError, match=r"valid choices: .*hopper"):
        env_config("no_such_env")
    assert "pendulum" in available_envs()


@pytest.mark.parametrize("group", ["env", "agent", "reward"])
def test_train_py_unknown_name_lists_choices(group: str) -> None:
    out = subprocess.run([sys.executable, "train.py", f"{group}=nope"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert f"Available options in '{group}'" in text
    first = sorted((CONF_DIR / group).glob("*.yaml"))[0].stem
    assert first in text
