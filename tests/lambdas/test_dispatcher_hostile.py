"""Hostile but fair messages: each is the sender's fault, so it is dead-lettered once, with its reason,
and never retried or submitted (issue 12 items 10-13 and 17, issue 13's cleanup message)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from lambdas.dispatcher.handler import lambda_handler
from tests.lambdas.conftest import Configure
from tests.lambdas.dispatching import Dispatcher, submitted_jobs
from tests.lambdas.events import LambdaContext, sns_record
from tests.lambdas.resources import Stack, receive_all

SQS_MESSAGE_LIMIT = 256 * 1024


def dead_letters(stack: Stack) -> list[dict[str, Any]]:
    return receive_all(stack.dead_letter_queue_url)


def script(data: dict[str, Any] | None = None, **metadata: str) -> dict[str, Any]:
    return {
        "trigger_type": "batch_job",
        "data": {"script_key": "jobs/gpu_processing.py", **(data or {})},
        "metadata": {"user": "alice", "project": "faces", "experiment": "e1", **metadata},
    }


def embedding(data: dict[str, Any]) -> dict[str, Any]:
    return {"trigger_type": "face_embedding", "data": data, "metadata": {"user": "carol"}}


def nested(depth: int) -> str:
    """A message whose `data` holds `depth` nested lists: small (2 bytes a level), deep."""
    return '{"trigger_type": "batch_job", "data": {"x": ' + "[" * depth + "]" * depth + "}}"


def assert_rejected_once(
    dispatch: Dispatcher, stack: Stack, message: Any, error_type: str, reason_part: str
) -> dict[str, Any]:
    """The handler returns (no retry), one dead letter with the reason, nothing submitted."""
    outcome = dispatch(message)["results"][0]

    assert (outcome["status"], outcome["error_type"]) == ("rejected", error_type), outcome
    assert reason_part in outcome["reason"]
    (letter,) = dead_letters(stack)
    body = json.loads(letter["Body"])
    assert (body["error_type"], body["reason"]) == (error_type, outcome["reason"])
    assert len(letter["Body"].encode()) < SQS_MESSAGE_LIMIT
    assert submitted_jobs(stack) == []
    return dict(body)


# --- item 10: permanent failures that used to be retried as transient ---------------------------


def test_deeply_nested_json_is_dead_lettered_with_its_reason(dispatch: Dispatcher, stack: Stack) -> None:
    raw = nested(30_000)  # 60 KB: under the size limit, far over the parser's recursion limit

    assert_rejected_once(dispatch, stack, raw, "InvalidJSON", "nested")


def test_deeply_nested_direct_invocation_is_dead_lettered(
    dispatch: Dispatcher, stack: Stack, context: Callable[..., LambdaContext]
) -> None:
    event: dict[str, Any] = {}
    inner = event
    for _ in range(5_000):
        inner["x"] = {}
        inner = inner["x"]

    outcome = lambda_handler(event, context("dispatcher"))["results"][0]

    assert (outcome["status"], outcome["error_type"]) == ("rejected", "InvalidJSON")
    assert len(dead_letters(stack)) == 1


def test_moderately_nested_data_is_refused_before_it_reaches_any_service(
    dispatch: Dispatcher, stack: Stack
) -> None:
    assert_rejected_once(dispatch, stack, nested(200), "InvalidJSON", "nested")


@pytest.mark.parametrize(
    "raw",
    [
        # As SNS delivers it: JSON escapes that decode to an unpaired surrogate.
        json.dumps(script(user="\ud800")),
        # As a direct invocation's payload decodes: the unpaired surrogate itself in the text.
        json.dumps(script(user="\udfff"), ensure_ascii=False),
    ],
    ids=["escaped", "literal"],
)
def test_lone_surrogate_in_metadata_is_dead_lettered(dispatch: Dispatcher, stack: Stack, raw: str) -> None:
    assert_rejected_once(dispatch, stack, raw, "SchemaViolation", "surrogate")


# --- item 11: jobs that cannot succeed are refused up front -------------------------------------


def put(stack: Stack, key: str, body: bytes = b"\xff\xd8\xff") -> None:
    boto3.client("s3").put_object(Bucket=stack.input_bucket, Key=key, Body=body)


@pytest.mark.parametrize(
    ("collection", "reason_part"),
    [
        ("a/b", "A-Za-z0-9"),
        ("x" * 65, "A-Za-z0-9"),
        ("caf\u00e9", "A-Za-z0-9"),
        ("bad\ud800", "surrogate"),
    ],
    ids=["slash", "too-long", "non-ascii", "surrogate"],
)
def test_collection_the_app_refuses_is_dead_lettered(
    dispatch: Dispatcher, stack: Stack, collection: str, reason_part: str
) -> None:
    put(stack, "photos/1.jpg")

    body = assert_rejected_once(
        dispatch, stack, embedding({"prefix": "photos/", "collection": collection}), "SchemaViolation", ""
    )

    assert "collection" in body["reason"] and reason_part in body["reason"]


def test_collection_for_the_controller_follows_the_apps_rule(dispatch: Dispatcher, stack: Stack) -> None:
    message = {
        "trigger_type": "gpu_instance",
        "data": {"action": "start_and_process", "payload": {"files": ["a.jpg"], "collection": "a/b"}},
    }

    assert_rejected_once(dispatch, stack, message, "SchemaViolation", "collection")


def test_script_the_runner_cannot_run_is_dead_lettered(dispatch: Dispatcher, stack: Stack) -> None:
    put(stack, "jobs/notes.txt", b"hello")

    assert_rejected_once(dispatch, stack, script({"script_key": "jobs/notes.txt"}), "SchemaViolation", ".py")


@pytest.mark.parametrize(
    ("line", "reason_part"),
    [
        ("../outside.jpg", "'..'"),
        ("s3://other-bucket/x.jpg", "not a URL"),
        ("/etc/passwd", "relative key"),
        ('{"key": "photos/../../x.jpg"}', "'..'"),
        ('{"key": "s3://b/x.jpg", "label": 1}', "not a URL"),
    ],
    ids=["dotdot", "s3-url", "absolute", "json-dotdot", "json-url"],
)
def test_manifest_line_with_a_key_outside_the_bucket_is_dead_lettered(
    dispatch: Dispatcher, stack: Stack, line: str, reason_part: str
) -> None:
    put(stack, "lists/run.jsonl", f"photos/1.jpg\n{line}\nphotos/2.jpg\n".encode())

    body = assert_rejected_once(
        dispatch, stack, embedding({"manifest_key": "lists/run.jsonl"}), "InvalidManifest", reason_part
    )

    assert "line 2" in body["reason"]


@pytest.mark.parametrize(
    ("data", "maximum"),
    [
        ({"vcpus": 32}, "GPU_COMPUTE_MAX_VCPUS=16"),
        ({"compute_type": "cpu", "vcpus": 48}, "CPU_COMPUTE_MAX_VCPUS=32"),
    ],
    ids=["gpu", "cpu"],
)
def test_vcpus_above_the_compute_environment_maximum_are_dead_lettered(
    dispatch: Dispatcher, stack: Stack, data: dict[str, Any], maximum: str
) -> None:
    body = assert_rejected_once(dispatch, stack, script(data), "SchemaViolation", "vcpus")

    assert maximum in body["reason"]


def test_vcpus_at_the_compute_environment_maximum_are_submitted(
    dispatch: Dispatcher, stack: Stack, configure: Configure
) -> None:
    configure("dispatcher", GPU_COMPUTE_MAX_VCPUS="64")

    outcome = dispatch(script({"vcpus": 64}))["results"][0]

    assert outcome["status"] == "dispatched"


# --- item 12: the dead-letter record always fits in one SQS message -----------------------------


def test_dead_letter_record_of_control_characters_is_capped_with_a_digest(
    dispatch: Dispatcher, stack: Stack
) -> None:
    raw = "\x01" * 65_000  # each one becomes six bytes (\u0001) once written as JSON

    body = assert_rejected_once(dispatch, stack, raw, "InvalidJSON", "not JSON")

    assert body["original_truncated"] is True
    assert body["original_bytes"] == 65_000
    assert len(body["original_sha256"]) == 64
    assert raw.startswith(body["original"]) and len(body["original"]) < len(raw)


def test_small_dead_letter_record_keeps_the_whole_original(dispatch: Dispatcher, stack: Stack) -> None:
    raw = json.dumps(script({"vcpus": 0}))

    body = assert_rejected_once(dispatch, stack, raw, "SchemaViolation", "vcpus")

    assert (body["original"], body["original_truncated"], body["original_bytes"]) == (raw, False, len(raw))


# --- item 13: a fixed message with the same idempotency_key is not swallowed ---------------------


def test_fixed_message_with_the_same_idempotency_key_is_dispatched(
    dispatch: Dispatcher, stack: Stack
) -> None:
    bad = script({"vcpus": 0}) | {"idempotency_key": "nightly-42"}
    fixed = script({"vcpus": 4}) | {"idempotency_key": "nightly-42"}

    assert dispatch(bad)["results"][0]["status"] == "rejected"
    outcome = dispatch(fixed)["results"][0]

    assert outcome["status"] == "dispatched"
    assert len(submitted_jobs(stack)) == 1


def test_resent_message_after_its_input_is_uploaded_is_dispatched(dispatch: Dispatcher, stack: Stack) -> None:
    message = script({"script_key": "jobs/later.py"}) | {"idempotency_key": "later-1"}

    assert dispatch(message)["results"][0]["error_type"] == "InputNotFound"
    put(stack, "jobs/later.py", b"print(1)\n")
    outcome = dispatch(message)["results"][0]  # the same message again, after the fix

    assert outcome["status"] == "dispatched"
    assert len(dead_letters(stack)) == 1


def test_same_key_and_payload_republished_is_still_a_duplicate(dispatch: Dispatcher, stack: Stack) -> None:
    message = script() | {"idempotency_key": "dup-1"}
    reordered = json.dumps(
        {"idempotency_key": "dup-1", **{k: v for k, v in reversed(list(script().items()))}}, indent=1
    )

    first = dispatch(message)["results"][0]
    second = dispatch(reordered)["results"][0]  # the same JSON, written differently

    assert second["result"]["job_id"] == first["result"]["job_id"]
    assert len(submitted_jobs(stack)) == 1


def test_redelivered_rejected_message_is_dead_lettered_once(dispatch: Dispatcher, stack: Stack) -> None:
    record = sns_record(script({"vcpus": 0}) | {"idempotency_key": "k-1"}, stack.notifications_topic_arn)

    first = dispatch(record)
    second = dispatch(record)  # SNS redelivers the same MessageId

    assert second == first
    assert len(dead_letters(stack)) == 1


# --- item 17: separators and control characters in metadata --------------------------------------


@pytest.mark.parametrize(
    "text",
    ["a\u2028b", "a\u0085b", "a\u2029b", "a\u202eb", "a\nb"],
    ids=["U+2028", "U+0085", "U+2029", "U+202E", "newline"],
)
def test_line_separators_and_controls_in_metadata_are_dead_lettered(
    dispatch: Dispatcher, stack: Stack, text: str
) -> None:
    body = assert_rejected_once(dispatch, stack, script(project=text), "SchemaViolation", "metadata.project")

    assert f"U+{ord(text[1]):04X}" in body["reason"]


# --- issue 13: the original design's cache clean-up message --------------------------------------


def test_original_designs_cleanup_message_is_refused_with_what_replaces_it(
    dispatch: Dispatcher, stack: Stack
) -> None:
    # Exactly as shared/origins/001 tells its users to send it.
    message = {
        "trigger_type": "batch_job",
        "data": {
            "script_key": "jobs/cleanup_processor.py",
            "compute_type": "cpu",
            "operation": "cleanup-cache",
        },
    }

    body = assert_rejected_once(dispatch, stack, message, "UnsupportedOperation", "cleanup-cache")

    assert "no EFS" in body["reason"] and "python -m gpu_app.batch cleanup-cache" in body["reason"]


def test_key_over_s3s_limit_in_bytes_is_dead_lettered_not_sent_to_s3(
    dispatch: Dispatcher, stack: Stack
) -> None:
    key = "jobs/" + "\u00e9" * 600 + ".py"  # 610 characters, 1,208 bytes: S3 answers KeyTooLongError

    assert_rejected_once(dispatch, stack, script({"script_key": key}), "SchemaViolation", "1024 bytes")
