"""S3 event notifications as work: images to the GPU instance (or a Batch job when many), `.jsonl`
manifests to a bulk embedding job, videos to a video job; anything else dead-lettered with its reason.

Events arrive wrapped in SNS (the Terraform wiring: bucket -> trigger topic -> dispatcher), directly
from S3 to the function, or from an SQS queue (SNS envelopes or raw events). Every object is claimed
in the idempotency table by bucket + key + ETag + sequencer before it is routed, so a duplicate
delivery of one event never processes the object twice; a transient failure releases the claims
and the delivery is retried.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Final, NamedTuple
from urllib.parse import unquote_plus

from contract import batch_job
from contract.limits import MAX_FILES_PER_CONTROLLER_REQUEST
from contract.media import IMAGE_SUFFIXES, MANIFEST_SUFFIXES, VIDEO_SUFFIXES
from lambdas.common.aws import client
from lambdas.common.controller_request import ControllerRequest, Metadata
from lambdas.common.idempotency import record_id
from lambdas.common.log import logger
from lambdas.common.messages import TriggerMessage
from lambdas.common.validation import InvalidMessageError, plain_key
from lambdas.dispatcher.batch import JobResources, job_environment, job_name, output_prefix, submit_job
from lambdas.dispatcher.config import DispatcherConfig, dispatcher_config, dispatcher_store
from lambdas.dispatcher.dead_letter import dead_letter
from lambdas.dispatcher.triggers.base import DispatchContext
from lambdas.dispatcher.triggers.face_embedding import FaceEmbeddingTrigger

if TYPE_CHECKING:
    from lambdas.common.lambda_context import LambdaContext

# Where the dispatcher writes the manifest of a large group of uploaded images (the embedding job
# reads it from the input bucket); outside the event prefix, so writing it raises no event.
EVENT_MANIFEST_PREFIX: Final = "manifests/s3-events/"
# Who asked, as jobs and the controller's logs show it.
EVENT_METADATA: Final = Metadata(user="s3-event", project="s3-events", experiment="incoming")
VIDEO_COMMAND: Final = ("python", "-m", "gpu_app.batch", "video")


class S3Object(NamedTuple):
    """One ObjectCreated record, its key decoded (S3 URL-encodes keys in events, a space as '+')."""

    bucket: str
    key: str
    size: int
    etag: str
    sequencer: str
    event_name: str
    record: Mapping[str, Any]

    @property
    def identity(self) -> str:
        # The sequencer orders events of one key; with the ETag it tells a re-upload from a redelivery.
        return f"s3object:{self.bucket}/{self.key}:{self.etag}:{self.sequencer}"

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.key).suffix.lower()


class S3Notification(NamedTuple):
    """What one delivery held: its object records, or an `s3:TestEvent` (nothing to do)."""

    delivery_id: str
    objects: list[S3Object]
    test_event: bool = False


def is_s3_record(record: Any) -> bool:
    return isinstance(record, Mapping) and record.get("eventSource") == "aws:s3"


def as_s3_notification(decoded: Any, delivery_id: str) -> S3Notification | None:
    """The S3 notification in a decoded message, or None if it is not one (then it is a job message)."""
    if not isinstance(decoded, Mapping):
        return None
    if decoded.get("Event") == "s3:TestEvent" and decoded.get("Service") == "Amazon S3":
        return S3Notification(delivery_id, [], test_event=True)
    records = decoded.get("Records")
    if not isinstance(records, list) or not records or not all(is_s3_record(r) for r in records):
        return None
    return S3Notification(delivery_id, [parse_record(record) for record in records])


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def parse_record(record: Mapping[str, Any]) -> S3Object:
    s3 = _mapping(record.get("s3"))
    bucket = _mapping(s3.get("bucket"))
    item = _mapping(s3.get("object"))
    size = item.get("size", 0)
    return S3Object(
        bucket=str(bucket.get("name", "")),
        key=unquote_plus(str(item.get("key", ""))),
        size=size if isinstance(size, int) and not isinstance(size, bool) else 0,
        etag=str(item.get("eTag", "")),
        sequencer=str(item.get("sequencer", "")),
        event_name=str(record.get("eventName", "")),
        record=record,
    )


# The prefix of the objects' records, as Powertools' key_prefix wrote them before.
OBJECT_RECORD_PREFIX: Final = "dispatcher.s3_object"


def _record_id(item: S3Object) -> str:
    return record_id(OBJECT_RECORD_PREFIX, item.identity)


class ObjectClaims:
    """Claims objects for this invocation; releases them all if the work fails, settles them if it is done."""

    def __init__(self, context: LambdaContext) -> None:
        self.context = context
        self.claimed: list[S3Object] = []

    def claim(self, item: S3Object) -> bool:
        """Whether this invocation now holds `item`; False for a duplicate (routed, or being routed
        by another invocation: either way not this one's to route)."""
        if dispatcher_store().claim(_record_id(item), self.context.get_remaining_time_in_millis()):
            logger.info("duplicate S3 event skipped", extra={"object": item.identity})
            return False
        self.claimed.append(item)
        return True

    def settle(self, items: Iterable[S3Object], result: dict[str, Any]) -> None:
        for item in items:
            dispatcher_store().complete(_record_id(item), result)
            self.claimed.remove(item)

    def release_unsettled(self) -> None:
        for item in self.claimed:
            dispatcher_store().release(_record_id(item))
        self.claimed.clear()


def refusal(item: S3Object, config: DispatcherConfig) -> InvalidMessageError | None:
    """Why this object can never be processed, or None."""
    if not item.event_name.startswith("ObjectCreated:"):
        return InvalidMessageError(
            f"S3 event {item.event_name!r} for {item.key!r}: only ObjectCreated events are processed",
            "UnsupportedEvent",
        )
    if item.bucket != config.ml_input_bucket:
        return InvalidMessageError(
            f"object {item.key!r} is in bucket {item.bucket!r}, "
            f"not the input bucket {config.ml_input_bucket!r}",
            "WrongBucket",
        )
    try:
        plain_key(item.key, "S3 event object key")
    except InvalidMessageError as error:
        return error
    if not item.key.startswith(config.s3_event_prefix):
        return InvalidMessageError(
            f"object {item.key!r} is outside the event prefix {config.s3_event_prefix!r}",
            "OutsideEventPrefix",
        )
    if item.suffix not in (*IMAGE_SUFFIXES, *MANIFEST_SUFFIXES, *VIDEO_SUFFIXES):
        known = ", ".join((*IMAGE_SUFFIXES, *MANIFEST_SUFFIXES, *VIDEO_SUFFIXES))
        return InvalidMessageError(
            f"object {item.key!r} has type {item.suffix or '(no extension)'!r}, which is not processed; "
            f"known: {known}",
            "UnsupportedObjectType",
        )
    if item.size == 0:
        return InvalidMessageError(f"object {item.key!r} is empty (0 bytes)", "EmptyObject")
    return None


def _digest(items: Sequence[S3Object]) -> str:
    joined = "\n".join(sorted(item.identity for item in items))
    return hashlib.sha256(joined.encode("utf-8", "surrogatepass")).hexdigest()


def _invoke_controller(config: DispatcherConfig, request: ControllerRequest) -> dict[str, Any]:
    response = client("lambda").invoke(
        FunctionName=config.controller_function_name,
        InvocationType="Event",
        Payload=json.dumps(request.as_payload()).encode("utf-8"),
    )
    return {"controller": config.controller_function_name, "status_code": response["StatusCode"]}


def route_images(images: Sequence[S3Object], config: DispatcherConfig) -> dict[str, Any]:
    """Few images: one start_and_process per MAX_FILES_PER_CONTROLLER_REQUEST keys. Many (over
    EVENT_BATCH_THRESHOLD): a manifest and one face_embedding Batch job."""
    keys = [item.key for item in images]
    if len(keys) <= config.event_batch_threshold:
        invocations = [
            _invoke_controller(
                config,
                ControllerRequest(
                    action="start_and_process",
                    files=tuple(keys[start : start + MAX_FILES_PER_CONTROLLER_REQUEST]),
                    metadata=EVENT_METADATA,
                ),
            )
            for start in range(0, len(keys), MAX_FILES_PER_CONTROLLER_REQUEST)
        ]
        return {"route": "gpu_instance", "files": keys, "invocations": invocations}
    digest = _digest(images)
    manifest_key = f"{EVENT_MANIFEST_PREFIX}{digest[:32]}.jsonl"
    body = "".join(json.dumps({"key": key}) + "\n" for key in keys)
    client("s3").put_object(
        Bucket=config.ml_input_bucket,
        Key=manifest_key,
        Body=body.encode("utf-8"),
        ContentType="application/x-ndjson",
    )
    job = _embedding_job(manifest_key, config, f"s3-images:{digest}")
    return {"route": "face_embedding", "files": keys, "manifest_key": manifest_key, "job": job}


def _embedding_job(manifest_key: str, config: DispatcherConfig, idempotency_key: str) -> dict[str, Any]:
    """The face_embedding trigger itself, so an event-made job is validated and sized like a message's."""
    message = TriggerMessage(
        trigger_type=FaceEmbeddingTrigger.trigger_type,
        data={"manifest_key": manifest_key},
        metadata=EVENT_METADATA,
        idempotency_key=None,
    )
    return FaceEmbeddingTrigger(message, DispatchContext(config, idempotency_key, idempotency_key)).execute()


def route_manifest(item: S3Object, config: DispatcherConfig) -> dict[str, Any]:
    return {"route": "face_embedding", "job": _embedding_job(item.key, config, item.identity)}


def route_video(item: S3Object, config: DispatcherConfig) -> dict[str, Any]:
    """A short video (up to VIDEO_INSTANCE_MAX_BYTES) to the GPU instance's POST /videos through
    the controller; a longer one to a video job on the GPU queue (`python -m gpu_app.batch video`),
    resumable per segment."""
    if item.size <= config.video_instance_max_bytes:
        request = ControllerRequest(action="start_and_process", files=(item.key,), metadata=EVENT_METADATA)
        return {"route": "gpu_instance", "invocation": _invoke_controller(config, request)}
    resources = JobResources.parse({}, config)
    name = job_name(f"video-{PurePosixPath(item.key).stem}", EVENT_METADATA, item.identity)
    prefix = output_prefix(EVENT_METADATA, name)
    job = submit_job(
        name=name,
        queue=resources.queue(config),
        definition=config.embed_job_definition_gpu,
        resources=resources,
        environment=job_environment(
            config,
            resources,
            EVENT_METADATA,
            prefix,
            {batch_job.VIDEO_KEY: item.key, batch_job.VIDEO_BYTES: str(item.size)},
        ),
        command=VIDEO_COMMAND,
    )
    return {"route": "video", "job": job}


def reject_object(
    item: S3Object, error: InvalidMessageError, delivery_id: str, config: DispatcherConfig
) -> dict[str, Any]:
    dead_letter_id = dead_letter(config.dead_letter_queue_url, error, delivery_id, json.dumps(item.record))
    logger.warning(
        "S3 object rejected",
        extra={"key": item.key, "reason": error.reason, "error_type": error.error_type, "id": dead_letter_id},
    )
    return {"status": "rejected", "key": item.key, "error_type": error.error_type, "reason": error.reason}


def route_object(item: S3Object, delivery_id: str, config: DispatcherConfig) -> dict[str, Any]:
    """A manifest or video routed alone, or the object dead-lettered with the reason it cannot be."""
    try:
        error = refusal(item, config)
        if error is not None:
            raise error
        manifest = item.suffix in MANIFEST_SUFFIXES
        routed = route_manifest(item, config) if manifest else route_video(item, config)
    except InvalidMessageError as error:  # also a manifest found bad while counting it
        return reject_object(item, error, delivery_id, config)
    return {"status": "dispatched", "key": item.key, **routed}


def _release(claims: ObjectClaims) -> None:
    try:
        claims.release_unsettled()
    except Exception:
        # The claims expire with this invocation's remaining time (the idempotency in-progress
        # expiry), after which the redelivery can claim the objects again.
        logger.exception("could not release the claims of a failed delivery")


def process_notifications(
    notifications: Sequence[S3Notification], context: LambdaContext
) -> tuple[list[dict[str, Any]], set[int]]:
    """Route every object of these deliveries, the images of all of them together (one
    start_and_process, or one embedding job when many). Returns the results and the positions of the
    deliveries that failed transiently. A failed delivery's objects not yet routed are released for
    its redelivery; what was routed is settled, so the redelivery skips it as a duplicate. One
    delivery's failure holds back no other delivery."""
    config = dispatcher_config()
    results: list[dict[str, Any]] = []
    failed: set[int] = set()
    claims = {position: ObjectClaims(context) for position in range(len(notifications))}
    images: list[tuple[int, S3Object]] = []
    for position, notification in enumerate(notifications):
        if notification.test_event:
            logger.info("s3:TestEvent acknowledged", extra={"delivery": notification.delivery_id})
            results.append({"status": "acknowledged", "event": "s3:TestEvent"})
            continue
        held: list[S3Object] = []
        try:
            for item in notification.objects:
                if not claims[position].claim(item):
                    results.append({"status": "duplicate", "key": item.key})
                elif item.suffix in IMAGE_SUFFIXES and refusal(item, config) is None:
                    held.append(item)
                else:
                    result = route_object(item, notification.delivery_id, config)
                    claims[position].settle([item], result)
                    results.append(result)
        except Exception:
            logger.exception(
                "transient failure routing an S3 event", extra={"delivery": notification.delivery_id}
            )
            _release(claims[position])  # its images too: the redelivery routes them
            failed.add(position)
            continue
        images.extend((position, item) for item in held)
    if images:
        try:
            result = {"status": "dispatched", **route_images([item for _, item in images], config)}
            for position, item in images:
                claims[position].settle([item], result)
            results.append(result)
        except Exception:
            logger.exception("transient failure routing uploaded images")
            for position in {position for position, _ in images}:
                _release(claims[position])
                failed.add(position)
    for result in results:
        if result.get("status") == "dispatched":
            logger.info("S3 objects routed", extra={"result": result})
    return results, failed
