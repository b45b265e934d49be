"""Fixtures for the face service: the real offline model pack, loaded once per session."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gpu_app.config import Settings
from gpu_app.engine.insightface_engine import InsightFaceEngine
from gpu_app.main import create_app
from gpu_app.runtime import Runtime
from gpu_app.service import FaceService

REPO = Path(__file__).resolve().parents[2]
MODEL_ROOT = Path(os.environ.get("MODEL_ROOT", REPO.parent / "shared" / "models" / "insightface"))
MODEL_PACK = os.environ.get("MODEL_PACK", "offline_sc")


@pytest.fixture(scope="session")
def engine() -> InsightFaceEngine:
    if not (MODEL_ROOT / "models" / MODEL_PACK).is_dir():
        pytest.fail(f"model pack {MODEL_PACK} not found under {MODEL_ROOT}: set MODEL_ROOT/MODEL_PACK")
    return InsightFaceEngine(model_root=MODEL_ROOT, model_pack=MODEL_PACK, provider_preference="cpu")


def runtime_of(client: TestClient) -> Runtime:
    """The runtime of the app behind a test client (TestClient types its app as any ASGI app)."""
    app = client.app
    assert isinstance(app, FastAPI)
    runtime: Runtime = app.state.runtime
    return runtime


def service_of(client: TestClient) -> FaceService:
    service = runtime_of(client).service
    assert service is not None, "the app's service is not built yet"
    return service


def app_settings(root: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "model_root": str(MODEL_ROOT),
        "model_pack": MODEL_PACK,
        "local_storage_dir": root / "images",
        "index_dir": root / "index",
        "job_spool_dir": root / "spool",
    }
    return Settings(**(values | overrides))


@pytest.fixture
def make_client(tmp_path: Path, engine: InsightFaceEngine) -> Iterator[Callable[..., TestClient]]:
    """Start an app (real model, real storage and index under tmp_path) and wait until it is ready."""
    clients: list[TestClient] = []

    def make(root: Path | None = None, **overrides: Any) -> TestClient:
        settings = app_settings(root or tmp_path, **overrides)
        client = TestClient(create_app(settings, engine=engine, background_load=False))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in reversed(clients):
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()
