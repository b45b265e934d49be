"""The dispatcher against moto over HTTP: SNS deliveries as AWS sends them become Batch jobs once."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from lambdas.common.aws import client
from lambdas.dispatcher.handler import lambda_handler
from lambdas.dispatcher.service import RetryableDispatchError
from tests.lambdas.conftest import Configure
from tests.lambdas.dispatching import Dispatcher, environment_of, submitted_jobs
from tests.lambdas.events import LambdaContext, sns_record
from tests.lambdas.resources import Stack, receive_all

SEED_GPU = {
    "trigger_type": "batch_job",
    "data": {
        "script_key": "jobs/gpu_processing.py",
        "compute_type": "gpu",
        "vcpus": 16,
        "memory": 65536,
        "gpus": 4,
    },
    "metadata": {"user": "alice", "project": "faces", "experiment": "exp-42"},
}
SEED_CPU = {
    "trigger_type": "batch_job",
    "data": {"script_key": "jobs/cpu_report.py", "compute_type": "cpu"},
    "metadata": {"user": "bob", "project": "faces", "experiment": "nightly"},
}


def dead_letters(stack: Stack) -> list[dict[str, Any]]:
    return receive_all(stack.dead_letter_queue_url)


def test_seed_gpu_message_submits_to_gpu_queue_with_overrides_and_environment(
    dispatch: Dispatcher, stack: Stack
) -> None:
    outcome = dispatch(SEED_GPU)["results"][0]

    assert outcome["status"] == "dispatched"
    name = outcome["result"]["job_name"]
    assert (
        name.startswith("gpu_processing-faces-exp-42-")
        and len(name) == len("gpu_processing-faces-exp-42-") + 12
    )
    (job,) = submitted_jobs(stack)
    assert (job["jobId"], job["jobName"]) == (outcome["result"]["job_id"], name)
    assert job["jobQueue"] == stack.gpu_queue
    assert job["jobDefinition"] == stack.script_definition_gpu
    assert environment_of(job) == {
        "ML_INPUT_BUCKET": stack.input_bucket,
        "ML_OUTPUT_BUCKET": stack.output_bucket,
        "OUTPUT_PREFIX": f"jobs/faces/exp-42/{name}/",
        "COMPUTE_TYPE": "gpu",
        "TRIGGER_USER": "alice",
        "TRIGGER_PROJECT": "faces",
        "TRIGGER_EXPERIMENT": "exp-42",
        "AWS_DEFAULT_REGION": "us-east-1",
        "SCRIPT_KEY": "jobs/gpu_processing.py",
    }
    assert dispatch.requirements(name) == [
        {"type": "VCPU", "value": "16"},
        {"type": "MEMORY", "value": "65536"},
        {"type": "GPU", "value": "4"},
    ]
    assert dead_letters(stack) == []


def test_cpu_message_uses_cpu_queue_and_cpu_defaults_without_gpu(dispatch: Dispatcher, stack: Stack) -> None:
    name = dispatch(SEED_CPU)["results"][0]["result"]["job_name"]

    (job,) = submitted_jobs(stack)
    assert job["jobQueue"] == stack.cpu_queue
    assert job["jobDefinition"] == stack.script_definition_cpu
    assert environment_of(job)["COMPUTE_TYPE"] == "cpu"
    assert dispatch.requirements(name) == [
        {"type": "VCPU", "value": "2"},
        {"type": "MEMORY", "value": "4096"},
    ]


def test_compute_type_defaults_to_gpu_with_configured_defaults(
    dispatch: Dispatcher, stack: Stack, configure: Configure
) -> None:
    configure("dispatcher", DEFAULT_GPU_VCPUS="8", DEFAULT_GPU_MEMORY="32768", DEFAULT_GPU_GPUS="2")
    message = {"trigger_type": "batch_job", "data": {"script_key": "jobs/gpu_processing.py"}}

    name = dispatch(message)["results"][0]["result"]["job_name"]

    (job,) = submitted_jobs(stack)
    assert job["jobQueue"] == stack.gpu_queue
    env = environment_of(job)
    assert (env["TRIGGER_USER"], env["TRIGGER_PROJECT"], env["TRIGGER_EXPERIMENT"]) == ("unknown",) * 3
    assert dispatch.requirements(name) == [
        {"type": "VCPU", "value": "8"},
        {"type": "MEMORY", "value": "32768"},
        {"type": "GPU", "value": "2"},
    ]


def test_duplicate_delivery_submits_once_and_returns_the_first_result(
    dispatch: Dispatcher, stack: Stack
) -> None:
    record = sns_record(
        SEED_GPU, stack.notifications_topic_arn, message_id="7d3c0e51-0d5f-5a2b-9a77-1f1b1b1b1b1b"
    )

    first = dispatch(record)
    second = dispatch(record)

    assert second == first
    assert len(submitted_jobs(stack)) == 1


def test_same_idempotency_key_in_different_messages_submits_once(dispatch: Dispatcher, stack: Stack) -> None:
    message = SEED_CPU | {"idempotency_key": "nightly-2026-11-23"}

    first = dispatch(message)["results"][0]
    second = dispatch(message)["results"][0]  # a new SNS MessageId: a republish, not a redelivery

    assert second["result"]["job_id"] == first["result"]["job_id"]
    assert len(submitted_jobs(stack)) == 1


def test_distinct_messages_get_distinct_jobs_and_output_prefixes(dispatch: Dispatcher, stack: Stack) -> None:
    dispatch(SEED_GPU)
    dispatch(SEED_GPU)

    jobs = submitted_jobs(stack)
    assert len(jobs) == 2
    assert len({environment_of(job)["OUTPUT_PREFIX"] for job in jobs}) == 2


def _bad(data: dict[str, Any]) -> dict[str, Any]:
    return {"trigger_type": "batch_job", "data": data, "metadata": {"user": "alice"}}


BAD_MESSAGES = [
    pytest.param("{not json", "InvalidJSON", "not JSON", id="not-json"),
    pytest.param('["a list"]', "SchemaViolation", "must be a JSON object", id="not-an-object"),
    pytest.param(
        {"trigger_type": "teleport", "data": {}}, "UnknownTrigger", "unknown trigger_type", id="unknown"
    ),
    pytest.param({"data": {}}, "SchemaViolation", "trigger_type is required", id="no-trigger"),
    pytest.param(
        _bad({"script_key": "jobs/gpu_processing.py", "gpus": 9}), "SchemaViolation", "gpus=9", id="gpus"
    ),
    pytest.param(
        _bad({"script_key": "jobs/gpu_processing.py", "vcpus": -2}), "SchemaViolation", "vcpus", id="neg"
    ),
    pytest.param(
        _bad({"script_key": "jobs/gpu_processing.py", "vcpus": 2.5}), "SchemaViolation", "integer", id="f"
    ),
    pytest.param(
        _bad({"script_key": "jobs/gpu_processing.py", "vcpus": "4"}), "SchemaViolation", "integer", id="s"
    ),
    pytest.param(
        _bad({"script_key": "jobs/gpu_processing.py", "memory": 256}), "SchemaViolation", "memory", id="m"
    ),
    pytest.param(
        _bad({"script_key": "jobs/x.py", "compute_type": "tpu"}), "SchemaViolation", "compute_type", id="c"
    ),
    pytest.param(
        _bad({"script_key": "jobs/cpu_report.py", "compute_type": "cpu", "gpus": 1}),
        "SchemaViolation",
        "gpus applies only",
        id="cpu-gpus",
    ),
    pytest.param(_bad({"script_key": "../secrets.py"}), "SchemaViolation", "'..'", id="dotdot"),
    pytest.param(_bad({"script_key": "/etc/passwd"}), "SchemaViolation", "relative key", id="absolute"),
    pytest.param(
        _bad({"script_key": "s3://other-bucket/x.py"}), "SchemaViolation", "not a URL", id="other-bucket"
    ),
    pytest.param(_bad({"script_key": "jobs/missing.py"}), "InputNotFound", "does not exist", id="missing"),
    pytest.param(
        _bad({"script_key": "jobs/x.py", "shell": "rm"}), "SchemaViolation", "unknown field", id="extra"
    ),
    pytest.param(_bad({"vcpus": 2}), "SchemaViolation", "script_key must be", id="no-script"),
    pytest.param(
        json.dumps(_bad({"script_key": "jobs/gpu_processing.py", "pad": "x" * 70_000})),
        "MessageTooLarge",
        "bytes",
        id="oversized",
    ),
]


@pytest.mark.parametrize(("message", "error_type", "reason_part"), BAD_MESSAGES)
def test_bad_message_is_dead_lettered_with_reason_and_not_retried(
    dispatch: Dispatcher, stack: Stack, message: Any, error_type: str, reason_part: str
) -> None:
    record = sns_record(message, stack.notifications_topic_arn)

    outcome = dispatch(record)["results"][0]  # returns: no exception, so Lambda does not retry

    assert outcome["status"] == "rejected"
    assert outcome["error_type"] == error_type
    (letter,) = dead_letters(stack)
    body = json.loads(letter["Body"])
    raw = record["Sns"]["Message"]
    assert body["function"] == "dispatcher"
    assert body["error_type"] == error_type
    assert body["message_id"] == record["Sns"]["MessageId"]
    assert reason_part in body["reason"]
    # Every one of these fits in the record whole (test_dispatcher_hostile covers the cut ones).
    assert (body["original"], body["original_truncated"]) == (raw, False)
    assert letter["MessageAttributes"]["reason"]["StringValue"] == body["reason"]
    assert letter["MessageAttributes"]["error_type"]["StringValue"] == error_type
    assert submitted_jobs(stack) == []


def test_records_of_one_event_are_processed_independently(dispatch: Dispatcher, stack: Stack) -> None:
    result = dispatch(SEED_GPU, "{broken", SEED_CPU)

    assert [item["status"] for item in result["results"]] == ["dispatched", "rejected", "dispatched"]
    assert len(submitted_jobs(stack)) == 2
    assert len(dead_letters(stack)) == 1


def test_transient_error_raises_for_a_retry_that_then_submits_once(
    dispatch: Dispatcher, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = client("batch")
    real_submit = batch.submit_job
    failures = iter([True])

    def flaky_submit(**request: Any) -> Any:
        if request["jobName"].startswith("cpu_report") and next(failures, False):
            raise ClientError(
                {
                    "Error": {"Code": "ServerException", "Message": "internal"},
                    "ResponseMetadata": {
                        "HTTPStatusCode": 500,
                        "RequestId": "flaky",
                        "HostId": "",
                        "HTTPHeaders": {},
                        "RetryAttempts": 0,
                    },
                },
                "SubmitJob",
            )
        return real_submit(**request)

    monkeypatch.setattr(batch, "submit_job", flaky_submit)
    records = [sns_record(m, stack.notifications_topic_arn) for m in (SEED_GPU, SEED_CPU)]

    with pytest.raises(RetryableDispatchError, match=records[1]["Sns"]["MessageId"]):
        dispatch(*records)
    assert len(submitted_jobs(stack)) == 1  # the GPU record went through
    assert dead_letters(stack) == []  # transient: not dead-lettered

    retried = dispatch(*records)  # Lambda's retry delivers the same event again

    assert [item["status"] for item in retried["results"]] == ["dispatched", "dispatched"]
    jobs = submitted_jobs(stack)
    assert sorted(environment_of(job)["COMPUTE_TYPE"] for job in jobs) == ["cpu", "gpu"]


def test_direct_invocation_dispatches_the_event_itself(
    stack: Stack, configure: Configure, context: Callable[..., LambdaContext]
) -> None:
    configure("dispatcher")
    boto3.client("s3").put_object(Bucket=stack.input_bucket, Key="jobs/cpu_report.py", Body=b"")
    invocation = context("dispatcher")

    first = lambda_handler(SEED_CPU, invocation)
    again = lambda_handler(SEED_CPU, invocation)  # Lambda's retry keeps the request id

    assert first["results"][0]["message_id"] == invocation.aws_request_id
    assert again == first
    assert len(submitted_jobs(stack)) == 1


def test_gpu_instance_message_invokes_the_controller_asynchronously(
    dispatch: Dispatcher, stack: Stack
) -> None:
    sent: list[dict[str, Any]] = []
    client("lambda").meta.events.register(
        "provide-client-params.lambda.Invoke", lambda params, **_: sent.append(dict(params))
    )
    message = {
        "trigger_type": "gpu_instance",
        "data": {"action": "start_and_process", "payload": {"files": ["image1.jpg"]}},
        "metadata": {"user": "alice", "project": "faces", "experiment": "e1"},
    }

    outcome = dispatch(message)["results"][0]

    assert outcome["result"] == {
        "controller": stack.controller_function_name,
        "action": "start_and_process",
        "status_code": 202,
    }
    (call,) = sent
    assert call["FunctionName"] == stack.controller_function_name
    assert call["InvocationType"] == "Event"
    assert json.loads(call["Payload"]) == {
        "action": "start_and_process",
        "payload": {"files": ["image1.jpg"]},
        "metadata": {"user": "alice", "project": "faces", "experiment": "e1"},
    }


@pytest.mark.parametrize(
    ("data", "reason_part"),
    [
        ({"action": "reboot"}, "action must be one of"),
        ({"action": "start_and_process", "payload": {}}, "files must be a list"),
        ({"action": "start_and_process", "payload": {"files": ["../x.jpg"]}}, "'..'"),
        ({"action": "stop", "payload": {"files": ["a.jpg"]}}, "unknown field"),
    ],
)
def test_invalid_gpu_instance_request_is_dead_lettered(
    dispatch: Dispatcher, stack: Stack, data: dict[str, Any], reason_part: str
) -> None:
    outcome = dispatch({"trigger_type": "gpu_instance", "data": data})["results"][0]

    assert outcome["status"] == "rejected"
    (letter,) = dead_letters(stack)
    assert reason_part in json.loads(letter["Body"])["reason"]


def test_redelivered_bad_message_is_dead_lettered_once(dispatch: Dispatcher, stack: Stack) -> None:
    record = sns_record("{broken", stack.notifications_topic_arn)

    first = dispatch(record)
    second = dispatch(record)

    assert second == first
    assert len(dead_letters(stack)) == 1


def test_keys_outside_the_readable_prefixes_are_refused_up_front(
    dispatch: Dispatcher, stack: Stack, configure: Configure
) -> None:
    """Terraform lets the dispatcher read only dispatcher_read_prefixes (INPUT_READ_PREFIXES): a key
    elsewhere would get AccessDenied in AWS and be retried as transient; it is the sender's fault."""
    configure("dispatcher", INPUT_READ_PREFIXES="jobs/,manifests/")
    s3 = boto3.client("s3")
    s3.put_object(Bucket=stack.input_bucket, Key="uploads/evil.py", Body=b"print('x')\n")
    s3.put_object(Bucket=stack.input_bucket, Key="elsewhere/run.jsonl", Body=b"a.jpg\n")
    script = {"trigger_type": "batch_job", "data": {"script_key": "uploads/evil.py"}}
    manifest = {"trigger_type": "face_embedding", "data": {"manifest_key": "elsewhere/run.jsonl"}}

    outcomes = dispatch(script, manifest, SEED_CPU)["results"]

    assert [item["status"] for item in outcomes] == ["rejected", "rejected", "dispatched"]
    reasons = [json.loads(letter["Body"]) for letter in dead_letters(stack)]
    assert {body["error_type"] for body in reasons} == {"InputNotReadable"}
    assert all("jobs/, manifests/" in body["reason"] for body in reasons), reasons
    assert len(submitted_jobs(stack)) == 1
