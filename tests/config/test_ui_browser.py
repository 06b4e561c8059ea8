"""The admin web pages in a real headless Chromium, against the real ``serve`` process.

Debian's Chromium is driven by Playwright; no browser is ever downloaded. A missing
/usr/bin/chromium fails the test (it is a dependency of the suite, like RabbitMQ).
Each page is saved as a screenshot under tests/artifacts/screenshots/.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from config.auth import create_api_key
from router.publisher import Publisher, new_event
from tests.helpers import free_port, wait_until
from tests.receiver import Receiver

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
ORDER = {"order": {"id": "ord_7", "reference": "R-7", "status": "done"}}

# One database backend is enough here: the pages' queries run on both in test_ui.py.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@dataclass
class Service:
    """A running ``webhook-router serve`` and the admin key of account acme."""

    base_url: str
    amqp_url: str
    admin_key: str
    viewer_key: str

    def api(self, path: str) -> Any:
        """GET a JSON API path as acme's admin."""
        response = httpx.get(
            self.base_url + path, headers={"authorization": f"Bearer {self.admin_key}"}
        )
        response.raise_for_status()
        return response.json()

    def api_post(self, path: str, body: dict[str, Any]) -> Any:
        """POST a JSON API path as acme's admin."""
        response = httpx.post(
            self.base_url + path,
            json=body,
            headers={"authorization": f"Bearer {self.admin_key}"},
        )
        response.raise_for_status()
        return response.json()


def _ready(base_url: str) -> bool:
    try:
        return httpx.get(base_url + "/readyz").status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def service(amqp_url: str, database_url: str, engine: Engine, tmp_path: Path) -> Iterator[Service]:
    """``webhook-router serve`` (API and one worker) on the private vhost and database."""
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {
        **os.environ,
        "ROUTER_AMQP_URL": amqp_url,
        "ROUTER_DATABASE_URL": database_url,
        "ROUTER_ALLOW_PRIVATE_TARGETS": "true",
        "ROUTER_RETRY_SCHEDULE": "0.2,0.4",
        "ROUTER_RETRY_JITTER": "0",
        "ROUTER_LOG_LEVEL": "WARNING",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    subprocess.run([sys.executable, "-m", "router.cli", "topology", "sync"], env=env, check=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "router.cli", "serve", "--port", str(port)], env=env
    )
    sessions = sessionmaker(engine)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ready(base_url), 30, "serve ready")
        yield Service(
            base_url,
            amqp_url,
            admin_key=create_api_key(sessions, "acme", "admin"),
            viewer_key=create_api_key(sessions, "acme", "viewer"),
        )
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(40) == 0


@pytest.fixture
def chromium() -> Iterator[Browser]:
    """Debian's headless Chromium, driven by Playwright."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium package "
            "(apt-get install chromium); the suite never downloads browsers"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Page, name: str) -> None:
    """Save the whole page as tests/artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def sign_in(browser: Browser, service: Service, key: str) -> Page:
    """A fresh browser context (its own cookies), signed in with ``key``."""
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.goto(service.base_url + "/ui/webhooks")
    expect(page).to_have_url(service.base_url + "/ui/login")
    page.get_by_label("API key", exact=True).fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Webhooks")).to_be_visible()
    return page


