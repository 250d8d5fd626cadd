// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// A stand-in for the session protocol v1 channel escrow (`TempoStreamChannel`) for local test chains, written
/// from draft-tempo-session-00 ("Channel Escrow Contract", "Legacy Contract Reference Implementation"): the
/// functions, events and errors of the deployed contract, the v1 channel id, and the "Tempo Stream Channel"
/// EIP-712 voucher domain. It enforces low-s signatures, as the draft requires of an escrow. Deposits are pulled
/// with `transferFrom`, so the payer approves the escrow first. Deploy it with a plain (type 2) transaction.
interface ITIP20 {
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}

contract StreamChannel {
    struct Channel {
        bool finalized;
        uint64 closeRequestedAt;
        address payer;
        address payee;
        address token;
        address authorizedSigner;
        uint128 deposit;
        uint128 settled;
    }

    event ChannelOpened(
        bytes32 indexed channelId, address indexed payer, address indexed payee, address token, address authorizedSigner, bytes32 salt, uint256 deposit
    );
    event Settled(
        bytes32 indexed channelId, address indexed payer, address indexed payee, uint256 cumulativeAmount, uint256 deltaPaid, uint256 newSettled
    );
    event CloseRequested(bytes32 indexed channelId, address indexed payer, address indexed payee, uint256 closeGraceEnd);
    event CloseRequestCancelled(bytes32 indexed channelId, address indexed payer, address indexed payee);
    event TopUp(bytes32 indexed channelId, address indexed payer, address indexed payee, uint256 additionalDeposit, uint256 newDeposit);
    event ChannelClosed(bytes32 indexed channelId, address indexed payer, address indexed payee, uint256 settledToPayee, uint256 refundedToPayer);

    error ChannelAlreadyExists();
    error ChannelNotFound();
    error ChannelFinalized();
    error InvalidSignature();
    error AmountExceedsDeposit();
    error AmountNotIncreasing();
    error NotPayer();
    error NotPayee();
    error TransferFailed();
    error CloseNotReady();
    error InvalidPayee();
    error DepositOverflow();

    uint64 public constant CLOSE_GRACE_PERIOD = 15 minutes;
    bytes32 public constant VOUCHER_TYPEHASH = keccak256("Voucher(bytes32 channelId,uint128 cumulativeAmount)");

    bytes32 private constant DOMAIN_TYPEHASH = keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    uint256 private constant HALF_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    /// A closed channel stays as a tombstone (finalized, everything else zero), so its id is never reused.
    mapping(bytes32 => Channel) public channels;

    function open(address payee, address token, uint128 deposit, bytes32 salt, address authorizedSigner) external returns (bytes32 channelId) {
        if (payee == address(0)) revert InvalidPayee();
        channelId = computeChannelId(msg.sender, payee, token, salt, authorizedSigner);
        Channel storage c = channels[channelId];
        if (c.payer != address(0) || c.finalized) revert ChannelAlreadyExists();
        channels[channelId] = Channel(false, 0, msg.sender, payee, token, authorizedSigner, deposit, 0);
        if (!ITIP20(token).transferFrom(msg.sender, address(this), deposit)) revert TransferFailed();
        emit ChannelOpened(channelId, msg.sender, payee, token, authorizedSigner, salt, deposit);
    }

    function settle(bytes32 channelId, uint128 cumulativeAmount, bytes calldata signature) external {
        Channel storage c = live(channelId);
        if (msg.sender != c.payee) revert NotPayee();
        if (cumulativeAmount > c.deposit) revert AmountExceedsDeposit();
        if (cumulativeAmount <= c.settled) revert AmountNotIncreasing();
        checkVoucher(c, channelId, cumulativeAmount, signature);
        uint128 delta = cumulativeAmount - c.settled;
        c.settled = cumulativeAmount;
        if (!ITIP20(c.token).transfer(c.payee, delta)) revert TransferFailed();
        emit Settled(channelId, c.payer, c.payee, cumulativeAmount, delta, cumulativeAmount);
    }

    function topUp(bytes32 channelId, uint256 additionalDeposit) external {
        Channel storage c = live(channelId);
        if (msg.sender != c.payer) revert NotPayer();
        if (uint256(c.deposit) + additionalDeposit > type(uint128).max) revert DepositOverflow();
        c.deposit += uint128(additionalDeposit);
        if (c.closeRequestedAt != 0) {
            // A top-up cancels a pending forced close (draft-tempo-session-00, "topUp").
            c.closeRequestedAt = 0;
            emit CloseRequestCancelled(channelId, c.payer, c.payee);
        }
        if (additionalDeposit > 0 && !ITIP20(c.token).transferFrom(msg.sender, address(this), additionalDeposit)) revert TransferFailed();
        emit TopUp(channelId, c.payer, c.payee, additionalDeposit, c.deposit);
    }

    function close(bytes32 channelId, uint128 cumulativeAmount, bytes calldata signature) external {
        Channel storage c = live(channelId);
        if (msg.sender != c.payee) revert NotPayee();
        if (cumulativeAmount > c.deposit) revert AmountExceedsDeposit();
        if (cumulativeAmount < c.settled) revert AmountNotIncreasing();
        if (cumulativeAmount > c.settled) checkVoucher(c, channelId, cumulativeAmount, signature);
        Channel memory m = c;
        finalize(channelId);
        uint128 delta = cumulativeAmount - m.settled;
        uint128 refund = m.deposit - cumulativeAmount;
        if (delta > 0 && !ITIP20(m.token).transfer(m.payee, delta)) revert TransferFailed();
        if (refund > 0 && !ITIP20(m.token).transfer(m.payer, refund)) revert TransferFailed();
        emit ChannelClosed(channelId, m.payer, m.payee, cumulativeAmount, refund);
    }

    function requestClose(bytes32 channelId) external {
        Channel storage c = live(channelId);
        if (msg.sender != c.payer) revert NotPayer();
        if (c.closeRequestedAt != 0) return;
        c.closeRequestedAt = uint64(block.timestamp);
        emit CloseRequested(channelId, c.payer, c.payee, block.timestamp + CLOSE_GRACE_PERIOD);
    }

    function withdraw(bytes32 channelId) external {
        Channel storage c = live(channelId);
        if (msg.sender != c.payer) revert NotPayer();
        if (c.closeRequestedAt == 0 || block.timestamp < uint256(c.closeRequestedAt) + CLOSE_GRACE_PERIOD) revert CloseNotReady();
        Channel memory m = c;
        finalize(channelId);
        uint128 refund = m.deposit - m.settled;
        if (refund > 0 && !ITIP20(m.token).transfer(m.payer, refund)) revert TransferFailed();
        emit ChannelClosed(channelId, m.payer, m.payee, m.settled, refund);
    }

    function getChannel(bytes32 channelId) external view returns (Channel memory) {
        return channels[channelId];
    }

    function getChannelsBatch(bytes32[] calldata channelIds) external view returns (Channel[] memory result) {
        result = new Channel[](channelIds.length);
        for (uint256 i = 0; i < channelIds.length; i++) {
            result[i] = channels[channelIds[i]];
        }
    }

    function computeChannelId(address payer, address payee, address token, bytes32 salt, address authorizedSigner) public view returns (bytes32) {
        return keccak256(abi.encode(payer, payee, token, salt, authorizedSigner, address(this), block.chainid));
    }

    function getVoucherDigest(bytes32 channelId, uint128 cumulativeAmount) public view returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), keccak256(abi.encode(VOUCHER_TYPEHASH, channelId, cumulativeAmount))));
    }

    function domainSeparator() public view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, keccak256("Tempo Stream Channel"), keccak256("1"), block.chainid, address(this)));
    }

    function live(bytes32 channelId) private view returns (Channel storage c) {
        c = channels[channelId];
        if (c.finalized) revert ChannelFinalized();
        if (c.payer == address(0)) revert ChannelNotFound();
    }

    function finalize(bytes32 channelId) private {
        delete channels[channelId];
        channels[channelId].finalized = true;
    }

    /// Low-s ECDSA over the voucher digest, 65-byte r‖s‖v or 64-byte EIP-2098; the signer must be the
    /// authorized signer, or the payer when none is set (draft-tempo-session-00, "Signature Verification").
    function checkVoucher(Channel storage c, bytes32 channelId, uint128 cumulativeAmount, bytes calldata signature) private view {
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
        address expected = c.authorizedSigner == address(0) ? c.payer : c.authorizedSigner;
        if (signer == address(0) || signer != expected) revert InvalidSignature();
    }
}
