"""PAGE FLOWS AGAINST AN IN-MEMORY FAKE OF docs/API.md (FakeApi), not the real backend.

They drive the whole page (sign-in with a real EIP-4361 signature checked by the `siwe`
library, create, view, persist, delete, burn, errors) and save a screenshot of each main
screen at 1280 px and 390 px to artifacts/screenshots/. The same journey against the real
backend (``backend_server``) is written once the backend lands."""

from __future__ import annotations

import math
import re
import struct
import time
import wave
import zlib
from io import BytesIO

import pytest
from e2e_support import FakeApi, InjectedWallet, StaticSite, dev_address
from playwright.sync_api import expect

NOTICES = "#notices"
BURN_SELECTOR = "0x42966c68"  # burn(uint256)
PERSIST_SELECTOR = "0xc5277f69"  # persist(uint256)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def png(width: int = 240, height: int = 160) -> bytes:
    """A small PNG (a soft gradient), written without any imaging library."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)
        for x in range(width):
            t, u = x / width, y / height
            rows += bytes(
                (
                    int(40 + 120 * t),
                    int(120 + 90 * (1 - u)),
                    int(140 + 100 * u),
                )
            )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + chunk(b"IEND", b"")
    )


def wav(seconds: float = 0.6, rate: int = 8000) -> bytes:
    buf = BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        frames = b"".join(
            struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
            for i in range(int(seconds * rate))
        )
        w.writeframes(frames)
    return buf.getvalue()


def choose(page, label: str) -> None:
    """Click the visible label of a radio button (segmented control, lifetime chips)."""
    page.locator("label", has_text=re.compile(f"^{re.escape(label)}$")).click()
    expect(page.get_by_role("radio", name=label)).to_be_checked()


def wait_until(page, js: str, timeout: float = 5.0) -> None:
    """Poll a JS predicate with page.evaluate (wait_for_function would need 'unsafe-eval',
    which the page's CSP forbids)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(js):
        assert time.monotonic() < deadline, f"timed out waiting for {js}"
        page.wait_for_timeout(50)


def seconds(countdown: str) -> int:
    """Seconds left on a countdown such as 52:18."""
    minutes, secs = countdown.split(":")
    return int(minutes) * 60 + int(secs)


@pytest.fixture
def fake(static_site: StaticSite, wallet: InjectedWallet) -> FakeApi:
    api = FakeApi(static_site)
    api.watch_wallet(wallet)
    static_site.fake = api
    return api


def sign_in(dapp, *, mobile: bool = False):
    page = dapp.open(mobile=mobile)
    page.get_by_role("button", name="Connect wallet").click()
    expect(page.locator("#view-app")).to_be_visible()
    return page


def card(page, kind_name: str, nth: int = 0):
    return page.locator(".token-card").filter(has_text=kind_name).nth(nth)


def seed_dashboard(fake: FakeApi, owner: str) -> None:
    now = fake.now()
    fake.add_token(
        owner,
        kind="text",
        payload={"prompt": "What did I learn today?", "emotion": "curiosity"},
        size=23,
        created_at=now - 3 * 3600,
        ttl=3 * 3600 - 5,
        status="expired",
    )
    fake.add_token(
        owner,
        kind="image",
        content_type="image/png",
        payload={"data": png()},
        size=18_432,
        created_at=now - 2 * 3600,
        status="deleted",
        shredded_at=now - 3000,
        burn_status="burned",
        burn_tx="0x" + "7c" * 32,
    )
    fake.add_token(
        owner,
        kind="audio",
        content_type="audio/webm",
        payload={"data": wav()},
        size=48_000,
        created_at=now - 1800,
        ttl=86400,
        status="persistent",
        persistent=True,
        switchable=True,
    )["expires_at"] = None
    fake.add_token(
        owner,
        kind="image",
        content_type="image/png",
        payload={"data": png()},
        size=36_104,
        created_at=now - 460,
        ttl=3600,
        status="minted",
        switchable=True,
    )
    fake.add_token(
        owner,
        kind="text",
        payload={
            "prompt": "Draft a calm reply to my landlord about the broken heating.",
            "emotion": "calm",
        },
        size=58,
        created_at=now - 5,
        ttl=3600,
        mint_at=now + 3600,  # stays "pending mint"
    )


# --------------------------------------------------------------------------------------------
# Sign-in
# --------------------------------------------------------------------------------------------


def test_sign_in_with_ethereum(dapp, fake, wallet, static_site, recorder):
    page = sign_in(dapp)
    expect(page.locator("#account-address")).to_have_text(re.compile(r"^0xf39F…2266$"))
    expect(page.locator("#tokens-empty")).to_be_visible()
    expect(page.locator("#composer-title")).to_be_focused()
    # The EIP-4361 message uses exactly the nonce answer's fields, and it verified.
    [message] = fake.verified_messages
    host = static_site.url.removeprefix("http://")
    assert message.startswith(f"{host} wants you to sign in with your Ethereum account:\n")
    assert f"\n{wallet.address}\n" in message
    assert "\nSign in to Symbiotic Learning Token to read and manage your tokens.\n" in message
    assert f"\nURI: {static_site.url}\n" in message
    assert "\nVersion: 1\n" in message and "\nChain ID: 31337\n" in message
    assert wallet.methods_called()[:3] == ["eth_requestAccounts", "eth_chainId", "personal_sign"]
    # The session token is in memory only; polling has started.
    deadline = time.monotonic() + 6
    while recorder.api_calls(static_site.url).count(("GET", "/tokens")) < 2:
        assert time.monotonic() < deadline, "the token list is not polled"
        page.wait_for_timeout(100)
    dapp.shot(page, "06-signed-in-empty-desktop")
    recorder.assert_clean(static_site.url)
    stored = page.evaluate(
        "async () => [localStorage.length, sessionStorage.length, document.cookie,"
        " (await indexedDB.databases()).length, (await caches.keys()).length]"
    )
    assert stored == [0, 0, "", 0, 0]

    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#view-welcome")).to_be_visible()
    assert ("POST", "/auth/logout") in recorder.api_calls(static_site.url)
    assert fake.sessions == {}


def test_rejected_signature_then_retry(dapp, fake, wallet):
    wallet.reject = {"personal_sign"}
    page = dapp.open()
    page.get_by_role("button", name="Connect wallet").click()
    expect(page.locator(NOTICES).get_by_role("alert")).to_have_text(
        "You declined to sign the sign-in message, so you are not signed in."
    )
    expect(page.locator("#step-sign")).to_have_attribute("data-state", "error")
    dapp.shot(page, "05-signature-rejected-desktop")
    wallet.reject = set()
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#view-app")).to_be_visible()
    expect(page.locator(NOTICES).get_by_role("alert")).to_have_count(0)


def test_session_expiry_returns_to_sign_in(dapp, fake):
    page = sign_in(dapp)
    fake.sessions.clear()  # the server forgets the session
    expect(page.locator("#view-welcome")).to_be_visible(timeout=6000)
    expect(page.locator(NOTICES)).to_contain_text("Your session has ended")


def test_switching_account_in_the_wallet_signs_out(dapp, fake, wallet):
    page = sign_in(dapp)
    wallet.emit(page, "accountsChanged", [dev_address(3)])
    expect(page.locator("#view-welcome")).to_be_visible()
    expect(page.locator(NOTICES)).to_contain_text("Sign in again")


# --------------------------------------------------------------------------------------------
# Dashboard
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mobile", [False, True], ids=["desktop", "mobile"])
def test_dashboard_lists_tokens_with_live_countdowns(dapp, fake, wallet, mobile):
    seed_dashboard(fake, wallet.address)
    page = sign_in(dapp, mobile=mobile)
    cards = page.locator(".token-card")
    expect(cards).to_have_count(5)
    statuses = [cards.nth(i).locator(".badge").inner_text() for i in range(5)]
    assert statuses == ["Pending mint", "Minted", "Persistent", "Deleted", "Expired"]
    minted = cards.nth(1)
    countdown = minted.locator(".tc-countdown")
    expect(countdown).to_have_text(re.compile(r"^5\d:\d\d$"))
    first = countdown.inner_text()
    # It ticks once a second; the wait allows for a loaded CI machine delaying timers.
    expect(countdown).not_to_have_text(first, timeout=5000)
    assert seconds(countdown.inner_text()) < seconds(first), "the countdown does not tick down"
    expect(minted.locator(".tc-row", has_text="Commitment").locator("code")).to_have_attribute(
        "title", re.compile(r"^0x[0-9a-f]{64}$")
    )
    expect(minted.get_by_role("button", name=re.compile("^Make persistent"))).to_be_visible()
    expect(cards.nth(2).locator(".tc-countdown")).to_have_text("No expiry")
    expect(cards.nth(3).get_by_role("button", name=re.compile("^Receipt"))).to_be_visible()
    expect(cards.nth(4).locator(".tc-actions")).to_be_hidden()
    if mobile:
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    dapp.shot(page, f"07-dashboard-{'mobile' if mobile else 'desktop'}")
    page.emulate_media(color_scheme="dark")
    dapp.shot(page, f"07-dashboard-{'mobile' if mobile else 'desktop'}-dark")


def test_countdown_corrects_clock_skew(dapp, fake, wallet):
    fake.clock_offset = -2 * 3600  # the server's clock is two hours behind this machine's
    now = fake.now()
    fake.add_token(wallet.address, created_at=now - 10, ttl=130, status="minted")
    page = sign_in(dapp)
    expect(page.locator(".token-card .tc-countdown")).to_have_text(re.compile(r"^[12]:\d\d$"))


# --------------------------------------------------------------------------------------------
# Create and view
# --------------------------------------------------------------------------------------------


def test_create_text_token_and_view_it(dapp, fake, wallet, static_site, recorder):
    page = sign_in(dapp)
    page.get_by_role("textbox", name="Prompt").fill("Remind me why I started learning the cello.")
    page.get_by_label("Emotion").select_option("joy")
    choose(page, "1 day")
    page.locator("label[for=switchable]").click()
    expect(page.get_by_label("Switchable")).to_be_checked()
    dapp.shot(page, "08-composer-text-desktop")
    page.get_by_role("button", name="Create token").click()
    expect(page.locator(NOTICES)).to_contain_text("Token created")
    new = card(page, "Text prompt")
    expect(new.locator(".badge")).to_have_text("Pending mint")
    expect(new.locator(".badge")).to_have_text("Minted", timeout=6000)
    expect(new.locator(".tc-countdown")).to_have_text(re.compile(r"^23:5\d:\d\d$"))
    expect(page.get_by_role("textbox", name="Prompt")).to_have_value("")
    [rec] = fake.tokens.values()
    assert rec["switchable"] is True and round(rec["expires_at"] - rec["created_at"]) == 86400
    assert rec["payload"]["emotion"] == "joy"

    new.get_by_role("button", name=re.compile("^View")).click()
    viewer = page.get_by_role("dialog", name=re.compile("Text prompt"))
    expect(viewer.locator("blockquote")).to_have_text("Remind me why I started learning the cello.")
    expect(viewer).to_contain_text("Emotion: joy")
    dapp.shot(page, "09-viewer-text-desktop", full_page=False)
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    expect(page.locator("#viewer-body")).to_be_empty()  # no plaintext left in the DOM
    recorder.assert_clean(static_site.url)


def test_create_image_token_and_view_it_through_a_blob_url(dapp, fake, static_site, recorder):
    page = sign_in(dapp)
    choose(page, "Image")
    page.set_input_files(
        "#image-file", files=[{"name": "sunset.png", "mimeType": "image/png", "buffer": png()}]
    )
    expect(page.locator("#image-preview")).to_contain_text("sunset.png")
    dapp.shot(page, "10-composer-image-desktop")
    page.get_by_role("button", name="Create token").click()
    new = card(page, "Image")
    expect(new.locator(".badge")).to_have_text("Minted", timeout=6000)
    expect(page.locator("#image-preview")).to_be_hidden()
    new.get_by_role("button", name=re.compile("^View")).click()
    img = page.locator("#viewer-body img")
    expect(img).to_have_attribute("src", re.compile(r"^blob:"))
    wait_until(page, "() => document.querySelector('#viewer-body img').naturalWidth === 240")
    src = img.get_attribute("src")
    dapp.shot(page, "11-viewer-image-desktop", full_page=False)
    page.get_by_role("button", name="Close viewer").click()
    expect(page.locator("#viewer-body")).to_be_empty()
    revoked = page.evaluate(
        """(u) => new Promise((resolve) => {
            const probe = new Image();
            probe.onload = () => resolve(false);
            probe.onerror = () => resolve(true);
            probe.src = u;
        })""",
        src,
    )
    assert revoked, "the blob: URL is still alive after closing the viewer"
    recorder.assert_clean(static_site.url)


def test_create_audio_token_and_play_it(dapp, fake):
    page = sign_in(dapp)
    choose(page, "Audio")
    page.set_input_files(
        "#audio-file", files=[{"name": "note.wav", "mimeType": "audio/wav", "buffer": wav()}]
    )
    page.get_by_role("button", name="Create token").click()
    new = card(page, "Audio clip")
    expect(new.locator(".badge")).to_have_text("Minted", timeout=6000)
    new.get_by_role("button", name=re.compile("^View")).click()
    audio = page.locator("#viewer-body audio")
    expect(audio).to_have_attribute("src", re.compile(r"^blob:"))
    wait_until(page, "() => document.querySelector('#viewer-body audio').duration > 0.5")


def test_record_with_the_microphone(dapp, fake):
    page = sign_in(dapp)
    choose(page, "Audio")
    # MediaRecorder + getUserMedia exist in Chromium on a secure (127.0.0.1) origin; the
    # browser fixture gives it a fake microphone.
    page.get_by_role("button", name="Record with microphone").click()
    expect(page.get_by_role("button", name="Stop recording")).to_be_visible()
    page.wait_for_timeout(1200)
    page.get_by_role("button", name="Stop recording").click()
    expect(page.locator("#audio-preview")).to_contain_text(re.compile(r"recording-\d{6}\.webm"))
    expect(page.get_by_role("button", name="Record again")).to_be_visible()
    dapp.shot(page, "10-composer-recording-desktop")
    page.get_by_role("button", name="Create token").click()
    new = card(page, "Audio clip")
    expect(new.locator(".badge")).to_have_text("Minted", timeout=6000)
    [rec] = fake.tokens.values()
    assert rec["content_type"] == "audio/webm" and rec["size"] > 1000


def test_composer_is_keyboard_operable(dapp, fake):
    page = sign_in(dapp)
    page.keyboard.press("Tab")  # from the focused "New token" heading to the kind radios
    expect(page.get_by_role("radio", name="Text")).to_be_focused()
    focus_ring = "getComputedStyle(document.querySelector('label[for=kind-text]')).outlineStyle"
    assert page.evaluate(focus_ring) == "solid"
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("radio", name="Image")).to_be_checked()
    expect(page.locator("#panel-image")).to_be_visible()
    expect(page.locator("#panel-text")).to_be_hidden()
    page.keyboard.press("Tab")  # the file input, shown through its drop zone
    expect(page.locator("#image-file")).to_be_focused()
    drop_ring = "getComputedStyle(document.querySelector('#image-drop')).outlineStyle"
    assert page.evaluate(drop_ring) == "solid"
    page.keyboard.press("Tab")  # the lifetime presets, a radio group
    expect(page.get_by_role("radio", name="1 hour")).to_be_focused()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("radio", name="1 day")).to_be_checked()
    page.keyboard.press("Tab")
    expect(page.get_by_role("checkbox", name="Switchable")).to_be_focused()
    page.keyboard.press("Space")
    expect(page.get_by_role("checkbox", name="Switchable")).to_be_checked()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Create token")).to_be_focused()


