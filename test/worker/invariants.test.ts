/**
 * The money invariants, each proved where it could break: on the local Tempo chain through an RPC endpoint
 * that fails mid-verification, against the local Stripe API, with handlers slower than their lease, with
 * response bodies that fail mid-stream, and with a replay store that fails on chosen calls.
 */
import { env } from 'cloudflare:workers'
import { Hono } from 'hono'
import type { Address, Hex } from 'viem'
import type { PrivateKeyAccount } from 'viem/accounts'
import { describe, expect, it } from 'vitest'
import * as Challenge from '../../src/core/Challenge.js'
import * as Credential from '../../src/core/Credential.js'
import * as ReplayStore from '../../src/core/ReplayStore.js'
import * as Server from '../../src/core/Server.js'
import { stripe } from '../../src/methods/stripe/method.js'
import { attributionMemo } from '../../src/methods/tempo/memo.js'
import { tempo, type TempoConfig, type TempoRequest } from '../../src/methods/tempo/method.js'
import { payment } from '../../src/middleware/payment.js'
import { idempotencyStore } from '../../src/storage/idempotency.js'
import { replayStore, shardOf } from '../../src/storage/replay-store.js'
import { encodeBytes } from '../../src/core/Encoding.js'
import { runInDurableObject } from 'cloudflare:test'
import { ledger, voucher } from '../support/ledger-method.js'
import { type RecordedRequest, spt, testSecretKey } from '../../src/testing/stripe-fixtures.js'
import { balanceOf, chainClient, chainId, freshAddress, fundedAccount, rpcProxy, signPayment, transferCall } from '../support/tempo-chain.js'

type Env = { Bindings: Cloudflare.Env }
const rpcUrl = env.TEST_TEMPO_RPC_URL
const client = chainClient(rpcUrl)
const realm = 'api.example.com'
const secret = 'invariants-test-secret-0123456789abcdef'
const price = 250_000n // '0.25' pathUSD

async function problem(response: Response) {
  expect(response.headers.get('content-type')).toContain('application/problem+json')
  expect(response.headers.get('payment-receipt')).toBeNull()
  return (await response.json()) as { type: string; status: number; detail?: string; reference?: string }
}

/** A Tempo seller whose RPC goes through a proxy the test controls, through the middleware or the bare server. */
function tempoSeller(config: Partial<TempoConfig> = {}, options: { store?: ReplayStore.ReplayStore; ttlSeconds?: number } = {}) {
  const proxy = rpcProxy(rpcUrl)
  const recipient = freshAddress()
  const method = tempo({ chainId, recipient, rpcUrl, fetch: proxy.fetch, timeoutMs: 1_000, pollIntervalMs: 100, receiptTimeoutMs: 3_000, ...config })
  const store = options.store ?? replayStore(env.REPLAY_GUARD)
  const pay = payment<Env>({ realm, secret, methods: [method], store: () => store, ttlSeconds: options.ttlSeconds })
  let runs = 0
  const app = new Hono<Env>()
  app.get('/item', pay.charge({ amount: '0.25' }), (c) => {
    runs++
    return c.json({ ok: true })
  })
  const request = (authorization?: string) => app.request(`https://${realm}/item`, authorization ? { headers: { authorization } } : {}, env)
  const challenge = async () => {
    const response = await request()
    expect(response.status).toBe(402)
    return Challenge.fromResponse(response)[0]! as Challenge.Challenge & { request: TempoRequest }
  }
  return { proxy, recipient, pay, store, request, challenge, runs: () => runs }
}

/** A pull credential: the payer signs a transfer of the price with the challenge-bound memo. */
async function pullCredential(challenge: Challenge.Challenge & { request: TempoRequest }, payer: PrivateKeyAccount, window = 25) {
  const memo = attributionMemo({ realm: challenge.realm, challengeId: challenge.id })
  // T4 refuses expiring nonces valid more than 30 s ahead.
  const validBefore = Math.min(Math.floor(Date.now() / 1000) + window, Math.floor(Date.parse(challenge.expires!) / 1000))
  const signature = await signPayment(client, payer, { calls: [transferCall(challenge.request.currency, challenge.request.recipient as Address, price, memo)], validBefore })
  return Credential.serialize({ challenge, payload: { type: 'transaction', signature }, source: `did:pkh:eip155:${chainId}:${payer.address}` })
}

