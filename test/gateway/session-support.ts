/** Session helpers for gateway tests: a payer with a ledger channel, its open and voucher credentials, receipts and SSE. */
import { type Hex, keccak256, toHex } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { expect } from 'vitest'
import * as Challenge from '../../src/core/Challenge.js'
import * as Credential from '../../src/core/Credential.js'
import * as Receipt from '../../src/core/Receipt.js'
import type * as Session from '../../src/core/Session.js'
import { createGateway } from '../../src/gateway/gateway.js'
import type { ChannelState } from '../../src/storage/ChannelState.js'
import { ledger } from '../support/ledger-method.js'
import { channelIdOf, fundingTransaction, ledgerSession, pathUsd, signVoucher } from '../support/ledger-session.js'
import { base, testEnv } from './support.js'

const zero = '0x0000000000000000000000000000000000000000'
const channelState = (testEnv as unknown as { CHANNEL_STATE: DurableObjectNamespace<ChannelState> }).CHANNEL_STATE

/** A payer of channels to `payee` on the ledger session method (pathUSD, chain 42431). */
export function sessionPayer(payee: Hex, deposit = 10_000n) {
  const account = privateKeyToAccount(generatePrivateKey())
  const descriptor: Session.Descriptor = {
    payer: account.address.toLowerCase() as Hex,
    payee: payee.toLowerCase() as Hex,
    operator: zero,
    token: pathUsd,
    salt: keccak256(toHex(crypto.randomUUID())),
    authorizedSigner: zero,
    expiringNonceHash: keccak256(toHex(crypto.randomUUID())),
  }
  return { account, descriptor, channelId: channelIdOf(descriptor), deposit }
}

/** A payer made by `sessionPayer`. */
export type Payer = ReturnType<typeof sessionPayer>

/** The session challenge of a 402. */
export function sessionChallenge(response: Response): Challenge.Challenge {
  expect(response.status).toBe(402)
  const challenge = Challenge.fromResponse(response).find((c) => c.intent === 'session')
  expect(challenge).toBeDefined()
  return challenge!
}

/** An open credential funding the payer's channel with its deposit, with a voucher for `cumulative`. */
export async function open(challenge: Challenge.Challenge, p: Payer, cumulative: bigint): Promise<string> {
  return Credential.serialize({
    challenge,
    payload: {
      action: 'open',
      type: 'transaction',
      channelId: p.channelId,
      transaction: await fundingTransaction(p.channelId, p.deposit),
      descriptor: p.descriptor,
      cumulativeAmount: cumulative.toString(),
      signature: await signVoucher(p.account, p.channelId, cumulative),
    },
  })
}

/** A voucher credential for `cumulative`. */
export async function voucher(challenge: Challenge.Challenge, p: Payer, cumulative: bigint): Promise<string> {
  return Credential.serialize({
    challenge,
    payload: { action: 'voucher', channelId: p.channelId, descriptor: p.descriptor, cumulativeAmount: cumulative.toString(), signature: await signVoucher(p.account, p.channelId, cumulative) },
  })
}

/** The session receipt of an answer. */
export const receiptOf = (response: Response) => Receipt.deserialize(response.headers.get('payment-receipt')!) as Session.SessionReceipt & { usage?: string }

/** What the channel object holds as spent. */
export const spent = async (p: Payer) => (await channelState.get(channelState.idFromName(p.channelId)).state())!.spent

/** One SSE event as a payer reads it. */
export type Event = { event: string; data: string; raw: string }

/** Reads SSE events; `onEvent` may post a voucher, and answers true to stop reading (the payer goes away). */
export async function readEvents(response: Response, onEvent: (event: Event, seen: Event[]) => Promise<boolean | void> | boolean | void = () => {}) {
  const seen: Event[] = []
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) break
    buffer += value
    let end: number
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const raw = buffer.slice(0, end + 2)
      buffer = buffer.slice(end + 2)
      const item = { raw, event: /^event: (.*)$/m.exec(raw)?.[1] ?? 'message', data: [...raw.matchAll(/^data: ?(.*)$/gm)].map((m) => m[1]).join('\n') }
      seen.push(item)
      if (await onEvent(item, seen)) {
        await reader.cancel()
        return seen
      }
    }
  }
  return seen
}

/** Waits until `check` holds (polling), or fails. */
export async function until(check: () => Promise<boolean>, ms = 3000) {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

/**
 * A gateway serving `pricing` with the ledger session method paying `payee`; requests carry a test id so the origin's
 * hit counts are this gateway's, and what it hands to `ctx.waitUntil` is kept in `pending`.
 */
export function meteredGateway(pricing: Record<string, unknown>, payee: Hex, options: { log?: ((line: string) => void) | undefined } = {}) {
  const session = ledgerSession(payee)
  const gateway = createGateway({
    pricing,
    env: { ...testEnv, RATE_LIMIT_CHALLENGES: '0', RATE_LIMIT_VERIFICATIONS: '0' },
    factories: { ledger: () => ledger().method, tempo: () => ledger({ name: 'tempo' }).method },
    sessionFactories: { tempo: () => session.method },
    log: options.log ?? (() => {}),
  })
  const id = crypto.randomUUID()
  const pending: Promise<unknown>[] = []
  const ctx = { waitUntil: (promise: Promise<unknown>) => void pending.push(promise) }
  const request = (path: string, init: RequestInit = {}) => {
    const headers = new Headers(init.headers)
    headers.set('x-test-id', id)
    return gateway.fetch(new Request(`${base}${path}`, { ...init, headers }), ctx)
  }
  const origin = async () => (await (await testEnv.ORIGIN.fetch(`https://origin/__hits?id=${id}`)).json()) as { hits: number; cancelled: number }
  return { gateway, request, origin, session, pending }
}
