import { describe, expect, it } from 'vitest'
import gatewayDoc from '../../docs/gateway.md?raw'
import { createGateway } from '../../src/gateway/gateway.js'
import { methodFactories } from '../../src/gateway/methods.js'
import { clientKey } from '../../src/gateway/rate-limit.js'
import { ledger } from '../support/ledger-method.js'
import { pay, pricing, problem, setup, testEnv } from './support.js'

// The Durable Object counter: wrangler.toml binds the rate limiting bindings by default, so remove them.
const counterOnly = { CHALLENGE_RATE_LIMITER: undefined, VERIFY_RATE_LIMITER: undefined }

const ip = () => `198.51.100.${Math.floor(Math.random() * 250)}-${crypto.randomUUID()}`

describe('gateway: rate limits', () => {
  it('behavior: challenge issuance is limited per client IP by the Durable Object counter, with 429 and Retry-After', async () => {
    const t = setup({ env: { RATE_LIMIT_CHALLENGES: '3', ...counterOnly } })
    const a = ip()
    for (let i = 0; i < 3; i++) expect((await t.request('/paid', { headers: { 'cf-connecting-ip': a } })).status).toBe(402)
    const limited = await t.request('/paid', { headers: { 'cf-connecting-ip': a } })
    expect(limited.status).toBe(429)
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0)
    expect(limited.headers.get('www-authenticate')).toBeNull()
    expect((await problem(limited)).type).toMatch(/rate-limited$/)
    expect((await t.request('/paid', { headers: { 'cf-connecting-ip': ip() } })).status).toBe(402)
    // Unpriced requests are not counted.
    expect((await t.request('/other', { headers: { 'cf-connecting-ip': a } })).status).toBe(200)
    expect(t.logs.map((line) => JSON.parse(line).event)).toContain('payment.rate-limited')
  })

  it('behavior: IPv6 clients are limited by their /64, so one host cannot rotate addresses past the limit', async () => {
    const t = setup({ env: { RATE_LIMIT_CHALLENGES: '3', ...counterOnly } })
    const hex = () => Math.floor(Math.random() * 0xffff).toString(16)
    const net = `2001:db8:${hex()}:${hex()}`
    for (const host of ['::1', ':0:0:0:2', ':abcd:ef01:2345:6789']) {
      expect((await t.request('/paid', { headers: { 'cf-connecting-ip': `${net}${host}` } })).status).toBe(402)
    }
    expect((await t.request('/paid', { headers: { 'cf-connecting-ip': `${net.toUpperCase()}:ffff::9` } })).status).toBe(429)
    expect((await t.request('/paid', { headers: { 'cf-connecting-ip': `2001:db8:${hex()}:${hex()}::1` } })).status).toBe(402)
  })

  it('behavior: the rate limit key is the IPv4 address, or the IPv6 /64 in one spelling', () => {
    expect(clientKey('203.0.113.7')).toBe('203.0.113.7')
    expect(clientKey(null)).toBe('unknown')
    expect(clientKey('2001:0db8:0001:0002:aaaa:bbbb:cccc:dddd')).toBe('2001:db8:1:2::/64')
    expect(clientKey('2001:DB8:1:2::1')).toBe('2001:db8:1:2::/64')
    expect(clientKey('2001:db8::1')).toBe('2001:db8:0:0::/64')
    expect(clientKey('::1')).toBe('0:0:0:0::/64')
    expect(clientKey('::ffff:198.51.100.4')).toBe('198.51.100.4')
    expect(clientKey('[2001:db8:1:2::5]')).toBe('2001:db8:1:2::/64')
  })

  it('behavior: verification attempts have their own limit', async () => {
    const t = setup({ env: { RATE_LIMIT_VERIFICATIONS: '1', ...counterOnly } })
    const a = ip()
    const authorization = await pay(await t.request('/paid', { headers: { 'cf-connecting-ip': a } }))
    expect((await t.request('/paid', { headers: { 'cf-connecting-ip': a, authorization: 'Payment bm9wZQ' } })).status).toBe(402)
    const limited = await t.request('/paid', { headers: { 'cf-connecting-ip': a, authorization } })
    expect(limited.status).toBe(429)
    expect((await problem(limited)).detail).toMatch(/payment attempts/)
    expect(t.primary.state.settled).toHaveLength(0)
    expect((await t.request('/paid', { headers: { 'cf-connecting-ip': a } })).status).toBe(402)
  })

  it('behavior: with the default wrangler.toml limits (rate limiting bindings) a 402 calls no Durable Object', async () => {
    const calls: string[] = []
    // Every Durable Object binding records a call and fails it.
    const spy = new Proxy({}, {
      get: (_, name) => (name === 'then' ? undefined : (..._args: unknown[]) => {
        calls.push(String(name))
        throw new Error('storage touched')
      }),
    }) as never
    const t = setup({ env: { RATE_LIMIT_CHALLENGES: '120', RATE_LIMIT_VERIFICATIONS: '30', RATE_COUNTER: spy, REPLAY_GUARD: spy, IDEMPOTENCY_CACHE: spy } })
    const a = ip()
    expect((await t.request('/paid', { headers: { 'cf-connecting-ip': a } })).status).toBe(402)
    expect((await t.request('/paid', { headers: { 'cf-connecting-ip': a, authorization: 'Payment bm9wZQ' } })).status).toBe(402)
    expect(calls).toEqual([])
  })

  it('behavior: a Cloudflare rate limiting binding is used where configured', async () => {
    const t = setup({ env: { RATE_LIMIT_CHALLENGES: '100', CHALLENGE_RATE_LIMITER: testEnv.TEST_RATE_LIMITER } })
    const a = ip()
    const statuses = []
    for (let i = 0; i < 3; i++) statuses.push((await t.request('/paid', { headers: { 'cf-connecting-ip': a } })).status)
    expect(statuses).toEqual([402, 402, 429])
  })
})