/** The Stripe requests the local Stripe API saw for a challenge's PaymentIntents, once all are answered. */
async function stripeRequests(query: Record<string, string>): Promise<RecordedRequest[]> {
  const res = await fetch(`${env.TEST_STRIPE_API_URL}/__test/requests?${new URLSearchParams({ ...query, settled: '1' })}`)
  return (await res.json()) as RecordedRequest[]
}

function stripeSeller(options: { timeoutMs?: number } = {}) {
  const method = stripe({ secretKey: testSecretKey, networkId: 'profile_test_seller', apiBase: env.TEST_STRIPE_API_URL, timeoutMs: options.timeoutMs ?? 300 })
  const pay = payment<Env>({ realm, secret, methods: [method], store: (c) => replayStore(c.env.REPLAY_GUARD) })
  let runs = 0
  const app = new Hono<Env>()
  app.get('/report', pay.charge({ amount: '5.00' }), (c) => {
    runs++
    return c.json({ report: 'ok' })
  })
  const request = (authorization?: string) => app.request(`https://${realm}/report`, authorization ? { headers: { authorization } } : {}, env)
  const challenge = async () => Challenge.fromResponse(await request())[0]!
  const pay_ = (challenge: Challenge.Challenge, token: string) => request(Credential.serialize({ challenge, payload: { spt: token } }))
  return { request, challenge, pay: pay_, runs: () => runs }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('invariant 1: a challenge is paid at most once', { timeout: 60_000 }, () => {
  it('invariant 1 (Tempo pull): a re-signed transaction while the first one is unresolved gets 409 payment-in-progress; the first is served; the recipient is paid once', async () => {
    const shop = tempoSeller()
    const challenge = await shop.challenge()
    const payer = await fundedAccount(client)
    const first = await pullCredential(challenge, payer)

    // The first transaction goes out, then the node stops answering while its receipt is awaited.
    shop.proxy.state.after = { method: 'eth_sendRawTransaction', then: 'refused' }
    const down = await shop.request(first)
    expect(down.status).toBe(503)
    shop.proxy.state.mode = 'up'

    // A wallet retrying naturally signs a new transaction for the same challenge (another validity window).
    const second = await pullCredential(challenge, payer, 20)
    expect(second).not.toBe(first)
    const sent = shop.proxy.state.seen.filter((m) => m === 'eth_sendRawTransaction').length
    const refused = await shop.request(second)
    expect(refused.status).toBe(409)
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/)
    expect(refused.headers.get('www-authenticate')).toBeNull()
    const body = await problem(refused)
    expect(body.type).toMatch(/payment-in-progress$/)
    expect(body.detail).toMatch(/send the credential you first sent/)
    expect(shop.proxy.state.seen.filter((m) => m === 'eth_sendRawTransaction').length).toBe(sent) // nothing broadcast

    const served = await shop.request(first)
    expect(served.status).toBe(200)
    expect(await balanceOf(client, shop.recipient)).toBe(price)
    // After it paid, another credential is refused as paid with another credential, not served.
    const after = await shop.request(second)
    expect(after.status).toBe(402)
    expect(shop.runs()).toBe(1)
  })

  it('invariant 1 (Stripe): a new token while the first PaymentIntent is unresolved gets 409; the first token is served; one PaymentIntent carries the challenge', async () => {
    const shop = stripeSeller({ timeoutMs: 300 })
    const challenge = await shop.challenge()
    const slow = spt('slow') // Stripe answers after 1.5 s: the worker gives up at 300 ms, the PaymentIntent is made
    expect((await shop.pay(challenge, slow)).status).toBe(503)

    const fresh = spt('ok')
    const refused = await shop.pay(challenge, fresh)
    expect(refused.status).toBe(409)
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/)
    expect((await problem(refused)).detail).toMatch(/send the credential you first sent/)
    expect(await stripeRequests({ token: fresh })).toHaveLength(0)

    await stripeRequests({ token: slow }) // the first create has finished at Stripe
    const served = await shop.pay(challenge, slow)
    expect(served.status).toBe(200)
    const created = (await stripeRequests({ token: slow })).filter((r) => r.method === 'POST' && !r.replayed && r.status === 200)
    expect(created).toHaveLength(1)
    expect(created[0]!.params['metadata[challenge_id]']).toBe(challenge.id)
    expect(shop.runs()).toBe(1)
  })

  it('invariant 1 (Stripe): only once the first payment is known to have failed for good may a new token pay', async () => {
    const shop = stripeSeller({ timeoutMs: 1_000 })
    const challenge = await shop.challenge()
    const held = spt('processing_held')
    expect((await shop.pay(challenge, held)).status).toBe(503) // still processing
    expect((await shop.pay(challenge, spt('ok'))).status).toBe(409)
    // The payment network declines it; the same token learns so.
    expect((await fetch(`${env.TEST_STRIPE_API_URL}/__test/resolve?${new URLSearchParams({ token: held, status: 'requires_payment_method' })}`, { method: 'POST' })).status).toBe(200)
    const failed = await shop.pay(challenge, held)
    expect(failed.status).toBe(402)
    expect((await problem(failed)).detail).toMatch(/requires_payment_method/)
    const paid = await shop.pay(challenge, spt('ok'))
    expect(paid.status).toBe(200)
    expect(shop.runs()).toBe(1)
  })
})

