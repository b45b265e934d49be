"""The app's API key from SSM (moto server): stripped as the controller strips it, re-read while the
app runs so a rotated key is accepted without a restart, and the old key refused from then on."""

from __future__ import annotations

import time
from collections.abc import Callable

import boto3
import pytest
from fastapi.testclient import TestClient

from gpu_app.secret_store import RotatingApiKey
from gpu_app.secret_store import normalize_api_key as app_normalize
from lambdas.common.app_client import normalize_api_key as controller_normalize

PARAMETER = "/face-embed/test/api-key"


def put_key(value: str) -> None:
    boto3.client("ssm").put_parameter(Name=PARAMETER, Value=value, Type="SecureString", Overwrite=True)


def eventually(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Polls until `condition` holds (the refresh runs on its own thread); fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.05)


@pytest.mark.parametrize("value", ["key-1", " key-1\n", "\tkey-1\r\n"])
def test_app_and_controller_read_a_stored_key_alike(value: str) -> None:
    assert app_normalize(value) == controller_normalize(value) == "key-1"


def test_rotating_key_is_re_read_after_its_interval_and_kept_when_ssm_fails(aws_endpoint: str) -> None:
    put_key("key-1\n")
    now = [0.0]
    key = RotatingApiKey(PARAMETER, "us-east-1", refresh_seconds=30, clock=lambda: now[0])
    assert key.current == "key-1"

    put_key("key-2")
    now[0] = 29.0
    assert key.current == "key-1"  # not due yet: no SSM call
    now[0] = 31.0
    eventually(lambda: key.current == "key-2", "the rotated key is in effect")

    boto3.client("ssm").delete_parameter(Name=PARAMETER)  # SSM now fails every read
    now[0] = 100.0
    key.current  # noqa: B018 - starts the failing refresh
    eventually(lambda: not key._refreshing, "the failed refresh is over")
    assert key.current == "key-2"


def test_placeholder_or_empty_key_fails_the_start(aws_endpoint: str) -> None:
    put_key("  ")
    with pytest.raises(RuntimeError, match="empty value"):
        RotatingApiKey(PARAMETER, "us-east-1")


def test_the_app_accepts_a_rotated_key_without_restart_and_refuses_the_old_one(
    make_client: Callable[..., TestClient], aws_endpoint: str
) -> None:
    put_key("old-key\n")
    client = make_client(api_key_ssm_parameter=PARAMETER, api_key_refresh_seconds=0.2)

    def status(key: str) -> int:
        return client.get("/jobs/no-such-job", headers={"X-API-Key": key}).status_code

    assert status("old-key") == 404  # past the key check: the job is unknown
    put_key("new-key")

    eventually(lambda: status("new-key") == 404, "the new key is accepted")
    assert status("old-key") == 401
