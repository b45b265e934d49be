"""What an array child works on: the job's input list, pinned once, and this child's contiguous slice.

Child i of n takes items [floor(i*N/n), floor((i+1)*N/n)) of the sorted input list. Shard sizes
differ by at most one, every item lands in exactly one shard, and the slice depends only on
(N, i, n), so a retried child gets exactly the work it had before.

Contiguous rather than strided (i, i+n, i+2n, ...): a shard is a key range, so it is described by
its first and last key in logs and summaries, and concatenating the outputs in shard order
reproduces the input order. Strided slices would spread a run of unusually large images over all
children a little more evenly; with at most ~1000 images per child that difference is small.

Children start minutes or hours apart when capacity is short, and a prefix may receive new images
meanwhile. So the first child to run writes the list it sharded to `<output prefix>/inputs.jsonl`
with a create-only (If-None-Match) PUT, and every other child, and every retry, shards that list.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gpu_app.batch import ConfigError
from gpu_app.cli import IMAGE_SUFFIXES
from gpu_app.storage import ImageStorage, ObjectNotFoundError

log = logging.getLogger(__name__)

T = TypeVar("T")

# Same rule as the dispatcher's count (lambdas/dispatcher/triggers/face_embedding.py), so the
# array size it chose matches the list the children shard.
IMAGE_EXTENSIONS = tuple(sorted(IMAGE_SUFFIXES))
INPUTS_NAME = "inputs.jsonl"


@dataclass(frozen=True, slots=True)
class InputItem:
    key: str
    metadata: dict[str, Any] = field(default_factory=dict)  # a manifest line's fields besides "key"

    def to_json(self) -> str:
        return json.dumps({**self.metadata, "key": self.key})


def shard_bounds(total: int, index: int, size: int) -> tuple[int, int]:
    """[start, stop) of child `index` of `size` over `total` items (balanced, contiguous)."""
    if size < 1:
        raise ConfigError(f"array size must be at least 1, got {size}")
    if not 0 <= index < size:
        raise ConfigError(f"array index {index} is outside 0..{size - 1}")
    return index * total // size, (index + 1) * total // size


def shard(items: Sequence[T], index: int, size: int) -> list[T]:
    start, stop = shard_bounds(len(items), index, size)
    return list(items[start:stop])


def list_prefix(storage: ImageStorage, prefix: str) -> list[InputItem]:
    """Image keys under the prefix (by extension, any case), sorted."""
    keys = (key for key in storage.list(prefix) if key.lower().endswith(IMAGE_EXTENSIONS))
    return [InputItem(key) for key in sorted(keys)]


def parse_manifest(lines: Iterable[str], source: str = "manifest") -> list[InputItem]:
    """One plain key, or a JSON object with a non-empty "key" (the rest is metadata), per line.

    Blank lines are skipped; a key listed twice is processed once (its first line wins).
    """
    items: list[InputItem] = []
    seen: set[str] = set()
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            if not isinstance(entry, dict) or not isinstance(entry.get("key"), str) or not entry["key"]:
                raise ConfigError(
                    f"{source} line {number} is neither a plain key nor a JSON object with a 'key'"
                )
            key = entry.pop("key")
            item = InputItem(key, entry)
        else:
            item = InputItem(line)
        if item.key not in seen:
            seen.add(item.key)
            items.append(item)
    return items


def read_manifest(storage: ImageStorage, key: str) -> list[InputItem]:
    try:
        data = storage.get(key)
    except ObjectNotFoundError:
        raise ConfigError(f"MANIFEST_KEY {key!r} does not exist in {storage.uri(key)}") from None
    return parse_manifest(data.decode("utf-8", "replace").splitlines(), f"manifest {key!r}")


def pinned_inputs(
    s3: Any,
    bucket: str,
    key: str,
    list_inputs: Callable[[], list[InputItem]],
    *,
    attempts: int = 5,
) -> list[InputItem]:
    """The job's input list: read from `key` if a child already pinned it, else listed and pinned.

    `s3` is a boto3 S3 client, `list_inputs()` lists the input. Create-only PUT: when two children
    race, one write wins (412 for the other, or 409 while the winner's PUT is in flight) and both
    shard the winner's list.
    """
    from botocore.exceptions import ClientError

    for attempt in range(attempts):
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            items = parse_manifest(body.decode("utf-8").splitlines(), f"s3://{bucket}/{key}")
            log.info("sharding the input list pinned at s3://%s/%s (%d items)", bucket, key, len(items))
            return items
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in {"NoSuchKey", "404"}:
                raise
        items = list_inputs()
        body = "".join(item.to_json() + "\n" for item in items).encode()
        try:
            s3.put_object(
                Bucket=bucket, Key=key, Body=body, ContentType="application/x-ndjson", IfNoneMatch="*"
            )
            log.info("pinned the input list (%d items) at s3://%s/%s", len(items), bucket, key)
            return items
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code not in {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}:
                raise
        time.sleep(0.2 * 2**attempt)  # another child pinned it (or is doing so): read theirs
    raise RuntimeError(f"could not read or create s3://{bucket}/{key} after {attempts} attempts")
