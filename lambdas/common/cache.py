"""Values computed once per Lambda container (execution environment) and reused by every invocation."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_CACHED: list[Any] = []


def per_container(function: F) -> F:
    """Memoise `function` for the life of the container (clients, configuration, the API key)."""
    cached = functools.cache(function)
    _CACHED.append(cached)
    return cached  # type: ignore[return-value]


def register_container_cache(cache: Any) -> None:
    """Have `clear_container_caches` also clear `cache` (anything with a `cache_clear()` method)."""
    _CACHED.append(cache)


def clear_container_caches() -> None:
    """Forget every cached value, as a cold start would; tests call it between cases."""
    for cached in _CACHED:
        cached.cache_clear()
