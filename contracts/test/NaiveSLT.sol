// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";

import {IERC5192} from "../interfaces/IERC5192.sol";
import {IERC5484} from "../interfaces/IERC5484.sol";
import {IERC7858} from "../interfaces/IERC7858.sol";
import {ISymbioticLearningToken} from "../interfaces/ISymbioticLearningToken.sol";

/// @title Naive Symbiotic Learning Token (gas baseline only)
/// @notice Not for deployment: the same behaviour as {SymbioticLearningToken}, written the
/// obvious way.
/// @dev Exists only as a gas baseline for `scripts/gas.py`. It is what a first implementation
/// would look like: OpenZeppelin v5 ERC721 and AccessControl, and one plain mapping per
/// per-token field (start time, end time, commitment, switchable, persistent), so a mint to a
/// new owner writes six new slots where SLT writes two. It emits the same events as SLT, in the
/// same order, and has the same ABI shape for `mint`, `mintBatch`, `persist`, `burn` and
/// `burnBatch`, with the same authorization rules. Correct, but deliberately not optimized: do
/// not "fix" its gas.
contract NaiveSLT is ERC721, AccessControl, IERC7858, IERC5192, IERC5484 {
    /// @notice The role that may mint and is the issuer of every token.
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    uint256 private immutable _defaultTTL;

    /// @dev The next id to mint. Starts at 1, as SLT's does, so ids are never reused.
    uint256 private _nextTokenId = 1;

    string private _baseTokenURI;

    mapping(uint256 tokenId => uint64) private _startTime;
    mapping(uint256 tokenId => uint64) private _endTime;
    mapping(uint256 tokenId => bytes32) private _commitment;
    mapping(uint256 tokenId => bool) private _switchable;
    mapping(uint256 tokenId => bool) private _persistent;

    /// @dev Emitted at mint, as SLT's {ISymbioticLearningToken-CommitmentPublished}.
    event CommitmentPublished(uint256 indexed tokenId, bytes32 indexed commitment);

    /// @dev The admin given to the constructor is the zero address.
    error NaiveSLTInvalidAdmin(address admin);

    /// @dev The default TTL given to the constructor is zero.
    error NaiveSLTInvalidTTL(uint256 ttl);

    /// @dev A mint asked for an end time that is not in the future.
    error NaiveSLTInvalidEndTime(uint256 endTime, uint256 blockTime);

    /// @dev The token is not persistent (ERC-5192 locked), so it cannot move.
    error NaiveSLTTokenLocked(uint256 tokenId);

    /// @dev The token is expired, so it cannot be approved or persisted.
    error NaiveSLTTokenExpired(uint256 tokenId, uint256 endTime);

    /// @dev The token was minted as not switchable, so it cannot be persisted.
    error NaiveSLTNotSwitchable(uint256 tokenId);

    /// @dev The token is already persistent.
    error NaiveSLTAlreadyPersistent(uint256 tokenId);

    /// @dev `caller` is not the owner of `tokenId`.
    error NaiveSLTNotTokenOwner(address caller, uint256 tokenId);

    /// @dev `caller` may not burn `tokenId`: not its owner, approved, an issuer, nor expired.
    error NaiveSLTBurnNotAuthorized(address caller, uint256 tokenId);

    /// @param admin Holder of `DEFAULT_ADMIN_ROLE`.
    /// @param minter First holder of `MINTER_ROLE`; zero for none.
    /// @param baseURI Prefix of every `tokenURI`.
    /// @param ttl Lifetime, in seconds, of a token minted with `endTime` 0.
    constructor(address admin, address minter, string memory baseURI, uint256 ttl)
        ERC721("Naive Symbiotic Learning Token", "NSLT")
    {
        if (admin == address(0)) revert NaiveSLTInvalidAdmin(admin);
        if (ttl == 0) revert NaiveSLTInvalidTTL(ttl);
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        if (minter != address(0)) _grantRole(MINTER_ROLE, minter);
        _baseTokenURI = baseURI;
        _defaultTTL = ttl;
    }

    /// @notice Mints one token to `to` for the payload committed to by `commitment`.
    /// @dev Requirements: the caller holds `MINTER_ROLE`; `endTime_` is 0 (now + the default
    /// TTL) or in the future.
    ///
    /// Emits {Transfer}, {Issued}, {Locked}, {TokenExpiryUpdated} and {CommitmentPublished}.
    function mint(address to, uint64 endTime_, bytes32 commitment, bool switchable)
        external
        onlyRole(MINTER_ROLE)
        returns (uint256 tokenId)
    {
        tokenId = _nextTokenId;
        _nextTokenId = tokenId + 1;
        _mintOne(to, tokenId, endTime_, commitment, switchable);
    }

    /// @notice Mints one token per request, with consecutive ids starting at `firstTokenId`.
    /// @dev Same requirements and events as {mint}, for each request.
    function mintBatch(ISymbioticLearningToken.MintRequest[] calldata requests)
        external
        onlyRole(MINTER_ROLE)
        returns (uint256 firstTokenId)
    {
        firstTokenId = _nextTokenId;
        for (uint256 i = 0; i < requests.length; i++) {
            uint256 tokenId = _nextTokenId;
            _nextTokenId = tokenId + 1;
            _mintOne(
                requests[i].to,
                tokenId,
                requests[i].endTime,
                requests[i].commitment,
                requests[i].switchable
            );
        }
    }

    /// @notice Switches a switchable, unexpired token to persistent: no expiry, unlocked.
    /// @dev Requirements: the caller owns `tokenId`, which is switchable, not yet persistent and
    /// not expired.
    ///
    /// Emits {Unlocked} and {TokenExpiryUpdated} with `endTime` 0.
    function persist(uint256 tokenId) external {
        address owner = _requireOwned(tokenId);
        if (owner != msg.sender) revert NaiveSLTNotTokenOwner(msg.sender, tokenId);
        if (!_switchable[tokenId]) revert NaiveSLTNotSwitchable(tokenId);
        if (_persistent[tokenId]) revert NaiveSLTAlreadyPersistent(tokenId);
        if (isTokenExpired(tokenId)) revert NaiveSLTTokenExpired(tokenId, _endTime[tokenId]);
        _persistent[tokenId] = true;
        _endTime[tokenId] = 0;
        emit Unlocked(tokenId);
        emit TokenExpiryUpdated(tokenId, _startTime[tokenId], 0);
    }

    /// @notice Burns `tokenId`: by its owner or approved, by an issuer, or by anyone once expired.
    /// @dev Emits {Transfer} to the zero address.
    function burn(uint256 tokenId) external {
        address owner = _requireOwned(tokenId);
        if (
            !_isAuthorized(owner, msg.sender, tokenId) && !hasRole(MINTER_ROLE, msg.sender)
                && !isTokenExpired(tokenId)
        ) revert NaiveSLTBurnNotAuthorized(msg.sender, tokenId);
        _burnAndClear(tokenId);
    }

    /// @notice Burns every token of `tokenIds` that still exists. Issuers only.
    /// @dev Emits {Transfer} to the zero address for each token burned.
    function burnBatch(uint256[] calldata tokenIds) external onlyRole(MINTER_ROLE) {
        for (uint256 i = 0; i < tokenIds.length; i++) {
            if (_ownerOf(tokenIds[i]) != address(0)) _burnAndClear(tokenIds[i]);
        }
    }

    /// @inheritdoc IERC7858
    function expiryType() external pure returns (EXPIRY_TYPE) {
        return EXPIRY_TYPE.TIME_BASED;
    }

    /// @inheritdoc IERC7858
    function isTokenExpired(uint256 tokenId) public view returns (bool) {
        _requireOwned(tokenId);
        return _endTime[tokenId] != 0 && block.timestamp >= _endTime[tokenId];
    }

    /// @inheritdoc IERC7858
    function startTime(uint256 tokenId) external view returns (uint256) {
        _requireOwned(tokenId);
        return _startTime[tokenId];
    }

    /// @inheritdoc IERC7858
    function endTime(uint256 tokenId) external view returns (uint256) {
        _requireOwned(tokenId);
        return _endTime[tokenId];
    }

    /// @inheritdoc IERC5192
    function locked(uint256 tokenId) external view returns (bool) {
        _requireOwned(tokenId);
        return !_persistent[tokenId];
    }

    /// @inheritdoc IERC5484
    function burnAuth(uint256 tokenId) external view returns (BurnAuth) {
        _requireOwned(tokenId);
        return BurnAuth.Both;
    }

    /// @notice Whether `tokenId` may be switched to persistent by its owner.
    function isSwitchable(uint256 tokenId) external view returns (bool) {
        _requireOwned(tokenId);
        return _switchable[tokenId];
    }

    /// @notice The lifetime given to a mint whose `endTime` is 0.
    function defaultTTL() external view returns (uint256) {
        return _defaultTTL;
    }

    /// @notice How many tokens were ever minted; ids run from 1 to this number.
    function totalMinted() external view returns (uint256) {
        return _nextTokenId - 1;
    }

    /// @dev An expired token cannot be approved.
    function approve(address to, uint256 tokenId) public override {
        if (isTokenExpired(tokenId)) revert NaiveSLTTokenExpired(tokenId, _endTime[tokenId]);
        super.approve(to, tokenId);
    }

    /// @dev True for ERC-165, ERC-721, ERC-721 Metadata, AccessControl, ERC-7858, ERC-5192 and
    /// ERC-5484.
    function supportsInterface(bytes4 interfaceId)
        public
        view
        override(ERC721, AccessControl)
        returns (bool)
    {
        return interfaceId == type(IERC7858).interfaceId
            || interfaceId == type(IERC5192).interfaceId
            || interfaceId == type(IERC5484).interfaceId || super.supportsInterface(interfaceId);
    }

    function _mintOne(
        address to,
        uint256 tokenId,
        uint64 requestedEnd,
        bytes32 commitment,
        bool switchable
    ) internal {
        uint64 start = uint64(block.timestamp);
        uint64 end = requestedEnd;
        if (end == 0) end = uint64(block.timestamp + _defaultTTL);
        if (end <= start) revert NaiveSLTInvalidEndTime(end, start);
        _mint(to, tokenId);
        _startTime[tokenId] = start;
        _endTime[tokenId] = end;
        _commitment[tokenId] = commitment;
        _switchable[tokenId] = switchable;
        emit Issued(msg.sender, to, tokenId, BurnAuth.Both);
        emit Locked(tokenId);
        emit TokenExpiryUpdated(tokenId, start, end);
        emit CommitmentPublished(tokenId, commitment);
    }

    function _burnAndClear(uint256 tokenId) internal {
        _burn(tokenId);
        delete _startTime[tokenId];
        delete _endTime[tokenId];
        delete _commitment[tokenId];
        delete _switchable[tokenId];
        delete _persistent[tokenId];
    }

    /// @dev Locked (not persistent) tokens never move; mints and burns still pass.
    function _update(address to, uint256 tokenId, address auth)
        internal
        override
        returns (address)
    {
        address from = _ownerOf(tokenId);
        if (from != address(0) && to != address(0) && !_persistent[tokenId]) {
            revert NaiveSLTTokenLocked(tokenId);
        }
        return super._update(to, tokenId, auth);
    }

    function _baseURI() internal view override returns (string memory) {
        return _baseTokenURI;
    }
}
