"""The one way settings are read: a dataclass per method, built from keyword arguments.

Every settings class subclasses :class:`Settings`. Building one from a dict
(:meth:`Settings.from_kwargs`, what Hydra configs and the commands' ``key=value``
arguments go through) refuses an unknown name with :class:`UnknownSettingError`,
listing the valid ones; values out of range are refused when the object is made,
all of them in one message, before anything runs.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Demo(Settings):
    ...     what = "demo"
    ...     lr: float = 1e-3
    ...     def checks(self):
    ...         return [(self.lr > 0, f"lr must be > 0, got {self.lr}")]
    >>> Demo.from_kwargs({"lr": 0.1}).to_dict()
    {'lr': 0.1}
    >>> Demo.from_kwargs({"lr": -1})
    Traceback (most recent call last):
    ...
    ValueError: invalid demo settings: lr must be > 0, got -1
    >>> try:
    ...     Demo.from_kwargs({"rate": 1})
    ... except UnknownSettingError as err:
    ...     print(err)
    unknown demo setting(s) ['rate']; valid: ['lr']
"""

from __future__ import annotations

import numbers
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, ClassVar, TypeVar

import numpy as np

S = TypeVar("S", bound="Settings")
_KIND_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
               type(None): "null"}


def _is_kind(value: Any, kind: type) -> bool:
    """Whether ``value`` is of ``kind`` (numpy scalars too; a bool is not a number here)."""
    if kind is bool:
        return isinstance(value, bool | np.bool_)
    if isinstance(value, bool | np.bool_):
        return False
    if kind is int:
        return isinstance(value, numbers.Integral)
    if kind is float:
        return isinstance(value, numbers.Real)
    return isinstance(value, kind)


def _scalar_kinds(hint: Any) -> tuple[type, ...] | None:
    """The kinds a scalar annotation admits (``int | None`` -> ``(int, NoneType)``), or
    ``None`` for anything else (lists, mappings, ``Any``), which is not checked here."""
    args = typing.get_args(hint) if isinstance(hint, types.UnionType) or \
        typing.get_origin(hint) is typing.Union else (hint,)
    if args and all(a in _KIND_NAMES for a in args):
        return tuple(args)
    return None


def _as_int(value: Any) -> Any:
    """``value`` as an ``int`` when it is one in another form (``3.0``, ``"3"``, a numpy
    integer); anything else unchanged, for the range checks to name."""
    if isinstance(value, bool | np.bool_):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and float(value).is_integer():
        return int(float(value))
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return value
    return value


def _is_int_list(hint: Any) -> bool:
    """Whether an annotation is ``list[int]`` (layer widths and the like)."""
    return typing.get_origin(hint) is list and typing.get_args(hint) == (int,)


class UnknownSettingError(ValueError):
    """A setting name that the settings class does not have."""


def did_you_mean(unknown: Sequence[str], valid: Sequence[str]) -> str:
    """`` (did you mean budget?)`` for the closest valid name of each unknown one (difflib),
    or ``""`` when none is close."""
    import difflib

    close = [m[0] for name in unknown
             if (m := difflib.get_close_matches(str(name), list(valid), n=1, cutoff=0.6))]
    return f" (did you mean {', '.join(close)}?)" if close else ""


ENCODER_SPEC_ERROR = "encoder must be null or {target: <name or pkg.module:Class>, kwargs: {...}}"


def encoder_spec_ok(spec: Any) -> bool:
    """Whether an ``encoder`` setting is null or a ``{target, kwargs}`` mapping
    (:func:`rewardlearn.encoders.build_encoder` checks the target itself)."""
    return spec is None or (isinstance(spec, Mapping) and "target" in spec)


def encoder_spec(spec: Any) -> Any:
    """An ``encoder`` setting in its one form: a bare name becomes ``{target: name, kwargs:
    {}}`` and an empty mapping ``None`` (checked afterwards by :func:`encoder_spec_ok`)."""
    if isinstance(spec, str):
        return {"target": spec, "kwargs": {}}
    if isinstance(spec, Mapping) and not spec:
        return None
    return spec


def positive_widths(sizes: Sequence[Any]) -> bool:
    """Whether ``sizes`` are positive integer layer widths (``hidden_sizes`` checks)."""
    return all(isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in sizes)


