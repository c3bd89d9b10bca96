"""Realistic-look envs for pixel rewards: generated textures, cached model file, sky drawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rewardlearn_envs.textured import grass_texture, sky_texture, textured_xml

from rewardlearn.env_factory import make_env
from rewardlearn.rendering import CameraConfig, FastRenderer


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REWARDLEARN_CACHE", str(tmp_path / "cache"))


def test_textures_are_deterministic_and_tileable() -> None:
    a, b = grass_texture(64, seed=3), grass_texture(64, seed=3)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    # greenish, and the edges match across the wrap (no seam when repeated)
    assert a[..., 1].mean() > a[..., 0].mean() and a[..., 1].mean() > a[..., 2].mean()
    assert np.abs(a[0].astype(int) - a[-1].astype(int)).mean() < 40
    sky = sky_texture(32, 32)
    assert sky[0, :, 2].mean() > sky[0, :, 0].mean()  # blue at the top


def test_textured_xml_is_cached_and_rewritten(tmp_path: Path) -> None:
    path = Path(textured_xml("humanoid.xml"))
    assert path.is_file() and str(path).startswith(str(tmp_path / "cache"))
    text = path.read_text()
    assert 'type="skybox"' in text and "rl_grass" in text and "rl_body" in text
    mtime = path.stat().st_mtime_ns
    assert textured_xml("humanoid.xml") == str(path) and path.stat().st_mtime_ns == mtime
    with pytest.raises(FileNotFoundError, match="no MuJoCo model"):
        textured_xml("no_such_model.xml")


def test_textured_humanoid_draws_sky_and_grass() -> None:
    env = make_env("humanoid_textured", seed=0, frame_size=(64, 64))
    _, info = env.reset(seed=0)
    frame = info["frame"].astype(float)
    top, bottom = frame[:8].mean(axis=(0, 1)), frame[-8:].mean(axis=(0, 1))
    assert top[2] > 120 and top[2] > top[0]            # sky: bright and blue
    assert bottom[1] > bottom[0] and bottom[1] > bottom[2]  # grass: green
    base = env.unwrapped
    cam = {"track_body": 1, "distance": 3.5, "elevation": -10.0, "azimuth": 180.0,
           "lookat": [0.0, 0.0, 1.0]}
    no_sky = FastRenderer(base.model, base.data, 64, 64, CameraConfig.from_any(cam)).render()
    assert no_sky[:8].mean() < 20  # the fast renderer skips the skybox unless asked
    env.close()