describe('invariant 2: a payment that was made is honoured', { timeout: 60_000 }, () => {
  it('invariant 2: a transaction broadcast before expiry whose receipt could not be read is served to the same credential after expiry, within the grace', async () => {
    const shop = tempoSeller()
    const server = shop.pay.server
    const offers = await Server.chargeOffers(server, { amount: '0.25' })
    const url = `https://${realm}/item`
    const unpaid = await Server.handle(server, new Request(url), offers, { store: shop.store })
    const challenge = Challenge.fromResponse((unpaid as { response: Response }).response)[0]! as Challenge.Challenge & { request: TempoRequest }
    const credential = await pullCredential(challenge, await fundedAccount(client))
    const attempt = (now?: Date) => Server.handle(server, new Request(url, { headers: { authorization: credential } }), offers, { store: shop.store, now })

    shop.proxy.state.after = { method: 'eth_sendRawTransaction', then: 'refused' }
    const down = await attempt()
    expect(down.type === 'response' && down.response.status).toBe(503)
    shop.proxy.state.mode = 'up'

    // The recipient was paid; the server never recorded it. A minute after expiry the same credential comes back.
    const late = await attempt(new Date(Date.parse(challenge.expires!) + 60_000))
    expect(late.type).toBe('paid')
    if (late.type !== 'paid') return
    await late.deliver()
    expect(await balanceOf(client, shop.recipient)).toBe(price)
    // Past the grace nothing is served.
    const tooLate = await attempt(new Date(Date.parse(challenge.expires!) + Server.redeliveryGraceMs + 1_000))
    expect(tooLate.type === 'response' && tooLate.error.problem).toBe('payment-expired')
  })

  it('invariant 2: every answer that asks the payer to come back names the real deadline, expiry plus the grace', async () => {
    const book = ledger()
    const pay = payment<Env>({ realm, secret, methods: [book.method], store: (c) => replayStore(c.env.REPLAY_GUARD) })
    const app = new Hono<Env>()
    app.get('/x', pay.charge({ amount: '0.10' }), () => new Response('down', { status: 500 }))
    const offer = await app.request(`https://${realm}/x`, {}, env)
    const challenge = Challenge.fromResponse(offer)[0]!
    const { amount, recipient } = challenge.request as { amount: string; recipient: string }
    const authorization = Credential.serialize({ challenge, payload: { voucher: await voucher(challenge.id, amount, recipient) } })
    const deadline = new Date(Date.parse(challenge.expires!) + Server.redeliveryGraceMs).toISOString()
    // The origin failed after the payment settled: the 500 is passed on, the retry deadline is in the grace.
    const failed = await app.request(`https://${realm}/x`, { headers: { authorization } }, env)
    expect(failed.status).toBe(500)
    // Another credential committed to a challenge with an unknown outcome: the 409 names the deadline.
    const store = ReplayStore.memory()
    const id = challenge.id
    await store.begin(id, 'a', Date.now() + 60_000, Date.parse(challenge.expires!), 'someone-else')
    await store.commit(id, 'a', 'ref', 'someone-else')
    await store.release(id, 'a')
    const server = pay.server
    const offers = await Server.chargeOffers(server, { amount: '0.10' })
    const outcome = await Server.handle(server, new Request(`https://${realm}/x`, { headers: { authorization } }), offers, { store })
    expect(outcome.type === 'response' && outcome.response.status).toBe(409)
    if (outcome.type === 'response') expect((await outcome.response.json()) as { detail: string }).toMatchObject({ detail: expect.stringContaining(deadline) })
  })
})

