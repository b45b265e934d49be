"""The idle stopper stops only a running, idle instance (moto's EC2 over HTTP, a live app on loopback)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from contract.health import AppHealth
from lambdas.common.app_client import HealthProbe
from lambdas.common.aws import client
from lambdas.common.instance import InstanceInfo
from lambdas.idle_stopper.config import IdleStopperConfig
from lambdas.idle_stopper.handler import lambda_handler
from lambdas.idle_stopper.service import decide
from tests.lambdas.conftest import Configure
from tests.lambdas.events import LambdaContext
from tests.lambdas.fake_app import FakeApp
from tests.lambdas.resources import Stack, notifications
from tests.support.moto_server import free_port

Check = Callable[..., dict[str, Any]]


@pytest.fixture
def check(configure: Configure, context: Callable[..., LambdaContext], fake_app: FakeApp) -> Check:
    """Run the handler with the app override pointing at the live fake app (or `app_url`)."""

    def run(app_url: str | None = None, **overrides: str) -> dict[str, Any]:
        configure("idle_stopper", APP_URL_OVERRIDE=app_url or fake_app.url, **overrides)
        return lambda_handler(
            {"source": "aws.events", "detail-type": "Scheduled Event"}, context("idle_stopper")
        )

    return run


def instance_state(stack: Stack) -> str:
    reservation = boto3.client("ec2").describe_instances(InstanceIds=[stack.instance_id])["Reservations"][0]
    return str(reservation["Instances"][0]["State"]["Name"])


def test_idle_instance_is_stopped_and_notified(check: Check, stack: Stack, fake_app: FakeApp) -> None:
    fake_app.health |= {"idle_seconds": 3601.0}

    result = check()

    assert result["stopped"] is True
    assert "idle for 3601 s, more than 3600 s" in result["reason"]
    assert instance_state(stack) == "stopped"
    (note,) = notifications(stack)
    assert note["Subject"] == f"GPU instance {stack.instance_id} stopped: idle"
    assert result["reason"] in note["Message"]


@pytest.mark.parametrize(
    ("health", "reason"),
    [
        ({"idle_seconds": 3599.0}, "idle for 3599 s only"),
        ({"idle_seconds": 7200.0, "jobs_in_progress": 1}, "busy"),
        ({"idle_seconds": 7200.0, "status": "starting", "ready": False}, "starting"),
    ],
)
def test_busy_starting_or_recent_instance_keeps_running(
    check: Check, stack: Stack, fake_app: FakeApp, health: dict[str, Any], reason: str
) -> None:
    fake_app.health |= health

    result = check()

    assert result["stopped"] is False
    assert reason in result["reason"]
    assert instance_state(stack) == "running"
    assert notifications(stack) == []


def test_idle_limit_comes_from_the_environment(check: Check, stack: Stack, fake_app: FakeApp) -> None:
    fake_app.health |= {"idle_seconds": 700.0}

    assert check(AUTO_SHUTDOWN_IDLE_TIME="600")["stopped"] is True
    assert instance_state(stack) == "stopped"


def test_unreachable_app_counts_as_idle_only_after_the_grace_period(check: Check, stack: Stack) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"

    within_grace = check(nobody, UNREACHABLE_GRACE_SECONDS="86400")
    assert (within_grace["stopped"], instance_state(stack)) == (False, "running")
    assert "within the grace period" in within_grace["reason"]

    after_grace = check(nobody, UNREACHABLE_GRACE_SECONDS="0")
    assert after_grace["stopped"] is True
    assert "app unreachable" in after_grace["reason"]
    assert instance_state(stack) == "stopped"


def test_stopped_instance_is_left_alone(check: Check, stack: Stack) -> None:
    boto3.client("ec2").stop_instances(InstanceIds=[stack.instance_id])

    result = check()

    assert (result["stopped"], result["reason"]) == (False, "instance is stopped")
    assert notifications(stack) == []


@pytest.mark.parametrize("state", ["pending", "stopping"])
def test_transitional_instance_is_never_stopped(
    check: Check, stack: Stack, configure: Configure, state: str
) -> None:
    configure("idle_stopper")
    described = {
        "Reservations": [
            {
                "Instances": [
                    {
                        "InstanceId": stack.instance_id,
                        "InstanceType": "g5.xlarge",
                        "State": {"Name": state, "Code": 0 if state == "pending" else 64},
                        "LaunchTime": datetime(2020, 1, 1, tzinfo=UTC),
                    }
                ]
            }
        ]
    }
    # Only DescribeInstances is stubbed: a StopInstances call would fail the test as unexpected.
    with Stubber(client("ec2")) as stubber:
        stubber.add_response("describe_instances", described)
        result = lambda_handler({}, LambdaContext(function_name="idle_stopper"))
        stubber.assert_no_pending_responses()

    assert (result["stopped"], result["reason"]) == (False, f"instance is {state}")


def _config(idle: int = 3600, grace: int = 900) -> IdleStopperConfig:
    return IdleStopperConfig("i-1", 8000, "", idle, grace, "arn:aws:sns:us-east-1:123456789012:t")


def _health(**fields: Any) -> HealthProbe:
    body = {"status": "ok", "ready": True, "idle_seconds": 0.0, "jobs_in_progress": 0} | fields
    return HealthProbe(AppHealth.parse(body))


@pytest.mark.parametrize(
    ("probe", "running_for", "stop"),
    [
        (_health(idle_seconds=3600.0), 10_000, False),  # "more than" the limit, not equal
        (_health(idle_seconds=3600.5), 10_000, True),
        (_health(idle_seconds=9e9, status="degraded"), 10_000, True),
        (_health(idle_seconds=9e9, jobs_in_progress=2), 10_000, False),
        (HealthProbe(None, "unreachable: refused"), 900, False),
        (HealthProbe(None, "unreachable: refused"), 901, True),
    ],
)
def test_rule(probe: HealthProbe, running_for: int, stop: bool) -> None:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    info = InstanceInfo("i-1", "running", "g5.xlarge", now - timedelta(seconds=running_for), "10.0.1.4")

    assert decide(info, probe, now, _config()).stop is stop