describe('gateway: events', () => {
  it('behavior: every payment event is a JSON log line without credentials or secrets, and a data point per route and method', async () => {
    const points: AnalyticsEngineDataPoint[] = []
    const analytics = {
      writeDataPoint: (point: AnalyticsEngineDataPoint) => {
        points.push(point)
        testEnv.TEST_ANALYTICS.writeDataPoint(point)
      },
    }
    const t = setup({ env: { ANALYTICS: analytics as AnalyticsEngineDataset } })
    const authorization = await pay(await t.request('/v1/reports/1'))
    await t.request('/v1/reports/1', { headers: { authorization: 'Payment bm90IGEgY3JlZGVudGlhbA' } })
    const forged = await t.request('/v1/reports/1', { headers: { authorization: authorization.replace(/.{8}$/, 'AAAAAAAA') } })
    expect(forged.status).toBe(402)
    expect((await t.request('/v1/reports/1', { headers: { authorization } })).status).toBe(200)
    await t.request('/v1/reports/1', { headers: { authorization } })
    const failing = await pay(await t.request('/fail-once/9'))
    await t.request('/fail-once/9', { headers: { authorization: failing } })
    await t.request('/fail-once/9', { headers: { authorization: failing } })

    const events = t.logs.map((line) => JSON.parse(line) as Record<string, string>)
    const types = new Set(events.map((e) => e.event))
    expect(events.filter((e) => e.event === 'payment.failed').map((e) => e.problem)).toEqual(['malformed-credential', 'malformed-credential'])
    for (const type of ['challenge', 'paid', 'failed', 'replay-refused', 'origin-failed', 'redelivered']) expect(types).toContain(`payment.${type}`)
    const paid = events.find((e) => e.event === 'payment.paid')!
    expect(paid).toMatchObject({ route: 'routes[1] (GET /v1/reports/:id)', request: 'GET /v1/reports/1', method: 'ledger' })
    expect(paid.reference).toMatch(/^ledger_/)
    const all = t.logs.join('\n')
    for (const secret of [authorization.slice(8), failing.slice(8), testEnv.MPP_SECRET_KEY!, authorization.slice(-40)]) expect(all).not.toContain(secret)

    expect(points.length).toBe(events.length)
    expect(points.find((p) => p.blobs?.[0] === 'paid')).toEqual({
      indexes: ['routes[1] (GET /v1/reports/:id)'],
      blobs: ['paid', 'routes[1] (GET /v1/reports/:id)', 'GET', 'ledger', ''],
      doubles: [1, 0],
    })
  })
})

