"""Dispatching: SNS (or SQS) records or a direct invocation become trigger executions, each exactly
once; S3 event notifications among them are routed by object (lambdas/dispatcher/s3_events.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from lambdas.common.idempotency import function_prefix, record_id
from lambdas.common.log import logger
from lambdas.common.messages import TriggerMessage, cut_to_depth, decode_message
from lambdas.common.validation import InvalidMessageError
from lambdas.dispatcher.config import dispatcher_config, dispatcher_store
from lambdas.dispatcher.dead_letter import dead_letter
from lambdas.dispatcher.s3_events import S3Notification, as_s3_notification, process_notifications
from lambdas.dispatcher.triggers import TRIGGER_REGISTRY, DispatchContext

if TYPE_CHECKING:
    from lambdas.common.lambda_context import LambdaContext


class RetryableDispatchError(RuntimeError):
    """Some records failed for a transient reason; Lambda retries the event (done records are skipped)."""


class MessageRejected(Exception):  # noqa: N818 - an outcome, not a fault of this code
    """The message is the sender's fault. Raised out of the idempotent dispatch so that no key is
    kept for it: the same message re-sent after the sender fixed the cause (an uploaded script, a
    corrected field) is dispatched, not swallowed as a duplicate."""

    def __init__(self, error: InvalidMessageError) -> None:
        super().__init__(error.reason)
        self.error = error


def dispatch_once(*, record: Mapping[str, str]) -> dict[str, Any]:
    """Validate and execute one message. Raises MessageRejected for the sender's fault, anything
    else for a transient failure."""
    config = dispatcher_config()
    raw, message_id = record["raw"], record["message_id"]
    try:
        message = TriggerMessage.parse(raw)
        trigger_class = TRIGGER_REGISTRY.get(message.trigger_type)
        if trigger_class is None:
            raise InvalidMessageError(
                f"unknown trigger_type {message.trigger_type!r}; "
                f"known: {', '.join(sorted(TRIGGER_REGISTRY))}",
                "UnknownTrigger",
            )
        trigger = trigger_class(message, DispatchContext(config, record["idempotency_key"], message_id))
        result = trigger.execute()
    except InvalidMessageError as error:
        raise MessageRejected(error) from error
    except (UnicodeError, RecursionError) as exc:
        # Only the message's content can cause these (text AWS cannot encode, nesting Python cannot
        # walk); the checks above should have named it, and retrying could never help.
        raise MessageRejected(
            InvalidMessageError(f"message content cannot be processed: {type(exc).__name__}: {exc}")
        ) from exc
    logger.info("message dispatched", extra={"trigger_type": message.trigger_type, "result": result})
    return {
        "status": "dispatched",
        "message_id": message_id,
        "trigger_type": message.trigger_type,
        "result": result,
    }


def reject_once(*, record: Mapping[str, str]) -> dict[str, Any]:
    """Dead-letter one rejected delivery; idempotent on the delivery, so a redelivery adds no record."""
    error = InvalidMessageError(record["reason"], record["error_type"])
    config = dispatcher_config()
    dead_letter_id = dead_letter(config.dead_letter_queue_url, error, record["message_id"], record["raw"])
    logger.warning(
        "message rejected",
        extra={"reason": error.reason, "error_type": error.error_type, "dead_letter_id": dead_letter_id},
    )
    return {
        "status": "rejected",
        "message_id": record["message_id"],
        "error_type": error.error_type,
        "reason": error.reason,
    }


def _once(
    function: Callable[..., dict[str, Any]], record: Mapping[str, str], context: LambdaContext
) -> dict[str, Any]:
    """`function(record=record)` run once per `record["idempotency_key"]` (records of each function
    apart); a claim lasts the invocation's remaining time."""
    return dispatcher_store().run_once(
        record_id(function_prefix(function), record["idempotency_key"]),
        context.get_remaining_time_in_millis(),
        lambda: function(record=record),
    )


def process_message(raw: str, message_id: str, context: LambdaContext) -> dict[str, Any]:
    """One delivery. Duplicates are decided by the sender's idempotency_key tied to the payload, else
    by the delivery's MessageId; a rejection is recorded per delivery only. A duplicate of a delivery
    still in progress elsewhere raises AlreadyInProgressError (transient: retried)."""
    sender_key = TriggerMessage.sender_key(raw)
    key = f"idempotency_key:{sender_key}" if sender_key else f"message_id:{message_id}"
    try:
        return _once(dispatch_once, {"idempotency_key": key, "message_id": message_id, "raw": raw}, context)
    except MessageRejected as rejected:
        rejection = {
            "idempotency_key": f"message_id:{message_id}",
            "message_id": message_id,
            "raw": raw,
            "reason": rejected.error.reason,
            "error_type": rejected.error.error_type,
        }
        return _once(reject_once, rejection, context)


