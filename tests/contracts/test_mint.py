"""Minting: one token (mint) and many (mintBatch)."""

import ape
import pytest
from eth_utils import keccak

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
COMMITMENT = keccak(text="ciphertext")
MAX_END_TIME = 2**40 - 1
BURN_AUTH_BOTH = 2
MINT_EVENTS = ["Transfer", "Issued", "Locked", "TokenExpiryUpdated", "CommitmentPublished"]


def _block_time(receipt) -> int:
    return ape.chain.provider.get_block(receipt.block_number).timestamp


def _event_args(log) -> dict:
    return {k: getattr(v, "address", v) for k, v in log.event_arguments.items()}


def test_first_mint_gets_id_1_and_belongs_to_recipient(slt, mint, holder):
    assert slt.totalMinted() == 0

    token_id, _ = mint(to=holder)

    assert token_id == 1
    assert slt.ownerOf(1) == holder
    assert slt.balanceOf(holder) == 1
    assert slt.totalMinted() == 1


def test_mint_ids_are_consecutive(slt, mint, holder, other):
    ids = [mint(to=to)[0] for to in (holder, other, holder)]

    assert ids == [1, 2, 3]
    assert [slt.ownerOf(i) for i in ids] == [holder, other, holder]
    assert slt.balanceOf(holder) == 2
    assert slt.balanceOf(other) == 1


def test_mint_emits_transfer_issued_locked_expiry_and_commitment(slt, minter, holder):
    end = ape.chain.pending_timestamp + 3600
    commitment = keccak(text="payload #1")

    receipt = slt.mint(holder, end, commitment, True, sender=minter)

    start = _block_time(receipt)
    assert [log.event_name for log in receipt.events] == MINT_EVENTS
    transfer, issued, locked, expiry, published = receipt.events
    assert _event_args(transfer) == {"from": ZERO_ADDRESS, "to": holder.address, "id": 1}
    assert _event_args(issued) == {
        "from": minter.address,
        "to": holder.address,
        "tokenId": 1,
        "burnAuth": BURN_AUTH_BOTH,
    }
    assert _event_args(locked) == {"tokenId": 1}
    assert _event_args(expiry) == {"tokenId": 1, "startTime": start, "endTime": end}
    assert _event_args(published) == {"tokenId": 1, "commitment": commitment}


def test_mint_event_topics_are_the_keccak_of_the_event_signatures(slt, mint):
    # The contract writes these four logs in assembly with hand-copied topic constants.
    _, receipt = mint()

    topics = [bytes(log["topics"][0]) for log in receipt.logs]
    signatures = [
        "Transfer(address,address,uint256)",
        "Issued(address,address,uint256,uint8)",
        "Locked(uint256)",
        "TokenExpiryUpdated(uint256,uint256,uint256)",
        "CommitmentPublished(uint256,bytes32)",
    ]
    assert topics == [keccak(text=s) for s in signatures]


def test_mint_records_start_end_and_switchable(slt, minter, holder):
    end = ape.chain.pending_timestamp + 3600

    receipt = slt.mint(holder, end, COMMITMENT, True, sender=minter)

    assert slt.startTime(1) == _block_time(receipt)
    assert slt.endTime(1) == end
    assert slt.isSwitchable(1) is True
    assert slt.locked(1) is True
    assert slt.isTokenExpired(1) is False
    assert slt.burnAuth(1) == BURN_AUTH_BOTH


def test_mint_records_not_switchable(slt, mint):
    token_id, _ = mint(switchable=False)

    assert slt.isSwitchable(token_id) is False
    assert slt.locked(token_id) is True


def test_mint_with_end_time_zero_lasts_the_default_ttl(slt, mint):
    token_id, receipt = mint(ttl=None)

    start = _block_time(receipt)
    assert slt.startTime(token_id) == start
    assert slt.endTime(token_id) - start == slt.defaultTTL()
    expiry = receipt.events.filter(slt.TokenExpiryUpdated)[0]
    assert expiry.endTime - expiry.startTime == slt.defaultTTL()


def test_mint_accepts_the_largest_40_bit_end_time(slt, minter, holder):
    slt.mint(holder, MAX_END_TIME, COMMITMENT, True, sender=minter)

    assert slt.endTime(1) == MAX_END_TIME


@pytest.mark.parametrize("offset", [-1, 0], ids=["past", "now"])
def test_mint_reverts_when_end_time_is_not_in_the_future(slt, minter, holder, reverts, offset):
    now = ape.chain.blocks.head.timestamp + 5
    ape.chain.pending_timestamp = now

    with reverts(slt.SLTInvalidEndTime, endTime=now + offset, blockTime=now):
        slt.mint(holder, now + offset, COMMITMENT, True, sender=minter)

    assert slt.totalMinted() == 0


@pytest.mark.parametrize("end", [MAX_END_TIME + 1, 2**64 - 1], ids=["2**40", "2**64-1"])
def test_mint_reverts_when_end_time_does_not_fit_40_bits(slt, minter, holder, reverts, end):
    now = ape.chain.blocks.head.timestamp + 5
    ape.chain.pending_timestamp = now

    with reverts(slt.SLTInvalidEndTime, endTime=end, blockTime=now):
        slt.mint(holder, end, COMMITMENT, True, sender=minter)


