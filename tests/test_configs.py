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
            assert "Missing mandatory value" in str(e) or "reward.model." in str(e), e
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


# ------------------------------------------ one source of defaults: the settings dataclasses

REWARD_OPTIONS = [p.stem for p in sorted((CONF_DIR / "reward").glob("*.yaml"))]


def _flat(node: object, prefix: str = "") -> dict[str, object]:
    if isinstance(node, dict):
        out: dict[str, object] = {}
        for k, v in node.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): node}


def _commented_keys(option: str) -> set[str]:
    """Keys that a line of ``conf/reward/<option>.yaml`` (or a preset's parent) sets with a
    trailing comment: the yaml's own explanation of why it differs."""
    import re

    keys: set[str] = set()
    path = CONF_DIR / "reward" / f"{option}.yaml"
    text = path.read_text()
    for parent in re.findall(r"^  - (\w+)$", text, flags=re.M):
        if (CONF_DIR / "reward" / f"{parent}.yaml").is_file():
            keys |= _commented_keys(parent)
    for line in text.splitlines():
        m = re.match(r"^\s+(\w+):.*\s#\s*\S", line)
        if m:
            keys.add(m.group(1))
    return keys


@pytest.mark.parametrize("option", REWARD_OPTIONS)
def test_reward_yaml_and_its_settings_dataclass_agree(compose_cfg: Callable[..., DictConfig],
                                                      option: str) -> None:
    """Every ``reward.model`` value equals its dataclass default, unless the yaml line that
    sets it says why in a comment (or it wires a run value, ``${device}``)."""
    from rewardlearn.cli.checks import target_class
    from rewardlearn.rewards.base import RewardModel

    cfg = compose_cfg(f"reward={option}")
    cls = target_class(cfg.reward.model)
    if cls is None or not issubclass(cls, RewardModel) or cls.settings_class is None:
        pytest.skip(f"reward={option} builds no settings dataclass (a loader or no settings)")
    defaults = _flat(cls.settings_class.defaults())
    raw = OmegaConf.to_container(cfg.reward.model, resolve=False)
    assert isinstance(raw, dict)
    composed = _flat({k: v for k, v in raw.items() if k not in ("_target_",
                                                                 *cls.runtime_params)})
    assert set(composed) == set(defaults), "reward.model keys are the dataclass's fields"
    commented = _commented_keys(option)
    silent = {k: (v, defaults[k]) for k, v in composed.items()
              if v != defaults[k] and not (isinstance(v, str) and v.startswith("${"))
              and k.split(".")[-1] not in commented}
    assert not silent, f"reward={option}: values differ from the dataclass without a comment: " \
                       f"{silent}"


def test_every_reward_settings_class_is_registered_and_complete() -> None:
    from rewardlearn.cli.schemas import register_reward_schemas
    from rewardlearn.rewards.registry import REWARD_CLASSES
    from rewardlearn.settings import RewardModelConfig

    names = register_reward_schemas()
    for name in REWARD_CLASSES:
        cls = REWARD_CLASSES[name]
        if cls.settings_class is not None:
            assert cls.settings_class in RewardModelConfig.registered().values(), name
    assert {"preference", "drs", "perceptual", "progress", "vlm", "vlm_distilled",
            "mlp"} <= set(names)


def test_python_and_train_py_users_get_the_same_defaults(
        compose_cfg: Callable[..., DictConfig]) -> None:
    """The issue's case: PreferenceConfig said 1000/100, the yaml 200/40."""
    from rewardlearn.preference.configuration import PreferenceConfig

    cfg = compose_cfg("reward=preference")
    assert (cfg.reward.model.budget, cfg.reward.model.queries_per_round) == (
        PreferenceConfig().budget, PreferenceConfig().queries_per_round)


def test_the_settings_object_is_built_once_and_handed_on(
        compose_cfg: Callable[..., DictConfig], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    from rewardlearn.cli.train import run
    from rewardlearn.preference.configuration import PreferenceConfig

    built: list[int] = []
    real = PreferenceConfig.__post_init__

    def count(self: PreferenceConfig) -> None:
        built.append(1)
        real(self)

    monkeypatch.setattr(PreferenceConfig, "__post_init__", count)
    cfg = compose_cfg("total_timesteps=300", "reward.model.first_round_at=100",
                      "+agent.kwargs.learning_starts=100", "eval.n_episodes=1",
                      "video.enabled=false", "progress_bar=false")
    run(cfg, tmp_path / "run")
    assert len(built) == 1


def test_bc_block_of_config_yaml_is_bcconfigs_defaults(
        compose_cfg: Callable[..., DictConfig]) -> None:
    """``bc:`` in conf/config.yaml holds exactly BCConfig's fields at their defaults (the one
    class that checks them), so a Python user and a train.py user clone alike."""
    from dataclasses import asdict

    from rewardlearn.bc import BCConfig

    assert OmegaConf.to_container(compose_cfg().bc) == asdict(BCConfig())


def test_a_setting_of_the_wrong_kind_is_named_not_crashed_on() -> None:
    from rewardlearn.bc import BCConfig
    from rewardlearn.preference.configuration import PreferenceConfig

    with pytest.raises(ValueError, match=r"epochs must be an integer \(got 'abc'\).*lr must be "
                                         r"a number \(got 'fast'\)"):
        BCConfig(epochs="abc", lr="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"only_success must be true or false \(got 1\)"):
        BCConfig(only_success=1)  # type: ignore[arg-type]
    assert BCConfig(lr=1).lr == 1  # an integer is a number
    with pytest.raises(ValueError, match=r"budget must be an integer \(got 12.5\)"):
        PreferenceConfig(budget=12.5)  # type: ignore[arg-type]


def _int_list_settings() -> list[tuple[str, type, str]]:
    """(reward name, settings class, field) for every registered ``list[int]`` setting."""
    import dataclasses
    import typing

    import rewardlearn.rewards.registry  # noqa: F401  (registers every settings class)
    from rewardlearn.settings import RewardModelConfig

    out = []
    for name, cls in sorted(RewardModelConfig.registered().items()):
        hints = typing.get_type_hints(cls)
        out += [(name, cls, f.name) for f in dataclasses.fields(cls) if hints[f.name] == list[int]]
    return out


@pytest.mark.parametrize("name,cls,field", _int_list_settings(),
                         ids=[f"{n}.{f}" for n, _, f in _int_list_settings()])
def test_int_list_settings_take_any_sequence_and_name_a_bad_width(name: str, cls: type,
                                                                   field: str) -> None:
    """The base class makes every ``list[int]`` setting a list of ints, whatever sequence it
    came as (Hydra's ListConfig, YAML floats, strings), and a bad width is named."""
    base = {k: v for k, v in cls.defaults().items() if k != field}
    made = cls.__new__(cls)  # unchecked: some classes have no valid default (a VLM's goal)
    for key, value in {**base, field: OmegaConf.create([64.0, "32"])}.items():
        setattr(made, key, value)
    made._coerce_int_lists()
    assert getattr(made, field) == [64, 32]
    assert all(type(v) is int for v in getattr(made, field))
    if field == "hidden_sizes":
        with pytest.raises(ValueError, match="hidden_sizes must be positive layer widths"):
            cls.from_kwargs({**base, field: ["abc"]})
