"""The HTTP surface: the key before the body, body caps, clear statuses, probes, collections, lookups."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gpu_app.config import Settings
from gpu_app.main import create_app
from gpu_app.storage import StorageError
from gpu_app.storage.local import LocalStorage
from tests.gpu_app.conftest import app_settings
from tests.support.images import blank_jpeg, sample_bytes
from tests.support.live_app import app_env, run_app

KEY = {"X-API-Key": "s3cret"}
HUGE = 300 * 1024 * 1024


# --- item 5: the key before the body, every body capped ------------------------------------------
def call_asgi(app: Any, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes, int]:
    """One request straight into the ASGI app; returns (status, body, times the body was read)."""
    reads = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        if reads > 16:  # an app that reads on would wait for 300 MB: let the client hang up
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": b"{" * 65536, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "app": app,
    }
    asyncio.run(app(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body, reads


@pytest.mark.parametrize("path", ["/process", "/upload-images/", "/search", "/nowhere"])
def test_a_huge_body_without_the_key_is_refused_unread(tmp_path: Path, path: str) -> None:
    app = create_app(app_settings(tmp_path, api_key="s3cret"))  # no lifespan: the guard needs none
    content_type = "application/json" if path == "/process" else "multipart/form-data; boundary=x"
    headers = {"content-type": content_type, "content-length": str(HUGE)}
    status, body, reads = call_asgi(app, "POST", path, headers)
    assert (status, reads) == (401, 0)
    assert json.loads(body) == {"detail": "missing or wrong X-API-Key header"}


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/process", "application/json"), ("/upload-images/", "multipart/form-data; boundary=x")],
)
def test_a_declared_oversized_body_with_the_key_is_refused_unread(
    tmp_path: Path, path: str, content_type: str
) -> None:
    app = create_app(app_settings(tmp_path, api_key="s3cret", max_request_bytes=10_000_000))
    headers = {"content-type": content_type, "content-length": str(HUGE)} | KEY
    status, body, reads = call_asgi(app, "POST", path, headers)
    assert (status, reads) == (413, 0)
    assert "above the limit" in json.loads(body)["detail"]


def test_a_search_body_is_capped_at_one_file(tmp_path: Path) -> None:
    app = create_app(app_settings(tmp_path, api_key="s3cret", max_upload_bytes=100_000))
    headers = {"content-type": "multipart/form-data; boundary=x", "content-length": "1000000"} | KEY
    assert call_asgi(app, "POST", "/search", headers)[::2] == (413, 0)  # uploads of 100 files may
    assert call_asgi(app, "POST", "/upload-images/", headers)[0] != 413  # carry that much


def streamed(total: int, chunk: int = 64 * 1024) -> Iterator[bytes]:
    """A body without Content-Length (chunked): the cap must count what actually arrives."""
    for start in range(0, total, chunk):
        yield b" " * min(chunk, total - start)


def test_streamed_bodies_over_the_cap_get_413_and_the_app_keeps_serving(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(api_key="s3cret", max_request_bytes=2_000_000)
    json_body = client.post(
        "/process", content=streamed(5_000_000), headers={"content-type": "application/json"} | KEY
    )
    assert json_body.status_code == 413 and "above the limit" in json_body.json()["detail"]
    multipart = client.post(
        "/upload-images/",
        content=streamed(5_000_000),
        headers={"content-type": "multipart/form-data; boundary=x"} | KEY,
    )
    assert multipart.status_code == 413 and "above the limit" in multipart.json()["detail"]
    # Below the cap, the same routes work as before.
    ok = client.post("/upload-images/", files=[("files", ("b.jpg", blank_jpeg()))], headers=KEY)
    assert ok.status_code == 200


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_real_server_answers_401_before_a_300_mb_body_arrives(tmp_path: Path) -> None:
    """Over a socket, as an attacker sends it: headers of a 300 MB JSON body, then only 1 MiB of it.
    The answer must come without waiting for the rest, and the process must not grow by the body."""
    env = app_env(tmp_path, API_KEY="s3cret")
    with run_app(env, tmp_path / "app.log") as app:
        host, port = app.url.removeprefix("http://").split(":")
        before = rss_bytes(app.pid)
        with socket.create_connection((host, int(port)), timeout=30) as conn:
            conn.sendall(
                f"POST /process HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {HUGE}\r\n\r\n".encode()
            )
            conn.sendall(b"[" * (1024 * 1024))
            answer = conn.recv(65536)  # a timeout here is the bug: the server waits for the body
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        assert rss_bytes(app.pid) - before < 64 * 1024 * 1024


# --- item 8: clear statuses, probes that do not depend on storage --------------------------------
class SwitchableStorage(LocalStorage):
    """Local storage that can be made to fail like an unreachable S3, or to hang its health check."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.down = False
        self.list_prefixes: list[str] = []
        self.health_calls = 0

    def _check(self) -> None:
        if self.down:
            raise StorageError("could not reach storage (simulated outage)")

    def get(self, key: str) -> bytes:
        self._check()
        return super().get(key)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self._check()
        super().put(key, data, content_type)

    def delete(self, key: str) -> None:
        self._check()
        super().delete(key)

    def list(self, prefix: str) -> Iterator[str]:
        self._check()
        self.list_prefixes.append(prefix)
        return super().list(prefix)

    def health(self) -> dict[str, Any]:
        self.health_calls += 1
        if self.down:
            return {"ok": False, "backend": self.backend, "error": "simulated outage"}
        return super().health()


