/** The gateway's `credentialHeader` entries: Bearer for the origin and payment for the gateway on one request. */
import { describe, expect, it } from 'vitest'
import { paymentFetch } from '../../src/client/fetch.js'
import * as Challenge from '../../src/core/Challenge.js'
import { PricingError, parsePricing } from '../../src/gateway/pricing.js'
import { voucher } from '../support/ledger-method.js'
import { base, pay, pricing, problem, setup } from './support.js'

const table = {
  ...pricing,
  routes: [
    { pattern: '/v1/usage', method: 'GET', price: '0.10', credentialHeader: 'Payment-Authorization' },
    { pattern: '/paid', method: 'GET', price: '0.10' },
  ],
}
const bearer = 'Bearer sk_live_origin_api_key'

type Echo = { headers: Record<string, string> }

describe('gateway: Payment-Authorization routes', () => {
  it('behavior: the origin gets the Bearer token untouched and never the payment credential', async () => {
    const { request, hits, primary } = setup({ pricing: table })
    const unpaid = await request('/v1/usage', { headers: { authorization: bearer } })
    expect(unpaid.status).toBe(402)
    const challenges = Challenge.fromResponse(unpaid)
    expect(challenges.map((c) => c.header)).toEqual(['Payment-Authorization', 'Payment-Authorization'])
    expect(await hits()).toBe(0)
    const credential = await pay(unpaid)
    const paid = await request('/v1/usage', { headers: { authorization: bearer, 'payment-authorization': credential } })
    expect(paid.status).toBe(200)
    expect(paid.headers.get('payment-receipt')).toBeTruthy()
    const echo = (await paid.json()) as Echo
    expect(echo.headers.authorization).toBe(bearer)
    expect(echo.headers['payment-authorization']).toBeUndefined()
    expect(JSON.stringify(echo)).not.toContain(credential.slice('Payment '.length, 40))
    expect(await hits()).toBe(1)
    expect(primary.state.settled).toHaveLength(1)
  })

  it('error: a credential in the header its challenge did not name is not accepted, and the origin is not called', async () => {
    const { request, hits, primary } = setup({ pricing: table })
    const credential = await pay(await request('/v1/usage'))
    // In Authorization on a Payment-Authorization route: not read; a fresh challenge says where it goes.
    const misplaced = await request('/v1/usage', { headers: { authorization: credential } })
    expect(misplaced.status).toBe(402)
    expect((await problem(misplaced)).detail).toContain('send the credential in Payment-Authorization')
    // Payment-Authorization on a default route: ignored, and never forwarded either.
    const plain = await pay(await request('/paid'))
    const ignored = await request('/paid', { headers: { 'payment-authorization': plain } })
    expect(ignored.status).toBe(402)
    expect(await hits()).toBe(0)
    expect(primary.state.settled).toHaveLength(0)
    // Unpriced requests lose a stray Payment-Authorization too.
    const through = (await (await request('/v1/status', { headers: { authorization: bearer, 'payment-authorization': plain } })).json()) as Echo
    expect(through.headers['payment-authorization']).toBeUndefined()
    expect(through.headers.authorization).toBe(bearer)
  })

  it('behavior: racing identical credentials in Payment-Authorization reach the origin once', async () => {
    const { request, hits, primary } = setup({ pricing: table })
    primary.state.delayMs = 50
    const credential = await pay(await request('/v1/usage', { headers: { authorization: bearer } }))
    const statuses = await Promise.all(
      Array.from({ length: 6 }, async () => (await request('/v1/usage', { headers: { authorization: bearer, 'payment-authorization': credential } })).status),
    )
    expect(statuses.filter((s) => s === 200)).toHaveLength(1)
    expect(await hits()).toBe(1)
  })

  it('behavior: paymentFetch sends the caller’s Bearer token and the credential side by side through the gateway', async () => {
    const { request, hits } = setup({ pricing: table })
    const wallet = {
      method: 'ledger',
      async pay(challenge: Challenge.Challenge) {
        const { amount, recipient } = challenge.request as { amount: string; recipient: string }
        return { payload: { voucher: await voucher(challenge.id, amount, recipient) } }
      },
    }
    const fetcher = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const sent = new Request(input, init)
      return request(new URL(sent.url).pathname, { headers: sent.headers })
    }) as typeof fetch
    const response = await paymentFetch({ wallets: [wallet], maxAmount: { usd: '100' }, fetch: fetcher })(`${base}/v1/usage`, { headers: { authorization: bearer } })
    expect(response.status).toBe(200)
    expect(((await response.json()) as Echo).headers.authorization).toBe(bearer)
    expect(await hits()).toBe(1)
  })

  it('error: any other header, or one on a free route, is refused naming the entry', () => {
    const route = (extra: Record<string, unknown>) => ({ ...pricing, routes: [{ pattern: '/x', method: 'GET', price: '0.10', ...extra }] })
    expect(() => parsePricing(route({ credentialHeader: 'Proxy-Authorization' }))).toThrow(/routes\[0\].*credentialHeader.*Payment-Authorization/s)
    expect(() => parsePricing({ ...pricing, routes: [{ pattern: '/x', method: 'GET', free: true, credentialHeader: 'Payment-Authorization' }] })).toThrow(PricingError)
  })
})
