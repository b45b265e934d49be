"""The Lambdas and the app follow one contract (contract/): driven on both sides, they agree, and
neither side holds a copy of a rule that could drift from it."""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_type_hints

import boto3
import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter, ValidationError

from contract import batch_job, health, limits, media, names
from contract.errors import ConfigError
from gpu_app.batch.script_runner import INTERPRETERS
from gpu_app.batch.sharding import read_manifest
from gpu_app.config import Settings
from gpu_app.engine.insightface_engine import InsightFaceEngine
from gpu_app.main import create_app
from gpu_app.schemas import Collection, HealthOut, Limits
from gpu_app.storage.s3 import S3Storage
from lambdas.common import config as lambda_config
from lambdas.common.validation import InvalidMessageError, optional_collection
from tests.gpu_app.conftest import app_settings
from tests.gpu_app.conftest import engine as engine
from tests.lambdas.dispatching import Dispatcher, environment_of, submitted_jobs
from tests.lambdas.resources import Stack

REPO = Path(__file__).resolve().parents[2]
SIDES = ("lambdas", "gpu_app", "local_stack")

COLLECTION_NAMES = [
    "default",
    "family-2024",
    "a.b_c-D",
    "x" * 64,
    "x" * 65,
    "",
    "a/b",
    "a b",
    "café",
    "a\u2028b",
    "abc\n",
    "..",
    "-",
]


def app_accepts(name: str) -> bool:
    try:
        TypeAdapter(Collection).validate_python(name)
    except ValidationError:
        return False
    return True


def dispatcher_accepts(name: str) -> bool:
    try:
        optional_collection({"collection": name}, "collection", "data")
    except InvalidMessageError:
        return False
    return True


@pytest.mark.parametrize("name", COLLECTION_NAMES)
def test_dispatcher_and_app_accept_the_same_collection_names(name: str) -> None:
    assert dispatcher_accepts(name) is app_accepts(name) is names.is_collection_name(name)


def test_the_script_runner_runs_exactly_the_scripts_the_dispatcher_accepts() -> None:
    assert set(INTERPRETERS) == set(batch_job.RUNNABLE_SCRIPT_SUFFIXES)


# --- /health: the app's document, read by the controller's parser ------------------------------------
@pytest.fixture
def app_client(tmp_path: Path, engine: InsightFaceEngine) -> Iterator[TestClient]:
    settings = app_settings(tmp_path, max_files_per_request=7)
    with TestClient(create_app(settings, engine=engine, background_load=False)) as client:
        yield client


def test_the_controller_reads_the_apps_health_and_follows_its_published_limit(app_client: TestClient) -> None:
    body = app_client.get("/health").json()

    parsed = health.AppHealth.parse(body)

    assert (parsed.status, parsed.ready, parsed.jobs_in_progress) == ("ok", True, 0)
    assert parsed.max_files_per_request == 7 and parsed.files_per_request == 7
    assert set(body["limits"]) == set(health.HealthLimits.__annotations__)


def test_the_apps_health_model_has_the_contracts_fields_and_types() -> None:
    def fields(model: Any) -> dict[str, Any]:
        return {name: info.annotation for name, info in model.model_fields.items()}

    assert fields(Limits) == get_type_hints(health.HealthLimits)
    document = get_type_hints(health.HealthDocument)
    app = fields(HealthOut)
    assert {name: app[name] for name in document if name != "limits"} == {
        name: kind for name, kind in document.items() if name != "limits"
    }
    assert app["limits"] is Limits
    assert all(HealthOut.model_fields[name].is_required() for name in document)


def test_the_apps_default_limit_is_the_contracts() -> None:
    assert Settings.model_fields["max_files_per_request"].default == limits.MAX_FILES_PER_REQUEST


# --- manifests: the dispatcher's count is the number of items the Batch children shard -----------------
def put(stack: Stack, key: str, body: bytes) -> None:
    boto3.client("s3").put_object(Bucket=stack.input_bucket, Key=key, Body=body)


def embed_manifest(dispatch: Dispatcher, manifest_key: str) -> dict[str, Any]:
    message = {"trigger_type": "face_embedding", "data": {"manifest_key": manifest_key}}
    return dict(dispatch(message)["results"][0])


def test_a_manifest_is_counted_by_the_dispatcher_as_the_batch_job_reads_it(
    dispatch: Dispatcher, stack: Stack
) -> None:
    lines = [
        '{"key": "photos/a.jpg", "person": "x"}',
        "",
        "photos/b.jpg",
        "photos/a.jpg",  # listed twice: one image (its first line wins)
        '{"key": "photos/b.jpg", "person": "y"}',
        "  photos/c.png  ",
    ]
    put(stack, "manifests/run.jsonl", "\n".join(lines).encode())

    outcome = embed_manifest(dispatch, "manifests/run.jsonl")
    items = read_manifest(S3Storage(stack.input_bucket), "manifests/run.jsonl")

    assert [item.key for item in items] == ["photos/a.jpg", "photos/b.jpg", "photos/c.png"]
    assert items[0].metadata == {"person": "x"}
    assert outcome["result"]["image_count"] == len(items) == 3
    (job, _) = sorted(submitted_jobs(stack), key=lambda job: "IMAGE_COUNT" not in environment_of(job))
    assert environment_of(job)[batch_job.IMAGE_COUNT] == "3"


def test_a_bad_manifest_line_is_refused_by_both_with_the_same_reason(
    dispatch: Dispatcher, stack: Stack
) -> None:
    put(stack, "manifests/bad.jsonl", b'photos/a.jpg\n{"key": ""}\n')

    outcome = embed_manifest(dispatch, "manifests/bad.jsonl")
    with pytest.raises(ConfigError) as refused:
        read_manifest(S3Storage(stack.input_bucket), "manifests/bad.jsonl")

    assert outcome["error_type"] == "InvalidManifest"
    assert outcome["reason"] == str(refused.value)
    assert "line 2 is neither a plain key" in outcome["reason"]


