"""Stop the GPU instance when the app has been idle long enough, and never while it starts or works.

The rule is stateless (nothing is stored between scheduled runs):
- only a `running` instance is considered (pending, stopping and stopped are left alone);
- reachable app: stop when `jobs_in_progress == 0`, the status is not "starting", and
  `idle_seconds > AUTO_SHUTDOWN_IDLE_TIME`;
- unreachable app (refused, timeout, non-200, malformed body): stop only when the instance has been
  running longer than UNREACHABLE_GRACE_SECONDS, judged from EC2's LaunchTime, which EC2 resets at
  every start; before that the app may simply still be booting.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

from lambdas.common import app_client
from lambdas.common.aws import client
from lambdas.common.instance import InstanceInfo, describe_instance
from lambdas.common.log import logger
from lambdas.common.notify import publish
from lambdas.idle_stopper.config import IdleStopperConfig


class Decision(NamedTuple):
    stop: bool
    reason: str


def decide(
    info: InstanceInfo, probe: app_client.HealthProbe | None, now: datetime, config: IdleStopperConfig
) -> Decision:
    if info.state != "running" or probe is None:
        return Decision(False, f"instance is {info.state}")
    health = probe.health
    if health is None:
        running_for = (now - info.launch_time).total_seconds()
        if running_for > config.unreachable_grace_seconds:
            return Decision(
                True,
                f"app unreachable ({probe.error}) and instance running for {running_for:.0f} s, "
                f"more than the {config.unreachable_grace_seconds} s grace",
            )
        return Decision(False, f"app unreachable ({probe.error}) but within the grace period")
    if health.starting:
        return Decision(False, "app is starting")
    if health.jobs_in_progress > 0:
        return Decision(False, f"app is busy ({health.jobs_in_progress} job(s) in progress)")
    if health.idle_seconds > config.auto_shutdown_idle_time:
        return Decision(
            True, f"app idle for {health.idle_seconds:.0f} s, more than {config.auto_shutdown_idle_time} s"
        )
    return Decision(False, f"app idle for {health.idle_seconds:.0f} s only")


def probe(info: InstanceInfo, config: IdleStopperConfig) -> app_client.HealthProbe | None:
    if info.state != "running":
        return None
    try:
        url = app_client.base_url(info.private_ip, config.app_port, config.app_url_override)
    except app_client.AppError as exc:
        return app_client.HealthProbe(None, str(exc))
    return app_client.probe_health(url)


def check_and_stop(config: IdleStopperConfig, now: datetime | None = None) -> dict[str, Any]:
    info = describe_instance(config.gpu_instance_id)
    health_probe = probe(info, config)
    decision = decide(info, health_probe, now or datetime.now(UTC), config)
    result: dict[str, Any] = {
        "instance_id": info.instance_id,
        "state": info.state,
        "stopped": decision.stop,
        "reason": decision.reason,
        "app": dict(health_probe.health.raw) if health_probe and health_probe.health else None,
    }
    logger.info("idle check", extra=result)
    if decision.stop:
        client("ec2").stop_instances(InstanceIds=[info.instance_id])
        publish(
            config.notifications_topic_arn,
            f"GPU instance {info.instance_id} stopped: idle",
            f"The idle stopper stopped GPU instance {info.instance_id} ({info.instance_type}).\n\n"
            f"Reason: {decision.reason}\nRunning since: {info.launch_time.isoformat()}\n",
            {"event": "idle_stop", "instance_id": info.instance_id},
        )
    return result
