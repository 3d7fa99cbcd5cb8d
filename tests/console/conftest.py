"""Console fixtures: one stack (nats-server, engine, API, console) for the console tests, one
browser per module."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from natsflow_engine.server import EmbeddedNatsServer

sys.path.insert(0, str(Path(__file__).parent))

from console_kit import Stack

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def tenants() -> dict[str, str]:
    """User name -> tenant: alice in tenant a, bob in tenant b (unique per session)."""
    n = os.getpid() % 100_000
    return {"alice": f"con-a-{n}", "bob": f"con-b-{n}"}


@pytest.fixture(scope="package")
def stack(tenants: dict[str, str]) -> Iterator[Stack]:
    """Its own nats-server: the stack's engine and API server must not serve other tests."""
    with EmbeddedNatsServer() as server:
        running = Stack(server.url, tenants).start()
        try:
            yield running
        finally:
            running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One chromium for the browser test module. Not session-wide: Playwright's sync API keeps
    an event loop running in the main thread while it is open, and pytest-asyncio's tests of
    the other modules need that thread free."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is absent (apt-get install -y chromium; .ci/run does)"
        if os.environ.get("NATSFLOW_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " and NATSFLOW_REQUIRE_BROWSER=1 forbids skipping")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def console_errors() -> Iterator[list[str]]:
    """JavaScript errors seen by the test's pages; the test fails if any remain at its end."""
    errors: list[str] = []
    yield errors
    assert not errors, f"JavaScript console errors: {errors}"


@pytest.fixture
def open_page(
    browser: object, stack: Stack, console_errors: list[str]
) -> Iterator[Callable[[str, str], object]]:
    """open_page(token, hash) -> a signed-in page of a fresh browser context at ``/#hash``."""
    from playwright.sync_api import Browser, Page

    assert isinstance(browser, Browser)
    contexts = []

    def open_(token: str, route: str = "/instances") -> Page:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: console_errors.append(str(e)))
        page.goto(f"{stack.url}/login#token={token}")
        page.wait_for_url(f"{stack.url}/")
        page.goto(f"{stack.url}/#{route}")
        return page

    yield open_
    for context in contexts:
        context.close()
