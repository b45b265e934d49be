"""The state folder (`--state-dir`, default .local-stack): what survives a restart of the stack.

moto keeps its state in memory only (its recorder replays requests, which would start instances
and re-send messages again), so every start applies Terraform into a fresh moto, and this folder carries:
- `api-key`: generated once (0600), put into the SSM parameter at each start;
- `app/index`, `app/spool`: the app's embedded vector index and job spool (the instance's disk);
- `s3/<bucket>/`: the stack's buckets, saved at a clean stop and restored at start (a manifest plus
  one file per object, named by the hash of its key, so any key is a safe file name);
- `batch/`: scratch folders of running jobs (each removed when its job ends);
- `terraform/`: the working copy of terraform/ and its state (see terraform.py); `build/`: the code zips;
- `.lock`: held while a stack runs on this folder, so two stacks never share it.
Queues, topics' messages, Batch jobs and idempotency records start empty at every start.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any, Final

MANIFEST: Final = "manifest.json"


class StateLockedError(RuntimeError):
    """Another local stack runs on this state folder."""


class StateDir:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.index_dir = self.root / "app" / "index"
        self.spool_dir = self.root / "app" / "spool"
        self.batch_dir = self.root / "batch"
        self.s3_dir = self.root / "s3"
        self._lock: IO[str] | None = None

    def lock(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        handle = (self.root / ".lock").open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise StateLockedError(f"another local stack is running on {self.root}; stop it first") from None
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock = handle

    def unlock(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def api_key(self) -> str:
        """The app's API key, created on first use and kept."""
        path = self.root / "api-key"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(32))
        return path.read_text().strip()

    # --- S3 --------------------------------------------------------------------------------------
    def _bucket_dir(self, bucket: str) -> Path:
        return self.s3_dir / bucket

    @staticmethod
    def _file_name(key: str) -> str:
        return hashlib.sha256(key.encode("utf-8")).hexdigest()

    def _manifest(self, bucket: str) -> dict[str, dict[str, Any]]:
        path = self._bucket_dir(bucket) / MANIFEST
        return json.loads(path.read_text()) if path.exists() else {}

    def save_buckets(self, s3: Any, buckets: Iterable[str]) -> int:
        """Mirror the buckets into the folder; only objects whose ETag changed are downloaded."""
        written = 0
        for bucket in buckets:
            folder = self._bucket_dir(bucket)
            (folder / "objects").mkdir(parents=True, exist_ok=True)
            old, new = self._manifest(bucket), {}
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for item in page.get("Contents", []):
                    key = item["Key"]
                    entry = old.get(key)
                    if entry is None or entry["etag"] != item["ETag"]:
                        entry = self._download(s3, bucket, key, folder)
                        written += 1
                    new[key] = entry
            for key in old.keys() - new.keys():
                (folder / "objects" / old[key]["file"]).unlink(missing_ok=True)
            temporary = folder / f"{MANIFEST}.tmp"
            temporary.write_text(json.dumps(new))
            temporary.replace(folder / MANIFEST)
        return written

    def _download(self, s3: Any, bucket: str, key: str, folder: Path) -> dict[str, Any]:
        response = s3.get_object(Bucket=bucket, Key=key)
        name = self._file_name(key)
        temporary = folder / "objects" / f"{name}.tmp"
        with temporary.open("wb") as handle:
            for chunk in response["Body"].iter_chunks(1024 * 1024):
                handle.write(chunk)
        temporary.replace(folder / "objects" / name)
        return {
            "file": name,
            "etag": response["ETag"],
            "content_type": response.get("ContentType", "binary/octet-stream"),
            "metadata": response.get("Metadata", {}),
        }

    def restore_buckets(self, s3: Any, buckets: Iterable[str]) -> int:
        """Put every saved object back (the buckets exist already: Terraform made them)."""
        restored = 0
        for bucket in buckets:
            folder = self._bucket_dir(bucket)
            for key, entry in self._manifest(bucket).items():
                path = folder / "objects" / entry["file"]
                with contextlib.suppress(FileNotFoundError), path.open("rb") as body:
                    s3.put_object(
                        Bucket=bucket,
                        Key=key,
                        Body=body,
                        ContentType=entry["content_type"],
                        Metadata=entry["metadata"],
                    )
                    restored += 1
        return restored
