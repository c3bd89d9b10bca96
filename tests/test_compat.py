"""open_clip (a core dependency) imports and builds a model on this machine's torch."""

from __future__ import annotations

import torch

from rewardlearn._compat import import_open_clip


def test_open_clip_imports_and_encodes() -> None:
    open_clip = import_open_clip()
    cfg = {"embed_dim": 16,
           "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16,
                          "head_width": 16},
           "text_cfg": {"context_length": 8, "vocab_size": 100, "width": 32, "heads": 2,
                        "layers": 1}}
    model = open_clip.CLIP(**cfg)
    with torch.no_grad():
        emb = model.encode_image(torch.rand(2, 3, 32, 32))
    assert emb.shape == (2, 16)
