"""Request limits.

The app decides how many files one HTTP request may carry (`MAX_FILES_PER_REQUEST`, default below)
and publishes it in `/health` under `limits.max_files_per_request`. The instance controller takes
up to `MAX_FILES_PER_CONTROLLER_REQUEST` keys in one invocation and sends them to the app in
requests of the app's published size (`files_per_request`), never a number of its own.
"""

from __future__ import annotations

from typing import Final

# The app's default for MAX_FILES_PER_REQUEST (files in one POST /process or upload).
MAX_FILES_PER_REQUEST: Final = 100
# Keys one `start_and_process` invocation of the controller may carry; it splits them into requests.
MAX_FILES_PER_CONTROLLER_REQUEST: Final = 1000


def files_per_request(published: int | None) -> int:
    """How many files the controller puts in one request: what the app published in /health, or the
    app's default when it published nothing (an app older than the `limits` field)."""
    return published if published is not None else MAX_FILES_PER_REQUEST
