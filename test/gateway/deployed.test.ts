/**
 * The gateway exactly as deployed: src/gateway/index.ts with the repository's wrangler.toml and
 * pricing.json (Tempo on the local chain, Stripe on the local Stripe API), the origin behind ORIGIN.
 */
import { SELF } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { validate } from 'mppx/discovery'
import { describe, expect, it } from 'vitest'
import pricing from '../../pricing.json'
import * as Challenge from '../../src/core/Challenge.js'
import * as Credential from '../../src/core/Credential.js'
import * as Receipt from '../../src/core/Receipt.js'
import { openApiPath } from '../../src/gateway/openapi.js'
import { spt } from '../../src/testing/stripe-fixtures.js'
import { discoveryViolations } from './discovery-rules.js'

const base = 'https://api.example.com'
const request = (path: string, init?: RequestInit) => SELF.fetch(`${base}${path}`, init)

describe('deployed gateway (repository configuration)', () => {
  it('behavior: health names the configured methods', async () => {
    const res = await request('/__mpp/health')
    expect(await res.json()).toEqual({ status: 'ok', service: 'Example Reports API', routes: 3, methods: ['tempo', 'stripe'] })
  })

  it('behavior: one 402 offers Tempo and Stripe, each in its own units; a free route passes through', async () => {
    const res = await request('/v1/exports', { method: 'POST', body: '{"format":"csv"}', headers: { 'content-type': 'application/json' } })
    expect(res.status).toBe(402)
    const [tempo, stripe] = Challenge.fromResponse(res)
    expect(tempo).toMatchObject({ method: 'tempo', intent: 'charge', request: { amount: '1000000', currency: '0x20c0000000000000000000000000000000000000', methodDetails: { chainId: 42431 } } })
    expect(stripe).toMatchObject({ method: 'stripe', intent: 'charge', request: { amount: '100', currency: 'usd', methodDetails: { networkId: 'profile_example' } } })
    expect(Date.parse(tempo!.expires!) - Date.now()).toBeGreaterThan(500_000)
    const free = await request('/v1/status')
    expect(free.status).toBe(200)
    expect(((await free.json()) as { path: string }).path).toBe('/v1/status')
  })

  it('behavior: a Stripe payment reaches the origin with the body, without the credential, and returns a receipt', async () => {
    const init = { method: 'POST', body: '{"format":"csv"}', headers: { 'content-type': 'application/json' } }
    const challenge = Challenge.fromResponse(await request('/v1/exports', init)).find((c) => c.method === 'stripe')!
    const authorization = Credential.serialize({ challenge, payload: { spt: spt('ok') } })
    const res = await request('/v1/exports', { ...init, headers: { ...init.headers, authorization } })
    expect(res.status).toBe(200)
    const receipt = Receipt.deserialize(res.headers.get('payment-receipt')!)
    expect(receipt).toMatchObject({ method: 'stripe', status: 'success', challengeId: challenge.id })
    expect(receipt.reference).toMatch(/^pi_/)
    expect(res.headers.get('cache-control')).toBe('private, max-age=600')
    const echo = (await res.json()) as { body: string; headers: Record<string, string> }
    expect(echo.body).toBe('{"format":"csv"}')
    expect(echo.headers.authorization).toBeUndefined()
    expect((await request('/v1/exports', { ...init, headers: { ...init.headers, authorization } })).status).toBe(402)
  })

  it('behavior: /openapi.json follows the discovery draft, and its offers are what the 402 charges', async () => {
    const res = await request('/openapi.json')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('application/json')
    expect(res.headers.get('cache-control')).toBe('public, max-age=300')
    expect(res.headers.get('access-control-allow-origin')).toBe('*')
    const doc = (await res.json()) as any
    expect(discoveryViolations(doc)).toEqual([])
    // The reference SDK's validator agrees (errors only; it warns about nothing here either).
    expect(validate(doc)).toEqual([])
    const broken = structuredClone(doc)
    delete broken.paths['/v1/exports'].post.responses['402']
    broken.paths['/v1/reports/{id}'].get['x-payment-info'].offers[0].amount = '010000'
    expect(discoveryViolations(broken)).toHaveLength(2)

    expect(doc.info).toEqual({ title: pricing.service.title, version: pricing.service.version, description: pricing.service.description })
    expect(doc['x-service-info']).toEqual({ categories: ['data'], docs: pricing.service.docs })
    expect(doc.paths['/v1/status'].get['x-payment-info']).toBeUndefined()
    const report = doc.paths['/v1/reports/{id}'].get
    expect(report.parameters).toEqual([{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }])
    expect(report.responses['402']).toEqual({ description: 'Payment Required' })
    const exports = doc.paths['/v1/exports'].post
    expect(exports.requestBody).toEqual(pricing.routes[2]!.requestBody)
    const challenges = Challenge.fromResponse(await request('/v1/exports', { method: 'POST', body: '{}' }))
    expect(exports['x-payment-info'].offers).toEqual(
      challenges.map((c) => {
        const r = c.request as { amount: string; currency: string }
        return { intent: c.intent, method: c.method, amount: r.amount, currency: r.currency, description: 'A full export' }
      }),
    )
  })

  it('behavior: a browser asking for HTML gets a payment page with the same 402 and challenges', async () => {
    const res = await request('/v1/reports/42', { headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } })
    expect(res.status).toBe(402)
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8')
    expect(res.headers.get('cache-control')).toBe('no-store')
    expect(Challenge.fromResponse(res)).toHaveLength(1)
    const html = await res.text()
    expect(html).toContain('Payment required')
    expect(html).toContain('GET /v1/reports/42')
    expect(html).toContain('0.01')
    const api = await request('/v1/reports/42', { headers: { accept: '*/*' } })
    expect(api.headers.get('content-type')).toBe('application/problem+json')
  })

  it('behavior: the wrangler.toml vars are what the worker runs with', () => {
    expect((env as unknown as Record<string, string>).MPP_REALM).toBe('api.example.com')
  })
})

describe('openApiPath', () => {
  it('behavior: URLPattern syntax becomes OpenAPI path templates with parameters', () => {
    expect(openApiPath('/v1/reports/:id').path).toBe('/v1/reports/{id}')
    expect(openApiPath('/v1/:a(\\d+)/:b?').path).toBe('/v1/{a}/{b}')
    expect(openApiPath('/files/*').path).toBe('/files/{wildcard}')
    expect(openApiPath('/v1{/*}?').path).toBe('/v1/{wildcard}')
    expect(openApiPath('/x/(\\d+)').parameters.map((p) => p.name)).toEqual(['param1'])
  })
})
