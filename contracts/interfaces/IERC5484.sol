// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title ERC-5484: Consensual Soulbound Token.
/// @dev The ERC-165 identifier of this interface is `0x0489b56f`.
interface IERC5484 {
    /// @dev Who may burn a token, fixed when it is issued.
    enum BurnAuth {
        IssuerOnly,
        OwnerOnly,
        Both,
        Neither
    }

    /// @dev Emitted when a soulbound token is issued.
    event Issued(
        address indexed from, address indexed to, uint256 indexed tokenId, BurnAuth burnAuth
    );

    /// @dev Returns who may burn `tokenId`. Reverts for a token that does not exist.
    function burnAuth(uint256 tokenId) external view returns (BurnAuth);
}
