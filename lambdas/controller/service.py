"""The GPU instance controller: start, stop, status, and start-then-process through the app."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Final

from botocore.exceptions import ClientError, WaiterError

from lambdas.common import app_client
from lambdas.common.aws import client, error_code
from lambdas.common.config import ControllerConfig
from lambdas.common.instance import InstanceInfo, describe_instance
from lambdas.common.log import logger
from lambdas.common.models import ControllerRequest
from lambdas.common.notify import publish

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
WAITER_DELAY_SECONDS: Final = 5
GONE_STATES: Final = frozenset({"shutting-down", "terminated"})

Remaining = Callable[[], float]  # seconds this invocation may still spend


class ControllerError(RuntimeError):
    """The instance could not be brought to the asked state; the message says why."""


class InstanceCapacityError(ControllerError):
    """EC2 has no capacity (or quota) for the instance type and every fallback."""


def _wait(waiter: str, instance_id: str, timeout: float) -> None:
    """A bounded botocore waiter: fails after `timeout` seconds instead of its default ten minutes."""
    attempts = max(1, math.ceil(timeout / WAITER_DELAY_SECONDS))
    try:
        client("ec2").get_waiter(waiter).wait(
            InstanceIds=[instance_id], WaiterConfig={"Delay": WAITER_DELAY_SECONDS, "MaxAttempts": attempts}
        )
    except WaiterError as exc:
        raise ControllerError(f"{instance_id}: {waiter} not reached within {timeout:.0f} s ({exc})") from exc


def _start(info: InstanceInfo, config: ControllerConfig) -> str:
    """StartInstances, trying the fallback types on capacity errors; returns the type that started."""
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
            _, polls = app_client.wait_until_ready(url, min(config.health_timeout_seconds, remaining()))
            mark = lap("ready_seconds", mark)
            status, body = app_client.process_files(
                url,
                app_client.api_key(config.api_key_parameter),
                request.files,
                request.collection,
                max(remaining(), 1.0),
            )
            lap("process_seconds", mark)
            outcome |= {"app_url": url, "health_polls": polls, "http_status": status, **body}
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
