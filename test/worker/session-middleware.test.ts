import { env } from 'cloudflare:workers'
import { runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test'
import { Hono } from 'hono'
import { bearerAuth } from 'hono/bearer-auth'
import { type Hex, keccak256, toHex } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { describe, expect, it } from 'vitest'
import * as Challenge from '../../src/core/Challenge.js'
import * as Credential from '../../src/core/Credential.js'
import * as Receipt from '../../src/core/Receipt.js'
import * as Session from '../../src/core/Session.js'
import { payment } from '../../src/middleware/payment.js'
import type { SessionOptions } from '../../src/middleware/session.js'
import { channelStore } from '../../src/storage/channel-store.js'
import { idempotencyStore } from '../../src/storage/idempotency.js'
import { replayStore } from '../../src/storage/replay-store.js'
import { ledger as chargeLedger } from '../support/ledger-method.js'
import { channelIdOf, escrow, fundingTransaction, ledgerSession, pathUsd, signVoucher } from '../support/ledger-session.js'

const secret = 'session-middleware-secret-0123456789abcdef'
const base = 'https://api.example.com'
const payee = privateKeyToAccount(generatePrivateKey())
const zero = '0x0000000000000000000000000000000000000000'

type Env = { Bindings: Cloudflare.Env }

function setup(options: { voucherRate?: SessionOptions['voucherRate'] } = {}) {
  const ledger = ledgerSession(payee.address)
  const charge = chargeLedger()
  const pay = payment<Env>({
    realm: 'api.example.com',
    secret,
    methods: [charge.method],
    store: (c) => replayStore(c.env.REPLAY_GUARD),
    idempotency: (c) => idempotencyStore(c.env.IDEMPOTENCY_CACHE),
    session: { method: ledger.method, channels: (c) => channelStore(c.env.CHANNEL_STATE, c.env.PAYER_CHANNELS), voucherRate: options.voucherRate },
  })
  let runs = 0
  const app = new Hono<Env>()
  // 0.001 pathUSD per request.
  app.on(['GET', 'POST', 'HEAD'], '/report', pay.session({ amount: '0.001', unitType: 'request', suggestedDeposit: '0.01' }), (c) => {
    runs++
    return c.json({ report: 'ok', channel: c.get('session').channelId })
  })
  // 0.0001 per token, metered by the handler; the stream waits at most 300 ms for a voucher in these tests.
  app.on(['GET', 'POST', 'HEAD'], '/chat', pay.session({ amount: '0.0001', unitType: 'llm_token', upfrontUnits: 0 }), (c) => {
    runs++
    const tokens = Number(c.req.query('tokens') ?? '5')
    return c.get('session').sse(
      async function* (session) {
        for (let i = 0; i < tokens; i++) {
          await session.charge(1)
          yield `token ${i}`
        }
      },
      { waitMs: Number(c.req.query('wait') ?? '300') },
    )
  })
  // The handler charges 3 more units while it works, then fails: nothing was delivered.
  app.get('/fails', pay.session({ amount: '0.001' }), async (c) => {
    await c.get('session').charge(3)
    return c.json({ error: 'down' }, 500)
  })
  const request = (path: string, init?: RequestInit) => app.request(`${base}${path}`, init, env)
  return { request, ledger, runs: () => runs }
}

/** A payer with a channel descriptor for the ledger. */
function payer(options: { deposit?: bigint } = {}) {
  const account = privateKeyToAccount(generatePrivateKey())
  const descriptor: Session.Descriptor = {
    payer: account.address.toLowerCase() as Hex,
    payee: payee.address.toLowerCase() as Hex,
    operator: zero,
    token: pathUsd,
    salt: keccak256(toHex(crypto.randomUUID())),
    authorizedSigner: zero,
    expiringNonceHash: keccak256(toHex(crypto.randomUUID())),
  }
  const channelId = channelIdOf(descriptor)
  return { account, descriptor, channelId, deposit: options.deposit ?? 10_000n }
}
type Payer = ReturnType<typeof payer>

async function challengeOf(response: Response): Promise<Challenge.Challenge> {
  expect(response.status).toBe(402)
  const header = response.headers.get('www-authenticate')
  expect(header).toBeTruthy()
  return Challenge.deserialize(header!)
}

async function openCredential(challenge: Challenge.Challenge, p: Payer, cumulative: bigint): Promise<string> {
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

async function voucherCredential(challenge: Challenge.Challenge, p: Payer, cumulative: bigint, signature?: Hex): Promise<string> {
  return Credential.serialize({
    challenge,
    payload: {
      action: 'voucher',
      channelId: p.channelId,
      descriptor: p.descriptor,
      cumulativeAmount: cumulative.toString(),
      signature: signature ?? (await signVoucher(p.account, p.channelId, cumulative)),
    },
  })
}

function receiptOf(response: Response) {
  const header = response.headers.get('payment-receipt')
  expect(header).toBeTruthy()
  return Receipt.deserialize(header!) as Session.SessionReceipt
}

async function problemOf(response: Response) {
  return (await response.json()) as { type: string; status: number; channelId?: string; requiredTopUp?: string }
}

/** Reads SSE events from a response body; `onEvent` may act on each (for example post a voucher). */
async function events(response: Response, onEvent: (event: { event: string; data: string }) => Promise<void> | void = () => {}) {
  const seen: { event: string; data: string }[] = []
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) break
    buffer += value
    let end: number
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message'
      const data = [...block.matchAll(/^data: (.*)$/gm)].map((m) => m[1]).join('\n')
      const item = { event, data }
      seen.push(item)
      await onEvent(item)
    }
  }
  return seen
}

