// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// A stand-in for the TIP-20 channel reserve precompile (TIP-1034, session protocol v2) for local test chains.
/// Written from draft-tempo-session-00 (contract functions, access control, signature rules) and the
/// TIP-1034 interface: the same functions, events, errors, channel id and EIP-712 voucher domain.
/// Two things differ from the precompile, and a JSON-RPC shim in front of the chain makes up for them:
/// the precompile reads the expiring-nonce hash of the enclosing transaction (here: storage slot 1, written
/// by the shim before an `open` executes), and pulls deposits without an allowance (here: `transferFrom`,
/// after the shim gave the stand-in an allowance from the payer).
interface ITIP20 {
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}

contract ChannelReserve {
    struct ChannelDescriptor {
        address payer;
        address payee;
        address operator;
        address token;
        bytes32 salt;
        address authorizedSigner;
        bytes32 expiringNonceHash;
    }

    struct ChannelState {
        uint96 settled;
        uint96 deposit;
        uint32 closeRequestedAt;
    }

    struct Channel {
        ChannelDescriptor descriptor;
        ChannelState state;
    }

    event ChannelOpened(
        bytes32 indexed channelId,
        address indexed payer,
        address indexed payee,
        address operator,
        address token,
        address authorizedSigner,
        bytes32 salt,
        bytes32 expiringNonceHash,
        uint96 deposit
    );
    event Settled(
        bytes32 indexed channelId, address indexed payer, address indexed payee, uint96 cumulativeAmount, uint96 deltaPaid, uint96 newSettled
    );
    event TopUp(bytes32 indexed channelId, address indexed payer, address indexed payee, uint96 additionalDeposit, uint96 newDeposit);
    event CloseRequested(bytes32 indexed channelId, address indexed payer, address indexed payee, uint256 closeGraceEnd);
    event CloseRequestCancelled(bytes32 indexed channelId, address indexed payer, address indexed payee);
    event ChannelClosed(bytes32 indexed channelId, address indexed payer, address indexed payee, uint96 settledToPayee, uint96 refundedToPayer);

    error ChannelAlreadyExists();
    error ChannelNotFound();
    error NotPayer();
    error NotPayeeOrOperator();
    error InvalidPayee();
    error InvalidToken();
    error ZeroDeposit();
    error ExpiringNonceHashNotSet();
    error InvalidSignature();
    error AmountExceedsDeposit();
    error AmountNotIncreasing();
    error CaptureAmountInvalid();
    error CloseNotReady();
    error DepositOverflow();
    error TransferFailed();

    uint64 public constant CLOSE_GRACE_PERIOD = 15 minutes;
    bytes32 public constant VOUCHER_TYPEHASH = keccak256("Voucher(bytes32 channelId,uint96 cumulativeAmount)");

    bytes32 private constant DOMAIN_TYPEHASH = keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    /// Largest canonical s of a secp256k1 signature (draft-tempo-session-00, "Signature Verification").
    uint256 private constant HALF_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    /// Slot 0: channel id => settled (bits 0-95) | deposit (96-191) | closeRequestedAt (192-223); zero = no channel.
    mapping(bytes32 => uint256) private states;
    /// Slot 1: the expiring-nonce hash of the transaction being executed, written by the shim, consumed by `open`.
    bytes32 private openContext;

    function open(address payee, address operator, address token, uint96 deposit, bytes32 salt, address authorizedSigner)
        external
        returns (bytes32 channelId)
    {
        if (payee == address(0) || bytes12(bytes20(payee)) == bytes12(0x20c000000000000000000000)) revert InvalidPayee();
        if (token == address(0)) revert InvalidToken();
        if (deposit == 0) revert ZeroDeposit();
        bytes32 nonceHash = openContext;
        if (nonceHash == bytes32(0)) revert ExpiringNonceHashNotSet();
        // One open per transaction: the hash is the enclosing transaction's.
        openContext = bytes32(0);
        channelId = computeChannelId(msg.sender, payee, operator, token, salt, authorizedSigner, nonceHash);
        if (states[channelId] != 0) revert ChannelAlreadyExists();
        states[channelId] = pack(ChannelState(0, deposit, 0));
        pull(token, deposit);
        emit ChannelOpened(channelId, msg.sender, payee, operator, token, authorizedSigner, salt, nonceHash, deposit);
    }

    function settle(ChannelDescriptor calldata d, uint96 cumulativeAmount, bytes calldata signature) external {
        bytes32 channelId = idOf(d);
        ChannelState memory s = load(channelId);
        onlyPayeeSide(d);
        if (cumulativeAmount > s.deposit) revert AmountExceedsDeposit();
        if (cumulativeAmount <= s.settled) revert AmountNotIncreasing();
        checkVoucher(d, channelId, cumulativeAmount, signature);
        uint96 delta = cumulativeAmount - s.settled;
        s.settled = cumulativeAmount;
        states[channelId] = pack(s);
        push(d.token, d.payee, delta);
        emit Settled(channelId, d.payer, d.payee, cumulativeAmount, delta, cumulativeAmount);
    }

    function topUp(ChannelDescriptor calldata d, uint96 additionalDeposit) external {
        bytes32 channelId = idOf(d);
        ChannelState memory s = load(channelId);
        if (msg.sender != d.payer) revert NotPayer();
        if (uint256(s.deposit) + additionalDeposit > type(uint96).max) revert DepositOverflow();
        s.deposit += additionalDeposit;
        // A top-up cancels a pending forced close (draft-tempo-session-00, "topUp").
        bool cancelled = s.closeRequestedAt != 0;
        s.closeRequestedAt = 0;
        states[channelId] = pack(s);
        if (additionalDeposit > 0) pull(d.token, additionalDeposit);
        if (cancelled) emit CloseRequestCancelled(channelId, d.payer, d.payee);
        emit TopUp(channelId, d.payer, d.payee, additionalDeposit, s.deposit);
    }

    function close(ChannelDescriptor calldata d, uint96 cumulativeAmount, uint96 captureAmount, bytes calldata signature) external {
        bytes32 channelId = idOf(d);
        ChannelState memory s = load(channelId);
        onlyPayeeSide(d);
        if (captureAmount < s.settled || captureAmount > cumulativeAmount) revert CaptureAmountInvalid();
        if (captureAmount > s.deposit) revert AmountExceedsDeposit();
        // Capturing nothing beyond what was settled needs no voucher.
        if (captureAmount > s.settled) checkVoucher(d, channelId, cumulativeAmount, signature);
        uint96 toPayee = captureAmount - s.settled;
        uint96 refund = s.deposit - captureAmount;
        delete states[channelId];
        if (toPayee > 0) push(d.token, d.payee, toPayee);
        if (refund > 0) push(d.token, d.payer, refund);
        emit ChannelClosed(channelId, d.payer, d.payee, captureAmount, refund);
    }

    function requestClose(ChannelDescriptor calldata d) external {
        bytes32 channelId = idOf(d);
        ChannelState memory s = load(channelId);
        if (msg.sender != d.payer) revert NotPayer();
        if (s.closeRequestedAt != 0) return;
        s.closeRequestedAt = uint32(block.timestamp);
        states[channelId] = pack(s);
        emit CloseRequested(channelId, d.payer, d.payee, block.timestamp + CLOSE_GRACE_PERIOD);
    }

    function withdraw(ChannelDescriptor calldata d) external {
        bytes32 channelId = idOf(d);
        ChannelState memory s = load(channelId);
        if (msg.sender != d.payer) revert NotPayer();
        if (s.closeRequestedAt == 0 || block.timestamp < uint256(s.closeRequestedAt) + CLOSE_GRACE_PERIOD) revert CloseNotReady();
        uint96 refund = s.deposit - s.settled;
        delete states[channelId];
        if (refund > 0) push(d.token, d.payer, refund);
        emit ChannelClosed(channelId, d.payer, d.payee, s.settled, refund);
    }

    function getChannel(ChannelDescriptor calldata d) external view returns (Channel memory) {
        return Channel(d, unpack(states[idOf(d)]));
    }

    function getChannelState(bytes32 channelId) external view returns (ChannelState memory) {
        return unpack(states[channelId]);
    }

    function getChannelStatesBatch(bytes32[] calldata channelIds) external view returns (ChannelState[] memory result) {
        result = new ChannelState[](channelIds.length);
        for (uint256 i = 0; i < channelIds.length; i++) {
            result[i] = unpack(states[channelIds[i]]);
        }
    }

    function computeChannelId(
        address payer,
        address payee,
        address operator,
        address token,
        bytes32 salt,
        address authorizedSigner,
        bytes32 expiringNonceHash
    ) public view returns (bytes32) {
        return keccak256(abi.encode(payer, payee, operator, token, salt, authorizedSigner, expiringNonceHash, address(this), block.chainid));
    }

    function getVoucherDigest(bytes32 channelId, uint96 cumulativeAmount) public view returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), keccak256(abi.encode(VOUCHER_TYPEHASH, channelId, cumulativeAmount))));
    }

    function domainSeparator() public view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, keccak256("TIP20 Channel Reserve"), keccak256("1"), block.chainid, address(this)));
    }

    function idOf(ChannelDescriptor calldata d) private view returns (bytes32) {
        return computeChannelId(d.payer, d.payee, d.operator, d.token, d.salt, d.authorizedSigner, d.expiringNonceHash);
    }

    function load(bytes32 channelId) private view returns (ChannelState memory) {
        uint256 packed = states[channelId];
        if (packed == 0) revert ChannelNotFound();
        return unpack(packed);
    }

    function pack(ChannelState memory s) private pure returns (uint256) {
        return uint256(s.settled) | (uint256(s.deposit) << 96) | (uint256(s.closeRequestedAt) << 192);
    }

    function unpack(uint256 packed) private pure returns (ChannelState memory) {
        return ChannelState(uint96(packed), uint96(packed >> 96), uint32(packed >> 192));
    }

    function onlyPayeeSide(ChannelDescriptor calldata d) private view {
        if (msg.sender != d.payee && (d.operator == address(0) || msg.sender != d.operator)) revert NotPayeeOrOperator();
    }

    /// Low-s ECDSA over the voucher digest, 65-byte r‖s‖v or 64-byte EIP-2098; the signer must be the
    /// authorized signer, or the payer when none is set.
    function checkVoucher(ChannelDescriptor calldata d, bytes32 channelId, uint96 cumulativeAmount, bytes calldata signature) private view {
        bytes32 r;
        bytes32 s;
        uint8 v;
        if (signature.length == 65) {
            r = bytes32(signature[0:32]);
            s = bytes32(signature[32:64]);
            v = uint8(signature[64]);
        } else if (signature.length == 64) {
            r = bytes32(signature[0:32]);
            bytes32 vs = bytes32(signature[32:64]);
            s = vs & bytes32(uint256(type(uint256).max >> 1));
            v = uint8(uint256(vs >> 255)) + 27;
        } else {
            revert InvalidSignature();
        }
        if (uint256(s) > HALF_ORDER || (v != 27 && v != 28)) revert InvalidSignature();
        address signer = ecrecover(getVoucherDigest(channelId, cumulativeAmount), v, r, s);
        address expected = d.authorizedSigner == address(0) ? d.payer : d.authorizedSigner;
        if (signer == address(0) || signer != expected) revert InvalidSignature();
    }

    function pull(address token, uint96 amount) private {
        if (!ITIP20(token).transferFrom(msg.sender, address(this), amount)) revert TransferFailed();
    }

    function push(address token, address to, uint96 amount) private {
        if (!ITIP20(token).transfer(to, amount)) revert TransferFailed();
    }
}
