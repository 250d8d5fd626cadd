/**
 * The project's own client paying Stripe charges: `paymentFetch` with `stripeWallet` against the payment
 * middleware and the stripe method, which calls the local Stripe API server.
 */
import { env } from 'cloudflare:workers'
import { Hono } from 'hono'
import { describe, expect, it } from 'vitest'
import { paymentFetch } from '../../src/client/fetch.js'
import { StripeWalletError, stripeWallet } from '../../src/client/wallets/stripe.js'
import * as Challenge from '../../src/core/Challenge.js'
import * as Receipt from '../../src/core/Receipt.js'
import { stripe } from '../../src/methods/stripe/method.js'
import { payment } from '../../src/middleware/payment.js'
import { replayStore } from '../../src/storage/replay-store.js'
import { type RecordedRequest, spt, testSecretKey } from '../../src/testing/stripe-fixtures.js'

type Env = { Bindings: Cloudflare.Env }

function shop() {
  const pay = payment<Env>({
    realm: 'api.example.com',
    secret: 'client-stripe-test-secret-0123456789abc',
    methods: [stripe({ secretKey: testSecretKey, networkId: 'profile_test_seller', apiBase: env.TEST_STRIPE_API_URL })],
    store: (c) => replayStore(c.env.REPLAY_GUARD),
  })
  const app = new Hono<Env>()
  app.get('/order', pay.charge({ amount: '12.50', externalId: 'order-1001' }), (c) => c.json({ order: 'order-1001' }))
  const fetcher = ((input: RequestInfo | URL, init?: RequestInit) => app.request(new Request(input, init), undefined, env)) as typeof fetch
  return { app, fetcher }
}

describe('stripeWallet paying the stripe method', () => {
  it('behavior: pays with the token it is given, echoing externalId; one PaymentIntent for the exact amount', async () => {
    const { fetcher } = shop()
    const token = spt('ok')
    const asked: unknown[] = []
    const wallet = stripeWallet({ token: (challenge) => (asked.push(challenge.request), token) })
    const response = await paymentFetch({ wallets: [wallet], maxAmount: { usd: '1250' }, fetch: fetcher })('https://api.example.com/order')
    expect(response.status).toBe(200)
    expect(Receipt.deserialize(response.headers.get('payment-receipt')!)).toMatchObject({ method: 'stripe', externalId: 'order-1001' })
    expect(asked).toMatchObject([{ amount: '1250', currency: 'usd', externalId: 'order-1001', methodDetails: { networkId: 'profile_test_seller' } }])
    const seen = (await (await fetch(`${env.TEST_STRIPE_API_URL}/__test/requests?token=${token}&settled=1`)).json()) as RecordedRequest[]
    expect(seen.map((r) => [r.params.amount, r.params.currency, r.status])).toEqual([['1250', 'usd', 200]])
  })

  it('error: a token that is not an SPT, or a challenge of another method, is refused before anything is sent', async () => {
    const { app } = shop()
    const challenge = Challenge.fromResponse(await app.request('https://api.example.com/order', {}, env))[0]!
    await expect(stripeWallet({ token: () => 'tok_visa' }).pay(challenge)).rejects.toThrow(StripeWalletError)
    await expect(stripeWallet({ token: () => spt('ok') }).pay({ ...challenge, method: 'tempo' })).rejects.toThrow(/pays stripe charges/)
  })
})
