"""Burning (ERC-5484 BurnAuth.Both): who may burn, batch burns, and that nothing is left behind."""

import ape
import pytest
from eth_utils import keccak

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
BURN_AUTH_BOTH = 2

# Solady ERC721 storage, from the layout comment in solady/src/tokens/ERC721.sol:
#     mstore(0x00, id)
#     mstore(0x1c, _ERC721_MASTER_SLOT_SEED)
#     let ownershipSlot := add(id, add(id, keccak256(0x00, 0x20)))
# The second store overwrites the id's low 4 bytes with the seed's top 4 bytes, so the hashed
# word is the id with its low 32 bits replaced by `seed >> 224`. The approved address is in
# ownershipSlot + 1. Bits of the ownership word: [0..159] owner, [160..255] extra data.
ERC721_MASTER_SLOT_SEED = 0x7D8825530A5A2E7A << 192
SWITCHABLE_BIT = 1 << 80


def ownership_slot(token_id: int) -> int:
    word = (token_id >> 32 << 32) | (ERC721_MASTER_SLOT_SEED >> 224)
    digest = int.from_bytes(keccak(word.to_bytes(32, "big")), "big")
    return (token_id + token_id + digest) % 2**256


def storage_word(contract, slot: int) -> int:
    return int.from_bytes(ape.chain.provider.get_storage(contract.address, slot), "big")


def expected_ownership_word(owner, start: int, end: int, switchable: bool) -> int:
    """The packed word the contract's bits layout promises: owner | extra << 160."""
    extra = end | start << 40 | (SWITCHABLE_BIT if switchable else 0)
    return int(owner.address, 16) | extra << 160


# ---------------------------------------------------------------------------------------------
# Who may burn
# ---------------------------------------------------------------------------------------------


def _assert_burned(slt, token_id, receipt, owner, view_reverts):
    transfer = receipt.events.filter(slt.Transfer)[0]
    assert (transfer["from"], transfer.to, transfer.id) == (owner, ZERO_ADDRESS, token_id)
    view_reverts(slt.TokenDoesNotExist, slt.ownerOf, token_id)


def test_owner_can_burn(slt, mint, holder, view_reverts):
    token_id, _ = mint(to=holder)

    receipt = slt.burn(token_id, sender=holder)

    _assert_burned(slt, token_id, receipt, holder, view_reverts)
    assert slt.balanceOf(holder) == 0


def test_approved_address_can_burn(slt, mint, holder, operator, view_reverts):
    token_id, _ = mint(to=holder)
    slt.approve(operator, token_id, sender=holder)

    receipt = slt.burn(token_id, sender=operator)

    _assert_burned(slt, token_id, receipt, holder, view_reverts)


def test_operator_can_burn(slt, mint, holder, operator, view_reverts):
    token_id, _ = mint(to=holder)
    slt.setApprovalForAll(operator, True, sender=holder)

    receipt = slt.burn(token_id, sender=operator)

    _assert_burned(slt, token_id, receipt, holder, view_reverts)


def test_issuer_can_burn_any_token(slt, mint, persisted, minter, holder, view_reverts):
    ephemeral, _ = mint(to=holder)
    persistent = persisted(to=holder)

    for token_id in (ephemeral, persistent):
        receipt = slt.burn(token_id, sender=minter)
        _assert_burned(slt, token_id, receipt, holder, view_reverts)


def test_any_minter_can_burn_tokens_another_minter_issued(
    slt, mint, admin, holder, other, view_reverts
):
    token_id, _ = mint(to=holder)
    slt.grantRoles(other, slt.MINTER_ROLE(), sender=admin)

    receipt = slt.burn(token_id, sender=other)

    _assert_burned(slt, token_id, receipt, holder, view_reverts)


@pytest.mark.parametrize("caller", ["stranger", "admin", "other"])
def test_burn_reverts_for_unauthorized_caller(slt, mint, holder, reverts, request, caller):
    # The admin is not an issuer: only MINTER_ROLE holders are.
    account = request.getfixturevalue(caller)
    token_id, _ = mint(to=holder)

    with reverts(slt.SLTBurnNotAuthorized, caller=account, tokenId=token_id):
        slt.burn(token_id, sender=account)

    assert slt.ownerOf(token_id) == holder


def test_burn_reverts_for_revoked_minter(slt, mint, admin, minter, holder, reverts):
    token_id, _ = mint(to=holder)
    slt.revokeRoles(minter, slt.MINTER_ROLE(), sender=admin)

    with reverts(slt.SLTBurnNotAuthorized, caller=minter, tokenId=token_id):
        slt.burn(token_id, sender=minter)


def test_burn_reverts_for_approval_revoked_by_transfer(
    slt, persisted, holder, other, operator, reverts
):
    # A transfer clears the token's approval: the old approved address may no longer burn it.
    token_id = persisted(to=holder)
    slt.approve(operator, token_id, sender=holder)
    slt.transferFrom(holder, other, token_id, sender=holder)

    with reverts(slt.SLTBurnNotAuthorized, caller=operator, tokenId=token_id):
        slt.burn(token_id, sender=operator)


@pytest.mark.parametrize("token_id", [0, 2, 2**256 - 1])
def test_burn_reverts_for_unknown_token(slt, mint, holder, reverts, token_id):
    mint(to=holder)

    with reverts(slt.ERC721NonexistentToken, tokenId=token_id):
        slt.burn(token_id, sender=holder)


def test_burn_reverts_for_already_burned_token(slt, mint, minter, holder, reverts):
    token_id, _ = mint(to=holder)
    slt.burn(token_id, sender=holder)

    with reverts(slt.ERC721NonexistentToken, tokenId=token_id):
        slt.burn(token_id, sender=minter)