describe('invariant 1 and 2 at expiry (Stripe)', { timeout: 60_000 }, () => {
  /** A Stripe payment whose create answer is lost (the attempt times out with 503) while Stripe goes on to create it. */
  async function lostCreate(outcome: 'slow' | 'slow_unindexed') {
    const method = stripe({ secretKey: testSecretKey, networkId: 'profile_test_seller', apiBase: env.TEST_STRIPE_API_URL, timeoutMs: 300 })
    const server = Server.create({ realm, secret, methods: [method] })
    const offers = await Server.chargeOffers(server, { amount: '5.00' })
    const store = replayStore(env.REPLAY_GUARD)
    const url = `https://${realm}/report`
    const unpaid = await Server.handle(server, new Request(url), offers, { store })
    const challenge = Challenge.fromResponse((unpaid as { response: Response }).response)[0]!
    const token = spt(outcome)
    const authorization = Credential.serialize({ challenge, payload: { spt: token } })
    const attempt = (now?: Date) => Server.handle(server, new Request(url, { headers: { authorization } }), offers, { store, now })
    const lost = await attempt()
    expect(lost.type === 'response' && lost.response.status).toBe(503)
    await stripeRequests({ token }) // Stripe finished creating it
    const afterExpiry = (ms: number) => new Date(Date.parse(challenge.expires!) + ms)
    return { token, attempt, afterExpiry }
  }

  it('invariant 2 (Stripe): a PaymentIntent whose create answer was lost is found by its challenge after expiry and served, without creating another', async () => {
    const { token, attempt, afterExpiry } = await lostCreate('slow')
    const late = await attempt(afterExpiry(60_000))
    expect(late.type).toBe('paid')
    if (late.type === 'paid') await late.deliver()
    const seen = await stripeRequests({ token })
    expect(seen.filter((r) => r.method === 'POST')).toHaveLength(1)
    expect(seen.some((r) => r.path === '/v1/payment_intents/search')).toBe(true)
    expect(late.type === 'paid' && late.settlement.reference).toBe(seen[0]!.paymentIntent)
  })

  it('invariant 2 (Stripe): when search has not indexed the lost PaymentIntent yet, the retry repeats the create under the same key and Stripe replays it', async () => {
    const { token, attempt, afterExpiry } = await lostCreate('slow_unindexed')
    const late = await attempt(afterExpiry(60_000))
    expect(late.type).toBe('paid')
    if (late.type === 'paid') await late.deliver()
    const creates = (await stripeRequests({ token })).filter((r) => r.method === 'POST')
    expect(creates).toHaveLength(2)
    expect(new Set(creates.map((r) => r.idempotencyKey)).size).toBe(1)
    expect(creates[1]!.replayed).toBe(true)
    expect(creates[1]!.paymentIntent).toBe(creates[0]!.paymentIntent)
    expect(late.type === 'paid' && late.settlement.reference).toBe(creates[0]!.paymentIntent)
    // The same credential again, now delivered: refused, and no third create.
    const again = await attempt(afterExpiry(61_000))
    expect(again.type === 'response' && again.response.status).not.toBe(200)
    expect((await stripeRequests({ token })).filter((r) => r.method === 'POST')).toHaveLength(2)
  })

  it('behavior: payment method types that can stay processing for days are refused at start-up', () => {
    expect(() => stripe({ secretKey: testSecretKey, networkId: 'profile_test_seller', paymentMethodTypes: ['card', 'sepa_debit'] })).toThrow(/sepa_debit.*processing/)
  })
})

