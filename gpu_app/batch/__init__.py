"""AWS Batch entry points of the app's image: `python -m gpu_app.batch embed | run-script | cleanup-cache`.

* `embed` (`embed.py`): the bulk face-embedding job, one array child per shard of the input.
* `run-script` (`script_runner.py`): the dispatcher's `batch_job` trigger: run a script from S3.
* `cleanup-cache` (`cache.py`): empty the model cache directory.

See README.md in this folder for the environment, outputs and exit codes.
"""

from __future__ import annotations

from collections.abc import Iterable

# The exit codes and the configuration error are the contract's (the dispatcher and the monitor read them).
from contract.batch_job import EXIT_CONFIG, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from contract.errors import ConfigError
from contract.names import COLLECTION_RULE, is_collection_name

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "ConfigError",
    "output_key",
    "require",
    "require_collection",
]


def require(settings: Iterable[tuple[str, str, str | None]]) -> None:
    """Raise one ConfigError naming every (variable, flag, value) whose value is empty."""
    missing = [f"{env} (or {flag})" for env, flag, value in settings if not value]
    if missing:
        raise ConfigError(f"set {', '.join(missing)}")


def require_collection(name: str) -> None:
    """The app's collection rule (contract.names): a job indexes nothing the API would refuse."""
    if not is_collection_name(name):
        raise ConfigError(
            f"COLLECTION (or --collection) {name!r} is not a collection name ({COLLECTION_RULE})"
        )


def output_key(prefix: str, name: str) -> str:
    """`name` under the job's OUTPUT_PREFIX (the dispatcher's prefixes end with '/', others may not)."""
    return f"{prefix.strip('/')}/{name}"
