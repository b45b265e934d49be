"""Manifests of bulk embedding jobs: one line per image, parsed the same way by the dispatcher (which
counts the images to size the Batch array job) and by every array child (which shards them).

A line is a plain object key, or a JSON object with a non-empty string "key" (its other fields are
metadata that travel with the image). Blank lines are skipped. A key listed twice is one image:
the first line wins and later ones are dropped, so the dispatcher's count is the number of images
the children process (counting duplicates would size the array for work that never comes).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from typing import Any

from contract.errors import ConfigError


class ManifestError(ConfigError):
    """A manifest line is neither a plain key nor a JSON object with a 'key'."""


@dataclasses.dataclass(frozen=True, slots=True)
class ManifestEntry:
    key: str
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)  # the line's fields besides "key"
    # 1-based line number in the manifest (0: not read from one); not part of the entry's identity.
    line: int = dataclasses.field(default=0, compare=False)

    def to_json(self) -> str:
        """The entry as a manifest line (without the newline)."""
        return json.dumps({**self.metadata, "key": self.key})


def parse_line(line: str, number: int, source: str = "manifest") -> ManifestEntry | None:
    """The entry on one line, None for a blank line; ManifestError for anything else."""
    text = line.strip()
    if not text:
        return None
    if not text.startswith("{"):
        return ManifestEntry(text, {}, number)
    try:
        entry = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: hostile nesting, a reason rather than a crash
        entry = None
    if not isinstance(entry, dict) or not isinstance(entry.get("key"), str) or not entry["key"]:
        raise ManifestError(f"{source} line {number} is neither a plain key nor a JSON object with a 'key'")
    key = entry.pop("key")
    return ManifestEntry(key, entry, number)


def iter_manifest(lines: Iterable[str], source: str = "manifest") -> Iterator[ManifestEntry]:
    """The manifest's entries in order, each key once (its first line wins). Streams: only the keys
    seen so far are held."""
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        entry = parse_line(line, number, source)
        if entry is not None and entry.key not in seen:
            seen.add(entry.key)
            yield entry


def parse_manifest(lines: Iterable[str], source: str = "manifest") -> list[ManifestEntry]:
    return list(iter_manifest(lines, source))
