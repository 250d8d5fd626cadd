import { env } from 'cloudflare:workers'
import { Hono } from 'hono'
import { describe, expect, it } from 'vitest'
import * as Challenge from '../../src/core/Challenge.js'
import * as Credential from '../../src/core/Credential.js'
import * as Receipt from '../../src/core/Receipt.js'
import { payment } from '../../src/middleware/payment.js'
import { stripe } from '../../src/methods/stripe/method.js'
import { tempo } from '../../src/methods/tempo/method.js'
import { replayStore } from '../../src/storage/replay-store.js'
import { type RecordedRequest, spt, testSecretKey } from '../../src/testing/stripe-fixtures.js'

type Env = { Bindings: Cloudflare.Env }

function setup() {
  const pay = payment<Env>({
    realm: 'api.example.com',
    secret: 'stripe-tempo-test-secret-0123456789abcdef',
    methods: [
      tempo({ chainId: 42431, recipient: '0x742d35Cc6634C0532925a3b844Bc9e7595f8fE00', rpcUrl: env.TEST_TEMPO_RPC_URL }),
      stripe({ secretKey: testSecretKey, networkId: 'profile_test_seller', apiBase: env.TEST_STRIPE_API_URL }),
    ],
    store: (c) => replayStore(c.env.REPLAY_GUARD),
  })
  let runs = 0
  const app = new Hono<Env>()
  app.get('/report', pay.charge({ amount: '0.25', description: 'Daily report' }), (c) => {
    runs++
    return c.json({ method: c.get('payment').receipt.method })
  })
  return { request: (init?: RequestInit) => app.request('https://api.example.com/report', init, env), runs: () => runs }
}

describe('a route offering Tempo and Stripe', () => {
  it('behavior: one 402 carries one challenge per method, each priced in its own units', async () => {
    const t = setup()
    const res = await t.request()
    expect(res.status).toBe(402)
    const challenges = Challenge.fromResponse(res)
    expect(challenges.map((c) => c.method)).toEqual(['tempo', 'stripe'])
    expect(new Set(challenges.map((c) => c.id)).size).toBe(2)
    expect(challenges[0]!.request).toMatchObject({ amount: '250000', methodDetails: { chainId: 42431 } })
    expect(challenges[1]!.request).toMatchObject({ amount: '25', currency: 'usd', methodDetails: { networkId: 'profile_test_seller' } })
    const preferred = Challenge.fromResponse(await t.request({ headers: { 'accept-payment': 'stripe/charge' } }))
    expect(preferred.map((c) => c.method)).toEqual(['stripe'])
  })

  it('behavior: the payer chooses Stripe and is served once with a Stripe receipt', async () => {
    const t = setup()
    const challenge = Challenge.fromResponse(await t.request()).find((c) => c.method === 'stripe')!
    const token = spt('ok')
    const paid = await t.request({ headers: { authorization: Credential.serialize({ challenge, payload: { spt: token } }) } })
    expect(paid.status).toBe(200)
    expect(await paid.json()).toEqual({ method: 'stripe' })
    const receipt = Receipt.deserialize(paid.headers.get('payment-receipt')!)
    const sent = (await (await fetch(`${env.TEST_STRIPE_API_URL}/__test/requests?token=${token}&settled=1`)).json()) as RecordedRequest[]
    expect(receipt).toMatchObject({ method: 'stripe', reference: sent[0]!.paymentIntent, challengeId: challenge.id })
    expect(t.runs()).toBe(1)
  })

  it('error: an SPT presented on the Tempo challenge is not a Tempo payment', async () => {
    const t = setup()
    const challenge = Challenge.fromResponse(await t.request()).find((c) => c.method === 'tempo')!
    const token = spt('ok')
    const res = await t.request({ headers: { authorization: Credential.serialize({ challenge, payload: { spt: token } }) } })
    expect(res.status).toBe(402)
    expect(((await res.json()) as { type: string }).type).toMatch(/malformed-credential$/)
    const sent = (await (await fetch(`${env.TEST_STRIPE_API_URL}/__test/requests?token=${token}`)).json()) as RecordedRequest[]
    expect(sent).toHaveLength(0)
    expect(t.runs()).toBe(0)
  })
})
