"""The reward classes a saved reward model may name, and what loading may import.

Loading a reward model never imports what a file names: its class must be one of
:data:`REWARD_CLASSES` (every :class:`~rewardlearn.rewards.base.RewardModel` of the
package, plus those a program registers with :func:`register_reward_class`), and any
dotted path inside its settings (a shaping potential, an encoder) must resolve to a
registered reward class, a subclass of one of rewardlearn's registered bases (shaping
potentials, encoders) defined in rewardlearn, a class or function *defined* in
``rewardlearn_envs``, or a reference the program trusts (:func:`trust`). Only modules of
those packages are imported, and the object found must be defined where the path says
(``rewardlearn_envs.pick_place:os.system`` reaches ``os`` and is refused). A setting that
names a file whose loading runs code (an SB3 ``agent.zip``: it unpickles) is refused
unless that path is trusted.

Example:
    >>> from rewardlearn.rewards.registry import REWARD_CLASSES, reward_class
    >>> reward_class("MLPReward").__name__
    'MLPReward'
    >>> reward_class("rewardlearn.rewards.preference:PreferenceReward").__name__  # old path
    'PreferenceReward'
    >>> "os:system" in REWARD_CLASSES
    False
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Collection, Iterator, Mapping

from rewardlearn.rewards.protocol import RewardProtocol
from rewardlearn.utils import (
    MOVED_MODULES,
    defined_in,
    guarded_imports,
    import_object,
    split_reference,
)

_BUILTIN: dict[str, str] = {
    "ActionPreferenceReward": "rewardlearn.select.reward:ActionPreferenceReward",
    "DrSReward": "rewardlearn.drs.reward:DrSReward",
    "EnvReward": "rewardlearn.rewards.env:EnvReward",
    "MLPReward": "rewardlearn.rewards.mlp:MLPReward",
    "OTReward": "rewardlearn.ot.reward:OTReward",
    "PendulumReward": "rewardlearn.metrics.reference:PendulumReward",
    "PEARLReward": "rewardlearn.pearl.reward:PEARLReward",
    "PerceptualReward": "rewardlearn.perceptual.reward:PerceptualReward",
    "PreferenceReward": "rewardlearn.preference.reward:PreferenceReward",
    "ProgressReward": "rewardlearn.progress.reward:ProgressReward",
    "ShapedReward": "rewardlearn.shaping.shaped:ShapedReward",
    "VLMDistilledReward": "rewardlearn.vlm.distilled:VLMDistilledReward",
    "VLMReward": "rewardlearn.vlm.reward:VLMReward",
    "VPLReward": "rewardlearn.vpl.reward:VPLReward",
}
"""Registered name -> ``module:QualName`` of every reward class in the package."""

_TRUSTED: set[str] = set()
_TRUSTED_PACKAGES = ("rewardlearn_envs",)


class UnknownRewardClassError(ValueError, TypeError):
    """A file names a reward class that is not registered (never imported)."""


class UntrustedReferenceError(ValueError):
    """A saved model's settings name a dotted path that loading may not import."""


def _canonical(qualified: str) -> str:
    """``module:QualName`` with an old module path moved to its new home."""
    module, name = split_reference(qualified)
    return f"{MOVED_MODULES.get(module, module)}:{name}"


class RewardRegistry(Mapping[str, type[RewardProtocol]]):
    """Name -> reward class; classes are imported on first use (a VLM's imports are slow)."""

    def __init__(self, paths: dict[str, str]) -> None:
        self._paths = dict(paths)
        self._classes: dict[str, type[RewardProtocol]] = {}

    def __getitem__(self, name: str) -> type[RewardProtocol]:
        if name not in self._paths:
            raise KeyError(name)
        if name not in self._classes:
            self._classes[name] = import_object(self._paths[name], base=RewardProtocol,
                                                what=f"registered reward {name!r}")
        return self._classes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)

    def qualified(self, name: str) -> str:
        """``module:QualName`` of a registered class, without importing it."""
        return self._paths[name]

    def name_for_path(self, qualified: str) -> str | None:
        """The registered name of ``module:QualName`` (old module paths too), or ``None``."""
        wanted = _canonical(qualified)
        return next((n for n, p in self._paths.items() if p == wanted), None)

    def add(self, cls: type[RewardProtocol], name: str | None = None) -> str:
        """Register ``cls`` under ``name`` (default: its class name); returns the name."""
        name = name or cls.__name__
        path = f"{cls.__module__}:{cls.__qualname__}"
        if self._paths.get(name, path) != path:
            raise ValueError(f"reward name {name!r} is already registered for "
                             f"{self._paths[name]}; pass another name")
        self._paths[name] = path
        self._classes[name] = cls
        return name


REWARD_CLASSES = RewardRegistry(_BUILTIN)
"""Every reward class a saved reward model may name (name -> class, imported lazily)."""


def register_reward_class(cls: type[RewardProtocol], name: str | None = None) -> str:
    """Let saved reward models name ``cls`` (your own :class:`RewardModel`); returns its name.

    Call it before saving or loading such a model; loading never imports a class that a
    file names unless it is registered.
    """
    if not (isinstance(cls, type) and issubclass(cls, RewardProtocol)):
        raise TypeError(f"{cls!r} is not a RewardModel subclass")
    return REWARD_CLASSES.add(cls, name)


