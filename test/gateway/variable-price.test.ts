/** Pricing-table routes whose price varies with the request, and how the discovery document advertises them. */
import { validate } from 'mppx/discovery'
import { describe, expect, it } from 'vitest'
import * as Challenge from '../../src/core/Challenge.js'
import { parsePricing } from '../../src/gateway/pricing.js'
import { discoveryViolations } from './discovery-rules.js'
import { pay, pricing, problem, setup } from './support.js'

const table = {
  ...pricing,
  routes: [
    {
      pattern: '/v1/render',
      method: 'GET',
      price: { query: 'quality', prices: { draft: '0.01', hd: '0.05' } },
      description: 'A rendered image',
      accept: [{ method: 'ledger' }, { method: 'backup' }],
    },
    { pattern: '/v1/tiers', method: 'GET', price: { header: 'x-tier', prices: { gold: '2.00' }, otherwise: '1.00' } },
    { pattern: '/paid', method: 'GET', price: '0.10' },
  ],
}

const amountOf = (response: Response) => Challenge.fromResponse(response).map((c) => (c.request as { amount: string }).amount)

describe('gateway: a price that varies with the request', () => {
  it('behavior: the query parameter picks the price; each amount is charged exactly, in every offer', async () => {
    const { request } = setup({ pricing: table })
    expect(amountOf(await request('/v1/render?quality=draft'))).toEqual(['1', '1'])
    expect(amountOf(await request('/v1/render?quality=hd'))).toEqual(['5', '5'])
    expect(amountOf(await request('/v1/tiers', { headers: { 'x-tier': 'gold' } }))).toEqual(['200', '200'])
    expect(amountOf(await request('/v1/tiers'))).toEqual(['100', '100'])
  })

  it('error: a value with no price and no "otherwise" is a 400 naming the choices, and the origin is not called', async () => {
    const { request, hits } = setup({ pricing: table })
    for (const path of ['/v1/render', '/v1/render?quality=ultra']) {
      const res = await request(path)
      expect(res.status).toBe(400)
      expect((await problem(res)).detail).toBe('the query parameter "quality" must be one of "draft", "hd"')
    }
    expect(await hits()).toBe(0)
  })

  it('error: a credential paid at one price does not buy the dearer variant', async () => {
    const { request, hits, primary } = setup({ pricing: table })
    const cheap = await pay(await request('/v1/render?quality=draft'))
    const dear = await request('/v1/render?quality=hd', { headers: { authorization: cheap } })
    expect(dear.status).toBe(402)
    expect((await problem(dear)).detail).toBe('the challenge was issued for another route or price')
    expect(await hits()).toBe(0)
    const paid = await request('/v1/render?quality=draft', { headers: { authorization: cheap } })
    expect(paid.status).toBe(200)
    expect(((await paid.json()) as { search: string }).search).toBe('?quality=draft')
    expect(primary.state.settled).toHaveLength(1)
  })

  it('behavior: the discovery document advertises amount null with a note, fixed prices keep exact amounts, and both pass the draft rules', async () => {
    const { request } = setup({ pricing: table })
    const doc = (await (await request('/openapi.json')).json()) as any
    expect(discoveryViolations(doc)).toEqual([])
    expect(validate(doc)).toEqual([])
    const note = 'Price varies by query "quality": draft 0.01, hd 0.05'
    expect(doc.paths['/v1/render'].get['x-payment-info'].offers).toEqual([
      { intent: 'charge', method: 'ledger', amount: null, currency: 'usd', description: note },
      { intent: 'charge', method: 'backup', amount: null, currency: 'usd', description: note },
    ])
    expect(doc.paths['/v1/tiers'].get['x-payment-info'].offers[0]).toMatchObject({ amount: null, description: 'Price varies by header "x-tier": gold 2.00, otherwise 1.00' })
    expect(doc.paths['/paid'].get['x-payment-info'].offers.map((o: { amount: string }) => o.amount)).toEqual(['10', '10'])
  })

  it('error: malformed varying prices are refused naming the entry', () => {
    const route = (price: unknown, extra: Record<string, unknown> = {}) => ({ ...pricing, routes: [{ pattern: '/x', method: 'GET', price, ...extra }] })
    expect(() => parsePricing(route({ prices: { a: '0.01' } }))).toThrow(/routes\[0\].*exactly one of "query" or "header"/s)
    expect(() => parsePricing(route({ query: 'q', header: 'h', prices: { a: '0.01' } }))).toThrow(/exactly one of/)
    expect(() => parsePricing(route({ query: 'q', prices: {} }))).toThrow(/from 1 to 32 prices/)
    expect(() => parsePricing(route({ query: 'q', prices: { a: '1e3' } }))).toThrow(/routes\[0\]/)
    expect(() => parsePricing(route({ query: 'q', prices: { a: '0.01' } }, { accept: [{ method: 'ledger', price: '0.02' }] }))).toThrow(/per-offer "price"/)
    expect(parsePricing(route({ query: 'q', prices: { a: '0.01' }, otherwise: '0.02' })).routes[0]!.price).toEqual({ query: 'q', prices: { a: '0.01' }, otherwise: '0.02' })
  })
})