def test_empty_prompt_and_bad_lifetime_are_explained(dapp, fake):
    page = sign_in(dapp)
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#prompt-error")).to_have_text("Write a prompt first.")
    expect(page.get_by_role("textbox", name="Prompt")).to_be_focused()
    page.get_by_role("textbox", name="Prompt").fill("hello")
    choose(page, "Custom")
    page.get_by_label("Custom lifetime amount").fill("45")
    page.get_by_label("Custom lifetime unit").select_option("days")
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#ttl-error")).to_have_text("The lifetime can be at most 30 days.")
    assert fake.tokens == {}


# --------------------------------------------------------------------------------------------
# File checks: client side, then the backend's 413/415 descriptions
# --------------------------------------------------------------------------------------------


def test_file_too_large_is_refused_in_the_page(dapp, fake, static_site):
    static_site.config["max_upload_bytes"] = 2048
    page = sign_in(dapp)
    choose(page, "Image")
    page.set_input_files(
        "#image-file", files=[{"name": "big.png", "mimeType": "image/png", "buffer": png()}]
    )
    expect(page.locator("#image-error")).to_have_text(
        re.compile(r"^“big\.png” is \d+ KB; the limit is 2 KB\.$")
    )
    expect(page.locator(NOTICES).get_by_role("alert")).to_contain_text("the limit is 2 KB")
    expect(page.locator("#image-file")).to_have_attribute("aria-invalid", "true")
    dapp.shot(page, "12-file-too-large-desktop")
    assert not any(p == "/generate" for _, p in fake.requests)