def registered_name(model: RewardProtocol | type[RewardProtocol]) -> str:
    """The registered name of a reward module's class; refuses an unregistered class."""
    cls = model if isinstance(model, type) else type(model)
    name = REWARD_CLASSES.name_for_path(f"{cls.__module__}:{cls.__qualname__}")
    if name is None:
        raise UnknownRewardClassError(
            f"{cls.__module__}:{cls.__qualname__} is not a registered reward class, so a saved "
            "copy could not be loaded; register it first "
            "(rewardlearn.rewards.registry.register_reward_class)")
    return name


def reward_class(name: str) -> type[RewardProtocol]:
    """The registered class for a name (``MLPReward``) or an old checkpoint's
    ``module:QualName``; anything else is refused with the valid names listed."""
    key = name if name in REWARD_CLASSES else REWARD_CLASSES.name_for_path(name)
    if key is None:
        raise UnknownRewardClassError(
            f"unknown reward class {name!r}: loading builds only registered reward classes "
            f"({', '.join(sorted(REWARD_CLASSES))}); a class of your own must be registered "
            "with rewardlearn.rewards.registry.register_reward_class before loading")
    return REWARD_CLASSES[key]


def trust(reference: str) -> None:
    """Allow loading to import ``module:name`` (e.g. your shaping function) from a file's
    settings. Only call it for code you trust: the saved settings choose the arguments."""
    _TRUSTED.add(_canonical(reference))


_REFERENCE_BASES: list[type] = []
"""Classes whose rewardlearn subclasses saved settings may name (potentials, encoders);
their modules add them with :func:`allow_subclasses_of`, so this module imports nothing
above it."""


def allow_subclasses_of(base: type) -> type:
    """Let saved settings name rewardlearn's subclasses of ``base``; returns ``base``."""
    if base not in _REFERENCE_BASES:
        _REFERENCE_BASES.append(base)
    return base


def _path_key(path: str) -> str:
    return os.path.realpath(os.path.expanduser(str(path)))


class ReferenceCheck:
    """The import guard of a saved model's settings (:func:`rewardlearn.utils.guarded_imports`).

    Args:
        trusted: references (``"my_pkg.mod:phi"``) and file paths (an ``agent.zip`` a
            ``ValuePotential`` names) the caller vouches for (``load_reward_model(trust=...)``).
    """

    def __init__(self, trusted: Collection[str] = ()) -> None:
        self.trusted = {_canonical(t) for t in trusted if ":" in str(t) or "." in str(t)}
        self.trusted |= {_canonical(t) for t in _TRUSTED}
        self.files = {_path_key(t) for t in trusted}

    def _trusted_ref(self, qualified: str) -> bool:
        return (qualified in self.trusted
                or REWARD_CLASSES.name_for_path(qualified) is not None)

    def before_import(self, module: str, qualified: str) -> None:
        root = module.split(".")[0]
        if root in ("rewardlearn", *_TRUSTED_PACKAGES) or self._trusted_ref(qualified):
            return
        raise self._refusal(qualified)

    def after_resolve(self, qualified: str, obj: object) -> None:
        module, name = qualified.split(":", 1)
        if self._trusted_ref(qualified) and (inspect.isclass(obj) or inspect.isfunction(obj)):
            return
        if defined_in(obj, module, name):
            root = module.split(".")[0]
            if root in _TRUSTED_PACKAGES:
                return
            if (root == "rewardlearn" and inspect.isclass(obj)
                    and issubclass(obj, tuple(_REFERENCE_BASES))):
                return
        raise self._refusal(qualified)

    def check_file(self, path: str, what: str) -> None:
        if _path_key(path) in self.files or str(path) in self.files:
            return
        raise UntrustedReferenceError(
            f"the saved settings name the file {path!r}, {what}, so reading it can run code "
            "from it; it is loaded only when you trust it: load with trust=[path] "
            f"(reward=checkpoint: '+reward.model.trust=[{path}]')")

    @staticmethod
    def _refusal(qualified: str) -> UntrustedReferenceError:
        return UntrustedReferenceError(
            f"the saved settings name {qualified!r}, which loading may not import: only "
            "registered reward classes, rewardlearn's potentials and encoders, and classes and "
            "functions defined in rewardlearn_envs are imported from a file. If you trust it, "
            f"load with trust=[...] (reward=checkpoint: '+reward.model.trust=[{qualified}]') "
            f"or call rewardlearn.rewards.registry.trust({qualified!r}) first")


def check_reference(qualified: str, trusted: Collection[str] = ()) -> None:
    """Refuse a dotted path in saved settings unless loading may import it (see the module
    docstring); imports it to check what it names."""
    with guarded_imports(ReferenceCheck(trusted)):
        import_object(qualified, what="saved setting")


__all__ = [
    "REWARD_CLASSES",
    "ReferenceCheck",
    "RewardRegistry",
    "UnknownRewardClassError",
    "UntrustedReferenceError",
    "allow_subclasses_of",
    "check_reference",
    "register_reward_class",
    "registered_name",
    "reward_class",
    "trust",
]
