"""rewardlearn: reward learning for robotics on Gymnasium, MuJoCo and Stable-Baselines3.

Importing the package selects headless rendering defaults (``MUJOCO_GL=egl``,
SDL's dummy video driver) unless the user set them already; MuJoCo reads
``MUJOCO_GL`` once, at its first import, so import rewardlearn before making
MuJoCo envs.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

__version__ = "0.1.0"
