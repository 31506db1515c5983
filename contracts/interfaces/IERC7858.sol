// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title ERC-7858: Expirable NFTs and SBTs (per-token expiry).
/// @dev The ERC-165 identifier of this interface is `0x3ebdfa31`.
interface IERC7858 {
    /// @dev The unit of `startTime` and `endTime`.
    enum EXPIRY_TYPE {
        BLOCKS_BASED,
        TIME_BASED
    }

    /// @dev Emitted when a token is minted or its `startTime` or `endTime` change.
    event TokenExpiryUpdated(
        uint256 indexed tokenId, uint256 indexed startTime, uint256 indexed endTime
    );

    /// @dev Returns the unit in which expiry is measured.
    function expiryType() external view returns (EXPIRY_TYPE);

    /// @dev Returns whether `tokenId` is expired. Reverts for a token that does not exist.
    function isTokenExpired(uint256 tokenId) external view returns (bool);

    /// @dev Returns when `tokenId` became valid. Reverts for a token that does not exist.
    function startTime(uint256 tokenId) external view returns (uint256);

    /// @dev Returns when `tokenId` expires; 0 means never. Reverts for a token that does not exist.
    function endTime(uint256 tokenId) external view returns (uint256);
}
