"""The install: the README's two commands agree on one set of versions (issue 16).

`.ci/run` runs the README's commands in order in a fresh virtualenv; the slow test here does
the same on a developer's machine. The fast tests catch the cause of the broken install
order (a constraint that the dev extras overrule) without installing anything.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / ".ci"))
from readme_commands import readme_commands  # noqa: E402


def constraints() -> dict[str, str]:
    """``name -> pinned version`` from constraints.txt."""
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def test_readme_gives_two_commands_in_order_both_constrained() -> None:
    first, second = readme_commands((ROOT / "README.md").read_text())
    assert first.startswith("pip install -e . -c constraints.txt") and "python train.py" in first
    assert second.startswith('pip install -e ".[dev]" -c constraints.txt') and "pytest" in second


def test_constraints_pin_every_exact_pin_of_the_extras() -> None:
    """An extra that pins a package exactly (Meta-World pins mujoco) must find the same pin in
    constraints.txt, or the dev install replaces what the base install put there."""
    pins = constraints()
    requires = md.requires("metaworld") or []
    exact = [re.match(r"^([A-Za-z0-9_.-]+)\s*==\s*([^;\s]+)", r) for r in requires]
    exact_pins = {m.group(1).lower(): m.group(2) for m in exact if m and "extra ==" not in m.string}
    assert "mujoco" in exact_pins
    for name, version in exact_pins.items():
        assert pins.get(name) == version, (
            f"metaworld pins {name}=={version}; constraints.txt has {pins.get(name)}")


def test_installed_versions_are_the_constrained_ones() -> None:
    for name, version in constraints().items():
        try:
            installed = md.version(name)
        except md.PackageNotFoundError:
            continue
        assert installed.split("+")[0] == version.split("+")[0], (name, installed, version)
    # a second MuJoCo distribution (mujoco 4's split packages) beside the pinned one breaks it
    assert not _installed("mujoco-core")


def _installed(name: str) -> bool:
    try:
        md.version(name)
    except md.PackageNotFoundError:
        return False
    return True


@pytest.mark.slow
def test_fresh_virtualenv_runs_the_readme_commands_in_order(tmp_path: Path) -> None:
    """Both README installs in order in a fresh venv; MuJoCo and the default job still work."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bindir = env_dir / "bin"
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
           "VIRTUAL_ENV": str(env_dir), "MUJOCO_GL": "egl"}
    env.pop("PYTHONPATH", None)
    quick = (f" total_timesteps=300 eval.n_episodes=1 video.enabled=false progress_bar=false"
             f" hydra.run.dir={tmp_path}/run1")

    def sh(command: str) -> None:
        subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=ROOT, env=env,
                       check=True, timeout=3000)

    first, second = readme_commands((ROOT / "README.md").read_text())
    sh(first + quick)
    install_dev = second.split("&&")[0]
    sh(install_dev)
    sh('python -c "import mujoco, metaworld, rewardlearn"')
    sh(f"python train.py {quick.replace('run1', 'run2')}")
    sh("python -m pip check")


def test_the_readme_layout_names_every_module() -> None:
    """README's Layout matches the tree: every module of the package and of envs/ is named."""
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):readme.index("## Writing a reward module")]
    missing = [str(p.relative_to(ROOT)) for folder in ("rewardlearn", "envs")
               for p in sorted((ROOT / folder).rglob("*.py"))
               if p.name != "__init__.py" and p.name not in layout]
    assert missing == []
    for folder in (ROOT / "rewardlearn").iterdir():
        if folder.is_dir() and (folder / "__init__.py").is_file():
            assert f"{folder.name}/" in layout, folder.name


def test_every_subpackage_is_in_the_wheel() -> None:
    """``[tool.setuptools] packages`` is an explicit list: a subpackage missing from it works
    in the editable install and is absent from a wheel (``pip install .``)."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for p in (ROOT / "rewardlearn").rglob("__init__.py")}
    assert found - listed == set(), f"add to pyproject.toml's packages: {sorted(found - listed)}"
