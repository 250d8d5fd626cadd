import { env } from 'cloudflare:workers'
import * as v from 'valibot'
import { describe, expect, it } from 'vitest'
import * as Challenge from '../../src/core/Challenge.js'
import { ConfigurationError, InvalidChallengeError, PaymentUnavailableError, VerificationFailedError } from '../../src/core/Errors.js'
import * as ReplayStore from '../../src/core/ReplayStore.js'
import { ConfigError } from '../../src/core/Server.js'
import { client, stripeVersion } from '../../src/methods/stripe/api.js'
import { type StripeConfig, stripe } from '../../src/methods/stripe/method.js'
import { Request } from '../../src/methods/stripe/schema.js'
import { type RecordedRequest, processingRetrieves, spt, testSecretKey } from '../../src/testing/stripe-fixtures.js'

const base = { secretKey: testSecretKey, networkId: 'profile_test_seller', apiBase: env.TEST_STRIPE_API_URL, timeoutMs: 300 }

/** What the local Stripe received for a token, once every request for it was answered. */
async function seen(token: string): Promise<RecordedRequest[]> {
  const res = await fetch(`${env.TEST_STRIPE_API_URL}/__test/requests?${new URLSearchParams({ token, settled: '1' })}`)
  return (await res.json()) as RecordedRequest[]
}

/** Ends a `processing_held` PaymentIntent at the local Stripe, as the payment network eventually does. */
async function resolve(token: string, status: 'succeeded' | 'requires_payment_method') {
  expect((await fetch(`${env.TEST_STRIPE_API_URL}/__test/resolve?${new URLSearchParams({ token, status })}`, { method: 'POST' })).status).toBe(200)
}

/** A challenge for `price` and a verify() runner over a replay store, the way the server calls the method. */
async function attempt(config: Partial<StripeConfig> = {}, price: { amount: string; currency?: string; externalId?: string } = { amount: '5.00' }) {
  const method = stripe({ ...base, ...config })
  const request = method.charge(price) as Request
  const challenge = await Challenge.create({ secret: 'stripe-method-test-secret-0123456789abcdef', realm: 'api.example.com', method: 'stripe', intent: 'charge', request, expires: new Date(Date.now() + 60_000).toISOString() })
  const store = ReplayStore.memory()
  const verify = (payload: { spt: string; externalId?: string }, options: { resumed?: boolean; committed?: string; store?: ReplayStore.ReplayStore; challenge?: Challenge.Challenge } = {}) => {
    const c = options.challenge ?? challenge
    const s = options.store ?? store
    return method.verify({
      challenge: c,
      request: v.parse(Request, c.request),
      credential: { challenge: Challenge.toEchoed(c), payload },
      claimReference: async (reference) => {
        if (!(await s.claimReference(`stripe:${reference}`, c.id))) throw new VerificationFailedError({ detail: 'already settled another challenge' })
      },
      commit: async () => {},
      committed: options.committed,
      resumed: options.resumed ?? false,
      expired: false,
      issuedAt: new Date(),
      now: new Date(),
    })
  }
  return { method, request, challenge, verify, store }
}

