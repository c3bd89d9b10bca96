"""Frozen observation encoders shared by the progress and perceptual models.

One interface, :class:`Encoder`: ``embed(obs, frames) -> (N, dim)`` floats, with
``needs_frames`` (read rendered frames or the state), ``frame_size`` (the frames it
wants), ``spec()`` (how to rebuild it: ``{"target", "kwargs"}``) and, for encoders
trained on the demos, ``fit`` plus ``state_dict``/``load_state_dict``.

Built in (short names for :func:`build_encoder`):

- ``clip``: the open_clip image tower (:func:`rewardlearn.vlm.loading.load_clip`, the
  same loader and offline error as the VLM reward),
- ``torchvision``: a torchvision backbone (``resnet18``...) with weights from a local file,
- ``state``: the raw state features (selected indices of the observation),
- ``relative``: object-centric state features, differences between parts of the state
  (object minus hand, goal minus object) plus kept raw ones,
- ``downsample``: colour means over a grid (training-free baseline),
- ``tcn``: a small CNN trained self-supervised on the demos' frames with a
  time-contrastive triplet loss (Sermanet et al. 2018, single view), for settings
  with no pretrained weights.

Frame embeddings are cached per frame (:class:`EmbeddingCache`, keyed by a hash of
the frame's bytes), so a frame seen as ``s'`` and then as ``s`` is encoded once.

The older frame-only protocol :class:`FrameEncoder` (``dim``, ``frame_size``,
``__call__(frames)``) is kept: every frame encoder here satisfies it.

Example:
    >>> import numpy as np
    >>> from rewardlearn.encoders import build_encoder
    >>> enc = build_encoder({"target": "downsample", "kwargs": {"grid": 4}})
    >>> enc.embed(None, np.zeros((2, 84, 84, 3), np.uint8)).shape
    (2, 48)
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rewardlearn.rewards.base import Obs
from rewardlearn.rewards.registry import allow_subclasses_of
from rewardlearn.utils import guard_active, import_object

log = logging.getLogger("rewardlearn")


@runtime_checkable
class FrameEncoder(Protocol):
    """A frozen image encoder: ``(N, H, W, 3)`` uint8 frames to ``(N, dim)`` floats."""

    dim: int
    frame_size: tuple[int, int]

    def __call__(self, frames: np.ndarray) -> np.ndarray: ...


def state_rows(obs: Obs) -> np.ndarray:
    """``(N, D)`` float32 state features of a batch (a dict observation's ``state`` entry)."""
    if isinstance(obs, dict):
        if "state" not in obs:
            raise ValueError(f"dict observation without a 'state' entry (keys {sorted(obs)})")
        obs = obs["state"]
    x = np.asarray(obs, dtype=np.float32)
    return x.reshape(len(x), -1)


def _check_frames(frames: np.ndarray | None, who: str) -> np.ndarray:
    if frames is None:
        raise ValueError(f"the {who} encoder reads frames, but none were given (collect the "
                         "demos with frames=true; in an env, the wrapper renders them)")
    f = np.asarray(frames)
    if f.ndim != 4 or f.shape[-1] != 3:
        raise ValueError(f"frames must be (N, H, W, 3) uint8, got shape {f.shape}")
    return f


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` -> float ``(N, 3, h, w)`` in [0, 1] at ``size`` (bilinear)."""
    x = torch.as_tensor(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return x


@allow_subclasses_of
class Encoder:
    """Base class of the encoders: observations (and frames) to ``(N, dim)`` features.

    Attributes:
        name: short name (logs, benchmark tables).
        dim: feature size (``-1`` until known, for ``state`` before it sees data).
        frame_size: ``(height, width)`` of the frames it reads.
        needs_frames: reads rendered frames rather than the state.
        trainable: learns from the demos (:meth:`fit`); its weights are in :meth:`state_dict`.
    """

    name = "encoder"
    dim: int = -1
    frame_size: tuple[int, int] = (84, 84)
    needs_frames = True
    trainable = False

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs

    def embed(self, obs: Obs | None, frames: np.ndarray | None = None) -> np.ndarray:
        """``(N, dim)`` float32 features of a batch (frames for frame encoders)."""
        return self(_check_frames(frames, self.name))

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """Frame encoders: ``(N, H, W, 3)`` uint8 -> ``(N, dim)`` (the FrameEncoder protocol)."""
        raise TypeError(f"the {self.name} encoder does not read frames")

    def fit(self, states: Sequence[np.ndarray], frames: Sequence[np.ndarray] | None
            ) -> dict[str, Any]:
        """Train on demo episodes (per-episode states and frames); frozen ones do nothing."""
        return {}

    def spec(self) -> dict[str, Any]:
        """``{"target": "module:Class", "kwargs": {...}}`` to rebuild it."""
        cls = type(self)
        return {"target": f"{cls.__module__}:{cls.__qualname__}", "kwargs": dict(self.kwargs)}

    def state_dict(self) -> dict[str, Any]:
        """Trained weights (empty for frozen encoders)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        if state:
            raise ValueError(f"the {self.name} encoder has no trained state to load")


class DownsampleEncoder(Encoder):
    """Colour means over a ``grid x grid`` partition of the frame, in [0, 1].

    A training-free stand-in for a pretrained encoder (CLIP, DINO...): cheap,
    deterministic and independent of the frame size.
    """

    name = "downsample"

    def __init__(self, grid: int = 8, frame_size: tuple[int, int] | list[int] = (84, 84)) -> None:
        super().__init__(grid=int(grid), frame_size=[int(frame_size[0]), int(frame_size[1])])
        self.grid = int(grid)
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        self.dim = self.grid * self.grid * 3

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        f = np.asarray(frames, dtype=np.float32) / 255.0
        n, h, w, c = f.shape
        rows = np.array_split(np.arange(h), self.grid)
        cols = np.array_split(np.arange(w), self.grid)
        out = np.empty((n, self.grid, self.grid, c), dtype=np.float32)
        for i, r in enumerate(rows):
            band = f[:, r].mean(axis=1)
            for j, cidx in enumerate(cols):
                out[:, i, j] = band[:, cidx].mean(axis=1)
        return out.reshape(n, -1)


class StateEncoder(Encoder):
    """The raw state features (optionally only ``indices``); reads no frames."""

    name = "state"
    needs_frames = False

    def __init__(self, indices: list[int] | None = None) -> None:
        super().__init__(indices=None if indices is None else [int(i) for i in indices])
        self.indices = None if indices is None else np.asarray(indices, dtype=np.int64)
        self.dim = -1 if indices is None else len(indices)

    def embed(self, obs: Obs | None, frames: np.ndarray | None = None) -> np.ndarray:
        if obs is None:
            raise ValueError("the state encoder needs observations")
        x = state_rows(obs)
        if self.indices is not None:
            if self.indices.max(initial=-1) >= x.shape[1]:
                raise ValueError(f"state indices {self.indices.tolist()} out of range for "
                                 f"{x.shape[1]} state features")
            x = x[:, self.indices]
        self.dim = x.shape[1]
        return x


class ClipImageEncoder(Encoder):
    """The open_clip image tower (L2-normalised embeddings), loaded like ``reward=vlm``.

    Args:
        model, pretrained: as :func:`rewardlearn.vlm.loading.load_clip` (``local-dir:``
            folders, weight files, tags; ``pretrained=None``: random weights).
        device, precision: where and how it runs.
        batch_size: images per forward pass.
    """

    name = "clip"

    def __init__(self, model: str = "ViT-B-32", pretrained: str | None = "laion2b_s34b_b79k",
                 device: str = "cpu", precision: str = "auto", batch_size: int = 64) -> None:
        from rewardlearn.vlm.loading import load_clip

        super().__init__(model=model, pretrained=pretrained, device=device,
                         precision=precision, batch_size=int(batch_size))
        self.bundle = load_clip(model, pretrained, device=device, precision=precision)
        self.frame_size = self.bundle.image_size
        self.dim = self.bundle.embed_dim
        self.batch_size = int(batch_size)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        from rewardlearn.vlm.loading import encode_images

        emb = encode_images(self.bundle, np.asarray(frames), batch_size=self.batch_size)
        return emb.float().cpu().numpy()


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class TorchvisionEncoder(Encoder):
    """A torchvision classification backbone with its head removed (pooled features).

    Args:
        arch: a ``torchvision.models`` name (``resnet18``, ``resnet50``, ``efficientnet_b0``...).
        weights: a local ``.pth``/``.pt`` state dict for that architecture (nothing is
            downloaded); ``None`` only with ``allow_random=True`` (a random-weight baseline).
        allow_random: accept random weights.
        frame_size: input size the frames are resized to.
        device: torch device.
        batch_size: images per forward pass.
    """

    name = "torchvision"

    def __init__(self, arch: str = "resnet18", weights: str | None = None,
                 allow_random: bool = False, frame_size: tuple[int, int] | list[int] = (224, 224),
                 device: str = "cpu", batch_size: int = 64) -> None:
        from rewardlearn._compat import import_torchvision

        super().__init__(arch=arch, weights=weights, allow_random=bool(allow_random),
                         frame_size=[int(frame_size[0]), int(frame_size[1])], device=device,
                         batch_size=int(batch_size))
        tv = import_torchvision()
        try:
            net = tv.models.get_model(arch, weights=None)
        except ValueError as e:
            raise ValueError(f"unknown torchvision architecture {arch!r}: {e}") from None
        if weights is None:
            if not allow_random:
                raise FileNotFoundError(
                    f"torchvision encoder {arch!r} needs local weights: pass weights=<path to a "
                    f"{arch} state dict .pth> (e.g. saved from torchvision.models.{arch}("
                    "weights='DEFAULT').state_dict() on a machine with internet), or "
                    "allow_random=true for a random-weight baseline")
            log.warning("torchvision %s has random weights: features are not pretrained", arch)
        else:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"torchvision weights {str(path)!r} not found (a state "
                                        f"dict file for {arch})")
            state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        head = next((n for n in ("fc", "classifier", "heads", "head") if hasattr(net, n)), None)
        if head is None:
            raise ValueError(f"cannot find the classification head of {arch!r}")
        setattr(net, head, nn.Identity())
        self.device = torch.device(device)
        self.net = net.eval().requires_grad_(False).to(self.device)
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        self.batch_size = int(batch_size)
        with torch.no_grad():
            probe = torch.zeros(1, 3, *self.frame_size, device=self.device)
            self.dim = int(self.net(probe).reshape(1, -1).shape[1])
        self.mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        out = []
        with torch.no_grad():
            for s in range(0, len(frames), self.batch_size):
                x = resize_frames(frames[s:s + self.batch_size], self.frame_size).to(self.device)
                out.append(self.net((x - self.mean) / self.std).reshape(len(x), -1).cpu())
        if not out:
            return np.zeros((0, self.dim), np.float32)
        return torch.cat(out).numpy().astype(np.float32)


class SmallConvNet(nn.Module):
    """Four stride-2 convolutions, global average pooling, a linear projection."""

    def __init__(self, dim: int, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 5, 2, 2), nn.ReLU(),
            nn.Conv2d(width, width, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, 2, 1), nn.ReLU(),
        )
        self.head = nn.Linear(2 * width * 4, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        h = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3)),
                       h[..., : h.shape[2] // 2, :].mean(dim=(2, 3)),
                       h[..., :, : h.shape[3] // 2].mean(dim=(2, 3))], dim=1)
        return F.normalize(self.head(h), dim=-1)


class TimeContrastiveEncoder(Encoder):
    """A small CNN trained on the demos' frames with a time-contrastive triplet loss.

    Single-view TCN (Sermanet et al. 2018): an anchor frame and a positive within
    ``pos_window`` steps of it must embed closer (by ``margin``, unit-norm embeddings)
    than a negative from the same episode at least ``neg_margin`` steps away. With
    probability ``cross_episode`` the positive is instead the frame of *another* demo
    at the same normalised time ``t / T`` (the demos play the role of TCN's
    synchronised views), so the embedding keeps the task phase rather than each
    episode's layout. Frames are randomly shifted by up to 4 pixels during training.

    Args:
        dim: embedding size.
        frame_size: input size (frames are resized to it).
        width: channels of the first convolutions.
        steps, batch_size, lr: Adam steps, triplets per step, learning rate.
        pos_window, neg_margin, margin: the triplet sampling and margin.
        cross_episode: probability of a positive from another demo (same normalised time);
            0.9 gave held-out Spearman 0.80 / 0.86 on pick_place (encoder seeds 0 / 1)
            where 0.5 gave 0.77 / 0.72 (20 demos, 48 px, 800 steps).
        seed: initialisation and sampling seed.
        device: torch device.
    """

    name = "tcn"
    trainable = True

    def __init__(self, dim: int = 32, frame_size: tuple[int, int] | list[int] = (48, 48),
                 width: int = 32, steps: int = 800, batch_size: int = 64, lr: float = 1e-3,
                 pos_window: int = 2, neg_margin: int = 6, margin: float = 0.4,
                 cross_episode: float = 0.9, seed: int = 0, device: str = "cpu") -> None:
        super().__init__(dim=int(dim), frame_size=[int(frame_size[0]), int(frame_size[1])],
                         width=int(width), steps=int(steps), batch_size=int(batch_size),
                         lr=float(lr), pos_window=int(pos_window), neg_margin=int(neg_margin),
                         margin=float(margin), cross_episode=float(cross_episode),
                         seed=int(seed), device=device)
        if neg_margin <= pos_window:
            raise ValueError(f"tcn: neg_margin ({neg_margin}) must exceed pos_window "
                             f"({pos_window})")
        self.dim = int(dim)
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        self.device = torch.device(device)
        torch.manual_seed(int(seed))
        self.net = SmallConvNet(self.dim, int(width)).to(self.device)
        self.fitted = False

    def fit(self, states: Sequence[np.ndarray], frames: Sequence[np.ndarray] | None
            ) -> dict[str, Any]:
        """Train on per-episode frame sequences; returns the final mean loss and the steps."""
        kw = self.kwargs
        if frames is None or any(f is None for f in frames):
            raise ValueError("the tcn encoder trains on frames: collect the demos with "
                             "frames=true")
        seqs = [resize_frames(np.asarray(f), self.frame_size) for f in frames]
        lengths = np.array([len(s) for s in seqs])
        if (lengths <= kw["neg_margin"]).all():
            raise ValueError(f"tcn: every demo is shorter than neg_margin+1 "
                             f"({kw['neg_margin'] + 1} frames)")
        usable = np.flatnonzero(lengths > kw["neg_margin"])
        rng = np.random.default_rng(kw["seed"])
        opt = torch.optim.Adam(self.net.parameters(), lr=kw["lr"])
        self.net.train()
        losses: list[float] = []
        for _ in range(kw["steps"]):
            a_img, p_img, n_img = [], [], []
            for e in rng.choice(usable, size=kw["batch_size"]):
                n = lengths[e]
                t = int(rng.integers(n))
                lo, hi = max(0, t - kw["pos_window"]), min(n - 1, t + kw["pos_window"])
                p = int(rng.integers(lo, hi + 1))
                far = np.concatenate([np.arange(0, max(0, t - kw["neg_margin"] + 1)),
                                      np.arange(min(n, t + kw["neg_margin"]), n)])
                if len(far) == 0:
                    far = np.array([0 if t > n // 2 else n - 1])
                q = int(rng.choice(far))
                pe = e
                if len(usable) > 1 and rng.random() < kw["cross_episode"]:
                    pe = int(rng.choice(usable[usable != e]))
                    p = min(lengths[pe] - 1, round(t / max(n - 1, 1) * (lengths[pe] - 1)))
                a_img.append(seqs[e][t])
                p_img.append(seqs[pe][p])
                n_img.append(seqs[e][q])
            x = _shift(torch.stack(a_img + p_img + n_img), rng).to(self.device)
            z = self.net(x)
            za, zp, zn = z.split(len(a_img))
            d_pos = (za - zp).pow(2).sum(1)
            d_neg = (za - zn).pow(2).sum(1)
            loss = F.relu(d_pos - d_neg + kw["margin"]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        self.net.eval()
        self.fitted = True
        tail = losses[-max(1, len(losses) // 10):]
        return {"tcn_loss": float(np.mean(tail)), "tcn_steps": len(losses)}

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        if not self.fitted:
            raise RuntimeError("the tcn encoder is untrained: fit it on demos first (or load "
                               "a saved model)")
        out = []
        with torch.no_grad():
            for s in range(0, len(frames), 256):
                x = resize_frames(frames[s:s + 256], self.frame_size).to(self.device)
                out.append(self.net(x).cpu())
        if not out:
            return np.zeros((0, self.dim), np.float32)
        return torch.cat(out).numpy().astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {k: v.detach().cpu() for k, v in self.net.state_dict().items()} \
            if self.fitted else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.net.load_state_dict(state)
            self.net.eval()
            self.fitted = True


def _shift(x: torch.Tensor, rng: np.random.Generator, pad: int = 4) -> torch.Tensor:
    """Random translation by up to ``pad`` pixels (replicate padding), per image."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    dy = rng.integers(0, 2 * pad + 1, size=n)
    dx = rng.integers(0, 2 * pad + 1, size=n)
    return torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])


class RelativeEncoder(Encoder):
    """Object-centric state features: ``x[b0:b1] - x[a0:a1]`` for each pair
    ``[[a0, a1], [b0, b1]]`` of index ranges (object minus hand, goal minus object), then the
    raw features at ``keep`` (the gripper's opening). Reads no frames.

    Why: a random object and goal layout per episode moves every absolute coordinate, so a
    cost on raw states compares the agent's hand with where *a demo's* object was; the
    differences are the same wherever the layout puts the object. Meta-World v3 lays every
    task's state out alike (hand ``[0, 3]``, gripper ``3``, first object ``[4, 7]``, goal
    ``[36, 39]``: ``conf/env/metaworld.yaml``'s ``relative_features``).

    Example:
        >>> import numpy as np
        >>> enc = RelativeEncoder(pairs=[[[0, 2], [2, 4]]], keep=[4])
        >>> enc.embed(np.array([[1.0, 1.0, 3.0, 4.0, 0.5]]))
        array([[2. , 3. , 0.5]], dtype=float32)
    """

    name = "relative"
    needs_frames = False

    def __init__(self, pairs: Sequence[Sequence[Sequence[int]]],
                 keep: Sequence[int] | None = None) -> None:
        norm = [[[int(v) for v in r] for r in pair] for pair in pairs]
        for pair in norm:
            if len(pair) != 2 or any(len(r) != 2 or not 0 <= r[0] < r[1] for r in pair):
                raise ValueError(f"relative encoder pair {pair} must be two index ranges "
                                 "[[a0, a1], [b0, b1]] with 0 <= start < stop")
            if pair[0][1] - pair[0][0] != pair[1][1] - pair[1][0]:
                raise ValueError(f"relative encoder pair {pair}: the ranges differ in length")
        keep_list = [int(i) for i in keep or []]
        if not norm and not keep_list:
            raise ValueError("relative encoder needs at least one pair or kept index")
        super().__init__(pairs=norm, keep=keep_list)
        self.pairs, self.keep = norm, keep_list
        self.dim = sum(p[0][1] - p[0][0] for p in norm) + len(keep_list)

    def embed(self, obs: Obs | None, frames: np.ndarray | None = None) -> np.ndarray:
        if obs is None:
            raise ValueError("the relative encoder needs observations")
        x = state_rows(obs)
        top = max([r[1] for p in self.pairs for r in p] + [i + 1 for i in self.keep])
        if top > x.shape[1]:
            raise ValueError(f"relative encoder indices reach {top} but the state has "
                             f"{x.shape[1]} features")
        cols = [x[:, b0:b1] - x[:, a0:a1] for (a0, a1), (b0, b1) in self.pairs]
        if self.keep:
            cols.append(x[:, self.keep])
        return np.concatenate(cols, axis=1)


class DistanceEncoder(RelativeEncoder):
    """The lengths ``||x[b0:b1] - x[a0:a1]||`` of :class:`RelativeEncoder`'s differences
    (hand-to-object, object-to-goal distances), then the raw features at ``keep``.

    Why: a distance does not change when the task turns or mirrors its geometry (a button
    pressed down or forward, a window slid left or right), so two tasks that share a
    structure but not a direction look alike in it; cross-task alignment (``reward=pearl``'s
    ``align_encoder``) needs exactly that, and GW alone cannot tell a structure from its
    mirror image (REFERENCE 10.3's pitfall).

    Example:
        >>> import numpy as np
        >>> enc = DistanceEncoder(pairs=[[[0, 2], [2, 4]]], keep=[4])
        >>> enc.embed(np.array([[1.0, 1.0, 4.0, 5.0, 0.5]]))
        array([[5. , 0.5]], dtype=float32)
    """

    name = "distances"

    def __init__(self, pairs: Sequence[Sequence[Sequence[int]]],
                 keep: Sequence[int] | None = None) -> None:
        super().__init__(pairs, keep)
        self.dim = len(self.pairs) + len(self.keep)

    def embed(self, obs: Obs | None, frames: np.ndarray | None = None) -> np.ndarray:
        diffs = super().embed(obs, frames)
        cols, start = [], 0
        for (a0, a1), _ in self.pairs:
            cols.append(np.linalg.norm(diffs[:, start:start + a1 - a0], axis=1, keepdims=True))
            start += a1 - a0
        cols.append(diffs[:, start:])
        return np.concatenate(cols, axis=1).astype(np.float32)


ENCODERS: dict[str, type[Encoder]] = {
    "clip": ClipImageEncoder,
    "torchvision": TorchvisionEncoder,
    "state": StateEncoder,
    "relative": RelativeEncoder,
    "distances": DistanceEncoder,
    "downsample": DownsampleEncoder,
    "tcn": TimeContrastiveEncoder,
}
"""Short names accepted as an encoder ``target``."""


def build_encoder(spec: dict[str, Any] | str | None) -> Encoder | FrameEncoder | None:
    """An encoder from ``{"target": <short name or "pkg.module:Class">, "kwargs": {...}}``.

    A bare string is a target without kwargs; ``None`` or ``{}`` gives ``None``.
    """
    if not spec:
        return None
    if isinstance(spec, str):
        spec = {"target": spec}
    target = spec.get("target")
    if target is None:
        raise ValueError(f"encoder spec {spec!r} has no 'target' (one of {sorted(ENCODERS)} or "
                         "a dotted path)")
    if isinstance(target, str) and target in ENCODERS:
        cls: Any = ENCODERS[target]
    elif isinstance(target, str):
        if ":" not in target and "." not in target:
            raise ValueError(f"unknown encoder {target!r}; choose from {sorted(ENCODERS)} or give "
                             "a dotted path 'pkg.module:Class'")
        # from a saved file: only a registered Encoder subclass (the guard checks the rest)
        cls = import_object(target, base=Encoder if guard_active() else None, what="encoder")
    else:
        cls = target
    encoder = cls(**dict(spec.get("kwargs") or {}))
    if not isinstance(encoder, (Encoder, FrameEncoder)):
        raise TypeError(f"{target} is not an encoder: it needs dim, frame_size and "
                        "__call__(frames) -> (N, dim), or to subclass rewardlearn.encoders.Encoder")
    return encoder


def build_state_encoder(spec: dict[str, Any] | str | None, setting: str) -> Encoder | None:
    """A state encoder from ``spec`` (``None`` for none); an encoder that reads frames is
    refused with the reason. ``setting`` names the option in the error (for example
    ``reward.model.encoder``): the modules that call this score states without frames."""
    built = build_encoder(spec)
    if built is None:
        return None
    encoder = as_encoder(built)
    if encoder.needs_frames:
        raise ValueError(f"{setting} {encoder.name!r} reads frames; this module reads states "
                         "(use an encoder of the state: relative or state)")
    return encoder


def as_encoder(encoder: Encoder | FrameEncoder) -> Encoder:
    """Wrap a plain :class:`FrameEncoder` so it has the full :class:`Encoder` interface."""
    return encoder if isinstance(encoder, Encoder) else _FrameEncoderAdapter(encoder)


class _FrameEncoderAdapter(Encoder):
    def __init__(self, inner: FrameEncoder) -> None:
        super().__init__()
        self.inner = inner
        self.name = type(inner).__name__
        self.dim = int(inner.dim)
        self.frame_size = tuple(inner.frame_size)  # type: ignore[assignment]

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return np.asarray(self.inner(frames), dtype=np.float32)

    def spec(self) -> dict[str, Any]:
        cls = type(self.inner)
        return {"target": f"{cls.__module__}:{cls.__qualname__}",
                "kwargs": dict(getattr(self.inner, "kwargs", {}) or {})}


class EmbeddingCache:
    """Per-frame memo of an encoder's embeddings (LRU, keyed by a hash of each frame).

    Args:
        encoder: the encoder to call for frames not seen yet.
        max_items: frames kept (least recently used dropped first).
    """

    def __init__(self, encoder: Encoder, max_items: int = 50_000) -> None:
        self.encoder = encoder
        self.max_items = int(max_items)
        self._memo: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        """Forget every embedding (after the encoder changed)."""
        self._memo.clear()

    def embed(self, obs: Obs | None, frames: np.ndarray | None = None) -> np.ndarray:
        """The encoder's ``embed``, reusing the embeddings of frames seen before."""
        if not self.encoder.needs_frames:
            return self.encoder.embed(obs, frames)
        f = _check_frames(frames, self.encoder.name)
        keys = [hashlib.blake2b(np.ascontiguousarray(fr).tobytes(), digest_size=16).digest()
                for fr in f]
        missing = [i for i, k in enumerate(keys) if k not in self._memo]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            new = self.encoder.embed(None, f[missing])
            for i, e in zip(missing, new, strict=True):
                self._memo[keys[i]] = np.asarray(e, dtype=np.float32)
        out = np.stack([self._memo[k] for k in keys]) if keys else \
            np.zeros((0, self.encoder.dim), np.float32)
        for k in keys:
            self._memo.move_to_end(k)
        while len(self._memo) > self.max_items:
            self._memo.popitem(last=False)
        return out


__all__ = [
    "ENCODERS",
    "ClipImageEncoder",
    "DistanceEncoder",
    "DownsampleEncoder",
    "EmbeddingCache",
    "Encoder",
    "FrameEncoder",
    "RelativeEncoder",
    "SmallConvNet",
    "StateEncoder",
    "TimeContrastiveEncoder",
    "TorchvisionEncoder",
    "as_encoder",
    "build_encoder",
    "build_state_encoder",
    "resize_frames",
    "state_rows",
]
