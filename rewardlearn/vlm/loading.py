"""Load open_clip models once and encode frames and prompts with them.

:func:`load_clip` returns a :class:`ClipBundle` (model, input size, mean/std,
tokenizer, device, dtype). :func:`encode_images` takes uint8 frames
``(N, H, W, 3)`` straight from the renderer and does the preprocessing on torch
tensors (resize only when the frames are not already at the model's input
size, then the model's mean/std), batched, with no PIL per image.
:func:`encode_texts` embeds prompts once per bundle and caches them.

Weights come from an open_clip tag (downloaded to the Hugging Face cache on a
machine with internet), a local file, or a ``local-dir:`` folder. Missing
weights raise :class:`ClipWeightsError`, which says how to supply them.

Example (random weights, no download):
    >>> import numpy as np
    >>> from rewardlearn.vlm.loading import load_clip, encode_images, encode_texts
    >>> clip = load_clip("ViT-B-32", pretrained=None, device="cpu")  # doctest: +SKIP
    >>> encode_images(clip, np.zeros((2, 224, 224, 3), np.uint8)).shape  # doctest: +SKIP
    torch.Size([2, 512])
    >>> encode_texts(clip, ["a humanoid robot"]).shape  # doctest: +SKIP
    torch.Size([1, 512])
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch
import torch.nn.functional as F

from rewardlearn._compat import import_open_clip
from rewardlearn.utils import cpu_has_native_bf16, resolve_device

log = logging.getLogger("rewardlearn")

LOCAL_DIR = "local-dir:"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".npz")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


class ClipWeightsError(FileNotFoundError):
    """CLIP weights are missing and cannot be downloaded; the message says how to supply them."""


@dataclass
class ClipBundle:
    """A loaded CLIP model and everything needed to feed it.

    Attributes:
        model: the open_clip model, in eval mode, gradients off.
        image_size: ``(height, width)`` the image tower expects.
        mean, std: per-channel normalisation, ``(3,)`` tensors on ``device``.
        tokenizer: open_clip tokenizer (list of strings -> token tensor).
        device: where the model runs.
        dtype: compute dtype. On CUDA ``float16``/``bfloat16`` mean autocast; on CPU
            ``bfloat16`` means the weights themselves are cast (CPU autocast re-casts
            weights and activations on every call and was 5-20x slower here).
        name, pretrained: what was loaded (for logs and checkpoints).
        resize_mode: ``shortest`` (resize the short side, centre crop) or ``squash``.
        text_cache: prompt -> normalised embedding, filled by :func:`encode_texts`.
        tuner: picks CPU thread counts for :func:`encode_images` by measuring.
    """

    model: torch.nn.Module
    image_size: tuple[int, int]
    mean: torch.Tensor
    std: torch.Tensor
    tokenizer: Callable[..., torch.Tensor]
    device: torch.device
    dtype: torch.dtype
    name: str = ""
    pretrained: str | None = None
    resize_mode: str = "shortest"
    text_cache: dict[str, torch.Tensor] = field(default_factory=dict)
    tuner: ThreadTuner = field(default_factory=lambda: ThreadTuner())

    @property
    def embed_dim(self) -> int:
        """Size of the joint embedding."""
        dim = getattr(getattr(self.model, "visual", None), "output_dim", None)
        if dim is not None:
            return int(dim)
        return int(encode_texts(self, ["a photo"]).shape[-1])

    @property
    def weights_cast(self) -> bool:
        """Whether the weights are stored in ``dtype`` (bf16 on CPU) instead of autocast."""
        return self.device.type != "cuda" and self.dtype != torch.float32

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Autocast at ``dtype`` on CUDA (a no-op for fp32 and for cast weights)."""
        if self.dtype == torch.float32 or self.weights_cast:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """Compute dtype for a precision name.

    ``auto`` is fp16 autocast on CUDA (as VLM-RM), bf16 on CPUs with native bf16
    (AVX512-BF16 or AMX: ViT-B-32 encodes 3.5x faster than fp32 on our 2-core
    CPU, image embeddings within cosine 0.9999 of fp32) and fp32 on other CPUs.
    On CPU ``bf16`` casts the weights (see :attr:`ClipBundle.weights_cast`);
    ``fp16`` is CUDA only.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else torch.float32
    if precision == "fp32":
        return torch.float32
    if device.type != "cuda" and precision == "fp16":
        raise ValueError(f"precision=fp16 is autocast on CUDA; on {device.type} use "
                         "precision=fp32 (or auto, or bf16)")
    return torch.float16 if precision == "fp16" else torch.bfloat16


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub answers a TCP connect (assumed yes behind a proxy)."""
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or 443
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _hub_offline_if_unreachable() -> Iterator[None]:
    """Serve tags from the local HF cache at once when the Hub cannot be reached.

    Without this, ``huggingface_hub`` retries for about a minute before it
    falls back to the cache or fails.
    """
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or _hub_reachable():
        yield
        return
    log.info("Hugging Face Hub unreachable: loading CLIP weights from the local cache only")
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = False


