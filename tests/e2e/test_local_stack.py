"""`make run`'s stack end to end: every command of the README against the laptop.

The tests share one running stack (one terraform apply) and run in file order. Near the end: Ctrl-C
and a restart on the same state folder, `terraform destroy`, then SIGKILL of the stack and a new
start on the same ports, which leaves a running stack for the modules after this one."""

from __future__ import annotations

import base64
import io
import json
import re
import signal
import socket
import time
from pathlib import Path
from typing import Any

import boto3
import httpx
import pyarrow.parquet as pq
import pytest

from local_stack.processes import marked_processes
from tests.batch.conftest import face_images
from tests.e2e.conftest import (
    AUTO_SHUTDOWN_IDLE_TIME,
    REPO,
    LocalStack,
    names_from_outputs,
    terraform_outputs,
    wait_for,
)
from tests.support.images import blank_jpeg

pytestmark = pytest.mark.slow

IMAGES = face_images()
# The seed's messages (examples/README.md).
SEED_GPU = {
    "trigger_type": "batch_job",
    "data": {"script_key": "jobs/gpu_processing.py", "compute_type": "gpu"},
    "metadata": {"user": "alice", "project": "faces", "experiment": "exp-42"},
}
SEED_CPU = {
    "trigger_type": "batch_job",
    "data": {"script_key": "jobs/cpu_processing.py", "compute_type": "cpu", "vcpus": 2, "memory": 4096},
    "metadata": {"user": "alice", "project": "faces", "experiment": "stats-1"},
}
FAILING_SCRIPT = "import sys\nprint('about to fail', flush=True)\nsys.exit(3)\n"
HELLO_SCRIPT = (
    "import os, pathlib\n"
    "pathlib.Path(os.environ['OUTPUT_DIR'], 'hello.txt').write_text(os.environ['AWS_BATCH_JOB_ID'])\n"
)


def upload(stack: LocalStack, tmp_path: Path, key: str, data: bytes) -> None:
    """`aws s3 cp <file> s3://<input bucket>/<key>`, as a user uploads."""
    local = tmp_path / key.replace("/", "_")
    local.write_bytes(data)
    stack.cli.run("s3", "cp", str(local), f"s3://{stack.input_bucket}/{key}")


def output_keys(stack: LocalStack, prefix: str) -> list[str]:
    listing = stack.cli.run("s3", "ls", f"s3://{stack.output_bucket}/{prefix}", "--recursive").stdout
    return sorted(line.split()[-1] for line in listing.splitlines() if line.strip())


def output_object(stack: LocalStack, key: str, tmp_path: Path) -> bytes:
    local = tmp_path / key.replace("/", "_")
    stack.cli.run("s3", "cp", f"s3://{stack.output_bucket}/{key}", str(local))
    return local.read_bytes()


def body_field(notification: dict[str, Any], label: str) -> str:
    match = re.search(rf"^{label}:\s+(.*)$", notification["Message"], re.MULTILINE)
    assert match, notification["Message"]
    return match.group(1).strip()


def test_resources_have_terraform_names_and_the_functions_are_listed(local_stack: LocalStack) -> None:
    buckets = local_stack.cli.run("s3", "ls").stdout
    assert local_stack.input_bucket in buckets and local_stack.output_bucket in buckets
    functions = local_stack.cli.json("lambda", "list-functions", endpoint=local_stack.process.lambda_url)
    listed = {f["FunctionName"]: f for f in functions["Functions"]}
    assert set(listed) == {
        local_stack.names[f"{key}_function"]
        for key in ("dispatcher", "controller", "monitor", "idle_stopper")
    }
    controller = listed[local_stack.controller]["Environment"]["Variables"]
    assert controller["APP_URL_OVERRIDE"] == local_stack.process.app_url
    assert controller["API_KEY_PARAMETER"] == local_stack.names["api_key_parameter"]
    # The stack starts with the GPU instance stopped, so nothing answers on the app's port.
    assert local_stack.app_refuses()


def test_unknown_function_and_function_errors_answer_as_lambda_does(local_stack: LocalStack) -> None:
    missing = local_stack.cli.run(
        "lambda", "invoke", "--function-name", "nope", "--payload", "{}", "/dev/null",
        endpoint=local_stack.process.lambda_url, check=False,
    )  # fmt: skip
    assert missing.returncode != 0 and "ResourceNotFoundException" in missing.stderr

    answer, error = local_stack.cli.invoke(local_stack.controller, {"action": "reboot"}, "--log-type", "Tail")

    assert answer["FunctionError"] == "Unhandled"
    assert error["errorType"] == "InvalidMessageError"
    assert "request.action must be one of" in error["errorMessage"] and error["stackTrace"]
    assert "REPORT RequestId:" in base64.b64decode(answer["LogResult"]).decode()


