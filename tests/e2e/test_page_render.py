"""PAGE-RENDERING TESTS: the built page served by a tiny static server with a stub for
GET /config only (no backend). They check that the page renders under the backend's CSP,
finds wallets, and shows the "no wallet", "wrong chain", "rejected" and "server unreachable"
messages. The journey against the real backend lives elsewhere, once the backend lands."""

from __future__ import annotations

from playwright.sync_api import expect

NOTICES = "#notices"


def test_renders_welcome_with_config_and_no_third_party_requests(dapp, static_site, recorder):
    page = dapp.open()
    expect(page.locator("#view-welcome")).to_be_visible()
    expect(page.get_by_role("heading", name="Your AI inputs, sealed and owned.")).to_be_visible()
    expect(page.locator("#network-pill")).to_contain_text("Anvil")
    expect(page.locator("#contract-address")).to_have_text(static_site.config["contract"])
    expect(page.locator("#step-connect-detail")).to_have_text("Test Wallet is ready.")
    dapp.shot(page, "01-welcome-desktop")
    recorder.assert_clean(static_site.url)
    assert ("GET", "/config") in recorder.api_calls(static_site.url)


def test_welcome_at_phone_width(dapp, static_site, recorder):
    page = dapp.open(mobile=True)
    expect(page.locator("#connect")).to_be_visible()
    # Nothing overflows sideways at 390 px.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    dapp.shot(page, "01-welcome-mobile")
    page.set_viewport_size({"width": 360, "height": 740})
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    recorder.assert_clean(static_site.url)


def test_no_wallet_found(dapp, wallet, static_site, recorder):
    wallet.inject = False
    page = dapp.open()
    expect(page.locator("#step-connect-detail")).to_have_text("No wallet found in this browser.")
    page.get_by_role("button", name="Connect wallet").click()
    alert = page.locator(NOTICES).get_by_role("alert")
    expect(alert).to_contain_text("No wallet found")
    expect(alert).to_contain_text("MetaMask")
    dapp.shot(page, "02-no-wallet-desktop")
    recorder.assert_clean(static_site.url)


def test_no_wallet_found_mobile(dapp, wallet):
    wallet.inject = False
    page = dapp.open(mobile=True)
    page.get_by_role("button", name="Connect wallet").click()
    expect(page.locator(NOTICES)).to_contain_text("No wallet found")
    dapp.shot(page, "02-no-wallet-mobile")


def test_legacy_window_ethereum_is_used_without_eip6963(dapp, wallet, static_site):
    wallet.announce = False  # only window.ethereum
    page = dapp.open()
    expect(page.locator("#step-connect-detail")).to_have_text("Browser wallet is ready.")
    page.get_by_role("button", name="Connect wallet").click()
    # Connected and on the right chain: the page asks the (stubless) server for a nonce.
    expect(page.locator("#step-connect")).to_have_attribute("data-state", "done")
    expect(page.locator(NOTICES)).to_contain_text("No such endpoint: /auth/nonce")
    assert wallet.methods_called()[:2] == ["eth_requestAccounts", "eth_chainId"]


def test_wrong_chain_offers_switch(dapp, wallet, static_site, recorder):
    wallet.chain_id = 1  # the wallet sits on mainnet
    page = dapp.open()
    page.get_by_role("button", name="Connect wallet").click()
    notice = page.locator(NOTICES)
    expect(notice).to_contain_text("Wrong network")
    expect(notice).to_contain_text("chain 1")
    expect(notice).to_contain_text(f"Anvil (chain {static_site.config['chain_id']})")
    expect(page.locator("#step-network")).to_have_attribute("data-state", "error")
    expect(page.locator("#network-pill")).to_contain_text("Wrong network")
    switch = page.get_by_role("button", name="Switch to Anvil")
    expect(switch).to_be_visible()
    dapp.shot(page, "03-wrong-chain-desktop")

    switch.click()
    expect(page.locator("#step-network")).to_have_attribute("data-state", "done")
    assert wallet.params_of("wallet_switchEthereumChain") == [[{"chainId": hex(31337)}]]
    assert wallet.chain_id == static_site.config["chain_id"]
    # Then it goes on to sign in (GET /auth/nonce, which this stub does not have).
    expect(page.locator("#step-sign")).to_have_attribute("data-state", "error")
    assert ("GET", "/auth/nonce") in recorder.api_calls(static_site.url)
    recorder.assert_clean(static_site.url)


def test_wrong_chain_mobile(dapp, wallet):
    wallet.chain_id = 1
    page = dapp.open(mobile=True)
    page.get_by_role("button", name="Connect wallet").click()
    expect(page.get_by_role("button", name="Switch to Anvil")).to_be_visible()
    dapp.shot(page, "03-wrong-chain-mobile")


def test_unknown_chain_is_added_after_4902(dapp, wallet, static_site):
    wallet.chain_id = 1
    wallet.known_chains = {1}  # the wallet has never heard of Anvil
    page = dapp.open()
    page.get_by_role("button", name="Connect wallet").click()
    page.get_by_role("button", name="Switch to Anvil").click()
    expect(page.locator("#step-network")).to_have_attribute("data-state", "done")
    added = wallet.params_of("wallet_addEthereumChain")
    assert added == [
        [
            {
                "chainId": hex(static_site.config["chain_id"]),
                "chainName": "Anvil",
                "rpcUrls": [static_site.config["rpc_url"]],
                "nativeCurrency": {"name": "Ether", "symbol": "ETH", "decimals": 18},
            }
        ]
    ]


