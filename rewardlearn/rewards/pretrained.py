"""Reward models in the Hugging Face Hub format: ``config.json`` + ``model.safetensors`` + card.

:func:`save_pretrained` writes a folder that loads without running code from it:

* ``config.json``: the registered class name (:mod:`rewardlearn.rewards.registry`), the
  observation/action spaces, the constructor settings and the non-tensor part of the
  learned state (counters, histories: plain JSON);
* ``model.safetensors``: every tensor and numpy array of the state (safetensors holds
  raw tensors only), with each one's shape and dtype also recorded in ``config.json``
  and the file's SHA-256, so a damaged or swapped file is refused by name;
* ``README.md``: a model card (method, env, spaces, labels or demos, the training
  command, the ``evaluate`` metrics when given).

:func:`load_pretrained` takes such a folder, a run folder (``runs/<run>``, whose
``reward_model/`` it reads), or a Hub repo id (``user/name``, ``hf://user/name``,
``user/name@revision``) fetched with :func:`huggingface_hub.snapshot_download` into the Hub
cache (``HF_HUB_OFFLINE=1`` uses the cache only). :func:`push_to_hub` uploads a model with
:class:`huggingface_hub.HfApi`.

Example:
    >>> import gymnasium as gym, tempfile
    >>> from rewardlearn.rewards.mlp import MLPReward
    >>> from rewardlearn.rewards.pretrained import load_pretrained, save_pretrained
    >>> env = gym.make("Pendulum-v1")
    >>> m = MLPReward(env.observation_space, env.action_space, hidden_sizes=(8,))
    >>> folder = save_pretrained(m, tempfile.mkdtemp())
    >>> sorted(p.name for p in folder.iterdir())
    ['README.md', 'config.json', 'model.safetensors']
    >>> type(load_pretrained(folder, env.observation_space, env.action_space)).__name__
    'MLPReward'
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from huggingface_hub import HfApi, ModelCardData, constants, snapshot_download
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from rewardlearn.files import atomic_output, write_text_atomic
from rewardlearn.rewards.protocol import RewardProtocol
from rewardlearn.rewards.registry import (
    ReferenceCheck,
    UntrustedReferenceError,
    registered_name,
    reward_class,
)
from rewardlearn.rewards.spaces import (
    SpaceMismatchError,
    _short,
    check_description,
    check_spaces,
    describe_space,
    numeric_dtype,
    space_from_description,
)
from rewardlearn.rewards.torchfile import read_checkpoint
from rewardlearn.utils import guarded_imports

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
HUB_FORMAT = "rewardlearn.pretrained/1"
RUN_FOLDER = "reward_model"
"""A run's reward model in this format: ``runs/<run>/reward_model/`` (next to the .pt)."""

_MARK = "__rl__"
_REPO_ID = re.compile(r"^(?:hf://|hf-hub:)?([\w.-]+/[\w.-]+)(?:@([\w./-]+))?$")


class TamperedModelError(ValueError):
    """A Hub-format folder whose files disagree with each other or are damaged."""


@dataclass
class CardInfo:
    """What the model card says beyond the model itself (all optional).

    Attributes:
        env: the env config name it was trained on (``pendulum``).
        env_id: the Gymnasium id of that env (``Pendulum-v1``; with the task for an env such
            as ``Meta-World/MT1``).
        command: the command that trained it.
        training: figures of its training (``labels_used``...; a module's ``summary()``).
        data: the datasets it learned from, by role (``{"demos": "data/pick_place"}``).
        metrics: ``evaluate`` results, ``{metric: value}`` (EPIC/STARC, ``pref_acc``, VOC...).
        extra: more ``key: value`` lines.
    """

    env: str | None = None
    env_id: str | None = None
    command: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- state <-> files

def _tensor_key(path: list[str], tensors: dict[str, torch.Tensor]) -> str:
    key = ".".join(path) or "tensor"
    base, n = key, 1
    while key in tensors:
        n += 1
        key = f"{base}#{n}"
    return key