def test_upload_then_start_and_process_then_search(local_stack: LocalStack, tmp_path: Path) -> None:
    upload(local_stack, tmp_path, "images/a.jpg", IMAGES["a_original.jpg"])
    upload(local_stack, tmp_path, "images/b.jpg", IMAGES["b_hflip.jpg"])

    answer, result = local_stack.cli.invoke(
        local_stack.controller,
        {"action": "start_and_process", "payload": {"files": ["images/a.jpg", "images/b.jpg"]}},
    )

    assert answer["StatusCode"] == 200 and "FunctionError" not in answer, result
    assert (result["previous_state"], result["state"], result["http_status"]) == ("stopped", "running", 200)
    assert [r["storage_key"] for r in result["results"]] == ["images/a.jpg", "images/b.jpg"]
    faces = {face["face_id"] for r in result["results"] for face in r["faces"]}
    assert len(faces) == 12 and all(r["indexed"] for r in result["results"])
    with local_stack.app() as app:
        search = app.post("/search", files={"file": ("a.jpg", IMAGES["a_original.jpg"], "image/jpeg")})
    assert search.status_code == 200, search.text
    best = {query["matches"][0]["face_id"] for query in search.json()["queries"]}
    assert len(best) == 6 and best <= faces


def test_seed_jobs_run_and_notify_and_a_failing_script_fails(local_stack: LocalStack, tmp_path: Path) -> None:
    for name in ("gpu_processing.py", "cpu_processing.py"):
        upload(local_stack, tmp_path, f"jobs/{name}", (REPO / "examples" / name).read_bytes())
    upload(local_stack, tmp_path, "jobs/fail.py", FAILING_SCRIPT.encode())
    topic = local_stack.topic_arn("trigger_topic")
    failing = {
        "trigger_type": "batch_job",
        "data": {"script_key": "jobs/fail.py", "compute_type": "cpu"},
        "metadata": {"user": "bob", "project": "faces", "experiment": "broken"},
    }
    for message in (SEED_GPU, SEED_CPU, failing):
        local_stack.cli.publish(topic, message)

    gpu = local_stack.notification("[SUCCEEDED] Batch job gpu_processing-faces-exp-42-")
    cpu = local_stack.notification("[SUCCEEDED] Batch job cpu_processing-faces-stats-1-")
    failed = local_stack.notification("[FAILED] Batch job fail-faces-broken-")

    assert gpu["MessageAttributes"]["job_queue"]["Value"] == local_stack.names["gpu_job_queue"]
    assert cpu["MessageAttributes"]["job_queue"]["Value"] == local_stack.names["cpu_job_queue"]
    gpu_prefix = body_field(gpu, "Output").removeprefix(f"s3://{local_stack.output_bucket}/")
    cpu_prefix = body_field(cpu, "Output").removeprefix(f"s3://{local_stack.output_bucket}/")
    assert gpu_prefix.startswith("jobs/faces/exp-42/gpu_processing-faces-exp-42-")
    assert {"faces.csv", "embeddings.npz", "summary.json", "_job/result.json"} <= {
        key.removeprefix(gpu_prefix) for key in output_keys(local_stack, gpu_prefix)
    }
    assert {"image_stats.csv", "summary.json"} <= {
        key.removeprefix(cpu_prefix) for key in output_keys(local_stack, cpu_prefix)
    }
    summary = json.loads(output_object(local_stack, f"{gpu_prefix}summary.json", tmp_path))
    assert (summary["images"], summary["faces"]) == (2, 12)  # images/a.jpg and images/b.jpg

    assert failed["MessageAttributes"]["status"]["Value"] == "FAILED"
    assert "exit code 3" in failed["Message"] and "User:        bob" in failed["Message"]
    stream = body_field(failed, "Log stream")
    events = local_stack.cli.json(
        "logs",
        "get-log-events",
        "--log-group-name",
        local_stack.names["batch_log_group"],
        "--log-stream-name",
        stream,
    )["events"]
    assert any("about to fail" in event["message"] for event in events)


