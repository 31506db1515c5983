// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC5192} from "./IERC5192.sol";
import {IERC5484} from "./IERC5484.sol";
import {IERC7858} from "./IERC7858.sol";

/// @title Symbiotic Learning Token (SLT)
/// @notice One token stands for one encrypted AI payload held off-chain. On chain there is only
/// the owner, the payload's lifetime and a commitment to its ciphertext.
interface ISymbioticLearningToken is IERC7858, IERC5192, IERC5484 {
    /// @dev One mint of a batch. `endTime` 0 means "now + the default TTL".
    struct MintRequest {
        address to;
        uint64 endTime;
        bool switchable;
        bytes32 commitment;
    }

    /// @dev Emitted at mint: `commitment` lets anyone check the off-chain ciphertext.
    event CommitmentPublished(uint256 indexed tokenId, bytes32 indexed commitment);

    /// @dev Emitted when the admin changes the metadata base URI.
    event BaseURIUpdated(string baseURI);

    /// @dev Same selector as ERC-6093's, as ERC-7858 asks for unknown ids.
    error ERC721NonexistentToken(uint256 tokenId);

    /// @dev The admin given to the constructor is the zero address.
    error SLTInvalidAdmin(address admin);

    /// @dev The default TTL given to the constructor is zero or too long.
    error SLTInvalidTTL(uint256 ttl);

    /// @dev A mint asked for an end time that is not in the future or does not fit 40 bits.
    error SLTInvalidEndTime(uint256 endTime, uint256 blockTime);

    /// @dev The token is ephemeral (ERC-5192 locked), so it cannot move.
    error SLTTokenLocked(uint256 tokenId);

    /// @dev The token is expired, so it cannot be approved or persisted.
    error SLTTokenExpired(uint256 tokenId, uint256 endTime);

    /// @dev The token was minted as not switchable, so it cannot be persisted.
    error SLTNotSwitchable(uint256 tokenId);

    /// @dev The token is already persistent.
    error SLTAlreadyPersistent(uint256 tokenId);

    /// @dev `caller` is not the owner of `tokenId`.
    error SLTNotTokenOwner(address caller, uint256 tokenId);

    /// @dev `caller` may not burn `tokenId`: not its owner, approved, an issuer, nor expired.
    error SLTBurnNotAuthorized(address caller, uint256 tokenId);

    /// @notice Mints one token to `to` that stands for the payload committed to by `commitment`.
    function mint(address to, uint64 endTime, bytes32 commitment, bool switchable)
        external
        returns (uint256 tokenId);

    /// @notice Mints one token per request, with consecutive ids starting at `firstTokenId`.
    function mintBatch(MintRequest[] calldata requests) external returns (uint256 firstTokenId);

    /// @notice Switches a switchable, unexpired token to persistent: no expiry, unlocked.
    function persist(uint256 tokenId) external;

    /// @notice Burns `tokenId`: by its owner or approved, by an issuer, or by anyone once expired.
    function burn(uint256 tokenId) external;

    /// @notice Burns every token of `tokenIds` that still exists. Issuers only.
    function burnBatch(uint256[] calldata tokenIds) external;

    /// @notice Sets the prefix of `tokenURI`. Admin only.
    function setBaseURI(string calldata baseURI) external;

    /// @notice Whether `tokenId` may be switched to persistent by its owner.
    function isSwitchable(uint256 tokenId) external view returns (bool);

    /// @notice The lifetime given to a mint whose `endTime` is 0.
    function defaultTTL() external view returns (uint256);

    /// @notice How many tokens were ever minted; ids run from 1 to this number.
    function totalMinted() external view returns (uint256);
}