describe('invariant 3: one payment runs the handler or the origin once', { timeout: 60_000 }, () => {
  it('invariant 3: a handler slower than the lease keeps it; a retry meanwhile gets 409 + Retry-After and the handler runs once', async () => {
    const book = ledger()
    const pay = payment<Env>({ realm, secret, methods: [book.method], leaseMs: 1_000, store: (c) => replayStore(c.env.REPLAY_GUARD) })
    let runs = 0
    const app = new Hono<Env>()
    app.get('/slow', pay.charge({ amount: '0.10' }), async (c) => {
      runs++
      await sleep(2_500)
      return c.json({ redelivery: c.get('payment').redelivery })
    })
    const challenge = Challenge.fromResponse(await app.request(`https://${realm}/slow`, {}, env))[0]!
    const { amount, recipient } = challenge.request as { amount: string; recipient: string }
    const authorization = Credential.serialize({ challenge, payload: { voucher: await voucher(challenge.id, amount, recipient) } })
    const send = () => app.request(`https://${realm}/slow`, { headers: { authorization } }, env)

    const first = send()
    await sleep(1_600) // past the first lease
    const retry = await send()
    expect(retry.status).toBe(409)
    expect(retry.headers.get('retry-after')).toMatch(/^\d+$/)
    const served = await first
    expect(served.status).toBe(200)
    expect(await served.json()).toEqual({ redelivery: false })
    expect(runs).toBe(1)
  })

  it('invariant 3: only after a lease lapses (the request died) may a retry run the work again, and it is told it is a redelivery', async () => {
    const book = ledger()
    // A store whose renewals stop reaching storage, as when the isolate running the handler died.
    const inner = ReplayStore.memory()
    let alive = true
    const store: ReplayStore.ReplayStore = { ...inner, renew: (...args) => (alive ? inner.renew(...args) : new Promise(() => {})) }
    const server = Server.create({ realm, secret, methods: [book.method], leaseMs: 1_000 })
    const offers = await Server.chargeOffers(server, { amount: '0.10' })
    const url = `https://${realm}/work`
    const unpaid = await Server.handle(server, new Request(url), offers, { store })
    const challenge = Challenge.fromResponse((unpaid as { response: Response }).response)[0]!
    const { amount, recipient } = challenge.request as { amount: string; recipient: string }
    const authorization = Credential.serialize({ challenge, payload: { voucher: await voucher(challenge.id, amount, recipient) } })
    const attempt = () => Server.handle(server, new Request(url, { headers: { authorization } }), offers, { store })

    const first = await attempt()
    expect(first).toMatchObject({ type: 'paid', redelivery: false })
    await sleep(1_500)
    expect((await attempt()).type === 'response').toBe(true) // alive: renewed, still held
    alive = false
    await sleep(1_500)
    const again = await attempt()
    expect(again).toMatchObject({ type: 'paid', redelivery: true })
    if (first.type === 'paid') await first.release()
    if (again.type === 'paid') await again.deliver()
    expect(book.state.settled).toHaveLength(1)
  })
})