def test_wrong_file_type_is_refused_in_the_page(dapp, fake):
    page = sign_in(dapp, mobile=True)
    choose(page, "Audio")
    page.set_input_files(
        "#audio-file", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hi"}]
    )
    expect(page.locator("#audio-error")).to_contain_text("“notes.txt” is a text/plain file")
    dapp.shot(page, "12-wrong-type-mobile")


def test_backend_415_description_is_shown(dapp, fake):
    page = sign_in(dapp)
    choose(page, "Image")
    page.set_input_files(
        "#image-file", files=[{"name": "scan.bmp", "mimeType": "image/bmp", "buffer": b"BM" * 40}]
    )
    page.get_by_role("button", name="Create token").click()
    alert = page.locator(NOTICES).get_by_role("alert")
    expect(alert).to_contain_text("That file type isn’t accepted.")
    expect(alert).to_contain_text("image/bmp is not supported")
    expect(page.locator("#image-error")).to_contain_text("image/bmp is not supported")


def test_backend_413_description_is_shown(dapp, fake):
    fake.max_upload_bytes = 100  # the server is stricter than the /config it published
    page = sign_in(dapp)
    choose(page, "Image")
    page.set_input_files(
        "#image-file", files=[{"name": "a.png", "mimeType": "image/png", "buffer": png(32, 32)}]
    )
    page.get_by_role("button", name="Create token").click()
    alert = page.locator(NOTICES).get_by_role("alert")
    expect(alert).to_contain_text("That file is too large.")
    expect(alert).to_contain_text("the limit is 100")


