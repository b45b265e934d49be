"""A boundary fake of the face-embedding app on 127.0.0.1: `/health`, `/ready`, `/process` exactly as
the app's contract documents them (used until the real app can be started in these tests)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeApp:
    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.health: dict[str, Any] = {
            "status": "ok",
            "ready": True,
            "idle_seconds": 0.0,
            "jobs_in_progress": 0,
        }
        self.starting_polls = 0  # the first N /health answers say "starting"
        self.health_calls = 0
        self.process_requests: list[dict[str, Any]] = []
        self.url = ""
        # The app's MAX_FILES_PER_REQUEST: more files in one /process answer 413 like the app does.
        self.max_files_per_request = 100
        self.publish_limits = True  # False: a /health without `limits`, as older apps answer
        self.unavailable_answers = 0  # the next N /process calls answer 503 without results
        self.flaky_failures: dict[str, int] = {}  # key -> times it still fails with a per-file 503

    def health_body(self) -> dict[str, Any]:
        self.health_calls += 1
        limits = (
            {"limits": {"max_files_per_request": self.max_files_per_request}} if self.publish_limits else {}
        )
        if self.health_calls <= self.starting_polls:
            return self.health | limits | {"status": "starting", "ready": False}
        return self.health | limits

    @staticmethod
    def _failed(key: str, status: int, reason: str) -> dict[str, Any]:
        return {"file": key, "status": "error", "error": {"status": status, "reason": reason}}

    def process(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.process_requests.append(body)
        if self.unavailable_answers > 0:
            self.unavailable_answers -= 1
            return 503, {"detail": "model is loading"}
        if len(body["files"]) > self.max_files_per_request:
            return 413, {
                "detail": f"{len(body['files'])} files in one request; the limit is MAX_FILES_PER_REQUEST"
            }
        results = []
        for number, key in enumerate(body["files"]):
            if "broken" in key:
                results.append(self._failed(key, 422, "not a decodable image"))
            elif "missing" in key:
                results.append(self._failed(key, 404, f"no object {key}"))
            elif self.flaky_failures.get(key, 0) > 0:
                self.flaky_failures[key] -= 1
                results.append(self._failed(key, 503, "storage unavailable"))
            else:
                results.append(
                    {
                        "file": key,
                        "status": "ok",
                        "image_id": f"img-{number}",
                        "storage_key": f"{body.get('collection', 'default')}/{key}",
                        "faces": [{"face_id": f"face-{number}", "bbox": [1, 2, 30, 40], "det_score": 0.9}],
                    }
                )
        failed = [result for result in results if result["status"] == "error"]
        statuses = {result["error"]["status"] for result in failed}
        # The app's rule: 200, 207 when some failed, else the files' common status (422 if mixed).
        status = (
            200
            if not failed
            else 207
            if len(failed) < len(results)
            else statuses.pop()
            if len(statuses) == 1
            else 422
        )
        body = {"model_pack": "offline_sc", "results": results, "succeeded": len(results) - len(failed)}
        return status, body | {"failed": len(failed)}


def _handler(app: FakeApp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: pytest shows failures, not access logs."""

        def _send(self, status: int, body: Any) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            if self.path == "/health":
                self._send(200, app.health_body())
            elif self.path == "/ready":
                ready = app.health_calls >= app.starting_polls and app.health["ready"]
                self._send(200 if ready else 503, {"ready": ready})
            else:
                self._send(404, {"detail": "Not Found"})

        def do_POST(self) -> None:
            if self.path != "/process":
                self._send(404, {"detail": "Not Found"})
                return
            if self.headers.get("X-API-Key") != app.api_key:
                self._send(401, {"detail": "invalid or missing API key"})
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self._send(*app.process(body))

    return Handler


@contextmanager
def run_fake_app(api_key: str) -> Iterator[FakeApp]:
    app = FakeApp(api_key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(app))
    app.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
