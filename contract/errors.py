"""The one error for configuration: raised by the app, its Batch jobs and the Lambdas alike."""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting is missing or wrong (a deployment error, never the caller's): the message names the
    variable (or flag) to set. Retrying with the same configuration cannot help."""
