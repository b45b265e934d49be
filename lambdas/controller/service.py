"""The GPU instance controller: start, stop, status, and start-then-process through the app."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from botocore.exceptions import ClientError, WaiterError

from contract.media import is_video_key
from lambdas.common import app_client
from lambdas.common.aws import client, error_code
from lambdas.common.controller_request import ControllerRequest
from lambdas.common.instance import InstanceInfo, describe_instance
from lambdas.common.log import logger
from lambdas.common.notify import publish
from lambdas.controller.config import ControllerConfig

# Errors after which another instance type (or a later try) may succeed; anything else is raised as is.
CAPACITY_ERROR_CODES: Final = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientCapacity",
        "InsufficientHostCapacity",
        "InstanceLimitExceeded",
        "VcpuLimitExceeded",
        "Unsupported",
    }
)
# What EC2 answers when a Spot instance cannot start now: no Spot capacity for its type in its zone,
# a maximum price under the Spot price, the Spot quota, or a request that is no longer active.
SPOT_START_HINTS: Final = {
    "InsufficientInstanceCapacity": "EC2 has no Spot capacity for this type in this zone now",
    "UnfulfillableCapacity": "EC2 has no Spot capacity for this type in this zone now",
    "InsufficientCapacity": "EC2 has no Spot capacity for this type in this zone now",
    "SpotMaxPriceTooLow": "the Spot price is above the request's maximum price: raise it, or remove it "
    "to pay the current Spot price (never more than on-demand)",
    "MaxSpotInstanceCountExceeded": "the account's Spot vCPU quota is used up: request more "
    "(Service Quotas, code L-3819A6DF for G and VT Spot instances)",
    "VcpuLimitExceeded": "the account's Spot vCPU quota is used up: request more "
    "(Service Quotas, code L-3819A6DF for G and VT Spot instances)",
    "IncorrectSpotRequestState": "the instance's persistent Spot request is no longer active "
    "(cancelled or expired): re-apply Terraform to create the instance again",
}
WAITER_DELAY_SECONDS: Final = 5
# Transient /process failures (unreachable, 5xx, files failed with 5xx) are retried in place before
# the invocation fails (then Lambda retries it).
PROCESS_ATTEMPTS: Final = 3
PROCESS_RETRY_FIRST_SECONDS: Final = 1.0
_AGGREGATED: Final = frozenset({"results", "succeeded", "failed"})
GONE_STATES: Final = frozenset({"shutting-down", "terminated"})

Remaining = Callable[[], float]  # seconds this invocation may still spend


class ControllerError(RuntimeError):
    """The instance could not be brought to the asked state; the message says why."""


class InstanceCapacityError(ControllerError):
    """EC2 has no capacity (or quota) for the instance type and every fallback."""


class SpotCapacityError(InstanceCapacityError):
    """The Spot instance cannot start now; its type cannot change, so there is no fallback."""


def _wait(waiter: str, instance_id: str, timeout: float) -> None:
    """A bounded botocore waiter: fails after `timeout` seconds instead of its default ten minutes."""
    attempts = max(1, math.ceil(timeout / WAITER_DELAY_SECONDS))
    try:
        client("ec2").get_waiter(waiter).wait(
            InstanceIds=[instance_id], WaiterConfig={"Delay": WAITER_DELAY_SECONDS, "MaxAttempts": attempts}
        )
    except WaiterError as exc:
        raise ControllerError(f"{instance_id}: {waiter} not reached within {timeout:.0f} s ({exc})") from exc


def _start_spot(info: InstanceInfo, config: ControllerConfig) -> str:
    """StartInstances for a Spot instance: one try. EC2 refuses to change a stopped Spot instance's
    type, so FALLBACK_INSTANCE_TYPES cannot apply; a capacity error says what to do instead."""
    try:
        client("ec2").start_instances(InstanceIds=[info.instance_id])
    except ClientError as exc:
        code = error_code(exc)
        if code not in SPOT_START_HINTS:
            raise
        message = (
            f"GPU instance {info.instance_id} ({info.instance_type}) is a Spot instance and EC2 refused "
            f"to start it: {code}: {exc.response['Error'].get('Message', '')}\n"
            f"Why: {SPOT_START_HINTS[code]}.\n"
            "A Spot instance's type cannot be changed, so FALLBACK_INSTANCE_TYPES does not apply. "
            "What to do: retry later (an interrupted Spot instance is also restarted by EC2 itself when "
            "capacity returns), or move the instance to the on-demand market in Terraform "
            "(the GPU instance's market setting) and apply."
        )
        publish(
            config.notifications_topic_arn,
            f"GPU instance {info.instance_id} could not start: Spot {code}",
            message,
            {"event": "capacity_error", "instance_id": info.instance_id, "market": "spot"},
        )
        raise SpotCapacityError(message) from exc
    return info.instance_type


def _start(info: InstanceInfo, config: ControllerConfig) -> str:
    """StartInstances, trying the fallback types on capacity errors; returns the type that started."""
    if info.spot:
        return _start_spot(info, config)
    candidates = [info.instance_type, *(t for t in config.fallback_instance_types if t != info.instance_type)]
    failures: list[str] = []
    ec2 = client("ec2")
    for instance_type in candidates:
        try:
            if instance_type != info.instance_type:
                # Changing the type needs a stopped instance, which this one is (the start was refused).
                ec2.modify_instance_attribute(
                    InstanceId=info.instance_id, InstanceType={"Value": instance_type}
                )
            ec2.start_instances(InstanceIds=[info.instance_id])
        except ClientError as exc:
            code = error_code(exc)
            if code not in CAPACITY_ERROR_CODES:
                raise
            failures.append(f"{instance_type}: {code}: {exc.response['Error'].get('Message', '')}")
            logger.warning("instance type unavailable", extra={"instance_type": instance_type, "code": code})
            continue
        if instance_type != info.instance_type:
            logger.warning("started on a fallback type", extra={"instance_type": instance_type})
        return instance_type
    message = f"GPU instance {info.instance_id} could not start; tried " + "; ".join(failures)
    publish(
        config.notifications_topic_arn,
        f"GPU instance {info.instance_id} could not start: no capacity",
        message + "\n\nTry again later, or add instance types to FALLBACK_INSTANCE_TYPES.",
        {"event": "capacity_error", "instance_id": info.instance_id},
    )
    raise InstanceCapacityError(message)


def ensure_running(config: ControllerConfig, remaining: Remaining) -> tuple[InstanceInfo, dict[str, Any]]:
    """Bring the instance to running from any state; a running instance is left alone."""
    info = describe_instance(config.gpu_instance_id)
    outcome: dict[str, Any] = {"previous_state": info.state, "start_requested": False}
    if info.state in GONE_STATES:
        raise ControllerError(f"GPU instance {info.instance_id} is {info.state}; it cannot be started")
    if info.state == "running":
        return info, outcome

    def timeout() -> float:  # re-read after each wait: both waits share one budget
        return min(config.start_timeout_seconds, remaining())

    if info.state == "stopping":
        _wait("instance_stopped", info.instance_id, timeout())
    if info.state in ("stopping", "stopped"):
        started_type = _start(info, config)
        outcome["start_requested"] = True
        if started_type != info.instance_type:
            outcome["fallback_from"] = info.instance_type
    _wait("instance_running", info.instance_id, timeout())
    return describe_instance(config.gpu_instance_id), outcome


def stop(config: ControllerConfig, remaining: Remaining) -> tuple[InstanceInfo, dict[str, Any]]:
    info = describe_instance(config.gpu_instance_id)
    outcome: dict[str, Any] = {"previous_state": info.state, "stop_requested": False}
    if info.state in ("stopping", "stopped", *GONE_STATES):
        return info, outcome
    if info.state == "pending":
        # EC2 refuses to stop an instance that is still pending.
        _wait("instance_running", info.instance_id, min(config.start_timeout_seconds, remaining()))
    client("ec2").stop_instances(InstanceIds=[info.instance_id])
    outcome["stop_requested"] = True
    return describe_instance(config.gpu_instance_id), outcome


def _is_transient(result: Mapping[str, Any]) -> bool:
    """A file the app could not do for its own reasons now (storage down: 503), not the file's fault."""
    error = result.get("error") if result.get("status") == "error" else None
    status = error.get("status") if isinstance(error, dict) else None
    return isinstance(status, int) and (status >= 500 or status in (408, 429))