# ---------------------------------------------------------------------------------------------
# burnBatch
# ---------------------------------------------------------------------------------------------


def test_burn_batch_burns_listed_tokens_and_skips_unknown_ids(
    slt, mint, minter, holder, other, view_reverts
):
    ids = [mint(to=to)[0] for to in (holder, other, holder, other)]  # 1..4
    slt.burn(3, sender=holder)

    receipt = slt.burnBatch([1, 3, 99, 0, 4, 1], sender=minter)

    burned = [(t["from"], t.to, t.id) for t in receipt.events.filter(slt.Transfer)]
    assert burned == [(holder, ZERO_ADDRESS, 1), (other, ZERO_ADDRESS, 4)]
    for token_id in (1, 3, 4):
        view_reverts(slt.TokenDoesNotExist, slt.ownerOf, token_id)
    assert slt.ownerOf(ids[1]) == other
    assert slt.balanceOf(holder) == 0
    assert slt.balanceOf(other) == 1


def test_burn_batch_burns_persistent_and_expired_tokens(slt, mint_at, persisted, minter, holder):
    expired, _, end = mint_at(10)
    persistent = persisted(to=holder)
    ape.chain.pending_timestamp = end + 1

    slt.burnBatch([expired, persistent], sender=minter)

    assert slt.balanceOf(holder) == 0


def test_empty_burn_batch_burns_nothing(slt, mint, minter, holder):
    mint(to=holder)

    receipt = slt.burnBatch([], sender=minter)

    assert list(receipt.events) == []
    assert slt.balanceOf(holder) == 1


@pytest.mark.parametrize("caller", ["stranger", "holder", "admin"])
def test_burn_batch_reverts_for_non_minter(slt, mint, holder, reverts, request, caller):
    # Not even the owner of every listed token: a batch is the issuer's clean-up tool.
    token_id, _ = mint(to=holder)
    account = request.getfixturevalue(caller)

    with reverts(slt.Unauthorized):
        slt.burnBatch([token_id], sender=account)

    assert slt.ownerOf(token_id) == holder


# ---------------------------------------------------------------------------------------------
# Nothing is left behind, and nothing comes back
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "view", ["startTime", "endTime", "isTokenExpired", "locked", "isSwitchable", "burnAuth"]
)
def test_burn_clears_every_per_token_view(slt, mint, holder, view_reverts, view):
    token_id, _ = mint(to=holder)
    assert getattr(slt, view)(token_id) is not None
    slt.burn(token_id, sender=holder)

    view_reverts(slt.ERC721NonexistentToken, getattr(slt, view), token_id, tokenId=token_id)


def test_burn_makes_token_uri_and_approval_views_revert(slt, mint, holder, view_reverts):
    token_id, _ = mint(to=holder)
    slt.burn(token_id, sender=holder)

    view_reverts(slt.ERC721NonexistentToken, slt.tokenURI, token_id, tokenId=token_id)
    view_reverts(slt.TokenDoesNotExist, slt.ownerOf, token_id)
    view_reverts(slt.TokenDoesNotExist, slt.getApproved, token_id)


def test_ownership_slot_holds_owner_and_packed_extra_data(slt, mint_at, holder):
    # Checks the slot computation against the contract's bits layout before relying on it.
    token_id, start, end = mint_at(3600, to=holder, switchable=True)
    plain_id, plain_start, plain_end = mint_at(60, to=holder, switchable=False)

    assert storage_word(slt, ownership_slot(token_id)) == expected_ownership_word(
        holder, start, end, True
    )
    assert storage_word(slt, ownership_slot(plain_id)) == expected_ownership_word(
        holder, plain_start, plain_end, False
    )


@pytest.mark.parametrize("burner", ["owner", "issuer", "batch", "anyone-after-expiry"])
def test_burn_leaves_no_storage_residue(slt, mint_at, minter, holder, operator, stranger, burner):
    token_id, start, end = mint_at(3600, to=holder)
    slot = ownership_slot(token_id)
    slt.approve(operator, token_id, sender=holder)
    assert storage_word(slt, slot) == expected_ownership_word(holder, start, end, True)
    assert storage_word(slt, slot + 1) == int(operator.address, 16)

    if burner == "owner":
        slt.burn(token_id, sender=holder)
    elif burner == "issuer":
        slt.burn(token_id, sender=minter)
    elif burner == "batch":
        slt.burnBatch([token_id], sender=minter)
    else:
        ape.chain.pending_timestamp = end
        slt.burn(token_id, sender=stranger)

    assert storage_word(slt, slot) == 0
    assert storage_word(slt, slot + 1) == 0


def test_burn_of_persistent_token_leaves_no_storage_residue(slt, mint_at, holder):
    token_id, start, _ = mint_at(3600, to=holder)
    slt.persist(token_id, sender=holder)
    slot = ownership_slot(token_id)
    assert storage_word(slt, slot) == expected_ownership_word(holder, start, 0, True)

    slt.burn(token_id, sender=holder)

    assert storage_word(slt, slot) == 0


def test_burned_id_is_never_minted_again(slt, mint, holder, view_reverts):
    first, _ = mint(to=holder)
    slt.burn(first, sender=holder)

    second, _ = mint(to=holder)

    assert second == first + 1
    assert slt.totalMinted() == 2
    view_reverts(slt.TokenDoesNotExist, slt.ownerOf, first)
    view_reverts(slt.ERC721NonexistentToken, slt.startTime, first, tokenId=first)
