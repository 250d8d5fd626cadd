import { type Hex, numberToHex, zeroAddress } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { Channel } from 'ox/tempo'
import { Session } from 'mppx/tempo'
import { describe, expect, it } from 'vitest'
import { InvalidSignatureError, SignerMismatchError, VerificationFailedError } from '../../src/core/Errors.js'
import { maxUint96, tip20ChannelReserve } from '../../src/methods/tempo/session/abi.js'
import {
  canonicalSignature,
  parseVoucherSignature,
  recoverVoucherSigner,
  signVoucher,
  verifyVoucher,
  voucherDigest,
} from '../../src/methods/tempo/session/voucher.js'

const chainId = 42431
const at = { escrow: tip20ChannelReserve, chainId }
const payer = privateKeyToAccount(generatePrivateKey())
const stranger = privateKeyToAccount(generatePrivateKey())
const channelId = '0x6d0f4fdf1f2f6a1f6c1b0fbd6a7d5c2c0a8d3d7b1f6a9c1b3e2d4a5b6c7d8e9f' as Hex
const otherChannel = '0x1111111111111111111111111111111111111111111111111111111111111111' as Hex
const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n

const signed = async (cumulativeAmount: bigint, context = at, account = payer) => ({
  channelId,
  cumulativeAmount,
  signature: await signVoucher(account, { channelId, cumulativeAmount }, context),
})

/** The same signature with s replaced by n − s and the parity flipped: valid for ECDSA, but high-s. */
function malleate(signature: Hex): Hex {
  const s = BigInt(`0x${signature.slice(66, 130)}`)
  const v = Number.parseInt(signature.slice(130), 16)
  return `${signature.slice(0, 66)}${numberToHex(n - s, { size: 32 }).slice(2)}${v === 27 ? '1c' : '1b'}` as Hex
}

/** The EIP-2098 64-byte form of a 65-byte signature. */
function compact(signature: Hex): Hex {
  const s = BigInt(`0x${signature.slice(66, 130)}`)
  const parity = Number.parseInt(signature.slice(130), 16) === 28 ? 1n : 0n
  return `${signature.slice(0, 66)}${numberToHex((parity << 255n) | s, { size: 32 }).slice(2)}` as Hex
}

describe('voucher typed data', () => {
  it('the digest is the precompile voucher digest (ox/tempo Channel)', () => {
    for (const cumulativeAmount of [0n, 1n, 250_000n, maxUint96]) {
      expect(voucherDigest({ channelId, cumulativeAmount }, at)).toBe(Channel.getVoucherSignPayload({ chainId, channelId, cumulativeAmount }))
    }
  })

  it('escrow, chain and protocol each change the digest', () => {
    const base = voucherDigest({ channelId, cumulativeAmount: 5n }, at)
    expect(voucherDigest({ channelId, cumulativeAmount: 5n }, { ...at, escrow: '0x9d136eEa063eDE5418A6BC7bEafF009bBb6CFa70' })).not.toBe(base)
    expect(voucherDigest({ channelId, cumulativeAmount: 5n }, { ...at, chainId: 4217 })).not.toBe(base)
    expect(voucherDigest({ channelId, cumulativeAmount: 5n }, { ...at, protocol: 'v1' })).not.toBe(base)
  })
})

