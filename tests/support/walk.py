"""A visit to our pages in Chromium at a desktop's width and a phone's, for the browser
tests: one window per width on the live server, each page of ours screenshotted into
artifacts/screenshots/ (git-ignored) for a person to look at and checked, its faults
gathered so that one run reports every page's together; and the way to the database
from a test whose thread Playwright's event loop holds.

    with Visit(browser, live_server.url, width, prefix="walk-") as visit:
        visit.log_in("/admin/login/", "root")
        visit.check("admin-index")
        visit.assert_no_faults()
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Self

from django.db import connections
from playwright.sync_api import Browser

from .accessibility import horizontal_overflow, serious_violations
from .browser import CspViolations

WIDTHS = {"desktop": 1400, "phone": 390}  # the window's width, in CSS pixels
HEIGHT = 900
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
PASSWORD = "correct horse battery staple"  # every test user's, make_artist's too
TIMEOUT_MS = 15_000  # for each wait of a page: a busy machine is slow


def off_the_event_loop[T](query: Callable[[], T]) -> T:
    """Run an ORM query in a plain thread: Playwright's sync API keeps an event loop
    running in the test's thread, where Django refuses (and would leak) connections."""

    def run() -> T:
        try:
            return query()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


class Visit:
    """One browser window at one of WIDTHS. `check` screenshots the page it shows and
    notes what is wrong there: a Content-Security-Policy violation since the last check,
    axe-core's serious and critical findings, no level-one heading (axe calls that
    moderate; a reader, serious), a page wider than the window. `assert_no_faults`
    fails on any of them, and on a violation since the last check."""

    def __init__(self, browser: Browser, url: str, width: str, *, prefix: str = "") -> None:
        self.width = width
        self.prefix = prefix
        self.context = browser.new_context(
            base_url=url, viewport={"width": WIDTHS[width], "height": HEIGHT}
        )
        self.csp = CspViolations(self.context)
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.faults: list[str] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.context.close()

    def log_in(self, path: str, username: str) -> None:
        self.page.goto(path)
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", PASSWORD)
        self.page.click("[type=submit]")

    def screenshot(self, name: str) -> None:
        self.page.wait_for_load_state("load")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.prefix}{name}-{self.width}.png"
        self.page.screenshot(path=str(path), full_page=True)

    def check(self, name: str) -> None:
        self.screenshot(name)
        page = self.page
        self.faults += [f"{name}: CSP: {seen}" for seen in self.csp.seen]
        self.faults += [f"{name}: {problem}" for problem in serious_violations(page)]
        # axe-core copies a stylesheet that @imports another (the admin's forms.css) into
        # <style> elements of its own while it measures, which the policy blocks: those
        # are the check's, not the page's, and are let go.
        page.wait_for_timeout(300)
        self.csp.seen.clear()
        if page.locator("h1").count() == 0:
            self.faults.append(f"{name}: no level-one heading")
        overflow = horizontal_overflow(page)
        if overflow:
            self.faults.append(f"{name}: {overflow} px wider than the window")

    def assert_no_faults(self) -> None:
        assert self.faults == [], "\n".join(self.faults)
        self.csp.assert_none()
