import { env } from 'cloudflare:workers'
import { Hono } from 'hono'
import { describe, expect, it } from 'vitest'
import { type Step, paymentFetch } from '../../src/client/fetch.js'
import { payment } from '../../src/middleware/payment.js'
import { replayStore } from '../../src/storage/replay-store.js'
import { ledger, voucher } from '../support/ledger-method.js'

function seller() {
  const book = ledger()
  const pay = payment<{ Bindings: Cloudflare.Env }>({
    realm: 'api.example.com',
    secret: 'client-test-secret-0123456789abcdefghij',
    methods: [book.method],
    store: (c) => replayStore(c.env.REPLAY_GUARD),
  })
  const app = new Hono<{ Bindings: Cloudflare.Env }>()
  app.post('/echo', pay.charge({ amount: '0.50' }), async (c) => c.json({ echoed: await c.req.json() }))
  const fetcher = (async (input: RequestInfo | URL, init?: RequestInit) => app.request(new Request(input, init), undefined, env)) as typeof fetch
  return { book, fetcher }
}

const wallet = {
  method: 'ledger',
  async pay(challenge: { id: string; request: Record<string, unknown> }) {
    const { amount, recipient } = challenge.request as { amount: string; recipient: string }
    return { payload: { voucher: await voucher(challenge.id, amount, recipient) } }
  },
}

describe('paymentFetch', () => {
  it('behavior: pays a 402 within the spending limit and resends the same body', async () => {
    const { book, fetcher } = seller()
    const steps: Step['type'][] = []
    const pay = paymentFetch({ wallets: [wallet], maxAmount: { usd: '100' }, fetch: fetcher, onStep: (s) => steps.push(s.type) })
    const res = await pay('https://api.example.com/echo', { method: 'POST', body: JSON.stringify({ n: 1 }), headers: { 'content-type': 'application/json' } })
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ echoed: { n: 1 } })
    expect(steps).toEqual(['challenged', 'paying', 'paid', 'done'])
    expect(book.state.settled).toHaveLength(1)
  })

  it('behavior: resends the same credential after a 503 and is charged once', async () => {
    const { book, fetcher } = seller()
    book.state.failNext = 1
    const steps: Step['type'][] = []
    const pay = paymentFetch({ wallets: [wallet], maxAmount: { USD: '100' }, fetch: fetcher, onStep: (s) => steps.push(s.type) })
    const res = await pay('https://api.example.com/echo', { method: 'POST', body: '{}' })
    expect(res.status).toBe(200)
    expect(steps).toContain('retrying')
    expect(book.state.settled).toHaveLength(1)
  })

  it('error: a price above the limit is not paid and the 402 comes back', async () => {
    const { book, fetcher } = seller()
    const pay = paymentFetch({ wallets: [wallet], maxAmount: { usd: '49' }, fetch: fetcher })
    const res = await pay('https://api.example.com/echo', { method: 'POST', body: '{}' })
    expect(res.status).toBe(402)
    expect(book.state.settled).toHaveLength(0)
    expect(() => paymentFetch({ wallets: [wallet] })).toThrow(/maxAmount or approve/)
  })
})