def test_face_embedding_array_job_indexes_every_face(local_stack: LocalStack, tmp_path: Path) -> None:
    for key, data in (
        ("bulk/c.jpg", IMAGES["c_small.JPG"]),
        ("bulk/d.jpg", IMAGES["d_q40.jpeg"]),
        ("bulk/e.jpg", blank_jpeg(seed=7)),
    ):
        upload(local_stack, tmp_path, key, data)
    message = {
        "trigger_type": "face_embedding",
        "data": {"prefix": "bulk/", "compute_type": "cpu", "images_per_child": 2, "collection": "bulk"},
        "metadata": {"user": "carol", "project": "faces", "experiment": "bulk-1"},
    }
    local_stack.cli.publish(local_stack.topic_arn("trigger_topic"), message)

    done = local_stack.notification("[SUCCEEDED] Batch job embed-faces-bulk-1-")

    assert body_field(done, "Array size") == "2"
    (job,) = [job for job in local_stack.jobs() if job["jobName"].startswith("embed-faces-bulk-1-")]
    assert [run["status"] for run in job["runs"]] == ["SUCCEEDED", "SUCCEEDED"]
    assert [run["job_id"] for run in job["runs"]] == [f"{job['jobId']}:0", f"{job['jobId']}:1"]
    prefix = body_field(done, "Output").removeprefix(f"s3://{local_stack.output_bucket}/")
    face_ids = [
        face_id
        for index in (0, 1)
        for face_id in pq.read_table(
            io.BytesIO(output_object(local_stack, f"{prefix}results-{index}.parquet", tmp_path))
        )
        .column("face_id")
        .to_pylist()
    ]
    assert len(face_ids) == 12  # two group photos of six, and a blank image
    local_stack.start_instance()
    with local_stack.app() as app:
        for face_id in face_ids:
            face = app.get(f"/faces/{face_id}")
            assert face.status_code == 200, face.text
            assert face.json()["collection"] == "bulk"
    # The monitor reports the array once, for the parent; the children's events are skipped.
    assert len(local_stack.drain_notifications("[SUCCEEDED] Batch job embed-faces-bulk-1-")) == 1
    # Then the materialize job (it depends on the array): every face of every shard once, with people.
    local_stack.notification("[SUCCEEDED] Batch job materialize-faces-bulk-1-")
    final = pq.read_table(io.BytesIO(output_object(local_stack, f"{prefix}final.parquet", tmp_path)))
    assert final.column("face_id").to_pylist() == face_ids
    # Each of the six people has two faces here, fewer than PEOPLE_MIN_FACES=3: all still wait.
    assert final.column("person_id").null_count == final.num_rows == 12