@pytest.fixture
def storage_client(tmp_path: Path, engine: Any) -> Iterator[tuple[TestClient, SwitchableStorage, Settings]]:
    settings = app_settings(tmp_path, api_key="s3cret")
    storage = SwitchableStorage(tmp_path / "images")
    with TestClient(
        create_app(settings, engine=engine, storage=storage, background_load=False),
        raise_server_exceptions=False,
        headers=KEY,
    ) as client:
        yield client, storage, settings


def upload_one(client: TestClient, data: bytes, name: str = "t1.jpg", **form: str) -> dict[str, Any]:
    response = client.post("/upload-images/", files=[("files", (name, data))], data=form)
    assert response.status_code == 200, response.text
    return response.json()["results"][0]


def test_storage_down_on_image_lookup_and_delete_answers_503(
    storage_client: tuple[TestClient, SwitchableStorage, Settings],
) -> None:
    client, storage, _ = storage_client
    image_id = upload_one(client, sample_bytes())["image_id"]
    storage.down = True
    for method in ("get", "delete"):
        response = getattr(client, method)(f"/images/{image_id}")
        assert response.status_code == 503, (method, response.text)
        assert "storage unavailable" in response.json()["detail"] and response.headers["retry-after"]
    storage.down = False
    assert client.get(f"/images/{image_id}").status_code == 200  # nothing was lost


def test_health_never_calls_storage_and_ready_reports_it_down(
    storage_client: tuple[TestClient, SwitchableStorage, Settings],
) -> None:
    client, storage, settings = storage_client
    storage.down = True
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["ready"] is True
    assert storage.health_calls == 0
    assert health.json()["limits"]["max_files_per_request"] == settings.max_files_per_request
    ready = client.get("/ready")
    assert ready.status_code == 503 and ready.json()["reasons"] == ["storage unavailable"]
    storage.down = False
    assert client.get("/ready").status_code == 200


def test_open_health_shows_no_paths_and_verbose_needs_the_key(
    storage_client: tuple[TestClient, SwitchableStorage, Settings], tmp_path: Path
) -> None:
    client, _, _ = storage_client
    anonymous = {"X-API-Key": ""}
    open_health = client.get("/health", headers=anonymous)
    assert open_health.status_code == 200
    assert str(tmp_path) not in open_health.text and "storage" not in open_health.json()
    assert client.get("/health", params={"verbose": "true"}, headers=anonymous).status_code == 401
    verbose = client.get("/health", params={"verbose": "true"}).json()
    assert verbose["storage"]["root"] == str(tmp_path / "images") and verbose["index"]["ok"] is True


