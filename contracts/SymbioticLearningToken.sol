// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {OwnableRoles} from "solady/auth/OwnableRoles.sol";
import {ERC721} from "solady/tokens/ERC721.sol";
import {LibString} from "solady/utils/LibString.sol";

import {IERC5192} from "./interfaces/IERC5192.sol";
import {IERC5484} from "./interfaces/IERC5484.sol";
import {IERC7858} from "./interfaces/IERC7858.sol";
import {ISymbioticLearningToken} from "./interfaces/ISymbioticLearningToken.sol";

/// @title Symbiotic Learning Token (SLT)
/// @notice An expiring, owner-controlled ERC-721 receipt for one encrypted AI payload kept
/// off-chain. A token is ephemeral (soulbound and expiring) until its owner persists it.
/// @dev Built on Solady's ERC721 so the per-token state lives in the 96 spare bits beside the
/// owner: a mint writes one new slot for the token, and a burn clears it for a refund.
///
/// Bits layout of a token's extra data (Solady `_getExtraData`):
/// - [0..39]   `endTime`   (uint40, seconds) 0 once persistent: no time limit
/// - [40..79]  `startTime` (uint40, seconds) the mint's block time
/// - [80]      `switchable` the owner may persist the token
/// - [81..95]  unused, always 0
///
/// Rules, by standard:
/// - ERC-7858 (time based): a token is expired from `endTime` on (`block.timestamp >= endTime`).
/// - ERC-5192: a token is locked exactly while it has an `endTime`. Locked tokens never move, so
///   the only tokens that can expire are soulbound ones; ERC-7858 lets those stay put.
/// - ERC-5484 `BurnAuth.Both`: the owner (or approved) and the issuers (the minters) may burn,
///   and, so that cleanup never depends on the issuer, anyone may burn an expired token.
/// - An expired token cannot be approved or persisted.
// Slither `locked-ether` (medium), accepted: Solady declares its ERC-721 and role entry points
// `payable` (approve, transferFrom, grantRoles, transferOwnership, ...) to save the callvalue
// check, and SLT never sends ether. Ether only arrives if a caller attaches value to one of
// those calls by mistake; the token neither needs nor holds ether for anyone. A withdraw
// function would add a selector to the dispatcher in front of the gas-critical mint and burn.
// slither-disable-next-line locked-ether
contract SymbioticLearningToken is ERC721, OwnableRoles, ISymbioticLearningToken {
    /// @notice The role of the backend's relayer keys: they mint and are the issuers.
    uint256 public constant MINTER_ROLE = _ROLE_0;

    uint256 private constant _END_MASK = (1 << 40) - 1;
    uint256 private constant _START_SHIFT = 40;
    uint96 private constant _SWITCHABLE = uint96(1 << 80);
    /// @dev Keeps `block.timestamp + ttl` far inside 40 bits.
    uint256 private constant _MAX_TTL = 100 * 365 days;

    /// @dev `keccak256(bytes("Issued(address,address,uint256,uint8)"))`.
    uint256 private constant _ISSUED_EVENT_SIGNATURE =
        0x135ffb3383e06280e062ac5095bbf8faa98517161e596a2536bd98a9a8b64a88;
    /// @dev `keccak256(bytes("Locked(uint256)"))`.
    uint256 private constant _LOCKED_EVENT_SIGNATURE =
        0x032bc66be43dbccb7487781d168eb7bda224628a3b2c3388bdf69b532a3a1611;
    /// @dev `keccak256(bytes("TokenExpiryUpdated(uint256,uint256,uint256)"))`.
    uint256 private constant _TOKEN_EXPIRY_UPDATED_EVENT_SIGNATURE =
        0x5bbbda328befc12958d162832ddcd2b701c669ae1c2a248a1af0d8891a11b6a2;
    /// @dev `keccak256(bytes("CommitmentPublished(uint256,bytes32)"))`.
    uint256 private constant _COMMITMENT_PUBLISHED_EVENT_SIGNATURE =
        0x7136863056bf3b1b3f6d8955a08d8bf56c7b950561587f463d2325424aefec1b;

    uint256 private immutable _DEFAULT_TTL;

    /// @dev The next id to mint. Starts at 1 and only grows, so ids are never reused.
    uint256 private _nextTokenId = 1;

    string private _baseTokenURI;

    /// @param admin Owner of the contract: grants and revokes minters, sets the base URI.
    /// @param minter First holder of `MINTER_ROLE` (the backend's relayer); zero for none.
    /// @param baseURI Prefix of every `tokenURI`.
    /// @param ttl Lifetime, in seconds, of a token minted with `endTime` 0.
    constructor(address admin, address minter, string memory baseURI, uint256 ttl) {
        if (admin == address(0)) revert SLTInvalidAdmin(admin);
        if (ttl == 0 || ttl > _MAX_TTL) revert SLTInvalidTTL(ttl);
        _initializeOwner(admin);
        if (minter != address(0)) _grantRoles(minter, MINTER_ROLE);
        _baseTokenURI = baseURI;
        _DEFAULT_TTL = ttl;
    }

    /*//////////////////////////////////////////////////////////////
                                 MINT
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc ISymbioticLearningToken
    /// @dev Requirements:
    /// - The caller holds `MINTER_ROLE`.
    /// - `to` is not the zero address.
    /// - `endTime` is 0 or in the future, and fits 40 bits.
    ///
    /// Emits {Transfer}, {Issued}, {Locked}, {TokenExpiryUpdated} and {CommitmentPublished}.
    function mint(address to, uint64 endTime_, bytes32 commitment, bool switchable)
        external
        onlyRoles(MINTER_ROLE)
        returns (uint256 tokenId)
    {
        tokenId = _nextTokenId;
        // Ids count mints, one at a time: 2**256 of them cannot happen.
        unchecked {
            _nextTokenId = tokenId + 1;
        }
        _mintEphemeral(to, tokenId, endTime_, commitment, switchable);
    }

    /// @inheritdoc ISymbioticLearningToken
    /// @dev Same requirements and events as {mint}, for each request.
    function mintBatch(MintRequest[] calldata requests)
        external
        onlyRoles(MINTER_ROLE)
        returns (uint256 firstTokenId)
    {
        firstTokenId = _nextTokenId;
        uint256 n = requests.length;
        // Ids count mints, and a batch is bounded by calldata: neither can reach 2**256.
        unchecked {
            for (uint256 i; i < n; ++i) {
                address to;
                uint256 end;
                bool switchable;
                bytes32 commitment;
                // Read the i-th static 4-word struct straight from calldata: Solidity's
                // per-field decoding checks cost ~200 gas a token. Unclean words are still
                // safe: `to` is masked to 160 bits by the mint, `end` is range-checked in
                // full, and any non-zero `switchable` word means true.
                /// @solidity memory-safe-assembly
                assembly {
                    let p := add(requests.offset, shl(7, i))
                    to := calldataload(p)
                    end := calldataload(add(p, 0x20))
                    switchable := iszero(iszero(calldataload(add(p, 0x40))))
                    commitment := calldataload(add(p, 0x60))
                }
                _mintEphemeral(to, firstTokenId + i, end, commitment, switchable);
            }
            _nextTokenId = firstTokenId + n;
        }
    }

    /*//////////////////////////////////////////////////////////////
                               PERSIST
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc ISymbioticLearningToken
    /// @dev Requirements:
    /// - `tokenId` exists and the caller owns it.
    /// - It was minted switchable, is not yet persistent and is not expired.
    ///
    /// Emits {Unlocked} and {TokenExpiryUpdated} with `endTime` 0.
    function persist(uint256 tokenId) external {
        address owner = _ownerOf(tokenId);
        if (owner == address(0)) revert ERC721NonexistentToken(tokenId);
        if (owner != msg.sender) revert SLTNotTokenOwner(msg.sender, tokenId);
        uint96 extra = _getExtraData(tokenId);
        if (extra & _SWITCHABLE == 0) revert SLTNotSwitchable(tokenId);
        uint256 end = extra & _END_MASK;
        if (end == 0) revert SLTAlreadyPersistent(tokenId);
        if (block.timestamp >= end) revert SLTTokenExpired(tokenId, end);
        _setExtraData(tokenId, extra ^ uint96(end));
        emit Unlocked(tokenId);
        emit TokenExpiryUpdated(tokenId, _start(extra), 0);
    }

    /*//////////////////////////////////////////////////////////////
                                 BURN
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc ISymbioticLearningToken
    /// @dev Requirements:
    /// - `tokenId` exists.
    /// - The caller is its owner or approved for it, holds `MINTER_ROLE`, or it is expired.
    ///
    /// Emits {Transfer} to the zero address.
    function burn(uint256 tokenId) external {
        address owner = _ownerOf(tokenId);
        if (owner == address(0)) revert ERC721NonexistentToken(tokenId);
        if (
            msg.sender != owner && !_isExpired(_getExtraData(tokenId))
                && !_isApprovedOrOwner(msg.sender, tokenId) && !hasAnyRole(msg.sender, MINTER_ROLE)
        ) revert SLTBurnNotAuthorized(msg.sender, tokenId);
        _burnAndClear(tokenId);
    }

    /// @inheritdoc ISymbioticLearningToken
    /// @dev Ids that no longer exist are skipped, so a retried batch cannot fail on a token its
    /// owner burned in the meantime.
    ///
    /// Requirements:
    /// - The caller holds `MINTER_ROLE`.
    ///
    /// Emits {Transfer} to the zero address for each token burned.
    function burnBatch(uint256[] calldata tokenIds) external onlyRoles(MINTER_ROLE) {
        uint256 n = tokenIds.length;
        // `i` is bounded by the calldata array's length.
        unchecked {
            for (uint256 i; i < n; ++i) {
                uint256 tokenId = tokenIds[i];
                if (_exists(tokenId)) _burnAndClear(tokenId);
            }
        }
    }

    /*//////////////////////////////////////////////////////////////
                                ADMIN
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc ISymbioticLearningToken
    /// @dev Emits {BaseURIUpdated}.
    function setBaseURI(string calldata baseURI) external onlyOwner {
        _baseTokenURI = baseURI;
        emit BaseURIUpdated(baseURI);
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IERC7858
    function expiryType() external pure returns (EXPIRY_TYPE) {
        return EXPIRY_TYPE.TIME_BASED;
    }

    /// @inheritdoc IERC7858
    function isTokenExpired(uint256 tokenId) external view returns (bool) {
        return _isExpired(_existingExtra(tokenId));
    }

    /// @inheritdoc IERC7858
    function startTime(uint256 tokenId) external view returns (uint256) {
        return _start(_existingExtra(tokenId));
    }

    /// @inheritdoc IERC7858
    function endTime(uint256 tokenId) external view returns (uint256) {
        return _existingExtra(tokenId) & _END_MASK;
    }

    /// @inheritdoc IERC5192
    function locked(uint256 tokenId) external view returns (bool) {
        return _existingExtra(tokenId) & _END_MASK != 0;
    }

    /// @inheritdoc IERC5484
    function burnAuth(uint256 tokenId) external view returns (BurnAuth) {
        _existingExtra(tokenId);
        return BurnAuth.Both;
    }

    /// @inheritdoc ISymbioticLearningToken
    function isSwitchable(uint256 tokenId) external view returns (bool) {
        return _existingExtra(tokenId) & _SWITCHABLE != 0;
    }

    /// @inheritdoc ISymbioticLearningToken
    function defaultTTL() external view returns (uint256) {
        return _DEFAULT_TTL;
    }

    /// @inheritdoc ISymbioticLearningToken
    function totalMinted() external view returns (uint256) {
        return _nextTokenId - 1;
    }

    /*//////////////////////////////////////////////////////////////
                          ERC-721 OVERRIDES
    //////////////////////////////////////////////////////////////*/

    /// @dev Returns "Symbiotic Learning Token".
    function name() public pure override returns (string memory) {
        return "Symbiotic Learning Token";
    }

    /// @dev Returns "SLT".
    function symbol() public pure override returns (string memory) {
        return "SLT";
    }

    /// @dev The base URI followed by the decimal id. Reverts for a token that does not exist.
    function tokenURI(uint256 tokenId) public view override returns (string memory) {
        if (!_exists(tokenId)) revert ERC721NonexistentToken(tokenId);
        return string.concat(_baseTokenURI, LibString.toString(tokenId));
    }

    /// @dev Locked (ephemeral) tokens never move. `safeTransferFrom` goes through here too.
    function transferFrom(address from, address to, uint256 tokenId) public payable override {
        if (_getExtraData(tokenId) & _END_MASK != 0) revert SLTTokenLocked(tokenId);
        super.transferFrom(from, to, tokenId);
    }

    /// @dev An expired token cannot be approved.
    function approve(address account, uint256 tokenId) public payable override {
        uint96 extra = _getExtraData(tokenId);
        if (_isExpired(extra)) revert SLTTokenExpired(tokenId, extra & _END_MASK);
        super.approve(account, tokenId);
    }

    /// @dev True for ERC-165, ERC-721, ERC-721 Metadata, ERC-7858, ERC-5192 and ERC-5484.
    function supportsInterface(bytes4 interfaceId) public view override returns (bool) {
        return interfaceId == type(IERC7858).interfaceId
            || interfaceId == type(IERC5192).interfaceId
            || interfaceId == type(IERC5484).interfaceId || super.supportsInterface(interfaceId);
    }

    /*//////////////////////////////////////////////////////////////
                              INTERNALS
    //////////////////////////////////////////////////////////////*/

    function _mintEphemeral(
        address to,
        uint256 tokenId,
        uint256 requestedEnd,
        bytes32 commitment,
        bool switchable
    ) private {
        uint256 start = block.timestamp;
        uint256 end = requestedEnd;
        // `_DEFAULT_TTL` is at most 100 years, and block time is far below 2**40.
        unchecked {
            if (end == 0) end = start + _DEFAULT_TTL;
        }
        if (end <= start || end > _END_MASK) revert SLTInvalidEndTime(end, start);
        uint256 extra = end | (start << _START_SHIFT);
        if (switchable) extra |= _SWITCHABLE;
        // The id comes from the counter, so it cannot exist yet.
        _mintAndSetExtraDataUnchecked(to, tokenId, uint96(extra));
        // The four mint events, written with the scratch space instead of Solidity's
        // memory encoder: this runs once per token of a batch.
        /// @solidity memory-safe-assembly
        assembly {
            mstore(0x00, 2) // `BurnAuth.Both`.
            log4(0x00, 0x20, _ISSUED_EVENT_SIGNATURE, caller(), shr(96, shl(96, to)), tokenId)
            mstore(0x00, tokenId)
            log1(0x00, 0x20, _LOCKED_EVENT_SIGNATURE)
            log4(0x00, 0x00, _TOKEN_EXPIRY_UPDATED_EVENT_SIGNATURE, tokenId, start, end)
            log3(0x00, 0x00, _COMMITMENT_PUBLISHED_EVENT_SIGNATURE, tokenId, commitment)
        }
    }

    /// @dev Burns without an authorization check and zeroes the extra data, so that no
    /// per-token value is left in storage and the whole slot is refunded.
    function _burnAndClear(uint256 tokenId) private {
        _burn(tokenId);
        _setExtraData(tokenId, 0);
    }

    /// @dev Extra data of a token that must exist (ERC-7858 and ERC-5192 views).
    function _existingExtra(uint256 tokenId) private view returns (uint96) {
        if (!_exists(tokenId)) revert ERC721NonexistentToken(tokenId);
        return _getExtraData(tokenId);
    }

    function _isExpired(uint96 extra) private view returns (bool) {
        uint256 end = extra & _END_MASK;
        return end != 0 && block.timestamp >= end;
    }

    function _start(uint96 extra) private pure returns (uint256) {
        return (extra >> _START_SHIFT) & _END_MASK;
    }
}
