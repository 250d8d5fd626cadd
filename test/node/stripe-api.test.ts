import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type StripeApi, startStripeApi } from '../../src/testing/node/stripe-api.js'
import { spt, testSecretKey } from '../../src/testing/stripe-fixtures.js'

// The local server must behave like Stripe where the method depends on it, or the worker tests prove nothing.
let api: StripeApi
beforeAll(async () => {
  api = await startStripeApi({ port: 0, slowMs: 300 })
})
afterAll(() => api.stop())

function create(params: Record<string, string>, headers: Record<string, string> = {}) {
  return fetch(`${api.url}/v1/payment_intents`, {
    method: 'POST',
    headers: { authorization: `Bearer ${testSecretKey}`, 'content-type': 'application/x-www-form-urlencoded', 'stripe-version': '2026-07-29.preview', ...headers },
    body: new URLSearchParams(params).toString(),
  })
}

const params = (token: string) => ({ amount: '500', currency: 'usd', shared_payment_granted_token: token, confirm: 'true' })

describe('local Stripe API', () => {
  it('behavior: the same key and parameters replay the first response; other parameters are a 400 idempotency_error', async () => {
    const token = spt('ok')
    const first = await create(params(token), { 'idempotency-key': `k1_${token}` })
    expect(first.status).toBe(200)
    expect(first.headers.get('idempotent-replayed')).toBeNull()
    const intent = (await first.json()) as { id: string; status: string; metadata: Record<string, string> }
    expect(intent.status).toBe('succeeded')
    const replay = await create(params(token), { 'idempotency-key': `k1_${token}` })
    expect(replay.headers.get('idempotent-replayed')).toBe('true')
    expect(((await replay.json()) as { id: string }).id).toBe(intent.id)
    const other = await create({ ...params(token), amount: '501' }, { 'idempotency-key': `k1_${token}` })
    expect(other.status).toBe(400)
    expect(((await other.json()) as { error: { type: string } }).error.type).toBe('idempotency_error')
    // Single use at Stripe too: a new key for a spent token is refused.
    const reuse = await create(params(token), { 'idempotency-key': `k2_${token}` })
    expect(reuse.status).toBe(400)
    expect(((await reuse.json()) as { error: { param: string } }).error.param).toBe('shared_payment_granted_token')
  })

  it('behavior: a key whose first request is still running is a 409; errors are replayed too', async () => {
    const token = spt('slow')
    const running = create(params(token), { 'idempotency-key': `k_${token}` })
    await new Promise((r) => setTimeout(r, 50))
    const conflict = await create(params(token), { 'idempotency-key': `k_${token}` })
    expect(conflict.status).toBe(409)
    expect((await running).status).toBe(200)
    const declined = spt('declined')
    const a = await create(params(declined), { 'idempotency-key': `k_${declined}` })
    const b = await create(params(declined), { 'idempotency-key': `k_${declined}` })
    expect([a.status, b.status]).toEqual([402, 402])
    expect(b.headers.get('idempotent-replayed')).toBe('true')
    expect(((await a.json()) as { error: { code: string; payment_intent: { status: string } } }).error).toMatchObject({ code: 'card_declined', payment_intent: { status: 'requires_payment_method' } })
  })

  it('error: auth, content type, API version and unknown parameters are checked like Stripe', async () => {
    const token = spt('ok')
    expect((await create(params(token), { authorization: 'Bearer sk_test_wrong0000000000' })).status).toBe(401)
    expect((await create(params(token), { authorization: '' })).status).toBe(401)
    const basic = await create(params(token), { authorization: `Basic ${btoa(`${testSecretKey}:`)}` })
    expect(basic.status).toBe(200)
    expect((await create(params(spt('ok')), { 'stripe-version': '2024-06-20' })).status).toBe(400)
    const unknown = await create({ ...params(spt('ok')), customer_email: 'x@example.com' })
    expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe('parameter_unknown')
    const json = await fetch(`${api.url}/v1/payment_intents`, { method: 'POST', headers: { authorization: `Bearer ${testSecretKey}`, 'content-type': 'application/json' }, body: '{}' })
    expect(json.status).toBe(400)
    expect(api.requests.filter((r) => r.token === token).map((r) => r.auth)).toEqual(['bearer', 'none', 'basic'])
  })
})

