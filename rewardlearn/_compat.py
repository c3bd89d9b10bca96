"""Import helpers for optional heavy dependencies.

``open_clip`` imports ``torchvision``. Where torch is a CPU-only build but
torchvision is the PyPI (CUDA) build of the same version, torchvision's C++ ops
cannot load and its import fails with "operator torchvision::nms does not
exist". The image transforms that open_clip uses do not need those ops, so
:func:`import_open_clip` declares the two missing operator schemas and retries.
Detection ops (``torchvision.ops.nms``) stay unavailable in that setting.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

_SHIM: Any = None


def _declare_torchvision_ops() -> None:
    global _SHIM
    if _SHIM is not None:
        return
    import torch

    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _SHIM = lib


def import_torchvision() -> ModuleType:
    """``import torchvision``, working around a CPU torch with a CUDA torchvision build."""
    try:
        return importlib.import_module("torchvision")
    except RuntimeError as e:
        if "torchvision::" not in str(e):
            raise
    import sys

    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    _declare_torchvision_ops()
    return importlib.import_module("torchvision")


def import_open_clip() -> ModuleType:
    """``import open_clip`` (see the module docstring for the torchvision workaround)."""
    import_torchvision()
    return importlib.import_module("open_clip")
