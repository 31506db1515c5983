"""ERC-165: interface ids computed here from function signatures, never copied.

An ERC-165 interface id is the XOR of the 4-byte selectors of the interface's functions.
"""

import random
from functools import reduce

import pytest
from eth_utils import keccak

ERC165 = ["supportsInterface(bytes4)"]
ERC721 = [
    "balanceOf(address)",
    "ownerOf(uint256)",
    "safeTransferFrom(address,address,uint256,bytes)",
    "safeTransferFrom(address,address,uint256)",
    "transferFrom(address,address,uint256)",
    "approve(address,uint256)",
    "setApprovalForAll(address,bool)",
    "getApproved(uint256)",
    "isApprovedForAll(address,address)",
]
ERC721_METADATA = ["name()", "symbol()", "tokenURI(uint256)"]
ERC7858 = [
    "expiryType()",
    "isTokenExpired(uint256)",
    "startTime(uint256)",
    "endTime(uint256)",
]
ERC5192 = ["locked(uint256)"]
ERC5484 = ["burnAuth(uint256)"]
SUPPORTED = {
    "ERC-165": ERC165,
    "ERC-721": ERC721,
    "ERC-721 Metadata": ERC721_METADATA,
    "ERC-7858": ERC7858,
    "ERC-5192": ERC5192,
    "ERC-5484": ERC5484,
}
UNSUPPORTED = {
    "ERC-173 ownership": ["owner()", "transferOwnership(address)"],
    "ERC-721 Enumerable": [
        "totalSupply()",
        "tokenOfOwnerByIndex(address,uint256)",
        "tokenByIndex(uint256)",
    ],
    "ERC-2981 royalties": ["royaltyInfo(uint256,uint256)"],
}


def selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def interface_id(signatures: list[str]) -> bytes:
    ids = [int.from_bytes(selector(s), "big") for s in signatures]
    return reduce(lambda a, b: a ^ b, ids, 0).to_bytes(4, "big")


SUPPORTED_IDS = {interface_id(sigs) for sigs in SUPPORTED.values()}


def test_erc165_id_of_supports_interface_is_its_own_selector():
    # Sanity check of the computation: a one-function interface's id is that selector.
    assert interface_id(ERC165) == selector("supportsInterface(bytes4)")
    assert interface_id(ERC721_METADATA) != interface_id(ERC721)


@pytest.mark.parametrize("name", SUPPORTED)
def test_supports_interface_for_each_implemented_standard(slt, name):
    assert slt.supportsInterface(interface_id(SUPPORTED[name])) is True


@pytest.mark.parametrize("name", SUPPORTED)
def test_contract_has_every_function_of_each_supported_interface(slt, name):
    # Claiming an interface is only honest if every one of its functions is there.
    functions = {abi.selector for abi in slt.contract_type.abi if abi.type == "function"}

    assert [s for s in SUPPORTED[name] if s not in functions] == []


@pytest.mark.parametrize("left_out", ERC7858)
def test_erc7858_id_without_one_selector_is_not_supported(slt, left_out):
    partial = [s for s in ERC7858 if s != left_out]

    assert slt.supportsInterface(interface_id(ERC7858)) is True
    assert slt.supportsInterface(interface_id(partial)) is False


def test_erc7858_id_with_a_block_based_extra_selector_is_not_supported(slt):
    assert slt.supportsInterface(interface_id([*ERC7858, "expiryBlock(uint256)"])) is False


@pytest.mark.parametrize("name", UNSUPPORTED)
def test_supports_interface_is_false_for_unimplemented_standards(slt, name):
    assert slt.supportsInterface(interface_id(UNSUPPORTED[name])) is False


def test_supports_interface_is_false_for_erc165_invalid_id(slt):
    # ERC-165: 0xffffffff must be rejected.
    assert slt.supportsInterface(b"\xff\xff\xff\xff") is False


def test_supports_interface_is_false_for_zero_id(slt):
    assert slt.supportsInterface(b"\x00\x00\x00\x00") is False


def test_supports_interface_is_false_for_random_ids(slt):
    rng = random.Random(7858)
    ids = {rng.getrandbits(32).to_bytes(4, "big") for _ in range(24)} - SUPPORTED_IDS

    assert [i.hex() for i in ids if slt.supportsInterface(i)] == []


def test_supports_interface_is_false_for_the_combined_interface(slt):
    # Only each standard's own id counts, not the XOR of everything the contract implements.
    everything = [s for sigs in SUPPORTED.values() for s in sigs]

    assert slt.supportsInterface(interface_id(everything)) is False
