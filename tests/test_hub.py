"""Hub-format reward models: every registered class round-trips exactly; loading runs no code.

Each registered reward class is built small (random weights, like the other tests), saved
with ``save_pretrained``, loaded, and its rewards on 10k transitions compared. Tampered
folders, foreign class names and malicious pickles are refused by name.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pickle
import pkgutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import rewardlearn
from rewardlearn.rewards import load_reward_model, save_reward_model
from rewardlearn.rewards.base import RewardModel, TransitionBatch
from rewardlearn.rewards.checkpoint import UnsafeCheckpointError
from rewardlearn.rewards.pretrained import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    CardInfo,
    TamperedModelError,
    load_pretrained,
    save_pretrained,
)
from rewardlearn.rewards.registry import (
    REWARD_CLASSES,
    UnknownRewardClassError,
    UntrustedReferenceError,
)

OBS = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
ACT = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
N = 10_000

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ----------------------------------------------------------------------------- builders

def _mlp(_: Any) -> RewardModel:
    from rewardlearn.rewards.mlp import MLPReward

    m = MLPReward(OBS, ACT, hidden_sizes=(8, 8), use_next_obs=True, device="cpu", seed=1)
    m.fit_normalizer(_batch(256, seed=5))
    return m


def _env(_: Any) -> RewardModel:
    from rewardlearn.rewards.env import EnvReward

    return EnvReward(OBS, ACT)


def _pendulum(_: Any) -> RewardModel:
    from rewardlearn.metrics.reference import PendulumReward

    return PendulumReward(OBS, ACT)


def _preference(_: Any) -> RewardModel:
    from rewardlearn.preference.reward import PreferenceReward

    m = PreferenceReward(OBS, ACT, ensemble_size=2, hidden_sizes=[8], device="cpu")
    rng = np.random.default_rng(0)
    data = m.learner.dataset
    for r in range(3):  # labels: segments of features, flags, labels, rounds
        data.x1.append(rng.normal(size=(5, m.features.dim)).astype(np.float32))
        data.x2.append(rng.normal(size=(5, m.features.dim)).astype(np.float32))
        data.term1.append(np.zeros(5, bool))
        data.term2.append(np.zeros(5, bool))
        data.labels.append(float(r % 2))
        data.rounds.append(r)
        for name, value in (("pad1", 0), ("pad2", 0), ("next1", None), ("next2", None)):
            if hasattr(data, name):
                getattr(data, name).append(value)
    m.learner.rounds_done, m.learner.queries_asked = 3, 3
    m.history = [{"heldout_acc": 0.5, "train_acc": 0.75}]
    return m


def _vlm(tiny_dir: str) -> RewardModel:
    from rewardlearn.vlm.reward import VLMReward

    return VLMReward(OBS, ACT, goal="a robot", baseline="a scene", alpha=0.5,
                     clip_model=tiny_dir, pretrained=None, device="cpu", threads=1,
                     batch_size=64)


def _vlm_distilled(_: Any) -> RewardModel:
    from rewardlearn.vlm.distilled import VLMDistilledReward

    m = VLMDistilledReward(OBS, ACT, goal="a robot", load_vlm=False, inputs="state",
                           hidden_sizes=(8,), device="cpu")
    with torch.no_grad():
        m.net.x_mean.fill_(0.1)
        m.net.y_std.fill_(2.0)
    m.fitted = True
    return m


def _progress_model() -> Any:
    from rewardlearn.progress.configuration import ProgressConfig
    from rewardlearn.progress.modeling import ProgressModel

    torch.manual_seed(0)
    cfg = ProgressConfig(window=2, frame_dim=8, hidden_sizes=[8], device="cpu")
    return ProgressModel(OBS, ACT, 2, np.array([0.4, 0.6]), cfg, np.zeros(4), np.ones(4),
                         ("reach", "place"))


def _progress(_: Any) -> RewardModel:
    from rewardlearn.progress.reward import ProgressReward

    m = ProgressReward(OBS, ACT, gamma=0.99)
    m.load_state_dict({"model": _progress_model().payload()})
    return m


def _episodes(n: int = 6, t: int = 20) -> list[Any]:
    from rewardlearn.demos import Episode

    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        ramp = np.linspace(0, 1, t + 1)[:, None]
        obs = (ramp * np.array([1.0, -1.0, 0.5, 2.0]) + 0.05 * rng.normal(size=(t + 1, 4)))
        out.append(Episode(obs.astype(np.float32), rng.uniform(-1, 1, (t, 2)).astype(np.float32),
                           np.zeros(t, np.float32), np.zeros(t, bool), np.zeros(t, bool),
                           (ramp[:, 0] * 2.999).astype(np.int64), ("a", "b", "c"), id=i))
    return out


def _perceptual(_: Any) -> RewardModel:
    from rewardlearn.perceptual.reward import PerceptualReward
    from rewardlearn.perceptual.training import fit_perceptual

    model = fit_perceptual(_episodes(), encoder="state", n_steps=3, heldout=0.0)
    m = PerceptualReward(OBS, ACT, encoder="state", settings={"n_steps": 3})
    m.load_state_dict({"model": model.payload()})
    return m


def _drs(_: Any) -> RewardModel:
    from rewardlearn.drs.reward import DrSReward

    return DrSReward(OBS, ACT, num_stages=3, hidden_sizes=[8], device="cpu")


def _shaped(_: Any) -> RewardModel:
    from rewardlearn.progress.potential import ProgressPotential
    from rewardlearn.shaping import ShapedReward

    potential = ProgressPotential()
    potential.load_state_dict({"model": _progress_model().payload()})
    return ShapedReward(OBS, ACT, base=_mlp(None), potential=potential, gamma=0.99)


def _action_preference(_: Any) -> RewardModel:
    from rewardlearn.select.reward import ActionPreferenceReward

    return ActionPreferenceReward(OBS, ACT, hidden_sizes=[8], device="cpu")


def _ot(_: Any) -> RewardModel:
    from rewardlearn.ot.reward import OTReward

    m = OTReward(OBS, ACT, variant="temporal")
    m.fit(_episodes())
    m.episode_rewards(_episodes(1)[0].observations[1:] + 0.1)  # sets the scale, as training does
    return m


def _vpl(_: Any) -> RewardModel:
    from rewardlearn.vpl.reward import VPLReward

    return VPLReward(OBS, ACT, latent_dim=2, hidden_sizes=[8], embed_dim=4, device="cpu")


def _pearl(_: Any) -> RewardModel:
    import tempfile

    from rewardlearn.pearl.reward import PEARLReward
    from rewardlearn.preference.reward import PreferenceReward
    from rewardlearn.rewards.checkpoint import save_reward_model

    src = PreferenceReward(OBS, ACT, hidden_sizes=[4], device="cpu")
    seg = [np.full((5, 8), k / 4, np.float32) for k in range(4)]
    src.learner.dataset.add_pairs(seg[:2], seg[2:], [np.zeros(5, bool)] * 2,
                                  [np.zeros(5, bool)] * 2, [0.0, 1.0], 0)
    source = save_reward_model(src, Path(tempfile.mkdtemp()) / "source.pt")
    return PEARLReward(OBS, ACT, source=str(source), hidden_sizes=[8], device="cpu")


BUILDERS: dict[str, Callable[[Any], RewardModel]] = {
    "MLPReward": _mlp, "EnvReward": _env, "PendulumReward": _pendulum,
    "PreferenceReward": _preference, "VLMReward": _vlm, "VLMDistilledReward": _vlm_distilled,
    "ProgressReward": _progress, "PerceptualReward": _perceptual, "DrSReward": _drs,
    "ShapedReward": _shaped, "ActionPreferenceReward": _action_preference, "OTReward": _ot,
    "VPLReward": _vpl, "PEARLReward": _pearl,
}


def _batch(n: int, seed: int = 0, frames: bool = False) -> TransitionBatch:
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, 4)).astype(np.float32)
    nxt = rng.normal(size=(n, 4)).astype(np.float32)
    done = rng.random(n) < 0.01
    pool = rng.integers(0, 256, (32, 32, 32, 3), dtype=np.uint8)
    ids = rng.integers(0, len(pool), n)
    batch = TransitionBatch(obs, rng.uniform(-1, 1, (n, 2)).astype(np.float32), nxt, done,
                            np.zeros(n, bool), frames=pool[ids] if frames else None,
                            env_rewards=rng.normal(size=n).astype(np.float32),
                            infos=[{"stage": int(k), "is_success": False}
                                   for k in rng.integers(0, 3, n)],
                            frame_ids=ids + 10**9 + seed * 100 if frames else None)
    return batch


def test_every_reward_class_in_the_package_is_registered() -> None:
    """Walk the package: each RewardModel subclass defined in it has a registry entry."""
    for info in pkgutil.walk_packages(rewardlearn.__path__, "rewardlearn."):
        if info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)
    found: set[type[RewardModel]] = set()
    todo = list(RewardModel.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__module__.startswith("rewardlearn.") and not cls.__name__.startswith("_") \
                and not inspect.isabstract(cls):  # abstract bases are not saved models
            found.add(cls)
    assert {c.__name__ for c in found} == set(REWARD_CLASSES) == set(BUILDERS)
    for cls in found:
        assert REWARD_CLASSES[cls.__name__] is cls


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_save_load_gives_identical_rewards_on_10k_transitions(name: str, tmp_path: Path,
                                                              request: pytest.FixtureRequest
                                                              ) -> None:
    tiny = request.getfixturevalue("tiny_dir") if name == "VLMReward" else None
    model = BUILDERS[name](tiny)
    folder = save_pretrained(model, tmp_path / "m", CardInfo(env="toy", command="python x"))
    config = json.loads((folder / CONFIG_NAME).read_text())
    assert config["reward_class"] == name and (folder / WEIGHTS_NAME).is_file()
    loaded = load_pretrained(folder, OBS, ACT)
    assert type(loaded) is type(model) and loaded.config() == model.config()
    batch = _batch(N, seed=1, frames=model.needs_frames)
    np.testing.assert_array_equal(loaded(batch), model(batch))
    assert loaded(batch).shape == (N,)
    # the loaded copy saves to the same config (state included)
    again = json.loads((save_pretrained(loaded, tmp_path / "again") / CONFIG_NAME).read_text())
    assert again["state"] == config["state"]


# ----------------------------------------------------------------------------- refusals

@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return save_pretrained(_mlp(None), tmp_path / "model")


def test_a_foreign_class_name_is_refused_with_the_valid_names(saved: Path) -> None:
    config = json.loads((saved / CONFIG_NAME).read_text())
    config["reward_class"] = "os:system"
    (saved / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(UnknownRewardClassError, match=r"unknown reward class 'os:system'.*"
                                                      r"MLPReward.*register_reward_class"):
        load_pretrained(saved)


def test_a_dotted_path_in_the_settings_is_not_imported(tmp_path: Path) -> None:
    folder = save_pretrained(_shaped(None), tmp_path / "shaped")
    config = json.loads((folder / CONFIG_NAME).read_text())
    config["settings"]["potential"] = {"class": "subprocess:run",
                                       "config": {"args": ["touch", str(tmp_path / "pwned")]}}
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(UntrustedReferenceError, match=r"'subprocess:run'.*trust"):
        load_pretrained(folder)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("damage", ["wrong shape", "missing key", "corrupt bytes", "extra key",
                                    "no weights"])
def test_a_tampered_tensor_file_is_refused(saved: Path, damage: str) -> None:
    from safetensors.torch import load_file, save_file

    weights = saved / WEIGHTS_NAME
    tensors = load_file(str(weights))
    key = next(k for k in tensors if k.endswith("weight"))
    config = json.loads((saved / CONFIG_NAME).read_text())
    config.pop("weights_sha256")  # a file edited by hand: the per-tensor checks still hold
    (saved / CONFIG_NAME).write_text(json.dumps(config))
    if damage == "wrong shape":
        tensors[key] = torch.zeros(3, 3)
        save_file(tensors, str(weights))
        match = rf"tensor '{key}' in model.safetensors is float32\(3, 3\), but config.json says"
    elif damage == "missing key":
        del tensors[key]
        save_file(tensors, str(weights))
        match = rf"model.safetensors has no tensor '{key}'"
    elif damage == "extra key":
        tensors["evil"] = torch.zeros(1)
        save_file(tensors, str(weights))
        match = r"holds tensors config.json does not name: \['evil'\]"
    elif damage == "corrupt bytes":
        weights.write_bytes(b"\xff" * 64)
        match = r"model.safetensors is not a readable safetensors file"
    else:
        weights.unlink()
        match = r"no model.safetensors"
    with pytest.raises(TamperedModelError, match=match):
        load_pretrained(saved)


def test_changed_values_fail_the_checksum(saved: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(saved / WEIGHTS_NAME))
    tensors = {k: v + 1 if v.is_floating_point() else v for k, v in tensors.items()}
    save_file(tensors, str(saved / WEIGHTS_NAME))
    with pytest.raises(TamperedModelError, match="SHA-256 differs"):
        load_pretrained(saved)


def test_state_that_does_not_fit_the_class_is_refused(saved: Path) -> None:
    config = json.loads((saved / CONFIG_NAME).read_text())
    config["settings"]["hidden_sizes"] = [16, 16]
    (saved / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(TamperedModelError, match=r"saved state does not fit a MLPReward"):
        load_pretrained(saved)


class _Evil:
    """Unpickling it would create ``target`` (what a malicious checkpoint does)."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.target,))