describe('stripe charge()', () => {
  it('behavior: issues the smallest-unit amount, lowercase currency and the seller\'s profile, never Connect settings', () => {
    const method = stripe({ ...base, paymentMethodTypes: ['card', 'link'], metadata: { plan: 'pro' }, connect: { stripeAccount: 'acct_123', applicationFeeAmount: 10 } })
    const request = method.charge({ amount: '5.00', description: 'Report', externalId: 'order-9' })
    expect(request).toEqual({
      amount: '500',
      currency: 'usd',
      description: 'Report',
      externalId: 'order-9',
      methodDetails: { networkId: 'profile_test_seller', paymentMethodTypes: ['card', 'link'], metadata: { plan: 'pro' } },
    })
    expect(v.is(Request, request)).toBe(true)
    expect(JSON.stringify(request)).not.toMatch(/acct_|application_fee|transfer/)
    expect(method.charge({ amount: '1200', currency: 'JPY' })).toMatchObject({ amount: '1200', currency: 'jpy' })
    expect(stripe({ ...base, currency: 'kwd' }).charge({ amount: '2.5' })).toMatchObject({ amount: '2500', currency: 'kwd' })
  })

  it('error: a price the currency cannot express fails loudly', () => {
    const method = stripe(base)
    expect(() => method.charge({ amount: '0.001' })).toThrow(ConfigError)
    expect(() => method.charge({ amount: '1.5', currency: 'jpy' })).toThrow(/decimals/)
    expect(() => method.charge({ amount: '1', currency: '0x20c0000000000000000000000000000000000000' })).toThrow(ConfigError)
  })

  it('error: bad configuration is refused at start-up, naming the setting', () => {
    expect(() => stripe({ ...base, secretKey: '' })).toThrow(/secretKey/)
    expect(() => stripe({ ...base, secretKey: 'pk_test_123' })).toThrow(/secretKey/)
    expect(() => stripe({ ...base, networkId: '' })).toThrow(/networkId/)
    expect(() => stripe({ ...base, apiBase: 'http://stripe.example.com' })).toThrow(/https/)
    expect(() => stripe({ ...base, paymentMethodTypes: [] })).toThrow(/paymentMethodTypes/)
    expect(() => stripe({ ...base, metadata: { 'bad[key]': 'x' } })).toThrow(/metadata/)
    expect(() => stripe({ ...base, connect: { stripeAccount: 'someone' } })).toThrow(/stripeAccount/)
    expect(() => stripe({ ...base, connect: { transferData: { destination: 'acct_1', amount: -1 } } })).toThrow(/transferData.amount/)
  })
})

