"""Gymnasium MuJoCo envs with a realistic look, for rewards that read pixels (VLM-RM).

VLM-RM (Rocamonde et al. 2023) found the scene's look decisive: CLIP rewarded
"kneeling" in 36% of episodes with MuJoCo's default checkerboard-on-black look
and 91% with realistic floor and sky textures (100% with the tracking camera of
``conf/env/humanoid.yaml`` as well). The anchor shipped photo textures; this module
makes comparable ones procedurally (a sky gradient with soft clouds as the skybox,
a grass floor, a matte skin-toned body), so nothing has to be downloaded:

* :func:`textured_xml` rewrites any Gymnasium MuJoCo asset (``humanoid.xml``,
  ``hopper.xml``...) with those textures and returns the path of the new file
  (cached under ``$REWARDLEARN_CACHE`` or ``~/.cache/rewardlearn``);
* importing :mod:`rewardlearn_envs` registers ``rewardlearn/HumanoidTextured-v5``,
  Humanoid-v5 with that look (``env=humanoid_textured``).

The sky only shows when the skybox is drawn: the env config's camera sets
``skybox: true`` (the fast renderer leaves it off otherwise).

Example:
    >>> import gymnasium as gym
    >>> import rewardlearn_envs
    >>> env = gym.make("rewardlearn/HumanoidTextured-v5")
    >>> env.unwrapped.model.ntex >= 3
    True
    >>> env.close()
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

TEXTURE_VERSION = 1
"""Bump when the generated textures change, so cached files are rebuilt."""
TEXTURE_SIZE = 512
"""Side of the generated floor texture (pixels)."""


def cache_dir() -> Path:
    """Where generated assets live: ``$REWARDLEARN_CACHE`` or ``~/.cache/rewardlearn``."""
    root = os.environ.get("REWARDLEARN_CACHE") or Path.home() / ".cache" / "rewardlearn"
    return Path(root) / "textured"


def _fractal_noise(size: int, rng: np.random.Generator, octaves: int = 5) -> np.ndarray:
    """Tileable value noise in [0, 1] of shape ``(size, size)`` (sum of upsampled grids).

    ``size`` should be a power of two (at least 4) so every octave's grid divides it.
    """
    out = np.zeros((size, size))
    amp, total = 1.0, 0.0
    for o in range(octaves):
        cells = 4 * 2**o
        if cells > size:
            break
        grid = rng.random((cells, cells))
        reps = size // cells
        # bilinear upsampling of a periodic grid keeps the texture tileable
        idx = np.arange(size) / reps
        i0 = np.floor(idx).astype(int) % cells
        i1 = (i0 + 1) % cells
        f = idx - np.floor(idx)
        f = f * f * (3 - 2 * f)
        rows = grid[i0] * (1 - f)[:, None] + grid[i1] * f[:, None]
        layer = rows[:, i0] * (1 - f)[None, :] + rows[:, i1] * f[None, :]
        out += amp * layer
        total += amp
        amp *= 0.55
    return out / total


def grass_texture(size: int = TEXTURE_SIZE, seed: int = 0) -> np.ndarray:
    """A tileable grass-like RGB texture ``(size, size, 3)`` uint8."""
    rng = np.random.default_rng(seed)
    n = _fractal_noise(size, rng)
    blades = rng.random((size, size)) ** 3
    dark = np.array([46, 78, 30], dtype=float)
    light = np.array([112, 150, 62], dtype=float)
    t = np.clip(0.65 * n + 0.35 * blades, 0.0, 1.0)[..., None]
    return (dark * (1 - t) + light * t).astype(np.uint8)


def sky_texture(width: int = 256, height: int = 256, seed: int = 1) -> np.ndarray:
    """A sky RGB image: blue at the top fading to a pale horizon, with soft clouds."""
    rng = np.random.default_rng(seed)
    v = np.linspace(0.0, 1.0, height)[:, None, None]
    zenith = np.array([70, 125, 200], dtype=float)
    horizon = np.array([205, 222, 240], dtype=float)
    sky = zenith * (1 - v) + horizon * v
    clouds = _fractal_noise(max(width, height), rng)[:height, :width]
    c = np.clip((clouds - 0.55) * 3.0, 0.0, 1.0)[..., None] * (1 - v) * 0.8
    out = sky * (1 - c) + 250.0 * c
    return np.broadcast_to(out, (height, width, 3)).astype(np.uint8)


def _save_png(image: np.ndarray, path: Path) -> None:
    from PIL import Image

    tmp = path.with_suffix(f".{os.getpid()}.tmp.png")
    Image.fromarray(image).save(tmp)
    os.replace(tmp, path)


def _rewrite(xml: str, floor_png: str, sky_png: str) -> str:
    """The model XML with the generated textures and matte materials."""
    root = ET.fromstring(xml)
    asset = root.find("asset")
    if asset is None:
        asset = ET.SubElement(root, "asset")
    for tex in list(asset.findall("texture")):
        if tex.get("type") == "skybox":
            asset.remove(tex)
    ET.SubElement(asset, "texture", {"name": "rl_sky", "type": "skybox", "file": sky_png})
    ET.SubElement(asset, "texture", {"name": "rl_grass", "type": "2d", "file": floor_png})
    ET.SubElement(asset, "material", {"name": "rl_floor", "texture": "rl_grass",
                                      "texrepeat": "8 8", "reflectance": "0",
                                      "specular": "0.05", "shininess": "0.1"})
    ET.SubElement(asset, "material", {"name": "rl_body", "rgba": "0.83 0.68 0.58 1",
                                      "specular": "0.2", "shininess": "0.3"})
    world = root.find("worldbody")
    if world is None:
        raise ValueError("model XML has no <worldbody>")
    for geom in world.iter("geom"):
        if geom.get("type") == "plane":
            geom.set("material", "rl_floor")
            geom.attrib.pop("rgba", None)
    default = root.find("default")
    dgeom = default.find("geom") if default is not None else None
    if dgeom is not None:
        dgeom.set("material", "rl_body")
        dgeom.attrib.pop("rgba", None)
    for body in world.findall("body"):
        for geom in body.iter("geom"):
            if geom.get("material") is None:
                geom.set("material", "rl_body")
            geom.attrib.pop("rgba", None)
    return ET.tostring(root, encoding="unicode")


def textured_xml(asset: str = "humanoid.xml") -> str:
    """Path of ``asset`` (a Gymnasium MuJoCo model file) rewritten with realistic textures.

    ``asset`` is a file name under Gymnasium's ``envs/mujoco/assets`` or a path. The
    result is cached by content, so every process (subprocess envs too) shares it.
    """
    src = Path(asset)
    if not src.is_file():
        import gymnasium.envs.mujoco as gm

        src = Path(gm.__file__).parent / "assets" / asset
        if not src.is_file():
            raise FileNotFoundError(f"no MuJoCo model {asset!r} (a path or a Gymnasium asset)")
    xml = src.read_text()
    key = hashlib.sha1(f"{TEXTURE_VERSION}:{xml}".encode()).hexdigest()[:12]
    out_dir = cache_dir() / f"{src.stem}-{key}"
    out = out_dir / src.name
    if out.is_file():
        return str(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    floor, sky = out_dir / "grass.png", out_dir / "sky.png"
    _save_png(grass_texture(), floor)
    _save_png(sky_texture(), sky)
    text = _rewrite(xml, floor_png=str(floor), sky_png=str(sky))
    with tempfile.NamedTemporaryFile("w", dir=out_dir, suffix=".xml", delete=False) as f:
        f.write(text)
    os.replace(f.name, out)
    return str(out)


def make_textured_humanoid(**kwargs: Any) -> Any:
    """Humanoid-v5 with the realistic look (entry point of ``rewardlearn/HumanoidTextured-v5``)."""
    from gymnasium.envs.mujoco.humanoid_v5 import HumanoidEnv

    kwargs.setdefault("xml_file", textured_xml("humanoid.xml"))
    return HumanoidEnv(**kwargs)


__all__ = ["grass_texture", "make_textured_humanoid", "sky_texture", "textured_xml"]
