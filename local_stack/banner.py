"""What `make run` prints once the stack is up: endpoints, resource names and copy-paste commands."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

from local_stack.local_aws import FAKE_CREDENTIALS, REGION
from local_stack.resources import Resources


def _json(value: Any) -> str:
    return shlex.quote(json.dumps(value, separators=(",", ":")))


def banner(
    resources: Resources,
    *,
    moto_url: str,
    lambda_url: str,
    app_url: str | None,
    state_dir: Path,
    idle_check_seconds: float,
    auto_shutdown_idle_time: int,
) -> str:
    functions = resources.function_names
    queues = resources.job_queues
    aws = f"aws --endpoint-url {moto_url}"
    # AWS CLI v1 (the pinned one) sends --payload as is; v2 needs --cli-binary-format raw-in-base64-out.
    invoke = (
        f"aws --endpoint-url {lambda_url} lambda invoke --function-name {functions['controller']} --payload"
    )
    inbox = resources.notifications_local_queue_url
    gpu_job = {
        "trigger_type": "batch_job",
        "data": {"script_key": "jobs/gpu_processing.py", "compute_type": "gpu"},
        "metadata": {"user": "alice", "project": "faces", "experiment": "exp-42"},
    }
    cpu_job = {
        "trigger_type": "batch_job",
        "data": {"script_key": "jobs/cpu_processing.py", "compute_type": "cpu", "vcpus": 2, "memory": 4096},
        "metadata": {"user": "alice", "project": "faces", "experiment": "stats-1"},
    }
    embed_job = {
        "trigger_type": "face_embedding",
        "data": {"prefix": "images/", "compute_type": "cpu", "images_per_child": 2},
        "metadata": {"user": "alice", "project": "faces", "experiment": "bulk-1"},
    }
    process = {"action": "start_and_process", "payload": {"files": ["images/photo1.jpg"]}}
    exports = " ".join(f"{name}={value}" for name, value in FAKE_CREDENTIALS.items())
    app = app_url or "(not started: --no-app)"
    lines = [
        "",
        "=" * 100,
        f"Local stack on 127.0.0.1, state in {state_dir}",
        "",
        "Endpoints",
        f"  local AWS (moto)       {moto_url}",
        f"  Lambda Invoke API      {lambda_url}   (jobs: {lambda_url}/local/batch/jobs)",
        f"  face API (the app)     {app}   runs while GPU instance {resources.instance_id} runs",
        "",
        f"Resources (created by terraform apply in {state_dir / 'terraform'}; account {resources.account_id},"
        f" {REGION}; `terraform output -json` there lists them)",
        f"  input bucket           {resources.input_bucket}",
        f"  output bucket          {resources.output_bucket}",
        f"  trigger topic          {resources.trigger_topic_arn}",
        f"  notifications topic    {resources.notifications_topic_arn}",
        f"  notifications inbox    {inbox}   (stands in for e-mail)",
        f"  trigger DLQ            {resources.trigger_dlq_url}",
        f"  monitor DLQ            {resources.monitor_dlq_url}",
        f"  job queues             {queues['gpu']}, {queues['cpu']}",
        f"  functions              {', '.join(functions.values())}",
        f"  API key parameter      {resources.api_key_parameter} (value in {state_dir / 'api-key'})",
        f"  idle stopper           every {idle_check_seconds:g} s, after {auto_shutdown_idle_time} s idle",
        "",
        "Try it (another shell, in this folder):",
        f"  export {exports} AWS_DEFAULT_REGION={REGION} AWS_CONFIG_FILE=/dev/null",
        f'  export PATH="{Path(sys.executable).parent}:$PATH"   # the pinned AWS CLI v1 '
        "(with v2, add --cli-binary-format raw-in-base64-out to lambda invoke)",
        f"  API_KEY=$(cat {shlex.quote(str(state_dir / 'api-key'))})",
        "  # images into the input bucket; the instance starts, embeds them, answers with the faces",
        f"  {aws} s3 cp photo1.jpg s3://{resources.input_bucket}/images/photo1.jpg",
        f"  {invoke} {_json(process)} out.json && cat out.json",
        "  # search, stop, start",
        f'  curl -H "X-API-Key: $API_KEY" -F file=@photo1.jpg {app_url or "http://127.0.0.1:8000"}/search',
        f"  {invoke} {_json({'action': 'stop'})} out.json",
        f"  {invoke} {_json({'action': 'start'})} out.json",
        "  # Batch jobs via the trigger topic (outputs: jobs/<project>/<experiment>/ in the output bucket)",
        f"  {aws} s3 cp examples/gpu_processing.py s3://{resources.input_bucket}/jobs/gpu_processing.py",
        f"  {aws} s3 cp examples/cpu_processing.py s3://{resources.input_bucket}/jobs/cpu_processing.py",
        f"  {aws} sns publish --topic-arn {resources.trigger_topic_arn} --message {_json(gpu_job)}",
        f"  {aws} sns publish --topic-arn {resources.trigger_topic_arn} --message {_json(cpu_job)}",
        f"  {aws} sns publish --topic-arn {resources.trigger_topic_arn} --message {_json(embed_job)}",
        f"  {aws} s3 ls s3://{resources.output_bucket}/jobs/ --recursive",
        "  # notifications and rejected messages",
        f"  {aws} sqs receive-message --queue-url {inbox} --max-number-of-messages 10",
        f"  {aws} sqs receive-message --queue-url {resources.trigger_dlq_url} --message-attribute-names All",
        f"  {aws} sqs receive-message --queue-url {resources.monitor_dlq_url} --message-attribute-names All",
        "  # operations: jobs, logs",
        f"  {aws} batch list-jobs --job-queue {queues['cpu']} --job-status RUNNING",
        f"  {aws} batch terminate-job --job-id <job id> --reason 'stopped by hand'",
        f"  {aws} logs tail /aws/lambda/{functions['dispatcher']}",
        "",
        "Ctrl-C stops everything (buckets are saved to the state folder).",
        "=" * 100,
    ]
    return "\n".join(lines)
