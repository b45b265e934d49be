"""S3 event notifications reaching the dispatcher: SNS-wrapped, direct from S3, through SQS, and the
s3:TestEvent. The object records are the ones moto's S3 really emits (captured from a queue the bucket
notifies), so keys are URL-encoded exactly as S3 encodes them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote_plus

import boto3
import pytest

from lambdas.common.aws import client
from lambdas.dispatcher.handler import lambda_handler
from lambdas.dispatcher.s3_events import EVENT_MANIFEST_PREFIX
from lambdas.dispatcher.service import RetryableDispatchError
from tests.lambdas.conftest import Configure
from tests.lambdas.dispatching import environment_of, submitted_jobs
from tests.lambdas.events import LambdaContext, sns_event, sns_record, sqs_record
from tests.lambdas.resources import Stack, receive_all

TEST_EVENT = {
    "Service": "Amazon S3",
    "Event": "s3:TestEvent",
    "Time": "2026-11-29T23:50:02.089Z",
    "Bucket": "placeholder",
    "RequestId": "5582815E1AEA5ADF",
    "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
}


class Uploads:
    """Uploads to the input bucket and the S3 event records moto emits for them (via an SQS queue)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        sqs = boto3.client("sqs")
        self.queue_url = sqs.create_queue(QueueName="s3-events-capture")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        boto3.client("s3").put_bucket_notification_configuration(
            Bucket=stack.input_bucket,
            NotificationConfiguration={
                "QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]
            },
        )
        receive_all(self.queue_url)  # the s3:TestEvent of the configuration, if moto sends one

    def put(self, key: str, body: bytes = b"\xff\xd8 not really a jpeg") -> dict[str, Any]:
        """Upload `key` and return the single record of the event it raised."""
        boto3.client("s3").put_object(Bucket=self.stack.input_bucket, Key=key, Body=body)
        (message,) = receive_all(self.queue_url)
        (record,) = json.loads(message["Body"])["Records"]
        return dict(record)


@pytest.fixture
def uploads(stack: Stack) -> Uploads:
    return Uploads(stack)


@pytest.fixture
def invocations(stack: Stack, configure: Configure) -> Iterator[list[dict[str, Any]]]:
    """The dispatcher configured, and the payloads of its controller invocations as sent on the wire."""
    configure("dispatcher", INPUT_READ_PREFIXES="jobs/,manifests/,incoming/")
    sent: list[dict[str, Any]] = []
    watch_invocations(sent)
    yield sent


def watch_invocations(sent: list[dict[str, Any]]) -> None:
    """Record the controller payloads the dispatcher's (current) Lambda client sends."""
    client("lambda").meta.events.register(
        "request-created.lambda.Invoke", lambda request, **_: sent.append(json.loads(request.body))
    )


def s3_event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def run(event: dict[str, Any], context: Callable[..., LambdaContext]) -> dict[str, Any]:
    return lambda_handler(event, context("dispatcher"))


def via_sns(stack: Stack, *records: dict[str, Any], message_id: str | None = None) -> dict[str, Any]:
    return sns_event(sns_record(s3_event(*records), stack.notifications_topic_arn, message_id))


def embedding_jobs(stack: Stack) -> list[dict[str, Any]]:
    """The embedding jobs submitted (not the jobs that run after them, such as a materialize step)."""
    return [job for job in submitted_jobs(stack) if "MANIFEST_KEY" in environment_of(job)]


def dead_letters(stack: Stack) -> list[dict[str, Any]]:
    return [json.loads(message["Body"]) for message in receive_all(stack.dead_letter_queue_url)]


