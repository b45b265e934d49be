"""The People view end to end: headless Chromium against the real app (offline model) on 127.0.0.1.

t1.jpg and a re-encoded copy make six people of two faces each (PEOPLE_MIN_FACES=2 for this app).
The tests run in file order on one app: each reads the state it needs from the API first.
Screenshots under build/ui-screenshots/.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from tests.support.live_app import App, app_env, run_app
from tests.ui.conftest import API_KEY, wait_image_shown

if TYPE_CHECKING:
    from playwright.sync_api import Page

OpenPage = Callable[..., "Page"]
SAMPLE_PEOPLE = 6


@pytest.fixture(scope="module")
def ui_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """An app of its own: people form from two similar faces, so two photos of six people make six."""
    state = tmp_path_factory.mktemp("ui-people-app")
    env = os.environ | app_env(state, API_KEY=API_KEY, PEOPLE_MIN_FACES="2")
    with run_app(env, state / "app.log") as app:
        yield app


def call(app: App, method: str, path: str, **kwargs: Any) -> Any:
    headers = {"X-API-Key": API_KEY}
    response = requests.request(method, f"{app.url}{path}", headers=headers, timeout=60, **kwargs)
    response.raise_for_status()
    return response.json()


def people(app: App, include_hidden: bool = False) -> list[dict[str, Any]]:
    answer = call(app, "GET", "/people", params={"include_hidden": str(include_hidden).lower()})
    return list(answer["people"])


def wait_thumbs_drawn(page: Page, selector: str) -> None:
    """Every thumbnail under `selector` came from GET /faces/{id}/thumbnail and was decoded."""
    page.wait_for_function(
        f"() => {{ const t = [...document.querySelectorAll('{selector} img.thumb')]; "
        "return t.length > 0 && t.every(i => i.dataset.drawn === 'true' && i.naturalWidth > 0); }"
    )


def open_person(page: Page, person_id: str) -> None:
    page.evaluate(f"location.hash = '#/person/{person_id}'")
    page.locator("#person-name").wait_for()
    wait_thumbs_drawn(page, "#person-faces")


def test_grid_shows_each_person_with_a_face_and_a_count(
    open_page: OpenPage, ui_app: App, stored: dict[str, str], screenshot_dir: Path
) -> None:
    listed = people(ui_app)
    assert len(listed) == SAMPLE_PEOPLE and all(p["face_count"] == 2 for p in listed)
    page = open_page("#/people")
    wait_thumbs_drawn(page, "#people-grid")
    cards = page.locator("#people-grid .person")
    assert cards.count() == SAMPLE_PEOPLE
    assert [cards.nth(i).get_attribute("data-person-id") for i in range(SAMPLE_PEOPLE)] == [
        p["person_id"] for p in listed
    ]
    first = cards.first
    assert first.locator(".name").inner_text() == "unnamed"
    assert first.locator(".count").inner_text() == "2 faces"
    assert page.locator("#people-count").inner_text() == "6 people"
    assert page.locator("nav [aria-current=page]").inner_text() == "People"
    page.screenshot(path=screenshot_dir / "people.png", full_page=True)


def test_rename_with_enter_persists_after_reload_and_in_the_api(
    open_page: OpenPage, ui_app: App, stored: dict[str, str], screenshot_dir: Path
) -> None:
    person_id = people(ui_app)[0]["person_id"]
    page = open_page("#/people")
    page.locator(f'#people-grid [data-person-id="{person_id}"] a').click()
    page.locator("#person-name").wait_for()
    page.fill("#person-name", "Ada Lovelace")
    page.press("#person-name", "Enter")
    page.locator("#person-name-state.ok").wait_for()
    assert page.locator("#person-name-state").inner_text() == "saved"
    assert page.locator("#person-title").inner_text() == "Ada Lovelace"

    page.reload()
    page.locator("#person-name").wait_for()
    assert page.input_value("#person-name") == "Ada Lovelace"
    assert call(ui_app, "GET", f"/people/{person_id}")["person"]["name"] == "Ada Lovelace"
    page.click("text=All people")
    card = page.locator(f'#people-grid [data-person-id="{person_id}"]')
    assert card.locator(".name").inner_text() == "Ada Lovelace"

    # A name the API refuses (control characters) is refused beside the field; the old name stays.
    card.locator("a").click()
    page.locator("#person-name").wait_for()
    page.fill("#person-name", "bad\tname")
    page.press("#person-name", "Enter")
    page.locator("#person-name-state.error").wait_for()
    assert page.locator("#person-name-state").inner_text().startswith("422: ")
    assert call(ui_app, "GET", f"/people/{person_id}")["person"]["name"] == "Ada Lovelace"
    assert page.locator("#notice").is_hidden()


def test_people_and_faces_come_a_page_at_a_time(
    open_page: OpenPage, ui_app: App, stored: dict[str, str]
) -> None:
    listed = people(ui_app)
    page = open_page()
    # Pages of 4 people and 1 face (index.html asks for 60 of each).
    page.evaluate("document.getElementById('people-grid').dataset.page = '4'")
    page.evaluate("document.getElementById('person-faces').dataset.page = '1'")
    page.evaluate("location.hash = '#/people'")
    cards = page.locator("#people-grid .person")
    page.locator("#people-more").wait_for()
    assert cards.count() == 4
    page.click("#people-more")
    page.wait_for_function("() => document.getElementById('people-more').hidden")
    assert [cards.nth(i).get_attribute("data-person-id") for i in range(cards.count())] == [
        p["person_id"] for p in listed
    ]
    cards.first.locator("a").click()
    faces = page.locator("#person-faces .person-face")
    page.locator("#person-more").wait_for()
    assert faces.count() == 1
    page.click("#person-more")
    page.wait_for_function("() => document.getElementById('person-more').hidden")
    assert faces.count() == listed[0]["face_count"] == 2
    assert len({faces.nth(i).get_attribute("data-face-id") for i in range(2)}) == 2


def test_person_page_lists_their_faces_linking_to_their_images(
    open_page: OpenPage, ui_app: App, stored: dict[str, str], screenshot_dir: Path
) -> None:
    person = people(ui_app)[1]
    detail = call(ui_app, "GET", f"/people/{person['person_id']}")
    page = open_page()
    open_person(page, person["person_id"])
    faces = page.locator("#person-faces .person-face")
    assert faces.count() == person["face_count"] == 2
    shown = [faces.nth(i).get_attribute("data-face-id") for i in range(2)]
    assert shown == [face["face_id"] for face in detail["faces"]]
    assert {faces.nth(i).get_attribute("data-image-id") for i in range(2)} == set(stored.values())
    assert page.locator("#person-summary").inner_text().startswith("2 faces · collection default")
    page.screenshot(path=screenshot_dir / "person.png", full_page=True)

    face_id = faces.first.get_attribute("data-face-id")
    faces.first.get_by_role("link").click()
    wait_image_shown(page)
    assert page.locator("#image-box .face.selected").get_attribute("data-face-id") == face_id


def test_merge_moves_the_faces_and_errors_show_beside_the_control(
    open_page: OpenPage, ui_app: App, stored: dict[str, str], screenshot_dir: Path
) -> None:
    before = people(ui_app, include_hidden=True)
    source, target = before[-1], before[-2]
    page = open_page()
    open_person(page, source["person_id"])
    # Nothing chosen: said beside the control, nothing sent.
    page.click("#person-merge-form button[type=submit]")
    assert page.locator("#person-merge-state.error").inner_text() == "choose the person to merge into"
    assert len(people(ui_app, include_hidden=True)) == len(before)
    # The picker offers the others of the collection, never this person.
    offered = page.eval_on_selector_all("#person-merge-target option", "options => options.map(o => o.value)")
    assert set(offered) == {"", *(p["person_id"] for p in before)} - {source["person_id"]}

    page.select_option("#person-merge-target", target["person_id"])
    page.click("#person-merge-form button[type=submit]")
    page.wait_for_url(f"**#/person/{target['person_id']}")
    page.wait_for_function(
        "n => document.querySelectorAll('#person-faces .person-face').length === n",
        arg=source["face_count"] + target["face_count"],
    )
    after = {p["person_id"]: p for p in people(ui_app, include_hidden=True)}
    assert source["person_id"] not in after
    assert after[target["person_id"]]["face_count"] == source["face_count"] + target["face_count"]
    page.screenshot(path=screenshot_dir / "person-merged.png", full_page=True)

    # A target that went away meanwhile: the API's refusal is shown beside the merge control.
    survivor, gone = list(after)[-2:]
    open_person(page, survivor)
    page.select_option("#person-merge-target", gone)
    call(ui_app, "DELETE", f"/people/{gone}")
    page.click("#person-merge-form button[type=submit]")
    page.locator("#person-merge-state.error").wait_for()
    assert page.locator("#person-merge-state").inner_text() == f"404: no person {gone}"
    assert call(ui_app, "GET", f"/people/{survivor}")["person"]["face_count"] == after[survivor]["face_count"]


def test_hide_and_the_toggle_that_shows_hidden_people(
    open_page: OpenPage, ui_app: App, stored: dict[str, str], screenshot_dir: Path
) -> None:
    visible = people(ui_app)
    person_id = visible[0]["person_id"]
    page = open_page()
    open_person(page, person_id)
    page.click("#person-hide")
    page.locator("#person-hide-state.ok").wait_for()
    assert page.locator("#person-hide").inner_text() == "Unhide"
    assert person_id not in {p["person_id"] for p in people(ui_app)}
    assert person_id in {p["person_id"] for p in people(ui_app, include_hidden=True)}

    page.click("text=All people")
    page.wait_for_function(
        "n => document.querySelectorAll('#people-grid .person').length === n", arg=len(visible) - 1
    )
    assert page.locator(f'#people-grid [data-person-id="{person_id}"]').count() == 0
    page.check("#people-hidden")
    hidden_card = page.locator(f'#people-grid [data-person-id="{person_id}"]')
    hidden_card.wait_for()
    assert hidden_card.get_attribute("data-hidden") == "true"
    assert hidden_card.locator(".count").inner_text().endswith("· hidden")
    wait_thumbs_drawn(page, "#people-grid")
    page.screenshot(path=screenshot_dir / "people-hidden.png", full_page=True)

    hidden_card.locator("a").click()
    page.locator("#person-hide").wait_for()
    page.click("#person-hide")
    page.locator("#person-hide-state.ok").wait_for()
    assert person_id in {p["person_id"] for p in people(ui_app)}


def test_people_by_keyboard_rename_with_enter(
    open_page: OpenPage, ui_app: App, stored: dict[str, str]
) -> None:
    page = open_page("#/people")
    page.locator("#people-grid .person").first.wait_for()
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("!!document.activeElement.closest('#people-grid .person')"):
            break
    else:
        raise AssertionError("no person card reached with Tab")
    person_id = page.evaluate("document.activeElement.closest('.person').dataset.personId")
    page.keyboard.press("Enter")
    page.locator("#person-name").wait_for()
    for _ in range(10):
        if page.evaluate("document.activeElement.id") == "person-name":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "person-name"
    page.keyboard.press("Control+A")
    page.keyboard.type("Grace")
    page.keyboard.press("Enter")
    page.locator("#person-name-state.ok").wait_for()
    assert call(ui_app, "GET", f"/people/{person_id}")["person"]["name"] == "Grace"


def test_people_at_phone_width_fit_and_nothing_moves(
    open_page: OpenPage, ui_app: App, stored: dict[str, str], screenshot_dir: Path
) -> None:
    page = open_page(width=390, height=844)
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
    page.evaluate("location.hash = '#/people'")
    wait_thumbs_drawn(page, "#people-grid")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=screenshot_dir / "phone-people.png", full_page=True)
    person_id = page.locator("#people-grid .person").first.get_attribute("data-person-id")
    assert person_id is not None
    open_person(page, person_id)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=screenshot_dir / "phone-person.png", full_page=True)
    assert page.evaluate("window.layoutShifts") == []
