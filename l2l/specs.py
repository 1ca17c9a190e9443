"""Parse the command line's ``name:key=value,key=value`` spellings into constructor calls.

Problems (``quadratic:dim=20``, ``mnist:hidden=30,layers=2``) share this syntax. Values are
converted to the type of the constructor's default for that keyword, and anything unknown gives a
one-line error that lists what exists.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Callable

from .errors import ConfigError


class SpecError(ConfigError):
    """A spelling on the command line names something that does not exist or is malformed."""


def split_spec(text: str) -> tuple[str, dict[str, str]]:
    """``"mnist:hidden=30,layers=2"`` → ``("mnist", {"hidden": "30", "layers": "2"})``."""
    name, _, rest = text.strip().partition(":")
    options: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise SpecError(f"malformed option {item!r} in {text!r}: write key=value, e.g. {name}:dim=20")
        options[key.strip().replace("-", "_")] = value.strip()
    return name.strip(), options


def convert(value: str, default: Any) -> Any:
    """Convert a string to the type of ``default`` (bool, int, float, tuple of ints, or str)."""
    if isinstance(default, bool):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected true or false, got {value!r}")
    if isinstance(default, int):
        return int(value)
    if isinstance(default, float):
        return float(value)
    if isinstance(default, tuple):
        return tuple(int(v) for v in value.replace("x", "-").split("-") if v)
    return value


def build(kind: str, registry: Mapping[str, Callable], text: str):
    """Build ``registry[name](**options)`` from ``text``, with one-line errors for bad input."""
    name, options = split_spec(text)
    if name not in registry:
        raise SpecError(f"unknown {kind} {name!r}; known: {', '.join(sorted(registry))}")
    factory = registry[name]
    params = inspect.signature(factory).parameters
    kwargs = {}
    for key, value in options.items():
        if key not in params:
            known = ", ".join(k for k in params if k != "self") or "none"
            raise SpecError(f"unknown option {key!r} for {kind} {name!r}; options: {known}")
        try:
            kwargs[key] = convert(value, params[key].default)
        except ValueError as error:
            raise SpecError(f"bad value for {name}:{key}: {error}") from None
    try:
        return factory(**kwargs)
    except (TypeError, ValueError) as error:
        raise SpecError(f"invalid {kind} {text!r}: {error}") from None