def _malicious(path: Path, target: Path, how: str) -> Path:
    payload = {"format": "rewardlearn.reward_model/1", "class": "os:system", "config": {},
               "state": {"x": _Evil(target)}, "observation_space": {}, "action_space": {}}
    if how == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    return path


@pytest.mark.parametrize("how", ["torch.save", "pickle"])
def test_a_malicious_pickle_is_refused_on_every_load_path(tmp_path: Path, how: str) -> None:
    from rewardlearn.metrics.ranking import pairs_from_preference_checkpoint
    from rewardlearn.metrics.suite import load_any
    from rewardlearn.perceptual.modeling import PerceptualModel
    from rewardlearn.preference.reward import PreferenceReward, read_resume_file
    from rewardlearn.progress.modeling import ProgressModel
    from rewardlearn.progress.reward import ProgressReward
    from rewardlearn.rewards.checkpoint import read_checkpoint

    target = tmp_path / "pwned"
    run = tmp_path / "run"
    run.mkdir()
    pt = _malicious(run / "reward_model.pt", target, how)
    other = _malicious(tmp_path / "progress_model.pt", target, how)
    calls: list[Callable[[], Any]] = [
        lambda: load_reward_model(pt, OBS, ACT),
        lambda: load_reward_model(run, OBS, ACT),  # a run folder
        lambda: load_pretrained(pt),
        lambda: read_checkpoint(pt),
        lambda: load_any(str(pt), OBS, ACT),
        lambda: load_any(str(other), OBS, ACT),
        lambda: pairs_from_preference_checkpoint(pt, OBS, ACT),
        lambda: read_resume_file(str(pt)),
        lambda: PreferenceReward(OBS, ACT, resume=str(pt)),
        lambda: ProgressModel.load(other),
        lambda: ProgressReward(OBS, ACT, path=str(other)),
        lambda: PerceptualModel.load(other),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=r"refusing to load|not a rewardlearn checkpoint"
                                             r"|neither a reward checkpoint"):
            call()
        assert not target.exists()
    if how == "torch.save":
        with pytest.raises(UnsafeCheckpointError, match=r"pathlib.*rewardlearn-convert .* --trust"):
            load_reward_model(pt)


