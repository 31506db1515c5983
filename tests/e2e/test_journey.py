"""THE FULL JOURNEY AGAINST THE REAL BACKEND AND A REAL ANVIL (issue #4).

Nothing here is faked: the page is served by ``create_app`` (``backend_server``), its workers
mint, burn and follow the contract on Anvil, and the injected wallet signs and sends with
Anvil's dev keys. The tests assert on what the user sees, on the chain (web3) and on the
backend's store, and record every request the page makes.

- ``test_full_journey``: connect, sign in, create text / image / audio, countdown, view each,
  persist, delete through the API (receipt, burned on chain), burn from the wallet, then move
  Anvil's clock and the backend's past a token's expiry.
- ``test_second_wallet_cannot_see_or_decrypt_the_first_wallets_tokens``: two accounts, two
  browser contexts.

Screenshots: artifacts/screenshots/journey-*.png.
"""

from __future__ import annotations

import math
import re
import struct
import time
import wave
import zlib
from collections.abc import Callable
from io import BytesIO
from typing import Any

from playwright.sync_api import expect
from web3 import Web3
from web3.exceptions import ContractLogicError

BURN_SELECTOR = "0x42966c68"  # burn(uint256)
PERSIST_SELECTOR = "0xc5277f69"  # persist(uint256)
MINT_TIMEOUT = 20_000  # ms: the worker mints within a second or two, but the machine is busy

# A tiny image: left half red, right half blue, so the decrypted pixels can be checked.
PNG_SIZE = (24, 16)
PNG_LEFT, PNG_RIGHT = (220, 40, 60), (30, 90, 200)
WAV_SECONDS = 0.25

FETCH_JS = """async ([method, path, bearer]) => {
  const headers = { Accept: 'application/json', Authorization: bearer };
  const init = { method, headers, cache: 'no-store' };
  if (method !== 'GET') {
    headers['Content-Type'] = 'application/json';
    init.body = '{}';
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let body = null;
  try { body = JSON.parse(text); } catch (e) { body = text; }
  return { status: response.status, body };
}"""


# --------------------------------------------------------------------------------------------
# Media written by hand (no imaging or audio library)
# --------------------------------------------------------------------------------------------


def tiny_png() -> bytes:
    width, height = PNG_SIZE
    row = bytes([0]) + bytes(PNG_LEFT) * (width // 2) + bytes(PNG_RIGHT) * (width - width // 2)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(row * height, 9))
        + chunk(b"IEND", b"")
    )


