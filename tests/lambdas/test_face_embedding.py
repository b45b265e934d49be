"""`face_embedding` messages become array jobs of the embedding image, sized by image count."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from tests.lambdas.conftest import Configure
from tests.lambdas.dispatching import Dispatcher, environment_of, submitted_jobs
from tests.lambdas.resources import Stack, receive_all


def put(stack: Stack, *keys: str, body: bytes = b"\xff\xd8\xff") -> None:
    s3 = boto3.client("s3")
    for key in keys:
        s3.put_object(Bucket=stack.input_bucket, Key=key, Body=body)


def embedding_and_materialize(stack: Stack) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The embedding job and the materialize job submitted after it (None when not asked for)."""
    jobs = submitted_jobs(stack)
    (embedding,) = [job for job in jobs if "IMAGE_COUNT" in environment_of(job)]
    rest = [job for job in jobs if job is not embedding]
    assert len(rest) <= 1
    return embedding, (rest[0] if rest else None)


def embed(dispatch: Dispatcher, data: dict[str, Any]) -> dict[str, Any]:
    message = {
        "trigger_type": "face_embedding",
        "data": data,
        "metadata": {"user": "carol", "project": "album", "experiment": "run-1"},
    }
    return dict(dispatch(message)["results"][0])


def test_prefix_becomes_array_job_sized_by_image_count(dispatch: Dispatcher, stack: Stack) -> None:
    put(stack, *(f"photos/{n}.jpg" for n in range(4)), "photos/5.PNG", "photos/deep/6.webp")
    put(stack, "photos/notes.txt", "photos/raw.cr2", "other/7.jpg")

    outcome = embed(dispatch, {"prefix": "photos/", "images_per_child": 2, "collection": "family"})

    result = outcome["result"]
    assert (result["image_count"], result["array_size"]) == (6, 3)
    job, _ = embedding_and_materialize(stack)
    assert job["jobQueue"] == stack.gpu_queue
    assert job["jobDefinition"] == stack.embed_definition_gpu
    assert job["arrayProperties"]["size"] == 3
    name = result["job_name"]
    assert name.startswith("embed-album-run-1-")
    assert environment_of(job) == {
        "ML_INPUT_BUCKET": stack.input_bucket,
        "ML_OUTPUT_BUCKET": stack.output_bucket,
        "OUTPUT_PREFIX": f"jobs/album/run-1/{name}/",
        "COMPUTE_TYPE": "gpu",
        "TRIGGER_USER": "carol",
        "TRIGGER_PROJECT": "album",
        "TRIGGER_EXPERIMENT": "run-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "COLLECTION": "family",
        "IMAGE_COUNT": "6",
        "IMAGES_PER_CHILD": "2",
        "INPUT_PREFIX": "photos/",
    }
    assert dispatch.requirements(name) == [
        {"type": "VCPU", "value": "4"},
        {"type": "MEMORY", "value": "16384"},
        {"type": "GPU", "value": "1"},
    ]


def test_manifest_within_one_child_is_a_plain_job_on_cpu(dispatch: Dispatcher, stack: Stack) -> None:
    lines = ['{"key": "photos/a.jpg", "person": "x"}', "", "photos/b.jpg", '{"key": "photos/c.png"}']
    put(stack, "manifests/run.jsonl", body="\n".join(lines).encode())

    outcome = embed(dispatch, {"manifest_key": "manifests/run.jsonl", "compute_type": "cpu", "vcpus": 8})

    result = outcome["result"]
    assert (result["image_count"], result["array_size"]) == (3, None)
    job, _ = embedding_and_materialize(stack)
    assert "arrayProperties" not in job
    assert job["jobQueue"] == stack.cpu_queue
    assert job["jobDefinition"] == stack.embed_definition_cpu
    env = environment_of(job)
    assert env["MANIFEST_KEY"] == "manifests/run.jsonl"
    assert "INPUT_PREFIX" not in env
    assert (env["IMAGE_COUNT"], env["IMAGES_PER_CHILD"], env["COLLECTION"]) == ("3", "1000", "default")
    assert dispatch.requirements(result["job_name"]) == [
        {"type": "VCPU", "value": "8"},
        {"type": "MEMORY", "value": "4096"},
    ]


