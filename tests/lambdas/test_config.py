"""Configuration comes from env.py's variables only, with clear errors, and handlers import lightly."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lambdas.common import env
from lambdas.common.cache import clear_container_caches
from lambdas.common.config import ConfigError, load
from lambdas.controller.config import ControllerConfig
from lambdas.dispatcher.config import DispatcherConfig
from lambdas.idle_stopper.config import IdleStopperConfig
from lambdas.monitor.config import MonitorConfig

CONFIGS: dict[str, type[tuple[object, ...]]] = {
    "dispatcher": DispatcherConfig,
    "controller": ControllerConfig,
    "monitor": MonitorConfig,
    "idle_stopper": IdleStopperConfig,
}
# The logger's (named after Powertools' variables).
NOT_IN_CONFIG = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_LOG_LEVEL"}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in {name for variables in env.FUNCTION_ENVIRONMENT.values() for name in variables}:
        monkeypatch.delenv(name, raising=False)
    clear_container_caches()


@pytest.mark.parametrize("function", sorted(CONFIGS))
def test_config_fields_are_exactly_the_declared_variables(function: str) -> None:
    fields = {field.upper() for field in CONFIGS[function].__annotations__}
    declared = set(env.FUNCTION_ENVIRONMENT[function]) - NOT_IN_CONFIG
    assert fields == declared


def test_defaults_apply_and_values_are_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, default in env.FUNCTION_ENVIRONMENT["controller"].items():
        if default is None:
            monkeypatch.setenv(name, f"value-of-{name}")
    monkeypatch.setenv("FALLBACK_INSTANCE_TYPES", " g4dn.xlarge, ,g6.xlarge ")

    config = load(ControllerConfig, "controller")

    assert config.app_port == 8000
    assert config.start_timeout_seconds == 300
    assert config.app_url_override == ""
    assert config.fallback_instance_types == ("g4dn.xlarge", "g6.xlarge")
    assert config.gpu_instance_id == "value-of-GPU_INSTANCE_ID"


def test_missing_required_variables_are_all_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPU_INSTANCE_ID", "")  # set but empty counts as missing

    with pytest.raises(ConfigError) as error:
        load(IdleStopperConfig, "idle_stopper")

    assert str(error.value) == (
        "idle_stopper: required environment variables not set: GPU_INSTANCE_ID, NOTIFICATIONS_TOPIC_ARN"
    )


@pytest.mark.parametrize("value", ["many", "-1", "1.5"])
def test_malformed_numbers_are_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("NOTIFICATIONS_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:t")
    monkeypatch.setenv("GPU_INSTANCE_ID", "i-1")
    monkeypatch.setenv("AUTO_SHUTDOWN_IDLE_TIME", value)

    with pytest.raises(ConfigError, match="AUTO_SHUTDOWN_IDLE_TIME"):
        load(IdleStopperConfig, "idle_stopper")


def test_a_field_without_a_declared_variable_is_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class Stray:
        not_declared: str

    with pytest.raises(ConfigError, match="NOT_DECLARED is not declared for monitor"):
        load(Stray, "monitor")


def test_handlers_import_only_boto3() -> None:
    """Cold start: no HTTP library, no pydantic, no app code, and no AWS call at import."""
    code = (
        "import json, sys\n"
        "for f in ('dispatcher', 'controller', 'monitor', 'idle_stopper'):\n"
        "    __import__(f'lambdas.{f}.handler')\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    probe = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        env={"PATH": "/usr/bin:/bin", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"},  # unreachable on purpose
        capture_output=True,
        text=True,
        check=True,
    )
    top_level = set(json.loads(probe.stdout))
    assert {"boto3", "botocore"} <= top_level
    assert not top_level & {"requests", "httpx", "pydantic", "gpu_app", "moto", "aws_lambda_powertools"}
