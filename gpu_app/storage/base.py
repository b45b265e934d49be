"""Image storage protocol and the key rules shared by every backend."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Protocol

SIDECAR_SUFFIX = ".faces.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_KEY_LENGTH = 1024
_MAX_SEGMENT_BYTES = 255


class StorageError(RuntimeError):
    """Storage failed after retries; nothing was accepted."""


class ObjectNotFoundError(StorageError):
    pass


class InvalidKeyError(ValueError):
    pass


class ImageStorage(Protocol):
    backend: str

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...

    def get(self, key: str) -> bytes:
        """Raises ObjectNotFoundError when the key does not exist."""

    def delete(self, key: str) -> None:
        """Idempotent: deleting a missing key is not an error."""

    def list(self, prefix: str) -> Iterator[str]:
        """Keys under prefix, in lexicographic order."""

    def uri(self, key: str) -> str: ...

    def health(self) -> dict[str, Any]: ...


def sanitize_filename(name: str | None, default: str = "image") -> str:
    """The last path component of a client-supplied name, reduced to [A-Za-z0-9._-]."""
    base = re.split(r"[\\/]", name or "")[-1]
    cleaned = _UNSAFE.sub("_", base).strip("._")[:120]
    return cleaned or default


def validate_key(key: str) -> str:
    """A storage key a client may name: relative, no '..' segments, no control characters, and
    storable by every backend: UTF-8, at most 1,024 bytes (S3), segments of at most 255 bytes
    (a file name on the local filesystem)."""
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidKeyError("key is not valid UTF-8 (lone surrogate)") from None
    if not key or len(encoded) > _MAX_KEY_LENGTH:
        raise InvalidKeyError(f"key must be 1..{_MAX_KEY_LENGTH} bytes of UTF-8")
    if key.startswith("/") or "\\" in key or "://" in key:
        raise InvalidKeyError(f"key {key!r} must be a relative object key (no leading '/', '\\' or scheme)")
    if any(part in {"", ".", ".."} for part in key.split("/")):
        raise InvalidKeyError(f"key {key!r} has an empty, '.' or '..' segment")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        raise InvalidKeyError("key contains control characters")
    if any(len(part.encode()) > _MAX_SEGMENT_BYTES for part in key.split("/")):
        raise InvalidKeyError(f"key {key[:80]!r}... has a segment over {_MAX_SEGMENT_BYTES} bytes")
    return key


def image_folder(prefix: str, image_id: str) -> str:
    return f"{prefix}/{image_id}/" if prefix else f"{image_id}/"


def sidecar_key(prefix: str, image_id: str, name: str) -> str:
    return f"{image_folder(prefix, image_id)}{name}{SIDECAR_SUFFIX}"
