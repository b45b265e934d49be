"""Secrets by name from AWS SSM Parameter Store or Secrets Manager, never from code or state; and
the API key, re-read while the app runs so a rotation takes effect without a restart."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final

log = logging.getLogger(__name__)

# terraform/modules/api_key creates the parameter with this placeholder; the user replaces it.
TERRAFORM_PLACEHOLDER_PREFIX: Final = "PLACEHOLDER-"
DEFAULT_API_KEY_REFRESH_SECONDS: Final = 30.0


def fetch_secret(name: str, region: str | None = None) -> str:
    """The raw value of a secret named by reference.

    `secretsmanager:<id>` or a Secrets Manager ARN reads Secrets Manager; anything else is an SSM
    parameter name, read with decryption (SecureString).
    """
    import boto3  # deferred: only deployments that name a secret pay for the import

    if name.startswith("secretsmanager:") or ":secretsmanager:" in name:
        client = boto3.client("secretsmanager", region_name=region)
        return str(client.get_secret_value(SecretId=name.removeprefix("secretsmanager:"))["SecretString"])
    client = boto3.client("ssm", region_name=region)
    return str(client.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"])


def normalize_api_key(value: str) -> str:
    """The key as it is compared: surrounding whitespace dropped (a value written with
    `--value file://key.txt` ends in a newline). lambdas/common/app_client.py applies the same rule."""
    return value.strip()


def read_api_key(name: str, region: str | None = None) -> str:
    """The API key held by the parameter (or secret) `name`; refuses an empty value and Terraform's
    placeholder, saying how to set the real key."""
    key = normalize_api_key(fetch_secret(name, region))
    if not key or key.startswith(TERRAFORM_PLACEHOLDER_PREFIX):
        held = "Terraform's placeholder" if key else "an empty value"
        raise RuntimeError(
            f"API key parameter {name} holds {held}; set the real key with "
            f"`aws ssm put-parameter --name {name} --type SecureString --overwrite --value KEY`"
        )
    return key


class RotatingApiKey:
    """The API key read at start (a missing or placeholder key fails the start), then re-read in the
    background once `refresh_seconds` have passed since the last read.

    A rotation therefore takes effect within `refresh_seconds`, and the old key is refused from then
    on: no grace period, because a key is rotated when it may have leaked (the instance controller
    re-reads its copy when it meets a 401). Reads never block a request: the check uses the key in
    hand while a refresh runs; a failed refresh keeps it and is retried after the next interval.
    """

    def __init__(
        self,
        name: str,
        region: str | None = None,
        refresh_seconds: float = DEFAULT_API_KEY_REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name, self.region, self.refresh_seconds, self._clock = name, region, refresh_seconds, clock
        self._key = read_api_key(name, region)
        self._read_at = clock()
        self._lock = threading.Lock()
        self._refreshing = False

    @property
    def current(self) -> str:
        with self._lock:
            due = not self._refreshing and self._clock() - self._read_at >= self.refresh_seconds
            if due:
                self._refreshing = True
        if due:
            threading.Thread(target=self._refresh, name="api-key-refresh", daemon=True).start()
        return self._key

    def _refresh(self) -> None:
        try:
            key = read_api_key(self.name, self.region)
        except Exception as exc:  # SSM down or a bad value: keep serving with the key in hand
            log.warning("API key re-read from %s failed, keeping the current key: %s", self.name, exc)
        else:
            if key != self._key:
                log.info("API key in %s changed; the new key is in effect", self.name)
            self._key = key
        finally:
            with self._lock:
                self._read_at, self._refreshing = self._clock(), False