def test_sns_wrapped_image_event_starts_and_processes_once(
    stack: Stack, uploads: Uploads, invocations: list[dict[str, Any]], context: Callable[..., LambdaContext]
) -> None:
    record = uploads.put("incoming/alice.jpg")
    result = run(via_sns(stack, record), context)
    assert invocations == [
        {
            "action": "start_and_process",
            "metadata": {"user": "s3-event", "project": "s3-events", "experiment": "incoming"},
            "payload": {"files": ["incoming/alice.jpg"]},
        }
    ]
    assert result["results"][0]["status"] == "dispatched"
    # SNS redelivers the message (same MessageId) and a second delivery of the same S3 event can
    # come under a new MessageId: neither processes the object again.
    run(via_sns(stack, record), context)
    run(via_sns(stack, record, message_id="another-delivery"), context)
    assert len(invocations) == 1
    # A new upload of the same key is a new event (new sequencer): processed.
    run(via_sns(stack, uploads.put("incoming/alice.jpg", b"\xff\xd8 v2")), context)
    assert len(invocations) == 2
    assert dead_letters(stack) == []


def test_direct_s3_event_coalesces_images_and_decodes_keys(
    stack: Stack, uploads: Uploads, invocations: list[dict[str, Any]], context: Callable[..., LambdaContext]
) -> None:
    records = [uploads.put(key) for key in ("incoming/team photo.jpg", "incoming/b+c.png", "incoming/é.webp")]
    assert "team+photo.jpg" in records[0]["s3"]["object"]["key"]  # form-encoded, as S3 sends it
    run(s3_event(*records), context)
    (invocation,) = invocations
    assert invocation["payload"]["files"] == [
        "incoming/team photo.jpg",
        "incoming/b+c.png",
        "incoming/é.webp",
    ]


def test_sqs_batch_of_sns_envelopes_is_one_start_and_process(
    stack: Stack, uploads: Uploads, invocations: list[dict[str, Any]], context: Callable[..., LambdaContext]
) -> None:
    """An SQS queue between the topic and the function (its batching window collects a short
    window of uploads) gives one delivery of many events: one start_and_process for all of them."""
    bodies = [
        json.dumps(
            sns_record(s3_event(uploads.put(f"incoming/{n}.jpg")), stack.notifications_topic_arn)["Sns"]
        )
        for n in range(3)
    ]
    event = {
        "Records": [
            {"messageId": f"m{n}", "body": body, "eventSource": "aws:sqs", "awsRegion": "us-east-1"}
            for n, body in enumerate(bodies)
        ]
    }
    run(event, context)
    assert [invocation["payload"]["files"] for invocation in invocations] == [
        ["incoming/0.jpg", "incoming/1.jpg", "incoming/2.jpg"]
    ]


@pytest.mark.parametrize("wrapped", [True, False], ids=["sns", "direct"])
def test_s3_test_event_is_acknowledged_and_submits_nothing(
    stack: Stack,
    invocations: list[dict[str, Any]],
    context: Callable[..., LambdaContext],
    wrapped: bool,
) -> None:
    event = dict(TEST_EVENT, Bucket=stack.input_bucket)
    result = run(sns_event(sns_record(event, stack.notifications_topic_arn)) if wrapped else event, context)
    assert result["results"] == [{"status": "acknowledged", "event": "s3:TestEvent"}]
    assert invocations == []
    assert submitted_jobs(stack) == []
    assert dead_letters(stack) == []


def test_objects_that_cannot_be_processed_are_dead_lettered_with_the_reason(
    stack: Stack, uploads: Uploads, invocations: list[dict[str, Any]], context: Callable[..., LambdaContext]
) -> None:
    records = [
        uploads.put("incoming/notes.txt", b"hello"),
        uploads.put("incoming/empty.mp4", b""),
        uploads.put("elsewhere/photo.jpg"),
        uploads.put("incoming/good.jpg"),
    ]
    result = run(via_sns(stack, *records), context)
    statuses = {item.get("key"): item["status"] for item in result["results"] if "key" in item}
    assert statuses == {
        "incoming/notes.txt": "rejected",
        "incoming/empty.mp4": "rejected",
        "elsewhere/photo.jpg": "rejected",
    }
    letters = {
        unquote_plus(json.loads(letter["original"])["s3"]["object"]["key"]): letter
        for letter in dead_letters(stack)
    }
    assert letters["incoming/notes.txt"]["error_type"] == "UnsupportedObjectType"
    assert "'.txt'" in letters["incoming/notes.txt"]["reason"]
    assert letters["incoming/empty.mp4"]["error_type"] == "EmptyObject"
    assert letters["elsewhere/photo.jpg"]["error_type"] == "OutsideEventPrefix"
    # The good image of the same delivery is not held back by the bad ones.
    assert [invocation["payload"]["files"] for invocation in invocations] == [["incoming/good.jpg"]]
    # A redelivery adds no dead-letter records.
    run(via_sns(stack, *records), context)
    assert dead_letters(stack) == []


