"""A shared reward model never runs code: dotted paths and files in saved settings.

A Hub-format folder's ``config.json`` is a stranger's text. Every dotted path in it goes
through the one resolver (:func:`rewardlearn.utils.import_object`) under the loading guard
(:class:`rewardlearn.rewards.registry.ReferenceCheck`): it resolves only to a class or
function *defined* in a trusted module, never by walking through a name the module
imported, and a potential or encoder only to a registered subclass. A setting that names
an SB3 ``agent.zip`` (which unpickles) loads only when trusted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from rewardlearn.rewards import registry
from rewardlearn.rewards.pretrained import CONFIG_NAME, load_pretrained, save_pretrained
from rewardlearn.rewards.registry import ReferenceCheck, UntrustedReferenceError
from rewardlearn.utils import guarded_imports, import_object

ROOT = Path(__file__).resolve().parents[1]
OBS = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

HOSTILE = textwrap.dedent('''
    import builtins
    import os
    import subprocess
    from os import system
    from subprocess import run

    import numpy as np

    eval_alias = eval

    def phi(obs):
        return obs[:, 0]

    class Holder:
        run = staticmethod(subprocess.run)

        class Inner:
            pass
''')


@pytest.fixture()
def trusted_pkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A package loading trusts (as it trusts rewardlearn_envs) whose module imports
    os, subprocess, builtins and numpy, and binds some of their functions to its names."""
    pkg = tmp_path / "pkgs" / "trusted_demo"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text(HOSTILE)
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    monkeypatch.setattr(registry, "_TRUSTED_PACKAGES", ("rewardlearn_envs", "trusted_demo"))
    return "trusted_demo.mod"


WALKS = ["os.system", "np.load", "subprocess.run", "builtins.eval", "system", "run",
         "eval_alias", "Holder.run", "os.path.join", "np.lib.format.read_array",
         "phi.__globals__", "Holder.__init__"]


@pytest.mark.parametrize("name", WALKS)
def test_a_trusted_module_does_not_lend_the_names_it_imported(trusted_pkg: str,
                                                              name: str) -> None:
    with guarded_imports(ReferenceCheck()), pytest.raises((ValueError, ImportError)):
        import_object(f"{trusted_pkg}:{name}")


def test_what_a_trusted_module_defines_resolves(trusted_pkg: str) -> None:
    with guarded_imports(ReferenceCheck()):
        assert import_object(f"{trusted_pkg}:phi").__name__ == "phi"
        assert import_object(f"{trusted_pkg}:Holder.Inner").__name__ == "Inner"
        assert import_object("rewardlearn_envs.pick_place:state_progress").__name__ == \
            "state_progress"


@pytest.mark.parametrize("path", ["os:system", "subprocess:run", "builtins:eval",
                                  "numpy:load", "pickle:loads", "torch:load",
                                  "rewardlearn.utils:import_object",
                                  "rewardlearn.rewards.checkpoint:torch.load"])
def test_untrusted_modules_and_plain_functions_are_refused(path: str) -> None:
    with guarded_imports(ReferenceCheck()), pytest.raises((UntrustedReferenceError,
                                                          ValueError)):
        import_object(path)