describe('invariant 4: a settled payment whose response failed is never spent', { timeout: 60_000 }, () => {
  it('invariant 4: with an Idempotency-Key, a body failing mid-stream answers 502 with the reference, and the same credential is served', async () => {
    const book = ledger()
    const pay = payment<Env>({
      realm,
      secret,
      methods: [book.method],
      store: (c) => replayStore(c.env.REPLAY_GUARD),
      idempotency: (c) => idempotencyStore(c.env.IDEMPOTENCY_CACHE),
    })
    let runs = 0
    const app = new Hono<Env>()
    app.get('/file', pay.charge({ amount: '0.10' }), () => {
      runs++
      const broken = runs === 1
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('part one,'))
          if (broken) controller.error(new Error('the origin connection dropped'))
          else controller.close()
        },
      })
      return new Response(body, { headers: { 'content-type': 'text/plain' } })
    })
    const challenge = Challenge.fromResponse(await app.request(`https://${realm}/file`, {}, env))[0]!
    const { amount, recipient } = challenge.request as { amount: string; recipient: string }
    const authorization = Credential.serialize({ challenge, payload: { voucher: await voucher(challenge.id, amount, recipient) } })
    const send = () => app.request(`https://${realm}/file`, { headers: { authorization, 'idempotency-key': 'download-1' } }, env)

    const failed = await send()
    expect(failed.status).toBe(502)
    const body = await problem(failed)
    expect(body.type).toMatch(/origin-failed$/)
    expect(body.reference).toMatch(/^ledger_/)
    const served = await send()
    expect(served.status).toBe(200)
    expect(await served.text()).toBe('part one,')
    expect(served.headers.get('payment-receipt')).toBeTruthy()
    expect(book.state.settled).toHaveLength(1)
  })
})

describe('the replay store failing', { timeout: 90_000 }, () => {
  it('behavior: a Durable Object call that fails (storage error, overloaded object) answers 503 with Retry-After and loses nothing', async () => {
    for (const call of ['begin', 'commit', 'settle', 'deliver'] as const) {
      // The real store, failing once on the chosen call the way a Durable Object stub does.
      const inner = replayStore(env.REPLAY_GUARD)
      let armed = true
      const store = new Proxy(inner, {
        get: (target, name: keyof ReplayStore.ReplayStore) =>
          name === call
            ? (...args: never[]) => {
                if (!armed) return (target[name] as (...a: never[]) => unknown)(...args)
                armed = false
                return Promise.reject(new Error(call === 'settle' ? 'Durable Object is overloaded. Too many requests queued.' : 'Durable Object storage operation exceeded timeout'))
              }
            : target[name],
      })
      const shop = tempoSeller({}, { store })
      const challenge = await shop.challenge()
      const credential = await pullCredential(challenge, await fundedAccount(client))
      const failed = await shop.request(credential)
      expect(failed.status, call).toBe(503)
      expect(failed.headers.get('retry-after'), call).toMatch(/^\d+$/)
      expect((await problem(failed)).type).toMatch(/payment-unavailable$/)
      const served = await shop.request(credential)
      expect(served.status, call).toBe(200)
      expect(await balanceOf(client, shop.recipient), call).toBe(price)
      expect((await shop.request(credential)).status, call).toBe(402) // spent, once
    }
  })
})

describe('the credential digest', () => {
  it('behavior: re-encoding the same payment (hex case, key order, unknown payload keys) is the same credential, not "paid with another credential"', async () => {
    const book = ledger()
    const server = Server.create({ realm, secret, methods: [book.method] })
    const offers = await Server.chargeOffers(server, { amount: '0.25' })
    const store = ReplayStore.memory()
    const url = `https://${realm}/report`
    const unpaid = await Server.handle(server, new Request(url), offers, { store })
    const challenge = Challenge.fromResponse((unpaid as { response: Response }).response)[0]!
    const { amount, recipient } = challenge.request as { amount: string; recipient: string }
    const code = await voucher(challenge.id, amount, recipient)
    const address = '0x742d35cc6634c0532925a3b844bc9e7595f8fe00'
    const send = (authorization: string) => Server.handle(server, new Request(url, { headers: { authorization } }), offers, { store })

    const first = await send(Credential.serialize({ challenge, source: `did:pkh:eip155:1:${address}`, payload: { voucher: code } }))
    expect(first.type).toBe('paid')
    if (first.type === 'paid') await first.release() // the handler failed: settled, not delivered
    const resent = await send(Credential.serialize({ challenge, source: `did:pkh:eip155:1:${address.toUpperCase().replace('0X', '0x')}`, payload: { note: 'resent', voucher: code } }))
    expect(resent).toMatchObject({ type: 'paid', redelivery: true })
    // A different payment for the same challenge is still another credential.
    if (resent.type === 'paid') await resent.release()
    const other = await send(Credential.serialize({ challenge, source: 'did:pkh:eip155:1:0x0000000000000000000000000000000000000001', payload: { voucher: code } }))
    expect(other.type === 'response' && other.error.detail).toMatch(/paid with another credential/)
  })
})

