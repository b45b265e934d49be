"""HTTP client of the face-embedding app (`/health`, `/process`) for the controller and idle stopper.

urllib keeps the Lambda package free of HTTP libraries; the calls are few and small.
"""

from __future__ import annotations

import http.client
import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any, Final, NamedTuple

from contract.health import AppHealth
from lambdas.common.aws import client
from lambdas.common.cache import register_container_cache

HEALTH_TIMEOUT: Final = 5.0
# The key is re-read after this long, so a rotation reaches a warm container without a restart (a
# 401 re-reads it at once).
API_KEY_TTL_SECONDS: Final = 300.0
_BACKOFF_FIRST, _BACKOFF_MAX = 0.5, 15.0
# Refused, reset, timed out (OSError, URLError) or a broken HTTP exchange (HTTPException).
_NETWORK_ERRORS = (OSError, http.client.HTTPException)
# Busy or failing on the app's side: the same request may succeed later.
_TRANSIENT_STATUSES = frozenset({408, 429})


class AppError(RuntimeError):
    """The app could not be reached or answered outside its contract."""


class TransientAppError(AppError):
    """Unreachable, 5xx, 408 or 429: the same request may succeed later."""


class AppAuthError(AppError):
    """401: the key sent is not the app's key (a rotation one side has not seen yet)."""


class AppRefusedError(AppError):
    """A 4xx without per-file results (e.g. 413, a malformed body): sending it again cannot help."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"the app refused the request with HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


def base_url(private_ip: str | None, port: int, override: str) -> str:
    """`http://<private IP>:<port>`; the local stack's override wins when set."""
    if override:
        if not override.startswith(("http://", "https://")):
            raise AppError(f"APP_URL_OVERRIDE must be an http(s) URL, got {override!r}")
        return override.rstrip("/")
    if not private_ip:
        raise AppError("the instance has no private IP address yet")
    return f"http://{private_ip}:{port}"


def normalize_api_key(value: str) -> str:
    """The key as it is compared: surrounding whitespace dropped (a value written with
    `--value file://key.txt` ends in a newline). gpu_app/secret_store.py applies the same rule."""
    return value.strip()


class _ExpiringKeys:
    """API keys by parameter name, each re-read from SSM once older than API_KEY_TTL_SECONDS."""

    def __init__(self) -> None:
        self._keys: dict[str, tuple[str, float]] = {}

    def get(self, parameter_name: str, *, refresh: bool = False) -> str:
        cached = self._keys.get(parameter_name)
        if cached is not None and not refresh and time.monotonic() - cached[1] < API_KEY_TTL_SECONDS:
            return cached[0]
        response = client("ssm").get_parameter(Name=parameter_name, WithDecryption=True)
        key = normalize_api_key(str(response["Parameter"]["Value"]))
        self._keys[parameter_name] = (key, time.monotonic())
        return key

    def cache_clear(self) -> None:
        self._keys.clear()


_API_KEYS = _ExpiringKeys()
register_container_cache(_API_KEYS)


def api_key(parameter_name: str, *, refresh: bool = False) -> str:
    """The API key from its SSM SecureString parameter: cached for API_KEY_TTL_SECONDS, or re-read now."""
    return _API_KEYS.get(parameter_name, refresh=refresh)


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


class HealthProbe(NamedTuple):
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


def _post(url: str, path: str, key: str, body: dict[str, Any], timeout: float) -> tuple[int, Any]:
    """POST a JSON body with the key; a network error is TransientAppError."""
    try:
        return _request(f"{url}{path}", timeout=timeout, body=body, headers={"X-API-Key": key})
    except _NETWORK_ERRORS as exc:
        raise TransientAppError(f"POST {url}{path} failed: {exc}") from exc


def _refused(url: str, path: str, status: int, answer: Any, what: str = "") -> AppError:
    """The error for an answer the caller cannot use: 401 AppAuthError, 5xx/408/429
    TransientAppError, other 4xx AppRefusedError, anything else AppError."""
    detail = str(answer.get("detail", answer) if isinstance(answer, dict) else answer)[:500]
    if status == 401:
        return AppAuthError(f"POST {url}{path} answered HTTP 401: {detail}")
    if status >= 500 or status in _TRANSIENT_STATUSES:
        return TransientAppError(f"POST {url}{path} answered HTTP {status}: {detail}")
    if 400 <= status < 500:
        return AppRefusedError(status, detail)
    return AppError(f"POST {url}{path} answered HTTP {status}{what}: {detail}")


def submit_video(
    url: str, key: str, video_key: str, collection: str | None, timeout: float
) -> dict[str, Any]:
    """`POST /videos` (asynchronous on the app); returns its 202 body (video_job_id, result_prefix).

    401 raises AppAuthError, 5xx/408/429 and network errors TransientAppError, other 4xx AppRefusedError.
    """
    body: dict[str, Any] = {"key": video_key}
    if collection is not None:
        body["collection"] = collection
    status, answer = _post(url, "/videos", key, body, timeout)
    if status == 202 and isinstance(answer, dict):
        return answer
    raise _refused(url, "/videos", status, answer)


def process_files(
    url: str, key: str, files: Sequence[str], collection: str | None, timeout: float
) -> tuple[int, dict[str, Any]]:
    """`POST /process`; returns (HTTP status, the app's per-file results body).

    Any status that comes with per-file results is an answer (200, 207, or the files' common
    status when all failed, 4xx or 5xx: the caller decides per file). Without results: 401 raises
    AppAuthError, 5xx/408/429 and network errors TransientAppError, other 4xx AppRefusedError.
    """
    body: dict[str, Any] = {"files": list(files)}
    if collection is not None:
        body["collection"] = collection
    status, answer = _post(url, "/process", key, body, timeout)
    if isinstance(answer, dict) and isinstance(answer.get("results"), list):
        if len(answer["results"]) != len(files):
            raise AppError(
                f"POST {url}/process answered {len(answer['results'])} results for {len(files)} files"
            )
        return status, answer
    raise _refused(url, "/process", status, answer, " without results")
