/**
 * The detail of the middleware's 402 says what each offer asks, in words (amount, currency, method), and names the
 * discovery document when the seller serves one; the problem's machine fields are as before.
 */
import { env } from 'cloudflare:workers'
import { Hono } from 'hono'
import { describe, expect, it } from 'vitest'
import * as Challenge from '../../src/core/Challenge.js'
import { stripe } from '../../src/methods/stripe/method.js'
import { tempo } from '../../src/methods/tempo/method.js'
import { payment } from '../../src/middleware/payment.js'
import { replayStore } from '../../src/storage/replay-store.js'
import { ledger } from '../support/ledger-method.js'

type Env = { Bindings: Cloudflare.Env }
const secret = 'payment-required-secret-0123456789abcdef'

function app(options: { discovery?: string; methods?: Parameters<typeof payment>[0]['methods'] } = {}) {
  const pay = payment<Env>({
    realm: 'api.example.com',
    secret,
    discovery: options.discovery,
    methods: options.methods ?? [
      tempo({ chainId: 42431, recipient: '0x742d35cc6634c0532925a3b844bc9e7595f8fe00' }),
      stripe({ secretKey: 'sk_test_detail0123456789', networkId: 'profile_detail' }),
    ],
    store: (c) => replayStore(c.env.REPLAY_GUARD),
  })
  const hono = new Hono<Env>()
  hono.get('/report', pay.charge({ amount: '0.25', description: 'Daily report' }), (c) => c.text('paid'))
  if (!options.methods) hono.get('/yen', pay.charge({ amount: '1200', currency: 'jpy' }, { methods: ['stripe'] }), (c) => c.text('paid'))
  return (path: string) => hono.request(`https://api.example.com${path}`, {}, env)
}

describe('the 402 detail', () => {
  it('behavior: names each offer in the currency a person reads; the challenges and machine fields are unchanged', async () => {
    const response = await app()('/report')
    expect(response.status).toBe(402)
    const problem = (await response.json()) as Record<string, unknown>
    const challenges = Challenge.fromResponse(response)
    expect(problem).toEqual({
      type: 'https://paymentauth.org/problems/payment-required',
      title: 'Payment Required',
      status: 402,
      detail: 'Payment is required: 0.25 pathUSD by tempo, or 0.25 USD by stripe.',
      challengeId: challenges[0]!.id,
    })
    expect(challenges.map((c) => [c.method, (c.request as { amount: string }).amount])).toEqual([['tempo', '250000'], ['stripe', '25']])
  })

  it('behavior: a zero-decimal currency and the discovery document the seller serves', async () => {
    const response = await app({ discovery: '/openapi.json' })('/yen')
    expect(((await response.json()) as { detail: string }).detail).toBe('Payment is required: 1200 JPY by stripe. Prices of every route: /openapi.json.')
  })

  it('behavior: a method that cannot say its currency is named with base units', async () => {
    const response = await app({ methods: [ledger().method] })('/report')
    expect(((await response.json()) as { detail: string }).detail).toMatch(/^Payment is required: \d+ base units of \S+ by ledger\.$/)
  })
})
