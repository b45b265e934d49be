"""Exactly-once work over the DynamoDB idempotency table, with the standard library and boto3 only.

The dispatcher needs four operations: claim a key with a conditional PutItem, save the result, give a
duplicate the saved result, delete the claim when the work failed so the redelivery runs it. This
module does them on the item layout of AWS Lambda Powertools' DynamoDBPersistenceLayer (v3), which it
replaces, so records written before an upgrade still deduplicate after it:

| attribute | type | holds |
| --- | --- | --- |
| `id` | S | the record id, `<prefix>#<md5 hex of the key as JSON>` (the table's hash key) |
| `expiration` | N | epoch seconds after which the record is void (the table's TTL attribute) |
| `status` | S | `INPROGRESS` or `COMPLETED` |
| `in_progress_expiration` | N | epoch milliseconds after which an `INPROGRESS` claim is void |
| `data` | S | the result as JSON (sorted keys), once `COMPLETED` |

A key can be claimed when it has no record, when its record expired (DynamoDB's TTL deletes
records up to days late), or when it is `INPROGRESS` past its in-progress expiry: the invocation
that claimed it had that much time left, so it crashed or timed out without releasing it.

Why not Powertools: importing any part of it runs its package __init__ (Logger, Metrics, Tracer) and
the idempotency utility adds jmespath and its persistence classes: ~20 ms of the dispatcher's cold
start on top of ~90-110 ms for `import boto3` (issue 18 goal 4: each handler's import <= 1.1x boto3).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from typing import Any, Final, NamedTuple, TypeVar

from botocore.exceptions import ClientError

from lambdas.common.aws import error_code

# SNS redelivers within minutes and Lambda retries an asynchronous event for up to 6 hours; a day
# covers both with margin, after which the record is void and DynamoDB's TTL removes it.
TTL_SECONDS: Final = 24 * 3600
INPROGRESS: Final = "INPROGRESS"
COMPLETED: Final = "COMPLETED"
# A record that turns void between the refused claim and reading it is claimed again, this many
# times at most (Powertools' MAX_RETRIES).
CLAIM_ATTEMPTS: Final = 3

# The claim succeeds where nothing live holds the key (Powertools' condition, attribute for attribute).
_CLAIMABLE: Final = (
    "attribute_not_exists(#id) OR #expiration < :now OR "
    "(#status = :inprogress AND attribute_exists(#in_progress_expiration) "
    "AND #in_progress_expiration < :now_in_millis)"
)

Result = TypeVar("Result", bound=dict[str, Any])


class AlreadyInProgressError(RuntimeError):
    """Another invocation holds the key and may still be working on it. Transient: raised out of the
    handler so that the delivery is retried, and by then the other one has finished (its result is
    returned) or failed (the key is free)."""


class InconsistentRecordError(RuntimeError):
    """The claim was refused but the record read back was void each time: the store keeps changing."""


class Record(NamedTuple):
    """A record that refused a claim."""

    status: str
    expiration: int  # epoch seconds
    in_progress_expiration: int | None  # epoch milliseconds
    result: dict[str, Any] | None  # the saved result, once COMPLETED


def record_id(prefix: str, key: str) -> str:
    """Powertools' record id of `key`: `<prefix>#<md5 of json.dumps(key)>` (md5 names, not secures)."""
    return f"{prefix}#{hashlib.md5(json.dumps(key).encode(), usedforsecurity=False).hexdigest()}"


def _record(item: dict[str, Any]) -> Record:
    in_progress = item.get("in_progress_expiration")
    data = item.get("data")
    return Record(
        status=item["status"]["S"],
        expiration=int(item["expiration"]["N"]),
        in_progress_expiration=int(in_progress["N"]) if in_progress else None,
        result=json.loads(data["S"]) if data else None,
    )


def is_live(record: Record, now: float) -> bool:
    """Whether `record` still holds its key at `now` (epoch seconds)."""
    if record.expiration < int(now):
        return False
    if record.status == INPROGRESS and record.in_progress_expiration is not None:
        return record.in_progress_expiration >= int(now * 1000)
    return True


