"""Fixtures of the Lambda tests: a moto server (over HTTP) holding every resource, and a Lambda context."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import boto3
import pytest

from lambdas.common.cache import clear_container_caches
from lambdas.common.env import FUNCTION_ENVIRONMENT
from tests.lambdas.dispatching import Dispatcher
from tests.lambdas.events import LambdaContext
from tests.lambdas.fake_app import FakeApp, run_fake_app
from tests.lambdas.resources import API_KEY, Stack, create_stack


@pytest.fixture
def context() -> Callable[..., LambdaContext]:
    def make(function: str = "dispatcher", **fields: object) -> LambdaContext:
        return LambdaContext(
            function_name=function,
            invoked_function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{function}",
            log_group_name=f"/aws/lambda/{function}",
            **fields,  # type: ignore[arg-type]
        )

    return make


Configure = Callable[..., None]


@pytest.fixture
def stack(aws_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """Every resource of the four functions in a fresh moto; nothing configured yet (see `configure`)."""
    clear_container_caches()
    for name in {name for variables in FUNCTION_ENVIRONMENT.values() for name in variables}:
        monkeypatch.delenv(name, raising=False)
    yield create_stack()
    clear_container_caches()


@pytest.fixture
def configure(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Configure:
    """Set one function's environment as Terraform would (plus overrides) and forget cached config."""

    def apply(function: str, **overrides: str) -> None:
        for name, value in stack.environment(function, **overrides).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", function)
        clear_container_caches()

    return apply


@pytest.fixture
def fake_app() -> Iterator[FakeApp]:
    with run_fake_app(API_KEY) as app:
        yield app


@pytest.fixture
def dispatch(stack: Stack, configure: Configure, context: Callable[..., LambdaContext]) -> Dispatcher:
    """The configured dispatcher, with the seed's scripts uploaded to the input bucket."""
    configure("dispatcher")
    s3 = boto3.client("s3")
    for key in ("jobs/gpu_processing.py", "jobs/cpu_report.py"):
        s3.put_object(Bucket=stack.input_bucket, Key=key, Body=b"print('hello')\n")
    return Dispatcher(stack, context)
