import { describe, expect, it } from 'vitest'
import * as Challenge from '../../src/core/Challenge.js'
import * as Receipt from '../../src/core/Receipt.js'
import { pay, problem, setup } from './support.js'

type Echo = { method: string; path: string; search: string; headers: Record<string, string>; body: string; hit: number }

describe('gateway: paid routes', () => {
  it('behavior: an unpaid request gets one challenge per offer and never reaches the origin', async () => {
    const t = setup()
    const res = await t.request('/v1/reports/7')
    expect(res.status).toBe(402)
    expect(res.headers.get('cache-control')).toBe('no-store')
    expect(res.headers.get('payment-receipt')).toBeNull()
    const challenges = Challenge.fromResponse(res)
    expect(challenges.map((c) => [c.method, (c.request as { amount: string }).amount])).toEqual([
      ['ledger', '25'],
      ['backup', '30'],
    ])
    expect(challenges[0]).toMatchObject({ realm: 'api.example.com', intent: 'charge', description: 'One report' })
    expect((await problem(res)).type).toBe('https://paymentauth.org/problems/payment-required')
    expect(await t.hits()).toBe(0)
  })

  it('behavior: a paid request reaches the origin once, without payment material, and returns its answer with a receipt', async () => {
    const t = setup()
    const authorization = await pay(await t.request('/v1/reports/7?format=pdf'))
    const res = await t.request('/v1/reports/7?format=pdf', {
      headers: { authorization, 'accept-payment': 'ledger/charge', 'x-payment': 'x402-material', 'x-custom': 'kept' },
    })
    expect(res.status).toBe(200)
    const receipt = Receipt.deserialize(res.headers.get('payment-receipt')!)
    expect(receipt).toMatchObject({ status: 'success', method: 'ledger' })
    expect(receipt.reference).toMatch(/^ledger_/)
    // Core spec, "Caching": private, with the origin's other directives kept and `public` dropped.
    expect(res.headers.get('cache-control')).toBe('private, max-age=600')
    expect(res.headers.get('x-origin')).toBe('yes')
    const echo = (await res.json()) as Echo
    expect(echo).toMatchObject({ method: 'GET', path: '/v1/reports/7', search: '?format=pdf', hit: 1 })
    expect(echo.headers['x-custom']).toBe('kept')
    for (const name of ['authorization', 'accept-payment', 'x-payment', 'payment-receipt']) expect(echo.headers[name]).toBeUndefined()
    expect(t.primary.state.settled).toHaveLength(1)

    const replay = await t.request('/v1/reports/7?format=pdf', { headers: { authorization } })
    expect(replay.status).toBe(402)
    expect((await problem(replay)).type).toMatch(/invalid-challenge$/)
    expect(await t.hits()).toBe(1)
  })

  it('behavior: other Authorization schemes are kept for the origin while the Payment credential is removed', async () => {
    const t = setup()
    const payment = await pay(await t.request('/paid'))
    const res = await t.request('/paid', { headers: { authorization: `Bearer origin-token, ${payment}` } })
    expect(res.status).toBe(200)
    expect(((await res.json()) as Echo).headers.authorization).toBe('Bearer origin-token')
  })

  it('behavior: the payer picks any offer; a POST body is bound to its challenge and forwarded', async () => {
    const t = setup()
    const second = await pay(await t.request('/v1/reports/1'), 1)
    const res = await t.request('/v1/reports/1', { headers: { authorization: second } })
    expect(Receipt.deserialize(res.headers.get('payment-receipt')!).method).toBe('backup')

    const init = { method: 'POST', body: '{"q":1}', headers: { 'content-type': 'application/json' } }
    const challenge = await t.request('/paid', init)
    expect(Challenge.fromResponse(challenge)[0]!.digest).toMatch(/^sha-256=:/)
    const authorization = await pay(challenge)
    const tampered = await t.request('/paid', { ...init, body: '{"q":2}', headers: { ...init.headers, authorization } })
    expect(tampered.status).toBe(402)
    const paid = await t.request('/paid', { ...init, headers: { ...init.headers, authorization } })
    expect(paid.status).toBe(200)
    expect(((await paid.json()) as Echo).body).toBe('{"q":1}')
  })

  it('behavior: a credential pays for one path only, even under the same pattern', async () => {
    const t = setup()
    const authorization = await pay(await t.request('/v1/reports/1'))
    const other = await t.request('/v1/reports/2', { headers: { authorization } })
    expect(other.status).toBe(402)
    expect((await problem(other)).type).toMatch(/invalid-challenge$/)
    expect(await t.hits()).toBe(0)
  })

  it('behavior: HEAD is priced like GET; a method a priced path does not list answers 405; the gateway answers OPTIONS', async () => {
    const t = setup()
    expect((await t.request('/v1/reports/3', { method: 'HEAD' })).status).toBe(402)
    const del = await t.request('/v1/reports/3', { method: 'DELETE' })
    expect(del.status).toBe(405)
    expect(del.headers.get('allow')).toBe('GET, HEAD, OPTIONS')
    const options = await t.request('/v1/reports/3', { method: 'OPTIONS' })
    expect(options.status).toBe(204)
    expect(options.headers.get('allow')).toBe('GET, HEAD, OPTIONS')
    expect((await t.request('/files/a/b.txt', { method: 'PUT', body: 'x' })).status).toBe(402)
    // A route of every method prices all but OPTIONS, which a browser's preflight sends without paying.
    expect((await t.request('/files/a/b.txt', { method: 'OPTIONS' })).status).toBe(204)
    expect(await t.hits()).toBe(0)
  })

  it('behavior: an Idempotency-Key retry replays the paid answer without calling the origin again', async () => {
    const t = setup()
    const authorization = await pay(await t.request('/paid'))
    const headers = { authorization, 'idempotency-key': 'k-1' }
    const first = await t.request('/paid', { headers })
    const second = await t.request('/paid', { headers })
    expect(second.status).toBe(200)
    expect(await second.json()).toEqual(await first.json())
    expect(second.headers.get('payment-receipt')).toBe(first.headers.get('payment-receipt'))
    expect(await t.hits()).toBe(1)
  })

  it('behavior: with an Idempotency-Key, an origin answer too large to store is streamed, not held in memory whole', async () => {
    let pulled = 0
    const chunk = new Uint8Array(64 * 1024).fill(120)
    const size = 8 * 1024 * 1024
    const origin = {
      fetch: async () =>
        new Response(
          new ReadableStream<Uint8Array>({
            pull(controller) {
              if (pulled >= size) return controller.close()
              pulled += chunk.byteLength
              controller.enqueue(chunk)
            },
          }),
        ),
    }
    const t = setup({ env: { ORIGIN: origin as unknown as Fetcher } })
    const authorization = await pay(await t.request('/files/big.bin'))
    const res = await t.request('/files/big.bin', { headers: { authorization, 'idempotency-key': 'big-1' } })
    expect(res.status).toBe(200)
    expect(res.headers.get('payment-receipt')).toBeTruthy()
    expect(pulled).toBeLessThan(2 * 1024 * 1024)
    expect((await res.arrayBuffer()).byteLength).toBe(size)
  })
})

