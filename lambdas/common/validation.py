"""Field checks shared by the typed models: each failure names the field and the rule it broke."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any, Final

from contract.names import COLLECTION_RULE, is_collection_name

MAX_KEY_LENGTH = 1024  # S3's limit on object keys, in UTF-8 bytes
# Controls (C0, DEL, C1 such as U+0085), unpaired surrogates, line and paragraph separators: they
# break lines in e-mails and logs, or cannot be encoded at all (a surrogate fails every AWS call).
_UNPRINTABLE_CATEGORIES: Final = frozenset({"Cc", "Cs", "Zl", "Zp"})
# Bidirectional overrides and isolates reorder what a reader sees (a spoofed name in a notification).
_BIDI_CONTROLS: Final = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


MAX_REASON_LENGTH: Final = 2000


def _refused(char: str) -> bool:
    return unicodedata.category(char) in _UNPRINTABLE_CATEGORIES or char in _BIDI_CONTROLS


def unprintable(text: str) -> str | None:
    """A description of the first character not allowed in names, keys and metadata, or None."""
    char = next((char for char in text if _refused(char)), None)
    if char is None:
        return None
    if unicodedata.category(char) == "Cs":
        return f"an unpaired surrogate U+{ord(char):04X} (not valid Unicode)"
    name = unicodedata.name(char, "").lower() or "a control character"
    return f"U+{ord(char):04X} ({name})"


def escape_unprintable(text: str) -> str:
    """`text` with every character `unprintable` refuses written as a visible escape (\\u2028)."""
    return "".join(f"\\u{ord(char):04x}" if _refused(char) else char for char in text)


class InvalidMessageError(ValueError):
    """The message itself is wrong; retrying it can never help."""

    def __init__(self, reason: str, error_type: str = "SchemaViolation") -> None:
        # Reasons quote the message: escaped and bounded, so they are safe in SQS attributes, logs
        # and e-mails whatever the sender wrote.
        reason = escape_unprintable(reason)
        if len(reason) > MAX_REASON_LENGTH:
            reason = reason[: MAX_REASON_LENGTH - 3] + "..."
        super().__init__(reason)
        self.reason = reason
        self.error_type = error_type


def require_printable(text: str, field: str) -> str:
    problem = unprintable(text)
    if problem:
        raise InvalidMessageError(f"{field} contains {problem}; only printable characters are allowed")
    return text


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
    if len(item) > max_length:
        raise InvalidMessageError(f"{field}.{name} must be at most {max_length} characters")
    return require_printable(item, f"{field}.{name}")


def optional_collection(value: Mapping[str, Any], name: str, field: str) -> str | None:
    """A collection name the app accepts (contract/names.py), or None when absent."""
    item = value.get(name)
    if item is None:
        return None
    if not isinstance(item, str):
        raise InvalidMessageError(f"{field}.{name} must be a string, got {type(item).__name__}")
    require_printable(item, f"{field}.{name}")
    if not is_collection_name(item):
        raise InvalidMessageError(
            f"{field}.{name} {item[:80]!r} must be {COLLECTION_RULE} (the face service's rule)"
        )
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


def readable_key(key: str, field: str, prefixes: tuple[str, ...]) -> str:
    """A key under one of the prefixes the dispatcher may read (its IAM policy allows no other)."""
    if prefixes and not key.startswith(tuple(prefixes)):
        raise InvalidMessageError(
            f"{field} {key[:200]!r} is outside the prefixes the dispatcher may read "
            f"({', '.join(prefixes)}): put it under one of them",
            "InputNotReadable",
        )
    return key


def plain_key(item: Any, field: str, *, prefix: bool = False) -> str:
    """An object key inside the configured bucket: no URL, no absolute path, no `..`, no other bucket."""
    if not isinstance(item, str) or not item:
        raise InvalidMessageError(f"{field} must be a non-empty string")
    problem = None
    if len(item.encode("utf-8", "surrogatepass")) > MAX_KEY_LENGTH:
        problem = f"is longer than S3's {MAX_KEY_LENGTH} bytes (UTF-8)"
    elif "://" in item or item.lower().startswith("arn:"):
        problem = "must be a key in the input bucket, not a URL or ARN"
    elif item.startswith("/") or "\\" in item:
        problem = "must be a relative key (no leading '/', no backslashes)"
    elif any(part in ("..", ".") for part in item.split("/")):
        problem = "must not contain '.' or '..' path segments"
    elif "//" in item:
        problem = "must not contain empty path segments"
    elif unprintable(item):
        problem = f"must not contain {unprintable(item)}"
    elif item.endswith("/") and not prefix:
        problem = "must name an object, not a folder"
    if problem:
        raise InvalidMessageError(f"{field} {item[:200]!r} {problem}")
    return item