class Delivery(NamedTuple):
    """One message as it reached the function: its text, the id that identifies it (SNS's MessageId,
    an SQS message's or a direct invocation's request id) and, from SQS, the record's messageId that
    a partial batch response names (`batchItemFailures[].itemIdentifier`)."""

    raw: str
    message_id: str
    sqs_message_id: str | None = None


def _sqs_delivery(record: Mapping[str, Any]) -> Delivery:
    """An SQS record: its body an SNS envelope (unless raw delivery) holding the message, or the
    message itself (an S3 event the bucket sent to the queue)."""
    body, sqs_message_id = str(record.get("body", "")), str(record.get("messageId", ""))
    try:
        envelope = json.loads(body)
    except (ValueError, RecursionError):
        return Delivery(body, sqs_message_id, sqs_message_id)
    notification = isinstance(envelope, dict) and envelope.get("Type") == "Notification"
    if notification and isinstance(envelope.get("Message"), str):
        return Delivery(envelope["Message"], str(envelope.get("MessageId") or sqs_message_id), sqs_message_id)
    return Delivery(body, sqs_message_id, sqs_message_id)


def deliveries(event: Any, context: LambdaContext) -> list[Delivery]:
    """One delivery per SNS (or SQS) record, or the direct invocation's event itself (an S3 event S3
    sends straight to the function is one such).

    Lambda keeps the request id across its retries of an asynchronous invocation, so it identifies a
    direct invocation as SNS's MessageId identifies a delivery.
    """
    records = event.get("Records") if isinstance(event, dict) else None
    if isinstance(records, list) and records and all(isinstance(r, dict) for r in records):
        if all(r.get("EventSource") == "aws:sns" for r in records):
            return [Delivery(r["Sns"]["Message"], r["Sns"]["MessageId"]) for r in records]
        if all(r.get("eventSource") == "aws:sqs" for r in records):
            return [_sqs_delivery(record) for record in records]
    # An event too deep to serialise is cut (the parse then refuses it for its depth, with a reason).
    return [Delivery(json.dumps(cut_to_depth(event)), context.aws_request_id)]


def s3_notification(raw: str, message_id: str) -> S3Notification | None:
    """The S3 event notification this delivery is, or None (a job message, or not decodable)."""
    try:
        decoded = decode_message(raw)
    except InvalidMessageError:
        return None
    return as_s3_notification(decoded, message_id)


def handle_event(event: Any, context: LambdaContext) -> dict[str, Any]:
    """Every delivery of the event. From an SQS event source mapping the answer is a partial batch
    response: `batchItemFailures` lists exactly the records that failed transiently, which the queue
    redelivers after their visibility timeout (the others are deleted). From SNS or a direct
    invocation a transient failure raises, and Lambda retries the whole event (what is done is
    skipped by idempotency)."""
    received = deliveries(event, context)
    results: list[dict[str, Any]] = []
    failed: list[Delivery] = []
    s3_deliveries: list[tuple[Delivery, S3Notification]] = []
    # Records are independent: one's transient failure must not stop the others.
    for delivery in received:
        logger.set_correlation_id(delivery.message_id)
        notification = s3_notification(delivery.raw, delivery.message_id)
        if notification is not None:
            # Routed together below: the images of every record of this event are one group.
            s3_deliveries.append((delivery, notification))
            continue
        try:
            results.append(process_message(delivery.raw, delivery.message_id, context))
        except Exception:
            logger.exception(
                "transient failure, the record will be retried", extra={"message_id": delivery.message_id}
            )
            failed.append(delivery)
    if s3_deliveries:
        routed, failed_positions = process_notifications([n for _, n in s3_deliveries], context)
        results.extend(routed)
        failed.extend(s3_deliveries[position][0] for position in sorted(failed_positions))
    if all(delivery.sqs_message_id is not None for delivery in received):
        return {
            "batchItemFailures": [{"itemIdentifier": delivery.sqs_message_id} for delivery in failed],
            "results": results,
        }
    if failed:
        ids = ", ".join(delivery.message_id for delivery in failed)
        raise RetryableDispatchError(f"{len(failed)} record(s) failed transiently: {ids}")
    return {"results": results}