describe('gateway: start-up checks', () => {
  const build = (env: Record<string, unknown>, table: unknown = pricing) =>
    createGateway({ pricing: table, env: { ...testEnv, ...env }, factories: { ledger: () => ledger().method, backup: () => ledger({ name: 'backup' }).method } })

  it('error: missing or invalid settings fail at start-up naming the setting', () => {
    expect(() => build({ MPP_SECRET_KEY: undefined })).toThrow(/MPP_SECRET_KEY is missing/)
    expect(() => build({ MPP_SECRET_KEY: 'short' })).toThrow(/MPP_SECRET_KEY must be at least 32 bytes/)
    expect(() => build({ MPP_PREVIOUS_SECRETS: '["ok-ok-ok-ok-ok-ok-ok-ok-ok-ok-ok-ok", "tiny"]' })).toThrow(/MPP_PREVIOUS_SECRETS\[1\]/)
    expect(() => build({ MPP_REALM: '' })).toThrow(/MPP_REALM is missing/)
    expect(() => build({ ORIGIN: undefined, ORIGIN_URL: undefined })).toThrow(/ORIGIN_URL is missing/)
    expect(() => build({ ORIGIN: undefined, ORIGIN_URL: 'ftp://x' })).toThrow(/ORIGIN_URL must be an http\(s\) URL/)
    expect(() => build({ ORIGIN_TIMEOUT_MS: '1.5' })).toThrow(/ORIGIN_TIMEOUT_MS must be a whole number/)
    expect(() => build({ REPLAY_GUARD: undefined })).toThrow(/REPLAY_GUARD/)
    // The default limits are the rate limiting bindings: no counter needed; without a binding, the counter is.
    expect(() => build({ RATE_COUNTER: undefined })).not.toThrow()
    expect(() => build({ RATE_COUNTER: undefined, CHALLENGE_RATE_LIMITER: undefined })).toThrow(/RATE_COUNTER/)
    expect(() => build({ RATE_COUNTER: undefined, RATE_LIMIT_CHALLENGES: '0', RATE_LIMIT_VERIFICATIONS: '0' })).not.toThrow()
  })

  it('error: pricing table mistakes fail at start-up naming the entry', () => {
    const routes = (route: Record<string, unknown>) => ({ ...pricing, routes: [pricing.routes[0], route] })
    expect(() => build({}, routes({ pattern: '/x', method: 'GET', price: '0,10' }))).toThrow(/routes\[1\] \(GET \/x\)\.price: must be a decimal/)
    expect(() => build({}, routes({ pattern: 'x', method: 'GET', price: '1' }))).toThrow(/routes\[1\] \(GET x\)\.pattern: must start with "\/"/)
    expect(() => build({}, routes({ pattern: '/x/(', method: 'GET', price: '1' }))).toThrow(/not a valid URLPattern/)
    expect(() => build({}, routes({ pattern: '/x', method: 'get', price: '1' }))).toThrow(/routes\[1\] \(get \/x\)\.method/)
    expect(() => build({}, routes({ pattern: '/x', method: 'GET', price: '1', intent: 'session' }))).toThrow(/routes\[1\] \(GET \/x\): a route with the "session" intent needs "session"/)
    expect(() => build({}, routes({ pattern: '/x', method: 'GET', price: '1', intent: 'subscription' }))).toThrow(/intent: must be "charge", "session" or a list of them/)
    expect(() => build({}, routes({ pattern: '/x', method: 'GET' }))).toThrow(/routes\[1\] \(GET \/x\): a priced route needs "price"/)
    expect(() => build({}, routes({ pattern: '/x', method: 'GET', price: '1', colour: 'red' }))).toThrow(/routes\[1\] \(GET \/x\)\.colour/)
    expect(() => build({}, routes({ pattern: '/x', method: 'GET', price: '1', accept: [{ method: 'lightning' }] }))).toThrow(
      /routes\[1\] \(GET \/x\): accepts "lightning", which "methods" does not configure/,
    )
    expect(() => build({}, routes({ pattern: '/v1/status', method: 'GET', price: '1' }))).toThrow(/routes\[1\] \(GET \/v1\/status\): repeats routes\[0\]/)
    expect(() => build({}, { ...pricing, methods: { ...pricing.methods, bitcoin: {} } })).toThrow(/methods\.bitcoin: unknown payment method/)
    expect(() => build({}, { ...pricing, service: { version: '1' } })).toThrow(/service\.title/)
  })

  it('error: the stripe configuration is checked, and its key must be set as a secret', () => {
    const table = { ...pricing, methods: { stripe: { networkId: 'profile_1' } }, routes: [{ pattern: '/x', method: 'GET', price: '1' }] }
    const stripeOnly = (env: Record<string, unknown>, t: unknown = table) =>
      createGateway({ pricing: t, env: { ...testEnv, ...env }, factories: methodFactories })
    expect(() => stripeOnly({ STRIPE_SECRET_KEY: undefined })).toThrow(/methods\.stripe: STRIPE_SECRET_KEY is missing/)
    expect(() => stripeOnly({}, { ...table, methods: { stripe: { networkId: 'profile_1', currencyy: 'usd' } } })).toThrow(/methods\.stripe: currencyy/)
    // A price the method cannot charge fails at start-up too, naming the offer.
    expect(() => stripeOnly({}, { ...table, routes: [{ pattern: '/x', method: 'GET', price: '0.001' }] })).toThrow(/routes\[0\] \(GET \/x\) accept\[0\] \(stripe\)/)
    expect(() => stripeOnly({})).not.toThrow()
  })

  it('invariant 7: nobody can claim someone else\'s transfer — pricing.json offering push with a server memo or optional attribution fails at start-up', () => {
    const tempoOnly = (tempo: Record<string, unknown>) =>
      createGateway({
        pricing: { ...pricing, methods: { tempo: { chainId: 42431, recipient: '0x742d35cc6634c0532925a3b844bc9e7595f8fe00', ...tempo } }, routes: [{ pattern: '/x', method: 'GET', price: '1' }] },
        env: testEnv,
        factories: methodFactories,
      })
    expect(() => tempoOnly({ memo: `0x${'0a'.repeat(32)}`, modes: ['push'] })).toThrow(/methods\.tempo: tempo: push cannot be offered with memo/)
    expect(() => tempoOnly({ attribution: 'optional', modes: ['pull', 'push'] })).toThrow(/methods\.tempo: tempo: push cannot be offered with attribution "optional"/)
    expect(() => tempoOnly({ attribution: 'optional' })).not.toThrow()
  })

  it('behavior: the pricing table example in docs/gateway.md is valid with the deployed methods', async () => {
    const section = gatewayDoc.slice(gatewayDoc.indexOf('## Pricing table'))
    const example = JSON.parse(section.slice(section.indexOf('```json') + 7, section.indexOf('```', section.indexOf('```json') + 7)))
    const gateway = createGateway({ pricing: example, env: testEnv, factories: methodFactories })
    expect(gateway.routes.map((r) => r.label)).toEqual(['routes[0] (GET /v1/status)', 'routes[1] (GET /v1/reports/:id)', 'routes[2] (POST,PUT /v1/exports)'])
    const res = await gateway.fetch(new Request('https://api.example.com/v1/reports/1'))
    expect(res.status).toBe(402)
  })
})
