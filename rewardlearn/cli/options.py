"""The commands' one ``key=value`` parser and one error wrapper.

Values are typed by a converter per key; for a :class:`~rewardlearn.settings.Settings`
dataclass the converters come from its field types (:func:`settings_types`), so a
command accepts every setting of a method by name, and an unknown key is refused with
the list of valid ones.

Example:
    >>> parse_key_values(["n=3", "flag=yes"], {"n": int, "flag": parse_bool})
    {'n': 3, 'flag': True}
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rewardlearn.settings import Settings

Converter = Callable[[str], Any]


def parse_bool(value: str) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off`` (any case)."""
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def int_list(value: str) -> list[int]:
    """``1,2,3`` or ``[1,2,3]``."""
    return [int(v) for v in value.strip("[]").split(",") if v.strip()]


def float_list(value: str) -> list[float]:
    """``0.1,0.2`` or ``[0.1,0.2]``."""
    return [float(v) for v in value.strip("[]").split(",") if v.strip()]


def str_list(value: str) -> list[str]:
    """``a,b`` or ``[a,b]``."""
    return [v.strip() for v in value.strip("[]").split(",") if v.strip()]


def mapping(value: str) -> dict[str, Any]:
    """A YAML (or JSON) mapping: ``'{steps: 800, seed: 1}'``."""
    import yaml

    try:
        out = yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise ValueError(f"not a YAML mapping: {err}") from None
    if not isinstance(out, dict):
        raise ValueError(f"expected a mapping like '{{key: value}}', got {value!r}")
    return out


def _optional(convert: Converter) -> Converter:
    def parse(value: str) -> Any:
        return None if value.strip().lower() in ("null", "none", "") else convert(value)

    return parse


def _either(*converters: Converter) -> Converter:
    def parse(value: str) -> Any:
        for convert in converters:
            try:
                return convert(value)
            except ValueError:
                continue
        raise ValueError(f"cannot read {value!r}")

    return parse


_SIMPLE: dict[Any, Converter] = {int: int, float: float, str: str, bool: parse_bool,
                                 dict: mapping}
_LISTS: dict[Any, Converter] = {int: int_list, float: float_list, str: str_list}


def converter_for(tp: Any) -> Converter:
    """The converter of a field type: ``int``, ``float``, ``str``, ``bool``, ``list[X]``,
    ``X | None``, ``X | Y`` (tried in order), ``dict`` (JSON)."""
    if tp in _SIMPLE:
        return _SIMPLE[tp]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (list, tuple, Sequence) and args and args[0] in _LISTS:
        return _LISTS[args[0]]
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        convert = converter_for(rest[0]) if len(rest) == 1 else _either(
            *(converter_for(a) for a in rest))
        return _optional(convert) if len(rest) < len(args) else convert
    if origin is dict:
        return mapping
    raise TypeError(f"no command-line converter for {tp!r}")


def settings_types(cls: type[Settings]) -> dict[str, Converter]:
    """A converter for every field of a settings dataclass, from its type."""
    hints = typing.get_type_hints(cls)
    return {f.name: converter_for(hints[f.name]) for f in dataclasses.fields(cls)}


def parse_key_values(tokens: Sequence[str], types_: Mapping[str, Converter]
                     ) -> dict[str, Any]:
    """``key=value`` tokens parsed by ``types_[key]``; unknown keys and bad values say so."""
    values: dict[str, Any] = {}
    for token in tokens:
        key, sep, raw = token.partition("=")
        key = key.lstrip("-").replace("-", "_")
        if not sep:
            raise ValueError(f"expected key=value, got {token!r}")
        if key not in types_:
            raise ValueError(f"unknown option {key!r}; options: {', '.join(sorted(types_))}")
        try:
            values[key] = types_[key](raw)
        except ValueError as err:
            raise ValueError(f"bad value for {key}: {raw!r} ({err})") from None
    return values


def split_command(args: Sequence[str], commands: Sequence[str], default: str
                  ) -> tuple[str, list[str]]:
    """``(command, rest)`` from ``[command] key=value ...``; an unknown command lists them."""
    rest = list(args)
    command = default
    if rest and "=" not in rest[0]:
        command = rest.pop(0)
        if command not in commands:
            raise ValueError(f"unknown command {command!r}; choose from {', '.join(commands)}")
    return command, rest


def cli_args(argv: Sequence[str] | None, doc: str | None) -> list[str]:
    """The command-line tokens (``sys.argv[1:]`` by default); ``-h``/``help`` prints ``doc``
    and exits."""
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help", "help") for a in args):
        print(doc)
        raise SystemExit(0)
    return args


def run_cli(main: Callable[[], Any]) -> None:
    """Run a command's ``main``; input errors exit with ``error: <message>``, no trace."""
    try:
        main()
    except (ValueError, FileNotFoundError, FileExistsError, PermissionError) as err:
        raise SystemExit(f"error: {err}") from None


__all__ = ["cli_args", "converter_for", "float_list", "int_list", "mapping", "parse_bool",
           "parse_key_values", "run_cli", "settings_types", "split_command", "str_list"]
