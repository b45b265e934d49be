"""`cleanup-cache`: empty the model cache directory and say what it freed (the dispatcher answers a
`batch_job` message with `"operation": "cleanup-cache"` by pointing here: there is no shared EFS cache).

The directory itself stays (it may be a mount point); its contents go. Model packs are fetched
again on the next start (MODELS_S3_URI, or insightface's own download).
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from gpu_app.batch import ConfigError

log = logging.getLogger(__name__)


@dataclass(slots=True)
class CleanupReport:
    directory: Path
    entries: int = 0
    files: int = 0
    bytes: int = 0
    errors: dict[str, str] = field(default_factory=dict)


def human_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def check_cache_dir(directory: Path) -> Path:
    """Refuse the filesystem root, the home directory and any folder above it: never a cache."""
    resolved = directory.expanduser().resolve()
    home = Path.home().resolve()
    if resolved == Path(resolved.anchor) or resolved == home or resolved in home.parents:
        raise ConfigError(
            f"refusing to empty {resolved}: set MODEL_CACHE_DIR (or --cache-dir) to the cache itself"
        )
    return resolved


def _size(path: Path) -> tuple[int, int]:
    """(files, bytes) under path, without following symlinks."""
    if path.is_symlink() or not path.is_dir():
        return 1, path.lstat().st_size
    files = total = 0
    for folder, _, names in os.walk(path):
        for name in names:
            files += 1
            total += (Path(folder) / name).lstat().st_size
    return files, total


def cleanup_cache(directory: Path, *, dry_run: bool = False) -> CleanupReport:
    root = check_cache_dir(directory)
    report = CleanupReport(root)
    if not root.is_dir():
        return report
    for entry in sorted(root.iterdir()):
        try:
            files, size = _size(entry)
            if not dry_run:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        except OSError as exc:
            report.errors[str(entry)] = str(exc)
            continue
        report.entries += 1
        report.files += files
        report.bytes += size
    return report
