"""ERC-5192 locking: an ephemeral token never moves; persist() unlocks it for good."""

import pytest

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
TRANSFER_METHODS = pytest.mark.parametrize(
    "method", ["transferFrom", "safeTransferFrom", "safeTransferFrom+data"]
)


def _transfer(slt, method, sender, from_, to, token_id):
    """Calls one of the three ERC-721 transfer functions."""
    name, *with_data = method.split("+")
    args = (from_, to, token_id, b"\x01") if with_data else (from_, to, token_id)
    return getattr(slt, name)(*args, sender=sender)


def test_minted_token_is_locked(slt, mint):
    token_id, _ = mint()

    assert slt.locked(token_id) is True


def test_locked_reverts_for_unknown_token(slt, mint, view_reverts):
    mint()

    view_reverts(slt.ERC721NonexistentToken, slt.locked, 2, tokenId=2)


@TRANSFER_METHODS
def test_transfer_reverts_when_locked(slt, mint, holder, other, reverts, method):
    token_id, _ = mint(to=holder)

    with reverts(slt.SLTTokenLocked, tokenId=token_id):
        _transfer(slt, method, holder, holder, other, token_id)

    assert slt.ownerOf(token_id) == holder
    assert slt.balanceOf(other) == 0


@TRANSFER_METHODS
def test_transfer_by_approved_or_operator_reverts_when_locked(
    slt, mint, holder, other, operator, reverts, method
):
    # Approving a locked (unexpired) token is allowed: it lets the approved address burn it.
    token_id, _ = mint(to=holder)
    slt.approve(operator, token_id, sender=holder)
    slt.setApprovalForAll(operator, True, sender=holder)

    with reverts(slt.SLTTokenLocked, tokenId=token_id):
        _transfer(slt, method, operator, holder, other, token_id)

    assert slt.ownerOf(token_id) == holder


def test_transfer_by_minter_reverts_when_locked(slt, mint, minter, holder, other, reverts):
    token_id, _ = mint(to=holder)

    with reverts(slt.SLTTokenLocked, tokenId=token_id):
        slt.transferFrom(holder, other, token_id, sender=minter)


# ---------------------------------------------------------------------------------------------
# persist()
# ---------------------------------------------------------------------------------------------


def test_persist_unlocks_and_clears_end_time(slt, mint_at, holder):
    token_id, start, _ = mint_at(3600)

    receipt = slt.persist(token_id, sender=holder)

    assert [log.event_name for log in receipt.events] == ["Unlocked", "TokenExpiryUpdated"]
    unlocked, expiry = receipt.events
    assert unlocked.tokenId == token_id
    assert (expiry.tokenId, expiry.startTime, expiry.endTime) == (token_id, start, 0)
    assert slt.locked(token_id) is False
    assert slt.endTime(token_id) == 0
    assert slt.startTime(token_id) == start
    assert slt.isSwitchable(token_id) is True
    assert slt.ownerOf(token_id) == holder


def test_persist_reverts_for_non_switchable_token(slt, mint, holder, reverts):
    token_id, _ = mint(to=holder, switchable=False)

    with reverts(slt.SLTNotSwitchable, tokenId=token_id):
        slt.persist(token_id, sender=holder)

    assert slt.locked(token_id) is True


def test_persist_reverts_when_already_persistent(slt, persisted, holder, reverts):
    token_id = persisted(to=holder)

    with reverts(slt.SLTAlreadyPersistent, tokenId=token_id):
        slt.persist(token_id, sender=holder)


@pytest.mark.parametrize("caller", ["stranger", "operator", "minter", "admin"])
def test_persist_reverts_for_anyone_but_the_owner(
    slt, mint, holder, operator, reverts, request, caller
):
    # Not even an approved address or operator: only the owner decides to keep a token.
    token_id, _ = mint(to=holder)
    slt.approve(operator, token_id, sender=holder)
    slt.setApprovalForAll(operator, True, sender=holder)
    account = request.getfixturevalue(caller)

    with reverts(slt.SLTNotTokenOwner, caller=account, tokenId=token_id):
        slt.persist(token_id, sender=account)

    assert slt.locked(token_id) is True


@pytest.mark.parametrize("token_id", [0, 2])
def test_persist_reverts_for_unknown_token(slt, mint, holder, reverts, token_id):
    mint(to=holder)

    with reverts(slt.ERC721NonexistentToken, tokenId=token_id):
        slt.persist(token_id, sender=holder)


def test_persist_reverts_for_burned_token(slt, mint, holder, reverts):
    token_id, _ = mint(to=holder)
    slt.burn(token_id, sender=holder)

    with reverts(slt.ERC721NonexistentToken, tokenId=token_id):
        slt.persist(token_id, sender=holder)


# ---------------------------------------------------------------------------------------------
# Persistent tokens are ordinary ERC-721 tokens
# ---------------------------------------------------------------------------------------------


@TRANSFER_METHODS
def test_persistent_token_is_transferable(slt, persisted, holder, other, method):
    token_id = persisted(to=holder)

    receipt = _transfer(slt, method, holder, holder, other, token_id)

    assert slt.ownerOf(token_id) == other
    assert slt.balanceOf(holder) == 0
    assert slt.balanceOf(other) == 1
    transfer = receipt.events.filter(slt.Transfer)[0]
    assert (transfer["from"], transfer.to, transfer.id) == (holder, other, token_id)
    assert slt.locked(token_id) is False


@pytest.mark.parametrize("approval", ["token", "all"])
def test_persistent_token_moves_by_approved_address_or_operator(
    slt, persisted, holder, other, operator, approval
):
    token_id = persisted(to=holder)
    if approval == "token":
        slt.approve(operator, token_id, sender=holder)
    else:
        slt.setApprovalForAll(operator, True, sender=holder)

    slt.transferFrom(holder, other, token_id, sender=operator)

    assert slt.ownerOf(token_id) == other
    assert slt.getApproved(token_id) == ZERO_ADDRESS


def test_persistent_token_transfer_by_stranger_reverts(slt, persisted, holder, stranger, reverts):
    token_id = persisted(to=holder)

    with reverts(slt.NotOwnerNorApproved):
        slt.transferFrom(holder, stranger, token_id, sender=stranger)

    assert slt.ownerOf(token_id) == holder


def test_persistent_token_new_owner_cannot_persist_again(slt, persisted, holder, other, reverts):
    token_id = persisted(to=holder)
    slt.transferFrom(holder, other, token_id, sender=holder)

    with reverts(slt.SLTAlreadyPersistent, tokenId=token_id):
        slt.persist(token_id, sender=other)


def test_safe_transfer_to_non_receiver_contract_reverts(slt, persisted, holder, reverts):
    # safeTransferFrom still runs the receiver check after the lock check.
    token_id = persisted(to=holder)

    with reverts(slt.TransferToNonERC721ReceiverImplementer):
        slt.safeTransferFrom(holder, slt.address, token_id, sender=holder)

    assert slt.ownerOf(token_id) == holder
