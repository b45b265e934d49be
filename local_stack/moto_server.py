"""moto's server as the local stack runs it: `python -m local_stack.moto_server -p PORT`.

The same moto 5.2.5 server (`python -m moto.server`), with nine differences from moto, each one a
place where moto does not behave as AWS does and the stack would otherwise diverge from AWS:

- **MonitorInstances / UnmonitorInstances** raise NotImplementedError in moto (HTTP 500). The AWS
  SDK retries a 500 with backoff, so `aws_instance` with `monitoring = true` stays "Still creating"
  for minutes and then fails. Here they switch the instance's monitoring state, as EC2 does.
- **DeadLetterConfig** of a function: moto drops it (GetFunctionConfiguration never shows it);
  here it is kept and shown, so the local Lambda host sends failed events where Terraform said.
- **Bucket policy conditions**: moto treats every condition operator but StringEquals as met, so the
  stack's deny-non-TLS statements would deny every object request (see
  `patch_bucket_policy_conditions`).
- **IAM enforcement** (`INITIAL_NO_AUTH_ACTION_COUNT`): moto checks requests against the caller's
  IAM policies, but only S3 and SQS (and IAM, STS) tell it which resource a request is for; every
  other service is checked against the resource "*", which no least-privilege statement names, so
  everything would be denied. Here those services are checked per action (some statement must allow
  the action, on any resource). The operator's fake credentials (`testing`, what Terraform, the
  stack itself and the README's commands use) stand for the account's administrator and are not
  checked; credentials from sts:AssumeRole of the stack's roles are.
- **SNS -> Lambda**: moto hands a Lambda subscription's message to its own Lambda (which only echoes
  without Docker) in a placeholder event. Here the event Lambda builds (the real subscription and
  topic ARNs, message id and attributes) is sent to the local Lambda host as an asynchronous
  invocation, which is how SNS invokes Lambda.
- **SQS -> Lambda**: moto delivers a message to the function of an SQS event source mapping the
  moment it is sent (its own Lambda, one message per invocation, deleted whatever the function
  answered): no batching window, no batch, no partial batch response. Here the mapping is kept
  (ListEventSourceMappings shows it as Terraform created it) but moto no longer delivers; the local
  stack's pollers do, as Lambda's do (`local_stack/event_sources.py`).
- **RedriveAllowPolicy** of a queue: moto stores it but refuses to return it ("Unknown Attribute"),
  so Terraform's `aws_sqs_queue_redrive_allow_policy` (the S3 event DLQ admits only its queue) could
  never read back what it set. Here GetQueueAttributes returns it, as SQS does.
- **ListEventSourceMappings --function-name** compares the given text with what the mapping was
  created with; Terraform creates the S3 event mapping with the dispatcher's ARN, so the RUNBOOK's
  `aws lambda list-event-source-mappings --function-name <name>` found nothing. Here a name, an ARN
  or a partial ARN finds the function's mappings, as Lambda does.
- **Batch job states**: moto without Docker marks a job SUCCEEDED at once and runs nothing. The local
  executor runs the job and reports its real state here (`POST /_local/batch/jobs/<id>` with
  `{"status", "statusReason"}`), so `aws batch list-jobs --job-status RUNNING` and describe-jobs show
  it; `aws batch terminate-job` sets the job FAILED, which the executor sees and stops the run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any, Final

from werkzeug.serving import run_simple
from werkzeug.wrappers import Request, Response

# Set by the stack: where SNS delivers to Lambda subscriptions.
LAMBDA_URL_VARIABLE: Final = "LOCAL_LAMBDA_URL"
OPERATOR_ACCESS_KEY: Final = "testing"
# Services whose moto responses name the resource of each request (the rest are checked per action).
RESOURCE_CHECKED_SERVICES: Final = frozenset({"s3", "sqs", "iam", "sts"})
BATCH_STATUS_PATH: Final = "/_local/batch/jobs/"
TLS_REQUEST_CONTEXT: Final = {"aws:SecureTransport": "true", "s3:TlsVersion": "1.3"}
_DELIVERY_TIMEOUT: Final = 10

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _credential_scope(headers: Any) -> tuple[str, str]:
    """(access key id, service) of a SigV4 request; ("", "") when unsigned."""
    authorization = str(headers.get("Authorization") or "")
    if "Credential=" not in authorization:
        return "", ""
    scope = authorization.split("Credential=", 1)[1].split(",", 1)[0].split("/")
    return scope[0], (scope[3] if len(scope) > 3 else "")


def patch_monitoring() -> None:
    from moto.core.responses import ActionResult
    from moto.ec2.responses.monitoring import Monitoring

    def change(self: Any, state: str) -> ActionResult:
        self.error_on_dryrun()
        instances = self.ec2_backend.get_multi_instances_by_id(self._get_param("InstanceIds", []))
        for instance in instances:
            instance.monitoring_state = state
        return ActionResult(
            {"InstanceMonitorings": [{"InstanceId": i.id, "Monitoring": {"State": state}} for i in instances]}
        )

    # moto annotates its handlers `-> str`, yet its dispatcher takes an ActionResult too (as here).
    Monitoring.monitor_instances = lambda self: change(self, "enabled")  # type: ignore[method-assign,assignment,return-value]
    Monitoring.unmonitor_instances = lambda self: change(self, "disabled")  # type: ignore[method-assign,assignment,return-value]


def patch_lambda_dead_letter_config() -> None:
    """moto drops a function's DeadLetterConfig; AWS keeps it and GetFunctionConfiguration shows it."""
    from moto.awslambda.models import LambdaFunction

    original_init = LambdaFunction.__init__
    original_configuration = LambdaFunction.get_configuration
    original_update = LambdaFunction.update_configuration

    def init(self: Any, account_id: str, spec: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        original_init(self, account_id, spec, *args, **kwargs)
        self.dead_letter_config = spec.get("DeadLetterConfig") or None

    def configuration(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        config = original_configuration(self, *args, **kwargs)
        if getattr(self, "dead_letter_config", None):
            config["DeadLetterConfig"] = self.dead_letter_config
        return config

    def update(self: Any, config_updates: dict[str, Any]) -> dict[str, Any]:
        if "DeadLetterConfig" in config_updates:
            self.dead_letter_config = config_updates["DeadLetterConfig"] or None
        return original_update(self, config_updates)

    LambdaFunction.__init__ = init  # type: ignore[method-assign]
    LambdaFunction.get_configuration = configuration  # type: ignore[method-assign]
    LambdaFunction.update_configuration = update  # type: ignore[method-assign]


def patch_bucket_policy_conditions() -> None:
    """moto evaluates only StringEquals in policy conditions and treats every other operator as met, so
    the stack's `DenyInsecureTransport` (Bool aws:SecureTransport = false) and `DenyOutdatedTls`
    (NumericLessThan s3:TlsVersion 1.2) statements would deny every object request. Here Bool and
    NumericLessThan are evaluated, with the request context of a TLS 1.3 request: the loopback link
    between the stack's processes stands in for TLS (the endpoints are plain http://127.0.0.1)."""
    from moto.iam import policy_conditions
    from moto.iam.access_control import IAMPolicy, IAMPolicyStatement, PermissionResult
    from moto.s3.models import FakeBucket

    def first(expected: list[str] | str) -> str:
        return str(expected[0] if isinstance(expected, list) else expected)

    operations = policy_conditions.CONDITION_OPERATIONS
    operations["Bool"] = lambda expected_value, actual_value: (
        first(expected_value).lower() == str(actual_value).lower()
    )
    operations["NumericLessThan"] = lambda expected_value, actual_value: (
        float(actual_value) < float(first(expected_value))
    )

    original_statement = IAMPolicyStatement.is_action_permitted

    def statement_permits(
        self: Any,
        action: str,
        resource: str = "*",
        principal: str | None = None,
        incoming_condition_values: dict[str, str] | None = None,
    ) -> Any:
        # A statement whose condition is not met does not apply (moto answers DENIED, which turns
        # every conditional Deny into an unconditional one).
        if self._statement.get("Condition") and not self._check_conditions(incoming_condition_values):
            return PermissionResult.NEUTRAL
        return original_statement(self, action, resource, principal, incoming_condition_values)

    IAMPolicyStatement.is_action_permitted = statement_permits  # type: ignore[method-assign]

    def get_permission(self: Any, action: str, resource: str) -> Any:
        if self.policy is None:
            return PermissionResult.NEUTRAL
        policy = IAMPolicy(self.policy.decode())
        return policy.is_action_permitted(action, resource, incoming_condition_values=TLS_REQUEST_CONTEXT)

    FakeBucket.get_permission = get_permission  # type: ignore[method-assign]


def patch_s3_action_names() -> None:
    """moto authorizes HeadBucket as "s3:HeadBucket", which is no IAM action: AWS checks s3:ListBucket."""
    from moto.s3.responses import ACTION_MAP

    ACTION_MAP["BUCKET"]["HEAD"]["DEFAULT"] = "ListBucket"


def patch_iam_enforcement() -> None:
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.iam.access_control import IAMPolicy, IAMRequest, PermissionResult

    def lowered(value: Any) -> Any:
        return [str(item).lower() for item in value] if isinstance(value, list) else str(value).lower()

    class ActionLevelRequest(IAMRequest):
        """For services moto checks against "*": allowed when a statement allows the action anywhere.
        Action names compare case-insensitively, as in IAM (moto names REST actions in lower case)."""

        def check_action_permitted(self, resource: str) -> None:
            permitted = False
            for policy in self._access_key.collect_policies():
                statements = IAMPolicy(policy)._policy_json["Statement"]
                for statement in statements if isinstance(statements, list) else [statements]:
                    anywhere = dict(statement) | ({"Resource": "*"} if "Resource" in statement else {})
                    for element in ("Action", "NotAction"):
                        if element in anywhere:
                            anywhere[element] = lowered(anywhere[element])
                    document = json.dumps({"Statement": [anywhere]})
                    result = IAMPolicy(document).is_action_permitted(self._action.lower())
                    if result == PermissionResult.DENIED and statement.get("Resource") in ("*", ["*"]):
                        self._raise_access_denied()
                    permitted = permitted or result == PermissionResult.PERMITTED
            if not permitted:
                self._raise_access_denied()

    original = ActionAuthenticatorMixin._authenticate_and_authorize_action

    def authorize(self: Any, iam_request_cls: type, resource: str = "*") -> None:
        access_key, service = _credential_scope(self.headers)
        if access_key in ("", OPERATOR_ACCESS_KEY):
            return None
        if service not in RESOURCE_CHECKED_SERVICES and iam_request_cls is IAMRequest:
            iam_request_cls = ActionLevelRequest
        return original(self, iam_request_cls, resource)

    ActionAuthenticatorMixin._authenticate_and_authorize_action = authorize  # type: ignore[method-assign]


def patch_sns_lambda_delivery(lambda_url: str) -> None:
    from moto.sns.models import Subscription

    from local_stack.events import sns_record

    original = Subscription.publish

    def publish(self: Any, message: str, message_id: str, subject: str | None = None, **kwargs: Any) -> None:
        if self.protocol != "lambda":
            return original(self, message, message_id, subject=subject, **kwargs)
        attributes = kwargs.get("message_attributes")
        if self._filter_policy_matcher is not None and not self._filter_policy_matcher.matches(
            attributes, message
        ):
            return None
        if kwargs.get("message_structure") == "json":
            message = self._parse_message_structure(message, self.protocol)
        notification = self.get_post_data(message, message_id, subject, message_attributes=attributes)
        event = {"Records": [sns_record(notification, self.arn)]}
        # SNS invokes Lambda asynchronously; deliver off the publisher's request, as SNS does.
        threading.Thread(target=_deliver, args=(lambda_url, self.endpoint, event), daemon=True).start()
        return None

    # moto passes the optional arguments by keyword; the replacement takes them as **kwargs.
    Subscription.publish = publish  # type: ignore[method-assign,assignment]


def patch_sqs_event_source_delivery() -> None:
    """Keep SQS event source mappings, but take their queues' delivery away from moto."""
    from moto.awslambda.models import LambdaBackend
    from moto.sqs.models import sqs_backends

    original = LambdaBackend.create_event_source_mapping

    def create(self: Any, spec: dict[str, Any]) -> Any:
        mapping = original(self, spec)
        for queue in sqs_backends[self.account_id][self.region_name].queues.values():
            if queue.queue_arn == mapping.event_source_arn:
                queue.lambda_event_source_mappings.pop(mapping.function_arn, None)
        return mapping

    LambdaBackend.create_event_source_mapping = create  # type: ignore[method-assign]


def patch_sqs_redrive_allow_policy() -> None:
    """GetQueueAttributes answers RedriveAllowPolicy (alone or within All) while it is set; setting
    it to "" removes it, as SQS does (Terraform's destroy clears it and waits until it is gone)."""
    from moto.sqs.models import Queue

    if "RedriveAllowPolicy" not in Queue.BASE_ATTRIBUTES:
        Queue.BASE_ATTRIBUTES = [*Queue.BASE_ATTRIBUTES, "RedriveAllowPolicy"]

    def read(queue: Any) -> str | None:
        return queue.__dict__.get("_redrive_allow_policy") or None  # None is left out of answers

    def write(queue: Any, value: str | None) -> None:
        queue.__dict__["_redrive_allow_policy"] = value

    Queue.redrive_allow_policy = property(read, write)  # type: ignore[attr-defined]


def patch_event_source_mapping_function_filter() -> None:
    """ListEventSourceMappings filters by the function the name or ARN denotes, not by its spelling."""
    from moto.awslambda.exceptions import UnknownFunctionException
    from moto.awslambda.models import LambdaBackend

    original = LambdaBackend.list_event_source_mappings

    def function_arn(backend: Any, identifier: str) -> str:
        try:
            return str(backend.get_function(identifier).function_arn)
        except UnknownFunctionException:
            return identifier

    def listed(self: Any, event_source_arn: str, function_name: str) -> Iterable[Any]:
        mappings = original(self, event_source_arn, "")
        if not function_name:
            return mappings
        wanted = function_arn(self, function_name)
        return [mapping for mapping in mappings if function_arn(self, mapping.function_name) == wanted]

    LambdaBackend.list_event_source_mappings = listed  # type: ignore[method-assign]


def _deliver(lambda_url: str, function_arn: str, event: dict[str, Any]) -> None:
    name = urllib.parse.quote(function_arn, safe="")
    request = urllib.request.Request(  # noqa: S310 - the stack's loopback Lambda host
        f"{lambda_url}/2015-03-31/functions/{name}/invocations",
        data=json.dumps(event).encode(),
        headers={"X-Amz-Invocation-Type": "Event", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=_DELIVERY_TIMEOUT):  # noqa: S310
            pass
    except (urllib.error.URLError, OSError) as exc:
        print(f"SNS delivery to {function_arn} failed: {exc}", file=sys.stderr, flush=True)


def _set_batch_job_status(job_id: str, body: dict[str, Any]) -> Response:
    from moto.batch.models import BatchBackend, batch_backends

    for _account, _region, backend in batch_backends.iter_backends():
        assert isinstance(backend, BatchBackend)  # moto's BackendDict is typed by its base class
        job = backend.get_job_by_id(job_id)
        if job is not None:
            job.status = str(body["status"])
            if body.get("statusReason"):
                job.job_stopped_reason = str(body["statusReason"])
            answer = {"jobId": job_id, "status": job.status, "statusReason": job.job_stopped_reason}
            return Response(json.dumps(answer), 200, mimetype="application/json")
    return Response(json.dumps({"message": f"no job {job_id}"}), 404, mimetype="application/json")


def with_local_routes(app: WsgiApp) -> WsgiApp:
    def local_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        if path.startswith(BATCH_STATUS_PATH) and environ.get("REQUEST_METHOD") == "POST":
            request = Request(environ)
            response = _set_batch_job_status(
                path.removeprefix(BATCH_STATUS_PATH), request.get_json(force=True)
            )
            return response(environ, start_response)
        return app(environ, start_response)

    return local_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_stack.moto_server", description=__doc__)
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )

    patch_monitoring()
    patch_lambda_dead_letter_config()
    patch_bucket_policy_conditions()
    patch_s3_action_names()
    patch_iam_enforcement()
    patch_sqs_event_source_delivery()
    patch_sqs_redrive_allow_policy()
    patch_event_source_mapping_function_filter()
    lambda_url = os.environ.get(LAMBDA_URL_VARIABLE)
    if lambda_url:
        patch_sns_lambda_delivery(lambda_url)
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        with_local_routes(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
