import { env } from 'cloudflare:workers'
import { Hono } from 'hono'
import { describe, expect, it } from 'vitest'
import * as Challenge from '../../src/core/Challenge.js'
import * as Credential from '../../src/core/Credential.js'
import * as Receipt from '../../src/core/Receipt.js'
import * as ReplayStore from '../../src/core/ReplayStore.js'
import { payment } from '../../src/middleware/payment.js'
import { type StripeConfig, stripe } from '../../src/methods/stripe/method.js'
import { replayStore } from '../../src/storage/replay-store.js'
import { type RecordedRequest, spt, testSecretKey } from '../../src/testing/stripe-fixtures.js'

const secret = 'stripe-middleware-test-secret-0123456789'
const base = 'https://api.example.com'
type Env = { Bindings: Cloudflare.Env }

/** A paid API whose only method is Stripe, over the real replay guard (or another store). */
function setup(config: Partial<StripeConfig> = {}, options: { store?: ReplayStore.ReplayStore } = {}) {
  const pay = payment<Env>({
    realm: 'api.example.com',
    secret,
    methods: [stripe({ secretKey: testSecretKey, networkId: 'profile_test_seller', apiBase: env.TEST_STRIPE_API_URL, timeoutMs: 300, ...config })],
    store: (c) => options.store ?? replayStore(c.env.REPLAY_GUARD),
  })
  let runs = 0
  const app = new Hono<Env>()
  app.get('/report', pay.charge({ amount: '5.00', description: 'Daily report' }), (c) => {
    runs++
    return c.json({ report: 'ok', reference: c.get('payment').settlement.reference })
  })
  app.get('/order', pay.charge({ amount: '12.50', externalId: 'order-1001' }), (c) => c.json({ order: 'order-1001' }))
  const request = (path: string, init?: RequestInit) => app.request(`${base}${path}`, init, env)
  return { request, runs: () => runs }
}

/** The Authorization a payer sends for the stripe challenge of a 402. */
function credential(response: Response, payload: { spt: string; externalId?: string }) {
  const challenge = Challenge.fromResponse(response).find((c) => c.method === 'stripe')!
  return Credential.serialize({ challenge, payload })
}

async function seen(token: string): Promise<RecordedRequest[]> {
  const res = await fetch(`${env.TEST_STRIPE_API_URL}/__test/requests?${new URLSearchParams({ token, settled: '1' })}`)
  return (await res.json()) as RecordedRequest[]
}

async function problem(response: Response) {
  expect(response.headers.get('content-type')).toContain('application/problem+json')
  expect(response.headers.get('payment-receipt')).toBeNull()
  return (await response.json()) as { type: string; status: number; detail?: string }
}