def pack_state(obj: Any, tensors: dict[str, torch.Tensor], path: list[str] | None = None) -> Any:
    """JSON for ``obj`` with every tensor/array moved into ``tensors`` (named by its path).

    Dicts, lists, tuples, strings, numbers, booleans and ``None`` stay JSON; a tensor or
    numeric numpy array becomes ``{"__rl__": "tensor"|"ndarray", "key", "shape", "dtype"}``.
    """
    path = path or []
    if isinstance(obj, torch.Tensor):
        key = _tensor_key(path, tensors)
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {_MARK: "tensor", "key": key, "shape": list(obj.shape),
                "dtype": str(obj.dtype).removeprefix("torch.")}
    if isinstance(obj, np.generic):
        return {_MARK: "npscalar", "dtype": obj.dtype.str, "value": obj.item()}
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "US":
            return {_MARK: "ndarray_json", "dtype": obj.dtype.str, "value": obj.tolist()}
        if obj.dtype.kind not in "biuf":
            raise TypeError(f"cannot save state {'.'.join(path)!r}: numpy dtype {obj.dtype} "
                            "(save numbers, booleans or strings)")
        key = _tensor_key(path, tensors)
        native = obj.astype(obj.dtype.newbyteorder("="), copy=False)
        tensors[key] = torch.from_numpy(np.ascontiguousarray(native).copy())
        return {_MARK: "ndarray", "key": key, "shape": list(obj.shape), "dtype": obj.dtype.str}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and _MARK not in obj:
            return {k: pack_state(v, tensors, [*path, k]) for k, v in obj.items()}
        return {_MARK: "items", "value": [[pack_state(k, tensors, [*path, "key"]),
                                           pack_state(v, tensors, [*path, str(k)])]
                                          for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {_MARK: "tuple", "value": [pack_state(v, tensors, [*path, str(i)])
                                          for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [pack_state(v, tensors, [*path, str(i)]) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    raise TypeError(f"cannot save state {'.'.join(path)!r} of type {type(obj).__name__}: a "
                    "state_dict may hold tensors, numpy arrays, numbers, strings, lists and dicts")


MAX_DEPTH = 64
"""Deepest nesting of lists and dicts a saved state may have."""


def unpack_state(node: Any, tensors: dict[str, torch.Tensor], where: str,
                 used: set[str] | None = None, path: str = "state", depth: int = 0) -> Any:
    """Inverse of :func:`pack_state`; a missing tensor or one of another shape/dtype, and a
    malformed entry, are refused with :class:`TamperedModelError` naming it (before any
    array is made from a dtype the file names)."""
    used = set() if used is None else used
    if depth > MAX_DEPTH:
        raise TamperedModelError(f"{where}: {CONFIG_NAME}: {path} is nested deeper than "
                                 f"{MAX_DEPTH} levels")
    if isinstance(node, list):
        return [unpack_state(v, tensors, where, used, f"{path}[{i}]", depth + 1)
                for i, v in enumerate(node)]
    if not isinstance(node, dict):
        return node
    kind = node.get(_MARK)
    if kind is None:
        return {k: unpack_state(v, tensors, where, used, f"{path}.{k}", depth + 1)
                for k, v in node.items()}

    def bad(why: str) -> TamperedModelError:
        return TamperedModelError(f"{where}: {CONFIG_NAME}: {path} ({kind!r} entry) {why}")

    if kind in ("tensor", "ndarray"):
        key, shape = node.get("key"), node.get("shape")
        if not isinstance(key, str):
            raise bad("has no tensor key")
        if not (isinstance(shape, list) and all(isinstance(n, int) for n in shape)):
            raise bad("has no shape")
        if key not in tensors:
            raise TamperedModelError(f"{where}: {WEIGHTS_NAME} has no tensor {key!r}, which "
                                     f"{CONFIG_NAME} names (a damaged or replaced file)")
        t = tensors[key]
        used.add(key)
        try:
            want_dtype = (str(node["dtype"]) if kind == "tensor" else
                          _torch_dtype(numeric_dtype(node.get("dtype"), "dtype").str))
        except (KeyError, ValueError) as err:
            raise bad(f"has a bad dtype ({err})") from None
        got = (list(t.shape), str(t.dtype).removeprefix("torch."))
        if got != (shape, want_dtype):
            raise TamperedModelError(
                f"{where}: tensor {key!r} in {WEIGHTS_NAME} is {got[1]}{tuple(got[0])}, but "
                f"{CONFIG_NAME} says {want_dtype}{tuple(shape)} (a damaged or replaced file)")
        if kind == "tensor":
            return t
        return t.numpy().astype(np.dtype(node["dtype"]), copy=False)
    try:
        if kind == "npscalar":
            return numeric_dtype(node.get("dtype"), "dtype").type(node["value"])
        if kind == "ndarray_json":
            return _text_array(node.get("dtype"), node["value"])
        if kind == "tuple":
            return tuple(unpack_state(v, tensors, where, used, f"{path}[{i}]", depth + 1)
                         for i, v in enumerate(node["value"]))
        if kind == "items":
            out = {}
            for i, pair in enumerate(node["value"]):
                if not (isinstance(pair, list) and len(pair) == 2):
                    raise ValueError(f"item {i} is not a [key, value] pair")
                key = _hashable(unpack_state(pair[0], tensors, where, used, f"{path}[{i}]",
                                             depth + 1))
                hash(key)
                out[key] = unpack_state(pair[1], tensors, where, used, f"{path}[{i}]",
                                        depth + 1)
            return out
    except TamperedModelError:
        raise
    except (KeyError, TypeError, ValueError, OverflowError) as err:
        raise bad(f"is malformed ({type(err).__name__}: {err})") from None
    raise TamperedModelError(f"{where}: unknown entry {kind!r} in {CONFIG_NAME} at {path}")


MAX_TEXT = 1 << 16
"""Longest string (characters) a saved text array's dtype may hold per element."""


def _text_array(dtype_name: Any, value: Any) -> np.ndarray:
    """A saved string array; its dtype is checked (text, at most :data:`MAX_TEXT` characters)
    before numpy allocates it."""
    try:
        dtype = np.dtype(str(dtype_name))
    except TypeError:
        raise ValueError(f"{dtype_name!r} is not a numpy dtype") from None
    if dtype.kind not in "US":
        raise ValueError(f"dtype {dtype_name!r} is not a text type")
    if dtype.itemsize > 4 * MAX_TEXT:
        raise ValueError(f"dtype {dtype_name!r} holds more than {MAX_TEXT} characters per "
                         "element")
    return np.asarray(value, dtype=dtype)


def _torch_dtype(numpy_dtype: str) -> str:
    """The torch dtype name a numpy array of ``numpy_dtype`` is stored as."""
    native = np.zeros(0, numeric_dtype(numpy_dtype, "dtype").newbyteorder("="))
    return str(torch.from_numpy(native).dtype).removeprefix("torch.")


def _hashable(key: Any) -> Any:
    if isinstance(key, dict):
        raise TypeError("a mapping cannot be a key")
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------- save

def save_pretrained(model: RewardProtocol, folder: str | os.PathLike[str],
                    card: CardInfo | None = None, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as ``config.json`` + ``model.safetensors`` + ``README.md``; returns the
    folder. Each file is written to a temp name and renamed into place."""
    folder = Path(folder)
    name = registered_name(model)
    tensors: dict[str, torch.Tensor] = {}
    state = pack_state(model.state_dict(), tensors)
    settings = model.config()
    try:
        json.dumps(settings)
    except TypeError as err:
        raise TypeError(f"{name}.config() is not JSON ({err}); its settings must be plain "
                        "values to be saved in the Hub format") from None
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS_NAME
    with atomic_output(weights) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    config = {
        "format": HUB_FORMAT,
        "reward_class": name,
        "reward_name": model.name,
        "observation_space": describe_space(model.observation_space),
        "action_space": describe_space(model.action_space),
        "settings": settings,
        "state": state,
        "weights_sha256": _sha256(weights),
        "extra": dict(extra or {}),
    }
    write_text_atomic(folder / CONFIG_NAME, json.dumps(config, indent=1))
    write_text_atomic(folder / CARD_NAME, model_card(config, card))
    return folder


# ----------------------------------------------------------------------------- load

def _offline() -> bool:
    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return flag in {"1", "ON", "YES", "TRUE"} or bool(constants.HF_HUB_OFFLINE)


def _model_folder(folder: Path) -> Path | None:
    """The Hub-format folder at ``folder``: itself, or a run's ``reward_model/``."""
    for candidate in (folder, folder / RUN_FOLDER):
        if (candidate / CONFIG_NAME).is_file():
            return candidate
    return None


def is_repo_id(source: str) -> bool:
    """Whether ``source`` reads as a Hub repo id (``user/name``, ``hf://user/name``,
    ``user/name@revision``) rather than a ``.pt`` file."""
    return _REPO_ID.match(source) is not None and not source.endswith(".pt")


def resolve_source(source: str | os.PathLike[str], revision: str | None = None,
                   token: str | None = None, cache_dir: str | None = None) -> Path:
    """A local path for a reward model: a ``.pt`` file or a Hub-format folder.

    ``source`` is a ``.pt`` file, a Hub-format folder, a run folder (its ``reward_model/``,
    else its ``reward_model.pt``), or a Hub repo id, downloaded (only ``config.json``,
    ``model.safetensors`` and the card) into the Hub cache.
    """
    path = Path(source)
    if path.is_file():
        return path
    if path.is_dir():
        found = _model_folder(path)
        if found is not None:
            return found
        if (path / "reward_model.pt").is_file():
            return path / "reward_model.pt"
        raise FileNotFoundError(f"{path} holds no reward model: expected {CONFIG_NAME} + "
                                f"{WEIGHTS_NAME} (save_pretrained), {RUN_FOLDER}/ or "
                                "reward_model.pt")
    match = _REPO_ID.match(str(source))
    if match is None or not is_repo_id(str(source)):
        raise FileNotFoundError(f"reward model {str(source)!r} not found: pass a run's "
                                "reward_model.pt, a saved reward model folder or a Hub repo id "
                                "(user/name)")
    repo_id, rev = match.group(1), revision or match.group(2)
    files = [CONFIG_NAME, WEIGHTS_NAME, CARD_NAME]
    try:
        local = snapshot_download(repo_id, revision=rev, cache_dir=cache_dir, token=token,
                                  local_files_only=_offline(),
                                  allow_patterns=[*files, *(f"{RUN_FOLDER}/{f}" for f in files)])
    except Exception as err:  # hub errors: offline cache miss, unknown repo, network
        reason = (str(err).strip().splitlines() or [""])[0][:300]
        hint = (" (HF_HUB_OFFLINE is set: only repos already in the Hub cache load)"
                if _offline() else "")
        raise FileNotFoundError(
            f"reward model {str(source)!r}: no such local file or folder, and Hub repo "
            f"{repo_id!r} could not be fetched{hint}: {type(err).__name__}: {reason}") from None
    found = _model_folder(Path(local))
    if found is None:
        raise FileNotFoundError(f"Hub repo {repo_id!r} holds no rewardlearn reward model "
                                f"({CONFIG_NAME} at its root or in {RUN_FOLDER}/)")
    return found


def read_pretrained(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """A Hub-format folder as a checkpoint payload (``class``, ``config``, ``state``, spaces),
    checked: the config's format and the tensor file's integrity, shapes and names."""
    folder = Path(folder)
    where = f"reward model {folder}"
    try:
        config = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{where}: no {CONFIG_NAME}") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise TamperedModelError(f"{where}: {CONFIG_NAME} is not JSON ({err})") from None
    except RecursionError:
        raise TamperedModelError(f"{where}: {CONFIG_NAME} is nested too deeply to read "
                                 "(not a file rewardlearn wrote)") from None
    if not isinstance(config, dict) or config.get("format") != HUB_FORMAT:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise ValueError(f"{where}: {CONFIG_NAME} is not a rewardlearn reward model (format "
                         f"{found!r}, expected {HUB_FORMAT!r})")
    missing = [k for k in ("reward_class", "observation_space", "action_space", "settings",
                           "state") if k not in config]
    if missing:
        raise TamperedModelError(f"{where}: {CONFIG_NAME} lacks {', '.join(missing)}")
    for key in ("observation_space", "action_space"):
        try:
            check_description(config[key], f"{CONFIG_NAME} {key}")
        except ValueError as err:
            raise TamperedModelError(f"{where}: {err}") from None
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise TamperedModelError(f"{where}: no {WEIGHTS_NAME} next to {CONFIG_NAME}")
    expected = config.get("weights_sha256")
    if expected and _sha256(weights) != expected:
        raise TamperedModelError(f"{where}: {WEIGHTS_NAME} is not the file {CONFIG_NAME} was "
                                 "saved with (SHA-256 differs): a damaged or replaced file")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as err:
        raise TamperedModelError(f"{where}: {WEIGHTS_NAME} is not a readable safetensors file "
                                 f"({err})") from None
    used: set[str] = set()
    state = unpack_state(config["state"], tensors, where, used)
    extra = sorted(set(tensors) - used)
    if extra:
        raise TamperedModelError(f"{where}: {WEIGHTS_NAME} holds tensors {CONFIG_NAME} does not "
                                 f"name: {extra[:5]}")
    return {"format": HUB_FORMAT, "class": str(config["reward_class"]),
            "config": config["settings"], "state": state,
            "observation_space": config["observation_space"],
            "action_space": config["action_space"], "extra": config.get("extra", {})}


def read_any(source: str | os.PathLike[str], **hub: Any) -> dict[str, Any]:
    """The checkpoint payload of any saved reward model: a ``.pt`` (read without running
    code), a Hub-format folder, a run folder or a repo id (``hub``: :func:`resolve_source`)."""
    path = resolve_source(source, **hub)
    return read_pretrained(path) if path.is_dir() else read_checkpoint(path)


def build_from_payload(payload: dict[str, Any], observation_space: gym.Space | None,
                       action_space: gym.Space | None, where: str,
                       trust: Sequence[str] = (), **overrides: Any) -> RewardProtocol:
    """Rebuild a reward module from a checked payload: a registered class only, built with
    imports limited to registered ones (:class:`~rewardlearn.rewards.registry.ReferenceCheck`)."""
    check_spaces(payload["observation_space"], payload["action_space"], observation_space,
                 action_space, where=where)
    cls = reward_class(str(payload["class"]))
    settings = payload["config"]
    if not isinstance(settings, dict):
        raise TamperedModelError(f"{where}: settings are {type(settings).__name__}, not a dict")
    with guarded_imports(ReferenceCheck(trust)):
        try:
            model = cls(space_from_description(payload["observation_space"]),
                        space_from_description(payload["action_space"]),
                        **{**cls.legacy_settings, **settings, **overrides})
        except (UntrustedReferenceError, TamperedModelError, SpaceMismatchError):
            raise
        except (TypeError, ValueError, KeyError, IndexError, RuntimeError,
                RecursionError) as err:
            reason = (str(err).strip().splitlines() or [""])[0][:300]
            raise TamperedModelError(f"{where}: its settings do not build a {cls.__name__} "
                                     f"({type(err).__name__}: {reason})") from None
        try:
            model.load_state_dict(payload["state"])
        except (RuntimeError, KeyError, IndexError, TypeError, ValueError) as err:
            reason = (str(err).strip().splitlines() or [""])[0][:300]
            raise TamperedModelError(f"{where}: its saved state does not fit a {cls.__name__} "
                                     f"built from its settings ({type(err).__name__}: "
                                     f"{reason})") from None
    return model


def load_pretrained(source: str | os.PathLike[str], observation_space: gym.Space | None = None,
                    action_space: gym.Space | None = None, *, revision: str | None = None,
                    token: str | None = None, cache_dir: str | None = None,
                    trust: Sequence[str] = (), expected: type[RewardProtocol] | None = None,
                    **overrides: Any) -> RewardProtocol:
    """Load a reward model from a folder, run folder, repo id or ``.pt`` file (see
    :func:`resolve_source`), refusing it if its spaces differ from the given ones.

    ``expected``: refuse a model of another class (``expected=PreferenceReward``).

    ``trust``: dotted paths its settings may import besides rewardlearn's (your shaping
    function, ``"my_pkg.potentials:phi"``); ``overrides`` change constructor settings
    (e.g. ``device="cpu"``).
    """
    path = resolve_source(source, revision=revision, token=token, cache_dir=cache_dir)
    payload = read_pretrained(path) if path.is_dir() else read_checkpoint(path)
    label = "reward model" if path.is_dir() else "reward checkpoint"
    model = build_from_payload(payload, observation_space, action_space, f"{label} {path}",
                               trust, **overrides)
    extra = payload.get("extra")
    model.provenance = {**(extra if isinstance(extra, dict) else {}), "source": str(source)}
    if expected is not None and not isinstance(model, expected):
        raise TypeError(f"{source} holds a {type(model).__name__}, not a {expected.__name__}")
    return model


# ----------------------------------------------------------------------------- push

def upload_folder(folder: str | os.PathLike[str], repo_id: str, *, private: bool | None = None,
                  token: str | None = None, commit_message: str = "Upload with rewardlearn",
                  api: HfApi | None = None) -> str:
    """Create ``repo_id`` if needed and upload ``folder`` to it; returns the commit URL."""
    api = api or HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                             commit_message=commit_message)
    return str(getattr(info, "commit_url", info))


def push_to_hub(model: RewardProtocol, repo_id: str, *, card: CardInfo | None = None,
                private: bool | None = None, token: str | None = None,
                commit_message: str = "Upload reward model with rewardlearn",
                api: HfApi | None = None) -> str:
    """:func:`save_pretrained` to a temp folder and upload it to ``repo_id``."""
    with tempfile.TemporaryDirectory() as tmp:
        save_pretrained(model, tmp, card)
        return upload_folder(tmp, repo_id, private=private, token=token,
                             commit_message=commit_message, api=api)


# ----------------------------------------------------------------------------- card

def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return f"`{json.dumps(v)}`" if isinstance(v, (dict, list)) else str(v)


def metrics_table(metrics: dict[str, Any]) -> str:
    """Markdown table of ``evaluate`` metrics (flat ``{metric: value}`` or per reward)."""
    rows = [(k, v) for k, v in metrics.items() if not isinstance(v, dict)]
    nested = [(k, v) for k, v in metrics.items() if isinstance(v, dict)]
    out = []
    if rows:
        out += ["| metric | value |", "|---|---|", *(f"| {k} | {_value(v)} |" for k, v in rows)]
    for name, values in nested:
        out += ["", f"**{name}**", "", "| metric | value |", "|---|---|",
                *(f"| {k} | {_value(v)} |" for k, v in values.items())]
    return "\n".join(out).strip()


CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ reward_class }} reward model{% if env_id %} for {{ env_id }}{% endif %}

A `{{ short }}` reward model saved by [rewardlearn]({{ repo_url }}) {{ version }} in the Hub
format: `config.json` (class, spaces, settings) and `model.safetensors` (tensors). Loading it
runs no code from the files.

| | |
|---|---|
| method | `{{ reward_class }}`{% if reward_name %} (`reward={{ reward_name }}`){% endif %} |
| env | {{ env_id or "not recorded" }}{{ env_note }} |
| observation space | `{{ observation }}` |
| action space | `{{ action }}` |
{% for k, v in rows %}| {{ k }} | {{ v }} |
{% endfor %}
{% if training %}## Training

{% for k, v in training %}- {{ k }}: {{ v }}
{% endfor %}{% endif %}
{% if command %}Trained with:

```bash
{{ command }}
```
{% endif %}
{% if metrics %}## Evaluation (`rewardlearn-evaluate`)

{{ metrics }}
{% endif %}
## Use

```bash
python train.py env=<env> reward=checkpoint reward.model.path={{ source }}
```

```python
{% if class_name %}from {{ module }} import {{ class_name }}
reward = {{ class_name }}.from_pretrained("{{ source }}", env.observation_space, env.action_space)
{% else %}from rewardlearn.rewards import load_reward_model
reward = load_reward_model("{{ source }}", env.observation_space, env.action_space)
{% endif %}```

## Settings

```json
{{ settings }}
```
"""
"""The model card (``ModelCard.from_template``): YAML metadata then the text above."""


def package_version() -> str:
    """rewardlearn's installed version (``unknown`` when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rewardlearn")
    except PackageNotFoundError:
        return "unknown"


def model_card(config: dict[str, Any], card: CardInfo | None = None) -> str:
    """The ``README.md`` of a saved reward model (YAML metadata + markdown, from
    ``huggingface_hub.ModelCard.from_template``), from its ``config.json`` (so a card can be
    rewritten without building the model): licence, the Gymnasium id, the package version."""
    from huggingface_hub import ModelCard

    card = card or CardInfo()
    name, short = str(config["reward_class"]), str(config.get("reward_name") or "")
    env_id = card.env_id or card.env
    tags = ["rewardlearn", "reward-model", "reinforcement-learning"]
    tags += [f"reward-{short}"] if short else []
    tags += [str(env_id)] if env_id else []
    qualified = None
    try:
        from rewardlearn.rewards.registry import REWARD_CLASSES

        qualified = REWARD_CLASSES.qualified(name)
    except KeyError:
        pass
    module, _, class_name = (qualified or ":").partition(":")
    data = ModelCardData(library_name="rewardlearn", license="mit", tags=tags,
                         model_name=f"{name}-{env_id}" if env_id else name)
    rendered = ModelCard.from_template(
        data, template_str=CARD_TEMPLATE, reward_class=name, reward_name=short,
        short=short or name, env_id=env_id,
        env_note=f" (`env={card.env}`)" if card.env and card.env != env_id else "",
        repo_url="https://github.com/rewardlearn/rewardlearn", version=package_version(),
        observation=_short(config["observation_space"]),
        action=_short(config["action_space"]),
        rows=[(k, _value(v)) for k, v in {**card.data, **card.extra}.items()],
        training=[(k, _value(v)) for k, v in card.training.items()], command=card.command,
        metrics=metrics_table(card.metrics) if card.metrics else "",
        source="<repo id or folder>", module=module, class_name=class_name,
        settings=json.dumps(config.get("settings"), indent=1))
    return str(rendered.content).rstrip() + "\n"


def write_card(folder: str | os.PathLike[str], card: CardInfo | None = None) -> Path:
    """(Re)write the ``README.md`` of a saved folder from its ``config.json``."""
    folder = Path(folder)
    config = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
    return write_text_atomic(folder / CARD_NAME, model_card(config, card))


__all__ = ["CARD_NAME", "CONFIG_NAME", "HUB_FORMAT", "RUN_FOLDER", "WEIGHTS_NAME", "CardInfo",
           "TamperedModelError", "build_from_payload", "is_repo_id", "load_pretrained",
           "metrics_table", "model_card", "pack_state", "push_to_hub", "read_any",
           "read_pretrained", "resolve_source", "save_pretrained", "unpack_state",
           "upload_folder", "write_card"]