def test_images_per_child_default_comes_from_the_environment(
    dispatch: Dispatcher, stack: Stack, configure: Configure
) -> None:
    configure("dispatcher", IMAGES_PER_CHILD="2")
    put(stack, *(f"set/{n}.jpeg" for n in range(5)))

    result = embed(dispatch, {"prefix": "set/"})["result"]

    assert result["array_size"] == 3
    job, _ = embedding_and_materialize(stack)
    assert environment_of(job)["IMAGES_PER_CHILD"] == "2"


@pytest.mark.parametrize(
    ("data", "error_type", "reason_part"),
    [
        ({"prefix": "empty/"}, "NoImages", "no images"),
        ({"manifest_key": "manifests/missing.jsonl"}, "InputNotFound", "does not exist"),
        ({"manifest_key": "manifests/bad.jsonl"}, "InvalidManifest", "line 2"),
        ({"prefix": "photos/", "manifest_key": "m.jsonl"}, "SchemaViolation", "exactly one"),
        ({}, "SchemaViolation", "exactly one"),
        ({"prefix": "../photos/"}, "SchemaViolation", "'..'"),
        ({"prefix": "photos/", "images_per_child": 0}, "SchemaViolation", "images_per_child"),
    ],
)
def test_unusable_input_is_dead_lettered(
    dispatch: Dispatcher, stack: Stack, data: dict[str, Any], error_type: str, reason_part: str
) -> None:
    put(stack, "empty/readme.txt")
    put(stack, "manifests/bad.jsonl", body=b'{"key": "a.jpg"}\n{"file": "b.jpg"}\n')

    outcome = embed(dispatch, data)

    assert (outcome["status"], outcome["error_type"]) == ("rejected", error_type)
    (letter,) = receive_all(stack.dead_letter_queue_url)
    assert reason_part in json.loads(letter["Body"])["reason"]
    assert submitted_jobs(stack) == []


def test_materialize_job_depends_on_the_array_and_is_on_by_default(
    dispatch: Dispatcher, stack: Stack
) -> None:
    put(stack, *(f"album/{n}.jpg" for n in range(5)))

    result = embed(dispatch, {"prefix": "album/", "images_per_child": 2, "collection": "trip"})["result"]

    job, final = embedding_and_materialize(stack)
    assert final is not None and result["materialize"] == {
        "job_id": final["jobId"],
        "job_name": final["jobName"],
        "depends_on": job["jobId"],
    }
    assert final["dependsOn"] == [{"jobId": job["jobId"]}]  # every child of the array, once succeeded
    assert final["container"]["command"] == ["python", "-m", "gpu_app.batch", "materialize"]
    assert (final["jobQueue"], final["jobDefinition"]) == (stack.cpu_queue, stack.embed_definition_cpu)
    env = environment_of(final)
    assert env["OUTPUT_PREFIX"] == environment_of(job)["OUTPUT_PREFIX"]  # it reads the shards' outputs
    assert (env["ARRAY_SIZE"], env["COMPUTE_TYPE"]) == ("3", "cpu")
    assert "COLLECTION" not in env  # the merge does not read it (contract/batch_job.py)


def test_materialize_can_be_turned_off_per_message(dispatch: Dispatcher, stack: Stack) -> None:
    put(stack, "solo/a.jpg")
    result = embed(dispatch, {"prefix": "solo/", "materialize": False})["result"]
    assert result["materialize"] is None
    assert embedding_and_materialize(stack)[1] is None
    refused = dispatch(
        {"trigger_type": "face_embedding", "data": {"prefix": "solo/", "materialize": "yes"}, "metadata": {}}
    )
    assert "materialize must be true or false" in json.dumps(refused)