def test_legacy_checkpoint_still_loads_safely() -> None:
    data = Path(__file__).parent / "data"
    model = load_reward_model(data / "legacy_preference_reward_model.pt")
    assert type(model).__name__ == "PreferenceReward"


def test_old_pt_and_run_folder_load_through_the_same_call(tmp_path: Path) -> None:
    model = _mlp(None)
    run = tmp_path / "run"
    save_reward_model(model, run / "reward_model.pt")
    batch = _batch(100)
    np.testing.assert_array_equal(load_reward_model(run, OBS, ACT)(batch), model(batch))
    save_pretrained(model, run / "reward_model")
    loaded = load_reward_model(str(run), OBS, ACT)
    np.testing.assert_array_equal(loaded(batch), model(batch))


def test_no_torch_load_runs_code_from_a_file() -> None:
    """Every ``torch.load`` in the package passes ``weights_only=True``, except the one behind
    ``rewardlearn-convert --trust`` (a file the user vouches for)."""
    import ast

    root = Path(rewardlearn.__file__).parent
    unsafe = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
                flag = {k.arg: k.value for k in node.keywords}.get("weights_only")
                if not (isinstance(flag, ast.Constant) and flag.value is True):
                    unsafe.append(f"{path.relative_to(root)}:{node.lineno}")
    assert unsafe == ["cli/convert.py:" + str(_trusted_line(root / "cli" / "convert.py"))]


def _trusted_line(path: Path) -> int:
    lines = path.read_text().splitlines()
    return next(i + 1 for i, line in enumerate(lines) if "weights_only=False" in line)


def _modules_with_examples() -> list[str]:
    root = Path(__file__).resolve().parents[1] / "rewardlearn"
    return sorted(".".join(p.relative_to(root.parent).with_suffix("").parts)
                  for p in root.rglob("*.py") if ">>> " in p.read_text())


@pytest.mark.parametrize("name", _modules_with_examples())
def test_every_docstring_example_runs(name: str) -> None:
    """Every ``>>>`` example in the package runs as written (Gymnasium's runnable docstring
    examples); one that needs data the test machine lacks is marked ``+SKIP`` in place."""
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
