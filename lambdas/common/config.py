"""Typed configuration of each function, read from the variables declared in `env.py` and nowhere else.

Each function's class lives in its own folder (`lambdas/<function>/config.py`), so that a function
defines only its own at import, and is a NamedTuple, which takes a tenth of a frozen dataclass's
time to define (issue 18 goal 4: every class defined at import is part of the cold start)."""

from __future__ import annotations

import os
import typing
from typing import Any, TypeVar

from contract.errors import ConfigError
from lambdas.common import env

T = TypeVar("T")


def _convert(name: str, raw: str, kind: Any) -> Any:
    if kind is str:
        return raw
    if kind is int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not an integer") from None
        if value < 0:
            raise ConfigError(f"{name}={raw!r} must not be negative")
        return value
    if kind == tuple[str, ...]:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    raise ConfigError(f"{name}: no conversion to {kind!r}")


def load(cls: type[T], function: str) -> T:
    """Build `cls` (a NamedTuple or a dataclass) from the environment: field `foo_bar` is variable
    FOO_BAR of `function` in env.py."""
    declared = env.FUNCTION_ENVIRONMENT[function]
    values: dict[str, Any] = {}
    missing: list[str] = []
    for field, kind in typing.get_type_hints(cls).items():  # the fields, in order
        name = field.upper()
        if name not in declared:
            raise ConfigError(f"{cls.__name__}.{field}: {name} is not declared for {function} in env.py")
        raw = os.environ.get(name)
        if raw is None or (raw == "" and declared[name] is None):
            raw = declared[name]
        if raw is None:
            missing.append(name)
            continue
        values[field] = _convert(name, raw, kind)
    if missing:
        raise ConfigError(f"{function}: required environment variables not set: {', '.join(missing)}")
    return cls(**values)
