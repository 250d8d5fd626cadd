import { env } from 'cloudflare:workers'
import { Hono } from 'hono'
import { describe, expect, it } from 'vitest'
import * as Challenge from '../../src/core/Challenge.js'
import * as Credential from '../../src/core/Credential.js'
import * as Receipt from '../../src/core/Receipt.js'
import * as ReplayStore from '../../src/core/ReplayStore.js'
import * as Server from '../../src/core/Server.js'
import { payment } from '../../src/middleware/payment.js'
import { idempotencyStore } from '../../src/storage/idempotency.js'
import { replayStore } from '../../src/storage/replay-store.js'
import { ledger, voucher } from '../support/ledger-method.js'

const secret = 'middleware-test-secret-0123456789abcdef'
const base = 'https://api.example.com'

function setup(options: { previousSecrets?: string[]; secret?: string } = {}) {
  const primary = ledger()
  const backup = ledger({ name: 'backup' })
  const pay = payment<{ Bindings: Cloudflare.Env }>({
    realm: 'api.example.com',
    secret: options.secret ?? secret,
    previousSecrets: options.previousSecrets,
    methods: [primary.method, backup.method],
    store: (c) => replayStore(c.env.REPLAY_GUARD),
    idempotency: (c) => idempotencyStore(c.env.IDEMPOTENCY_CACHE),
  })
  let runs = 0
  const app = new Hono<{ Bindings: Cloudflare.Env }>()
  app.get('/report', pay.charge({ amount: '0.25', description: 'Daily report' }), (c) => {
    runs++
    return c.json({ report: 'ok', reference: c.get('payment').settlement.reference })
  })
  app.get('/other', pay.charge({ amount: '0.25' }), (c) => c.json({ other: true }))
  app.get('/flaky', pay.charge({ amount: '0.10' }), (c) => {
    runs++
    return runs === 1 ? c.json({ error: 'down' }, 500) : c.json({ ok: true })
  })
  app.post('/orders', pay.charge({ amount: '1.00' }), async (c) => {
    runs++
    return c.json({ order: runs, body: await c.req.json() }, 201)
  })
  app.get('/refusing', pay.charge({ amount: '0.10' }), (c) => {
    runs++
    return runs === 1 ? c.json({ error: 'no such item' }, 404) : c.json({ ok: true })
  })
  app.get('/unstored', pay.charge({ amount: '0.10' }), (c) => c.json({ ok: true }, 200, { 'cache-control': 'no-store' }))
  let pulled = 0
  app.get('/download', pay.charge({ amount: '0.10' }), () => new Response(counted(8 * 1024 * 1024, (n) => (pulled += n))))
  app.get('/priceless', pay.charge(() => ({ amount: 'free' })), (c) => c.text('never'))
  app.get('/dynamic', pay.charge((c) => ({ amount: c.req.query('tier') === 'gold' ? '2.00' : '1.00' })), (c) => c.text('ok'))
  const request = (path: string, init?: RequestInit) => app.request(`${base}${path}`, init, env)
  return { app, request, primary, backup, runs: () => runs, pulled: () => pulled }
}

/** A body of `size` bytes that reports each chunk as it is pulled. */
function counted(size: number, onPull: (bytes: number) => void) {
  const chunk = new Uint8Array(64 * 1024).fill(120)
  let sent = 0
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= size) return controller.close()
      sent += chunk.byteLength
      onPull(chunk.byteLength)
      controller.enqueue(chunk)
    },
  })
}

/** Pays the first challenge of a 402 the way a client would, with the ledger's voucher. */
async function pay(response: Response, pick = 0) {
  const challenge = Challenge.fromResponse(response)[pick]!
  const request = challenge.request as { amount: string; recipient: string }
  const payload = { voucher: await voucher(challenge.id, request.amount, request.recipient) }
  return Credential.serialize({ challenge, payload })
}

async function problem(response: Response) {
  expect(response.headers.get('content-type')).toContain('application/problem+json')
  return (await response.json()) as { type: string; status: number; detail?: string }
}

