/**
 * A session method for tests that need no chain: channels are funded in an in-memory "ledger" by open/topUp
 * "transactions" the test bank signs with HMAC over (channel id, amount), verified for real. Everything else is
 * the real v2 protocol: descriptors and channel ids are recomputed, vouchers are EIP-712 signatures recovered with
 * viem (low-s enforced), so a wrong signer, chain, escrow or channel fails as it would on chain.
 */
import { type Address, type Hex, encodeAbiParameters, keccak256, parseUnits, recoverTypedDataAddress, toHex } from 'viem'
import type { LocalAccount } from 'viem/accounts'
import type { ChainState } from '../../src/core/ChannelStore.js'
import { InvalidSignatureError, PaymentUnavailableError, VerificationFailedError } from '../../src/core/Errors.js'
import type * as Session from '../../src/core/Session.js'
import type { SessionMethod } from '../../src/core/SessionMethod.js'

export const escrow: Address = '0x4d50500000000000000000000000000000000000'
export const pathUsd: Address = '0x20c0000000000000000000000000000000000000'
const zero: Address = '0x0000000000000000000000000000000000000000'
const halfN = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n

const bankKey = crypto.subtle.importKey('raw', new TextEncoder().encode('ledger-session-bank-key-0123456789'), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])

async function mac(text: string): Promise<string> {
  const bytes = new Uint8Array(await crypto.subtle.sign('HMAC', await bankKey, new TextEncoder().encode(text)))
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('')
}

/** A ledger "transaction" funding `channelId` with `amount` (hex: 12-byte amount, 32-byte MAC, 8 random bytes). */
export async function fundingTransaction(channelId: string, amount: bigint): Promise<Hex> {
  const nonce = [...crypto.getRandomValues(new Uint8Array(8))].map((b) => b.toString(16).padStart(2, '0')).join('')
  return `0x${amount.toString(16).padStart(24, '0')}${await mac(`${channelId.toLowerCase()}|${amount}|${nonce}`)}${nonce}`
}

/** The v2 channel id of a descriptor on the ledger's escrow and chain. */
export function channelIdOf(d: Session.Descriptor, at: { escrow: Address; chainId: number } = { escrow, chainId: 42431 }): Hex {
  return keccak256(
    encodeAbiParameters(
      [{ type: 'address' }, { type: 'address' }, { type: 'address' }, { type: 'address' }, { type: 'bytes32' }, { type: 'address' }, { type: 'bytes32' }, { type: 'address' }, { type: 'uint256' }],
      [d.payer, d.payee, d.operator, d.token, d.salt, d.authorizedSigner, d.expiringNonceHash, at.escrow, BigInt(at.chainId)],
    ),
  )
}

const voucherTypes = { Voucher: [{ name: 'channelId', type: 'bytes32' }, { name: 'cumulativeAmount', type: 'uint96' }] } as const

/** Signs a v2 voucher (EIP-712, "TIP20 Channel Reserve"). */
export function signVoucher(account: LocalAccount, channelId: Hex, cumulativeAmount: bigint, at: { escrow: Address; chainId: number } = { escrow, chainId: 42431 }): Promise<Hex> {
  return account.signTypedData({
    domain: { name: 'TIP20 Channel Reserve', version: '1', chainId: at.chainId, verifyingContract: at.escrow },
    types: voucherTypes,
    primaryType: 'Voucher',
    message: { channelId, cumulativeAmount },
  })
}

/** The ledger: deposits by channel, closes performed. */
export type LedgerState = { deposits: Map<string, bigint>; closes: { channelId: string; capture: bigint; cumulative: bigint }[]; failNext: number }