@dataclass
class Settings:
    """Base of the settings dataclasses; subclasses list their range checks in :meth:`checks`."""

    what: ClassVar[str] = "settings"
    """The name used in error messages (``"preference"``, ``"bc"``...)."""

    def __post_init__(self) -> None:
        bad = self._type_problems()  # ranges are checked on values of the right kind only
        if not bad:
            self._coerce_int_lists()
            self.normalize()
            bad = [self._with_value(msg) for ok, msg in self.checks() if not ok]
        if bad:
            raise ValueError(f"invalid {self.what} settings: " + "; ".join(bad))

    def _type_problems(self) -> list[str]:
        """``name must be an integer (got 'abc')`` for each scalar setting (``int``,
        ``float``, ``bool``, ``str``, or one of those or ``None``) holding another kind of
        value; an ``int`` passes as a ``float``."""
        hints = typing.get_type_hints(type(self))
        out = []
        for f in fields(self):
            kinds = _scalar_kinds(hints.get(f.name))
            value = getattr(self, f.name)
            if kinds is None or (value is None and type(None) in kinds):
                continue
            if not any(_is_kind(value, k) for k in kinds):
                names = [_KIND_NAMES[k] for k in kinds if k in _KIND_NAMES]
                out.append(f"{f.name} must be {' or '.join(names)} (got {value!r})")
        return out

    def _coerce_int_lists(self) -> None:
        """Every ``list[int]`` setting (``hidden_sizes``...) as a plain list of ints, whatever
        sequence it came as (a Hydra ``ListConfig``, a tuple, YAML floats)."""
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            value = getattr(self, f.name)
            if _is_int_list(hints.get(f.name)) and isinstance(value, Sequence) \
                    and not isinstance(value, str):
                setattr(self, f.name, [_as_int(v) for v in value])

    def _with_value(self, message: str) -> str:
        """``message`` plus the value it is about, when it starts with a setting's name and
        does not show the value already."""
        name = message.split(" ", 1)[0]
        if name in self.names() and "got" not in message:
            return f"{message} (got {getattr(self, name)!r})"
        return message

    def normalize(self) -> None:
        """Coerce values (lists from YAML, aliases) before they are checked."""

    def checks(self) -> list[tuple[bool, str]]:
        """``(ok, message)`` pairs; every failing message is reported together."""
        return []

    @classmethod
    def names(cls) -> list[str]:
        """The valid setting names."""
        return sorted(f.name for f in fields(cls))

    @classmethod
    def from_kwargs(cls: type[S], kwargs: dict[str, Any]) -> S:
        """Build from a dict, refusing unknown names (with the closest valid one) and listing
        the valid ones."""
        unknown = sorted(set(kwargs) - set(cls.names()))
        if unknown:
            raise UnknownSettingError(
                f"unknown {cls.what} setting(s) {unknown}{did_you_mean(unknown, cls.names())}; "
                f"valid: {cls.names()}")
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (JSON-able when the values are)."""
        return asdict(self)


R = TypeVar("R", bound="RewardModelConfig")


@dataclass
class RewardModelConfig(Settings):
    """Base of a reward module's settings: one dataclass per method holding every default
    (lerobot's ``PreTrainedConfig.register_subclass`` pattern).

    A subclass registers under its reward name (``@RewardModelConfig.register_subclass(
    "preference")``); ``conf/reward/<name>.yaml`` then takes its defaults from it (the yaml
    keeps ``_target_`` and what differs on purpose, each such line with a comment saying
    why), and the module is built from one settings object that the run checked first.
    """

    what = "reward"
    reward_name: ClassVar[str] = ""
    _registry: ClassVar[dict[str, type[RewardModelConfig]]] = {}

    @classmethod
    def register_subclass(cls, name: str) -> Callable[[type[R]], type[R]]:
        """Class decorator: register ``sub`` as the settings of ``reward=<name>``."""

        def wrap(sub: type[R]) -> type[R]:
            known = RewardModelConfig._registry.get(name)
            if known is not None and known.__qualname__ != sub.__qualname__:
                raise ValueError(f"reward settings {name!r} already registered for {known}")
            RewardModelConfig._registry[name] = sub
            sub.reward_name = name
            if sub.what == RewardModelConfig.what:
                sub.what = name
            return sub

        return wrap

    @classmethod
    def registered(cls) -> dict[str, type[RewardModelConfig]]:
        """Reward name -> settings class, for every registered one."""
        return dict(RewardModelConfig._registry)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every setting at its default, as plain values (nested settings as dicts); not
        checked, since some settings have no valid default (a VLM's goal prompt)."""
        out: dict[str, Any] = {}
        for f in fields(cls):
            if f.default is not MISSING:
                value = f.default
            elif f.default_factory is not MISSING:
                value = f.default_factory()
            else:
                raise TypeError(f"{cls.__name__}.{f.name} has no default: a reward setting "
                                "needs one")
            out[f.name] = value.to_dict() if isinstance(value, Settings) else value
        return out

    def run_warnings(self, algo: str, total_timesteps: int) -> list[str]:
        """What to warn about these settings in a run of ``algo`` (``ppo``/``sac``) for
        ``total_timesteps`` steps (logged before training). Default: nothing."""
        return []

    def check_inputs(self) -> None:
        """Refuse files these settings name that are missing or of the wrong kind, before
        anything is built. Default: nothing."""

    @classmethod
    def build(cls: type[R], config: R | Mapping[str, Any] | None = None,
              **kwargs: Any) -> R:
        """``config`` as given (built once by the caller), or built from ``kwargs``."""
        if isinstance(config, cls):
            if kwargs:
                raise TypeError(f"give a {cls.__name__} or keyword settings, not both "
                                f"({sorted(kwargs)})")
            return config
        if config is not None:
            if not isinstance(config, Mapping):
                raise TypeError(f"config must be a {cls.__name__}, got {type(config).__name__}")
            kwargs = {**config, **kwargs}
        return cls.from_kwargs(kwargs)


__all__ = ["ENCODER_SPEC_ERROR", "RewardModelConfig", "Settings", "UnknownSettingError",
           "did_you_mean", "encoder_spec", "encoder_spec_ok",
           "positive_widths"]
