"""Fake credentials, loopback endpoints and child environments: the local stack never reaches AWS.

Every process the stack starts gets its environment from `child_environment`: a few basics of the
shell (never an `AWS_*` variable: no profile, real key, endpoint override or
AWS_IGNORE_CONFIGURED_ENDPOINT_URLS), then fake credentials and loopback endpoints, checked by
`check_local`. The stack's own boto3 calls go through `LocalAws`, whose clients refuse to send a
request anywhere but 127.0.0.1.
"""

from __future__ import annotations

import os
import threading
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Protocol

import boto3
from botocore.config import Config

REPO: Final = Path(__file__).resolve().parents[1]
LOOPBACK: Final = "127.0.0.1"
REGION: Final = "us-east-1"
ACCOUNT_ID: Final = "123456789012"  # moto's default account
FAKE_CREDENTIALS: Final = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
_CLIENT_CONFIG: Final = Config(
    retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=30
)
# moto's sts:AssumeRole answers temporary keys with this prefix (they only ever reach the loopback
# endpoints checked above).
ROLE_KEY_PREFIX: Final = "ASIA"
# Set in every child: lets the stack (and its tests) find anything it started, grandchildren included.
RUN_MARKER: Final = "LOCAL_STACK_RUN_ID"


class ClientSource(Protocol):
    """A boto3 Session, or LocalAws: anything that hands out clients."""

    # Any signature: boto3's Session.client is typed one overload per service name, no plain str.
    def client(self, *args: Any, **kwargs: Any) -> Any: ...


class NotLocalError(RuntimeError):
    """An endpoint would leave this machine: the local stack refuses to start or to call it."""


def loopback_url(port: int) -> str:
    return f"http://{LOOPBACK}:{port}"


def require_loopback(url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "http" or parsed.hostname != LOOPBACK:
        raise NotLocalError(
            f"{url!r} is not an http://{LOOPBACK} endpoint; the local stack talks to nothing else"
        )
    return url


def aws_environment(moto_url: str, lambda_url: str) -> dict[str, str]:
    """What points every AWS SDK and the AWS CLI at moto, and Lambda at the local host."""
    return FAKE_CREDENTIALS | {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": require_loopback(moto_url),
        # boto3/botocore and the CLI honour per-service endpoints: Lambda goes to the local host,
        # so the dispatcher's InvokeFunction reaches the real controller handler.
        "AWS_ENDPOINT_URL_LAMBDA": require_loopback(lambda_url),
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def check_local(env: Mapping[str, str]) -> None:
    """Refuse an environment whose AWS settings could reach a real account."""
    for name, value in env.items():
        if name.startswith("AWS_ENDPOINT_URL"):
            require_loopback(value)
    if "AWS_ENDPOINT_URL" not in env:
        raise NotLocalError("AWS_ENDPOINT_URL is not set: an SDK would call real AWS")
    key = env.get("AWS_ACCESS_KEY_ID", "")
    if key != FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"] and not (
        key.startswith(ROLE_KEY_PREFIX) and env.get("AWS_SESSION_TOKEN")
    ):
        raise NotLocalError("only the fake credentials or moto's role credentials may be used locally")
    for forbidden in ("AWS_PROFILE", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
        if forbidden in env:
            raise NotLocalError(f"{forbidden} must not be set in the local stack")


# What a child inherits from the shell that started the stack: enough to run Python, nothing that
# configures the app, the jobs or an AWS SDK (in AWS those get only their image's and task's variables).
_INHERITED: Final = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TERM", "TMPDIR", "TZ")


def child_environment(
    aws: Mapping[str, str], extra: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The basics of `base` (default os.environ) and the run marker, then `extra`, then `aws` last,
    so credentials and endpoints only ever come from `aws`."""
    source = os.environ if base is None else base
    inherited = {k: v for k, v in source.items() if k in _INHERITED or k.startswith("LC_") or k == RUN_MARKER}
    safe_extra = {
        k: v for k, v in (extra or {}).items() if not k.startswith(("AWS_ENDPOINT_URL", "AWS_PROFILE"))
    }
    env = inherited | safe_extra | dict(aws)
    check_local(env)
    return env


class LocalAws:
    """boto3 clients for the stack's own calls, all on moto; every request is checked to stay local."""

    def __init__(self, moto_url: str, credentials: Mapping[str, str] | None = None) -> None:
        """`credentials` (a role's, as `role_credentials` gives them): calls made as that role, which
        moto checks against its policies; default: the operator's fake credentials."""
        self.moto_url = require_loopback(moto_url)
        keys = dict(credentials or FAKE_CREDENTIALS)
        self.session = boto3.session.Session(
            aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=keys["AWS_SESSION_TOKEN"],
            region_name=REGION,
        )
        self.session.events.register("before-send", self._guard)
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _guard(request: Any, **_: Any) -> None:
        require_loopback(request.url)

    def client(self, service: str) -> Any:
        """One client per service, shared by the stack's threads (boto3 clients are thread-safe)."""
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self.session.client(  # type: ignore[call-overload]
                    service, endpoint_url=self.moto_url, config=_CLIENT_CONFIG
                )
            return self._clients[service]
