"""POST /verify with the real model: two images, two stored faces, or one of each."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from gpu_app.engine.insightface_engine import InsightFaceEngine
from gpu_app.imaging import decode_image
from tests.support.images import blank_jpeg, sample_bytes
from tests.support.labelled_faces import LabelledImage, labelled_images


@pytest.fixture(scope="module")
def labelled(engine: InsightFaceEngine) -> list[LabelledImage]:
    def detect(data: bytes) -> list[tuple[float, float, float, float]]:
        decoded = decode_image(data, max_pixels=40_000_000)
        result = engine.analyze_each([decoded.bgr])[0]
        assert not isinstance(result, Exception)
        return [face.scaled(*decoded.scale).bbox for face in result]

    return labelled_images(detect, variants=2)


def of(labelled: list[LabelledImage], label: str) -> list[bytes]:
    return [image.jpeg for image in labelled if image.label == label]


def test_two_images_of_one_person_and_of_two_people(
    client: TestClient, labelled: list[LabelledImage]
) -> None:
    first, second = of(labelled, "t1-2")
    same = client.post("/verify", files={"file_a": ("a.jpg", first), "file_b": ("b.jpg", second)})
    assert same.status_code == 200, same.text
    body = same.json()
    assert body["same_person"] is True and body["similarity"] >= body["threshold"] == 0.6
    assert body["a"] == body["a"] | {"source": "image", "face_index": 0, "faces_found": 1}
    other = of(labelled, "hanks")[0]
    apart = client.post("/verify", files={"file_a": ("a.jpg", first), "file_b": ("b.jpg", other)}).json()
    assert apart["same_person"] is False and apart["similarity"] < 0.6
    stricter = client.post(
        "/verify",
        files={"file_a": ("a.jpg", first), "file_b": ("b.jpg", second)},
        data={"threshold": "0.999"},
    ).json()
    assert stricter["threshold"] == 0.999 and stricter["same_person"] is False


def test_stored_faces_and_a_chosen_face_of_a_group_photo(client: TestClient) -> None:
    result = client.post("/upload-images/", files=[("files", ("t1.jpg", sample_bytes()))]).json()["results"][
        0
    ]
    face_ids = [f["face_id"] for f in result["faces"]]
    itself = client.post("/verify", data={"face_id_a": face_ids[0], "face_id_b": face_ids[0]}).json()
    assert itself["same_person"] is True and itself["similarity"] == pytest.approx(1.0, abs=1e-5)
    two = client.post("/verify", data={"face_id_a": face_ids[0], "face_id_b": face_ids[1]}).json()
    assert (
        two["same_person"] is False and two["a"]["source"] == "face_id" and two["a"]["face_id"] == face_ids[0]
    )

    # Every face of the group photo, chosen by index, matches exactly one stored face.
    for choice in range(6):
        matched = [
            client.post(
                "/verify",
                files={"file_a": ("t1.jpg", sample_bytes())},
                data={"face_id_b": face_id, "face_a": str(choice)},
            ).json()
            for face_id in face_ids
        ]
        assert all(m["a"]["faces_found"] == 6 and m["a"]["face_index"] == choice for m in matched)
        assert sum(m["same_person"] for m in matched) == 1


def test_bad_requests_are_clear_4xx(client: TestClient, labelled: list[LabelledImage]) -> None:
    face = of(labelled, "t1-0")[0]
    cases: list[tuple[dict[str, Any], int, str]] = [
        (
            dict(files={"file_a": ("a.jpg", face), "file_b": ("b.jpg", blank_jpeg())}),
            422,
            "no face found in image b",
        ),
        (
            dict(
                files={"file_a": ("t1.jpg", sample_bytes()), "file_b": ("b.jpg", face)}, data={"face_a": "6"}
            ),
            422,
            "image a has 6 face(s)",
        ),
        (dict(files={"file_a": ("a.jpg", face)}, data={"face_id_b": "nope-000"}), 404, "no face nope-000"),
        (dict(files={"file_a": ("a.jpg", face)}), 422, "exactly one of `file_b` or `face_id_b`"),
        (
            dict(files={"file_a": ("a.jpg", face), "file_b": ("b.jpg", face)}, data={"face_id_a": "x"}),
            422,
            "exactly one of `file_a` or `face_id_a`",
        ),
        (dict(files={"file_a": ("a.txt", b"not an image"), "file_b": ("b.jpg", face)}), 422, "image a:"),
    ]
    for request, status, detail in cases:
        response = client.post("/verify", **request)
        assert response.status_code == status, response.text
        assert detail in response.json()["detail"]
    assert client.get("/health", params={"verbose": "true"}).json()["index"]["count"] == 0  # nothing stored