describe('charge middleware', () => {
  it('behavior: an unpaid request gets a 402 with one challenge per method and never reaches the handler', async () => {
    const t = setup()
    const res = await t.request('/report')
    expect(res.status).toBe(402)
    expect(res.headers.get('cache-control')).toBe('no-store')
    expect(res.headers.get('payment-receipt')).toBeNull()
    const challenges = Challenge.fromResponse(res)
    expect(challenges.map((c) => c.method)).toEqual(['ledger', 'backup'])
    expect(challenges[0]).toMatchObject({ realm: 'api.example.com', intent: 'charge', description: 'Daily report' })
    expect(challenges[0]!.request).toEqual({ amount: '25', currency: 'usd', recipient: 'acct_seller', description: 'Daily report' })
    expect(Date.parse(challenges[0]!.expires!)).toBeGreaterThan(Date.now())
    expect((await problem(res)).type).toBe('https://paymentauth.org/problems/payment-required')
    expect(t.runs()).toBe(0)
  })

  it('behavior: every challenge is unique, even for the same route and second', async () => {
    const t = setup()
    const [a, b] = await Promise.all([t.request('/report'), t.request('/report')])
    const ids = [...Challenge.fromResponse(a), ...Challenge.fromResponse(b)].map((c) => c.id)
    expect(new Set(ids).size).toBe(4)
  })

  it('behavior: a paid request is served once with a receipt, and the same credential is refused after', async () => {
    const t = setup()
    const authorization = await pay(await t.request('/report'))
    const paid = await t.request('/report', { headers: { authorization } })
    expect(paid.status).toBe(200)
    expect(paid.headers.get('cache-control')).toBe('private')
    const receipt = Receipt.deserialize(paid.headers.get('payment-receipt')!)
    expect(receipt).toMatchObject({ status: 'success', method: 'ledger' })
    expect(receipt.reference).toMatch(/^ledger_/)
    expect(await paid.json()).toEqual({ report: 'ok', reference: receipt.reference })

    const replay = await t.request('/report', { headers: { authorization } })
    expect(replay.status).toBe(402)
    expect((await problem(replay)).type).toBe('https://paymentauth.org/problems/invalid-challenge')
    expect(Challenge.fromResponse(replay)).toHaveLength(2)
    expect(t.runs()).toBe(1)
    expect(t.primary.state.settled).toHaveLength(1)
  })

  it('behavior: the payer may choose any offered method', async () => {
    const t = setup()
    const authorization = await pay(await t.request('/report'), 1)
    const paid = await t.request('/report', { headers: { authorization } })
    expect(paid.status).toBe(200)
    expect(Receipt.deserialize(paid.headers.get('payment-receipt')!).method).toBe('backup')
  })

  it('behavior: Accept-Payment filters and orders the challenges', async () => {
    const t = setup()
    const res = await t.request('/report', { headers: { 'accept-payment': 'ledger/charge;q=0.2, backup/*' } })
    expect(Challenge.fromResponse(res).map((c) => c.method)).toEqual(['backup', 'ledger'])
    const only = await t.request('/report', { headers: { 'accept-payment': 'ledger/charge;q=0, */*;q=0.1' } })
    expect(Challenge.fromResponse(only).map((c) => c.method)).toEqual(['backup'])
  })

  it('error: a challenge issued for another route, price or realm is refused', async () => {
    const t = setup()
    const authorization = await pay(await t.request('/report'))
    const other = await t.request('/other', { headers: { authorization } })
    expect(other.status).toBe(402)
    expect((await problem(other)).type).toMatch(/invalid-challenge$/)

    const gold = await pay(await t.request('/dynamic?tier=gold'))
    expect((await t.request('/dynamic?tier=gold', { headers: { authorization: gold } })).status).toBe(200)
    const cheap = await pay(await t.request('/dynamic'))
    const cheapForGold = await t.request('/dynamic?tier=gold', { headers: { authorization: cheap } })
    expect(cheapForGold.status).toBe(402)
    expect((await problem(cheapForGold)).type).toMatch(/invalid-challenge$/)
  })

  it('error: a tampered request or a forged id is refused before the method runs', async () => {
    const t = setup()
    const challenge = Challenge.fromResponse(await t.request('/report'))[0]!
    const cheaper = { ...challenge, request: { ...challenge.request, amount: '1' } }
    const forged = Credential.serialize({ challenge: cheaper, payload: { voucher: await voucher(challenge.id, '1', 'acct_seller') } })
    const res = await t.request('/report', { headers: { authorization: forged } })
    expect(res.status).toBe(402)
    expect((await problem(res)).type).toMatch(/invalid-challenge$/)
    expect(t.primary.state.settled).toHaveLength(0)
  })

  it('error: an expired challenge is refused with payment-expired', async () => {
    const t = setup()
    const route = Server.routeScope('GET /report')
    const challenge = await Challenge.create({
      secret,
      realm: 'api.example.com',
      method: 'ledger',
      intent: 'charge',
      request: { amount: '25', currency: 'usd', recipient: 'acct_seller', description: 'Daily report' },
      expires: new Date(Date.now() - 1000).toISOString(),
      description: 'Daily report',
      opaque: route,
    })
    const authorization = Credential.serialize({ challenge, payload: { voucher: await voucher(challenge.id, '25', 'acct_seller') } })
    const res = await t.request('/report', { headers: { authorization } })
    expect(res.status).toBe(402)
    expect((await problem(res)).type).toMatch(/payment-expired$/)
  })

  it('error: malformed, duplicated and unsupported credentials get clear errors', async () => {
    const t = setup()
    const malformed = await t.request('/report', { headers: { authorization: 'Payment not-base64!!' } })
    expect(malformed.status).toBe(402)
    expect((await problem(malformed)).type).toMatch(/malformed-credential$/)
    expect(Challenge.fromResponse(malformed).length).toBeGreaterThan(0)

    const huge = await t.request('/report', { headers: { authorization: `Payment ${'A'.repeat(40_000)}` } })
    expect(huge.status).toBe(402)
    expect((await problem(huge)).type).toMatch(/malformed-credential$/)

    const authorization = await pay(await t.request('/report'))
    const twice = await t.request('/report', { headers: { authorization: `${authorization}, ${authorization}` } })
    expect(twice.status).toBe(400)

    const challenge = Challenge.fromResponse(await t.request('/report'))[0]!
    const bound = await Challenge.create({ ...challenge, method: 'lightning', secret })
    const unsupported = await t.request('/report', { headers: { authorization: Credential.serialize({ challenge: bound, payload: {} }) } })
    expect(unsupported.status).toBe(400)
    expect((await problem(unsupported)).type).toMatch(/method-unsupported$/)

    const badPayload = Credential.serialize({ challenge, payload: { voucher: 42 } })
    const invalid = await t.request('/report', { headers: { authorization: badPayload } })
    expect(invalid.status).toBe(402)
    expect((await problem(invalid)).type).toMatch(/malformed-credential$/)
    expect(t.runs()).toBe(0)
  })

  it('error: a wrong voucher fails verification with a fresh challenge and no receipt', async () => {
    const t = setup()
    const challenge = Challenge.fromResponse(await t.request('/report'))[0]!
    const authorization = Credential.serialize({ challenge, payload: { voucher: 'forged' } })
    const res = await t.request('/report', { headers: { authorization } })
    expect(res.status).toBe(402)
    expect(res.headers.get('payment-receipt')).toBeNull()
    expect((await problem(res)).type).toMatch(/verification-failed$/)
    expect(Challenge.fromResponse(res)).toHaveLength(2)
  })

  it('behavior: a transient failure answers 503 with Retry-After and the same credential succeeds later', async () => {
    const t = setup()
    const authorization = await pay(await t.request('/report'))
    t.primary.state.failNext = 1
    const down = await t.request('/report', { headers: { authorization } })
    expect(down.status).toBe(503)
    expect(down.headers.get('retry-after')).toBe('1')
    expect(down.headers.get('www-authenticate')).toBeNull()
    expect((await problem(down)).type).toMatch(/payment-unavailable$/)
    const again = await t.request('/report', { headers: { authorization } })
    expect(again.status).toBe(200)
    expect(t.primary.state.settled).toHaveLength(1)
  })

  it('behavior: racing identical credentials give exactly one success', async () => {
    const t = setup()
    const authorization = await pay(await t.request('/report'))
    t.primary.state.delayMs = 20
    const results = await Promise.all(Array.from({ length: 16 }, () => t.request('/report', { headers: { authorization } })))
    const statuses = results.map((r) => r.status)
    expect(statuses.filter((s) => s === 200)).toHaveLength(1)
    expect(statuses.every((s) => s === 200 || s === 402 || s === 409)).toBe(true)
    for (const r of results.filter((r) => r.status === 409)) expect(r.headers.get('retry-after')).toBeTruthy()
    expect(t.runs()).toBe(1)
    expect(t.primary.state.settled).toHaveLength(1)
  })

  it('behavior: a handler failure after settlement keeps the payment; the retry is served without a second charge', async () => {
    const t = setup()
    const authorization = await pay(await t.request('/flaky'))
    const failed = await t.request('/flaky', { headers: { authorization } })
    expect(failed.status).toBe(500)
    expect(failed.headers.get('payment-receipt')).toBeNull()
    const retried = await t.request('/flaky', { headers: { authorization } })
    expect(retried.status).toBe(200)
    expect(Receipt.deserialize(retried.headers.get('payment-receipt')!).method).toBe('ledger')
    expect(t.primary.state.settled).toHaveLength(1)
    expect((await t.request('/flaky', { headers: { authorization } })).status).toBe(402)
  })

  it('error: a handler answering 4xx after settlement gets no receipt, and the same credential is served on retry', async () => {
    const t = setup()
    const authorization = await pay(await t.request('/refusing'))
    const refused = await t.request('/refusing', { headers: { authorization } })
    expect(refused.status).toBe(404)
    // Core spec, "Receipt Status Semantics": never a Payment-Receipt on an error response.
    expect(refused.headers.get('payment-receipt')).toBeNull()
    const retried = await t.request('/refusing', { headers: { authorization } })
    expect(retried.status).toBe(200)
    expect(Receipt.deserialize(retried.headers.get('payment-receipt')!).method).toBe('ledger')
    expect(t.primary.state.settled).toHaveLength(1)
  })

  it('behavior: a paid response keeps the handler\'s no-store and is made private', async () => {
    const t = setup()
    const authorization = await pay(await t.request('/unstored'))
    const paid = await t.request('/unstored', { headers: { authorization } })
    expect(paid.status).toBe(200)
    expect(paid.headers.get('cache-control')).toBe('private, no-store')
  })

  it('error: a settled but undelivered payment is redelivered only to the credential that paid it', async () => {
    const t = setup()
    const response = await t.request('/flaky')
    const authorization = await pay(response)
    expect((await t.request('/flaky', { headers: { authorization } })).status).toBe(500)
    // Someone holding the challenge (not the payment) tries to collect the settled payment.
    const challenge = Challenge.fromResponse(response)[0]!
    const other = Credential.serialize({ challenge, payload: { voucher: 'not-the-paying-voucher' } })
    const stolen = await t.request('/flaky', { headers: { authorization: other } })
    expect(stolen.status).toBe(402)
    expect(stolen.headers.get('payment-receipt')).toBeNull()
    expect((await problem(stolen)).type).toMatch(/verification-failed$/)
    expect(t.runs()).toBe(1)
    const retried = await t.request('/flaky', { headers: { authorization } })
    expect(retried.status).toBe(200)
    expect(t.primary.state.settled).toHaveLength(1)
  })

  it('error: a body too large to bind answers 400 without challenges, and is not read to its end', async () => {
    const t = setup()
    const big = await t.request('/orders', { method: 'POST', body: 'x'.repeat(1024 * 1024 + 1) })
    expect(big.status).toBe(400)
    expect((await problem(big)).type).toMatch(/bad-request$/)
    // A chunked body declares no length: reading stops once it passes the limit.
    let pulled = 0
    const chunk = new Uint8Array(64 * 1024)
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled += chunk.byteLength
        if (pulled > 8 * 1024 * 1024) controller.close()
        else controller.enqueue(chunk)
      },
    })
    const chunked = await t.request('/orders', { method: 'POST', body, duplex: 'half' } as RequestInit)
    expect(chunked.status).toBe(400)
    expect(pulled).toBeLessThan(4 * 1024 * 1024)
    expect(t.runs()).toBe(0)
  })

  it('behavior: an Idempotency-Key retry replays the stored response without running the handler again', async () => {
    const t = setup()
    const body = JSON.stringify({ item: 'book' })
    const init = { method: 'POST', body, headers: { 'content-type': 'application/json' } }
    const challenge = await t.request('/orders', init)
    expect(Challenge.fromResponse(challenge)[0]!.digest).toMatch(/^sha-256=:/)
    const authorization = await pay(challenge)
    const headers = { ...init.headers, authorization, 'idempotency-key': 'order-1' }
    const first = await t.request('/orders', { ...init, headers })
    expect(first.status).toBe(201)
    const second = await t.request('/orders', { ...init, headers })
    expect(second.status).toBe(201)
    expect(await second.json()).toEqual(await first.json())
    expect(second.headers.get('payment-receipt')).toBe(first.headers.get('payment-receipt'))
    expect(t.runs()).toBe(1)
  })

  it('behavior: with an Idempotency-Key, a paid response too large to store is streamed, not held in memory whole', async () => {
    const t = setup()
    const authorization = await pay(await t.request('/download'))
    const res = await t.request('/download', { headers: { authorization, 'idempotency-key': 'big-1' } })
    expect(res.status).toBe(200)
    expect(res.headers.get('payment-receipt')).toBeTruthy()
    // Only what decides "too large to store" was read before the response went out.
    expect(t.pulled()).toBeLessThan(2 * 1024 * 1024)
    expect((await res.arrayBuffer()).byteLength).toBe(8 * 1024 * 1024)
  })

  it('error: a body that differs from the challenge digest is refused', async () => {
    const t = setup()
    const init = { method: 'POST', body: '{"item":"book"}', headers: { 'content-type': 'application/json' } }
    const authorization = await pay(await t.request('/orders', init))
    const res = await t.request('/orders', { ...init, body: '{"item":"car"}', headers: { ...init.headers, authorization } })
    expect(res.status).toBe(402)
    expect((await problem(res)).type).toMatch(/verification-failed$/)
    expect(t.runs()).toBe(0)
  })

  it('behavior: credentials bound with a previous secret are accepted after rotation', async () => {
    const old = setup()
    const authorization = await pay(await old.request('/report'))
    const rotated = setup({ secret: 'rotated-secret-0123456789abcdefghijkl', previousSecrets: [secret] })
    expect((await rotated.request('/report', { headers: { authorization } })).status).toBe(200)
    const fresh = Challenge.fromResponse(await rotated.request('/report'))[0]!
    expect(await Challenge.verifyBinding(Challenge.toEchoed(fresh), ['rotated-secret-0123456789abcdefghijkl'])).toBe(true)
  })

  it('error: a price that cannot be expressed answers 500 problem details naming nothing internal', async () => {
    const t = setup()
    const res = await t.request('/priceless')
    expect(res.status).toBe(500)
    const body = await problem(res)
    expect(body.type).toMatch(/configuration-error$/)
    expect(JSON.stringify(body)).not.toMatch(/free/)
  })

  it('error: plain HTTP is refused except on loopback', async () => {
    const t = setup()
    const insecure = await t.app.request('http://api.example.com/report', {}, env)
    expect(insecure.status).toBe(400)
    expect(insecure.headers.get('www-authenticate')).toBeNull()
    expect((await t.app.request('http://127.0.0.1:8787/report', {}, env)).status).toBe(402)
  })

  it('error: when the delivery cannot be recorded, the paid content is not served and the credential is served on retry', async () => {
    const memory = ReplayStore.memory()
    let failDelivery = true
    const store: ReplayStore.ReplayStore = { ...memory, deliver: async (id, attempt) => (failDelivery ? false : memory.deliver(id, attempt)) }
    const priced = payment({ realm: 'api.example.com', secret, methods: [ledger().method], store: () => store })
    const app = new Hono()
    app.get('/report', priced.charge({ amount: '0.25' }), (c) => c.json({ report: 'secret content' }))
    const authorization = await pay(await app.request(`${base}/report`))
    const lost = await app.request(`${base}/report`, { headers: { authorization } })
    expect(lost.status).toBeGreaterThanOrEqual(400)
    expect(lost.headers.get('payment-receipt')).toBeNull()
    expect(await lost.text()).not.toContain('secret content')
    failDelivery = false
    const served = await app.request(`${base}/report`, { headers: { authorization } })
    expect(served.status).toBe(200)
    expect(served.headers.get('payment-receipt')).toBeTruthy()
    expect((await app.request(`${base}/report`, { headers: { authorization } })).status).toBe(402)
  })

  it('behavior: an event sink that throws does not keep a settled payment from being served', async () => {
    const method = ledger().method
    const priced = payment<{ Bindings: Cloudflare.Env }>({
      realm: 'api.example.com',
      secret,
      methods: [method],
      store: (c) => replayStore(c.env.REPLAY_GUARD),
      onEvent: () => {
        throw new Error('event sink is down')
      },
    })
    const app = new Hono<{ Bindings: Cloudflare.Env }>()
    app.get('/report', priced.charge({ amount: '0.25' }), (c) => c.json({ ok: true }))
    const offer = await app.request(`${base}/report`, {}, env)
    expect(offer.status).toBe(402)
    const authorization = await pay(offer)
    const paid = await app.request(`${base}/report`, { headers: { authorization } }, env)
    expect(paid.status).toBe(200)
    expect(paid.headers.get('payment-receipt')).toBeTruthy()
  })

  it('error: a charge offering no method fails at start-up (a 402 must carry a challenge)', async () => {
    const pay = payment({ realm: 'r', secret, methods: [ledger().method], store: () => undefined as never })
    expect(() => pay.charge({ amount: '1' }, { methods: [] })).toThrow(/at least one/)
    await expect(Server.chargeOffers(pay.server, { amount: '1' }, [])).rejects.toThrow(/at least one/)
  })

  it('error: a short secret or an empty method list fails at start-up naming the setting', () => {
    expect(() => setup({ secret: 'short' })).toThrow(/secret must be at least 32 bytes/)
    expect(() => setup({ previousSecrets: ['tiny'] })).toThrow(/previousSecrets\[0\]/)
    expect(() => payment({ realm: 'r', secret, methods: [ledger().method], leaseMs: Number.NaN, store: () => undefined as never })).toThrow(/leaseMs/)
    expect(() => payment({ realm: 'r', secret, methods: [ledger().method], maxBodyBytes: -1, store: () => undefined as never })).toThrow(/maxBodyBytes/)
    expect(() => payment({ realm: 'r', secret, methods: [], store: () => undefined as never })).toThrow(/methods/)
    const pay = payment({ realm: 'r', secret, methods: [ledger().method], store: () => undefined as never })
    expect(() => pay.charge({ amount: '1,5' })).toThrow(/decimal string/)
    expect(() => pay.charge({ amount: '1', description: 'line\r\nbreak' })).toThrow(/description/)
    expect(() => pay.charge({ amount: '1', description: 'caf\u00e9 \u2615' })).toThrow(/Latin-1/)
    expect(() => pay.charge({ amount: '1' }, { methods: ['lightning'] })).toThrow(/lightning/)
  })
})
