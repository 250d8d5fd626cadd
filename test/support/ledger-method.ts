/**
 * A payment method for tests: a "ledger" whose vouchers are HMAC-signed by a test bank over the
 * challenge id, amount and recipient. It verifies for real (a wrong amount or a forged voucher
 * fails) and can be told to fail transiently or to be slow, to exercise the server's paths.
 */
import * as v from 'valibot'
import { parseUnits } from 'viem'
import { encodeBytes } from '../../src/core/Encoding.js'
import { PaymentUnavailableError, VerificationFailedError } from '../../src/core/Errors.js'
import { define } from '../../src/core/Method.js'

const bankKey = crypto.subtle.importKey('raw', new TextEncoder().encode('ledger-test-bank-key-0123456789abcdef'), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])

/** Signs a voucher as the test bank would. */
export async function voucher(challengeId: string, amount: string, recipient: string): Promise<string> {
  const mac = await crypto.subtle.sign('HMAC', await bankKey, new TextEncoder().encode(`${challengeId}|${amount}|${recipient}`))
  return encodeBytes(new Uint8Array(mac))
}

/** Controls and observations shared by a ledger instance. */
export type Ledger = {
  /** Settlements performed, by voucher. */
  settled: string[]
  /** Number of upcoming verifications that fail with a transient error. */
  failNext: number
  /** Delay each verification by this many ms (widens race windows). */
  delayMs: number
}

/** Builds a ledger method paying `recipient`, with amounts in cents. */
export function ledger(options: { name?: string; recipient?: string } = {}) {
  const state: Ledger = { settled: [], failNext: 0, delayMs: 0 }
  const recipient = options.recipient ?? 'acct_seller'
  const method = define({
    name: options.name ?? 'ledger',
    intents: ['charge'],
    request: v.object({ amount: v.string(), currency: v.literal('usd'), recipient: v.string(), description: v.optional(v.string()) }),
    payload: v.object({ voucher: v.pipe(v.string(), v.maxLength(64)) }),
    charge: (price) => ({
      amount: parseUnits(price.amount, 2).toString(),
      currency: 'usd' as const,
      recipient,
      ...(price.description ? { description: price.description } : {}),
    }),
    async verify({ challenge, request, credential, claimReference }) {
      if (state.delayMs) await new Promise((r) => setTimeout(r, state.delayMs))
      if (state.failNext > 0) {
        state.failNext--
        throw new PaymentUnavailableError({ detail: 'ledger unavailable', retryAfter: 1 })
      }
      const expected = await voucher(challenge.id, request.amount, request.recipient)
      if (credential.payload.voucher !== expected) throw new VerificationFailedError({ detail: 'voucher does not match' })
      await claimReference(credential.payload.voucher)
      state.settled.push(credential.payload.voucher)
      return { reference: `ledger_${credential.payload.voucher.slice(0, 16)}` }
    },
  })
  return { method, state }
}