def test_a_key_segment_over_255_bytes_fails_that_file_alone(
    storage_client: tuple[TestClient, SwitchableStorage, Settings], tmp_path: Path
) -> None:
    client, _, _ = storage_client
    (tmp_path / "images" / "inbox").mkdir(parents=True, exist_ok=True)
    (tmp_path / "images" / "inbox" / "t1.jpg").write_bytes(sample_bytes())
    long_key = "inbox/" + "a" * 300 + ".jpg"
    # A lone surrogate is valid JSON (an escape) but no storage key: json.dumps escapes it as sent.
    body = json.dumps({"files": ["inbox/t1.jpg", long_key, "inbox/\ud800.jpg"]})
    response = client.post("/process", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 207, response.text
    ok, too_long, surrogate = response.json()["results"]
    assert ok["status"] == "ok" and len(ok["faces"]) == 6
    assert too_long["error"]["status"] == 400 and "over 255 bytes" in too_long["error"]["reason"]
    assert surrogate["error"]["status"] == 400


def test_docs_need_the_key_unless_public_docs(make_client: Callable[..., TestClient], tmp_path: Path) -> None:
    closed = make_client(api_key="s3cret")
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert closed.get(path).status_code == 401, path
        assert closed.get(path, headers=KEY).status_code == 200, path
    for path in ("/health", "/ready", "/metrics"):
        assert closed.get(path).status_code == 200, path
    opened = make_client(tmp_path / "open", api_key="s3cret", public_docs=True)
    assert opened.get("/openapi.json").status_code == 200


def test_openapi_documents_every_status_with_its_error_model(make_client: Callable[..., TestClient]) -> None:
    spec = make_client().get("/openapi.json").json()
    protected = {
        (path, method): op
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if path not in ("/health", "/ready", "/metrics")
    }
    for (path, method), op in protected.items():
        assert "401" in op["responses"], (path, method)
        if op.get("parameters") or op.get("requestBody"):
            assert "422" in op["responses"], (path, method)
        assert "HTTPValidationError" not in json.dumps(op["responses"]), (path, method)
    for path in ("/upload-images/", "/process"):
        assert {"400", "404", "413", "415", "503"} <= set(spec["paths"][path]["post"]["responses"])
    assert "429" in spec["paths"]["/upload-images/"]["post"]["responses"]
    assert spec["paths"]["/health"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/HealthOut"
    }
    assert "max_files_per_request" in spec["components"]["schemas"]["Limits"]["properties"]


# --- item 7: the same bytes in several collections ---------------------------------------------
def search(client: TestClient, collection: str) -> list[list[dict[str, Any]]]:
    response = client.post(
        "/search", files={"file": ("q.jpg", sample_bytes())}, data={"collection": collection}
    )
    assert response.status_code == 200, response.text
    return [q["matches"] for q in response.json()["queries"]]


def test_the_same_image_in_two_collections_is_found_in_both(
    storage_client: tuple[TestClient, SwitchableStorage, Settings],
) -> None:
    client, _, _ = storage_client
    alpha = upload_one(client, sample_bytes(), collection="alpha")
    beta = upload_one(client, sample_bytes(), collection="beta")
    assert alpha["image_id"] != beta["image_id"]
    for collection, image in (("alpha", alpha), ("beta", beta)):
        matches = search(client, collection)
        assert len(matches) == 6 and all(len(m) == 1 for m in matches), collection
        assert {m[0]["image_id"] for m in matches} == {image["image_id"]}
        assert {m[0]["collection"] for m in matches} == {collection}
        stored = client.get(f"/images/{image['image_id']}").json()
        assert stored["collection"] == collection and len(stored["faces"]) == 6

    # Deleting it from one collection leaves the other whole.
    assert client.delete(f"/images/{alpha['image_id']}").json()["deleted_vectors"] == 6
    assert all(m == [] for m in search(client, "alpha"))
    assert all(len(m) == 1 for m in search(client, "beta"))
    assert client.get(f"/images/{beta['image_id']}").status_code == 200


def test_reindex_from_sidecars_keeps_both_collections(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    from gpu_app.cli import main

    client = make_client()
    upload_one(client, sample_bytes(), collection="alpha")
    upload_one(client, sample_bytes(), collection="beta")
    client.__exit__(None, None, None)
    for path in (tmp_path / "index").iterdir():
        path.unlink()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODEL_PACK", "offline_sc")
        patch.setenv("LOCAL_STORAGE_DIR", str(tmp_path / "images"))
        patch.setenv("INDEX_DIR", str(tmp_path / "index"))
        assert main(["reindex"]) == 0
    rebuilt = make_client()
    for collection in ("alpha", "beta"):
        assert all(len(m) == 1 for m in search(rebuilt, collection)), collection


# --- item 9: lookups by id read the image's folder, not the store ---------------------------------
def test_image_lookup_and_delete_list_only_the_images_own_folder(
    storage_client: tuple[TestClient, SwitchableStorage, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, storage, settings = storage_client
    others = [upload_one(client, blank_jpeg(seed=i), name=f"{i}.jpg")["image_id"] for i in range(5)]
    image_id = upload_one(client, sample_bytes())["image_id"]
    walked: list[Path] = []
    real_rglob = Path.rglob

    def recording_rglob(self: Path, pattern: str, **kwargs: Any) -> Any:
        walked.append(self)
        return real_rglob(self, pattern, **kwargs)

    monkeypatch.setattr(Path, "rglob", recording_rglob)
    storage.list_prefixes.clear()
    assert client.get(f"/images/{image_id}").status_code == 200
    assert client.delete(f"/images/{image_id}").status_code == 200
    folder = f"{settings.s3_upload_path}/{image_id}/"
    assert storage.list_prefixes == [folder, folder]
    assert walked == [storage.root / folder.rstrip("/")] * 2
    assert all(client.get(f"/images/{other}").status_code == 200 for other in others)
