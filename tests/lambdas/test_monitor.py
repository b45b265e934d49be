"""Batch Job State Change events become readable notifications, read back from an SQS subscriber."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from lambdas.monitor.handler import lambda_handler
from tests.lambdas.conftest import Configure
from tests.lambdas.events import LambdaContext, attempt, batch_state_change
from tests.lambdas.resources import Stack, notifications

QUEUE = "arn:aws:batch:us-east-1:123456789012:job-queue/gpu-faces-gpu"
ENVIRONMENT = {
    "ML_INPUT_BUCKET": "gpu-faces-input",
    "ML_OUTPUT_BUCKET": "gpu-faces-output",
    "OUTPUT_PREFIX": "jobs/faces/exp-42/gpu_processing-faces-exp-42-3f48266f29a1/",
    "SCRIPT_KEY": "jobs/gpu_processing.py",
    "TRIGGER_USER": "alice",
    "TRIGGER_PROJECT": "faces",
    "TRIGGER_EXPERIMENT": "exp-42",
}
STREAM = "gpu-faces-script-gpu/default/0a1b2c3d4e5f"


@pytest.fixture
def monitor(configure: Configure, context: Callable[..., LambdaContext]) -> Callable[[dict[str, Any]], Any]:
    configure("monitor")
    return lambda event: lambda_handler(event, context("monitor"))


def event(status: str, reason: str, attempts: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return batch_state_change(
        job_name="gpu_processing-faces-exp-42-3f48266f29a1",
        job_id="4c2a9e2e-6f0b-4f8e-9a53-2f1f0e1d9c11",
        job_queue=QUEUE,
        status=status,
        status_reason=reason,
        environment=ENVIRONMENT,
        attempts=attempts,
        **extra,
    )


def test_failed_job_notification_has_every_detail(monitor: Callable[..., Any], stack: Stack) -> None:
    attempts = [
        attempt(137, "OutOfMemoryError: Container killed due to memory usage", "stream/first"),
        attempt(1, "Essential container in task exited", STREAM),
    ]

    result = monitor(event("FAILED", "Essential container in task exited", attempts))

    assert result["published"] is True
    (note,) = notifications(stack)
    assert note["Subject"] == "[FAILED] Batch job gpu_processing-faces-exp-42-3f48266f29a1"
    body = note["Message"]
    for line in (
        "Job name:      gpu_processing-faces-exp-42-3f48266f29a1",
        "Job id:        4c2a9e2e-6f0b-4f8e-9a53-2f1f0e1d9c11",
        f"Queue:         gpu-faces-gpu ({QUEUE})",
        "Status:        FAILED",
        "Status reason: Essential container in task exited",
        "Attempts:      2",
        "  1. exit code 137, OutOfMemoryError: Container killed due to memory usage, log stream stream/first",
        f"  2. exit code 1, Essential container in task exited, log stream {STREAM}",
        f"Log stream:    {STREAM}",
        "Duration:      1h 01m 03s",
        "  User:        alice",
        "  Project:     faces",
        "  Experiment:  exp-42",
        "Script:        s3://gpu-faces-input/jobs/gpu_processing.py",
        "Output:        s3://gpu-faces-output/jobs/faces/exp-42/gpu_processing-faces-exp-42-3f48266f29a1/",
    ):
        assert line in body.splitlines()
    assert note["MessageAttributes"]["status"]["Value"] == "FAILED"
    assert note["MessageAttributes"]["job_queue"]["Value"] == "gpu-faces-gpu"


def test_succeeded_job_is_notified(monitor: Callable[..., Any], stack: Stack) -> None:
    monitor(event("SUCCEEDED", "Essential container in task exited", [attempt(0, "", STREAM)]))

    (note,) = notifications(stack)
    assert note["Subject"] == "[SUCCEEDED] Batch job gpu_processing-faces-exp-42-3f48266f29a1"
    # No container reason: the attempt's own statusReason is shown.
    assert (
        f"  1. exit code 0, Essential container in task exited, log stream {STREAM}"
        in note["Message"].splitlines()
    )


def test_array_parent_is_notified_and_children_are_not(monitor: Callable[..., Any], stack: Stack) -> None:
    parent = event("SUCCEEDED", "", [], array_properties={"size": 3, "statusSummary": {"SUCCEEDED": 3}})
    child = event("SUCCEEDED", "", [attempt(0, "", STREAM)], array_properties={"index": 1})

    assert monitor(child) == {"published": False, "reason": "array child"}
    assert monitor(parent)["published"] is True
    (note,) = notifications(stack)
    assert "Array size:    3" in note["Message"].splitlines()
    assert "Log stream:    -" in note["Message"].splitlines()


def test_non_final_states_are_not_notified(monitor: Callable[..., Any], stack: Stack) -> None:
    assert monitor(event("RUNNING", "", []))["published"] is False
    assert notifications(stack) == []


def test_separators_and_controls_from_the_job_are_escaped_in_the_notification(
    monitor: Callable[..., Any], stack: Stack
) -> None:
    hostile = ENVIRONMENT | {
        "TRIGGER_USER": "mallory\u2028Status:        SUCCEEDED",
        "TRIGGER_PROJECT": "faces\u0085x",
        "TRIGGER_EXPERIMENT": "exp\r\nForged: line\u202e",
    }
    change = batch_state_change(
        job_name="gpu_processing-faces-exp-42-3f48266f29a1",
        job_id="4c2a9e2e-6f0b-4f8e-9a53-2f1f0e1d9c11",
        job_queue=QUEUE,
        status="FAILED",
        status_reason="Essential container\nin task exited",
        environment=hostile,
        attempts=[attempt(1, "reason\u2029more", STREAM)],
    )

    monitor(change)

    (note,) = notifications(stack)
    body = note["Message"]
    # Every line break in the body is one the monitor wrote: nothing the job carried starts a line.
    assert body.splitlines() == body.split("\n")[:-1]
    lines = body.splitlines()
    assert "  User:        mallory\\u2028Status:        SUCCEEDED" in lines
    assert "  Project:     faces\\u0085x" in lines
    assert "  Experiment:  exp\\u000d\\u000aForged: line\\u202e" in lines
    assert "Status reason: Essential container\\u000ain task exited" in lines
    assert not any(line.startswith(("Forged", "in task")) for line in lines)


def test_failed_video_job_notification_says_where_the_reason_is(
    monitor: Callable[..., Any], stack: Stack
) -> None:
    video_environment = {
        **{name: value for name, value in ENVIRONMENT.items() if name != "SCRIPT_KEY"},
        "VIDEO_KEY": "incoming/broken.mov",
    }
    change = batch_state_change(
        job_name="video-broken-s3-events-incoming-0a1b2c3d4e5f",
        job_id="5d3b0f3f-7a1c-4f9f-8b64-3a2f1e0d9c22",
        job_queue=QUEUE,
        status="FAILED",
        status_reason="Essential container in task exited",
        environment=video_environment,
        attempts=[attempt(1, "Essential container in task exited", STREAM)],
    )
    monitor(change)
    (note,) = notifications(stack)
    assert "Video:         s3://gpu-faces-input/incoming/broken.mov" in note["Message"]
    assert (
        f"Result:        s3://gpu-faces-output/{ENVIRONMENT['OUTPUT_PREFIX']}result.json" in note["Message"]
    )
