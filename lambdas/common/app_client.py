"""HTTP client of the face-embedding app (`/health`, `/process`) for the controller and idle stopper.

urllib keeps the Lambda package free of HTTP libraries; the calls are few and small.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any, Final

from lambdas.common.aws import client
from lambdas.common.cache import per_container
from lambdas.common.models import AppHealth

HEALTH_TIMEOUT: Final = 5.0
# Statuses /process answers with a per-file results body (all ok, some failed, all failed).
PROCESS_RESULT_STATUSES: Final = frozenset({200, 207, 422})
_BACKOFF_FIRST, _BACKOFF_MAX = 0.5, 15.0
# Refused, reset, timed out (OSError, URLError) or a broken HTTP exchange (HTTPException).
_NETWORK_ERRORS = (OSError, http.client.HTTPException)


class AppError(RuntimeError):
    """The app could not be reached or answered outside its contract."""


def base_url(private_ip: str | None, port: int, override: str) -> str:
    """`http://<private IP>:<port>`; the local stack's override wins when set."""
    if override:
        if not override.startswith(("http://", "https://")):
            raise AppError(f"APP_URL_OVERRIDE must be an http(s) URL, got {override!r}")
        return override.rstrip("/")
    if not private_ip:
        raise AppError("the instance has no private IP address yet")
    return f"http://{private_ip}:{port}"


@per_container
def api_key(parameter_name: str) -> str:
    """The API key from its SSM SecureString parameter, fetched once per container."""
    response = client("ssm").get_parameter(Name=parameter_name, WithDecryption=True)
    return str(response["Parameter"]["Value"])


def _request(
    url: str, *, timeout: float, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(  # noqa: S310 - base_url() admits only http(s) URLs
        url, data=data, method="GET" if data is None else "POST", headers=headers or {}
    )
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - see above
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as exc:  # a non-2xx answer still carries the app's JSON body
        status, payload = exc.code, exc.read()
    try:
        return status, json.loads(payload or b"null")
    except ValueError:
        return status, payload[:500].decode("utf-8", "replace")


@dataclasses.dataclass(frozen=True)
class HealthProbe:
    health: AppHealth | None
    error: str = ""

    @property
    def reachable(self) -> bool:
        return self.health is not None


def probe_health(url: str, timeout: float = HEALTH_TIMEOUT) -> HealthProbe:
    """One `GET /health`; any failure (refused, timeout, non-200, bad body) is reported, not raised."""
    try:
        status, body = _request(f"{url}/health", timeout=timeout)
    except _NETWORK_ERRORS as exc:
        return HealthProbe(None, f"unreachable: {exc}")
    if status != 200:
        return HealthProbe(None, f"/health answered HTTP {status}")
    try:
        return HealthProbe(AppHealth.parse(body))
    except ValueError as exc:
        return HealthProbe(None, f"/health body is malformed: {exc}")


def wait_until_ready(
    url: str, timeout: float, *, sleep: Callable[[float], None] = time.sleep
) -> tuple[AppHealth, int]:
    """Poll /health with jittered exponential backoff until ready; returns (health, polls)."""
    deadline = time.monotonic() + timeout
    delay, polls = _BACKOFF_FIRST, 0
    while True:
        polls += 1
        probe = probe_health(url, min(HEALTH_TIMEOUT, max(deadline - time.monotonic(), 0.1)))
        if probe.health is not None and probe.health.ready:
            return probe.health, polls
        left = deadline - time.monotonic()
        if left <= 0:
            last = probe.error or f"status {probe.health.status if probe.health else '?'}, not ready"
            raise AppError(f"app at {url} not ready after {timeout:.0f} s ({polls} polls; last: {last})")
        sleep(min(delay * random.uniform(0.8, 1.2), left))
        delay = min(delay * 2, _BACKOFF_MAX)


def process_files(
    url: str, key: str, files: Sequence[str], collection: str | None, timeout: float
) -> tuple[int, dict[str, Any]]:
    """`POST /process`; returns (HTTP status, the app's results body)."""
    body: dict[str, Any] = {"files": list(files)}
    if collection is not None:
        body["collection"] = collection
    try:
        status, answer = _request(f"{url}/process", timeout=timeout, body=body, headers={"X-API-Key": key})
    except _NETWORK_ERRORS as exc:
        raise AppError(f"POST {url}/process failed: {exc}") from exc
    if status not in PROCESS_RESULT_STATUSES or not isinstance(answer, dict) or "results" not in answer:
        raise AppError(f"POST {url}/process answered HTTP {status}: {str(answer)[:500]}")
    return status, answer