# --- Batch job environment: what the dispatcher sets is what the job reads ---------------------------
def job_settings(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What `python -m gpu_app.batch` commands run with (their settings, read from the environment)
    under exactly `environment` among the contract's names."""
    with monkeypatch.context() as scope:
        for name in all_names():
            scope.delenv(name, raising=False)
        for name, value in environment.items():
            scope.setenv(name, value)
        return Settings().model_dump()


def all_names() -> set[str]:
    return set(batch_job.COMMON).union(*batch_job.COMMAND_ENVIRONMENT.values())


def changed(value: str) -> str:
    return str(int(value) + 1) if value.isdigit() else f"{value}-changed"


def assert_read(command: str, environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every variable of `environment` but the labels changes what the job runs with."""
    assert set(environment) <= batch_job.COMMON | batch_job.COMMAND_ENVIRONMENT[command], command
    read = job_settings(environment, monkeypatch)
    for name in set(environment) - batch_job.LABELS:
        other = environment | {name: changed(environment[name])}
        assert job_settings(other, monkeypatch) != read, f"{command}: the job does not read {name}"


def job_command(job: dict[str, Any]) -> str:
    environment = environment_of(job)
    if batch_job.SCRIPT_KEY in environment:
        return "run-script"
    if batch_job.ARRAY_SIZE in environment:
        return "materialize"
    return "embed"


def test_every_variable_the_dispatcher_sets_is_read_by_the_batch_job(
    dispatch: Dispatcher, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("photos/a.jpg", "photos/b.jpg", "photos/c.jpg"):
        put(stack, key, b"\xff\xd8\xff")
    put(stack, "manifests/run.jsonl", b"photos/a.jpg\nphotos/b.jpg\n")
    metadata = {"user": "carol", "project": "album", "experiment": "run-1"}
    dispatch(
        {
            "trigger_type": "face_embedding",
            "data": {"prefix": "photos/", "images_per_child": 2},
            "metadata": metadata,
        },
        {
            "trigger_type": "face_embedding",
            "data": {"manifest_key": "manifests/run.jsonl"},
            "metadata": metadata,
        },
        {"trigger_type": "batch_job", "data": {"script_key": "jobs/cpu_report.py"}, "metadata": metadata},
    )

    jobs = submitted_jobs(stack)
    commands = sorted(job_command(job) for job in jobs)
    assert commands == ["embed", "embed", "materialize", "materialize", "run-script"]
    for job in jobs:
        environment = environment_of(job)
        assert set(environment) >= batch_job.COMMON
        assert_read(job_command(job), environment, monkeypatch)


def test_the_video_job_reads_what_the_dispatcher_sets_for_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # The dispatcher's video route (lambdas/dispatcher/s3_events.py) sets COMMON plus these.
    environment = {name: f"value-{name.lower()}" for name in batch_job.COMMON} | {
        batch_job.VIDEO_KEY: "videos/clip.mp4",
        batch_job.VIDEO_BYTES: "17",
    }
    assert_read("video", environment, monkeypatch)


# --- one ConfigError, and no copies ---------------------------------------------------------------------
def test_there_is_one_config_error() -> None:
    from gpu_app import batch

    assert batch.ConfigError is lambda_config.ConfigError is ConfigError


@dataclasses.dataclass(frozen=True)
class Copy:
    path: str
    line: int
    what: str


def contract_values() -> dict[Any, str]:
    """Values that only the contract may spell out, by what they are."""
    values: dict[Any, str] = {
        frozenset(media.IMAGE_SUFFIXES): "image suffixes",
        frozenset(media.VIDEO_SUFFIXES): "video suffixes",
        frozenset(batch_job.RUNNABLE_SCRIPT_SUFFIXES): "runnable script suffixes",
        names.COLLECTION_PATTERN: "the collection-name pattern",
    }
    return values


def literal(node: ast.expr) -> Any:
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    if isinstance(value, tuple | list | set | frozenset):
        try:
            return frozenset(value)
        except TypeError:
            return None
    return value if isinstance(value, str) else None


def copies(root: Path = REPO) -> Iterator[Copy]:
    """Every place under lambdas/, gpu_app/ or local_stack/ that spells out a contract value (under
    any name) or defines a class of the contract's."""
    values = contract_values()
    for side in SIDES:
        for path in sorted((root / side).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            relative = str(path.relative_to(root))
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and node.name in {"ConfigError", "AppHealth"}:
                    yield Copy(relative, node.lineno, f"class {node.name}")
                if isinstance(node, ast.expr) and not isinstance(node, ast.Constant | ast.Name):
                    value = literal(node)
                    if value is not None and value in values:
                        yield Copy(relative, node.lineno, values[value])
                elif isinstance(node, ast.Constant) and node.value in values:
                    yield Copy(relative, node.lineno, values[node.value])


def test_neither_side_holds_a_copy_of_the_contract() -> None:
    assert list(copies()) == []


def test_the_copy_finder_finds_copies_under_any_name(tmp_path: Path) -> None:
    (tmp_path / "lambdas").mkdir()
    (tmp_path / "lambdas" / "drift.py").write_text(
        'KNOWN = (".PY", ".sh")[:0] or [".sh", ".py"]\n'
        "def movie(key):\n"
        '    return key.endswith((".avi", ".webm", ".mkv", ".mov", ".mp4"))\n'
        "class ConfigError(Exception): ...\n"
    )
    found = {(copy.line, copy.what) for copy in copies(tmp_path)}
    assert found == {(1, "runnable script suffixes"), (3, "video suffixes"), (4, "class ConfigError")}