describe('settlement references are not kept forever', { timeout: 60_000 }, () => {
  it('behavior: a transfer mined before a challenge was issued cannot pay it, so a swept transaction hash cannot be replayed', async () => {
    const shop = tempoSeller({ attribution: 'optional', modes: ['pull'] })
    const server = shop.pay.server
    const offers = await Server.chargeOffers(server, { amount: '0.25' })
    const url = `https://${realm}/item`
    const issue = async (now?: Date) => {
      const unpaid = await Server.handle(server, new Request(url), offers, { store: shop.store, now })
      return Challenge.fromResponse((unpaid as { response: Response }).response)[0]! as Challenge.Challenge & { request: TempoRequest }
    }
    const first = await issue()
    const payer = await fundedAccount(client)
    // Without a challenge-bound memo only the hash ties the transfer to a challenge.
    const validBefore = Math.min(Math.floor(Date.now() / 1000) + 25, Math.floor(Date.parse(first.expires!) / 1000))
    const signature = await signPayment(client, payer, { calls: [transferCall(first.request.currency, first.request.recipient as Address, price)], validBefore })
    const paying = (challenge: Challenge.Challenge) => Credential.serialize({ challenge, payload: { type: 'transaction', signature } })
    const paid = await Server.handle(server, new Request(url, { headers: { authorization: paying(first) } }), offers, { store: shop.store })
    expect(paid.type).toBe('paid')
    if (paid.type === 'paid') await paid.deliver()

    // Later, after its reference row was swept (a store without it), the same transaction for a new challenge.
    const later = new Date(Date.now() + 10 * 60_000)
    const second = await issue(later)
    const swept = ReplayStore.memory()
    const replayed = await Server.handle(server, new Request(url, { headers: { authorization: paying(second) } }), offers, { store: swept, now: later })
    expect(replayed.type === 'response' && replayed.error.detail).toMatch(/mined before this challenge was issued/)
    expect(await balanceOf(client, shop.recipient)).toBe(price)
  })

  it('behavior: a Shared Payment Token is kept until its expiry as Stripe reports it, a PaymentIntent id until its challenge is gone', async () => {
    const shop = stripeSeller({ timeoutMs: 2_000 })
    const challenge = await shop.challenge()
    const token = spt('ok')
    const before = Date.now()
    expect((await shop.pay(challenge, token)).status).toBe(200)
    const keptUntil = async (reference: string) => {
      const digest = encodeBytes(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(reference))))
      const key = `stripe:${digest}`
      const stub = env.REPLAY_GUARD.get(env.REPLAY_GUARD.idFromName(`replay:${shardOf(`r:${key}`, 32)}`))
      return runInDurableObject(stub, (_, state) => state.storage.sql.exec<{ keep_until: number | null }>('SELECT keep_until FROM refs WHERE reference = ?', key).one().keep_until)
    }
    // The local Stripe API reports an expiry an hour after it first saw the token.
    const tokenKept = (await keptUntil(token))!
    expect(tokenKept).toBeGreaterThan(before + 60 * 60_000)
    expect(tokenKept).toBeLessThan(Date.now() + 2 * 60 * 60_000)
    const paymentIntent = (await stripeRequests({ token })).find((r) => r.method === 'POST')!.paymentIntent!
    expect(await keptUntil(paymentIntent)).toBe(Date.parse(challenge.expires!) + Server.redeliveryGraceMs + 10 * 60_000)
  })
})
