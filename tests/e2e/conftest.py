"""Browser tests of the page (real Chromium through Python Playwright).

Fixtures
--------
``anvil``            session: a real ``anvil --port <free> --silent`` (:class:`Anvil`).
``built_dist``       session: runs ``node backend/web/build.mjs`` once (set SLT_E2E_SKIP_BUILD=1
                     to test the current dist/ as is).
``browser``          session: Chromium (``/usr/bin/chromium``, or $SLT_CHROMIUM).
``static_site``      a server for backend/web/dist with the backend's CSP and a GET /config stub
                     (:class:`StaticSite`, reset for every test); set ``static_site.fake`` to a
                     :class:`FakeApi` to answer the rest of docs/API.md in memory.
``wallet``           the injected EIP-1193 + EIP-6963 wallet (:class:`InjectedWallet`), bridged
                     to Python and forwarding to ``anvil``; configure it before ``dapp.open()``.
``recorder``         every request, console message and page error (:class:`RequestRecorder`).
``dapp``             opens the page: ``page = dapp.open()`` or ``dapp.open(mobile=True)``;
                     ``dapp.shot(page, "name")`` saves artifacts/screenshots/name.png.
``backend_server``   session: the real backend (create_app + workers) on ``anvil`` with the
                     contract deployed; skipped while ``backend.create_app`` cannot be imported.
                     ``backend_server.advance_time(n)`` moves its clock and Anvil's together.
``real_dapp``        like ``dapp`` but opening the page served by ``backend_server``.
``real_dapp_for``    ``dapp, wallet = real_dapp_for(3)``: the real page as another Anvil account,
                     with its own wallet and browser contexts (several wallets in one test).

Run: ``.venv/bin/python -m pytest -p no:ape_test tests/e2e``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DIST,
    ROOT,
    SCREENSHOTS,
    WEB,
    Anvil,
    InjectedWallet,
    RequestRecorder,
    StaticSite,
    dev_address,
    find_anvil,
    free_port,
)

DESKTOP = {"width": 1280, "height": 860}
MOBILE = {"width": 390, "height": 844}


def _require(what: str, hint: str) -> None:
    """Skip, or fail when the environment says the browser tests must run."""
    message = f"{what} is missing: {hint}"
    if os.environ.get("SLT_E2E_REQUIRED") == "1":
        pytest.fail(message)
    pytest.skip(message)


# --------------------------------------------------------------------------------------------
# Session-wide pieces
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    binary = find_anvil()
    if binary is None:
        _require("anvil", "run `make setup` (it links .cache/bin/anvil from npm)")
    node = Anvil(binary).start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def built_dist() -> Path:
    if os.environ.get("SLT_E2E_SKIP_BUILD") != "1":
        node = shutil.which("node")
        if node is None:
            _require("node", "install Node.js to build the page")
        result = subprocess.run(
            [node, str(WEB / "build.mjs")], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"build failed:\n{result.stdout}\n{result.stderr}"
    assert (DIST / "index.html").is_file() and (DIST / "app.js").is_file(), "dist/ is empty"
    return DIST


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require("playwright", "install the test extras (pip install -e '.[test]')")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright_instance: Any) -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        _require("Chromium", "run `make chromium` (apt-get install -y chromium)")
    # A fake microphone (a beep) that needs no permission prompt: the recorder can be tested.
    media = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
    b = playwright_instance.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + media)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(scope="session")
def _static_server(built_dist: Path) -> Iterator[StaticSite]:
    site = StaticSite(built_dist).start()
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture
def static_site(_static_server: StaticSite, anvil: Anvil) -> StaticSite:
    """The built page behind the backend's CSP, with ``GET /config`` answering
    ``static_site.config`` (reset per test; chain id = Anvil's) and a JSON 404 elsewhere."""
    _static_server.reset(chain_id=anvil.chain_id, rpc_url=anvil.url)
    return _static_server


# --------------------------------------------------------------------------------------------
# Per test: wallet, recorder, browser context and page
# --------------------------------------------------------------------------------------------


@pytest.fixture
def wallet(anvil: Anvil) -> InjectedWallet:
    """The injected wallet. Before ``dapp.open()``: ``inject``, ``announce`` (EIP-6963),
    ``legacy`` (window.ethereum), ``use_wallets("A", "B")``. Any time: ``account_index``,
    ``chain_id`` (reported), ``known_chains``, ``reject`` (methods answering 4001),
    ``errors`` ({method: (code, message)}). Read back ``calls``, ``methods_called()``,
    ``params_of(method)`` and ``transactions``."""
    return InjectedWallet(anvil)


@pytest.fixture
def recorder() -> RequestRecorder:
    return RequestRecorder()


@dataclass
class Dapp:
    browser: Any
    wallet: InjectedWallet
    recorder: RequestRecorder
    url: str
    contexts: list[Any] = field(default_factory=list)

    def open(
        self,
        path: str = "/",
        *,
        mobile: bool = False,
        viewport: dict[str, int] | None = None,
        wait_for: str | None = "body[data-view]:not([data-view='loading'])",
        color_scheme: str = "light",
    ) -> Any:
        """A new context + page with the wallet injected, the recorder attached, at ``path``."""
        context = self.browser.new_context(
            viewport=viewport or (MOBILE if mobile else DESKTOP),
            device_scale_factor=1,
            is_mobile=mobile,
            has_touch=mobile,
            service_workers="block",
            color_scheme=color_scheme,
            locale="en-GB",
            timezone_id="UTC",
        )
        self.contexts.append(context)
        self.recorder.attach_context(context)
        self.wallet.install(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        self.recorder.attach_page(page)
        page.goto(self.url + path)
        if wait_for:
            page.wait_for_selector(wait_for, state="attached")
        return page

    @staticmethod
    def shot(page: Any, name: str, *, full_page: bool = True) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        if full_page:  # the sticky header would otherwise be drawn where the page scrolled to
            page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(path), full_page=full_page, animations="disabled")
        return path

    def close(self) -> None:
        for c in self.contexts:
            c.close()
        self.contexts.clear()


@pytest.fixture
def dapp(browser: Any, wallet: InjectedWallet, recorder: RequestRecorder, static_site: StaticSite):
    """Open the page from ``static_site`` (the rendering tests). For the real backend, build a
    ``Dapp(browser, wallet, recorder, backend_server.url)`` instead."""
    d = Dapp(browser, wallet, recorder, static_site.url)
    try:
        yield d
    finally:
        d.close()


# --------------------------------------------------------------------------------------------
# The real backend
# --------------------------------------------------------------------------------------------


class MovableClock:
    """The backend's clock: this machine's time plus an offset that only moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class BackendServer:
    url: str
    settings: Any
    app: Any
    record: dict[str, Any]
    anvil: Anvil
    clock: MovableClock

    @property
    def contract(self) -> str:
        return str(self.record["address"])

    @property
    def services(self) -> Any:
        """The app's services (``store``, ``vault``, ``chain``, ``worker``, ...)."""
        return self.app.extensions["slt"]

    def advance_time(self, seconds: int) -> None:
        """Move Anvil's clock and the backend's together, so both see the same expiries.

        Time only moves forward and the server is shared by the session: keep the total well
        under ``nonce_ttl + 300`` s (600 s), because the page signs in with the browser's own
        clock and the backend refuses a sign-in message older than that."""
        self.anvil.increase_time(seconds)
        self.clock.offset += seconds


@pytest.fixture(scope="session")
def backend_server(
    tmp_path_factory: pytest.TempPathFactory, anvil: Anvil, built_dist: Path
) -> Iterator[BackendServer]:
    """The real backend: ``create_app(settings)`` with its workers, served by werkzeug in a
    thread on a free port, on ``anvil`` with the contract freshly deployed (tests/slt_harness).
    Its clock is :class:`MovableClock`: ``backend_server.advance_time(n)`` moves it and Anvil's
    forward together (expiry must be seen by both).
    The relayer (minter) is Anvil account 1 and the admin account 0: give the injected wallet
    another account (``wallet.account_index = 2``). Skipped while ``backend.create_app`` cannot
    be imported."""
    try:
        from backend import Settings, create_app
    except ImportError as exc:
        pytest.skip(f"backend.create_app cannot be imported yet ({exc}); real backend pending")
    from slt_harness import ANVIL_KEYS, deploy
    from werkzeug.serving import make_server

    data_dir = tmp_path_factory.mktemp("slt-backend")
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    record = deploy(
        anvil.url,
        data_dir / "deployments" / "ethereum-local.json",
        minter=dev_address(1),
        base_uri=f"{public_url}/metadata/",
    )
    settings = Settings(
        data_dir=data_dir / "var",
        rpc_url=anvil.url,
        deployment_file=data_dir / "deployments" / "ethereum-local.json",
        relayer_key=ANVIL_KEYS[1],
        public_url=public_url,
        rate_limits_enabled=False,
        sweep_interval=0.2,
        follow_interval=0.1,
        outbox_interval=0.1,
        chain_timeout=2.0,
    )
    clock = MovableClock()
    app = create_app(settings, clock=clock, start_workers=True)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield BackendServer(public_url, settings, app, record, anvil, clock)
    finally:
        server.shutdown()
        server.server_close()
        services = app.extensions["slt"]
        services.worker.stop()
        services.store.close()


@pytest.fixture
def real_dapp(browser: Any, wallet: InjectedWallet, recorder: RequestRecorder, backend_server):
    """Like ``dapp``, but the page comes from the real backend; the wallet uses account 2."""
    wallet.account_index = 2
    d = Dapp(browser, wallet, recorder, backend_server.url)
    try:
        yield d
    finally:
        d.close()


@pytest.fixture
def real_dapp_for(browser: Any, recorder: RequestRecorder, backend_server, anvil: Anvil):
    """Open the real backend's page as another Anvil account, in its own browser context and
    with its own injected wallet: ``dapp, wallet = real_dapp_for(3)``; ``dapp.open()`` as usual.
    All share ``recorder``. Accounts 0 (admin) and 1 (relayer) are taken; ``real_dapp`` is 2
    (test_journey uses 3, 4 and 5)."""
    made: list[Dapp] = []

    def make(account_index: int) -> tuple[Dapp, InjectedWallet]:
        w = InjectedWallet(anvil)
        w.account_index = account_index
        d = Dapp(browser, w, recorder, backend_server.url)
        made.append(d)
        return d, w

    try:
        yield make
    finally:
        for d in made:
            d.close()