describe('pay.session', () => {
  it('behavior: an unpaid request gets a session challenge: price per unit, unit type, suggested deposit, v2 method details', async () => {
    const t = setup()
    const challenge = await challengeOf(await t.request('/report'))
    expect(challenge).toMatchObject({ method: 'tempo', intent: 'session' })
    expect(challenge.request).toEqual({
      amount: '1000',
      unitType: 'request',
      suggestedDeposit: '10000',
      currency: pathUsd,
      recipient: payee.address.toLowerCase(),
      methodDetails: { escrowContract: escrow, chainId: 42431, sessionProtocol: 'v2' },
    })
    // Hours, not minutes: one challenge carries many voucher-paid requests.
    expect(Date.parse(challenge.expires!) - Date.now()).toBeGreaterThan(3000 * 1000)
  })

  it('behavior: open, then vouchers pay request after request on one challenge; each answer carries a receipt and the session headers', async () => {
    const t = setup()
    const p = payer()
    const challenge = await challengeOf(await t.request('/report'))
    const first = await t.request('/report', { headers: { authorization: await openCredential(challenge, p, 1000n) } })
    expect(first.status).toBe(200)
    expect(receiptOf(first)).toMatchObject({ method: 'tempo', intent: 'session', reference: p.channelId, channelId: p.channelId, challengeId: challenge.id, acceptedCumulative: '1000', spent: '1000', units: 1 })
    expect(first.headers.get('payment-session')).toBe(p.channelId)
    expect(Session.deserializeSnapshot(first.headers.get('payment-session-snapshot')!)).toMatchObject({ channelId: p.channelId, deposit: '10000', spent: '1000', acceptedCumulative: '1000' })
    expect(first.headers.get('cache-control')).toContain('private')
    for (const cumulative of [2000n, 3000n, 4000n]) {
      const next = await t.request('/report', { headers: { authorization: await voucherCredential(challenge, p, cumulative) } })
      expect(next.status).toBe(200)
      expect(receiptOf(next)).toMatchObject({ acceptedCumulative: String(cumulative), spent: String(cumulative) })
    }
    expect(t.runs()).toBe(4)
    // The same voucher again pays for nothing new: 402 with the top-up needed, and a challenge resuming the channel.
    const again = await t.request('/report', { headers: { authorization: await voucherCredential(challenge, p, 4000n) } })
    expect(again.status).toBe(402)
    expect(await problemOf(again)).toMatchObject({ type: 'https://paymentauth.org/problems/session/insufficient-balance', requiredTopUp: '1000', channelId: p.channelId })
    expect(again.headers.get('payment-receipt')).toBeNull()
    expect(t.runs()).toBe(4)
  })

  it('error: a lower voucher, a small one past the deposit, another signer, a high-s signature, another chain or escrow, another channel', async () => {
    const t = setup()
    const p = payer({ deposit: 5000n })
    const challenge = await challengeOf(await t.request('/report'))
    expect((await t.request('/report', { headers: { authorization: await openCredential(challenge, p, 3000n) } })).status).toBe(200)
    const send = async (authorization: string) => {
      const response = await t.request('/report', { headers: { authorization } })
      return { status: response.status, type: (await problemOf(response)).type.replace('https://paymentauth.org/problems/', '') }
    }
    expect(await send(await voucherCredential(challenge, p, 2000n))).toEqual({ status: 402, type: 'session/delta-too-small' })
    expect(await send(await voucherCredential(challenge, p, 6000n))).toEqual({ status: 402, type: 'session/amount-exceeds-deposit' })
    const stranger = privateKeyToAccount(generatePrivateKey())
    expect(await send(await voucherCredential(challenge, p, 4000n, await signVoucher(stranger, p.channelId, 4000n)))).toEqual({ status: 402, type: 'session/signer-mismatch' })
    // Malleate a valid signature to its high-s twin: s' = n - s, v flipped. It recovers the same signer.
    const valid = await signVoucher(p.account, p.channelId, 4000n)
    const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
    const s = BigInt(`0x${valid.slice(66, 130)}`)
    const v = Number.parseInt(valid.slice(130), 16)
    const malleated = `${valid.slice(0, 66)}${(n - s).toString(16).padStart(64, '0')}${(v === 27 ? 28 : 27).toString(16)}` as Hex
    expect(await send(await voucherCredential(challenge, p, 4000n, malleated))).toEqual({ status: 402, type: 'session/invalid-signature' })
    // Signed for another chain or another escrow: the signature recovers someone else.
    expect(await send(await voucherCredential(challenge, p, 4000n, await signVoucher(p.account, p.channelId, 4000n, { escrow, chainId: 4217 })))).toEqual({ status: 402, type: 'session/signer-mismatch' })
    expect(
      await send(await voucherCredential(challenge, p, 4000n, await signVoucher(p.account, p.channelId, 4000n, { escrow: '0x9d136eea063ede5418a6bc7beaff009bbb6cfa70', chainId: 42431 }))),
    ).toEqual({ status: 402, type: 'session/signer-mismatch' })
    // A voucher for another channel of the same payer names a descriptor that is not that channel.
    const other = payer()
    const mixed = Credential.serialize({
      challenge,
      payload: { action: 'voucher', channelId: other.channelId, descriptor: p.descriptor, cumulativeAmount: '4000', signature: await signVoucher(p.account, other.channelId, 4000n) },
    })
    expect(await send(mixed)).toEqual({ status: 402, type: 'verification-failed' })
    // A channel this server never saw.
    expect(await send(await voucherCredential(challenge, other, 1000n))).toEqual({ status: 410, type: 'session/channel-not-found' })
    // None of these moved the channel: the right voucher still pays.
    const good = await t.request('/report', { headers: { authorization: await voucherCredential(challenge, p, 4000n) } })
    expect(good.status).toBe(200)
    expect(receiptOf(good)).toMatchObject({ acceptedCumulative: '4000', spent: '2000' })
  })

  it('behavior: a voucher POST with no body is a management request: 204 with the session headers, and the handler does not run', async () => {
    const t = setup()
    const p = payer()
    const challenge = await challengeOf(await t.request('/report'))
    await t.request('/report', { headers: { authorization: await openCredential(challenge, p, 1000n) } })
    const runs = t.runs()
    const management = await t.request('/report', { method: 'POST', headers: { authorization: await voucherCredential(challenge, p, 5000n) } })
    expect(management.status).toBe(204)
    expect(management.headers.get('payment-session')).toBe(p.channelId)
    expect(receiptOf(management)).toMatchObject({ acceptedCumulative: '5000', spent: '1000' })
    const head = await t.request('/report', { method: 'HEAD', headers: { authorization: await voucherCredential(challenge, p, 6000n) } })
    expect(head.status).toBe(204)
    expect(t.runs()).toBe(runs)
    // The balance the vouchers added pays for the next requests.
    const paid = await t.request('/report', { headers: { authorization: await voucherCredential(challenge, p, 6000n) } })
    expect(receiptOf(paid)).toMatchObject({ acceptedCumulative: '6000', spent: '2000' })
  })

  it('behavior: a metered stream that runs out asks for a voucher, pauses, resumes when one is posted to the same URI, and ends with a receipt', async () => {
    const t = setup()
    const p = payer()
    const challenge = await challengeOf(await t.request('/chat?tokens=5&wait=5000'))
    // The open voucher covers two tokens (100 each).
    const response = await t.request('/chat?tokens=5&wait=5000', { headers: { authorization: await openCredential(challenge, p, 200n) } })
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toContain('text/event-stream')
    let cumulative = 200n
    let posts = 0
    const seen = await events(response, async (event) => {
      if (event.event !== 'payment-need-voucher') return
      const need = JSON.parse(event.data) as Session.NeedVoucher
      expect(need).toMatchObject({ channelId: p.channelId, acceptedCumulative: String(cumulative), deposit: '10000' })
      cumulative = BigInt(need.requiredCumulative)
      posts++
      const answer = await t.request('/chat?tokens=5&wait=5000', { method: 'POST', headers: { authorization: await voucherCredential(challenge, p, cumulative) } })
      expect(answer.status).toBe(204)
    })
    expect(seen.filter((e) => e.event === 'message').map((e) => e.data)).toEqual(['token 0', 'token 1', 'token 2', 'token 3', 'token 4'])
    expect(posts).toBe(3)
    expect(t.runs()).toBe(1)
    const final = seen.at(-1)!
    expect(final.event).toBe('payment-receipt')
    expect(JSON.parse(final.data)).toMatchObject({ channelId: p.channelId, spent: '500', acceptedCumulative: '500', units: 5 })
  })

  it('behavior: a metered stream with no voucher arriving stops the content and ends cleanly with what was paid', async () => {
    const t = setup()
    const p = payer()
    const challenge = await challengeOf(await t.request('/chat?tokens=5&wait=200'))
    const response = await t.request('/chat?tokens=5&wait=200', { headers: { authorization: await openCredential(challenge, p, 300n) } })
    const started = Date.now()
    const seen = await events(response)
    expect(Date.now() - started).toBeGreaterThanOrEqual(150)
    expect(seen.map((e) => e.event)).toEqual(['message', 'message', 'message', 'payment-need-voucher', 'payment-receipt'])
    expect(JSON.parse(seen.at(-1)!.data)).toMatchObject({ spent: '300', units: 3 })
    const state = await channelStore(env.CHANNEL_STATE).channel(p.channelId).state()
    expect(state).toMatchObject({ spent: 300n, accepted: 300n })
  })

  it('behavior: an expired challenge is answered 402 challenge-not-found with a fresh challenge that resumes the channel', async () => {
    const t = setup()
    const p = payer()
    const challenge = await challengeOf(await t.request('/report'))
    await t.request('/report', { headers: { authorization: await openCredential(challenge, p, 1000n) } })
    // An expired challenge bound by the same server (the id is recomputed, as a server would have issued it).
    const expired = await Challenge.create({ ...challenge, expires: new Date(Date.now() - 1000).toISOString(), secret })
    const response = await t.request('/report', { headers: { authorization: await voucherCredential(expired, p, 2000n) } })
    expect(response.status).toBe(402)
    expect((await problemOf(response)).type).toBe('https://paymentauth.org/problems/session/challenge-not-found')
    const fresh = await challengeOf(response)
    expect((fresh.request.methodDetails as Record<string, unknown>).channelId).toBe(p.channelId)
    expect(fresh.request.suggestedDeposit).toBeUndefined()
    const resumed = await t.request('/report', { headers: { authorization: await voucherCredential(fresh, p, 2000n) } })
    expect(resumed.status).toBe(200)
    expect(receiptOf(resumed)).toMatchObject({ challengeId: fresh.id, spent: '2000' })
  })

  it('behavior: one Idempotency-Key under one challenge is charged once and replays its response', async () => {
    const t = setup()
    const p = payer()
    const challenge = await challengeOf(await t.request('/report'))
    await t.request('/report', { headers: { authorization: await openCredential(challenge, p, 1000n) } })
    const authorization = await voucherCredential(challenge, p, 3000n)
    const first = await t.request('/report', { headers: { authorization, 'idempotency-key': 'req-1' } })
    const retry = await t.request('/report', { headers: { authorization, 'idempotency-key': 'req-1' } })
    expect(first.status).toBe(200)
    expect(retry.status).toBe(200)
    expect(await retry.json()).toEqual(await first.json())
    expect(retry.headers.get('payment-receipt')).toBe(first.headers.get('payment-receipt'))
    expect(t.runs()).toBe(2)
    expect((await channelStore(env.CHANNEL_STATE).channel(p.channelId).state())?.spent).toBe(2000n)
  })

  it('behavior: two racing requests paid by one voucher: one is served, the other is asked for more', async () => {
    const t = setup()
    const p = payer()
    const challenge = await challengeOf(await t.request('/report'))
    await t.request('/report', { headers: { authorization: await openCredential(challenge, p, 1000n) } })
    const authorization = await voucherCredential(challenge, p, 2000n)
    const answers = await Promise.all(Array.from({ length: 6 }, () => t.request('/report', { headers: { authorization } })))
    expect(answers.map((r) => r.status).sort()).toEqual([200, 402, 402, 402, 402, 402])
    expect(t.runs()).toBe(2)
    expect((await channelStore(env.CHANNEL_STATE).channel(p.channelId).state())?.spent).toBe(2000n)
  })

  it('behavior: a handler that fails after charging gives back everything the request charged', async () => {
    const t = setup()
    const p = payer()
    const challenge = await challengeOf(await t.request('/fails'))
    const response = await t.request('/fails', { headers: { authorization: await openCredential(challenge, p, 5000n) } })
    expect(response.status).toBe(500)
    expect(response.headers.get('payment-receipt')).toBeNull()
    expect((await channelStore(env.CHANNEL_STATE).channel(p.channelId).state())?.spent).toBe(0n)
  })

  it('behavior: the channel state survives the object restarting between vouchers', async () => {
    const t = setup()
    const p = payer()
    const challenge = await challengeOf(await t.request('/report'))
    await t.request('/report', { headers: { authorization: await openCredential(challenge, p, 1000n) } })
    await runInDurableObject(env.CHANNEL_STATE.get(env.CHANNEL_STATE.idFromName(p.channelId)), (_, ctx) => ctx.abort('restart')).catch(() => {})
    const after = await t.request('/report', { headers: { authorization: await voucherCredential(challenge, p, 2000n) } })
    expect(after.status).toBe(200)
    expect(receiptOf(after)).toMatchObject({ acceptedCumulative: '2000', spent: '2000' })
  })

  it('behavior: close captures what was spent, answers a receipt with the transaction, and the channel serves no more', async () => {
    const t = setup()
    const p = payer()
    const challenge = await challengeOf(await t.request('/report'))
    await t.request('/report', { headers: { authorization: await openCredential(challenge, p, 3000n) } })
    const close = Credential.serialize({
      challenge,
      payload: { action: 'close', channelId: p.channelId, descriptor: p.descriptor, cumulativeAmount: '3000', signature: await signVoucher(p.account, p.channelId, 3000n) },
    })
    const closed = await t.request('/report', { method: 'POST', headers: { authorization: close } })
    expect(closed.status).toBe(200)
    expect(receiptOf(closed)).toMatchObject({ channelId: p.channelId, spent: '1000', txHash: expect.stringMatching(/^0x[0-9a-f]{64}$/) })
    // Vouchers ran ahead of spent (3000 accepted, 1000 spent): the close captures exactly what was consumed.
    expect(t.ledger.state.closes).toEqual([{ channelId: p.channelId, capture: 1000n, cumulative: 3000n }])
    const late = await t.request('/report', { headers: { authorization: await voucherCredential(challenge, p, 3000n) } })
    expect(late.status).toBe(410)
    expect((await problemOf(late)).type).toBe('https://paymentauth.org/problems/session/channel-finalized')
  })

  it('error: an open transaction funds one channel once; a forged one is refused', async () => {
    const t = setup()
    const p = payer()
    const challenge = await challengeOf(await t.request('/report'))
    const forged = Credential.serialize({
      challenge,
      payload: {
        action: 'open',
        type: 'transaction',
        channelId: p.channelId,
        transaction: `0x${'00'.repeat(52)}`,
        descriptor: p.descriptor,
        cumulativeAmount: '1000',
        signature: await signVoucher(p.account, p.channelId, 1000n),
      },
    })
    expect((await t.request('/report', { headers: { authorization: forged } })).status).toBe(402)
    const authorization = await openCredential(challenge, p, 1000n)
    expect((await t.request('/report', { headers: { authorization } })).status).toBe(200)
    // The same transaction under another challenge is refused.
    const other = await challengeOf(await t.request('/report'))
    const replayed = JSON.parse(atob(authorization.slice('Payment '.length).replace(/-/g, '+').replace(/_/g, '/'))) as { payload: Record<string, unknown> }
    const again = Credential.serialize({ challenge: other, payload: replayed.payload })
    const refused = await t.request('/report', { headers: { authorization: again } })
    expect(refused.status).toBe(402)
    expect((await problemOf(refused)).type).toBe('https://paymentauth.org/problems/invalid-challenge')
  })
})

