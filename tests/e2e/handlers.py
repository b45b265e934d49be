"""Handlers for the Lambda host's own tests (the host imports them in its containers)."""

from __future__ import annotations

from typing import Any


def echo(event: Any, _context: Any) -> Any:
    return event


def first_sns_message(event: dict[str, Any], _context: Any) -> str:
    """Like a handler that trusts its SNS event: KeyError on a record without "Sns"."""
    return str(event["Records"][0]["Sns"]["Message"])
