"""axe-core, run on a page in Chromium: the copy of axe.min.js that the
axe-playwright-python package ships, so the check needs no network.

    problems = serious_violations(page)
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from playwright.sync_api import Page

AXE_SCRIPT = (files("axe_playwright_python") / "axe.min.js").read_text(encoding="utf-8")

# The impacts that fail a test; "minor" and "moderate" findings are reported by axe too.
BLOCKING_IMPACTS = frozenset({"serious", "critical"})

# The email preview's frame is sandboxed with scripts off, so axe cannot run inside it;
# the mail's own markup is checked by the markup tests instead.
AXE_OPTIONS = {"resultTypes": ["violations"], "iframes": False}


def serious_violations(page: Page) -> list[str]:
    """Each serious or critical axe-core violation on `page`, with the elements at fault."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE_SCRIPT)
    result: dict[str, Any] = page.evaluate("options => axe.run(document, options)", AXE_OPTIONS)
    return [
        f"{violation['id']} ({violation['impact']}): {violation['help']} at "
        + ", ".join(str(node["target"]) for node in violation["nodes"])
        for violation in result["violations"]
        if violation["impact"] in BLOCKING_IMPACTS
    ]


def horizontal_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than the window (0: it fits)."""
    overflow: int = page.evaluate(
        "() => Math.max(0, document.documentElement.scrollWidth - window.innerWidth)"
    )
    return overflow
