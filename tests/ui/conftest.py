"""Browser tests: the real gateway (uvicorn subprocess, demo gallery) driven by Debian's Chromium through
Playwright. Every page is watched for console errors and uncaught exceptions; any fails the test.

Screenshots land in test-artifacts/ui/ (the README names it), one per page state a test reaches.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_api import Gateway, run_gateway

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("LOOKALIKE_UI_ARTIFACTS", REPO / "test-artifacts" / "ui"))
CHROMIUM = os.environ.get("LOOKALIKE_CHROMIUM", "/usr/bin/chromium")
ADMIN_TOKEN = secrets.token_hex(16)

playwright_sync = pytest.importorskip("playwright.sync_api", reason="pip install playwright (in the dev extras)")


# The package, not the session: Playwright's sync API runs an event loop on the main thread while it is open,
# and later tests of the same process call asyncio.run (tests/test_db.py).
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """Headless Chromium. Missing: skipped on a user's machine, a failure under CI=true."""
    if not Path(CHROMIUM).is_file():
        message = f"no Chromium at {CHROMIUM} (apt-get install chromium, or set LOOKALIKE_CHROMIUM)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with playwright_sync.sync_playwright() as p:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def ui_gateway(demo_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The embedded gateway on a private copy of the demo gallery, with an admin token."""
    work = tmp_path_factory.mktemp("ui-gateway")
    shutil.copytree(demo_data_dir, work / "data")
    with run_gateway(work / "data", work, LOOKALIKE_ADMIN_TOKEN=ADMIN_TOKEN) as running:
        yield running


class PageErrors:
    """Console errors and uncaught exceptions of one page, less the console errors the test expects."""

    def __init__(self, expected: tuple[str, ...] = ()) -> None:
        self.messages: list[str] = []
        self.expected = expected

    def console(self, message: Any) -> None:
        if message.type == "error" and not any(text in message.text for text in self.expected):
            self.messages.append(f"console.error: {message.text} at {message.location}")

    def page_error(self, error: Any) -> None:
        self.messages.append(f"uncaught: {error}")


@pytest.fixture
def open_page(browser: Any, ui_gateway: Gateway) -> Iterator[Callable[..., Any]]:
    """open_page(path="/", locale="en-US", viewport=(1280, 900), mobile=False, expected_errors=()) -> a Playwright
    page at the path.

    At the end of the test, every page opened must have logged no console error and thrown nothing, except console
    errors containing one of `expected_errors` (Chromium logs every 4xx answer, e.g. the 401 of a refused login)."""
    opened: list[tuple[Any, PageErrors]] = []

    def open_(
        path: str = "/",
        *,
        locale: str = "en-US",
        viewport: tuple[int, int] = (1280, 900),
        mobile: bool = False,
        expected_errors: tuple[str, ...] = (),
    ) -> Any:
        context = browser.new_context(
            base_url=ui_gateway.base_url,
            locale=locale,
            viewport={"width": viewport[0], "height": viewport[1]},
            is_mobile=mobile,
            has_touch=mobile,
            device_scale_factor=2 if mobile else 1,
        )
        page = context.new_page()
        errors = PageErrors(expected_errors)
        page.on("console", errors.console)
        page.on("pageerror", errors.page_error)
        page.set_default_timeout(30_000)
        opened.append((page, errors))
        page.goto(path)
        return page

    yield open_
    messages = [m for _, errors in opened for m in errors.messages]
    for page, _ in opened:
        page.context.close()
    assert not messages, "the browser reported errors:\n" + "\n".join(messages)


@pytest.fixture
def screenshot() -> Callable[[Any, str], Path]:
    """screenshot(page, name): a full-page PNG under test-artifacts/ui/."""

    def take(page: Any, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
