/**
 * @module EIP-712 vouchers: typed data, digest, signature format checks and signer recovery
 * (draft-tempo-session-00, "Voucher Signing Format", "Voucher Verification", "Signature Malleability").
 */
import { type Address, type Hex, hashTypedData, numberToHex, recoverAddress } from 'viem'
import type { LocalAccount } from 'viem/accounts'
import { InvalidSignatureError, SignerMismatchError, VerificationFailedError } from '../../../core/Errors.js'
import { maxUint96 } from './abi.js'

/** A voucher as a payload carries it, amounts parsed. */
export type Voucher = {
  channelId: Hex
  /** Cumulative amount authorized, in base units (not a delta). */
  cumulativeAmount: bigint
  /** 65-byte r‖s‖v or 64-byte EIP-2098 signature. */
  signature: Hex
}

/** Where a voucher is valid: the escrow (EIP-712 `verifyingContract`), the chain, and the protocol version. */
export type VoucherContext = {
  escrow: Address
  chainId: number
  /** `sessionProtocol` (default `v2`): picks the domain name and the amount type. */
  protocol?: 'v1' | 'v2' | undefined
}

/** secp256k1 group order, and half of it (the largest canonical s). */
const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
const halfN = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n
const maxUint128 = 2n ** 128n - 1n

const domainNames = { v1: 'Tempo Stream Channel', v2: 'TIP20 Channel Reserve' } as const

/**
 * The largest cumulative amount a voucher can carry under a protocol (uint96 for v2, uint128 for v1).
 * @example
 * maxVoucherAmount('v2') // 2n ** 96n - 1n
 */
export function maxVoucherAmount(protocol: 'v1' | 'v2' = 'v2'): bigint {
  return protocol === 'v1' ? maxUint128 : maxUint96
}

/**
 * The voucher's EIP-712 typed data: domain {name, version "1", chainId, verifyingContract: escrow} and
 * `Voucher(bytes32 channelId,uint96 cumulativeAmount)` (uint128 for v1).
 * @example
 * await account.signTypedData(voucherTypedData({ channelId, cumulativeAmount: 1000n }, { escrow, chainId }))
 */
export function voucherTypedData(voucher: { channelId: Hex; cumulativeAmount: bigint }, at: VoucherContext) {
  const protocol = at.protocol ?? 'v2'
  return {
    domain: { name: domainNames[protocol], version: '1', chainId: at.chainId, verifyingContract: at.escrow },
    types: {
      Voucher: [
        { name: 'channelId', type: 'bytes32' },
        { name: 'cumulativeAmount', type: protocol === 'v1' ? 'uint128' : 'uint96' },
      ],
    },
    primaryType: 'Voucher',
    message: { channelId: voucher.channelId, cumulativeAmount: voucher.cumulativeAmount },
  } as const
}

/**
 * The EIP-712 signing hash of a voucher (what the escrow's `getVoucherDigest` returns).
 * @example
 * voucherDigest({ channelId, cumulativeAmount: 1000n }, { escrow, chainId: 42431 })
 */
export function voucherDigest(voucher: { channelId: Hex; cumulativeAmount: bigint }, at: VoucherContext): Hex {
  return hashTypedData(voucherTypedData(voucher, at))
}

/** The parts of a canonical secp256k1 signature. */
export type SignatureParts = { r: bigint; s: bigint; yParity: 0 | 1 }

/**
 * Checks a signature's format without any elliptic-curve work: 65 bytes r‖s‖v with v 27 or 28, or 64 bytes
 * r‖(yParity·2^255 + s) (EIP-2098); 0 < r < n; 0 < s ≤ n/2 (low-s only). Throws InvalidSignatureError.
 * @example
 * parseVoucherSignature(payload.signature).s <= 0x7fff…20a0n // true
 */