def _overall_status(results: Sequence[Mapping[str, Any]]) -> int:
    """The app's own rule over every file: 200 all ok, 207 some, else the common status (or 422)."""
    failed = [result for result in results if result.get("status") != "ok"]
    if not failed:
        return 200
    if len(failed) < len(results):
        return 207
    statuses = {(result.get("error") or {}).get("status") for result in failed}
    common = statuses.pop() if len(statuses) == 1 else None
    return common if isinstance(common, int) else 422


class _ProcessSession:
    """`POST /process` with the key from SSM: a 401 re-reads the key once and retries; transient
    failures (network, 5xx, and files that failed with a 5xx) are retried with backoff."""

    def __init__(self, url: str, parameter: str, collection: str | None, remaining: Remaining) -> None:
        self.url, self.parameter, self.collection, self.remaining = url, parameter, collection, remaining
        self.key = app_client.api_key(parameter)
        self.key_reread = False
        self.requests = 0

    def _post(self, files: Sequence[str]) -> tuple[int, dict[str, Any]]:
        while True:
            self.requests += 1
            try:
                return app_client.process_files(
                    self.url, self.key, files, self.collection, max(self.remaining(), 1.0)
                )
            except app_client.AppAuthError:
                if self.key_reread:
                    raise
                # The key may have been rotated since this container read it.
                self.key, self.key_reread = app_client.api_key(self.parameter, refresh=True), True
                logger.warning("app refused the API key; re-read it from SSM and retrying once")

    def process(self, files: Sequence[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Per-file results in the order of `files`, and the first answer's other fields."""
        results: list[dict[str, Any]] = [{} for _ in files]
        pending = list(range(len(files)))
        extra: dict[str, Any] = {}
        delay = PROCESS_RETRY_FIRST_SECONDS
        for attempt in range(1, PROCESS_ATTEMPTS + 1):
            try:
                _, body = self._post([files[i] for i in pending])
            except app_client.TransientAppError as exc:
                failure = str(exc)
            else:
                extra = extra or {k: v for k, v in body.items() if k not in _AGGREGATED}
                for position, result in zip(pending, body["results"], strict=True):
                    results[position] = result
                pending = [i for i in pending if _is_transient(results[i])]
                if not pending:
                    return results, extra
                failure = f"{len(pending)} file(s) failed transiently, e.g. {results[pending[0]]}"
            if attempt == PROCESS_ATTEMPTS or self.remaining() <= delay:
                # Raised: Lambda retries the request; files already stored are stored again (same ids).
                raise app_client.TransientAppError(f"after {attempt} attempt(s): {failure}")
            logger.warning("transient /process failure, retrying", extra={"failure": failure[:500]})
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")


def process_all(
    url: str, parameter: str, request: ControllerRequest, limit: int, remaining: Remaining
) -> dict[str, Any]:
    """Send the files in requests of at most `limit` (what the app says it takes) and merge the answers.

    Per-file 4xx outcomes are final (the file's fault: reported, not retried); a request the app
    refuses as a whole (4xx without results) is reported as `error`, since sending it again cannot help.
    """
    session = _ProcessSession(url, parameter, request.collection, remaining)
    files = list(request.files)
    results: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    for start in range(0, len(files), limit):
        try:
            chunk_results, chunk_extra = session.process(files[start : start + limit])
        except app_client.AppRefusedError as exc:
            logger.error("the app refused the request", extra={"status": exc.status, "detail": exc.detail})
            return {
                "http_status": exc.status,
                "error": {"status": exc.status, "reason": exc.detail},
                "results": results,
                "succeeded": sum(result.get("status") == "ok" for result in results),
                "failed": len(results),
                "not_sent": len(files) - len(results),
                "requests": session.requests,
                "files_per_request": limit,
            }
        results.extend(chunk_results)
        extra = extra or chunk_extra
    succeeded = sum(result.get("status") == "ok" for result in results)
    return extra | {
        "http_status": _overall_status(results),
        "results": results,
        "succeeded": succeeded,
        "failed": len(results) - succeeded,
        "requests": session.requests,
        "files_per_request": limit,
    }


def submit_videos(
    url: str, parameter: str, request: ControllerRequest, remaining: Remaining
) -> list[dict[str, Any]]:
    """`POST /videos` per video key (the app works through them in the background): each answer, or
    the app's refusal of that video (final). A 401 re-reads the key once; transient errors raise
    (Lambda retries; a video submitted twice resumes from its checkpoints and upserts its tracks)."""
    key, reread = app_client.api_key(parameter), False
    answers: list[dict[str, Any]] = []
    for video_key in (name for name in request.files if is_video_key(name)):
        while True:
            try:
                answer = app_client.submit_video(
                    url, key, video_key, request.collection, max(remaining(), 1.0)
                )
                answers.append({"key": video_key, **answer})  # status "queued", video_job_id
                break
            except app_client.AppAuthError:
                if reread:
                    raise
                key, reread = app_client.api_key(parameter, refresh=True), True
            except app_client.AppRefusedError as exc:
                answers.append(
                    {
                        "key": video_key,
                        "status": "refused",
                        "error": {"status": exc.status, "reason": exc.detail},
                    }
                )
                break
    return answers


def run(request: ControllerRequest, config: ControllerConfig, remaining: Remaining) -> dict[str, Any]:
    """Carry out one request; returns the instance, its state, timings and (if asked) the app's results."""
    started = time.monotonic()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.monotonic()
        timings[name] = round(now - since, 3)
        return now

    result: dict[str, Any] = {"action": request.action}
    if request.action == "stop":
        info, outcome = stop(config, remaining)
        lap("stop_seconds", started)
    elif request.action == "status":
        info, outcome = describe_instance(config.gpu_instance_id), {}
        if info.state == "running":
            url = app_client.base_url(info.private_ip, config.app_port, config.app_url_override)
            probe = app_client.probe_health(url)
            outcome["app"] = dict(probe.health.raw) if probe.health else {"unreachable": probe.error}
    else:
        info, outcome = ensure_running(config, remaining)
        mark = lap("start_seconds", started)
        if request.action == "start_and_process":
            url = app_client.base_url(info.private_ip, config.app_port, config.app_url_override)
            health, polls = app_client.wait_until_ready(url, min(config.health_timeout_seconds, remaining()))
            mark = lap("ready_seconds", mark)
            limit = health.files_per_request  # the app's published limit (contract/limits.py)
            outcome |= {"app_url": url, "health_polls": polls}
            images = tuple(name for name in request.files if not is_video_key(name))
            if images:  # videos go to POST /videos, images to /process
                images_only = request._replace(files=images)
                outcome |= process_all(url, config.api_key_parameter, images_only, limit, remaining)
            if len(images) < len(request.files):
                outcome["videos"] = submit_videos(url, config.api_key_parameter, request, remaining)
            lap("process_seconds", mark)
    timings["total_seconds"] = round(time.monotonic() - started, 3)
    result |= {
        "instance_id": info.instance_id,
        "state": info.state,
        "instance_type": info.instance_type,
        "private_ip": info.private_ip,
        **outcome,
        "timings": timings,
    }
    logger.info("controller done", extra={k: v for k, v in result.items() if k != "results"})
    return result