def tiny_wav(seconds: float = WAV_SECONDS, rate: int = 8000) -> bytes:
    buf = BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(
            b"".join(
                struct.pack("<h", int(6000 * math.sin(2 * math.pi * 440 * i / rate)))
                for i in range(int(seconds * rate))
            )
        )
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def eventually(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """Poll ``check`` (from Python: the chain, the store) until it answers something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for: {what}"
        time.sleep(0.1)


def wait_in_page(page, js: str, what: str, timeout: float = 8.0) -> Any:
    """Poll a JS expression with page.evaluate (wait_for_function needs 'unsafe-eval', which the
    page's CSP forbids)."""
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(js)
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for: {what}"
        page.wait_for_timeout(50)


class SessionSniffer:
    """The page's own session token, read off its requests (the page keeps it in memory only)."""

    def __init__(self, page) -> None:
        self.bearer: str | None = None
        page.on("request", self._on_request)

    def _on_request(self, request) -> None:
        auth = request.headers.get("authorization")
        if auth:
            self.bearer = auth


def api(page, method: str, path: str, bearer: str) -> dict[str, Any]:
    """A request from inside the page's context, with a given session."""
    return page.evaluate(FETCH_JS, [method, path, bearer])


def short(address: str) -> str:
    return f"{address[:6]}…{address[-4:]}"


def sign_in(page, wallet) -> None:
    expect(page.locator("#view-welcome")).to_be_visible()
    page.get_by_role("button", name="Connect wallet").click()
    expect(page.locator("#view-app")).to_be_visible()
    expect(page.locator("#account-address")).to_have_text(short(wallet.address))
    expect(page.locator("#step-sign")).to_have_attribute("data-state", "done")


def choose(page, label: str) -> None:
    """Click the visible label of a radio button (segmented control, lifetime chips)."""
    page.locator("label", has_text=re.compile(f"^{re.escape(label)}$")).click()
    expect(page.get_by_role("radio", name=label, exact=True)).to_be_checked()


def submit(page, base: str) -> str:
    """Press "Create token"; answers the new payload's id, from the backend's answer."""
    with page.expect_response(
        lambda r: r.url == f"{base}/generate" and r.request.method == "POST"
    ) as created:
        page.get_by_role("button", name="Create token").click()
    response = created.value
    assert response.status == 201, response.text()
    return str(response.json()["token"]["id"])


def card_of(page, payload_id: str):
    return page.locator(f'.token-card[data-id="{payload_id}"]')


def wait_minted(page, payload_id: str) -> int:
    card = card_of(page, payload_id)
    expect(card.locator(".badge")).to_have_text("Minted", timeout=MINT_TIMEOUT)
    expect(card.locator(".tc-id")).to_have_text(re.compile(r"^#\d+$"))
    return int(card.locator(".tc-id").inner_text().lstrip("#"))


def open_viewer(page, payload_id: str, title: str):
    card_of(page, payload_id).get_by_role("button", name=re.compile("^View")).click()
    expect(page.locator("#viewer-dialog")).to_be_visible()
    expect(page.locator("#viewer-title")).to_have_text(title)
    return page.locator("#viewer-body")


def close_viewer(page) -> None:
    page.get_by_role("button", name="Close viewer").click()
    expect(page.locator("#viewer-dialog")).to_be_hidden()
    expect(page.locator("#viewer-body")).to_be_empty()


def confirm(page, title: str, ok: str) -> None:
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#confirm-title")).to_have_text(title)
    dialog.get_by_role("button", name=ok, exact=True).click()
    expect(dialog).to_be_hidden()


def receipt_value(page, label: str):
    return (
        page.locator("#receipt-details .tc-row")
        .filter(has=page.locator("dt", has_text=re.compile(f"^{label}$")))
        .locator("dd code")
    )


def notice(page, text: str | re.Pattern[str]):
    return page.locator("#notices .notice").filter(has_text=text)


class Chain:
    """web3 views of the deployed contract on Anvil."""

    def __init__(self, backend_server) -> None:
        self.w3 = Web3(Web3.HTTPProvider(backend_server.anvil.url))
        self.contract = self.w3.eth.contract(
            address=Web3.to_checksum_address(backend_server.contract),
            abi=backend_server.record["abi"],
        )

    def owner_of(self, token_id: int) -> str | None:
        """The owner, or None when ownerOf reverts (the token does not exist: burned)."""
        try:
            return str(self.contract.functions.ownerOf(token_id).call())
        except ContractLogicError:
            return None

    def expired_or_gone(self, token_id: int) -> bool:
        """ERC-7858 says expired, or the token is already burned (the outbox burns expired ones
        moments after the backend's sweeper sees them)."""
        try:
            return bool(self.call("isTokenExpired", token_id))
        except ContractLogicError:
            return self.owner_of(token_id) is None

    def call(self, fn: str, *args: Any) -> Any:
        return getattr(self.contract.functions, fn)(*args).call()

    def tx(self, tx_hash: str) -> tuple[dict[str, Any], dict[str, Any]]:
        return dict(self.w3.eth.get_transaction(tx_hash)), dict(
            self.w3.eth.get_transaction_receipt(tx_hash)
        )


# --------------------------------------------------------------------------------------------
# 1. The journey
# --------------------------------------------------------------------------------------------


def test_full_journey(real_dapp, backend_server, wallet, recorder):
    base = backend_server.url
    store = backend_server.services.store
    chain = Chain(backend_server)
    wallet.account_index = 5  # an account no other test uses: its list starts empty
    page = real_dapp.open()
    session = SessionSniffer(page)

    # Connect and sign in (EIP-4361, a real signature checked by the backend).
    sign_in(page, wallet)
    assert "personal_sign" in wallet.methods_called()
    assert session.bearer and session.bearer.startswith("Bearer ")

    # Create: a switchable text prompt with an emotion, an image and an audio clip (files).
    prompt = "What did the journey teach me? Ownership, end to end."
    page.get_by_role("textbox", name="Prompt").fill(prompt)
    page.get_by_label("Emotion").select_option("curious")
    page.get_by_label("Switchable").check()
    text_id = submit(page, base)
    expect(page.get_by_role("textbox", name="Prompt")).to_have_value("")
    page.get_by_label("Switchable").uncheck()

    choose(page, "Image")
    page.set_input_files(
        "#image-file", files=[{"name": "tiny.png", "mimeType": "image/png", "buffer": tiny_png()}]
    )
    expect(page.locator("#image-preview")).to_contain_text("tiny.png")
    image_id = submit(page, base)

    choose(page, "Audio")
    page.set_input_files(
        "#audio-file", files=[{"name": "beep.wav", "mimeType": "audio/wav", "buffer": tiny_wav()}]
    )
    expect(page.locator("#audio-preview")).to_contain_text("beep.wav")
    audio_id = submit(page, base)

    text_no = wait_minted(page, text_id)
    image_no = wait_minted(page, image_id)
    audio_no = wait_minted(page, audio_id)
    assert len({text_no, image_no, audio_no}) == 3
    for token_no in (text_no, image_no, audio_no):
        assert chain.owner_of(token_no) == wallet.address
    expect(page.locator(".token-card")).to_have_count(3)
    expect(page.locator("#tokens-count")).to_have_text("3 live · 3 in total")
    expect(card_of(page, image_id).locator(".tc-meta")).to_contain_text("PNG")
    expect(card_of(page, audio_id).locator(".tc-meta")).to_contain_text("WAV")
    # Only the switchable one offers to become persistent.
    expect(
        card_of(page, text_id).get_by_role("button", name=re.compile("^Make persistent"))
    ).to_be_visible()
    expect(
        card_of(page, image_id).get_by_role("button", name=re.compile("^Make persistent"))
    ).to_be_hidden()

    # The countdown runs: a one-hour lifetime, ticking.
    countdown = card_of(page, text_id).locator(".tc-countdown")
    expect(countdown).to_have_text(re.compile(r"^(59|60):\d\d$"))
    expect(card_of(page, text_id).locator(".tc-life-label")).to_have_text("Expires in")
    before = countdown.inner_text()
    expect(countdown).not_to_have_text(before, timeout=3_000)
    expect(countdown).to_have_text(re.compile(r"^(59|60):\d\d$"))
    real_dapp.shot(page, "journey-tokens")

    # View each: decrypted by the backend, shown from memory.
    body = open_viewer(page, text_id, f"Text prompt · token #{text_no}")
    expect(body.locator("blockquote")).to_have_text(prompt)
    expect(body.locator(".chip-static")).to_have_text("Emotion: curious")
    real_dapp.shot(page, "journey-viewer-text", full_page=False)  # the modal, as seen
    close_viewer(page)

    body = open_viewer(page, image_id, f"Image · token #{image_no}")
    img = body.locator("img.viewer-image")
    expect(img).to_have_attribute("src", re.compile(r"^blob:"))
    wait_in_page(
        page,
        "(() => { const i = document.querySelector('#viewer-body img');"
        " return i && i.complete && i.naturalWidth > 0; })()",
        "the decrypted image to load",
    )
    size, left, right = page.evaluate(
        """() => {
          const img = document.querySelector('#viewer-body img');
          const c = document.createElement('canvas');
          c.width = img.naturalWidth; c.height = img.naturalHeight;
          const g = c.getContext('2d');
          g.drawImage(img, 0, 0);
          const px = (x, y) => Array.from(g.getImageData(x, y, 1, 1).data.slice(0, 3));
          return [[img.naturalWidth, img.naturalHeight], px(2, 8), px(c.width - 3, 8)];
        }"""
    )
    assert tuple(size) == PNG_SIZE
    assert tuple(left) == PNG_LEFT and tuple(right) == PNG_RIGHT, (left, right)
    expect(body.locator(".viewer-meta")).to_contain_text("image/png")
    real_dapp.shot(page, "journey-viewer-image", full_page=False)  # the modal, as seen
    close_viewer(page)

    body = open_viewer(page, audio_id, f"Audio clip · token #{audio_no}")
    expect(body.locator("audio.viewer-audio")).to_have_attribute("src", re.compile(r"^blob:"))
    duration = wait_in_page(
        page,
        "(() => { const a = document.querySelector('#viewer-body audio');"
        " return a && a.readyState >= 1 && a.duration > 0 && a.duration; })()",
        "the decrypted audio's metadata",
    )
    assert abs(duration - WAV_SECONDS) < 0.05, duration
    expect(body.locator(".viewer-meta")).to_contain_text("audio/wav")
    real_dapp.shot(page, "journey-viewer-audio", full_page=False)  # the modal, as seen
    close_viewer(page)

    # Persist the text token: the backend prepares the call, the wallet sends it.
    sent = len(wallet.transactions)
    card_of(page, text_id).get_by_role("button", name=re.compile("^Make persistent")).click()
    expect(card_of(page, text_id).locator(".badge")).to_have_text("Persistent", timeout=15_000)
    expect(card_of(page, text_id).locator(".tc-countdown")).to_have_text("No expiry")
    expect(card_of(page, text_id).locator(".tc-life-label")).to_have_text(
        "Kept until you delete it"
    )
    (tx, persist_hash), *_ = wallet.transactions[sent:]
    assert tx["to"].lower() == backend_server.contract.lower()
    assert tx["data"].lower() == PERSIST_SELECTOR + format(text_no, "064x")
    _, persist_receipt = chain.tx(persist_hash)
    assert persist_receipt["status"] == 1
    assert chain.call("endTime", text_no) == 0
    assert chain.call("locked", text_no) is False
    assert chain.owner_of(text_no) == wallet.address
    assert store.get_payload(text_id).status == "persistent"

    # Delete the image through the API: shredded now, burned on chain by the outbox.
    card_of(page, image_id).get_by_role("button", name=re.compile("^Delete")).click()
    confirm(page, f"Delete token #{image_no}?", "Delete")
    receipt = page.locator("#receipt-dialog")
    expect(receipt).to_be_visible()
    expect(receipt.locator("#receipt-title")).to_have_text("Deletion receipt")
    expect(receipt.locator("#receipt-steps")).to_contain_text("Encrypted data shredded")
    expect(receipt.locator("#receipt-steps")).to_contain_text(
        "Token burned on chain", timeout=15_000
    )
    expect(receipt_value(page, "Burn status")).to_have_text("Burned")
    expect(receipt_value(page, "Token ID")).to_have_text(f"#{image_no}")
    expect(receipt_value(page, "Token")).to_have_text(image_id)
    burn_tx = receipt_value(page, "Burn tx").inner_text()
    assert re.fullmatch(r"0x[0-9a-f]{64}", burn_tx), burn_tx
    assert chain.owner_of(image_no) is None, "the deleted token still exists on chain"
    burn_call, burn_receipt = chain.tx(burn_tx)
    assert burn_receipt["status"] == 1
    assert burn_call["to"].lower() == backend_server.contract.lower()
    payload = store.get_payload(image_id)
    assert (payload.status, payload.burn_status, payload.burn_tx) == ("deleted", "burned", burn_tx)
    assert store.get_secret(image_id) is None, "the deleted payload's key and data are still stored"
    expect(card_of(page, image_id).locator(".badge")).to_have_text("Deleted")
    real_dapp.shot(page, "journey-receipt", full_page=False)  # the modal, as seen
    receipt.get_by_role("button", name="Close receipt").click()
    expect(receipt).to_be_hidden()
    expect(card_of(page, image_id).get_by_role("button", name=re.compile("^View"))).to_be_hidden()
    expect(
        card_of(page, image_id).get_by_role("button", name=re.compile("^Receipt"))
    ).to_be_visible()

    # Burn the audio token from the wallet: the backend sees the burn and shreds the data.
    sent = len(wallet.transactions)
    card_of(page, audio_id).get_by_role("button", name=re.compile("^Burn from wallet")).click()
    confirm(page, f"Burn token #{audio_no} from your wallet?", "Burn")
    expect(receipt).to_be_visible()
    expect(receipt.locator("#receipt-title")).to_have_text("Burning from your wallet")
    (tx, wallet_burn), *_ = wallet.transactions[sent:]
    assert tx["from"].lower() == wallet.address.lower()
    assert tx["data"].lower() == BURN_SELECTOR + format(audio_no, "064x")
    assert chain.tx(wallet_burn)[1]["status"] == 1
    assert chain.owner_of(audio_no) is None, "the wallet's burn did not burn the token"
    expect(receipt.locator("#receipt-steps")).to_contain_text(
        "Server saw the burn and shredded the data", timeout=15_000
    )
    expect(receipt_value(page, "Burn tx")).to_have_text(wallet_burn)
    expect(card_of(page, audio_id).locator(".badge")).to_have_text("Deleted")
    expect(card_of(page, audio_id).locator(".tc-life-label")).to_have_text(
        "Deleted and shredded at"
    )
    payload = store.get_payload(audio_id)
    assert (payload.status, payload.burn_tx) == ("deleted", wallet_burn)
    assert store.get_secret(audio_id) is None
    real_dapp.shot(page, "journey-burn", full_page=False)  # the modal, as seen
    receipt.get_by_role("button", name="Close receipt").click()
    expect(receipt).to_be_hidden()

    # Expiry. A fresh text token with a one-minute lifetime (the shortest the backend accepts),
    # then Anvil's clock and the backend's move past its end together.
    choose(page, "Text")
    page.get_by_role("textbox", name="Prompt").fill("This one runs out of time.")
    choose(page, "Custom")
    page.get_by_label("Custom lifetime amount").fill("1")
    page.get_by_label("Custom lifetime unit").select_option("60")
    short_id = submit(page, base)
    short_no = wait_minted(page, short_id)
    short_card = card_of(page, short_id)
    expect(short_card.locator(".tc-countdown")).to_have_text(re.compile(r"^[01]:\d\d$"))
    expect(short_card).to_have_class(re.compile(r"\bending\b"), timeout=3_000)  # under a minute
    end_time = chain.call("endTime", short_no)
    assert end_time - chain.w3.eth.get_block("latest")["timestamp"] <= 60
    assert chain.call("isTokenExpired", short_no) is False

    # Hold the page between two polls (its list answered from the last real answer), so that it
    # still offers "View" when the clocks move: exactly a user clicking just after the end.
    served: list[bytes] = []

    def frozen_list(route) -> None:
        if route.request.method != "GET":
            route.continue_()
            return
        if not served:
            served.append(route.fetch().body())
        route.fulfill(status=200, content_type="application/json", body=served[0])

    page.route(f"{base}/tokens", frozen_list)
    deadline = time.monotonic() + 8
    while not served:
        assert time.monotonic() < deadline, "the page stopped polling its token list"
        page.wait_for_timeout(50)
    expect(short_card).to_have_attribute("data-status", "minted")

    backend_server.advance_time(90)
    assert chain.w3.eth.get_block("latest")["timestamp"] >= end_time
    assert chain.expired_or_gone(short_no), "the chain does not see the token as expired"

    short_card.get_by_role("button", name=re.compile("^View")).click()
    refusal = notice(page, re.compile(r"[Tt]oken (token_[0-9a-f]{32} )?(has|was) expired"))
    expect(refusal).to_be_visible()
    expect(refusal).to_have_class(re.compile(r"\bnotice-error\b"))
    expect(refusal).to_contain_text("its data is gone")
    expect(page.locator("#viewer-dialog")).to_be_hidden()
    expect(page.locator("#viewer-body")).to_be_empty()

    page.unroute(f"{base}/tokens", frozen_list)
    expect(short_card.locator(".badge")).to_have_text("Expired", timeout=10_000)
    expect(short_card.locator(".tc-life-label")).to_have_text("Expired and shredded at")
    expect(short_card).not_to_have_class(re.compile(r"\bending\b"))  # no urgency once over
    for action in ("View", "Delete", "Burn from wallet", "Make persistent"):
        expect(short_card.get_by_role("button", name=re.compile(f"^{action}"))).to_be_hidden()
    expect(page.locator("#tokens-count")).to_have_text("1 live · 4 in total")
    # The persistent token is untouched by the clock.
    expect(card_of(page, text_id).locator(".badge")).to_have_text("Persistent")
    expect(card_of(page, text_id).get_by_role("button", name=re.compile("^View"))).to_be_visible()
    real_dapp.shot(page, "journey-expired")

    answer = api(page, "POST", f"/tokens/{short_id}/decrypt", session.bearer)
    assert answer["status"] == 410, answer
    assert answer["body"]["code"] == "token_expired", answer
    payload = eventually(
        lambda: (p := store.get_payload(short_id)) and p.shredded and p, "the sweeper's shred"
    )
    assert payload.status == "expired"
    assert store.get_secret(short_id) is None, "the expired payload's key and data are still stored"
    # The outbox burns expired tokens too.
    eventually(lambda: chain.owner_of(short_no) is None, "the expired token burned on chain")
    assert chain.owner_of(text_no) == wallet.address

    # No request left the backend's origin (the wallet lives in this process), no CSP
    # violation, no uncaught error.
    recorder.assert_clean(base)
    assert recorder.websockets == []
    calls = recorder.api_calls(base)
    for expected in [
        ("GET", "/config"),
        ("GET", "/auth/nonce"),
        ("POST", "/auth/verify"),
        ("POST", "/generate"),
        ("GET", "/tokens"),
        ("POST", f"/tokens/{text_id}/decrypt"),
        ("POST", f"/tokens/{image_id}/decrypt"),
        ("POST", f"/tokens/{audio_id}/decrypt"),
        ("POST", f"/tokens/{text_id}/persist"),
        ("DELETE", f"/tokens/{image_id}"),
        ("GET", f"/tokens/{image_id}/receipt"),
        ("POST", f"/tokens/{short_id}/decrypt"),
    ]:
        assert expected in calls, f"{expected} missing from {calls}"
    # Every URL is the backend's, or a blob: of its origin (the previews and decrypted media).
    odd = [u for u in recorder.urls() if not u.startswith((base + "/", f"blob:{base}/"))]
    assert not odd, odd


# --------------------------------------------------------------------------------------------
# 2. Another wallet
# --------------------------------------------------------------------------------------------


def test_second_wallet_cannot_see_or_decrypt_the_first_wallets_tokens(
    real_dapp_for, backend_server, recorder
):
    base = backend_server.url
    store = backend_server.services.store

    # The first wallet (account 4) creates a token in its own browser context.
    dapp_a, wallet_a = real_dapp_for(4)
    page_a = dapp_a.open()
    session_a = SessionSniffer(page_a)
    sign_in(page_a, wallet_a)
    page_a.get_by_role("textbox", name="Prompt").fill("For my eyes only.")
    theirs = submit(page_a, base)
    wait_minted(page_a, theirs)

    # The second wallet (account 3), in another context, signs in with its own session.
    dapp_b, wallet_b = real_dapp_for(3)
    assert wallet_b.address != wallet_a.address
    page_b = dapp_b.open()
    session_b = SessionSniffer(page_b)
    sign_in(page_b, wallet_b)
    expect(page_b.locator("#tokens-empty")).to_be_visible()
    expect(page_b.locator(".token-card")).to_have_count(0)
    expect(page_b.locator("#tokens-count")).to_have_text("")
    with page_b.expect_response(lambda r: r.url == f"{base}/tokens"):
        pass  # one more poll after the first wallet's token was minted: still nothing
    expect(page_b.locator(".token-card")).to_have_count(0)
    dapp_b.shot(page_b, "journey-second-wallet")
    assert session_b.bearer and session_b.bearer != session_a.bearer

    listed = api(page_b, "GET", "/tokens", session_b.bearer)
    assert listed["status"] == 200 and listed["body"]["tokens"] == [], listed
    for method, path in [
        ("POST", f"/tokens/{theirs}/decrypt"),
        ("GET", f"/tokens/{theirs}"),
        ("POST", f"/tokens/{theirs}/persist"),
        ("DELETE", f"/tokens/{theirs}"),
    ]:
        answer = api(page_b, method, path, session_b.bearer)
        assert answer["status"] == 403, (method, path, answer)
        assert answer["body"]["code"] == "not_owner", answer
        assert "prompt" not in answer["body"]

    # Untouched, and still readable by its owner.
    payload = store.get_payload(theirs)
    assert payload.status == "minted" and not payload.shredded
    mine = api(page_a, "POST", f"/tokens/{theirs}/decrypt", session_a.bearer)
    assert mine["status"] == 200 and mine["body"]["prompt"] == "For my eyes only.", mine
    expect(card_of(page_a, theirs).locator(".badge")).to_have_text("Minted")

    recorder.assert_clean(base)
