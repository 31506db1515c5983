"""Constructor, roles (Solady OwnableRoles) and ERC-721 metadata."""

import pytest
from eth_utils import keccak

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
MAX_TTL = 100 * 365 * 24 * 3600
COMMITMENT = keccak(text="ciphertext")

# ---------------------------------------------------------------------------------------------
# Constructor
# ---------------------------------------------------------------------------------------------


def test_constructor_sets_owner_minter_base_uri_and_ttl(deploy, admin, minter, holder):
    token = deploy(base_uri="https://slt.example/t/", ttl=3600)
    token.mint(holder, 0, COMMITMENT, True, sender=minter)

    assert token.owner() == admin
    assert token.MINTER_ROLE() == 1
    assert token.rolesOf(minter) == token.MINTER_ROLE()
    assert token.rolesOf(admin) == 0
    assert token.defaultTTL() == 3600
    assert token.tokenURI(1) == "https://slt.example/t/1"


def test_constructor_reverts_for_zero_admin(deploy_reverts, project, minter):
    deploy_reverts(
        project.SymbioticLearningToken.SLTInvalidAdmin,
        ZERO_ADDRESS,
        minter,
        "ipfs://x/",
        3600,
        admin=ZERO_ADDRESS,
    )


@pytest.mark.parametrize("ttl", [0, MAX_TTL + 1, 2**256 - 1], ids=["zero", "100y+1s", "max"])
def test_constructor_reverts_for_invalid_ttl(deploy_reverts, project, admin, minter, ttl):
    error = project.SymbioticLearningToken.SLTInvalidTTL
    deploy_reverts(error, admin, minter, "ipfs://x/", ttl, ttl=ttl)


@pytest.mark.parametrize("ttl", [1, MAX_TTL], ids=["1s", "100y"])
def test_constructor_accepts_ttl_bounds(deploy, minter, holder, ttl):
    token = deploy(ttl=ttl)

    receipt = token.mint(holder, 0, COMMITMENT, True, sender=minter)

    assert token.defaultTTL() == ttl
    assert token.endTime(1) - token.startTime(1) == ttl
    assert receipt.events.filter(token.TokenExpiryUpdated)[0].endTime == token.endTime(1)


def test_constructor_with_zero_minter_grants_no_role(deploy, admin, minter, holder, reverts):
    token = deploy(first_minter=ZERO_ADDRESS)

    assert token.rolesOf(minter) == 0
    with reverts(token.Unauthorized):
        token.mint(holder, 0, COMMITMENT, True, sender=minter)


# ---------------------------------------------------------------------------------------------
# Roles: the admin grants and revokes minters
# ---------------------------------------------------------------------------------------------


def test_admin_grants_minter_role(slt, admin, holder, other):
    receipt = slt.grantRoles(other, slt.MINTER_ROLE(), sender=admin)

    assert receipt.events.filter(slt.RolesUpdated)[0].roles == slt.MINTER_ROLE()
    assert slt.hasAnyRole(other, slt.MINTER_ROLE()) is True
    slt.mint(holder, 0, COMMITMENT, True, sender=other)
    assert slt.ownerOf(1) == holder


def test_admin_revokes_minter_role(slt, admin, minter, holder, reverts):
    slt.revokeRoles(minter, slt.MINTER_ROLE(), sender=admin)

    assert slt.hasAnyRole(minter, slt.MINTER_ROLE()) is False
    with reverts(slt.Unauthorized):
        slt.mint(holder, 0, COMMITMENT, True, sender=minter)
    with reverts(slt.Unauthorized):
        slt.mintBatch([(holder, 0, True, COMMITMENT)], sender=minter)
    with reverts(slt.Unauthorized):
        slt.burnBatch([1], sender=minter)


def test_minter_can_renounce_its_role(slt, minter, holder, reverts):
    slt.renounceRoles(slt.MINTER_ROLE(), sender=minter)

    with reverts(slt.Unauthorized):
        slt.mint(holder, 0, COMMITMENT, True, sender=minter)


@pytest.mark.parametrize("caller", ["minter", "stranger"])
def test_grant_and_revoke_roles_revert_for_non_admin(
    slt, minter, stranger, reverts, request, caller
):
    account = request.getfixturevalue(caller)

    with reverts(slt.Unauthorized):
        slt.grantRoles(stranger, slt.MINTER_ROLE(), sender=account)
    with reverts(slt.Unauthorized):
        slt.revokeRoles(minter, slt.MINTER_ROLE(), sender=account)

    assert slt.hasAnyRole(stranger, slt.MINTER_ROLE()) is False
    assert slt.hasAnyRole(minter, slt.MINTER_ROLE()) is True


def test_new_owner_takes_over_the_admin_rights(slt, admin, other, stranger, reverts):
    slt.transferOwnership(other, sender=admin)

    slt.grantRoles(stranger, slt.MINTER_ROLE(), sender=other)
    assert slt.hasAnyRole(stranger, slt.MINTER_ROLE()) is True
    with reverts(slt.Unauthorized):
        slt.setBaseURI("ipfs://old-admin/", sender=admin)


# ---------------------------------------------------------------------------------------------
# Metadata
# ---------------------------------------------------------------------------------------------


def test_name_and_symbol(slt):
    assert slt.name() == "Symbiotic Learning Token"
    assert slt.symbol() == "SLT"


def test_token_uri_is_base_uri_followed_by_decimal_id(slt, mint, minter, holder):
    for _ in range(10):
        mint(to=holder)

    assert slt.tokenURI(1) == "ipfs://slt/1"
    assert slt.tokenURI(10) == "ipfs://slt/10"


@pytest.mark.parametrize("token_id", [0, 2, 2**256 - 1])
def test_token_uri_reverts_for_unknown_token(slt, mint, view_reverts, token_id):
    mint()

    view_reverts(slt.ERC721NonexistentToken, slt.tokenURI, token_id, tokenId=token_id)


def test_admin_sets_base_uri_and_emits_base_uri_updated(slt, mint, admin):
    token_id, _ = mint()

    receipt = slt.setBaseURI("https://meta.example/slt/", sender=admin)

    assert [log.event_name for log in receipt.events] == ["BaseURIUpdated"]
    assert receipt.events[0].baseURI == "https://meta.example/slt/"
    assert slt.tokenURI(token_id) == f"https://meta.example/slt/{token_id}"


def test_empty_base_uri_gives_bare_decimal_id(slt, mint, admin):
    token_id, _ = mint()

    slt.setBaseURI("", sender=admin)

    assert slt.tokenURI(token_id) == str(token_id)


@pytest.mark.parametrize("caller", ["minter", "stranger", "holder"])
def test_set_base_uri_reverts_for_non_admin(slt, mint, reverts, request, caller):
    token_id, _ = mint()
    account = request.getfixturevalue(caller)

    with reverts(slt.Unauthorized):
        slt.setBaseURI("https://evil.example/", sender=account)

    assert slt.tokenURI(token_id) == f"ipfs://slt/{token_id}"


def test_burn_auth_is_both(slt, mint):
    token_id, _ = mint()

    assert slt.burnAuth(token_id) == 2


def test_burn_auth_reverts_for_unknown_token(slt, view_reverts):
    view_reverts(slt.ERC721NonexistentToken, slt.burnAuth, 1, tokenId=1)
