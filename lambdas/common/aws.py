"""boto3 clients, created lazily and once per container.

No endpoint is configured here: boto3 honours AWS_ENDPOINT_URL itself, so the same code reaches AWS
in Lambda and moto or the local stack elsewhere.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from lambdas.common.cache import per_container

# Standard retry mode retries throttling, 5xx and connection errors a few times before the error
# reaches the handler (which then raises, so Lambda retries the whole event).
_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 4},
    connect_timeout=5,
    read_timeout=60,
)


@per_container
def client(service: str) -> Any:
    return boto3.session.Session().client(service, config=_CLIENT_CONFIG)  # type: ignore[call-overload]


@per_container
def region() -> str:
    return str(boto3.session.Session().region_name or "us-east-1")


NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError, '' for anything else."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def is_not_found(exc: BaseException) -> bool:
    """S3 answers a missing key with NoSuchKey (GET) or a bare 404 (HEAD)."""
    return error_code(exc) in NOT_FOUND_CODES
