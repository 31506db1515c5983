// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title ERC-5192: Minimal Soulbound NFTs.
/// @dev The ERC-165 identifier of this interface is `0xb45a3c0e`.
interface IERC5192 {
    /// @dev Emitted when the locking status is changed to locked.
    event Locked(uint256 tokenId);

    /// @dev Emitted when the locking status is changed to unlocked.
    event Unlocked(uint256 tokenId);

    /// @dev Returns the locking status of a token. Reverts for a token that does not exist.
    function locked(uint256 tokenId) external view returns (bool);
}