describe('pay.session: concurrency on one channel', () => {
  it('error: more than 10 vouchers a second on one channel are refused 429 rate-limited with Retry-After, wherever they arrive; other channels are unaffected', { timeout: 30_000 }, async () => {
    const t = setup()
    const elsewhere = setup() // another middleware instance: the limit lives in the channel's object, not in a worker
    const p = payer()
    const q = payer()
    const challenge = await challengeOf(await t.request('/report'))
    expect((await t.request('/report', { headers: { authorization: await openCredential(challenge, p, 1000n) } })).status).toBe(200)
    expect((await t.request('/report', { headers: { authorization: await openCredential(challenge, q, 1000n) } })).status).toBe(200)
    const runs = t.runs()
    // A flood of management vouchers (the same amount again: each one alone would be a harmless 204).
    const authorization = await voucherCredential(challenge, p, 1000n)
    const flood = await Promise.all(
      Array.from({ length: 60 }, (_, i) => (i % 2 ? elsewhere : t).request('/report', { method: 'POST', headers: { authorization } })),
    )
    const statuses = flood.map((r) => r.status)
    expect(statuses.every((s) => s === 204 || s === 429)).toBe(true)
    const refused = flood.filter((r) => r.status === 429)
    expect(refused.length).toBeGreaterThan(0)
    for (const response of refused) {
      expect(Number(response.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
      expect(response.headers.get('www-authenticate')).toBeNull()
      expect(response.headers.get('payment-receipt')).toBeNull()
    }
    const problem = await problemOf(refused[0]!)
    expect(problem).toMatchObject({ type: 'https://paymentauth.org/problems/rate-limited', status: 429 })
    // The other channel pays on meanwhile.
    const other = await t.request('/report', { headers: { authorization: await voucherCredential(challenge, q, 2000n) } })
    expect(other.status).toBe(200)
    // After the Retry-After, the channel takes vouchers again; the flood charged nothing and ran no handler.
    await new Promise((resolve) => setTimeout(resolve, Number(refused[0]!.headers.get('retry-after')) * 1000 + 200))
    const after = await t.request('/report', { headers: { authorization: await voucherCredential(challenge, p, 2000n) } })
    expect(after.status).toBe(200)
    expect(receiptOf(after)).toMatchObject({ acceptedCumulative: '2000', spent: '2000' })
    expect(t.runs() + elsewhere.runs()).toBe(runs + 2)
  })

  it('behavior: the voucher rate is the seller\'s setting: 2 a second refuses the third voucher at once; false turns the limit off', async () => {
    const slow = setup({ voucherRate: { perSecond: 2, burst: 2, maxDelayMs: 0 } })
    const p = payer()
    const challenge = await challengeOf(await slow.request('/report'))
    expect((await slow.request('/report', { headers: { authorization: await openCredential(challenge, p, 1000n) } })).status).toBe(200)
    const authorization = await voucherCredential(challenge, p, 1000n)
    const answers = []
    for (let i = 0; i < 3; i++) answers.push((await slow.request('/report', { method: 'POST', headers: { authorization } })).status)
    expect(answers).toEqual([204, 204, 429])
    const open = setup({ voucherRate: false })
    const q = payer()
    expect((await open.request('/report', { headers: { authorization: await openCredential(challenge, q, 1000n) } })).status).toBe(200)
    const same = await voucherCredential(challenge, q, 1000n)
    const flood = await Promise.all(Array.from({ length: 40 }, () => open.request('/report', { method: 'POST', headers: { authorization: same } })))
    expect(flood.every((r) => r.status === 204)).toBe(true)
  })

  it('behavior: a new stream on a channel ends an older stream still waiting for a voucher: it ends with its receipt, charged only for what it delivered', { timeout: 30_000 }, async () => {
    const t = setup()
    const p = payer()
    const challenge = await challengeOf(await t.request('/chat?tokens=5&wait=60000'))
    // The open voucher covers two tokens (100 each); the first stream then waits (up to a minute) for a voucher.
    const first = await t.request('/chat?tokens=5&wait=60000', { headers: { authorization: await openCredential(challenge, p, 200n) } })
    let paused!: () => void
    const pausing = new Promise<void>((resolve) => (paused = resolve))
    const firstEvents = events(first, (event) => {
      if (event.event === 'payment-need-voucher') paused()
    })
    await pausing
    // A second stream on the channel, paid by the same voucher (nothing new available yet).
    const second = await t.request('/chat?tokens=1&wait=60000', { headers: { authorization: await voucherCredential(challenge, p, 200n) } })
    expect(second.status).toBe(200)
    let posted = 0
    const secondEvents = events(second, async (event) => {
      if (event.event !== 'payment-need-voucher') return
      posted++
      await ended
      const answer = await t.request('/chat?tokens=1&wait=60000', { method: 'POST', headers: { authorization: await voucherCredential(challenge, p, 300n) } })
      expect(answer.status).toBe(204)
    })
    const ended = Promise.race([firstEvents, new Promise<'still waiting'>((resolve) => setTimeout(() => resolve('still waiting'), 10_000))])
    const seen = await ended
    expect(seen).not.toBe('still waiting')
    const firstSeen = seen as Awaited<typeof firstEvents>
    expect(firstSeen.map((e) => e.event)).toEqual(['message', 'message', 'payment-need-voucher', 'payment-receipt'])
    expect(JSON.parse(firstSeen.at(-1)!.data)).toMatchObject({ channelId: p.channelId, units: 2, spent: '200' })
    // The new stream goes on with the next voucher.
    const secondSeen = await secondEvents
    expect(posted).toBe(1)
    expect(secondSeen.filter((e) => e.event === 'message').map((e) => e.data)).toEqual(['token 0'])
    expect(JSON.parse(secondSeen.at(-1)!.data)).toMatchObject({ units: 1, spent: '300', acceptedCumulative: '300' })
    expect(await channelStore(env.CHANNEL_STATE).channel(p.channelId).state()).toMatchObject({ spent: 300n, units: 3 })
    expect(t.runs()).toBe(2)
  })

  it('behavior: a voucher POST under a NEW challenge, on another connection, resumes a waiting stream: 204, no handler run, nothing charged twice', { timeout: 30_000 }, async () => {
    const t = setup()
    const p = payer()
    const challenge = await challengeOf(await t.request('/chat?tokens=4&wait=10000'))
    const response = await t.request('/chat?tokens=4&wait=10000', { headers: { authorization: await openCredential(challenge, p, 100n) } })
    const answers: number[] = []
    const fresh: string[] = []
    const seen = await events(response, async (event) => {
      if (event.event !== 'payment-need-voucher') return
      const need = JSON.parse(event.data) as Session.NeedVoucher
      // A new challenge for the same resource (as a payer on another connection would get one).
      const next = await challengeOf(await t.request('/chat?tokens=4&wait=10000'))
      expect(next.id).not.toBe(challenge.id)
      fresh.push(next.id)
      const answer = await t.request('/chat?tokens=4&wait=10000', { method: 'POST', headers: { authorization: await voucherCredential(next, p, BigInt(need.requiredCumulative)) } })
      answers.push(answer.status)
      expect(receiptOf(answer)).toMatchObject({ challengeId: next.id, acceptedCumulative: need.requiredCumulative })
    })
    expect(answers).toEqual([204, 204, 204])
    expect(new Set(fresh).size).toBe(3)
    expect(seen.filter((e) => e.event === 'message').map((e) => e.data)).toEqual(['token 0', 'token 1', 'token 2', 'token 3'])
    expect(JSON.parse(seen.at(-1)!.data)).toMatchObject({ challengeId: challenge.id, units: 4, spent: '400', acceptedCumulative: '400' })
    expect(t.runs()).toBe(1)
    expect(await channelStore(env.CHANNEL_STATE).channel(p.channelId).state()).toMatchObject({ spent: 400n, accepted: 400n, units: 4 })
  })

  it('behavior: the payer index misses no channel: a failed index write after a paid open is retried by the channel object until the listing has it', async () => {
    const ledger = ledgerSession(payee.address)
    let failures = 0
    const pay = payment<Env>({
      realm: 'api.example.com',
      secret,
      methods: [chargeLedger().method],
      store: (c) => replayStore(c.env.REPLAY_GUARD),
      session: {
        method: ledger.method,
        channels: (c) => {
          const store = channelStore(c.env.CHANNEL_STATE, c.env.PAYER_CHANNELS)
          // The payer's index is unavailable when the open is answered.
          return {
            ...store,
            indexPayer: async () => {
              failures++
              throw new Error('index unavailable')
            },
          }
        },
      },
    })
    const app = new Hono<Env>()
    app.get('/report', pay.session({ amount: '0.001' }), (c) => c.json({ ok: true }))
    const p = payer()
    const challenge = await challengeOf(await app.request(`${base}/report`, {}, env))
    const opened = await app.request(`${base}/report`, { headers: { authorization: await openCredential(challenge, p, 1000n) } }, env)
    expect(opened.status).toBe(200)
    expect(failures).toBe(1)
    const index = env.PAYER_CHANNELS.get(env.PAYER_CHANNELS.idFromName(p.descriptor.payer))
    expect(await index.list()).toEqual([])
    // The channel object's alarm writes the index entry.
    const stub = env.CHANNEL_STATE.get(env.CHANNEL_STATE.idFromName(p.channelId))
    expect(await runDurableObjectAlarm(stub)).toBe(true)
    expect((await index.list()).map((row) => row.channelId)).toEqual([p.channelId])
    // Done once: nothing pending, the next alarm (if any) has no index work left.
    expect(await stub.indexNow()).toBe(true)
  })
})

describe('pay.session: configuration', () => {
  it('behavior: a seller offering only sessions configures no charge method; pay.charge then refuses at start-up', async () => {
    const ledger = ledgerSession(payee.address)
    const pay = payment<Env>({
      realm: 'api.example.com',
      secret,
      store: (c) => replayStore(c.env.REPLAY_GUARD),
      session: { method: ledger.method, channels: (c) => channelStore(c.env.CHANNEL_STATE, c.env.PAYER_CHANNELS) },
    })
    const app = new Hono<Env>()
    app.on(['GET', 'POST', 'HEAD'], '/report', pay.session({ amount: '0.001', unitType: 'request' }), (c) => c.json({ ok: true }))
    const p = payer()
    const unpaid = await app.request(`${base}/report`, {}, env)
    const challenge = await challengeOf(unpaid)
    expect(challenge).toMatchObject({ method: 'tempo', intent: 'session' })
    expect(unpaid.headers.get('www-authenticate')).not.toContain('intent="charge"')
    const paid = await app.request(`${base}/report`, { headers: { authorization: await openCredential(challenge, p, 1000n) } }, env)
    expect(paid.status).toBe(200)
    expect(receiptOf(paid)).toMatchObject({ channelId: p.channelId, spent: '1000' })
    expect(() => pay.charge({ amount: '0.01' })).toThrow(/needs a payment method/)
    // Without sessions, a server with no method at all is still a configuration error.
    expect(() => payment<Env>({ realm: 'api.example.com', secret, store: (c) => replayStore(c.env.REPLAY_GUARD) })).toThrow(/at least one payment method/)
  })

  it('behavior: credentialHeader Payment-Authorization: the session is paid in that header, beside the route\'s own Bearer Authorization', async () => {
    const ledger = ledgerSession(payee.address)
    const pay = payment<Env>({
      realm: 'api.example.com',
      secret,
      methods: [chargeLedger().method],
      store: (c) => replayStore(c.env.REPLAY_GUARD),
      session: { method: ledger.method, channels: (c) => channelStore(c.env.CHANNEL_STATE, c.env.PAYER_CHANNELS) },
    })
    let runs = 0
    const app = new Hono<Env>()
    app.on(['GET', 'POST', 'HEAD'], '/report', bearerAuth({ token: 'app-key' }), pay.session({ amount: '0.001', credentialHeader: 'Payment-Authorization' }), (c) => {
      runs++
      return c.json({ ok: true })
    })
    app.get('/open', pay.session({ amount: '0.001', credentialHeader: 'Payment-Authorization' }), (c) => c.json({ ok: true }))
    const request = (headers: Record<string, string>, method = 'GET') => app.request(`${base}/report`, { method, headers: { authorization: 'Bearer app-key', ...headers } }, env)
    const p = payer()
    const challenge = await challengeOf(await request({}))
    expect(challenge.header).toBe('Payment-Authorization')
    expect((await request({ 'payment-authorization': await openCredential(challenge, p, 1000n) })).status).toBe(200)
    // Vouchers, management requests included, come in the same header.
    const managed = await request({ 'payment-authorization': await voucherCredential(challenge, p, 3000n) }, 'POST')
    expect(managed.status).toBe(204)
    const next = await request({ 'payment-authorization': await voucherCredential(challenge, p, 3000n) })
    expect(next.status).toBe(200)
    expect(receiptOf(next)).toMatchObject({ acceptedCumulative: '3000', spent: '2000' })
    expect(runs).toBe(2)
    // Where the route has no Bearer check, a session credential in Authorization is not read: 402 saying where to send it.
    const open = await challengeOf(await app.request(`${base}/open`, {}, env))
    const misplaced = await app.request(`${base}/open`, { headers: { authorization: await voucherCredential(open, p, 3000n) } }, env)
    expect(misplaced.status).toBe(402)
    expect((await problemOf(misplaced)) as unknown).toMatchObject({ detail: expect.stringContaining('Payment-Authorization') })
    // A challenge for the default header is refused here, and this route's challenge is refused on a default route.
    const plain = await challengeOf(await setup().request('/report'))
    const wrong = await request({ 'payment-authorization': await voucherCredential(plain, p, 3000n) })
    expect(wrong.status).toBe(402)
    expect((await problemOf(wrong)).type).toBe('https://paymentauth.org/problems/invalid-challenge')
    expect(runs).toBe(2)
  })
})