def test_manifest_becomes_a_face_embedding_job(
    stack: Stack, uploads: Uploads, invocations: list[dict[str, Any]], context: Callable[..., LambdaContext]
) -> None:
    record = uploads.put("incoming/batch.jsonl", b'{"key": "photos/a.jpg"}\nphotos/b.jpg\n')
    run(via_sns(stack, record), context)
    (job,) = embedding_jobs(stack)
    environment = environment_of(job)
    assert environment["MANIFEST_KEY"] == "incoming/batch.jsonl"
    assert environment["IMAGE_COUNT"] == "2"
    assert job["jobDefinition"] == stack.embed_definition_gpu
    assert invocations == []


def test_short_video_goes_to_the_instance_long_video_to_a_video_job(
    stack: Stack,
    uploads: Uploads,
    invocations: list[dict[str, Any]],
    configure: Configure,
    context: Callable[..., LambdaContext],
) -> None:
    configure("dispatcher", VIDEO_INSTANCE_MAX_BYTES="12")
    watch_invocations(invocations)
    short = uploads.put("incoming/short.webm", b"\x1a\x45\xdf\xa3 webm")
    run(via_sns(stack, short), context)
    assert [invocation["payload"]["files"] for invocation in invocations] == [["incoming/short.webm"]]
    invocations.clear()
    record = uploads.put("incoming/holiday clip.MP4", b"\x00\x00\x00\x18ftypmp42 long")
    run(via_sns(stack, record), context)
    run(via_sns(stack, record), context)  # a duplicate delivery submits nothing more
    (job,) = submitted_jobs(stack)
    environment = environment_of(job)
    assert environment["VIDEO_KEY"] == "incoming/holiday clip.MP4"
    assert environment["VIDEO_BYTES"] == "17"
    assert job["container"]["command"] == ["python", "-m", "gpu_app.batch", "video"]
    assert invocations == []


def test_many_images_go_to_one_embedding_job_through_a_manifest(
    stack: Stack,
    uploads: Uploads,
    invocations: list[dict[str, Any]],
    configure: Configure,
    context: Callable[..., LambdaContext],
) -> None:
    configure("dispatcher", EVENT_BATCH_THRESHOLD="2")
    watch_invocations(invocations)
    records = [uploads.put(f"incoming/{n}.jpg") for n in range(3)]
    result = run(s3_event(*records), context)
    (routed,) = result["results"]
    assert routed["route"] == "face_embedding"
    manifest_key = routed["manifest_key"]
    assert manifest_key.startswith(EVENT_MANIFEST_PREFIX)
    body = boto3.client("s3").get_object(Bucket=stack.input_bucket, Key=manifest_key)["Body"].read()
    assert [json.loads(line)["key"] for line in body.splitlines()] == [f"incoming/{n}.jpg" for n in range(3)]
    (job,) = embedding_jobs(stack)
    assert environment_of(job)["MANIFEST_KEY"] == manifest_key
    assert invocations == []


