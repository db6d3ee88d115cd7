"""Fixtures for the tests in Chromium: the browser, and each width a page is seen at."""

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Browser

if TYPE_CHECKING:
    from tests.support.browser import chromium
    from tests.support.walk import WIDTHS
else:
    from support.browser import chromium
    from support.walk import WIDTHS


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Function-scoped: Playwright's event loop must be gone before the test database is
    flushed, or Django refuses ORM calls from a thread with a running loop. A test's data
    is made before this starts, for the same reason."""
    with chromium() as launched:
        yield launched


@pytest.fixture(params=sorted(WIDTHS), ids=str)
def width(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name
