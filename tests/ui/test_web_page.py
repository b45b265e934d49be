"""The web page end to end: headless Chromium against the real app (offline model) on 127.0.0.1.

Each test keeps a screenshot under build/ui-screenshots/ for review.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import requests
from PIL import Image

from tests.support.images import encode, sample_bytes, sample_image, sample_path
from tests.support.live_app import App
from tests.ui.conftest import API_KEY, face_record, reencoded_sample, wait_image_shown

if TYPE_CHECKING:
    from playwright.sync_api import FilePayload, Page

OpenPage = Callable[..., "Page"]
SAMPLE_FACES = 6


def test_upload_many_shows_each_file_and_a_broken_one_fails_alone(
    open_page: OpenPage, screenshot_dir: Path
) -> None:
    page = open_page(key=None)
    # The key is entered once in the page, and kept for the tab.
    page.fill("#api-key", API_KEY)
    page.click("#key-form button[type=submit]")
    files: list[FilePayload] = [
        {"name": "t1.jpg", "mimeType": "image/jpeg", "buffer": sample_bytes()},
        {"name": "broken.jpg", "mimeType": "image/jpeg", "buffer": b"this is not an image"},
        {"name": "copy.jpg", "mimeType": "image/jpeg", "buffer": reencoded_sample()},
    ]
    page.set_input_files("#upload-input", files)
    rows = page.locator("#upload-list .file")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#upload-list .file')]"
        ".filter(r => ['done', 'error'].includes(r.dataset.state)).length === 3"
    )
    states = {name: rows.filter(has_text=name) for name in ("t1.jpg", "broken.jpg", "copy.jpg")}
    assert states["t1.jpg"].get_attribute("data-state") == "done"
    assert states["t1.jpg"].locator(".state").inner_text() == f"{SAMPLE_FACES} faces · view image"
    assert states["copy.jpg"].get_attribute("data-state") == "done"
    assert states["copy.jpg"].locator(".state").inner_text() == f"{SAMPLE_FACES} faces · view image"
    broken = states["broken.jpg"]
    assert broken.get_attribute("data-state") == "error"
    # The reason is beside the file, in words, with the status the file alone got.
    assert broken.locator(".state").inner_text().startswith("422: not a recognised image")
    assert page.locator("#notice").is_hidden()
    # Each file had its own progress bar, full once its upload was sent.
    assert page.eval_on_selector_all("#upload-list progress", "bars => bars.map(b => b.value)") == [1, 1, 1]
    page.screenshot(path=screenshot_dir / "upload.png", full_page=True)

    states["t1.jpg"].get_by_role("link", name="view image").click()
    wait_image_shown(page)
    assert page.locator("#image-box .face").count() == SAMPLE_FACES
    assert page.locator("#image-name").inner_text() == "t1.jpg"
    page.locator("#image-box .face").first.hover()  # landmarks on hover
    assert page.locator("#image-box .face").first.locator(".landmark").first.is_visible()
    page.screenshot(path=screenshot_dir / "image.png", full_page=True)


def assert_same_face_ranked_first(page: Page, app: App, face_id: str, copy_id: str) -> None:
    """Searching by a stored face leaves that face out: the best match is the same face in the copy."""
    page.wait_for_selector("#search-results .match")
    matches = page.locator("#search-results .match")
    best = matches.first
    assert best.get_attribute("data-image-id") == copy_id
    assert float(best.locator(".similarity").inner_text()) > 0.99
    if matches.count() > 1:
        assert float(matches.nth(1).locator(".similarity").inner_text()) < 0.99
    best_face_id = best.get_attribute("data-face-id")
    assert best_face_id is not None
    query, found = face_record(app, face_id)["bbox"], face_record(app, best_face_id)["bbox"]
    assert max(abs(a - b) for a, b in zip(query, found, strict=True)) < 4  # pixels: the same place


def test_clicking_a_face_finds_that_face_first(
    open_page: OpenPage, ui_app: App, stored: dict[str, str], screenshot_dir: Path
) -> None:
    page = open_page(f"#/image/{stored['t1.jpg']}")
    wait_image_shown(page)
    face = page.locator("#image-box .face").nth(2)
    face_id = face.get_attribute("data-face-id")
    assert face_id is not None
    face.click()
    assert page.url.endswith(f"#/search?face={face_id}")
    assert_same_face_ranked_first(page, ui_app, face_id, stored["copy.jpg"])
    # Every match links to its image, where the matched face is marked.
    best = page.locator("#search-results .match").first
    best_id = best.get_attribute("data-face-id")
    best.get_by_role("link").click()
    wait_image_shown(page)
    assert page.locator("#image-box .face.selected").get_attribute("data-face-id") == best_id
    assert page.locator("#image-name").inner_text() == "copy.jpg"
    page.go_back()
    page.wait_for_selector("#search-results .match canvas")
    page.screenshot(path=screenshot_dir / "search-face.png", full_page=True)


def test_dropping_an_image_searches_each_of_its_faces(
    open_page: OpenPage, stored: dict[str, str], screenshot_dir: Path
) -> None:
    page = open_page("#/search")
    data = base64.b64encode(sample_path().read_bytes()).decode()
    transfer = page.evaluate_handle(
        """(data) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "t1.jpg", { type: "image/jpeg" }));
            return transfer;
        }""",
        data,
    )
    page.dispatch_event("#search-drop", "drop", {"dataTransfer": transfer})
    page.wait_for_selector("#search-results .query")
    queries = page.locator("#search-results .query")
    assert queries.count() == SAMPLE_FACES
    for i in range(SAMPLE_FACES):
        best = queries.nth(i).locator(".match").first
        # Each face of the dropped photo finds its stored self, with its image to link to.
        assert best.get_attribute("data-image-id") == stored["t1.jpg"]
        assert float(best.locator(".similarity").inner_text()) > 0.99
    page.screenshot(path=screenshot_dir / "search-image.png", full_page=True)


def test_status_shows_model_providers_and_index(
    open_page: OpenPage, stored: dict[str, str], screenshot_dir: Path
) -> None:
    page = open_page("#/status")
    field = lambda name: page.locator(f'#status-list dd[data-field="{name}"]')  # noqa: E731
    field("Index size").wait_for()
    assert "offline_sc" in field("Model pack").inner_text()
    assert "CPUExecutionProvider" in field("Providers used").inner_text()
    assert field("CUDA").inner_text() == "no (CPU)"
    assert field("Index size").inner_text().split()[0].isdigit()
    assert int(field("Index size").inner_text().split()[0]) >= SAMPLE_FACES
    assert field("Jobs queued or running").inner_text() == "0"
    page.screenshot(path=screenshot_dir / "status.png", full_page=True)


def test_without_the_key_the_page_says_so(open_page: OpenPage, stored: dict[str, str]) -> None:
    page = open_page(f"#/image/{stored['t1.jpg']}", key=None)
    page.locator("#notice").wait_for()
    assert "API key is missing or wrong" in page.locator("#notice").inner_text()
    assert page.evaluate("document.activeElement.id") == "api-key"
    assert page.locator("#image-box .face").count() == 0
    # The status still shows what the open /health says, and what the key would add.
    page.goto(page.url.split("#")[0] + "#/status")
    page.locator('#status-list dd[data-field="Model pack"]').wait_for()
    assert "Enter the API key" in page.locator('#status-list dd[data-field="Index size"]').inner_text()


def tab_to(page: Page, condition: str) -> None:
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate(condition):
            return
    raise AssertionError(f"nothing where {condition} reached with Tab")


def test_files_and_faces_are_reachable_by_keyboard(
    open_page: OpenPage, ui_app: App, stored: dict[str, str]
) -> None:
    page = open_page("#/upload")
    tab_to(page, "document.activeElement.id === 'upload-input'")  # the file picker, inside the drop zone
    page.goto(page.url.split("#")[0] + f"#/image/{stored['t1.jpg']}")
    wait_image_shown(page)
    tab_to(page, "document.activeElement.classList.contains('face')")
    face_id = page.evaluate("document.activeElement.dataset.faceId")
    page.keyboard.press("Enter")
    assert_same_face_ranked_first(page, ui_app, face_id, stored["copy.jpg"])


def test_phone_width_fits_and_nothing_moves_while_images_load(
    open_page: OpenPage, stored: dict[str, str], screenshot_dir: Path
) -> None:
    page = open_page(key=API_KEY, width=390, height=844)
    page.evaluate(
        """() => {
            window.layoutShifts = [];
            const describe = (node) => node && `${node.nodeName}#${node.id}.${node.className}: `
                + `${(node.textContent || "").slice(0, 40)} in ${node.parentElement?.id}`;
            new PerformanceObserver((list) => window.layoutShifts.push(...list.getEntries().map(
                (entry) => [entry.value, entry.sources.map((source) => describe(source.node))]
            ))).observe({ type: "layout-shift", buffered: true });
        }"""
    )
    page.evaluate(f"location.hash = '#/image/{stored['t1.jpg']}'")
    wait_image_shown(page)
    box = page.locator("#image-box").bounding_box()
    assert box is not None and box["width"] <= 390
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=screenshot_dir / "phone-image.png", full_page=True)
    face_id = page.locator("#image-box .face").first.get_attribute("data-face-id")
    page.evaluate(f"location.hash = '#/search?face={face_id}'")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#search-results .thumb')]"
        ".every(c => c.dataset.drawn === 'true')"
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=screenshot_dir / "phone-search.png", full_page=True)
    assert page.evaluate("window.layoutShifts") == []


def test_a_photo_turned_by_exif_shows_as_the_service_saw_it(
    open_page: OpenPage, ui_app: App, stored: dict[str, str]
) -> None:
    """Boxes are in the service's (EXIF-applied) pixels: the browser must show and crop those pixels."""
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    turned = encode(sample_image().transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif.tobytes())
    response = requests.post(
        f"{ui_app.url}/upload-images/",
        files=[("files", ("turned.jpg", turned, "image/jpeg"))],
        headers={"X-API-Key": API_KEY},
        timeout=120,
    )
    result = response.json()["results"][0]
    page = open_page(f"#/image/{result['image_id']}")
    wait_image_shown(page)
    shown = page.eval_on_selector("#image-box img", "img => [img.naturalWidth, img.naturalHeight]")
    assert shown == [result["width"], result["height"]] == list(sample_image().size)
    decoded = page.evaluate(
        """async ([id, key]) => {
            const answer = await fetch(`../images/${id}/file`, { headers: { "X-API-Key": key } });
            const bitmap = await createImageBitmap(await answer.blob());  // what thumbnails crop
            return [bitmap.width, bitmap.height];
        }""",
        [result["image_id"], API_KEY],
    )
    assert decoded == shown
