"""AWS Batch entry points of the app's image: `python -m gpu_app.batch embed | run-script | cleanup-cache`.

* `embed` (`embed.py`): the bulk face-embedding job, one array child per shard of the input.
* `run-script` (`script_runner.py`): the dispatcher's `batch_job` trigger: run a script from S3.
* `cleanup-cache` (`cache.py`): empty the model cache directory.

See README.md in this folder for the environment, outputs and exit codes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1  # work failed (images over the tolerance, a crash, outputs not uploaded)
EXIT_CONFIG: Final = 2  # the job is misconfigured: retrying the same job cannot help
EXIT_INTERRUPTED: Final = 143  # 128 + SIGTERM: stopped by Batch after a checkpoint, resumable


class ConfigError(ValueError):
    """A setting is missing or wrong; the message names the variable (or flag) to set."""


def require(settings: Iterable[tuple[str, str, str | None]]) -> None:
    """Raise one ConfigError naming every (variable, flag, value) whose value is empty."""
    missing = [f"{env} (or {flag})" for env, flag, value in settings if not value]
    if missing:
        raise ConfigError(f"set {', '.join(missing)}")


def output_key(prefix: str, name: str) -> str:
    """`name` under the job's OUTPUT_PREFIX (the dispatcher's prefixes end with '/', others may not)."""
    return f"{prefix.strip('/')}/{name}"