export function parseVoucherSignature(signature: string): SignatureParts {
  if (!/^0x(?:[0-9a-fA-F]{128}|[0-9a-fA-F]{130})$/.test(signature)) {
    throw new InvalidSignatureError({ detail: 'a voucher signature is 65 bytes (r‖s‖v) or 64 bytes (EIP-2098) of hex' })
  }
  const r = BigInt(`0x${signature.slice(2, 66)}`)
  let s = BigInt(`0x${signature.slice(66, 130)}`)
  let yParity: 0 | 1
  if (signature.length === 132) {
    const v = Number.parseInt(signature.slice(130, 132), 16)
    if (v !== 27 && v !== 28) throw new InvalidSignatureError({ detail: 'the signature recovery byte must be 27 or 28' })
    yParity = v === 27 ? 0 : 1
  } else {
    yParity = s >> 255n === 1n ? 1 : 0
    s &= (1n << 255n) - 1n
  }
  if (r === 0n || r >= n) throw new InvalidSignatureError({ detail: 'the signature r value is out of range' })
  if (s === 0n) throw new InvalidSignatureError({ detail: 'the signature s value is out of range' })
  // draft-tempo-session-00, "Signature Malleability": only the low-s form is accepted.
  if (s > halfN) throw new InvalidSignatureError({ detail: 'the signature is not canonical (high s)' })
  return { r, s, yParity }
}

/**
 * The 65-byte r‖s‖v form of a signature (what mpp-edge sends to the escrow, whichever form the payer used).
 * @example
 * canonicalSignature(compact64) // '0x…1b' or '0x…1c'
 */
export function canonicalSignature(signature: string): Hex {
  const { r, s, yParity } = parseVoucherSignature(signature)
  return `${numberToHex(r, { size: 32 })}${numberToHex(s, { size: 32 }).slice(2)}${yParity === 0 ? '1b' : '1c'}` as Hex
}

/**
 * The account that signed a voucher (after the format checks). Throws InvalidSignatureError.
 * @example
 * const signer = await recoverVoucherSigner(voucher, { escrow, chainId })
 */
export async function recoverVoucherSigner(voucher: Voucher, at: VoucherContext): Promise<Address> {
  checkAmount(voucher.cumulativeAmount, at.protocol)
  const parts = parseVoucherSignature(voucher.signature)
  try {
    const signer = await recoverAddress({
      hash: voucherDigest(voucher, at),
      signature: { r: numberToHex(parts.r, { size: 32 }), s: numberToHex(parts.s, { size: 32 }), yParity: parts.yParity },
    })
    return signer.toLowerCase() as Address
  } catch (error) {
    throw new InvalidSignatureError({ detail: 'the voucher signature cannot be recovered', cause: error })
  }
}

function checkAmount(amount: bigint, protocol: VoucherContext['protocol']): void {
  if (amount < 0n || amount > maxVoucherAmount(protocol)) {
    throw new VerificationFailedError({ detail: `the voucher amount is outside the ${protocol === 'v1' ? 'uint128' : 'uint96'} range` })
  }
}

/**
 * Verifies a voucher for a channel: amount range (VerificationFailedError), signature format (low-s), recovery, and the signer. `signer`
 * must come from on-chain state (the confirmed descriptor's `authorizedSigner`, or its payer), never from the
 * payload (draft-tempo-session-00, "Voucher Verification"). Throws InvalidSignatureError or SignerMismatchError.
 * @example
 * await verifyVoucher(voucher, { escrow, chainId: 42431, signer: expectedSigner(channel.descriptor) })
 */
export async function verifyVoucher(voucher: Voucher, at: VoucherContext & { signer: Address }): Promise<void> {
  const recovered = await recoverVoucherSigner(voucher, at)
  if (recovered !== at.signer.toLowerCase()) {
    throw new SignerMismatchError({ detail: 'the voucher is not signed by the channel signer' })
  }
}

/**
 * Signs a voucher with a local account (65-byte r‖s‖v, low-s).
 * @example
 * const signature = await signVoucher(payer, { channelId, cumulativeAmount: 5000n }, { escrow, chainId })
 */
export async function signVoucher(account: LocalAccount, voucher: { channelId: Hex; cumulativeAmount: bigint }, at: VoucherContext): Promise<Hex> {
  checkAmount(voucher.cumulativeAmount, at.protocol)
  return account.signTypedData(voucherTypedData(voucher, at))
}