describe('gateway: unpriced and free routes', () => {
  it('behavior: an unpriced request passes through untouched (method, path, query, headers, body, answer)', async () => {
    const t = setup()
    const res = await t.request('/elsewhere/x?a=1&b=%20', {
      method: 'POST',
      body: 'plain body',
      headers: { 'content-type': 'text/plain', authorization: 'Bearer abc', 'x-custom': 'v' },
    })
    expect(res.status).toBe(200)
    expect(res.headers.get('cache-control')).toBe('public, max-age=600')
    expect(res.headers.get('payment-receipt')).toBe('forged-by-origin')
    const echo = (await res.json()) as Echo
    expect(echo).toMatchObject({ method: 'POST', path: '/elsewhere/x', search: '?a=1&b=%20', body: 'plain body' })
    expect(echo.headers).toMatchObject({ authorization: 'Bearer abc', 'x-custom': 'v', 'content-type': 'text/plain' })
  })

  it('behavior: a free entry carves a path out of a priced pattern', async () => {
    const t = setup({
      pricing: {
        service: { title: 'T', version: '1' },
        methods: { ledger: {} },
        routes: [
          { pattern: '/v1/status', method: 'GET', free: true },
          { pattern: '/v1/*', method: 'GET', price: '1' },
        ],
      },
    })
    expect((await t.request('/v1/status')).status).toBe(200)
    expect((await t.request('/v1/status/')).status).toBe(200)
    expect((await t.request('/v1/other')).status).toBe(402)
  })

  it('behavior: /__mpp/health answers without the origin; other /__mpp/ paths are not forwarded', async () => {
    const t = setup()
    const res = await t.request('/__mpp/health')
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ status: 'ok', service: 'Test API', routes: 9, methods: ['ledger', 'backup'] })
    expect((await t.request('/__mpp/debug')).status).toBe(400)
    expect(await t.hits()).toBe(0)
  })
})