def wait_for_attempt(
    service: Service, webhook_id: str, matches: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The newest logged attempt of the webhook that ``matches``, once there is one."""

    def find() -> dict[str, Any] | None:
        items = service.api(f"/v1/webhooks/{webhook_id}/logs")["items"]
        return next((item for item in items if matches(item)), None)

    found: dict[str, Any] = wait_until(find, 20, "the attempt")
    return found


def test_admin_creates_tests_reads_logs_and_replays(
    service: Service, chromium: Browser, receiver: Receiver
) -> None:
    # Given an admin on the sign-in page
    page = chromium.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.goto(service.base_url + "/ui/webhooks")
    expect(page).to_have_url(service.base_url + "/ui/login")
    expect(page.locator(".topbar")).to_have_css("display", "flex")  # the stylesheet loaded
    screenshot(page, "login")
    # When a wrong key is tried, then the right one
    page.get_by_label("API key", exact=True).fill("wr_wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("unknown API key")).to_be_visible()
    page.get_by_label("API key", exact=True).fill(service.admin_key)
    page.get_by_role("button", name="Sign in").click()
    # Then the (empty) webhooks list shows
    expect(page.get_by_role("heading", name="Webhooks")).to_be_visible()
    expect(page.get_by_text("No webhooks yet.")).to_be_visible()

    # When the "+" form is saved with a bad URL and no events
    page.get_by_role("link", name="New webhook").click()
    page.get_by_label("Name", exact=True).fill("Deliveries to ERP")
    page.get_by_label("URL", exact=True).fill("receiver.example/hooks")
    page.get_by_role("button", name="Save").click()
    # Then both errors show next to their fields, the name kept
    expect(page.locator("#url-error")).to_have_text("must be an absolute http:// or https:// URL")
    expect(page.locator("#events-error")).to_have_text("choose at least one event")
    expect(page.get_by_label("Name", exact=True)).to_have_value("Deliveries to ERP")
    screenshot(page, "form-errors")

    # When the URL is fixed, bearer auth set, the Status category and one route event picked
    page.get_by_label("URL", exact=True).fill(receiver.url + "/hooks")
    page.get_by_label("Bearer token").check()
    page.get_by_label("Token", exact=True).fill("tok-never-shown")
    page.locator('[data-category="status"] input.category-box').check()
    page.locator('input[value="route.started"]').check()
    page.get_by_label("Include all work order information").check(force=True)
    status_boxes = page.locator('[data-category="status"] input[name="events"]')
    expect(status_boxes).to_have_count(8)
    for index in range(8):
        expect(status_boxes.nth(index)).to_be_checked()
    page.get_by_role("button", name="Save").click()
    # Then the signing secret shows, this once
    expect(page.get_by_text("will not be shown again")).to_be_visible()
    secret = page.locator("#signing-secret").inner_text()
    screenshot(page, "created")
    assert secret.startswith("whsec_")
    page.get_by_role("link", name="Done").click()
    row = page.locator("tr", has_text="Deliveries to ERP")
    expect(row.locator(".status-none")).to_be_visible()
    webhook = service.api("/v1/webhooks")["items"][0]
    assert len(webhook["events"]) == 9
    assert webhook["include_order"] is True

    # When a test is sent from the row's "..." menu
    row.locator("summary").click()
    row.get_by_role("button", name="Send test").click()
    # Then its attempt shows, delivered, and the logs have a check mark
    expect(page.get_by_text("Test event delivered.")).to_be_visible()
    assert len(receiver.wait_for(1)) == 1
    page.get_by_role("link", name="Deliveries to ERP logs").click()
    expect(page.locator(".log-row .status-ok")).to_have_count(1)

    # When the receiver fails and a real event arrives on the bus
    receiver.status = 500
    receiver.failure_body = b'{"error": "receiver exploded"}'
    with Publisher(service.amqp_url) as publisher:
        publisher.publish(new_event("delivery.done", "acme", "paris", ORDER))
    wait_for_attempt(service, webhook["id"], lambda a: a["outcome"] == "dead_lettered")
    page.reload()
    # Then its three attempts show crosses under the check mark
    expect(page.locator(".log-row .status-failed")).to_have_count(3)
    expect(page.locator(".log-row .status-ok")).to_have_count(1)
    screenshot(page, "logs")
    # When only errors are shown
    page.get_by_role("link", name="Errors only").click()
    expect(page.locator(".log-row")).to_have_count(3)
    expect(page.locator(".log-row .status-ok")).to_have_count(0)
    screenshot(page, "logs-errors-only")
    # When the newest failure is opened
    page.locator(".log-row").first.click()
    # Then the receiver's answer and the error show
    expect(page.locator(".response-body")).to_contain_text('"error": "receiver exploded"')
    expect(page.locator(".error-text")).to_contain_text("500")
    screenshot(page, "log-detail")
    detail_url = page.url.removeprefix(service.base_url)

    # When the receiver recovers and the attempt is replayed
    receiver.status = 200
    page.get_by_role("button", name="Replay").click()
    expect(page.get_by_text("queued for delivery again")).to_be_visible()
    wait_for_attempt(
        service, webhook["id"], lambda a: a["trigger"] == "manual" and a["status"] == "succeeded"
    )
    page.reload()
    # Then the replayed attempt shows a check mark, on top
    newest = page.locator(".log-row").first
    expect(newest.locator(".status-ok")).to_be_visible()
    expect(newest).to_contain_text("manual")
    # And the list shows it as the webhook's last delivery (beside one never delivered)
    service.api_post(
        "/v1/webhooks",
        {"name": "Dispatch board", "url": receiver.url + "/board", "events": ["route.started"]},
    )
    page.get_by_role("link", name="Webhooks").first.click()
    row = page.locator("tr", has_text="Deliveries to ERP")
    expect(row.locator(".status-ok")).to_be_visible()
    expect(page.locator("tr", has_text="Dispatch board").locator(".status-none")).to_be_visible()
    row.locator("summary").click()
    expect(row.get_by_role("link", name="Edit")).to_be_visible()
    screenshot(page, "webhooks")
    # And neither the signing secret nor the token was ever on a page but the first
    for path in ("/ui/webhooks", f"/ui/webhooks/{webhook['id']}/edit", detail_url):
        page.goto(service.base_url + path)
        assert secret not in page.content()
        assert "tok-never-shown" not in page.content()


def test_a_viewer_sees_no_edit_controls(
    service: Service, chromium: Browser, receiver: Receiver
) -> None:
    # Given a webhook made by the admin
    admin = sign_in(chromium, service, service.admin_key)
    admin.get_by_role("link", name="New webhook").click()
    admin.get_by_label("Name", exact=True).fill("Read me")
    admin.get_by_label("URL", exact=True).fill(receiver.url)
    admin.locator('input[value="delivery.done"]').check()
    admin.get_by_role("button", name="Save").click()
    expect(admin.get_by_text("will not be shown again")).to_be_visible()
    # When a viewer signs in
    page = sign_in(chromium, service, service.viewer_key)
    # Then there is no "+", and the menu only views and reads logs
    expect(page.get_by_text("viewer", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="New webhook")).to_have_count(0)
    row = page.locator("tr", has_text="Read me")
    row.locator("summary").click()
    expect(row.get_by_role("link", name="View")).to_be_visible()
    expect(row.get_by_role("button", name="Send test")).to_have_count(0)
    expect(row.get_by_role("link", name="Delete")).to_have_count(0)
    # And the webhook's settings show disabled, without Save
    row.get_by_role("link", name="View").click()
    expect(page.get_by_label("Name", exact=True)).to_be_disabled()
    expect(page.get_by_role("button", name="Save")).to_have_count(0)
    screenshot(page, "view-read-only")
    # And its logs have no Send test nor Replay
    page.goto(page.url.replace("/edit", "/logs"))
    expect(page.get_by_role("heading", name="Read me logs")).to_be_visible()
    expect(page.get_by_role("button")).to_have_count(1)  # Sign out
