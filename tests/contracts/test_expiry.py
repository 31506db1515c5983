"""ERC-7858 time-based expiry: a token is expired from endTime on (block.timestamp >= endTime).

Boundaries are set relative to the mint block's time: views see the latest mined block, so
`mine_at` mines one at the exact time first; transactions see the pending block, so their
time is set with `chain.pending_timestamp`.
"""

import ape
import pytest

TTL = 1000
TIME_BASED = 1
BOUNDARY = pytest.mark.parametrize("offset", [-1, 0, 1], ids=["end-1", "end", "end+1"])
FROM_END_ON = pytest.mark.parametrize("offset", [0, 1], ids=["end", "end+1"])


def test_expiry_type_is_time_based(slt):
    assert slt.expiryType() == TIME_BASED


@BOUNDARY
def test_is_token_expired_from_end_time_on(slt, mint_at, mine_at, offset):
    token_id, start, end = mint_at(TTL)
    assert end - start == TTL

    mine_at(end + offset)

    assert slt.isTokenExpired(token_id) is (offset >= 0)


def test_token_is_not_expired_in_its_mint_block(slt, mint_at):
    token_id, start, _ = mint_at(1)

    assert ape.chain.blocks.head.timestamp == start
    assert slt.isTokenExpired(token_id) is False


def test_expiry_leaves_start_and_end_time_unchanged(slt, mint_at, mine_at):
    token_id, start, end = mint_at(TTL)

    mine_at(end + 10)

    assert slt.startTime(token_id) == start
    assert slt.endTime(token_id) == end
    assert slt.locked(token_id) is True


@pytest.mark.parametrize("view", ["startTime", "endTime", "isTokenExpired"])
@pytest.mark.parametrize("token_id", [0, 2, 2**256 - 1])
def test_expiry_views_revert_for_unknown_token(slt, mint, view_reverts, view, token_id):
    mint()  # id 1 exists; the others do not

    view_reverts(slt.ERC721NonexistentToken, getattr(slt, view), token_id, tokenId=token_id)


# ---------------------------------------------------------------------------------------------
# What an expired token can no longer do
# ---------------------------------------------------------------------------------------------


def test_approve_allowed_one_second_before_expiry(slt, mint_at, holder, stranger):
    token_id, _, end = mint_at(TTL)
    ape.chain.pending_timestamp = end - 1

    slt.approve(stranger, token_id, sender=holder)

    assert slt.getApproved(token_id) == stranger


@FROM_END_ON
def test_approve_reverts_when_expired(slt, mint_at, holder, stranger, reverts, offset):
    token_id, _, end = mint_at(TTL)
    ape.chain.pending_timestamp = end + offset

    with reverts(slt.SLTTokenExpired, tokenId=token_id, endTime=end):
        slt.approve(stranger, token_id, sender=holder)

    assert slt.getApproved(token_id) == "0x0000000000000000000000000000000000000000"


def test_persist_allowed_one_second_before_expiry(slt, mint_at, holder):
    token_id, _, end = mint_at(TTL)
    ape.chain.pending_timestamp = end - 1

    slt.persist(token_id, sender=holder)

    assert slt.endTime(token_id) == 0


@FROM_END_ON
def test_persist_reverts_when_expired(slt, mint_at, holder, reverts, offset):
    token_id, _, end = mint_at(TTL)
    ape.chain.pending_timestamp = end + offset

    with reverts(slt.SLTTokenExpired, tokenId=token_id, endTime=end):
        slt.persist(token_id, sender=holder)

    assert slt.endTime(token_id) == end
    assert slt.locked(token_id) is True


@pytest.mark.parametrize("method", ["transferFrom", "safeTransferFrom", "safeTransferFrom+data"])
def test_transfer_reverts_when_expired(slt, mint_at, mine_at, holder, other, reverts, method):
    token_id, _, end = mint_at(TTL)
    mine_at(end + 1)
    assert slt.isTokenExpired(token_id) is True
    name, *extra = method.split("+")
    args = (holder, other, token_id, b"") if extra else (holder, other, token_id)

    with reverts(slt.SLTTokenLocked, tokenId=token_id):
        getattr(slt, name)(*args, sender=holder)

    assert slt.ownerOf(token_id) == holder


def test_stranger_burn_reverts_one_second_before_expiry(slt, mint_at, stranger, reverts):
    token_id, _, end = mint_at(TTL)
    ape.chain.pending_timestamp = end - 1

    with reverts(slt.SLTBurnNotAuthorized, caller=stranger, tokenId=token_id):
        slt.burn(token_id, sender=stranger)


@FROM_END_ON
def test_anyone_can_burn_an_expired_token(slt, mint_at, holder, stranger, view_reverts, offset):
    token_id, _, end = mint_at(TTL)
    ape.chain.pending_timestamp = end + offset

    slt.burn(token_id, sender=stranger)

    assert slt.balanceOf(holder) == 0
    view_reverts(slt.TokenDoesNotExist, slt.ownerOf, token_id)


# ---------------------------------------------------------------------------------------------
# TokenExpiryUpdated and persistence
# ---------------------------------------------------------------------------------------------


def test_persist_emits_token_expiry_updated_with_end_time_zero(slt, mint_at, holder):
    token_id, start, _ = mint_at(TTL)

    receipt = slt.persist(token_id, sender=holder)

    events = receipt.events.filter(slt.TokenExpiryUpdated)
    assert len(events) == 1
    assert (events[0].tokenId, events[0].startTime, events[0].endTime) == (token_id, start, 0)


def test_persistent_token_never_expires(slt, mint_at, mine_at, holder):
    token_id, start, end = mint_at(TTL)
    slt.persist(token_id, sender=holder)

    mine_at(end + 10 * 365 * 24 * 3600)

    assert slt.isTokenExpired(token_id) is False
    assert slt.endTime(token_id) == 0
    assert slt.startTime(token_id) == start
