"""Shared fixtures: headless rendering, and Hydra composition of the real configs."""

from __future__ import annotations

import json
import os
import threading
import urllib.request

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from rewardlearn.cli.schemas import register_reward_schemas

register_reward_schemas()  # conf/reward/*.yaml take their defaults from the dataclasses

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


@pytest.fixture
def compose_cfg() -> Callable[..., DictConfig]:
    """Compose ``conf/config.yaml`` with overrides, as ``train.py`` would."""

    def _compose(*overrides: str) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides))

    return _compose


TINY_CLIP_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A ``local-dir:`` folder with a tiny random-weight CLIP (config + safetensors)."""
    import json

    import torch
    from safetensors.torch import save_file

    from rewardlearn._compat import import_open_clip

    torch.manual_seed(0)
    model = import_open_clip().CLIP(**TINY_CLIP_CFG)
    folder = tmp_path_factory.mktemp("tiny_clip")
    (folder / "open_clip_config.json").write_text(json.dumps({
        "model_cfg": TINY_CLIP_CFG,
        "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073],
                           "std": [0.26862954, 0.26130258, 0.27577711]}}))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(folder / "open_clip_model.safetensors"))
    return f"local-dir:{folder}"


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch thread for the test (tiny models: on 2 cores a second thread only contends)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def annotate_over_http(url: str, stop: threading.Event,
                       people: Sequence[tuple[str, str]] = (("bot", "left"),),
                       answered: list[int] | None = None) -> None:
    """A person at the review page, until told to stop: claim the next query and answer it,
    ``people`` taking turns as ``(annotator, "left" | "right")``; each answered query id goes
    into ``answered``."""
    turn = 0
    while not stop.is_set():
        who, label = people[turn % len(people)]
        lease = urllib.request.Request(f"{url}/api/queue/next", method="POST",
                                       data=json.dumps({"annotator": who}).encode(),
                                       headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(lease, timeout=5) as r:
            body = json.loads(r.read())
        query = body.get("query") if isinstance(body, dict) else None
        if not query:
            stop.wait(0.1)
            continue
        data = json.dumps({"query_id": query["id"], "label": label, "annotator": who}).encode()
        post = urllib.request.Request(f"{url}/api/labels", data=data, method="POST",
                                      headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(post, timeout=5) as r:
            assert r.status == 201
        if answered is not None:
            answered.append(int(query["id"]))
        turn += 1
