"""Images on the local filesystem (the embedded default)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gpu_app.storage.base import ObjectNotFoundError, StorageError, validate_key


class LocalStorage:
    backend = "local"

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / validate_key(key)).resolve()
        if not path.is_relative_to(self.root):
            raise StorageError(f"key {key!r} escapes the storage root")
        return path

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        path = self._path(key)
        # Write-then-rename: a reader never sees half a file, a crash never leaves one.
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        except OSError as exc:
            raise StorageError(f"could not write {key!r}: {exc}") from exc
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            Path(tmp).replace(path)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise StorageError(f"could not write {key!r}: {exc}") from exc
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFoundError(key) from None
        except OSError as exc:  # unreadable, name too long for this filesystem, I/O error
            raise StorageError(f"could not read {key!r}: {exc}") from exc

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        # Drop now-empty folders up to the root so listings stay clean.
        for parent in path.parents:
            if parent == self.root or not parent.is_relative_to(self.root):
                break
            try:
                parent.rmdir()
            except OSError:
                break

    def list(self, prefix: str) -> Iterator[str]:
        # Walk only the folder the prefix names (an image's own folder for a lookup by id), not
        # the whole root: the cost follows the answer, not the number of stored images.
        folder = self.root / prefix.rpartition("/")[0]
        if not folder.resolve().is_relative_to(self.root):
            raise StorageError(f"prefix {prefix!r} escapes the storage root")
        keys = (
            path.relative_to(self.root).as_posix()
            for path in folder.rglob("*")
            if path.is_file() and not path.name.startswith(".tmp-")
        )
        yield from sorted(key for key in keys if key.startswith(prefix))

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def health(self) -> dict[str, Any]:
        ok = self.root.is_dir() and os.access(self.root, os.W_OK)
        return {"ok": ok, "backend": self.backend, "root": str(self.root)}
