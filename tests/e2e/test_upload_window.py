"""The S3 event queue's batching window, in the local stack Terraform applied: images copied under
`incoming/` within the window reach the dispatcher in one invocation and become ONE
start_and_process (the dispatcher's routing log and the local pollers' record say so); every face
is searchable; a duplicate delivery of the same S3 events processes nothing twice."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import cv2
import httpx

from tests.e2e.conftest import LocalStack, wait_for
from tests.e2e.test_upload_and_forget import ARRIVAL_TIMEOUT, matches
from tests.support.images import sample_path

FACES_PER_PICTURE = 6  # t1.jpg


def save_sample(path: Path, quality: int) -> Path:
    """The sample picture as a JPEG of this quality (each quality gives different bytes, another image)."""
    picture = cv2.imread(str(sample_path()))
    assert picture is not None
    cv2.imwrite(str(path), picture, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return path


def routed(stack: LocalStack) -> list[dict[str, Any]]:
    """Every "S3 objects routed" result the dispatcher logged (its log group, as CloudWatch has it)."""
    group = f"/aws/lambda/{stack.names['dispatcher_function']}"
    results = []
    for event in stack.cli.json("logs", "filter-log-events", "--log-group-name", group)["events"]:
        try:
            line = json.loads(event["message"])
        except ValueError:
            continue
        if isinstance(line, dict) and line.get("message") == "S3 objects routed":
            results.append(line["result"])
    return results


def delivered_batches(stack: LocalStack) -> list[dict[str, Any]]:
    """The batches the local Lambda pollers delivered from the S3 event queue."""
    sources = httpx.get(f"{stack.process.lambda_url}/local/event-sources", timeout=10).json()
    (source,) = [item for item in sources if item["mapping"]["queue_url"].endswith("-s3-events")]
    return list(source["recent_batches"])


def event_keys(body: str) -> list[str]:
    """The object keys of an S3 event (S3 form-encodes them in events)."""
    decoded = json.loads(body)
    return [unquote_plus(record["s3"]["object"]["key"]) for record in decoded.get("Records", [])]


def test_uploads_within_the_window_become_one_start_and_process(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    folder = tmp_path / "window"
    folder.mkdir()
    for n, quality in enumerate((92, 86, 80)):  # three different files (ids are content hashes)
        save_sample(folder / f"{n}.jpg", quality)
    prefix = f"incoming/window-{uuid.uuid4().hex[:8]}/"
    keys = sorted(f"{prefix}{n}.jpg" for n in range(3))
    # One `aws s3 cp` of the folder: three uploads well within the 10 s window.
    local_stack.cli.run("s3", "cp", "--recursive", str(folder), f"s3://{local_stack.input_bucket}/{prefix}")

    def found() -> set[str]:
        hits = matches(local_stack, (folder / "0.jpg").read_bytes())
        stored = {hit["storage_key"] for hit in hits if hit["storage_key"] in keys}
        return stored if stored == set(keys) else set()

    wait_for(found, ARRIVAL_TIMEOUT, "the three uploads' faces in /search", interval=2)
    with local_stack.app() as app:
        answer = app.post(
            "/search",
            files={"file": ("still.jpg", (folder / "1.jpg").read_bytes(), "image/jpeg")},
            data={"k": "10"},
        )
    stored = [
        match["storage_key"]
        for query in answer.json()["queries"]
        for match in query["matches"]
        if match["storage_key"] in keys
    ]
    assert len(stored) == len(keys) * FACES_PER_PICTURE

    # One dispatcher invocation held the three events, and their images were one start_and_process.
    groups = [result for result in routed(local_stack) if set(result.get("files", [])) & set(keys)]
    assert len(groups) == 1, groups
    assert (groups[0]["route"], sorted(groups[0]["files"]), len(groups[0]["invocations"])) == (
        "gpu_instance",
        keys,
        1,
    )
    batches = [
        batch
        for batch in delivered_batches(local_stack)
        if any(set(event_keys(record["body"])) & set(keys) for record in batch["records"])
    ]
    assert len(batches) == 1 and len(batches[0]["records"]) >= len(keys), delivered_batches(local_stack)
    assert batches[0]["left_for_redelivery"] == [] and not batches[0]["function_error"]

    # SQS delivers at least once (and S3 may notify twice): the same events again, as new messages.
    for record in batches[0]["records"]:
        if set(event_keys(record["body"])) & set(keys):
            local_stack.cli.run(
                "sqs",
                "send-message",
                "--queue-url",
                local_stack.queue_url("s3_event_queue"),
                "--message-body",
                record["body"],
            )
    wait_for(
        lambda: (
            len(
                [
                    b
                    for b in delivered_batches(local_stack)
                    if any(set(event_keys(r["body"])) & set(keys) for r in b["records"])
                ]
            )
            >= 2
        ),
        60,
        "the duplicate events to be delivered",
    )
    assert [result for result in routed(local_stack) if set(result.get("files", [])) & set(keys)] == groups
    assert local_stack.cli.receive(local_stack.queue_url("s3_event_dlq")) == []


def test_a_disabled_mapping_holds_the_uploads_until_it_is_enabled(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    """`aws lambda update-event-source-mapping --no-enabled` stops the deliveries (the uploads wait in
    the queue); enabled again, they are routed."""
    dispatcher = local_stack.names["dispatcher_function"]
    (mapping,) = [
        mapping
        for mapping in local_stack.cli.json("lambda", "list-event-source-mappings")["EventSourceMappings"]
        if mapping["FunctionArn"].endswith(f":function:{dispatcher}")
    ]
    assert (mapping["BatchSize"], mapping["MaximumBatchingWindowInSeconds"]) == (1000, 10)
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    local_stack.cli.run("lambda", "update-event-source-mapping", "--uuid", mapping["UUID"], "--no-enabled")
    photo = save_sample(tmp_path / "held.jpg", 70)
    key = f"incoming/held-{uuid.uuid4().hex[:8]}.jpg"
    try:
        time.sleep(6)  # the pollers read their mapping every 5 s
        local_stack.cli.run("s3", "cp", str(photo), f"s3://{local_stack.input_bucket}/{key}")
        wait_for(
            lambda: (
                local_stack.cli.json(
                    "sqs",
                    "get-queue-attributes",
                    "--queue-url",
                    local_stack.queue_url("s3_event_queue"),
                    "--attribute-names",
                    "ApproximateNumberOfMessages",
                )["Attributes"]["ApproximateNumberOfMessages"]
                == "1"
            ),
            30,
            "the upload's event to wait in the queue",
        )
        time.sleep(12)  # longer than the window: a poller would have delivered it by now
        assert not [result for result in routed(local_stack) if key in result.get("files", [])]
    finally:
        local_stack.cli.run("lambda", "update-event-source-mapping", "--uuid", mapping["UUID"], "--enabled")
    wait_for(
        lambda: [result for result in routed(local_stack) if key in result.get("files", [])],
        60,
        "the held upload to be routed once the mapping is enabled",
    )