describe('gateway: origin failures after payment', () => {
  it('behavior: an origin 5xx after settlement answers 502 with the settlement reference, and the same credential is served later without a second charge', async () => {
    const t = setup()
    const offered = await t.request('/fail-once/1')
    const challengeId = Challenge.fromResponse(offered)[0]!.id
    const authorization = await pay(offered)
    const failed = await t.request('/fail-once/1', { headers: { authorization } })
    expect(failed.status).toBe(502)
    expect(failed.headers.get('payment-receipt')).toBeNull()
    expect(failed.headers.get('cache-control')).toBe('no-store')
    const body = await problem(failed)
    expect(body.type).toBe('https://paymentauth.org/problems/origin-failed')
    expect(body.reference).toMatch(/^ledger_/)
    expect(body.challengeId).toBe(challengeId)
    expect(body.detail).toMatch(/same credential/)
    expect(t.logs.some((line) => JSON.parse(line).event === 'payment.origin-failed' && JSON.parse(line).reference === body.reference)).toBe(true)

    const retried = await t.request('/fail-once/1', { headers: { authorization } })
    expect(retried.status).toBe(200)
    expect(Receipt.deserialize(retried.headers.get('payment-receipt')!).reference).toBe(body.reference)
    expect(t.primary.state.settled).toHaveLength(1)
    expect(await t.hits()).toBe(2)
    expect((await t.request('/fail-once/1', { headers: { authorization } })).status).toBe(402)
    expect(await t.hits()).toBe(2)
  })

  it('behavior: an origin that stays down keeps the payment usable on every retry, charged once', async () => {
    const t = setup()
    const authorization = await pay(await t.request('/down'))
    for (let i = 0; i < 3; i++) expect((await t.request('/down', { headers: { authorization } })).status).toBe(502)
    expect(t.primary.state.settled).toHaveLength(1)
    expect(await t.hits()).toBe(3)
  })

  it('behavior: an origin error answer (4xx) passes through without a receipt and leaves the payment usable', async () => {
    const t = setup()
    const authorization = await pay(await t.request('/missing'))
    const first = await t.request('/missing', { headers: { authorization } })
    expect(first.status).toBe(404)
    expect(first.headers.get('payment-receipt')).toBeNull()
    expect(first.headers.get('cache-control')).toBe('no-store')
    expect((await t.request('/missing', { headers: { authorization } })).status).toBe(404)
    expect(t.primary.state.settled).toHaveLength(1)
  })

  it('behavior: an origin that does not answer in time gives 502 and the payment stays usable', async () => {
    const t = setup({ env: { ORIGIN_TIMEOUT_MS: '150' } })
    const authorization = await pay(await t.request('/hang'))
    const res = await t.request('/hang', { headers: { authorization } })
    expect(res.status).toBe(502)
    expect((await problem(res)).detail).toMatch(/did not answer in time/)
  })

  it('error: an unreachable origin URL answers 502 for unpriced requests', async () => {
    const t = setup({ env: { ORIGIN: undefined, ORIGIN_URL: 'http://127.0.0.1:9/base' } })
    const res = await t.request('/anything')
    expect(res.status).toBe(502)
    expect((await problem(res)).type).toMatch(/origin-failed$/)
  })
})