def _how_to_supply(name: str, pretrained: str | None) -> str:
    tag = pretrained or "<tag>"
    return (
        "Supply the weights in one of these ways:\n"
        f"  1. Hugging Face cache: on a machine with internet run\n"
        f"       python -c \"import open_clip; open_clip.create_model('{name}', "
        f"pretrained='{tag}')\"\n"
        "     and copy the downloaded folder (~/.cache/huggingface/hub/models--...) into this\n"
        "     machine's HF cache (HF_HOME or HF_HUB_CACHE), or pass cache_dir=<that folder>;\n"
        "  2. a local file: pretrained=/path/to/open_clip_pytorch_model.bin (or .safetensors);\n"
        "     OpenAI weights from a file also need quick_gelu=True;\n"
        "  3. a folder: name='local-dir:/path/to/folder' holding open_clip_config.json and\n"
        "     open_clip_model.safetensors (the layout of the hf-hub open_clip repos).\n"
        "For speed tests only, pretrained=None builds the model with random weights."
    )


def _looks_like_path(value: str) -> bool:
    return os.sep in value or value.endswith(_WEIGHT_SUFFIXES) or value.startswith((".", "~"))


def _check_source(name: str, pretrained: str | None) -> None:
    """Fail early, with the fix, for unknown names/tags and missing files or folders."""
    oc = import_open_clip()
    if name.startswith(LOCAL_DIR):
        folder = Path(name[len(LOCAL_DIR):]).expanduser()
        config = folder / "open_clip_config.json"
        weights = [p for p in folder.glob("*") if p.suffix in _WEIGHT_SUFFIXES] \
            if folder.is_dir() else []
        if not config.is_file() or not weights:
            missing = "open_clip_config.json" if not config.is_file() else "a weights file"
            raise ClipWeightsError(f"CLIP folder {str(folder)!r} has no {missing}.\n"
                                   + _how_to_supply("ViT-B-32", None))
        return
    if name.startswith("hf-hub:"):
        return
    if oc.get_model_config(name.replace("/", "-")) is None:
        raise ValueError(f"unknown open_clip model {name!r}; e.g. ViT-B-32, ViT-L-14, ViT-H-14, "
                         "ViT-bigG-14 (open_clip.list_models() lists all)")
    if pretrained is None or oc.get_pretrained_cfg(name, pretrained):
        return
    if os.path.isfile(os.path.expanduser(pretrained)):
        return
    if _looks_like_path(pretrained):
        raise ClipWeightsError(f"CLIP weights file {pretrained!r} not found.\n"
                               + _how_to_supply(name, None))
    tags = oc.list_pretrained_tags_by_model(name)
    raise ValueError(f"unknown pretrained tag {pretrained!r} for {name}; tags: {tags}, "
                     "or a weights file path")


def _auto_quick_gelu(name: str, pretrained: str | None) -> bool:
    """OpenAI weights were trained with QuickGELU: tags that say so, or files named *openai*."""
    if pretrained is None or name.startswith((LOCAL_DIR, "hf-hub:")) or "quickgelu" in name:
        return False
    cfg = import_open_clip().get_pretrained_cfg(name, pretrained)
    if cfg:
        return bool(cfg.get("quick_gelu", False))
    return "openai" in os.path.basename(pretrained).lower()


_BUNDLES: dict[tuple[Any, ...], ClipBundle] = {}


