"""Debian's Chromium under Playwright, and a watch for Content-Security-Policy
violations on every page and frame a test opens.

    with chromium() as browser:
        context = browser.new_context()
        violations = CspViolations(context)
        page = context.new_page()
        ...
        violations.assert_none()

A violation is seen twice over: the `securitypolicyviolation` event each document fires
(reported through a binding installed before any script of the page runs) and the
console message Chromium logs for it (which covers frames that run no script at all).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

_REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolation(
    `${event.effectiveDirective} blocked ${event.blockedURI || "inline"} ` +
    `in ${event.documentURI} (${event.sourceFile || ""}:${event.lineNumber})`
  );
});
"""


@contextmanager
def chromium() -> Iterator[Browser]:
    """Chromium from Debian's package; fails the test (not skips it) when it is missing."""
    if not Path(CHROMIUM).exists():
        raise AssertionError(f"{CHROMIUM} is missing: apt-get install chromium (make test does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class CspViolations:
    """Every CSP violation reported by the pages of `context` (and their frames)."""

    def __init__(self, context: BrowserContext) -> None:
        self.seen: list[str] = []
        context.expose_binding("__cspViolation", lambda _source, text: self.seen.append(text))
        context.add_init_script(_REPORT_VIOLATIONS)
        context.on("page", self.watch)

    def watch(self, page: Page) -> None:
        page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.seen.append(f"console: {message.text}")

    def assert_none(self) -> None:
        assert self.seen == [], "Content-Security-Policy violations:\n" + "\n".join(self.seen)
