"""Running the dispatcher on SNS events, and reading what it submitted to Batch."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import boto3

from lambdas.common.aws import client
from lambdas.dispatcher.handler import lambda_handler
from tests.lambdas.events import LambdaContext, sns_event, sns_record
from tests.lambdas.resources import Stack


@dataclasses.dataclass
class Dispatcher:
    """Runs the handler on SNS events; records the SubmitJob bodies as they went over the wire."""

    stack: Stack
    context: Callable[..., LambdaContext]
    submit_bodies: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    _recorded: set[int] = dataclasses.field(default_factory=set)

    def _record(self, request: Any, **_: Any) -> None:
        self.submit_bodies.append(json.loads(request.body))

    def __call__(self, *items: dict[str, Any] | str) -> dict[str, Any]:
        batch = client("batch")  # the handler's own client, recreated whenever the test reconfigures
        if id(batch) not in self._recorded:
            batch.meta.events.register("request-created.batch.SubmitJob", self._record)
            self._recorded.add(id(batch))
        records = [
            item
            if isinstance(item, dict) and "Sns" in item
            else sns_record(item, self.stack.notifications_topic_arn)
            for item in items
        ]
        return lambda_handler(sns_event(*records), self.context("dispatcher"))

    def requirements(self, job_name: str) -> list[dict[str, str]]:
        (body,) = [body for body in self.submit_bodies if body["jobName"] == job_name]
        return list(body["containerOverrides"]["resourceRequirements"])


def submitted_jobs(stack: Stack) -> list[dict[str, Any]]:
    """The jobs Batch holds in both queues, as DescribeJobs shows them (array children excluded)."""
    batch = boto3.client("batch")
    ids = [
        summary["jobId"]
        for queue in (stack.gpu_queue, stack.cpu_queue)
        for summary in batch.list_jobs(jobQueue=queue)["jobSummaryList"]
        if ":" not in summary["jobId"]
    ]
    return batch.describe_jobs(jobs=ids)["jobs"] if ids else []


def environment_of(job: dict[str, Any]) -> dict[str, str]:
    """The job's environment as submitted (Batch adds AWS_BATCH_JOB_ID itself)."""
    return {
        item["name"]: item["value"]
        for item in job["container"]["environment"]
        if item["name"] != "AWS_BATCH_JOB_ID"
    }