describe('voucher verification', () => {
  it('a voucher signed by the channel signer verifies, and mppx agrees', async () => {
    const voucher = await signed(250_000n)
    await verifyVoucher(voucher, { ...at, signer: payer.address })
    expect(await recoverVoucherSigner(voucher, at)).toBe(payer.address.toLowerCase())
    expect(Session.Precompile.Voucher.verifyVoucher(tip20ChannelReserve, chainId, voucher, payer.address)).toBe(true)
  })

  it('a voucher signed by someone else is a signer mismatch', async () => {
    const voucher = await signed(250_000n, at, stranger)
    await expect(verifyVoucher(voucher, { ...at, signer: payer.address })).rejects.toBeInstanceOf(SignerMismatchError)
  })

  it('a voucher for another channel, escrow, chain or protocol does not verify for this one', async () => {
    const forOther = { ...(await signed(1000n)), channelId: otherChannel }
    await expect(verifyVoucher(forOther, { ...at, signer: payer.address })).rejects.toBeInstanceOf(SignerMismatchError)
    for (const context of [
      { ...at, escrow: '0x9d136eEa063eDE5418A6BC7bEafF009bBb6CFa70' as const },
      { ...at, chainId: 4217 },
      { ...at, protocol: 'v1' as const },
    ]) {
      const voucher = await signed(1000n, context)
      await expect(verifyVoucher(voucher, { ...at, signer: payer.address })).rejects.toBeInstanceOf(SignerMismatchError)
      await verifyVoucher(voucher, { ...context, signer: payer.address })
    }
  })

  it('a high-s signature is refused before recovery, though ECDSA would accept it', async () => {
    const voucher = await signed(42n)
    const high = malleate(voucher.signature)
    await expect(verifyVoucher({ ...voucher, signature: high }, { ...at, signer: payer.address })).rejects.toThrow(/high s/)
    await expect(verifyVoucher({ ...voucher, signature: high }, { ...at, signer: payer.address })).rejects.toBeInstanceOf(InvalidSignatureError)
    // A 64-byte form keeps s below 2^255 (the top bit is the parity), which still admits n/2 < s < 2^255.
    const halfN = n / 2n
    expect(() => parseVoucherSignature(`${voucher.signature.slice(0, 66)}${numberToHex(halfN + 1n, { size: 32 }).slice(2)}`)).toThrow(/high s/)
    expect(parseVoucherSignature(`${voucher.signature.slice(0, 66)}${numberToHex(halfN, { size: 32 }).slice(2)}`).s).toBe(halfN)
  })

  it('a 64-byte EIP-2098 signature verifies and converts to the same 65-byte signature', async () => {
    for (const amount of [1n, 2n, 3n, 4n]) {
      const voucher = await signed(amount)
      const short = compact(voucher.signature)
      expect(short.length).toBe(130)
      await verifyVoucher({ ...voucher, signature: short }, { ...at, signer: payer.address })
      expect(canonicalSignature(short)).toBe(voucher.signature.toLowerCase())
    }
  })

  it('malformed signatures are refused by the format check', async () => {
    const { signature } = await signed(7n)
    const cases: string[] = [
      '0x',
      'not hex',
      signature.slice(0, 100),
      `${signature}00`,
      `${signature.slice(0, 130)}1d`,
      `${signature.slice(0, 130)}00`,
      `0x${'00'.repeat(32)}${signature.slice(66)}`,
      `${signature.slice(0, 66)}${'00'.repeat(32)}${signature.slice(130)}`,
      `0x${n.toString(16)}${signature.slice(66)}`,
    ]
    for (const bad of cases) expect(() => parseVoucherSignature(bad), bad).toThrow(InvalidSignatureError)
  })

  it('amounts above 2^96 - 1 are refused for v2 and accepted up to 2^128 - 1 for v1', async () => {
    const voucher = await signed(1n)
    await expect(verifyVoucher({ ...voucher, cumulativeAmount: maxUint96 + 1n }, { ...at, signer: payer.address })).rejects.toBeInstanceOf(VerificationFailedError)
    await expect(signVoucher(payer, { channelId, cumulativeAmount: maxUint96 + 1n }, at)).rejects.toBeInstanceOf(VerificationFailedError)
    await expect(verifyVoucher({ ...voucher, cumulativeAmount: -1n }, { ...at, signer: payer.address })).rejects.toBeInstanceOf(VerificationFailedError)
    const v1 = { ...at, protocol: 'v1' as const }
    const big = await signed(maxUint96 + 1n, v1)
    await verifyVoucher(big, { ...v1, signer: payer.address })
    await expect(signVoucher(payer, { channelId, cumulativeAmount: 2n ** 128n }, v1)).rejects.toBeInstanceOf(VerificationFailedError)
  })

  it('an authorized signer other than the payer is what the caller passes as signer', async () => {
    const delegate = privateKeyToAccount(generatePrivateKey())
    const voucher = await signed(9n, at, delegate)
    await verifyVoucher(voucher, { ...at, signer: delegate.address })
    await expect(verifyVoucher(voucher, { ...at, signer: payer.address })).rejects.toBeInstanceOf(SignerMismatchError)
    await expect(verifyVoucher(voucher, { ...at, signer: zeroAddress })).rejects.toBeInstanceOf(SignerMismatchError)
  })
})
