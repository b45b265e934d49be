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

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from contract import manifest
from contract.media import is_image_key
from gpu_app.batch import ConfigError
from gpu_app.storage import ImageStorage, ObjectNotFoundError

log = logging.getLogger(__name__)

T = TypeVar("T")

INPUTS_NAME = "inputs.jsonl"
# One input: a manifest line's key and its other fields (the contract's entry, parsed as the
# dispatcher parsed it when it sized the array job).
InputItem = manifest.ManifestEntry


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
    """Image keys under the prefix (contract.media's suffixes, any case), sorted: the images the
    dispatcher counted."""
    keys = (key for key in storage.list(prefix) if is_image_key(key))
    return [InputItem(key) for key in sorted(keys)]


def parse_manifest(lines: Iterable[str], source: str = "manifest") -> list[InputItem]:
    """The contract's manifest format (contract/manifest.py): a key listed twice is one item, a bad
    line a ConfigError (ManifestError) naming its number."""
    return manifest.parse_manifest(lines, source)


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
