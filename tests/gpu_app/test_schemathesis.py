"""Schemathesis over the OpenAPI spec against the real app process (real model, real HTTP).

Bounded for `make test` on a shared machine: a fixed number of examples per operation, derandomised
so a run is repeatable, no deadline (the CPU is shared). Checks: no 5xx, every status documented,
every body and content type as documented. Any finding fails the test with the request to replay.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from requests.structures import CaseInsensitiveDict
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.images import blank_jpeg, sample_bytes
from tests.support.live_app import app_env, run_app

API_KEY = "fuzz-key"
HEADERS = {"X-API-Key": API_KEY}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Invalid cases may carry random headers. These frame the request: the client sets them, and a
# malformed one is refused by the HTTP server (uvicorn's plain-text 400) before the app sees it.
FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "host", "connection"})
EXAMPLES_PER_OPERATION = 60  # per operation and mode (valid, invalid)


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    state = tmp_path_factory.mktemp("fuzzed-app")
    # Small limits keep generated uploads cheap; a stored image gives lookups something to find.
    env = app_env(state, API_KEY=API_KEY, MAX_FILES_PER_REQUEST="4", JOB_QUEUE_SIZE="2")
    with run_app(env, state / "app.log") as app:
        import requests

        files = [("files", ("t1.jpg", sample_bytes())), ("files", ("blank.jpg", blank_jpeg()))]
        seeded = requests.post(f"{app.url}/upload-images/", files=files, headers=HEADERS, timeout=120)
        assert seeded.status_code == 200, seeded.text
        schema = schemathesis.openapi.from_url(f"{app.url}/openapi.json", headers=HEADERS)
        yield schema
        log = Path(state / "app.log").read_text()
        assert "Traceback" not in log, log[-4000:]


def test_every_operation_answers_as_documented(api_schema: schemathesis.BaseSchema) -> None:
    # One hypothesis run per operation (schemathesis' lazy pytest parametrisation needs subtest
    # internals this pytest lacks); every operation runs, and every failing one is reported.
    failures: dict[str, str] = {}
    operations = []
    for result in api_schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.append(result.ok())
    assert len(operations) >= 10
    runs = [(op, mode) for op in operations for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
    for operation, mode in runs:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case: schemathesis.Case) -> None:
            if case.headers:
                case.headers = CaseInsensitiveDict(
                    {k: v for k, v in case.headers.items() if k.lower() not in FRAMING_HEADERS}
                )
            case.call_and_validate(headers=HEADERS, checks=CHECKS, timeout=60)

        try:
            exercise()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # an operation without inputs has no invalid ones
        except (FailureGroup, Exception) as exc:  # FailureGroup is a BaseExceptionGroup
            failures[f"{operation.label} ({mode.value})"] = str(exc)[-3000:]
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