describe('stripe verify()', () => {
  it('behavior: one form-encoded PaymentIntent creation with the bound amount, token, metadata, key and version', async () => {
    const { verify, challenge } = await attempt({ metadata: { plan: 'pro', challenge_id: 'forged' } })
    const token = spt('ok')
    const settlement = await verify({ spt: token })
    const [sent, ...more] = await seen(token)
    expect(more).toHaveLength(0)
    expect(sent).toMatchObject({
      method: 'POST',
      path: '/v1/payment_intents',
      auth: 'bearer',
      apiKey: testSecretKey,
      contentType: 'application/x-www-form-urlencoded',
      stripeVersion,
      idempotencyKey: `${challenge.id}_${token}`,
      status: 200,
      replayed: false,
    })
    expect(sent!.stripeAccount).toBeUndefined()
    expect(sent!.params).toEqual({
      amount: '500',
      currency: 'usd',
      shared_payment_granted_token: token,
      confirm: 'true',
      'automatic_payment_methods[enabled]': 'true',
      'automatic_payment_methods[allow_redirects]': 'never',
      'metadata[plan]': 'pro',
      'metadata[challenge_id]': challenge.id,
    })
    expect(settlement).toEqual({ reference: sent!.paymentIntent, receipt: undefined })
  })

  it('behavior: the receipt externalId is the bound one; a mismatch is refused before Stripe is called', async () => {
    const { verify } = await attempt({}, { amount: '1.00', externalId: 'order-42' })
    const good = spt('ok')
    expect((await verify({ spt: good, externalId: 'order-42' })).receipt).toEqual({ externalId: 'order-42' })
    const forged = spt('ok')
    await expect(verify({ spt: forged, externalId: 'order-43' })).rejects.toThrow(InvalidChallengeError)
    await expect(verify({ spt: forged })).rejects.toThrow(InvalidChallengeError)
    expect(await seen(forged)).toHaveLength(0)

    const unbound = await attempt()
    expect((await unbound.verify({ spt: spt('ok'), externalId: 'attacker' })).receipt).toBeUndefined()
  })

  it('error: a decline carries Stripe\'s reason and no secret', async () => {
    const { verify } = await attempt()
    const token = spt('declined')
    const error = await verify({ spt: token }).catch((e) => e)
    expect(error).toBeInstanceOf(VerificationFailedError)
    expect(error.detail).toContain('card_declined/insufficient_funds')
    expect(error.detail).not.toContain(token)
    expect(error.detail).not.toContain(testSecretKey)
  })

  it('error: requires_action, an expired token and an unknown token fail verification', async () => {
    const { verify } = await attempt()
    await expect(verify({ spt: spt('action') })).rejects.toThrow(/customer action/)
    await expect(verify({ spt: spt('expired') })).rejects.toThrow(/expired/)
    const unknown = spt('unknown')
    const error = await verify({ spt: unknown }).catch((e) => e)
    expect(error).toBeInstanceOf(VerificationFailedError)
    expect(error.detail).toContain('resource_missing')
    expect(error.detail).not.toContain(unknown)
  })

  it('error: a saved 500 stays transient on every retry; a rate limit passes its Retry-After on', async () => {
    const { verify } = await attempt()
    const token = spt('error')
    await expect(verify({ spt: token })).rejects.toThrow(PaymentUnavailableError)
    await expect(verify({ spt: token }, { resumed: true })).rejects.toThrow(PaymentUnavailableError)
    expect((await seen(token)).map((r) => [r.status, r.replayed])).toEqual([[500, false], [500, true]])
    const limited = await verify({ spt: spt('ratelimited') }).catch((e) => e)
    expect(limited).toBeInstanceOf(PaymentUnavailableError)
    expect(limited.retryAfter).toBe(3)
  })

  it('error: a rejected API key is a configuration fault with nothing for the payer', async () => {
    const { verify } = await attempt({ secretKey: 'sk_test_revokedKey000000000000' })
    const error = await verify({ spt: spt('ok') }).catch((e) => e)
    expect(error).toBeInstanceOf(ConfigurationError)
    expect(error.toProblem()).toEqual({ type: 'https://paymentauth.org/problems/configuration-error', title: 'Payment Configuration Error', status: 500 })
  })

  it('error: Stripe unreachable is transient', async () => {
    const { verify } = await attempt({ apiBase: 'http://127.0.0.1:9' })
    await expect(verify({ spt: spt('ok') })).rejects.toThrow(PaymentUnavailableError)
  })

  it('behavior: a timed-out attempt is recovered from Stripe\'s replay only when resumed; a fresh attempt seeing a replay is refused', async () => {
    const { verify, challenge } = await attempt()
    const token = spt('slow')
    await expect(verify({ spt: token })).rejects.toThrow(/did not answer within 300 ms/)
    await seen(token)
    // Another deployment without our records: Stripe's replay cannot pay it.
    await expect(verify({ spt: token }, { store: ReplayStore.memory() })).rejects.toThrow(/replayed a PaymentIntent/)
    const settlement = await verify({ spt: token }, { resumed: true })
    const requests = await seen(token)
    expect(requests.map((r) => r.replayed)).toEqual([false, true, true])
    expect(new Set(requests.map((r) => r.idempotencyKey))).toEqual(new Set([`${challenge.id}_${token}`]))
    expect(new Set(requests.map((r) => r.paymentIntent))).toEqual(new Set([settlement.reference]))
  })

  it('error: one token cannot pay two challenges; Stripe sees it once', async () => {
    const first = await attempt()
    const token = spt('ok')
    await first.verify({ spt: token })
    const other = await Challenge.create({ secret: 'stripe-method-test-secret-0123456789abcdef', realm: 'api.example.com', method: 'stripe', intent: 'charge', request: first.request, expires: new Date(Date.now() + 60_000).toISOString(), opaque: 'b3RoZXI' })
    await expect(first.verify({ spt: token }, { challenge: other })).rejects.toThrow(/already settled another challenge/)
    expect(await seen(token)).toHaveLength(1)
  })

  it('behavior: Connect parameters come from configuration, with the Stripe-Account header', async () => {
    const { verify } = await attempt({
      connect: { stripeAccount: 'acct_platformChild', applicationFeeAmount: 50, onBehalfOf: 'acct_seller1', transferData: { destination: 'acct_seller1', amount: 400 }, transferGroup: 'order-7' },
    })
    const token = spt('ok')
    await verify({ spt: token })
    const [sent] = await seen(token)
    expect(sent!.stripeAccount).toBe('acct_platformChild')
    expect(sent!.params).toMatchObject({ application_fee_amount: '50', on_behalf_of: 'acct_seller1', 'transfer_data[destination]': 'acct_seller1', 'transfer_data[amount]': '400', transfer_group: 'order-7' })
  })

  it('error: a Connect fee above the amount is a configuration fault and nothing is sent', async () => {
    const { verify } = await attempt({ connect: ({ request }) => ({ applicationFeeAmount: Number(request.amount) + 1 }) })
    const token = spt('ok')
    await expect(verify({ spt: token })).rejects.toThrow(ConfigurationError)
    expect(await seen(token)).toHaveLength(0)
  })
})