def test_bad_messages_are_dead_lettered_and_duplicates_run_once(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    topic = local_stack.topic_arn("trigger_topic")
    upload(local_stack, tmp_path, "jobs/hello.py", HELLO_SCRIPT.encode())
    not_json = local_stack.cli.publish(topic, "this is not json")
    too_many_gpus = {"trigger_type": "batch_job", "data": {"script_key": "jobs/hello.py", "gpus": 9}}
    local_stack.cli.publish(topic, too_many_gpus)
    duplicate = {
        "trigger_type": "batch_job",
        "data": {"script_key": "jobs/hello.py", "compute_type": "cpu"},
        "metadata": {"user": "dave", "project": "faces", "experiment": "dup"},
        "idempotency_key": "hello-once",
    }
    local_stack.cli.publish(topic, duplicate)
    local_stack.cli.publish(topic, duplicate)

    dead: list[dict[str, Any]] = []

    def two_dead_letters() -> bool:
        dead.extend(local_stack.cli.receive(local_stack.queue_url("trigger_dlq")))
        return len(dead) >= 2

    wait_for(
        two_dead_letters,
        60,
        "two dead letters",
    )
    by_type = {m["MessageAttributes"]["error_type"]["StringValue"]: m for m in dead}
    assert set(by_type) == {"InvalidJSON", "SchemaViolation"}
    invalid = json.loads(by_type["InvalidJSON"]["Body"])
    assert (invalid["message_id"], invalid["original"]) == (not_json, "this is not json")
    assert invalid["reason"].startswith("message is not JSON")
    assert by_type["SchemaViolation"]["MessageAttributes"]["reason"]["StringValue"] == (
        "data.gpus=9 is outside the allowed range 1..8"
    )

    local_stack.notification("[SUCCEEDED] Batch job hello-faces-dup-")
    submitted = local_stack.cli.json("batch", "list-jobs", "--job-queue", local_stack.names["cpu_job_queue"])
    assert [
        job["jobName"][:16] for job in submitted["jobSummaryList"] if job["jobName"].startswith("hello-")
    ] == ["hello-faces-dup-"]
    ran = [job for job in local_stack.jobs() if job["jobName"].startswith("hello-faces-dup-")]
    assert len(ran) == 1 and ran[0]["status"] == "SUCCEEDED"
    prefix = ran[0]["environment"]["OUTPUT_PREFIX"]
    assert output_object(local_stack, f"{prefix}hello.txt", tmp_path).decode() == ran[0]["jobId"]


def test_a_failing_asynchronous_event_is_retried_then_dead_lettered(local_stack: LocalStack) -> None:
    broken = {"Records": [{"EventSource": "aws:sns"}]}  # no "Sns": the dispatcher's handler raises

    answer, _ = local_stack.cli.invoke(
        local_stack.names["dispatcher_function"], broken, "--invocation-type", "Event"
    )

    assert answer["StatusCode"] == 202
    (dead,) = wait_for(
        lambda: local_stack.cli.receive(local_stack.queue_url("trigger_dlq"), wait=2), 60, "the failed event"
    )
    assert json.loads(dead["Body"]) == broken
    attributes = {name: value["StringValue"] for name, value in dead["MessageAttributes"].items()}
    assert set(attributes) == {"RequestID", "ErrorCode", "ErrorMessage"}
    # Lambda's two retries of an asynchronous event keep its request id: one id, three attempts.
    attempts = [
        line for line in local_stack.process.lines if attributes["RequestID"] in line and "START" in line
    ]
    assert len(attempts) == 3


def test_stop_and_the_idle_stopper_stop_the_instance_and_the_app_refuses_work(
    local_stack: LocalStack,
) -> None:
    local_stack.start_instance()

    answer, stopped = local_stack.cli.invoke(local_stack.controller, {"action": "stop"})

    assert "FunctionError" not in answer, stopped
    assert (stopped["previous_state"], stopped["state"]) == ("running", "stopped")
    wait_for(local_stack.app_refuses, 30, "the app to stop")
    with local_stack.app() as app, pytest.raises(httpx.ConnectError):
        app.post("/process", json={"files": ["images/a.jpg"]})

    idle_stops = len(local_stack.drain_notifications("GPU instance "))
    # Started again through the trigger topic: dispatcher -> InvokeFunction(Event) -> controller.
    local_stack.cli.publish(
        local_stack.topic_arn("trigger_topic"), {"trigger_type": "gpu_instance", "data": {"action": "start"}}
    )
    wait_for(local_stack.app_ready, 90, "the app to be ready")
    with local_stack.app() as app:
        assert app.post("/process", json={"files": ["images/a.jpg"]}).status_code == 200
    # No more work: after AUTO_SHUTDOWN_IDLE_TIME the scheduled idle stopper stops the instance.
    wait_for(local_stack.app_refuses, AUTO_SHUTDOWN_IDLE_TIME + 30, "the idle stopper to stop the app")
    notes = wait_for(
        lambda: local_stack.drain_notifications("GPU instance ")[idle_stops:],
        30,
        "the idle stop notification",
    )
    assert notes[0]["MessageAttributes"]["event"]["Value"] == "idle_stop"
    assert "idle for" in notes[0]["Message"]
    _, status = local_stack.cli.invoke(local_stack.controller, {"action": "status"})
    assert status["state"] == "stopped"


def test_every_resource_is_terraforms_and_the_functions_run_with_its_roles(local_stack: LocalStack) -> None:
    state = local_stack.terraform().state_list()
    assert "terraform apply: every resource created in" in local_stack.process.output
    for address in (
        "module.ec2_gpu.aws_instance.this",
        'module.lambda.aws_lambda_function.this["dispatcher"]',
        "module.lambda.aws_cloudwatch_event_rule.idle_check",
        "module.s3.aws_s3_bucket_notification.input[0]",
        'module.batch.aws_batch_compute_environment.this["gpu"]',
        "module.sns.aws_sns_topic_subscription.dispatcher",
    ):
        assert address in state, address
    functions = local_stack.cli.json("lambda", "list-functions", endpoint=local_stack.process.lambda_url)
    roles = {f["FunctionName"]: f["Role"] for f in functions["Functions"]}
    # What moto's Lambda holds is what Terraform created, and what the host runs.
    created = local_stack.cli.json("lambda", "list-functions")["Functions"]
    assert roles == {f["FunctionName"]: f["Role"] for f in created}


def test_delete_of_an_image_works_with_the_instance_roles_permissions(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    local_stack.start_instance()
    with local_stack.app() as app:
        stored = app.post(
            "/upload-images/", files=[("files", ("del.jpg", IMAGES["a_original.jpg"], "image/jpeg"))]
        )
        assert stored.status_code == 200, stored.text
        image_id = stored.json()["results"][0]["image_id"]
        key = stored.json()["results"][0]["storage_key"]

        deleted = app.delete(f"/images/{image_id}")

        assert deleted.status_code == 200, deleted.text
        assert app.get(f"/images/{image_id}").status_code == 404
    listing = local_stack.cli.run("s3", "ls", f"s3://{local_stack.input_bucket}/{key}", check=False).stdout
    assert listing.strip() == ""
    # The app's output is in the instance's log group, as the container's awslogs driver sends it.
    group = local_stack.names["gpu_instance_log_group"]
    events = wait_for(
        lambda: [
            event
            for event in local_stack.cli.json("logs", "filter-log-events", "--log-group-name", group)[
                "events"
            ]
            if f"DELETE /images/{image_id}" in event["message"]
        ],
        30,
        "the app's log in its log group",
    )
    # The stream the user data names: <instance id>/<container name>.
    assert events[0]["logStreamName"].startswith(f"{local_stack.names['gpu_instance_id']}/")


def test_start_and_process_takes_more_files_than_one_app_request(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    count = 130  # the app takes 100 files per request
    folder = tmp_path / "many"
    folder.mkdir()
    for index in range(count):
        (folder / f"blank-{index:03d}.jpg").write_bytes(blank_jpeg(seed=index))
    local_stack.cli.run("s3", "cp", str(folder), f"s3://{local_stack.input_bucket}/many/", "--recursive")
    files = [f"many/blank-{index:03d}.jpg" for index in range(count)]

    answer, result = local_stack.cli.invoke(
        local_stack.controller, {"action": "start_and_process", "payload": {"files": files}}
    )

    assert "FunctionError" not in answer, result
    assert sorted(r["storage_key"] for r in result["results"]) == files


def test_an_upload_under_the_event_prefix_reaches_the_dispatcher(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    group = f"/aws/lambda/{local_stack.names['dispatcher_function']}"

    def invocations() -> int:
        events = local_stack.cli.json("logs", "filter-log-events", "--log-group-name", group)["events"]
        return sum(event["message"].startswith("START RequestId:") for event in events)

    before = invocations()
    # enable_s3_event_notifications: S3 notification -> S3 event queue -> the dispatcher's mapping.
    upload(local_stack, tmp_path, "incoming/event.jpg", IMAGES["a_original.jpg"])

    wait_for(lambda: invocations() > before, 60, "the S3 event to invoke the dispatcher")


def test_batch_list_jobs_shows_running_jobs_and_terminate_job_stops_one(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    upload(
        local_stack,
        tmp_path,
        "jobs/sleep.py",
        b"import time\nprint('sleeping', flush=True)\ntime.sleep(600)\n",
    )
    message = {
        "trigger_type": "batch_job",
        "data": {"script_key": "jobs/sleep.py", "compute_type": "cpu"},
        "metadata": {"user": "erin", "project": "faces", "experiment": "sleepy"},
    }
    local_stack.cli.publish(local_stack.topic_arn("trigger_topic"), message)
    queue = local_stack.names["cpu_job_queue"]

    def running() -> list[dict[str, Any]]:
        listed = local_stack.cli.json("batch", "list-jobs", "--job-queue", queue, "--job-status", "RUNNING")
        return [job for job in listed["jobSummaryList"] if job["jobName"].startswith("sleep-faces-sleepy-")]

    (job,) = wait_for(running, 90, "the job to be RUNNING in list-jobs")
    local_stack.cli.run("batch", "terminate-job", "--job-id", job["jobId"], "--reason", "stopped by hand")

    failed = local_stack.notification("[FAILED] Batch job sleep-faces-sleepy-", timeout=60)
    assert "stopped by hand" in failed["Message"]
    assert not running()
    (described,) = local_stack.cli.json("batch", "describe-jobs", "--jobs", job["jobId"])["jobs"]
    assert (described["status"], described["statusReason"]) == ("FAILED", "stopped by hand")


def test_the_functions_logs_are_in_their_log_groups_and_both_dlqs_answer(local_stack: LocalStack) -> None:
    monitor = local_stack.names["monitor_function"]
    broken = {"detail-type": "Batch Job State Change", "detail": 42}  # the handler cannot read it
    answer, _ = local_stack.cli.invoke(monitor, broken, "--invocation-type", "Event")
    assert answer["StatusCode"] == 202

    (dead,) = wait_for(
        lambda: local_stack.cli.receive(local_stack.queue_url("monitor_dlq"), wait=2),
        60,
        "the monitor's dead letter",
    )
    assert json.loads(dead["Body"]) == broken
    events = local_stack.cli.json("logs", "filter-log-events", "--log-group-name", f"/aws/lambda/{monitor}")[
        "events"
    ]
    request_id = dead["MessageAttributes"]["RequestID"]["StringValue"]
    assert any(event["message"].startswith(f"START RequestId: {request_id}") for event in events)
    streams = local_stack.cli.json(
        "logs", "describe-log-streams", "--log-group-name", f"/aws/lambda/{monitor}"
    )
    assert all("[$LATEST]" in stream["logStreamName"] for stream in streams["logStreams"])


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_ctrl_c_leaves_nothing_behind_and_a_restart_keeps_the_state(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    process = local_stack.process
    upload(local_stack, tmp_path, "images/kept.webp", IMAGES["g_q70.webp"])
    _, result = local_stack.cli.invoke(
        local_stack.controller, {"action": "start_and_process", "payload": {"files": ["images/kept.webp"]}}
    )
    kept_faces = [face["face_id"] for face in result["results"][0]["faces"]]
    assert kept_faces
    run_id = process.run_id()
    assert len(marked_processes(run_id)) >= 3  # moto, the app, the function containers at least

    assert process.interrupt() == 0

    assert marked_processes(run_id) == [], process.output
    assert all(_refused(port) for port in (process.moto_port, process.lambda_port, process.app_port))
    assert process.lines[-1].endswith("stopped")

    process.start()

    assert process.run_id() != run_id
    # A new apply into a fresh moto: the same names, a new instance id.
    local_stack.names.update(names_from_outputs(terraform_outputs(process.state_dir), process.moto_url))
    listing = local_stack.cli.run("s3", "ls", f"s3://{local_stack.input_bucket}/images/").stdout
    assert "kept.webp" in listing.split()  # the buckets came back from the state folder
    local_stack.start_instance()
    with local_stack.app() as app:
        for face_id in kept_faces:
            assert app.get(f"/faces/{face_id}").status_code == 200


def test_terraform_destroy_leaves_nothing_in_state(local_stack: LocalStack) -> None:
    terraform = local_stack.terraform()
    # As in AWS (s3_force_destroy is off): stop the access logs (they keep arriving in the logs bucket
    # while the others are emptied), then empty the versioned buckets, then destroy.
    terraform.destroy("module.s3.aws_s3_bucket_logging.this")
    s3 = boto3.resource(
        "s3",
        endpoint_url=local_stack.process.moto_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    for bucket in s3.buckets.all():
        bucket.object_versions.delete()

    terraform.destroy()

    assert terraform.state_list() == []
    assert local_stack.cli.run("s3", "ls").stdout.strip() == ""


def test_a_killed_stack_leaves_no_process_and_the_next_start_works(local_stack: LocalStack) -> None:
    process = local_stack.process
    assert process.process is not None
    run_id = process.run_id()
    assert marked_processes(run_id)

    process.process.send_signal(signal.SIGKILL)  # no clean stop: the watchdog must end the children
    process.process.wait(10)

    deadline = time.monotonic() + 30
    while marked_processes(run_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marked_processes(run_id) == []
    assert all(_refused(port) for port in (process.moto_port, process.lambda_port, process.app_port))

    # What the killed stack used to block: the next start, on the same ports and state folder. It
    # also leaves a running stack (fresh from terraform apply) to the tests after this module.
    process.start()

    assert process.run_id() != run_id
    local_stack.names.update(names_from_outputs(terraform_outputs(process.state_dir), process.moto_url))