def test_transient_failure_releases_the_objects_for_the_retry(
    stack: Stack,
    uploads: Uploads,
    invocations: list[dict[str, Any]],
    configure: Configure,
    context: Callable[..., LambdaContext],
) -> None:
    records = [uploads.put("incoming/retry.jpg"), uploads.put("incoming/retry.mp4", b"\x00\x00\x00\x18ftyp")]
    long_video = {"VIDEO_INSTANCE_MAX_BYTES": "1", "INPUT_READ_PREFIXES": "incoming/"}
    configure("dispatcher", GPU_JOB_QUEUE="no-such-queue", **long_video)  # Batch refuses
    with pytest.raises(RetryableDispatchError):
        run(via_sns(stack, *records, message_id="m-1"), context)
    assert submitted_jobs(stack) == []
    configure("dispatcher", **long_video)
    watch_invocations(invocations)
    invocations.clear()
    run(via_sns(stack, *records, message_id="m-1"), context)  # Lambda's retry of the same delivery
    assert [invocation["payload"]["files"] for invocation in invocations] == [["incoming/retry.jpg"]]
    assert [environment_of(job)["VIDEO_KEY"] for job in submitted_jobs(stack)] == ["incoming/retry.mp4"]


EVENT_QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:face-embed-dev-s3-events"


def test_sqs_batch_reports_only_the_record_that_failed_transiently(
    stack: Stack,
    uploads: Uploads,
    invocations: list[dict[str, Any]],
    configure: Configure,
    context: Callable[..., LambdaContext],
) -> None:
    """The event source mapping's batch (raw S3 events the bucket sent to the queue): the images of
    all records are one start_and_process; a record that failed transiently is the only one in
    batchItemFailures (the queue redelivers it, deletes the rest); a rejected object is dead-lettered
    once with its reason and is not a failure."""
    image_records = [uploads.put("incoming/a.jpg"), uploads.put("incoming/b.jpg")]
    video = uploads.put("incoming/long.mp4", b"\x00\x00\x00\x18ftyp")
    notes = uploads.put("incoming/notes.txt")
    long_video = {"VIDEO_INSTANCE_MAX_BYTES": "1", "INPUT_READ_PREFIXES": "incoming/"}
    configure("dispatcher", GPU_JOB_QUEUE="no-such-queue", **long_video)  # Batch refuses the video job
    watch_invocations(invocations)
    batch = [
        sqs_record(s3_event(image_records[0]), EVENT_QUEUE_ARN, "sqs-a"),
        sqs_record(s3_event(video), EVENT_QUEUE_ARN, "sqs-video"),
        sqs_record(s3_event(notes), EVENT_QUEUE_ARN, "sqs-notes"),
        sqs_record(s3_event(image_records[1]), EVENT_QUEUE_ARN, "sqs-b"),
    ]
    result = run({"Records": batch}, context)
    assert result["batchItemFailures"] == [{"itemIdentifier": "sqs-video"}]
    files = [invocation["payload"]["files"] for invocation in invocations]
    assert files == [["incoming/a.jpg", "incoming/b.jpg"]]
    (letter,) = dead_letters(stack)
    assert (letter["error_type"], letter["message_id"]) == ("UnsupportedObjectType", "sqs-notes")
    # Batch is back: the redelivered record (same messageId) submits the video job, nothing else.
    configure("dispatcher", **long_video)
    watch_invocations(invocations)
    invocations.clear()
    result = run({"Records": [sqs_record(s3_event(video), EVENT_QUEUE_ARN, "sqs-video")]}, context)
    assert result["batchItemFailures"] == []
    assert [environment_of(job)["VIDEO_KEY"] for job in submitted_jobs(stack)] == ["incoming/long.mp4"]
    # A duplicate delivery of the whole batch (SQS is at-least-once) processes nothing again.
    again = [{**record, "messageId": f"again-{record['messageId']}"} for record in batch]
    result = run({"Records": again}, context)
    assert result["batchItemFailures"] == []
    assert invocations == []
    assert len(submitted_jobs(stack)) == 1
    assert dead_letters(stack) == []