# --------------------------------------------------------------------------------------------
# Persist, delete, burn
# --------------------------------------------------------------------------------------------


def test_persist_sends_the_wallet_transaction(dapp, fake, wallet, static_site):
    rec = fake.add_token(wallet.address, status="minted", switchable=True)
    page = sign_in(dapp)
    c = page.locator(".token-card")
    c.get_by_role("button", name=re.compile("^Make persistent")).click()
    expect(c.locator(".tc-note")).to_contain_text("Persist transaction 0x")
    [(tx, tx_hash)] = wallet.transactions
    assert tx["to"].lower() == static_site.config["contract"].lower()
    assert tx["data"] == PERSIST_SELECTOR + format(rec["token_id"], "064x")
    assert tx["from"].lower() == wallet.address.lower()
    expect(page.locator(NOTICES)).to_contain_text(f"Persist transaction sent: {tx_hash[:10]}")
    expect(c.locator(".badge")).to_have_text("Persistent", timeout=6000)
    expect(c.locator(".tc-countdown")).to_have_text("No expiry")
    expect(c.locator(".tc-note")).to_be_hidden()


def test_persist_on_the_wrong_chain_asks_to_switch_first(dapp, fake, wallet):
    fake.add_token(wallet.address, status="minted", switchable=True)
    page = sign_in(dapp)
    wallet.chain_id = 1
    wallet.emit(page, "chainChanged", "0x1")
    expect(page.locator("#network-pill")).to_contain_text("Wrong network")
    page.get_by_role("button", name=re.compile("^Make persistent")).click()
    expect(page.locator(".token-card .tc-note")).to_contain_text("Persist transaction")
    assert "wallet_switchEthereumChain" in wallet.methods_called()
    assert len(wallet.transactions) == 1