@pytest.mark.parametrize("caller", ["stranger", "admin", "holder"])
def test_mint_reverts_for_non_minter(slt, holder, reverts, request, caller):
    # The admin (Solady owner) grants the role but does not hold it.
    account = request.getfixturevalue(caller)

    with reverts(slt.Unauthorized):
        slt.mint(holder, 0, COMMITMENT, True, sender=account)


def test_mint_reverts_for_zero_address_recipient(slt, minter, reverts):
    with reverts(slt.TransferToZeroAddress):
        slt.mint(ZERO_ADDRESS, 0, COMMITMENT, True, sender=minter)

    assert slt.totalMinted() == 0


# ---------------------------------------------------------------------------------------------
# mintBatch(MintRequest[]), MintRequest = (to, endTime, switchable, commitment)
# ---------------------------------------------------------------------------------------------


def test_mint_batch_gives_consecutive_ids_to_mixed_recipients(slt, mint, minter, holder, other):
    mint()  # id 1: the batch continues the counter
    end = ape.chain.pending_timestamp + 3600
    requests = [
        (holder, end, True, keccak(text="a")),
        (other, end, False, keccak(text="b")),
        (holder, 0, True, keccak(text="c")),
    ]

    receipt = slt.mintBatch(requests, sender=minter)

    assert receipt.return_value == 2
    assert [slt.ownerOf(i) for i in (2, 3, 4)] == [holder, other, holder]
    assert slt.balanceOf(holder) == 3
    assert slt.balanceOf(other) == 1
    assert slt.totalMinted() == 4
    assert [slt.isSwitchable(i) for i in (2, 3, 4)] == [True, False, True]


def test_mint_batch_emits_the_five_mint_events_per_token(slt, minter, holder, other):
    end = ape.chain.pending_timestamp + 3600
    commitments = [keccak(text="a"), keccak(text="b")]
    requests = [(holder, end, True, commitments[0]), (other, 0, False, commitments[1])]

    receipt = slt.mintBatch(requests, sender=minter)

    start = _block_time(receipt)
    assert [log.event_name for log in receipt.events] == MINT_EVENTS * 2
    for index, (to, token_id) in enumerate([(holder, 1), (other, 2)]):
        transfer, issued, locked, expiry, published = receipt.events[5 * index : 5 * index + 5]
        assert _event_args(transfer) == {"from": ZERO_ADDRESS, "to": to.address, "id": token_id}
        assert _event_args(issued) == {
            "from": minter.address,
            "to": to.address,
            "tokenId": token_id,
            "burnAuth": BURN_AUTH_BOTH,
        }
        assert _event_args(locked) == {"tokenId": token_id}
        assert expiry.tokenId == token_id
        assert expiry.startTime == start
        assert _event_args(published) == {"tokenId": token_id, "commitment": commitments[index]}
    assert receipt.events[3].endTime == end
    assert receipt.events[8].endTime == start + slt.defaultTTL()


def test_mint_batch_end_time_zero_lasts_the_default_ttl(slt, minter, holder):
    explicit_end = ape.chain.pending_timestamp + 60

    receipt = slt.mintBatch([(holder, 0, True, COMMITMENT)] * 2, sender=minter)
    slt.mintBatch([(holder, explicit_end, True, COMMITMENT)], sender=minter)

    start = _block_time(receipt)
    assert [slt.endTime(i) - start for i in (1, 2)] == [slt.defaultTTL()] * 2
    assert slt.endTime(3) == explicit_end


def test_mint_batch_reverts_whole_batch_on_one_invalid_end_time(slt, minter, holder, reverts):
    now = ape.chain.blocks.head.timestamp + 5
    ape.chain.pending_timestamp = now
    requests = [(holder, 0, True, COMMITMENT), (holder, now, True, COMMITMENT)]

    with reverts(slt.SLTInvalidEndTime, endTime=now, blockTime=now):
        slt.mintBatch(requests, sender=minter)

    assert slt.totalMinted() == 0
    assert slt.balanceOf(holder) == 0


def test_mint_batch_reverts_for_non_minter(slt, holder, stranger, reverts):
    with reverts(slt.Unauthorized):
        slt.mintBatch([(holder, 0, True, COMMITMENT)], sender=stranger)


def test_mint_batch_reverts_for_zero_address_recipient(slt, minter, holder, reverts):
    requests = [(holder, 0, True, COMMITMENT), (ZERO_ADDRESS, 0, True, COMMITMENT)]

    with reverts(slt.TransferToZeroAddress):
        slt.mintBatch(requests, sender=minter)

    assert slt.totalMinted() == 0


def test_empty_mint_batch_mints_nothing(slt, mint, minter):
    mint()

    receipt = slt.mintBatch([], sender=minter)

    assert receipt.return_value == 2
    assert slt.totalMinted() == 1
    assert list(receipt.events) == []