def load_clip(
    name: str = "ViT-B-32",
    pretrained: str | None = "laion2b_s34b_b79k",
    device: str = "auto",
    precision: str = "auto",
    cache_dir: str | None = None,
    quick_gelu: bool | None = None,
    reuse: bool = True,
) -> ClipBundle:
    """Load an open_clip model for inference.

    Args:
        name: an open_clip model name (``ViT-B-32``, ``ViT-bigG-14``...),
            ``local-dir:/path`` (folder with ``open_clip_config.json`` and
            weights; ``pretrained`` is then ignored) or ``hf-hub:org/repo``.
        pretrained: an open_clip tag (downloaded once into the HF cache), a
            path to a weights file, or ``None`` for random weights.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:1``...
        precision: ``auto`` (see :func:`resolve_precision`), ``fp32``, ``fp16``
            (CUDA autocast) or ``bf16`` (autocast on CUDA, cast weights on CPU).
        cache_dir: where downloaded weights live (default: the HF cache).
        quick_gelu: use QuickGELU activations; ``None`` decides from the tag
            (OpenAI tags) or a file name containing ``openai``.
        reuse: return the bundle already loaded with the same arguments.

    Raises:
        ClipWeightsError: weights missing and not downloadable (says how to supply them).
        ValueError: unknown model name, tag or precision.
    """
    dev = resolve_device(device)
    dtype = resolve_precision(precision, dev)
    if pretrained is not None and not name.startswith((LOCAL_DIR, "hf-hub:")):
        pretrained = os.path.expanduser(pretrained) if _looks_like_path(pretrained) else pretrained
    qg = _auto_quick_gelu(name, pretrained) if quick_gelu is None else bool(quick_gelu)
    key = (name, pretrained, str(dev), dtype, cache_dir, qg)
    if reuse and key in _BUNDLES:
        return _BUNDLES[key]
    _check_source(name, pretrained)
    oc = import_open_clip()
    schema = name.startswith((LOCAL_DIR, "hf-hub:"))
    from_hub = name.startswith("hf-hub:") or (
        not schema and pretrained is not None and bool(oc.get_pretrained_cfg(name, pretrained)))
    try:
        with _hub_offline_if_unreachable() if from_hub else contextlib.nullcontext():
            model = oc.create_model(name, pretrained=None if schema else pretrained,
                                    device=dev, precision="fp32", cache_dir=cache_dir,
                                    force_quick_gelu=qg)
            tokenizer = oc.get_tokenizer(name, cache_dir=cache_dir)
    except (RuntimeError, FileNotFoundError, OSError) as e:
        raise ClipWeightsError(
            f"could not load CLIP weights for {name!r} (pretrained={pretrained!r}): {e}\n"
            + _how_to_supply(name, pretrained)) from e
    if pretrained is None and not schema:
        log.warning("CLIP %s has random weights (pretrained=None): scores are not semantic", name)
    model.eval().requires_grad_(False)
    if dev.type != "cuda" and dtype != torch.float32:
        model.to(dtype)
    pp = getattr(model.visual, "preprocess_cfg", {}) or {}
    size = pp.get("size", model.visual.image_size)
    size = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
    mean = torch.tensor(pp.get("mean", oc.OPENAI_DATASET_MEAN), dtype=torch.float32, device=dev)
    std = torch.tensor(pp.get("std", oc.OPENAI_DATASET_STD), dtype=torch.float32, device=dev)
    bundle = ClipBundle(model=model, image_size=size, mean=mean, std=std,
                        tokenizer=tokenizer, device=dev,
                        dtype=dtype, name=name, pretrained=pretrained,
                        resize_mode=str(pp.get("resize_mode", "shortest")))
    if reuse:
        _BUNDLES[key] = bundle
    return bundle