def test_delete_through_the_api_shows_the_receipt(dapp, fake, wallet, static_site, recorder):
    rec = fake.add_token(wallet.address, status="minted")
    page = sign_in(dapp)
    page.get_by_role("button", name=re.compile("^Delete")).click()
    confirm = page.get_by_role("dialog", name=re.compile("Delete token #"))
    expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()
    dapp.shot(page, "13-confirm-delete-desktop", full_page=False)
    confirm.get_by_role("button", name="Delete").click()
    receipt = page.get_by_role("dialog", name="Deletion receipt")
    expect(receipt).to_contain_text("Encrypted data shredded")
    expect(receipt).to_contain_text("Burning the token on chain")
    expect(receipt).to_contain_text(rec["commitment"])
    expect(receipt).to_contain_text("Token burned on chain", timeout=8000)
    expect(receipt).to_contain_text(rec["burn_tx"])
    dapp.shot(page, "14-receipt-desktop", full_page=False)
    calls = recorder.api_calls(static_site.url)
    assert ("DELETE", f"/tokens/{rec['id']}") in calls
    assert ("GET", f"/tokens/{rec['id']}/receipt") in calls
    page.get_by_role("button", name="Close receipt").click()
    expect(page.locator(".token-card .badge")).to_have_text("Deleted")


