"""A real app process and the system's headless Chromium, driven by Playwright (no downloaded browser).

Without a browser these tests fail in CI (CI=true) and are skipped elsewhere, each with the reason:
a missing browser never passes silently.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from tests.support.images import encode, sample_bytes, sample_image
from tests.support.live_app import REPO, App, app_env, run_app

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

API_KEY = "ui-test-key"
SCREENSHOTS = REPO / "build" / "ui-screenshots"
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome")


def missing(reason: str) -> None:
    """Fail in CI, where the browser must be installed (.ci/run does it); skip with the reason elsewhere."""
    reason += ": the web page's browser tests did not run"
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = os.environ.get("CHROMIUM_PATH") or next(filter(None, map(shutil.which, BROWSER_NAMES)), None)
    if not path:
        missing("no Chromium found (apt-get install chromium, or set CHROMIUM_PATH)")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Browser]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed (make venv installs requirements/dev.txt)")
    with sync_playwright() as playwright:
        # Playwright drives this browser only: it never downloads one of its own.
        browser = playwright.chromium.launch(executable_path=chromium_path, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def ui_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    state = tmp_path_factory.mktemp("ui-app")
    env = os.environ | app_env(state, API_KEY=API_KEY)
    with run_app(env, state / "app.log") as app:
        yield app


def reencoded_sample() -> bytes:
    """Other bytes with the same six faces: a second photo of the same people, as far as search goes."""
    return encode(sample_image(), quality=85)


@pytest.fixture(scope="module")
def stored(ui_app: App) -> dict[str, str]:
    """Image ids of t1.jpg and its re-encoded copy, stored through the API (the same bytes uploaded
    through the page get the same ids)."""
    files = [("t1.jpg", sample_bytes()), ("copy.jpg", reencoded_sample())]
    response = requests.post(
        f"{ui_app.url}/upload-images/",
        files=[("files", (name, data, "image/jpeg")) for name, data in files],
        headers={"X-API-Key": API_KEY},
        timeout=120,
    )
    response.raise_for_status()
    return {result["file"]: result["image_id"] for result in response.json()["results"]}


def face_record(app: App, face_id: str) -> dict[str, Any]:
    response = requests.get(f"{app.url}/faces/{face_id}", headers={"X-API-Key": API_KEY}, timeout=30)
    response.raise_for_status()
    return dict(response.json())


def wait_image_shown(page: Page) -> None:
    """The image view's image has loaded and decoded."""
    page.wait_for_function(
        "() => { const i = document.querySelector('#image-box img'); "
        "return i && i.complete && i.naturalWidth > 0; }"
    )


@pytest.fixture
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def open_page(browser: Browser, ui_app: App) -> Iterator[Callable[..., Page]]:
    """Opens /ui/<fragment> in a fresh tab (the key already entered unless key=None). Any script
    error or console error (a CSP violation among them) fails the test."""
    contexts: list[Any] = []
    problems: list[str] = []

    def open_tab(
        fragment: str = "", *, key: str | None = API_KEY, width: int = 1280, height: int = 900
    ) -> Page:
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        if key is not None:
            context.add_init_script(f"sessionStorage.setItem('faces.apiKey', {json.dumps(key)})")
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
        page.on("console", lambda message: problems.extend(console_problem(message.type, message.text)))
        page.goto(f"{ui_app.url}/ui/{fragment}")
        return page

    yield open_tab
    for context in contexts:
        context.close()
    assert not problems, problems


def console_problem(kind: str, text: str) -> list[str]:
    # Chromium logs every 4xx answer ("Failed to load resource"); the tests provoke some on purpose.
    return [f"console: {text}"] if kind == "error" and not text.startswith("Failed to load resource") else []
