"""lambdas/common/idempotency.py against moto over HTTP: claims, saved results, expiry, failures, races,
and records compatible both ways with the Powertools persistence layer it replaced.

Time is a clock the test moves (the store sends its own `now` in the conditions, so DynamoDB judges
expiry by it), never a sleep.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

from lambdas.common.idempotency import (
    COMPLETED,
    INPROGRESS,
    TTL_SECONDS,
    AlreadyInProgressError,
    IdempotencyStore,
    function_prefix,
    record_id,
)
from lambdas.dispatcher.config import dispatcher_config
from lambdas.dispatcher.s3_events import OBJECT_RECORD_PREFIX
from lambdas.dispatcher.service import RetryableDispatchError, dispatch_once
from tests.lambdas.dispatching import Dispatcher, submitted_jobs
from tests.lambdas.events import sns_record
from tests.lambdas.resources import Stack
from tests.terraform.tfconfig import load_hcl

REPO = Path(__file__).resolve().parents[2]
START = 1_900_000_000.0  # epoch seconds, far from the real clock: only the test's clock counts
ID = record_id("dispatcher.lambdas.dispatcher.service.dispatch_once", "message_id:m-1")


def terraform_table_keys() -> tuple[str, str]:
    """The idempotency table's hash key and TTL attribute, as the Terraform module creates them."""
    variables = load_hcl((REPO / "terraform/modules/idempotency/variables.tf").read_text())
    defaults = {name: body.get("default") for block in variables["variable"] for name, body in block.items()}
    module_call = (REPO / "terraform/main.tf").read_text().split('module "idempotency"')[1].split("}")[0]
    assert "hash_key" not in module_call and "ttl_attribute_name" not in module_call  # the defaults apply
    return defaults["hash_key"], defaults["ttl_attribute_name"]


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def table(aws_endpoint: str) -> str:
    hash_key, ttl_attribute = terraform_table_keys()
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(
        TableName="idempotency",
        KeySchema=[{"AttributeName": hash_key, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": hash_key, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName="idempotency", TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl_attribute}
    )
    return "idempotency"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(table: str, clock: Clock) -> IdempotencyStore:
    return IdempotencyStore(table, boto3.client("dynamodb"), clock=clock)


class Work:
    """Counts its runs; returns the run number, or raises what it is given."""

    def __init__(self, error: Exception | None = None) -> None:
        self.runs = 0
        self.error = error

    def __call__(self) -> dict[str, Any]:
        self.runs += 1
        if self.error is not None:
            raise self.error
        return {"status": "dispatched", "run": self.runs}


def item(table: str, rid: str) -> dict[str, Any] | None:
    return (
        boto3.client("dynamodb")
        .get_item(TableName=table, Key={"id": {"S": rid}}, ConsistentRead=True)
        .get("Item")
    )


def test_duplicate_gets_the_saved_result_and_the_work_runs_once(
    store: IdempotencyStore, clock: Clock
) -> None:
    work = Work()

    first = store.run_once(ID, 60_000, work)
    clock.now += 3600
    second = store.run_once(ID, 60_000, work)

    assert first == second == {"status": "dispatched", "run": 1}
    assert work.runs == 1


def test_record_has_the_terraform_table_keys_and_a_24_hour_ttl(store: IdempotencyStore, table: str) -> None:
    hash_key, ttl_attribute = terraform_table_keys()
    store.run_once(ID, 60_000, Work())

    saved = item(table, ID)
    assert saved is not None and saved[hash_key] == {"S": ID}
    assert int(saved[ttl_attribute]["N"]) == int(START) + TTL_SECONDS == int(START) + 24 * 3600
    assert saved["status"] == {"S": COMPLETED}


def test_expired_record_is_claimed_again(store: IdempotencyStore, clock: Clock) -> None:
    work = Work()
    store.run_once(ID, 60_000, work)

    clock.now = START + TTL_SECONDS  # the last second the record holds
    assert store.run_once(ID, 60_000, work)["run"] == 1
    clock.now = START + TTL_SECONDS + 1  # void, though DynamoDB's TTL has not deleted it yet
    assert store.run_once(ID, 60_000, work)["run"] == 2
    assert work.runs == 2


def test_claim_of_a_crashed_invocation_is_reclaimed_after_its_in_progress_expiry(
    store: IdempotencyStore, clock: Clock, table: str
) -> None:
    assert store.claim(ID, remaining_millis=5_000) is None  # the invocation dies holding it
    assert item(table, ID)["status"] == {"S": INPROGRESS}  # type: ignore[index]
    work = Work()

    clock.now = START + 4.9  # it could still be running: the delivery is retried later
    with pytest.raises(AlreadyInProgressError):
        store.run_once(ID, 60_000, work)
    assert work.runs == 0

    clock.now = START + 5.1  # its remaining time has run out: the claim is void
    assert store.run_once(ID, 60_000, work) == {"status": "dispatched", "run": 1}
    assert item(table, ID)["status"] == {"S": COMPLETED}  # type: ignore[index]


def test_concurrent_claims_let_exactly_one_invocation_run(table: str) -> None:
    invocations = 6
    refused = threading.Semaphore(0)
    winners: list[int] = []

    def work() -> dict[str, Any]:
        winners.append(threading.get_ident())
        # Keep the claim until every other invocation has been answered.
        for _ in range(invocations - 1):
            if not refused.acquire(timeout=20):
                raise TimeoutError("another invocation is running the work too")
        return {"status": "dispatched"}

    start = threading.Barrier(invocations)

    def invocation(_: int) -> object:
        store = IdempotencyStore(table, boto3.session.Session().client("dynamodb"))
        start.wait(timeout=20)
        try:
            return store.run_once(ID, 60_000, work)
        except AlreadyInProgressError as error:
            return error
        finally:
            if threading.get_ident() not in winners:
                refused.release()

    with ThreadPoolExecutor(invocations) as pool:
        outcomes = list(pool.map(invocation, range(invocations)))

    assert len(winners) == 1
    assert sorted(type(o).__name__ for o in outcomes) == ["AlreadyInProgressError"] * 5 + ["dict"]


def test_failed_work_deletes_the_claim_so_the_redelivery_runs(store: IdempotencyStore, table: str) -> None:
    failing = Work(ConnectionError("Batch unreachable"))
    with pytest.raises(ConnectionError, match="Batch unreachable"):
        store.run_once(ID, 60_000, failing)
    assert item(table, ID) is None

    work = Work()
    assert store.run_once(ID, 60_000, work) == {"status": "dispatched", "run": 1}
    assert (failing.runs, work.runs) == (1, 1)


def powertools_layer(table: str, **configure: str) -> DynamoDBPersistenceLayer:
    layer = DynamoDBPersistenceLayer(table_name=table, boto3_client=boto3.client("dynamodb"))
    layer.configure(
        IdempotencyConfig(event_key_jmespath="idempotency_key", expires_after_seconds=TTL_SECONDS),
        **configure,
    )
    return layer


@pytest.mark.parametrize(
    ("configure", "prefix"),
    [
        pytest.param(
            {"function_name": "lambdas.dispatcher.service.dispatch_once"},
            lambda: function_prefix(dispatch_once),
            id="message",
        ),
        pytest.param({"key_prefix": "dispatcher.s3_object"}, lambda: OBJECT_RECORD_PREFIX, id="s3-object"),
    ],
)
def test_records_written_by_powertools_before_the_upgrade_still_deduplicate(
    table: str, monkeypatch: pytest.MonkeyPatch, configure: dict[str, str], prefix: Callable[[], str]
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "gpu-faces-dispatcher")
    old = powertools_layer(table, **configure)
    data = {"idempotency_key": "message_id:before-upgrade"}
    old.save_inprogress(data=data, remaining_time_in_millis=60_000)
    old.save_success(data=data, result={"status": "dispatched", "job_id": "j-1"})
    store = IdempotencyStore(table, boto3.client("dynamodb"))  # real time, as Powertools wrote it
    work = Work()

    assert store.run_once(record_id(prefix(), data["idempotency_key"]), 60_000, work) == {
        "status": "dispatched",
        "job_id": "j-1",
    }
    assert work.runs == 0

    # And back: what this module saves, Powertools reads (a rollback keeps deduplicating).
    again = {"idempotency_key": "message_id:after-upgrade"}
    store.run_once(record_id(prefix(), again["idempotency_key"]), 60_000, work)
    saved = old.get_record(data=again)
    assert saved is not None and saved.status == COMPLETED
    assert saved.response_json_as_dict() == {"status": "dispatched", "run": 1}


def test_delivery_in_progress_elsewhere_fails_transiently_and_submits_nothing(
    dispatch: Dispatcher, stack: Stack
) -> None:
    record = sns_record(
        {"trigger_type": "batch_job", "data": {"script_key": "jobs/cpu_report.py", "compute_type": "cpu"}},
        stack.notifications_topic_arn,
    )
    held = record_id(function_prefix(dispatch_once), f"message_id:{record['Sns']['MessageId']}")
    # Another invocation got the same delivery a moment ago and is still submitting it.
    assert (
        IdempotencyStore(dispatcher_config().idempotency_table, boto3.client("dynamodb")).claim(held, 60_000)
        is None
    )

    with pytest.raises(RetryableDispatchError, match=record["Sns"]["MessageId"]):
        dispatch(record)
    assert submitted_jobs(stack) == []