@contextlib.contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads on this thread, then restore."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def available_cores() -> int:
    """CPU cores this process may run on."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, int(cores or 1))


class ThreadTuner:
    """Chooses the CPU thread count for encoding by measuring, per batch-size bucket.

    The best count depends on the batch and on what else runs on the machine:
    on our shared 2-core CPU, ViT-B-32 at batch 1 ran at 13 images/s with 2
    threads when the machine was idle but collapsed to 0.4 images/s with 2
    threads (5 with 1) under load. So each bucket (batch size rounded up to a
    power of two) tries 1 thread and all cores, then uses the faster one
    (exponential average of images/s), re-trying the other every
    ``explore_every`` calls so that it follows changes in load.
    """

    def __init__(self, candidates: Sequence[int] | None = None, explore_every: int = 25,
                 smoothing: float = 0.3) -> None:
        self.candidates = sorted(set(candidates or (1, available_cores())))
        self.explore_every = int(explore_every)
        self.smoothing = float(smoothing)
        self.rates: dict[tuple[int, int], float] = {}
        self.calls: dict[int, int] = {}

    @staticmethod
    def bucket(n_images: int) -> int:
        return 1 << max(0, int(n_images) - 1).bit_length()

    def choose(self, n_images: int) -> int:
        """Thread count for a batch of ``n_images``."""
        b = self.bucket(n_images)
        self.calls[b] = self.calls.get(b, 0) + 1
        if self.calls[b] == 1:
            return self.candidates[-1]  # warm-up call, not recorded
        untried = [c for c in self.candidates if (b, c) not in self.rates]
        if untried:
            return untried[0]
        best = max(self.candidates, key=lambda c: self.rates[(b, c)])
        if len(self.candidates) > 1 and self.calls[b] % self.explore_every == 0:
            others = [c for c in self.candidates if c != best]
            return others[(self.calls[b] // self.explore_every) % len(others)]
        return best

    def record(self, n_images: int, threads: int, seconds: float) -> None:
        """Fold a measured call into the rate of ``(bucket, threads)``."""
        b = self.bucket(n_images)
        if self.calls.get(b, 0) <= 1 or seconds <= 0:
            return
        rate = n_images / seconds
        old = self.rates.get((b, threads))
        self.rates[(b, threads)] = rate if old is None else \
            (1 - self.smoothing) * old + self.smoothing * rate


def preprocess_frames(bundle: ClipBundle, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` frames -> normalised float ``(N, 3, h, w)`` on the bundle's device.

    Frames already at the model's input size are only normalised; others are
    resized (bicubic, antialiased) as open_clip does: the short side to the
    input size, then a centre crop (``resize_mode=squash``: straight resize).
    """
    if isinstance(frames, np.ndarray) and not frames.flags.writeable:
        frames = frames.copy()
    x = torch.as_tensor(frames)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"frames must be (N, H, W, 3) uint8, got shape {tuple(x.shape)}")
    x = x.to(bundle.device, non_blocking=True).permute(0, 3, 1, 2).float()
    th, tw = bundle.image_size
    if x.shape[-2:] != (th, tw):
        h, w = x.shape[-2:]
        if bundle.resize_mode == "squash":
            size = (th, tw)
        else:
            scale = max(th / h, tw / w)
            size = (max(th, round(h * scale)), max(tw, round(w * scale)))
        x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)
        top, left = (size[0] - th) // 2, (size[1] - tw) // 2
        x = x[:, :, top:top + th, left:left + tw].clamp_(0.0, 255.0)
    scale_c = (1.0 / (255.0 * bundle.std)).view(1, 3, 1, 1)
    shift_c = (bundle.mean / bundle.std).view(1, 3, 1, 1)
    return x.mul_(scale_c).sub_(shift_c)


def encode_images(
    bundle: ClipBundle,
    frames: np.ndarray | torch.Tensor,
    batch_size: int = 256,
    threads: int | None = None,
) -> torch.Tensor:
    """L2-normalised image embeddings ``(N, D)`` float32 on the bundle's device.

    Args:
        bundle: from :func:`load_clip`.
        frames: uint8 ``(N, H, W, 3)`` (numpy or torch), any size; render them at
            ``bundle.image_size`` to skip the resize.
        batch_size: images per forward pass (bounds memory).
        threads: CPU threads for this call (``None``: chosen by ``bundle.tuner``);
            ignored on CUDA.
    """
    n = len(frames)
    if n == 0:
        return torch.zeros(0, bundle.embed_dim, device=bundle.device)
    cpu = bundle.device.type == "cpu"
    out = []
    for s in range(0, n, batch_size):
        chunk = frames[s:s + batch_size]
        n_threads = (threads or bundle.tuner.choose(len(chunk))) if cpu else None
        t = time.perf_counter()
        with cpu_threads(n_threads), torch.no_grad(), bundle.autocast():
            x = preprocess_frames(bundle, chunk)
            if bundle.weights_cast:
                x = x.to(bundle.dtype)
            emb = bundle.model.encode_image(x)  # type: ignore[operator]
            out.append(F.normalize(emb.float(), dim=-1))
        if cpu and threads is None and n_threads is not None:
            bundle.tuner.record(len(chunk), n_threads, time.perf_counter() - t)
    return torch.cat(out)


def encode_texts(bundle: ClipBundle, prompts: Sequence[str]) -> torch.Tensor:
    """L2-normalised text embeddings ``(len(prompts), D)``; each prompt is encoded once.

    The embeddings are cached in ``bundle.text_cache``: the text tower runs once
    per new prompt and bundle.
    """
    prompts = [str(p) for p in prompts]
    new = list(dict.fromkeys(p for p in prompts if p not in bundle.text_cache))
    if new:
        with torch.no_grad(), bundle.autocast():
            tokens = bundle.tokenizer(new).to(bundle.device)
            emb = F.normalize(bundle.model.encode_text(tokens).float(), dim=-1)  # type: ignore[operator]
        for p, e in zip(new, emb, strict=True):
            bundle.text_cache[p] = e
    if not prompts:
        raise ValueError("no prompts to encode")
    return torch.stack([bundle.text_cache[p] for p in prompts])


__all__ = [
    "ClipBundle",
    "ClipWeightsError",
    "ThreadTuner",
    "available_cores",
    "cpu_has_native_bf16",
    "cpu_threads",
    "encode_images",
    "encode_texts",
    "load_clip",
    "preprocess_frames",
    "resolve_precision",
]
