"""SMOKE TESTS AGAINST THE REAL BACKEND (``backend_server``: create_app, its workers, Anvil and
the deployed contract). They only check that the page and the backend agree on the basics:
the page loads under the backend's CSP, signs in with EIP-4361, and a text token is minted
and decrypted. The full journey (persist, delete, burn, errors) is a separate suite."""

from __future__ import annotations

import re

from playwright.sync_api import expect


def test_page_signs_in_creates_and_views_against_the_real_backend(
    real_dapp, backend_server, wallet, recorder
):
    page = real_dapp.open()
    expect(page.locator("#view-welcome")).to_be_visible()
    expect(page.locator("#contract-address")).to_have_text(backend_server.contract)

    page.get_by_role("button", name="Connect wallet").click()
    expect(page.locator("#view-app")).to_be_visible()
    expect(page.locator("#account-address")).to_have_text(
        f"{wallet.address[:6]}…{wallet.address[-4:]}"
    )

    page.get_by_role("textbox", name="Prompt").fill("A smoke test, end to end.")
    page.get_by_label("Emotion").select_option(index=1)
    page.get_by_role("button", name="Create token").click()
    card = page.locator(".token-card").first
    expect(card.locator(".badge")).to_have_text("Minted", timeout=15_000)
    expect(card.locator(".tc-id")).to_have_text(re.compile(r"^#\d+$"))
    expect(card.locator(".tc-countdown")).to_have_text(re.compile(r"^(59|60):\d\d$"))

    card.get_by_role("button", name=re.compile("^View")).click()
    expect(page.locator("#viewer-body blockquote")).to_have_text("A smoke test, end to end.")
    page.keyboard.press("Escape")
    expect(page.locator("#viewer-body")).to_be_empty()

    recorder.assert_clean(backend_server.url)