describe('stripe verify() with a processing PaymentIntent', () => {
  // A budget the three retrieves fit in comfortably on a busy machine.
  const slowBudget = { timeoutMs: 1000 }

  it('behavior: processing is retrieved until it succeeds, with the same key, version and account; settled once', async () => {
    const { verify } = await attempt({ ...slowBudget, connect: { stripeAccount: 'acct_bankDebits' } })
    const token = spt('processing')
    const settlement = await verify({ spt: token })
    const [created, ...retrieves] = await seen(token)
    expect(created).toMatchObject({ method: 'POST', status: 200, replayed: false })
    expect(retrieves).toHaveLength(processingRetrieves)
    for (const r of retrieves) {
      expect(r).toMatchObject({ method: 'GET', path: `/v1/payment_intents/${created!.paymentIntent}`, auth: 'bearer', apiKey: testSecretKey, stripeVersion, stripeAccount: 'acct_bankDebits', status: 200 })
      expect(r.idempotencyKey).toBeUndefined()
    }
    expect(settlement.reference).toBe(created!.paymentIntent)
  })

  it('error: still processing is a 503 with Retry-After; the same credential resumed later settles the same PaymentIntent', async () => {
    const { verify } = await attempt(slowBudget)
    const token = spt('processing_held')
    const pending = await verify({ spt: token }).catch((e) => e)
    expect(pending).toBeInstanceOf(PaymentUnavailableError)
    expect(pending.retryAfter).toBe(3)
    expect(pending.detail).toMatch(/still processing/)
    // Stripe replays the create answer (processing); the retrieve tells the current status.
    await expect(verify({ spt: token }, { resumed: true })).rejects.toThrow(/still processing/)
    await resolve(token, 'succeeded')
    // A fresh attempt without our records still cannot collect Stripe's replay.
    await expect(verify({ spt: token }, { store: ReplayStore.memory() })).rejects.toThrow(/replayed a PaymentIntent/)
    const settlement = await verify({ spt: token }, { resumed: true })
    const requests = await seen(token)
    const creates = requests.filter((r) => r.method === 'POST')
    expect(creates.map((r) => r.replayed)).toEqual([false, true, true, true])
    expect(new Set(requests.map((r) => r.paymentIntent))).toEqual(new Set([settlement.reference]))
    // The refused fresh attempt never looked further than the replayed create.
    expect(requests.filter((r) => r.method === 'GET').length).toBe(2 * processingRetrieves + 1)
  })

  it('error: processing that fails is verification-failed with Stripe\'s reason', async () => {
    const { verify } = await attempt(slowBudget)
    const error = await verify({ spt: spt('processing_fails') }).catch((e) => e)
    expect(error).toBeInstanceOf(VerificationFailedError)
    expect(error.detail).toBe('the PaymentIntent is requires_payment_method, not succeeded (insufficient_funds)')
  })

  it('error: a PaymentIntent Stripe does not know (another key or account) is a configuration fault', async () => {
    const api = client({ secretKey: testSecretKey, apiBase: env.TEST_STRIPE_API_URL, apiVersion: stripeVersion, timeoutMs: 300 })
    const error = await api.retrievePaymentIntent('pi_neverCreated', { stripeAccount: 'acct_someone' }).catch((e) => e)
    expect(error).toBeInstanceOf(ConfigurationError)
    expect(error.detail).toContain('resource_missing')
    const revoked = client({ secretKey: 'sk_test_revokedKey000000000000', apiBase: env.TEST_STRIPE_API_URL, apiVersion: stripeVersion, timeoutMs: 300 })
    await expect(revoked.retrievePaymentIntent('pi_neverCreated', {})).rejects.toThrow(/refused the API key \(401/)
    await expect(client({ secretKey: testSecretKey, apiBase: 'http://127.0.0.1:9', apiVersion: stripeVersion, timeoutMs: 300 }).retrievePaymentIntent('pi_x', {})).rejects.toThrow(PaymentUnavailableError)
  })
})