class IdempotencyStore:
    """The idempotency table, through a boto3 DynamoDB client."""

    def __init__(
        self,
        table: str,
        dynamodb: Any,
        ttl_seconds: int = TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table = table
        self.dynamodb = dynamodb
        self.ttl_seconds = ttl_seconds
        self.clock = clock

    def claim(self, record_id: str, remaining_millis: int) -> Record | None:
        """Hold `record_id` for the next `remaining_millis` (the invocation's remaining time); None when
        claimed, else the live record that refused it."""
        now = self.clock()
        try:
            self.dynamodb.put_item(
                TableName=self.table,
                Item={
                    "id": {"S": record_id},
                    "expiration": {"N": str(int(now) + self.ttl_seconds)},
                    "status": {"S": INPROGRESS},
                    "in_progress_expiration": {"N": str(int(now * 1000) + remaining_millis)},
                },
                ConditionExpression=_CLAIMABLE,
                ExpressionAttributeNames={
                    "#id": "id",
                    "#expiration": "expiration",
                    "#status": "status",
                    "#in_progress_expiration": "in_progress_expiration",
                },
                ExpressionAttributeValues={
                    ":now": {"N": str(int(now))},
                    ":now_in_millis": {"N": str(int(now * 1000))},
                    ":inprogress": {"S": INPROGRESS},
                },
                # The refusing item comes back with the error: no second read in the common case.
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as refused:
            if error_code(refused) != "ConditionalCheckFailedException":
                raise
            item: dict[str, Any] | None = refused.response.get("Item")  # type: ignore[assignment]
            if item is None:  # an endpoint that does not return it
                item = self.dynamodb.get_item(
                    TableName=self.table, Key={"id": {"S": record_id}}, ConsistentRead=True
                ).get("Item")
            # Deleted in the meantime: a void record, claimed again by the caller.
            return _record(item) if item else Record(INPROGRESS, 0, None, None)
        return None

    def complete(self, record_id: str, result: dict[str, Any]) -> None:
        """Keep `result` for the duplicates to come, for the record's time to live."""
        self.dynamodb.update_item(
            TableName=self.table,
            Key={"id": {"S": record_id}},
            UpdateExpression="SET #data = :data, #expiration = :expiration, #status = :status",
            ExpressionAttributeNames={"#data": "data", "#expiration": "expiration", "#status": "status"},
            ExpressionAttributeValues={
                ":data": {"S": json.dumps(result, sort_keys=True, default=str)},
                ":expiration": {"N": str(int(self.clock()) + self.ttl_seconds)},
                ":status": {"S": COMPLETED},
            },
        )

    def release(self, record_id: str) -> None:
        """Forget the claim: the work failed, and its redelivery must run it."""
        self.dynamodb.delete_item(TableName=self.table, Key={"id": {"S": record_id}})

    def run_once(self, record_id: str, remaining_millis: int, work: Callable[[], Result]) -> Result:
        """`work()`'s result, computed once per `record_id`: a duplicate gets the saved result; while
        another invocation holds the key, AlreadyInProgressError; when `work` raises, the claim is
        released and the error raised."""
        for _ in range(CLAIM_ATTEMPTS):
            refusing = self.claim(record_id, remaining_millis)
            if refusing is None:
                break
            if is_live(refusing, self.clock()):
                if refusing.status == COMPLETED:
                    return refusing.result  # type: ignore[return-value]
                raise AlreadyInProgressError(f"execution already in progress for record {record_id}")
        else:
            raise InconsistentRecordError(f"record {record_id} refused {CLAIM_ATTEMPTS} claims while void")
        try:
            result = work()
        except Exception:
            self.release(record_id)
            raise
        self.complete(record_id, result)
        return result


def function_prefix(function: Callable[..., Any]) -> str:
    """The record prefix Powertools' `idempotent_function` gave `function`'s records: the Lambda
    function's name, the module and the qualified name (kept so that older records still count)."""
    lambda_function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "test-func")
    return f"{lambda_function}.{function.__module__}.{function.__qualname__}"