def test_rejected_switch_is_explained(dapp, wallet):
    wallet.chain_id = 1
    wallet.reject = {"wallet_switchEthereumChain"}
    page = dapp.open()
    page.get_by_role("button", name="Connect wallet").click()
    page.get_by_role("button", name="Switch to Anvil").click()
    expect(page.locator(NOTICES).get_by_role("alert")).to_contain_text(
        "You declined to switch network"
    )
    expect(page.get_by_role("button", name="Switch to Anvil")).to_be_visible()


def test_rejected_connection_is_explained(dapp, wallet, static_site, recorder):
    wallet.reject = {"eth_requestAccounts"}
    page = dapp.open()
    page.get_by_role("button", name="Connect wallet").click()
    expect(page.locator(NOTICES).get_by_role("alert")).to_have_text(
        "You declined the connection request in your wallet."
    )
    expect(page.locator("#step-connect")).to_have_attribute("data-state", "error")
    # Retrying after the user changes their mind works.
    wallet.reject = set()
    page.get_by_role("button", name="Connect wallet").click()
    expect(page.locator("#step-connect")).to_have_attribute("data-state", "done")
    recorder.assert_clean(static_site.url)


def test_wallet_picker_lists_every_announced_wallet(dapp, wallet):
    wallet.use_wallets("Orange Fox", "Blue Rabbit")
    page = dapp.open()
    expect(page.locator("#step-connect-detail")).to_contain_text("2 wallets found")
    page.get_by_role("button", name="Connect wallet").click()
    dialog = page.get_by_role("dialog", name="Choose a wallet")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button")).to_have_count(3)  # two wallets + close
    # The first wallet has the focus; keyboard works.
    expect(dialog.get_by_role("button", name="Orange Fox")).to_be_focused()
    dapp.shot(page, "04-wallet-picker-desktop", full_page=False)
    page.keyboard.press("Tab")
    expect(dialog.get_by_role("button", name="Blue Rabbit")).to_be_focused()
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(page.locator("#step-connect-detail")).to_contain_text("in Blue Rabbit")
    assert wallet.calls[0][:2] == (1, "eth_requestAccounts")  # the second wallet was used


def test_wallet_picker_mobile(dapp, wallet):
    wallet.use_wallets("Orange Fox", "Blue Rabbit")
    page = dapp.open(mobile=True)
    page.get_by_role("button", name="Connect wallet").click()
    expect(page.get_by_role("dialog", name="Choose a wallet")).to_be_visible()
    dapp.shot(page, "04-wallet-picker-mobile", full_page=False)
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog", name="Choose a wallet")).to_be_hidden()
    assert wallet.calls == []


def test_backend_unreachable(dapp, static_site, recorder):
    context_page = dapp.open(wait_for=None)
    context_page.close()
    # A fresh page whose /config request fails at the network level.
    page = dapp.contexts[0].new_page()
    recorder.attach_page(page)
    page.route("**/config", lambda route: route.abort("connectionrefused"))
    page.goto(static_site.url + "/")
    expect(page.locator("#view-offline")).to_be_visible()
    expect(page.locator(NOTICES).get_by_role("alert")).to_contain_text("Can’t reach the SLT server")
    expect(page.get_by_role("button", name="Try again")).to_be_focused()
    dapp.shot(page, "05-offline-desktop")
    page.unroute("**/config")
    page.get_by_role("button", name="Try again").click()
    expect(page.locator("#view-welcome")).to_be_visible()
    expect(page.locator(NOTICES).get_by_role("alert")).to_have_count(0)


def test_keyboard_only_connect(dapp, wallet):
    wallet.chain_id = 1
    page = dapp.open()
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    # Tab until the connect button has focus, then press Enter.
    for _ in range(10):
        if page.evaluate("document.activeElement.id") == "connect":
            break
        page.keyboard.press("Tab")
    expect(page.locator("#connect")).to_be_focused()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused button shows no focus ring"
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Switch to Anvil")).to_be_visible()


def test_nothing_is_stored_in_the_browser(dapp, static_site, wallet):
    wallet.chain_id = 1
    page = dapp.open()
    page.get_by_role("button", name="Connect wallet").click()
    expect(page.get_by_role("button", name="Switch to Anvil")).to_be_visible()
    stored = page.evaluate(
        """async () => ({
            local: localStorage.length,
            session: sessionStorage.length,
            cookies: document.cookie,
            idb: indexedDB.databases ? (await indexedDB.databases()).length : 0,
            caches: (await caches.keys()).length,
        })"""
    )
    assert stored == {"local": 0, "session": 0, "cookies": "", "idb": 0, "caches": 0}


def test_html_has_no_inline_script_or_style(built_dist):
    html = (built_dist / "index.html").read_text()
    assert 'src="/assets/app.js"' in html and 'href="/assets/app.css"' in html
    assert "style=" not in html and "<style" not in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html
