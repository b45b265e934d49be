"""The GPU instance controller against moto's EC2 over HTTP and a live app on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from lambdas.common.app_client import AppError, TransientAppError, base_url
from lambdas.common.aws import client
from lambdas.common.validation import InvalidMessageError
from lambdas.controller.handler import lambda_handler
from lambdas.controller.service import ControllerError, InstanceCapacityError, SpotCapacityError
from tests.lambdas.conftest import Configure
from tests.lambdas.events import LambdaContext
from tests.lambdas.fake_app import FakeApp
from tests.lambdas.resources import GPU_INSTANCE_TYPE, Stack, notifications

Invoke = Callable[[dict[str, Any]], dict[str, Any]]


@pytest.fixture
def invoke(stack: Stack, configure: Configure, context: Callable[..., LambdaContext]) -> Invoke:
    configure("controller")
    return lambda event: lambda_handler(event, context("controller"))


@pytest.fixture
def ec2_calls() -> Iterator[list[str]]:
    """Names of the EC2 operations the controller sends (on its own, cached client)."""
    calls: list[str] = []
    client("ec2").meta.events.register(
        "before-parameter-build.ec2.*", lambda model, **_: calls.append(model.name)
    )
    yield calls


def state(stack: Stack) -> tuple[str, str]:
    instance = boto3.client("ec2").describe_instances(InstanceIds=[stack.instance_id])["Reservations"][0]
    return instance["Instances"][0]["State"]["Name"], instance["Instances"][0]["InstanceType"]


def stop_in_moto(stack: Stack) -> None:
    boto3.client("ec2").stop_instances(InstanceIds=[stack.instance_id])


def test_start_from_stopped_waits_for_running(invoke: Invoke, stack: Stack, ec2_calls: list[str]) -> None:
    stop_in_moto(stack)

    result = invoke({"action": "start"})

    assert result["instance_id"] == stack.instance_id
    assert (result["previous_state"], result["state"], result["start_requested"]) == (
        "stopped",
        "running",
        True,
    )
    assert result["instance_type"] == GPU_INSTANCE_TYPE
    assert set(result["timings"]) == {"start_seconds", "total_seconds"}
    assert ec2_calls == ["DescribeInstances", "StartInstances", "DescribeInstances", "DescribeInstances"]
    assert state(stack) == ("running", GPU_INSTANCE_TYPE)


def test_start_of_running_instance_is_a_no_op(invoke: Invoke, stack: Stack, ec2_calls: list[str]) -> None:
    result = invoke({"action": "start"})

    assert (result["previous_state"], result["state"], result["start_requested"]) == (
        "running",
        "running",
        False,
    )
    assert ec2_calls == ["DescribeInstances"]


def test_stop_then_stop_again(invoke: Invoke, stack: Stack, ec2_calls: list[str]) -> None:
    first = invoke({"action": "stop"})
    second = invoke({"action": "stop"})

    assert (first["previous_state"], first["stop_requested"], first["state"]) == ("running", True, "stopped")
    assert (second["previous_state"], second["stop_requested"]) == ("stopped", False)
    assert ec2_calls.count("StopInstances") == 1
    assert state(stack)[0] == "stopped"


def test_status_reports_instance_and_app_health(
    invoke: Invoke, stack: Stack, configure: Configure, fake_app: FakeApp
) -> None:
    configure("controller", APP_URL_OVERRIDE=fake_app.url)
    fake_app.health |= {"idle_seconds": 12.5}

    running = invoke({"action": "status"})
    stop_in_moto(stack)
    stopped = invoke({"action": "status"})

    assert running["state"] == "running"
    assert running["app"]["idle_seconds"] == 12.5
    assert running["private_ip"].startswith("10.0.1.")
    assert stopped["state"] == "stopped"
    assert "app" not in stopped


def test_start_and_process_forwards_files_to_the_live_app(
    invoke: Invoke, stack: Stack, configure: Configure, fake_app: FakeApp
) -> None:
    configure("controller", APP_URL_OVERRIDE=fake_app.url)
    stop_in_moto(stack)
    fake_app.starting_polls = 2  # the app reports "starting" twice after the instance is up

    result = invoke(
        {
            "action": "start_and_process",
            "payload": {"files": ["image1.jpg", "broken.jpg"], "collection": "c1"},
        }
    )

    assert (result["previous_state"], result["state"]) == ("stopped", "running")
    assert result["app_url"] == fake_app.url
    assert result["health_polls"] == 3
    assert fake_app.process_requests == [{"files": ["image1.jpg", "broken.jpg"], "collection": "c1"}]
    assert (result["http_status"], result["succeeded"], result["failed"]) == (207, 1, 1)
    assert [(item["file"], item["status"]) for item in result["results"]] == [
        ("image1.jpg", "ok"),
        ("broken.jpg", "error"),
    ]
    assert result["results"][0]["faces"][0]["bbox"] == [1, 2, 30, 40]
    assert result["results"][1]["error"] == {"status": 422, "reason": "not a decodable image"}
    assert set(result["timings"]) == {"start_seconds", "ready_seconds", "process_seconds", "total_seconds"}


def test_start_and_process_with_a_wrong_api_key_fails_clearly(
    invoke: Invoke, stack: Stack, configure: Configure, fake_app: FakeApp
) -> None:
    configure("controller", APP_URL_OVERRIDE=fake_app.url)
    boto3.client("ssm").put_parameter(
        Name=stack.api_key_parameter, Value="wrong", Type="SecureString", Overwrite=True
    )

    with pytest.raises(AppError, match="HTTP 401"):
        invoke({"action": "start_and_process", "payload": {"files": ["image1.jpg"]}})
    assert fake_app.process_requests == []


def test_app_that_never_gets_ready_fails_within_the_health_timeout(
    invoke: Invoke, configure: Configure, fake_app: FakeApp
) -> None:
    configure("controller", APP_URL_OVERRIDE=fake_app.url, HEALTH_TIMEOUT_SECONDS="2")
    fake_app.starting_polls = 10_000

    with pytest.raises(AppError, match="not ready after 2 s"):
        invoke({"action": "start_and_process", "payload": {"files": ["image1.jpg"]}})
    assert 2 <= fake_app.health_calls <= 6


def _capacity_error_on_start(monkeypatch: pytest.MonkeyPatch, *, then_real: bool) -> Stubber:
    """Stub exactly StartInstances: the first call fails as EC2 does without capacity."""
    ec2 = client("ec2")
    stubbed = boto3.client("ec2")
    stubber = Stubber(stubbed)
    stubber.add_client_error(
        "start_instances",
        service_error_code="InsufficientInstanceCapacity",
        service_message="We currently do not have sufficient g5.xlarge capacity in the Availability Zone.",
        http_status_code=500,
    )
    stubber.activate()
    calls = iter([stubbed.start_instances, *([ec2.start_instances] if then_real else [])])
    monkeypatch.setattr(ec2, "start_instances", lambda **kwargs: next(calls)(**kwargs))
    return stubber


def test_capacity_error_raises_clearly_and_notifies(
    invoke: Invoke, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stop_in_moto(stack)
    stubber = _capacity_error_on_start(monkeypatch, then_real=False)

    with pytest.raises(InstanceCapacityError, match=r"g5\.xlarge: InsufficientInstanceCapacity"):
        invoke({"action": "start"})

    stubber.assert_no_pending_responses()
    (note,) = notifications(stack)
    assert note["Subject"] == f"GPU instance {stack.instance_id} could not start: no capacity"
    assert "InsufficientInstanceCapacity" in note["Message"]
    assert note["MessageAttributes"]["event"]["Value"] == "capacity_error"
    assert state(stack) == ("stopped", GPU_INSTANCE_TYPE)


def test_capacity_error_falls_back_to_the_next_instance_type(
    invoke: Invoke, stack: Stack, configure: Configure, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure("controller", FALLBACK_INSTANCE_TYPES="g4dn.xlarge, g6.xlarge")
    stop_in_moto(stack)
    _capacity_error_on_start(monkeypatch, then_real=True)

    result = invoke({"action": "start"})

    assert (result["state"], result["instance_type"], result["fallback_from"]) == (
        "running",
        "g4dn.xlarge",
        "g5.xlarge",
    )
    assert state(stack) == ("running", "g4dn.xlarge")
    assert notifications(stack) == []


def _described(instance_id: str, name: str, code: int) -> dict[str, Any]:
    instance = {
        "InstanceId": instance_id,
        "InstanceType": GPU_INSTANCE_TYPE,
        "State": {"Name": name, "Code": code},
        "LaunchTime": datetime(2026, 11, 23, 6, 0, tzinfo=UTC),
        "PrivateIpAddress": "10.0.1.4",
    }
    return {"Reservations": [{"Instances": [instance]}]}


@pytest.mark.parametrize(
    ("states", "expected_calls"),
    [
        # pending: only wait; stopping: wait for stopped, start, wait for running.
        ([("pending", 0), ("running", 16), ("running", 16)], ["DescribeInstances"] * 3),
        (
            [("stopping", 64), ("stopped", 80), "start", ("running", 16), ("running", 16)],
            [*["DescribeInstances"] * 2, "StartInstances", *["DescribeInstances"] * 2],
        ),
    ],
    ids=["pending", "stopping"],
)
def test_start_handles_transitional_states(
    invoke: Invoke,
    stack: Stack,
    states: list[Any],
    expected_calls: list[str],
    ec2_calls: list[str],
) -> None:
    ec2 = client("ec2")
    with Stubber(ec2) as stubber:
        for item in states:
            if item == "start":
                stubber.add_response("start_instances", {}, {"InstanceIds": [stack.instance_id]})
            else:
                stubber.add_response("describe_instances", _described(stack.instance_id, *item))
        result = invoke({"action": "start"})
        stubber.assert_no_pending_responses()

    assert result["state"] == "running"
    assert result["start_requested"] is ("start" in states)
    assert result["previous_state"] == states[0][0]
    assert ec2_calls == expected_calls


def test_terminated_instance_cannot_be_started(invoke: Invoke, stack: Stack) -> None:
    boto3.client("ec2").terminate_instances(InstanceIds=[stack.instance_id])

    with pytest.raises(ControllerError, match="terminated"):
        invoke({"action": "start"})


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"action": "reboot"}, "action must be one of"),
        ({"action": "start_and_process"}, "files must be a list"),
        ({"action": "start_and_process", "payload": {"files": ["/etc/passwd"]}}, "relative key"),
        ({"action": "start", "extra": 1}, "unknown field"),
    ],
)
def test_invalid_requests_are_refused_with_their_reason(
    invoke: Invoke, event: dict[str, Any], reason: str
) -> None:
    with pytest.raises(InvalidMessageError, match=reason):
        invoke(event)


def test_app_url_is_the_private_ip_unless_overridden() -> None:
    assert base_url("10.0.1.4", 8000, "") == "http://10.0.1.4:8000"
    assert base_url("10.0.1.4", 8000, "http://127.0.0.1:9000/") == "http://127.0.0.1:9000"
    with pytest.raises(AppError, match="no private IP"):
        base_url(None, 8000, "")
    with pytest.raises(AppError, match="http"):
        base_url("10.0.1.4", 8000, "file:///etc/passwd")


# --- one contract with the app (issue 12 item 14) ------------------------------------------------


def process(invoke: Invoke, files: list[str], **payload: Any) -> dict[str, Any]:
    return invoke({"action": "start_and_process", "payload": {"files": files, **payload}})


@pytest.fixture
def app_invoke(invoke: Invoke, configure: Configure, fake_app: FakeApp) -> Invoke:
    configure("controller", APP_URL_OVERRIDE=fake_app.url)
    return invoke


def test_files_are_split_by_the_limit_the_app_publishes(app_invoke: Invoke, fake_app: FakeApp) -> None:
    fake_app.max_files_per_request = 3
    files = [f"img{n}.jpg" for n in range(7)]

    result = process(app_invoke, files, collection="c1")

    assert [request["files"] for request in fake_app.process_requests] == [files[:3], files[3:6], files[6:]]
    assert {request["collection"] for request in fake_app.process_requests} == {"c1"}
    assert [item["file"] for item in result["results"]] == files
    assert (result["http_status"], result["succeeded"], result["failed"]) == (200, 7, 0)
    assert (result["requests"], result["files_per_request"]) == (3, 3)


def test_an_app_that_publishes_no_limit_gets_requests_of_one_hundred(
    app_invoke: Invoke, fake_app: FakeApp
) -> None:
    fake_app.publish_limits = False
    files = [f"img{n}.jpg" for n in range(250)]

    result = process(app_invoke, files)

    assert [len(request["files"]) for request in fake_app.process_requests] == [100, 100, 50]
    assert result["succeeded"] == 250


def test_files_that_all_fail_with_one_4xx_are_the_final_answer(app_invoke: Invoke, fake_app: FakeApp) -> None:
    files = ["missing-1.jpg", "missing-2.jpg"]

    result = process(app_invoke, files)  # the app answers 404 with per-file results: reported, not raised

    assert (result["http_status"], result["succeeded"], result["failed"]) == (404, 0, 2)
    assert [item["error"]["status"] for item in result["results"]] == [404, 404]
    assert len(fake_app.process_requests) == 1  # processed once, not again by a retry


def test_mixed_outcomes_across_requests_keep_the_apps_status_rule(
    app_invoke: Invoke, fake_app: FakeApp
) -> None:
    fake_app.max_files_per_request = 2

    result = process(app_invoke, ["a.jpg", "b.jpg", "missing.jpg", "broken.jpg"])

    assert (result["http_status"], result["succeeded"], result["failed"]) == (207, 2, 2)


def test_transient_failures_are_retried_in_place_and_only_for_the_files_that_had_them(
    app_invoke: Invoke, fake_app: FakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("lambdas.controller.service.time.sleep", lambda seconds: None)
    fake_app.unavailable_answers = 1  # the first /process answers 503 without results
    fake_app.flaky_failures = {"b.jpg": 1}  # then b.jpg fails once with a per-file 503

    result = process(app_invoke, ["a.jpg", "b.jpg", "missing.jpg"])

    assert [request["files"] for request in fake_app.process_requests] == [
        ["a.jpg", "b.jpg", "missing.jpg"],
        ["a.jpg", "b.jpg", "missing.jpg"],
        ["b.jpg"],
    ]
    assert [item["status"] for item in result["results"]] == ["ok", "ok", "error"]
    assert (result["http_status"], result["succeeded"], result["failed"]) == (207, 2, 1)


def test_transient_failures_that_persist_raise_for_lambdas_retry(
    app_invoke: Invoke, fake_app: FakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("lambdas.controller.service.time.sleep", lambda seconds: None)
    fake_app.unavailable_answers = 10

    with pytest.raises(TransientAppError, match="after 3 attempt"):
        process(app_invoke, ["a.jpg"])
    assert len(fake_app.process_requests) == 3


def test_a_request_the_app_refuses_as_a_whole_is_reported_not_retried(
    app_invoke: Invoke, fake_app: FakeApp
) -> None:
    fake_app.max_files_per_request = 2
    fake_app.publish_limits = False  # the controller believes 100: the app answers 413

    result = process(app_invoke, ["a.jpg", "b.jpg", "c.jpg"])

    assert result["http_status"] == 413 and "MAX_FILES_PER_REQUEST" in result["error"]["reason"]
    assert (result["not_sent"], len(fake_app.process_requests)) == (3, 1)


def test_api_key_value_is_stripped_as_the_app_strips_it(
    app_invoke: Invoke, stack: Stack, fake_app: FakeApp
) -> None:
    boto3.client("ssm").put_parameter(
        Name=stack.api_key_parameter, Value=f"{fake_app.api_key}\n", Type="SecureString", Overwrite=True
    )

    result = process(app_invoke, ["a.jpg"])

    assert result["succeeded"] == 1


def test_a_rotated_key_is_re_read_on_401_and_the_request_retried_once(
    app_invoke: Invoke, stack: Stack, fake_app: FakeApp
) -> None:
    assert process(app_invoke, ["a.jpg"])["succeeded"] == 1  # the container now holds the key
    boto3.client("ssm").put_parameter(
        Name=stack.api_key_parameter, Value="rotated-key", Type="SecureString", Overwrite=True
    )
    fake_app.api_key = "rotated-key"  # the app already serves the new key

    result = process(app_invoke, ["b.jpg"])

    assert result["succeeded"] == 1
    assert [request["files"] for request in fake_app.process_requests] == [["a.jpg"], ["b.jpg"]]


# --- the Spot market (issue 13 item 3) -------------------------------------------------------------


def _spot_start_refused(stack: Stack, code: str, message: str) -> Stubber:
    """EC2 as it answers for a stopped Spot instance (moto neither reports InstanceLifecycle nor
    refuses a start): described as spot and stopped, then StartInstances refused with `code`."""
    described = _described(stack.instance_id, "stopped", 80)
    described["Reservations"][0]["Instances"][0]["InstanceLifecycle"] = "spot"
    stubber = Stubber(client("ec2"))
    stubber.add_response("describe_instances", described, {"InstanceIds": [stack.instance_id]})
    stubber.add_client_error(
        "start_instances", service_error_code=code, service_message=message, http_status_code=400
    )
    return stubber


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        ("InsufficientInstanceCapacity", "no Spot capacity"),
        ("SpotMaxPriceTooLow", "maximum price"),
        ("MaxSpotInstanceCountExceeded", "L-3819A6DF"),
        ("IncorrectSpotRequestState", "no longer active"),
    ],
)
def test_spot_instance_that_cannot_start_says_what_to_do_and_tries_no_other_type(
    invoke: Invoke,
    stack: Stack,
    configure: Configure,
    ec2_calls: list[str],
    code: str,
    hint: str,
) -> None:
    configure("controller", FALLBACK_INSTANCE_TYPES="g4dn.xlarge")  # a Spot instance's type cannot change
    with _spot_start_refused(stack, code, "refused by EC2") as stubber:
        with pytest.raises(SpotCapacityError) as raised:
            invoke({"action": "start"})
        stubber.assert_no_pending_responses()

    message = str(raised.value)
    assert code in message and hint in message and "on-demand" in message
    assert "FALLBACK_INSTANCE_TYPES does not apply" in message
    assert "ModifyInstanceAttribute" not in ec2_calls
    (note,) = notifications(stack)
    assert note["Subject"] == f"GPU instance {stack.instance_id} could not start: Spot {code}"
    assert note["MessageAttributes"]["market"]["Value"] == "spot"


def test_spot_instance_other_errors_are_raised_as_they_are(invoke: Invoke, stack: Stack) -> None:
    with _spot_start_refused(stack, "UnauthorizedOperation", "not allowed") as stubber:
        with pytest.raises(ClientError, match="UnauthorizedOperation"):
            invoke({"action": "start"})
        stubber.assert_no_pending_responses()
    assert notifications(stack) == []