def test_an_untrusted_module_is_not_even_imported(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "imported"
    (tmp_path / "side_effect_mod.py").write_text(f"open({str(marker)!r}, 'w').close()\n"
                                                 "def f(): pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with guarded_imports(ReferenceCheck()), pytest.raises(UntrustedReferenceError):
        import_object("side_effect_mod:f")
    assert not marker.exists()


def test_a_trusted_reference_loads_and_only_it(trusted_pkg: str, tmp_path: Path) -> None:
    (tmp_path / "pkgs" / "user_mod.py").write_text("def phi(obs):\n    return obs[:, 0]\n")
    with guarded_imports(ReferenceCheck(["user_mod:phi"])):
        assert import_object("user_mod:phi").__name__ == "phi"
    with guarded_imports(ReferenceCheck()), pytest.raises(UntrustedReferenceError):
        import_object("user_mod:phi")


def _shaped_folder(tmp_path: Path, potential: dict[str, object]) -> Path:
    from rewardlearn.rewards.mlp import MLPReward
    from rewardlearn.shaping import ShapedReward
    from rewardlearn.shaping.potentials import FunctionPotential

    base = MLPReward(OBS, ACT, hidden_sizes=(8,), device="cpu")
    phi = FunctionPotential("rewardlearn_envs.pick_place:state_progress")
    folder = save_pretrained(ShapedReward(OBS, ACT, base=base, potential=phi, gamma=0.99),
                             tmp_path / "shared")
    config = json.loads((folder / CONFIG_NAME).read_text())
    config["settings"]["potential"] = potential
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    return folder


HOSTILE_POTENTIALS = [
    {"class": "rewardlearn_envs.pick_place:os.system", "config": {"command": "touch {m}"}},
    {"class": "rewardlearn_envs.pick_place:np.load", "config": {"file": "{m}"}},
    {"class": "subprocess:run", "config": {"args": ["touch", "{m}"]}},
    {"class": "builtins:eval", "config": {}},
    {"class": "rewardlearn.shaping.potentials:FunctionPotential",
     "config": {"function": "rewardlearn_envs.pick_place:os.system"}},
    {"class": "rewardlearn.shaping.potentials:FunctionPotential",
     "config": {"function": "rewardlearn_envs.pick_place:mujoco.MjModel.from_xml_path"}},
    {"class": "rewardlearn_envs.pick_place:PickPlaceEnv", "config": {}},  # not a Potential
    {"class": "rewardlearn.shaping.potentials:GoalEmbeddingPotential",
     "config": {"embed": "rewardlearn_envs.pick_place:np.load", "goal": [0.0]}},
]


@pytest.mark.parametrize("spec", HOSTILE_POTENTIALS, ids=lambda s: str(s["config"] or s["class"]))
def test_a_hostile_config_json_runs_no_code(tmp_path: Path, spec: dict[str, object]) -> None:
    marker = tmp_path / "MARKER"
    text = json.dumps(spec).replace("{m}", str(marker))
    folder = _shaped_folder(tmp_path, json.loads(text))
    with pytest.raises((UntrustedReferenceError, ValueError, TypeError)):
        load_pretrained(folder, OBS, ACT)
    assert not marker.exists()


def test_reward_checkpoint_with_a_hostile_config_runs_no_command(tmp_path: Path) -> None:
    """The issue's probe, end to end: ``train.py reward=checkpoint reward.model.path=<folder>``
    with ``"potential": {"class": "rewardlearn_envs.pick_place:os.system", ...}``."""
    from rewardlearn.rewards.mlp import MLPReward
    from rewardlearn.shaping import ShapedReward
    from rewardlearn.shaping.potentials import FunctionPotential

    env = gym.make("Pendulum-v1")
    base = MLPReward(env.observation_space, env.action_space, hidden_sizes=(8,), device="cpu")
    phi = FunctionPotential("rewardlearn_envs.pick_place:state_progress")
    folder = save_pretrained(ShapedReward(env.observation_space, env.action_space, base=base,
                                          potential=phi, gamma=0.99), tmp_path / "shared")
    config = json.loads((folder / CONFIG_NAME).read_text())
    marker = tmp_path / "MARKER"
    config["settings"]["potential"] = {"class": "rewardlearn_envs.pick_place:os.system",
                                       "config": {"command": f"touch {marker}"}}
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    proc = subprocess.run([sys.executable, "train.py", "reward=checkpoint",
                           f"reward.model.path={folder}", "total_timesteps=10",
                           "video.enabled=false", "progress_bar=false", "~teacher",
                           f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "HYDRA_FULL_ERROR": "0"})
    assert proc.returncode != 0
    assert not marker.exists()
    assert "reaches the module 'os'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_a_value_potential_agent_zip_loads_only_when_trusted(tmp_path: Path) -> None:
    from stable_baselines3 import PPO

    from rewardlearn.rewards.mlp import MLPReward
    from rewardlearn.shaping import ShapedReward
    from rewardlearn.shaping.potentials import ValuePotential

    env = gym.make("Pendulum-v1")
    agent_zip = tmp_path / "agent.zip"
    PPO("MlpPolicy", env, n_steps=64, device="cpu").save(agent_zip)
    base = MLPReward(env.observation_space, env.action_space, hidden_sizes=(8,), device="cpu")
    shaped = ShapedReward(env.observation_space, env.action_space, base=base,
                          potential=ValuePotential(path=str(agent_zip)), gamma=0.99)
    folder = save_pretrained(shaped, tmp_path / "shared")
    with pytest.raises(UntrustedReferenceError, match=r"agent\.zip.*unpickles.*trust"):
        load_pretrained(folder, env.observation_space, env.action_space)
    loaded = load_pretrained(folder, env.observation_space, env.action_space,
                             trust=[str(agent_zip)])
    assert type(loaded).__name__ == "ShapedReward"


def test_the_package_has_one_resolver() -> None:
    """No module but utils imports a name it was given with importlib (``registry._resolve``
    and the model teacher's own walk are gone); literal imports of optional packages stay."""
    import re

    offenders = []
    for path in (ROOT / "rewardlearn").rglob("*.py"):
        if path.name == "utils.py" and path.parent.name == "rewardlearn":
            continue
        if re.search(r"import_module\((?![\"'])", path.read_text()):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


# ----------------------------------------------------------------------------- malformed files

def _mlp_folder(tmp_path: Path) -> Path:
    from rewardlearn.rewards.mlp import MLPReward

    return save_pretrained(MLPReward(OBS, ACT, hidden_sizes=(8,), device="cpu"),
                           tmp_path / "model")


def _edit(folder: Path, edit: object) -> None:
    config = json.loads((folder / CONFIG_NAME).read_text())
    edit(config)  # type: ignore[operator]
    (folder / CONFIG_NAME).write_text(json.dumps(config))


def _first_tensor(config: dict[str, object]) -> dict[str, object]:
    def walk(node: object) -> dict[str, object] | None:
        if isinstance(node, dict):
            if node.get("__rl__") == "tensor":
                return node
            for v in node.values():
                found = walk(v)
                if found is not None:
                    return found
        if isinstance(node, list):
            for v in node:
                found = walk(v)
                if found is not None:
                    return found
        return None

    found = walk(config["state"])
    assert found is not None
    return found


MALFORMED = {
    "tensor entry without key": (lambda c: _first_tensor(c).pop("key"), "has no tensor key"),
    "dict as an items key": (lambda c: c["state"].__setitem__(
        "bad", {"__rl__": "items", "value": [[{"a": 1}, 2]]}), "a mapping cannot be a key"),
    "huge observation dtype": (lambda c: c["observation_space"].__setitem__("dtype",
                                                                            "<U200000000"),
                               "not a number type"),
    "huge text array dtype": (lambda c: c["state"].__setitem__(
        "bad", {"__rl__": "ndarray_json", "dtype": "<U200000000", "value": ["x"]}),
        "more than 65536 characters"),
    "huge observation shape": (lambda c: c["observation_space"].__setitem__(
        "shape", [100000, 100000]), "larger than"),
    "space of no type": (lambda c: c.__setitem__("action_space", {"type": "Sphere"}),
                         "not a space description"),
    "settings that build nothing": (lambda c: c["settings"].__setitem__("no_such_arg", 1),
                                    "do not build a MLPReward"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_model_file_fails_in_one_line_naming_it(tmp_path: Path, case: str) -> None:
    from rewardlearn.rewards.pretrained import TamperedModelError

    folder = _mlp_folder(tmp_path)
    edit, message = MALFORMED[case]
    _edit(folder, edit)
    with pytest.raises(TamperedModelError, match=message) as info:
        load_pretrained(folder, None, None)
    assert str(folder) in str(info.value) and "\n" not in str(info.value)


def test_a_deeply_nested_config_json_fails_in_one_line(tmp_path: Path) -> None:
    from rewardlearn.rewards.pretrained import TamperedModelError

    folder = _mlp_folder(tmp_path)
    deep = '{"format": "x", "state": ' + "[" * 200_000 + "]" * 200_000 + "}"
    (folder / CONFIG_NAME).write_text(deep)
    with pytest.raises(TamperedModelError, match="nested too deeply"):
        load_pretrained(folder)
    config = json.loads((_mlp_folder(tmp_path / "b") / CONFIG_NAME).read_text())
    node: object = 0
    for _ in range(200):
        node = [node]
    config["state"]["deep"] = node
    folder_b = tmp_path / "b" / "model"
    (folder_b / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(TamperedModelError, match="nested deeper than 64"):
        load_pretrained(folder_b)


def test_evaluate_prints_one_line_for_a_malformed_model(tmp_path: Path) -> None:
    folder = _mlp_folder(tmp_path)
    (folder / CONFIG_NAME).write_text('{"format": "x", "state": ' + "[" * 200_000
                                      + "]" * 200_000 + "}")
    proc = subprocess.run([sys.executable, "-m", "rewardlearn.cli.evaluate",
                           f"reward={folder}", "env=pendulum", "n_steps=50"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(folder) in lines[0] and CONFIG_NAME in lines[0], proc.stderr
