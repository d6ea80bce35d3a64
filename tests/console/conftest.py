"""Browser tests of the console: headless Debian Chromium driven by Playwright, one browser per session.

Fixtures:
    browser      (session)  a Playwright Browser on /usr/bin/chromium (THREADLINE_CHROMIUM overrides the path)
    server       (module)   a server with an API key, an admin key, the test price file (PRICES) and the scripted
                            fake LLM, per backend
    console      (function) Console: a signed-in page at 1280x900 (console.page) plus helpers; screenshots go to
                            the test's output folder (console.shot(name))
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fakes.fake_openai import FakeOpenAI
from support.llm import llm_server
from support.server import ServerFactory, ServerHandle

KEY = "sk-console-test-key-1"
ADMIN_KEY = "sk-console-admin-key-1"
# The test price file (USD per million tokens / per unit): round, unreal numbers, so the page's figures are easy to
# check by hand and cannot come from genai-prices.
PRICES = {
    "models": {"gpt-4o": {"input_per_mtok": 1000.0, "cached_input_per_mtok": 500.0, "output_per_mtok": 2000.0}},
    "tools": {"code_interpreter_session": 0.25, "vector_store_gb_day": 0.1, "file_search_call": 0.5},
}
CHROMIUM = os.environ.get("THREADLINE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 20_000


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """Package scope: Playwright's sync API keeps an event loop running in this thread while it is open, and the
    suites after this one call asyncio.run(), which refuses to run inside a running loop."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup-browser.sh (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def prices() -> dict[str, Any]:
    return PRICES


def console_server(
    server_factory: ServerFactory, backend: str, fake_llm: FakeOpenAI, price_file: Path, **env: str
) -> Iterator[ServerHandle]:
    """A server with this package's project key, admin key and prices, plus `env`, answering from `fake_llm`."""
    yield from llm_server(
        server_factory,
        backend,
        fake_llm,
        THREADLINE_API_KEYS=KEY,
        THREADLINE_ADMIN_KEYS=ADMIN_KEY,
        THREADLINE_PRICES_FILE=str(price_file),
        **env,
    )


@pytest.fixture(scope="module")
def server(
    server_factory: ServerFactory, backend: str, fake_llm: FakeOpenAI, price_file: Path
) -> Iterator[ServerHandle]:
    sandbox = {"THREADLINE_SANDBOX_TIMEOUT_S": "20", "THREADLINE_SANDBOX_WARM_POOL": "1"}
    yield from console_server(server_factory, backend, fake_llm, price_file, **sandbox)


@pytest.fixture(autouse=True)
def _fresh_fake(fake_llm: FakeOpenAI) -> None:
    fake_llm.reset()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go; THREADLINE_CONSOLE_SHOTS also copies them there (used to refresh docs/console/)."""
    return tmp_path_factory.mktemp("console-screenshots")


class Console:
    def __init__(self, page: Any, server: ServerHandle, shots: Path, backend: str) -> None:
        self.page = page
        self.server = server
        self.shots = shots
        self.backend = backend
        self.errors: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    @property
    def url(self) -> str:
        return self.server.root_url + "/"

    def go(self, hash_path: str) -> None:
        """Open `hash_path` and wait until the page shows it (not the previous page's content)."""
        self.page.goto(self.url + hash_path)
        self.page.wait_for_function(
            "h => document.getElementById('main').dataset.route === h", arg=hash_path, timeout=WAIT_MS
        )
        self.page.wait_for_selector("main h1", timeout=WAIT_MS)

    def shot(self, name: str, full_page: bool = True) -> Path:
        path = self.shots / f"{self.backend}-{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        copy_to = os.environ.get("THREADLINE_CONSOLE_SHOTS")
        if copy_to and self.backend == "sqlite":
            Path(copy_to).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(copy_to) / f"{name}.png")
        return path

    def assert_labelled(self) -> None:
        """Every form control on the page has an accessible name (a <label> or aria-label)."""
        unlabelled = self.page.evaluate(
            """() => [...document.querySelectorAll('input, select, textarea')]
                .filter(el => el.type !== 'hidden')
                .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
                .map(el => el.outerHTML.slice(0, 120))"""
        )
        assert unlabelled == []


@pytest.fixture
def console(browser: Any, server: ServerHandle, shots: Path, backend: str) -> Iterator[Console]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(f"sessionStorage.setItem('threadline.console.key', {KEY!r});")
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    c = Console(page, server, shots, backend)
    yield c
    context.close()
    assert c.errors == [], f"JavaScript errors on the page: {c.errors}"


@pytest.fixture
def api(server: ServerHandle) -> Iterator[httpx.Client]:
    """Raw HTTP on the module's server with the key (not spec-validating: extension endpoints are used too)."""
    headers = {"Authorization": f"Bearer {KEY}", "OpenAI-Beta": "assistants=v2"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as c:
        yield c


def wait_until(predicate: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def client(server: ServerHandle, validator: Any) -> Iterator[Any]:
    """The official SDK on the module's server with the key, validating every JSON response against the spec."""
    from support.sdk import make_client

    c = make_client(server.base_url, api_key=KEY, validator=validator)
    yield c
    c.close()


@pytest.fixture
def spec_http(server: ServerHandle, validator: Any) -> Iterator[httpx.Client]:
    from support.sdk import raw_http_client

    with raw_http_client(server.base_url, api_key=KEY, validator=validator) as c:
        yield c