/** Builds the ledger session method paying `recipient` in pathUSD (6 decimals) on chain 42431. */
export function ledgerSession(recipient: Address): { method: SessionMethod; state: LedgerState } {
  const state: LedgerState = { deposits: new Map(), closes: [], failNext: 0 }
  const chainId = 42431
  async function fund(channelId: string, transaction: Hex): Promise<bigint> {
    const body = transaction.slice(2)
    if (body.length !== 24 + 64 + 16) throw new VerificationFailedError({ detail: 'not a ledger transaction' })
    const amount = BigInt(`0x${body.slice(0, 24)}`)
    if ((await mac(`${channelId}|${amount}|${body.slice(88)}`)) !== body.slice(24, 88)) throw new VerificationFailedError({ detail: 'the ledger transaction is forged' })
    return amount
  }
  const method: SessionMethod = {
    name: 'tempo',
    request: (price) => ({
      amount: parseUnits(price.amount, 6).toString(),
      ...(price.unitType ? { unitType: price.unitType } : {}),
      ...(price.suggestedDeposit ? { suggestedDeposit: parseUnits(price.suggestedDeposit, 6).toString() } : {}),
      currency: pathUsd,
      recipient: recipient.toLowerCase() as Address,
      methodDetails: {
        escrowContract: escrow,
        chainId,
        ...(price.minVoucherDelta ? { minVoucherDelta: parseUnits(price.minVoucherDelta, 6).toString() } : {}),
        sessionProtocol: 'v2',
      },
    }),
    checkDescriptor(payload, request) {
      if (!('descriptor' in payload)) throw new VerificationFailedError({ detail: 'a v2 payload carries its descriptor' })
      const d = payload.descriptor
      if (channelIdOf(d, { escrow: request.methodDetails.escrowContract, chainId: request.methodDetails.chainId }) !== payload.channelId) {
        throw new VerificationFailedError({ detail: 'the descriptor is not the channel named' })
      }
      if (d.payee !== request.recipient || d.token !== request.currency || d.operator !== (request.methodDetails.operator ?? zero)) {
        throw new VerificationFailedError({ detail: 'the channel does not pay this recipient in this currency' })
      }
      return d
    },
    async recoverVoucher(voucher, request) {
      const body = voucher.signature.slice(2)
      const s = BigInt(`0x${body.slice(64, 128)}`) & ((1n << 255n) - 1n)
      if (body.length === 130 && BigInt(`0x${body.slice(64, 128)}`) > halfN) throw new InvalidSignatureError({ channelId: voucher.channelId, detail: 'high-s signature' })
      if (s > halfN) throw new InvalidSignatureError({ channelId: voucher.channelId, detail: 'high-s signature' })
      try {
        const signer = await recoverTypedDataAddress({
          domain: { name: 'TIP20 Channel Reserve', version: '1', chainId: request.methodDetails.chainId, verifyingContract: request.methodDetails.escrowContract },
          types: voucherTypes,
          primaryType: 'Voucher',
          message: { channelId: voucher.channelId, cumulativeAmount: voucher.cumulativeAmount },
          signature: voucher.signature,
        })
        return signer.toLowerCase() as Address
      } catch (cause) {
        throw new InvalidSignatureError({ channelId: voucher.channelId, detail: 'the voucher signature does not recover', cause })
      }
    },
    async open(payload, context): Promise<ChainState> {
      if (!('descriptor' in payload)) throw new VerificationFailedError({ detail: 'a v2 payload carries its descriptor' })
      if (state.failNext > 0) {
        state.failNext--
        throw new PaymentUnavailableError({ detail: 'ledger unavailable', retryAfter: 1 })
      }
      const amount = await fund(payload.channelId, payload.transaction)
      await context.claimReference(keccak256(payload.transaction))
      if (!state.deposits.has(payload.channelId)) state.deposits.set(payload.channelId, amount)
      return { channelId: payload.channelId, chainId, escrow, descriptor: payload.descriptor, deposit: state.deposits.get(payload.channelId)!, settled: 0n, closeRequestedAt: 0n }
    },
    async topUp(payload, account, context): Promise<ChainState> {
      const amount = await fund(payload.channelId, payload.transaction)
      await context.claimReference(keccak256(payload.transaction))
      const deposit = (state.deposits.get(payload.channelId) ?? 0n) + amount
      state.deposits.set(payload.channelId, deposit)
      return { channelId: account.channelId, chainId, escrow, descriptor: account.descriptor, deposit, settled: account.settled, closeRequestedAt: 0n }
    },
    async close(account, voucher, capture) {
      if (state.failNext > 0) {
        state.failNext--
        throw new PaymentUnavailableError({ detail: 'ledger unavailable', retryAfter: 1 })
      }
      state.closes.push({ channelId: account.channelId, capture, cumulative: voucher.cumulative })
      return { txHash: keccak256(toHex(`close ${account.channelId}`)), settled: capture }
    },
  }
  return { method, state }
}
