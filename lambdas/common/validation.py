"""Field checks shared by the typed models: each failure names the field and the rule it broke."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MAX_KEY_LENGTH = 1024  # S3's limit on object keys
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


class InvalidMessageError(ValueError):
    """The message itself is wrong; retrying it can never help."""

    def __init__(self, reason: str, error_type: str = "SchemaViolation") -> None:
        super().__init__(reason)
        self.reason = reason
        self.error_type = error_type


def require_mapping(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidMessageError(f"{field} must be a JSON object, got {type(value).__name__}")
    return value


def reject_unknown(value: Mapping[str, Any], allowed: Iterable[str], field: str) -> None:
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise InvalidMessageError(
            f"{field} has unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def optional_str(value: Mapping[str, Any], name: str, field: str, max_length: int = 256) -> str | None:
    item = value.get(name)
    if item is None:
        return None
    if not isinstance(item, str) or not item.strip():
        raise InvalidMessageError(f"{field}.{name} must be a non-empty string")
    if len(item) > max_length or _CONTROL_CHARACTERS.search(item):
        raise InvalidMessageError(f"{field}.{name} must be at most {max_length} printable characters")
    return item


def optional_int(
    value: Mapping[str, Any], name: str, field: str, *, minimum: int, maximum: int
) -> int | None:
    """An integer in [minimum, maximum]; booleans, floats (even 16.0) and strings are rejected."""
    item = value.get(name)
    if item is None:
        return None
    if isinstance(item, bool) or not isinstance(item, int):
        raise InvalidMessageError(f"{field}.{name} must be an integer, got {item!r}")
    if not minimum <= item <= maximum:
        raise InvalidMessageError(f"{field}.{name}={item} is outside the allowed range {minimum}..{maximum}")
    return item


def plain_key(item: Any, field: str, *, prefix: bool = False) -> str:
    """An object key inside the configured bucket: no URL, no absolute path, no `..`, no other bucket."""
    if not isinstance(item, str) or not item:
        raise InvalidMessageError(f"{field} must be a non-empty string")
    problem = None
    if len(item) > MAX_KEY_LENGTH:
        problem = f"is longer than {MAX_KEY_LENGTH} characters"
    elif "://" in item or item.lower().startswith("arn:"):
        problem = "must be a key in the input bucket, not a URL or ARN"
    elif item.startswith("/") or "\\" in item:
        problem = "must be a relative key (no leading '/', no backslashes)"
    elif any(part in ("..", ".") for part in item.split("/")):
        problem = "must not contain '.' or '..' path segments"
    elif "//" in item or _CONTROL_CHARACTERS.search(item):
        problem = "must not contain empty path segments or control characters"
    elif item.endswith("/") and not prefix:
        problem = "must name an object, not a folder"
    if problem:
        raise InvalidMessageError(f"{field} {item[:200]!r} {problem}")
    return item
