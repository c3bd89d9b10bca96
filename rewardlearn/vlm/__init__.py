"""Vision-language models for rewards: open_clip loading, batched encoding, the VLM-RM score.

``loading`` loads CLIP models (tags, files, ``local-dir:``) and encodes frames
and prompts; ``vlmrm`` is the VLM-RM reward formula (Rocamonde et al. 2023).
"""

from rewardlearn.vlm.loading import (
    ClipBundle,
    ClipWeightsError,
    encode_images,
    encode_texts,
    load_clip,
)
from rewardlearn.vlm.vlmrm import VLMRMScorer, projection_matrix, vlmrm_reward

__all__ = [
    "ClipBundle",
    "ClipWeightsError",
    "VLMRMScorer",
    "encode_images",
    "encode_texts",
    "load_clip",
    "projection_matrix",
    "vlmrm_reward",
]