def test_receipt_mobile(dapp, fake, wallet):
    fake.add_token(wallet.address, status="minted")
    page = sign_in(dapp, mobile=True)
    page.get_by_role("button", name=re.compile("^Delete")).click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    receipt = page.get_by_role("dialog", name="Deletion receipt")
    expect(receipt).to_contain_text("Token burned on chain", timeout=8000)
    dapp.shot(page, "14-receipt-mobile", full_page=False)


def test_burn_from_wallet_then_backend_shreds(dapp, fake, wallet, static_site, recorder):
    rec = fake.add_token(wallet.address, status="minted")
    page = sign_in(dapp)
    page.get_by_role("button", name=re.compile("^Burn from wallet")).click()
    page.get_by_role("dialog", name=re.compile("Burn token #")).get_by_role(
        "button", name="Burn"
    ).click()
    dialog = page.get_by_role("dialog", name="Burning from your wallet")
    expect(dialog).to_contain_text("Burn transaction sent from your wallet")
    [(tx, tx_hash)] = wallet.transactions
    assert tx["data"] == BURN_SELECTOR + format(rec["token_id"], "064x")
    assert tx["to"].lower() == static_site.config["contract"].lower()
    receipt = wallet.anvil.wait_for_receipt(tx_hash)
    assert receipt["status"] == "0x1"
    expect(dialog).to_contain_text("Waiting for the server")
    dapp.shot(page, "15-burn-waiting-desktop", full_page=False)
    expect(dialog).to_contain_text("Server saw the burn and shredded the data", timeout=8000)
    dapp.shot(page, "15-burn-done-desktop", full_page=False)
    assert ("GET", f"/tokens/{rec['id']}") in recorder.api_calls(static_site.url)
    page.keyboard.press("Escape")
    expect(page.locator(".token-card .badge")).to_have_text("Deleted")


def test_rejected_burn_transaction_is_explained(dapp, fake, wallet):
    fake.add_token(wallet.address, status="minted")
    page = sign_in(dapp)
    wallet.reject = {"eth_sendTransaction"}
    page.get_by_role("button", name=re.compile("^Burn from wallet")).click()
    page.get_by_role("dialog").get_by_role("button", name="Burn").click()
    expect(page.locator(NOTICES).get_by_role("alert")).to_have_text(
        "You declined the burn transaction in your wallet. The token is unchanged."
    )
    expect(page.get_by_role("dialog", name="Burning from your wallet")).to_be_hidden()
    time.sleep(0.2)
    assert wallet.transactions == []


def test_server_unreachable_while_signed_in(dapp, fake):
    page = sign_in(dapp)
    page.route("**/tokens", lambda route: route.abort("connectionrefused"))
    expect(page.locator(NOTICES).get_by_role("alert")).to_contain_text(
        "Can’t reach the SLT server", timeout=6000
    )
    page.unroute("**/tokens")
    expect(page.locator(NOTICES)).to_contain_text("Connection to the SLT server is back")
