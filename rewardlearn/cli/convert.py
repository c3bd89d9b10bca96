"""``rewardlearn-convert``: turn an old ``.pt`` reward model into the safe Hub format.

Usage::

    rewardlearn-convert runs/<run>/reward_model.pt runs/<run>/reward_model
    rewardlearn-convert old/reward_model.pt out/reward_model --trust
    rewardlearn-convert old/progress_model.pt out/progress_model.pt --trust

A reward checkpoint becomes a folder (``config.json`` + ``model.safetensors`` +
``README.md``) that loads without running code from it. A progress or perceptual model
file is rewritten as a ``.pt`` that loads with ``torch.load(weights_only=True)``.

Without ``--trust`` the file is read the safe way (tensors, arrays and plain values
only) and refused otherwise. ``--trust`` unpickles it in full, which runs any code the
file names: pass it only for a file you made or otherwise trust. Either way only
registered reward classes are built from it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rewardlearn.cli.options import run_cli

_MODEL_FORMATS = ("rewardlearn.progress_model/1", "rewardlearn.perceptual/1")


def parser() -> argparse.ArgumentParser:
    """The command's arguments."""
    p = argparse.ArgumentParser(prog="rewardlearn-convert", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", help="the old file (reward_model.pt, progress_model.pt...)")
    p.add_argument("out", help="the folder to write (a .pt path for progress/perceptual models)")
    p.add_argument("--trust", action="store_true",
                   help="unpickle the file in full (runs code it names): only for files you "
                        "trust")
    return p


def _read(path: Path, trust: bool) -> Any:
    import torch

    from rewardlearn.rewards.checkpoint import UnsafeCheckpointError, safe_torch_load

    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        return safe_torch_load(path, what="file")
    except UnsafeCheckpointError:
        if not trust:
            raise
    # the user vouched for this file with --trust: a full unpickle, as torch.save wrote it
    return torch.load(path, map_location="cpu", weights_only=False)


def convert(path: str | Path, out: str | Path, trust: bool = False) -> Path:
    """Convert ``path`` (see the module doc); returns what was written."""
    import torch

    from rewardlearn.files import atomic_output
    from rewardlearn.rewards.checkpoint import FORMAT, safe_torch_load
    from rewardlearn.rewards.pretrained import build_from_payload, save_pretrained

    path, out = Path(path), Path(out)
    payload = _read(path, trust)
    found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
    if isinstance(payload, dict) and found == FORMAT:
        missing = [k for k in ("class", "config", "state", "observation_space", "action_space")
                   if k not in payload]
        if missing:
            raise ValueError(f"{path}: a reward checkpoint without {', '.join(missing)}")
        model = build_from_payload(payload, None, None, f"reward checkpoint {path}")
        extra = json.loads(json.dumps(payload.get("extra") or {}, default=str))
        return save_pretrained(model, out, extra=extra)
    if isinstance(payload, dict) and found in _MODEL_FORMATS:
        if out.suffix != ".pt":
            raise ValueError(f"{path} is a {found} file: pass a .pt path as OUT")
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(out) as tmp:
            torch.save(payload, tmp)
            safe_torch_load(tmp, what="converted file")  # still names other code: not published
        return out
    raise ValueError(f"{path} is not a rewardlearn reward checkpoint or model file "
                     f"(format {found!r})")


def main(argv: Sequence[str] | None = None) -> Path:
    """Parse the arguments and convert."""
    args = parser().parse_args(argv)
    written = convert(args.path, args.out, args.trust)
    print(f"written {written}; load it with reward=checkpoint reward.model.path={written}")
    return written


def cli() -> None:
    """Entry point; input errors exit with a message, no trace."""
    run_cli(main)


if __name__ == "__main__":
    cli()
