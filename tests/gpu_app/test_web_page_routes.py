"""The web page's files at /ui (open, no data) and GET /images/{id}/file (behind the key)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from gpu_app.routers.ui import ASSETS, UI_DIR
from tests.support.images import encode, sample_bytes, sample_image

KEY = "s3cret"
AUTH = {"X-API-Key": KEY}


def test_page_and_its_files_load_without_the_key(make_client: Callable[..., TestClient]) -> None:
    client = make_client(api_key=KEY)
    redirect = client.get("/ui", follow_redirects=False)
    assert redirect.status_code == 308 and redirect.headers["location"] == "ui/"
    for path, name in [("/ui/", "index.html"), *((f"/ui/{n}", n) for n in ASSETS)]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == ASSETS[name]
        assert response.content == (UI_DIR / name).read_bytes()
        assert "script-src 'self'" in response.headers["content-security-policy"]
    # The page references only its own files: nothing from a CDN, nothing inline to allow.
    page = (UI_DIR / "index.html").read_text()
    assert "http://" not in page and "https://" not in page and "<script>" not in page


def test_only_the_pages_files_are_open(make_client: Callable[..., TestClient]) -> None:
    client = make_client(api_key=KEY)
    assert client.get("/ui/secrets.txt").status_code == 401
    assert client.get("/ui/..%2Fconfig.py").status_code == 401
    assert client.get("/ui/secrets.txt", headers=AUTH).status_code == 404
    assert client.get("/ui/..%2Fconfig.py", headers=AUTH).status_code == 404


def test_image_file_returns_the_stored_bytes_behind_the_key(make_client: Callable[..., TestClient]) -> None:
    client = make_client(api_key=KEY)
    png = encode(sample_image(), "PNG")
    files = [("files", ("t1.jpg", sample_bytes(), "image/jpeg")), ("files", ("t1.png", png, "image/png"))]
    results = client.post("/upload-images/", files=files, headers=AUTH).json()["results"]
    jpeg_id, png_id = (r["image_id"] for r in results)

    assert client.get(f"/images/{jpeg_id}/file").status_code == 401
    jpeg = client.get(f"/images/{jpeg_id}/file", headers=AUTH)
    assert jpeg.status_code == 200
    assert jpeg.content == sample_bytes()
    assert jpeg.headers["content-type"] == "image/jpeg"
    assert jpeg.headers["x-content-type-options"] == "nosniff"
    stored_png = client.get(f"/images/{png_id}/file", headers=AUTH)
    assert (stored_png.content, stored_png.headers["content-type"]) == (png, "image/png")


def test_image_file_of_an_unknown_or_deleted_image_is_404(make_client: Callable[..., TestClient]) -> None:
    client = make_client(api_key=KEY)
    files = [("files", ("t1.jpg", sample_bytes(), "image/jpeg"))]
    image_id = client.post("/upload-images/", files=files, headers=AUTH).json()["results"][0]["image_id"]
    assert client.delete(f"/images/{image_id}", headers=AUTH).status_code == 200
    gone = client.get(f"/images/{image_id}/file", headers=AUTH)
    assert gone.status_code == 404 and gone.json() == {"detail": f"no image {image_id}"}
    assert client.get("/images/not-an-id/file", headers=AUTH).status_code == 404


def test_without_a_configured_key_nothing_asks_for_one(client: TestClient) -> None:
    """`make serve` without API_KEY: the page and the image bytes need no header, like the rest."""
    files = [("files", ("t1.jpg", sample_bytes(), "image/jpeg"))]
    image_id = client.post("/upload-images/", files=files).json()["results"][0]["image_id"]
    assert client.get("/ui/").status_code == 200
    assert client.get(f"/images/{image_id}/file").content == sample_bytes()