describe('stripe through the charge middleware', () => {
  it('behavior: a 402 offers a Stripe charge; paying with an SPT serves once with a PaymentIntent receipt', async () => {
    const t = setup()
    const offer = await t.request('/report')
    expect(offer.status).toBe(402)
    const [challenge] = Challenge.fromResponse(offer)
    expect(challenge).toMatchObject({ method: 'stripe', intent: 'charge', description: 'Daily report' })
    expect(challenge!.request).toEqual({
      amount: '500',
      currency: 'usd',
      description: 'Daily report',
      methodDetails: { networkId: 'profile_test_seller', paymentMethodTypes: ['card'] },
    })

    const token = spt('ok')
    const authorization = credential(offer, { spt: token })
    const paid = await t.request('/report', { headers: { authorization } })
    expect(paid.status).toBe(200)
    const receipt = Receipt.deserialize(paid.headers.get('payment-receipt')!)
    const [sent] = await seen(token)
    expect(receipt).toMatchObject({ status: 'success', method: 'stripe', reference: sent!.paymentIntent, challengeId: challenge!.id })
    expect(receipt.reference).toMatch(/^pi_/)
    expect(await paid.json()).toEqual({ report: 'ok', reference: receipt.reference })
    expect(sent!.params).toMatchObject({ amount: '500', currency: 'usd', shared_payment_granted_token: token, 'metadata[challenge_id]': challenge!.id })
    expect(sent!.idempotencyKey).toBe(`${challenge!.id}_${token}`)
    expect(t.runs()).toBe(1)
  })

  it('behavior: the receipt echoes the bound externalId; a forged one is refused and Stripe never sees the token', async () => {
    const t = setup()
    const offer = await t.request('/order')
    const good = await t.request('/order', { headers: { authorization: credential(offer, { spt: spt('ok'), externalId: 'order-1001' }) } })
    expect(good.status).toBe(200)
    expect(Receipt.deserialize(good.headers.get('payment-receipt')!).externalId).toBe('order-1001')

    const again = await t.request('/order')
    const token = spt('ok')
    const forged = await t.request('/order', { headers: { authorization: credential(again, { spt: token, externalId: 'order-6666' }) } })
    expect(forged.status).toBe(402)
    expect((await problem(forged)).type).toMatch(/invalid-challenge$/)
    expect(await seen(token)).toHaveLength(0)
  })

  it('error: a decline is a 402 verification-failed with a fresh challenge and Stripe\'s reason', async () => {
    const t = setup()
    const token = spt('declined')
    const res = await t.request('/report', { headers: { authorization: credential(await t.request('/report'), { spt: token }) } })
    expect(res.status).toBe(402)
    expect(Challenge.fromResponse(res)).toHaveLength(1)
    const body = await problem(res)
    expect(body.type).toMatch(/verification-failed$/)
    expect(body.detail).toContain('card_declined/insufficient_funds')
    expect(JSON.stringify(body)).not.toContain(token)
    expect(t.runs()).toBe(0)
  })

  it('error: requires_action and an expired token are 402 verification-failed', async () => {
    const t = setup()
    for (const [outcome, text] of [['action', /customer action/], ['expired', /expired/]] as const) {
      const res = await t.request('/report', { headers: { authorization: credential(await t.request('/report'), { spt: spt(outcome) }) } })
      expect(res.status, outcome).toBe(402)
      expect(Challenge.fromResponse(res)).toHaveLength(1)
      const body = await problem(res)
      expect(body.type).toMatch(/verification-failed$/)
      expect(body.detail).toMatch(text)
    }
    expect(t.runs()).toBe(0)
  })

  it('behavior: a Stripe 5xx answers 503 with Retry-After; the same credential then succeeds', async () => {
    const t = setup()
    const token = spt('flaky')
    const authorization = credential(await t.request('/report'), { spt: token })
    const down = await t.request('/report', { headers: { authorization } })
    expect(down.status).toBe(503)
    expect(Number(down.headers.get('retry-after'))).toBeGreaterThan(0)
    expect((await problem(down)).type).toMatch(/payment-unavailable$/)
    const paid = await t.request('/report', { headers: { authorization } })
    expect(paid.status).toBe(200)
    expect((await seen(token)).map((r) => r.status)).toEqual([503, 200])
    expect(t.runs()).toBe(1)
  })

  it('behavior: after a timeout the retry gets Stripe\'s idempotent replay: served once, one PaymentIntent', async () => {
    const t = setup()
    const token = spt('slow')
    const authorization = credential(await t.request('/report'), { spt: token })
    const timedOut = await t.request('/report', { headers: { authorization } })
    expect(timedOut.status).toBe(503)
    expect(timedOut.headers.get('retry-after')).not.toBeNull()
    await seen(token) // Stripe finishes the first request
    const paid = await t.request('/report', { headers: { authorization } })
    expect(paid.status).toBe(200)
    const requests = await seen(token)
    expect(requests.map((r) => r.replayed)).toEqual([false, true])
    expect(new Set(requests.map((r) => r.paymentIntent)).size).toBe(1)
    expect(Receipt.deserialize(paid.headers.get('payment-receipt')!).reference).toBe(requests[0]!.paymentIntent)
    expect(t.runs()).toBe(1)

    const again = await t.request('/report', { headers: { authorization } })
    expect(again.status).toBe(402)
    expect(t.runs()).toBe(1)
    expect(await seen(token)).toHaveLength(2)
  })

  it('error: a delivered challenge is refused: by our store, and by Stripe\'s replay where our records are missing', async () => {
    const t = setup()
    const token = spt('ok')
    const authorization = credential(await t.request('/report'), { spt: token })
    expect((await t.request('/report', { headers: { authorization } })).status).toBe(200)
    const replay = await t.request('/report', { headers: { authorization } })
    expect(replay.status).toBe(402)
    expect((await problem(replay)).type).toMatch(/invalid-challenge$/)
    expect(await seen(token)).toHaveLength(1)

    // A deployment sharing the secret and the Stripe account but not the replay store.
    const elsewhere = setup({}, { store: ReplayStore.memory() })
    const res = await elsewhere.request('/report', { headers: { authorization } })
    expect(res.status).toBe(402)
    expect((await problem(res)).detail).toMatch(/replayed a PaymentIntent/)
    expect(elsewhere.runs()).toBe(0)
    expect((await seen(token)).map((r) => r.replayed)).toEqual([false, true])
  })

  it('error: the Shared Payment Token is never written to the replay store, and still pays one challenge only', async () => {
    const memory = ReplayStore.memory()
    const written: string[] = []
    const store: ReplayStore.ReplayStore = {
      ...memory,
      claimReference: (reference, challengeId) => {
        written.push(reference)
        return memory.claimReference(reference, challengeId)
      },
    }
    const t = setup({}, { store })
    const token = spt('ok')
    const paid = await t.request('/report', { headers: { authorization: credential(await t.request('/report'), { spt: token }) } })
    expect(paid.status).toBe(200)
    expect(written.length).toBeGreaterThan(0)
    // Core spec, "Credential Handling": the token is a bearer credential; only a digest of it is kept.
    expect(written.join(' ')).not.toContain(token.slice(4))
    const again = await t.request('/report', { headers: { authorization: credential(await t.request('/report'), { spt: token }) } })
    expect(again.status).toBe(402)
    expect((await problem(again)).type).toMatch(/verification-failed$/)
  })

  it('error: the same SPT cannot pay a second challenge; Stripe sees it once', async () => {
    const t = setup()
    const token = spt('ok')
    expect((await t.request('/report', { headers: { authorization: credential(await t.request('/report'), { spt: token }) } })).status).toBe(200)
    const second = await t.request('/report', { headers: { authorization: credential(await t.request('/report'), { spt: token }) } })
    expect(second.status).toBe(402)
    expect((await problem(second)).type).toMatch(/verification-failed$/)
    expect(await seen(token)).toHaveLength(1)
    expect(t.runs()).toBe(1)
  })

  it('behavior: Connect parameters are sent only when configured, and never appear in the challenge', async () => {
    const plain = setup()
    const plainToken = spt('ok')
    expect((await plain.request('/report', { headers: { authorization: credential(await plain.request('/report'), { spt: plainToken }) } })).status).toBe(200)
    const [plainSent] = await seen(plainToken)
    expect(plainSent!.stripeAccount).toBeUndefined()
    expect(Object.keys(plainSent!.params).filter((k) => /application_fee|on_behalf_of|transfer_/.test(k))).toEqual([])

    const platform = setup({ connect: { stripeAccount: 'acct_child', applicationFeeAmount: 25, transferData: { destination: 'acct_seller' } } })
    const offer = await platform.request('/report')
    expect(JSON.stringify(Challenge.fromResponse(offer))).not.toMatch(/acct_|application_fee|transfer/)
    const token = spt('ok')
    expect((await platform.request('/report', { headers: { authorization: credential(offer, { spt: token }) } })).status).toBe(200)
    const [sent] = await seen(token)
    expect(sent!.stripeAccount).toBe('acct_child')
    expect(sent!.params).toMatchObject({ application_fee_amount: '25', 'transfer_data[destination]': 'acct_seller' })
  })

  it('behavior: a processing payment that succeeds within the polling serves once with one PaymentIntent', async () => {
    const t = setup({ timeoutMs: 1000 })
    const token = spt('processing')
    const paid = await t.request('/report', { headers: { authorization: credential(await t.request('/report'), { spt: token }) } })
    expect(paid.status).toBe(200)
    const requests = await seen(token)
    expect(requests.map((r) => r.method)).toEqual(['POST', 'GET', 'GET', 'GET'])
    expect(new Set(requests.map((r) => r.paymentIntent)).size).toBe(1)
    expect(Receipt.deserialize(paid.headers.get('payment-receipt')!).reference).toBe(requests[0]!.paymentIntent)
    expect(t.runs()).toBe(1)
  })

  it('behavior: still processing answers 503 with Retry-After and no challenge; the same credential later is served once, charged once', async () => {
    const t = setup({ timeoutMs: 1000 })
    const token = spt('processing_held')
    const authorization = credential(await t.request('/report'), { spt: token })
    for (let i = 0; i < 2; i++) {
      const pending = await t.request('/report', { headers: { authorization } })
      expect(pending.status).toBe(503)
      expect(pending.headers.get('retry-after')).toBe('3')
      expect(pending.headers.get('www-authenticate')).toBeNull()
      expect((await problem(pending)).type).toMatch(/payment-unavailable$/)
    }
    expect((await fetch(`${env.TEST_STRIPE_API_URL}/__test/resolve?${new URLSearchParams({ token, status: 'succeeded' })}`, { method: 'POST' })).status).toBe(200)
    const paid = await t.request('/report', { headers: { authorization } })
    expect(paid.status).toBe(200)
    const requests = await seen(token)
    // One PaymentIntent: the retries retrieved the one the first attempt recorded, without creating again.
    expect(requests.filter((r) => r.method === 'POST').map((r) => r.replayed)).toEqual([false])
    expect(requests.filter((r) => r.method === 'GET').length).toBeGreaterThan(2)
    expect(new Set(requests.map((r) => r.paymentIntent))).toEqual(new Set([Receipt.deserialize(paid.headers.get('payment-receipt')!).reference]))
    expect(t.runs()).toBe(1)
    const again = await t.request('/report', { headers: { authorization } })
    expect(again.status).toBe(402)
    expect(t.runs()).toBe(1)
  })

  it('error: a processing payment that fails is a 402 verification-failed with a fresh challenge and the reason', async () => {
    const t = setup({ timeoutMs: 1000 })
    const res = await t.request('/report', { headers: { authorization: credential(await t.request('/report'), { spt: spt('processing_fails') }) } })
    expect(res.status).toBe(402)
    expect(Challenge.fromResponse(res)).toHaveLength(1)
    const body = await problem(res)
    expect(body.type).toMatch(/verification-failed$/)
    expect(body.detail).toMatch(/requires_payment_method.*insufficient_funds/)
    expect(t.runs()).toBe(0)
  })

  it('error: a rejected Stripe key answers 500 with no detail and no challenge; the credential stays unspent', async () => {
    const t = setup({ secretKey: 'sk_test_revokedKey000000000000' })
    const errors: string[] = []
    const original = console.error
    console.error = (line: string) => errors.push(line)
    try {
      const res = await t.request('/report', { headers: { authorization: credential(await t.request('/report'), { spt: spt('ok') }) } })
      expect(res.status).toBe(500)
      expect(res.headers.get('www-authenticate')).toBeNull()
      expect(await res.json()).toEqual({ type: 'https://paymentauth.org/problems/configuration-error', title: 'Payment Configuration Error', status: 500 })
    } finally {
      console.error = original
    }
    expect(errors.join('\n')).toMatch(/payment-configuration-error.*Stripe refused the API key \(401/)
    expect(errors.join('\n')).not.toContain('sk_test_revokedKey000000000000')
  })
})