describe('local Stripe API: retrieving PaymentIntents', () => {
  const retrieve = (id: string, headers: Record<string, string> = {}) =>
    fetch(`${api.url}/v1/payment_intents/${id}`, { headers: { authorization: `Bearer ${testSecretKey}`, 'stripe-version': '2026-07-29.preview', ...headers } })
  type Intent = { id: string; status: string; amount_received: number; last_payment_error: { code: string } | null }

  it('behavior: processing turns succeeded on the 3rd retrieve; the create replay keeps the first answer', async () => {
    const token = spt('processing')
    const created = (await (await create(params(token), { 'idempotency-key': `k_${token}` })).json()) as Intent
    expect(created).toMatchObject({ status: 'processing', amount_received: 0 })
    const statuses: string[] = []
    for (let i = 0; i < 4; i++) {
      const res = await retrieve(created.id)
      expect(res.headers.get('idempotent-replayed')).toBeNull()
      statuses.push(((await res.json()) as Intent).status)
    }
    expect(statuses).toEqual(['processing', 'processing', 'succeeded', 'succeeded'])
    expect(((await (await retrieve(created.id)).json()) as Intent).amount_received).toBe(500)
    const replay = await create(params(token), { 'idempotency-key': `k_${token}` })
    expect(replay.headers.get('idempotent-replayed')).toBe('true')
    expect(((await replay.json()) as Intent).status).toBe('processing')
    expect(api.requests.filter((r) => r.token === token).map((r) => r.method)).toEqual(['POST', 'GET', 'GET', 'GET', 'GET', 'GET', 'POST'])
  })

  it('behavior: processing_fails turns requires_payment_method; processing_held waits for the test to resolve it', async () => {
    const failing = (await (await create(params(spt('processing_fails')))).json()) as Intent
    for (let i = 0; i < 2; i++) await retrieve(failing.id)
    expect((await (await retrieve(failing.id)).json()) as Intent).toMatchObject({ status: 'requires_payment_method', last_payment_error: { code: 'insufficient_funds' } })

    const token = spt('processing_held')
    const held = (await (await create(params(token))).json()) as Intent
    for (let i = 0; i < 5; i++) expect(((await (await retrieve(held.id)).json()) as Intent).status).toBe('processing')
    expect((await fetch(`${api.url}/__test/resolve?token=${token}&status=bogus`, { method: 'POST' })).status).toBe(400)
    expect((await fetch(`${api.url}/__test/resolve?token=${token}&status=succeeded`, { method: 'POST' })).status).toBe(200)
    expect(((await (await retrieve(held.id)).json()) as Intent).status).toBe('succeeded')
  })

  it('error: auth is checked, an unknown id is a 404 resource_missing, and a connected account\'s PaymentIntent needs its Stripe-Account', async () => {
    const intent = (await (await create(params(spt('ok')), { 'stripe-account': 'acct_child1' })).json()) as Intent
    expect((await retrieve(intent.id, { authorization: '' })).status).toBe(401)
    expect((await retrieve(intent.id, { authorization: 'Bearer sk_test_wrong0000000000' })).status).toBe(401)
    const missing = await retrieve('pi_doesnotexist')
    expect(missing.status).toBe(404)
    expect(((await missing.json()) as { error: unknown }).error).toMatchObject({ type: 'invalid_request_error', code: 'resource_missing', param: 'intent', message: "No such payment_intent: 'pi_doesnotexist'" })
    expect((await retrieve(intent.id)).status).toBe(404)
    expect((await retrieve(intent.id, { 'stripe-account': 'acct_other' })).status).toBe(404)
    const found = await retrieve(intent.id, { 'stripe-account': 'acct_child1' })
    expect(found.status).toBe(200)
    expect((await found.json()) as Intent).toMatchObject({ id: intent.id, status: 'succeeded' })
  })
})
