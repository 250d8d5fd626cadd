/**
 * The alternate credential header through the middleware: a route that takes a Bearer API key in `Authorization`
 * and a payment in `Payment-Authorization` on the same request.
 */
import { env } from 'cloudflare:workers'
import { Hono } from 'hono'
import { bearerAuth } from 'hono/bearer-auth'
import { describe, expect, it } from 'vitest'
import * as Challenge from '../../src/core/Challenge.js'
import * as Credential from '../../src/core/Credential.js'
import * as Receipt from '../../src/core/Receipt.js'
import * as Server from '../../src/core/Server.js'
import { payment } from '../../src/middleware/payment.js'
import { idempotencyStore } from '../../src/storage/idempotency.js'
import { replayStore } from '../../src/storage/replay-store.js'
import { ledger, voucher } from '../support/ledger-method.js'

const secret = 'credential-header-secret-0123456789abcdef'
const base = 'https://api.example.com'
const token = 'sk_live_caller_api_key'

function setup() {
  const primary = ledger()
  const pay = payment<{ Bindings: Cloudflare.Env }>({
    realm: 'api.example.com',
    secret,
    methods: [primary.method],
    store: (c) => replayStore(c.env.REPLAY_GUARD),
    idempotency: (c) => idempotencyStore(c.env.IDEMPOTENCY_CACHE),
  })
  const seen: { authorization: string | undefined }[] = []
  const app = new Hono<{ Bindings: Cloudflare.Env }>()
  app.get('/usage', bearerAuth({ token }), pay.charge({ amount: '0.25' }, { credentialHeader: 'Payment-Authorization' }), (c) => {
    seen.push({ authorization: c.req.header('authorization') })
    return c.json({ usage: 'ok', reference: c.get('payment').settlement.reference })
  })
  app.get('/plain', pay.charge({ amount: '0.25' }), (c) => c.json({ plain: true }))
  app.get('/open', pay.charge({ amount: '0.25' }, { credentialHeader: 'Payment-Authorization' }), (c) => c.json({ open: true }))
  const request = async (path: string, headers: Record<string, string> = {}) => app.request(`${base}${path}`, { headers }, env)
  return { request, primary, seen }
}

/** Pays a 402's first challenge with the ledger voucher; returns the credential and the header the challenge names. */
async function pay(response: Response) {
  const challenge = Challenge.fromResponse(response)[0]!
  const request = challenge.request as { amount: string; recipient: string }
  const credential = Credential.serialize({ challenge, payload: { voucher: await voucher(challenge.id, request.amount, request.recipient) } })
  return { credential, header: Challenge.credentialHeader(challenge) }
}

describe('Payment-Authorization through the middleware', () => {
  it('behavior: Bearer and payment on one request — the challenge names the header, the handler sees its own Authorization untouched', async () => {
    const shop = setup()
    expect((await shop.request('/usage')).status).toBe(401) // the application's own auth answers first
    const unpaid = await shop.request('/usage', { authorization: `Bearer ${token}` })
    expect(unpaid.status).toBe(402)
    expect(unpaid.headers.get('www-authenticate')).toContain('header="Payment-Authorization"')
    const { credential, header } = await pay(unpaid)
    expect(header).toBe('Payment-Authorization')
    const paid = await shop.request('/usage', { authorization: `Bearer ${token}`, 'payment-authorization': credential })
    expect(paid.status).toBe(200)
    expect(Receipt.deserialize(paid.headers.get('payment-receipt')!).status).toBe('success')
    expect(shop.seen).toEqual([{ authorization: `Bearer ${token}` }])
    expect(shop.primary.state.settled).toHaveLength(1)
    // Single use holds in the new header too.
    const again = await shop.request('/usage', { authorization: `Bearer ${token}`, 'payment-authorization': credential })
    expect(again.status).toBe(402)
    expect(shop.primary.state.settled).toHaveLength(1)
  })

  it('behavior: a default route keeps Authorization implicit and ignores Payment-Authorization', async () => {
    const shop = setup()
    const unpaid = await shop.request('/plain')
    expect(unpaid.headers.get('www-authenticate')).not.toContain('header=')
    const { credential, header } = await pay(unpaid)
    expect(header).toBe('Authorization')
    expect((await shop.request('/plain', { 'payment-authorization': credential })).status).toBe(402)
    expect((await shop.request('/plain', { authorization: credential })).status).toBe(200)
  })

  it('error: a credential cannot move between headers', async () => {
    const shop = setup()
    const unpaid = await shop.request('/usage', { authorization: `Bearer ${token}` })
    const { credential } = await pay(unpaid)
    // In Authorization instead of the header its challenge named: not read at all, and the 402 says where it goes.
    const open = await pay(await shop.request('/open'))
    const misplaced = await shop.request('/open', { authorization: open.credential })
    expect(misplaced.status).toBe(402)
    expect(((await misplaced.json()) as { detail: string }).detail).toContain('send the credential in Payment-Authorization')
    // A challenge issued for Authorization, sent in Payment-Authorization: refused before the method runs.
    const plain = await pay(await shop.request('/plain'))
    const moved = await shop.request('/usage', { authorization: `Bearer ${token}`, 'payment-authorization': plain.credential })
    expect(moved.status).toBe(402)
    expect(((await moved.json()) as { detail: string }).detail).toContain('issued for credentials in Authorization')
    // The reverse: a Payment-Authorization challenge sent to a default route in Authorization.
    const reverse = await shop.request('/plain', { authorization: credential })
    expect(reverse.status).toBe(402)
    expect(((await reverse.json()) as { detail: string }).detail).toContain('issued for credentials in Payment-Authorization')
    // Dropping `header` from the echo to make it look like an Authorization credential breaks the binding.
    const parsed = Credential.deserialize(credential)
    const { header: _dropped, ...echo } = parsed.challenge
    const stripped = Credential.serialize({ ...parsed, challenge: echo })
    const forged = await shop.request('/usage', { authorization: `Bearer ${token}`, 'payment-authorization': stripped })
    expect(((await forged.json()) as { detail: string }).detail).toBe('the challenge was not issued by this server')
    expect(shop.primary.state.settled).toHaveLength(0)
  })

  it('error: an Idempotency-Key with the same Bearer token but no payment is not a replay', async () => {
    const shop = setup()
    const { credential } = await pay(await shop.request('/usage', { authorization: `Bearer ${token}` }))
    const key = crypto.randomUUID()
    const paid = await shop.request('/usage', { authorization: `Bearer ${token}`, 'payment-authorization': credential, 'idempotency-key': key })
    expect(paid.status).toBe(200)
    const replay = await shop.request('/usage', { authorization: `Bearer ${token}`, 'payment-authorization': credential, 'idempotency-key': key })
    expect(replay.status).toBe(200)
    expect(shop.seen).toHaveLength(1) // replayed, the handler did not run again
    const unpaid = await shop.request('/usage', { authorization: `Bearer ${token}`, 'idempotency-key': key })
    expect(unpaid.status).toBe(402)
  })

  it('behavior: racing identical credentials in Payment-Authorization give exactly one success', async () => {
    const shop = setup()
    shop.primary.state.delayMs = 50
    const { credential } = await pay(await shop.request('/usage', { authorization: `Bearer ${token}` }))
    const statuses = await Promise.all(
      Array.from({ length: 6 }, () => shop.request('/usage', { authorization: `Bearer ${token}`, 'payment-authorization': credential }).then((r) => r.status)),
    )
    expect(statuses.filter((s) => s === 200)).toHaveLength(1)
    expect(shop.primary.state.settled).toHaveLength(1)
  })

  it('error: any other credential header fails at start-up', () => {
    const primary = ledger()
    const options = { realm: 'r', secret, methods: [primary.method], store: () => ({}) as never }
    expect(() => payment({ ...options, credentialHeader: 'Proxy-Authorization' as never })).toThrow(Server.ConfigError)
    const pay = payment(options)
    expect(() => pay.charge({ amount: '1' }, { credentialHeader: 'Cookie' as never })).toThrow(/credentialHeader must be "Payment-Authorization"/)
  })
})

describe('the header auth-param in the core', () => {
  const fields = { id: 'x'.repeat(43), realm: 'r', method: 'tempo', intent: 'charge', request: {} }
  it('error: a challenge naming any field but Payment-Authorization is refused, parsed or formatted', () => {
    for (const header of ['Host', 'Content-Length', 'Proxy-Authorization', 'Cookie']) {
      expect(() => Challenge.deserialize(`Payment id="a", realm="r", method="tempo", intent="charge", request="e30", header="${header}"`)).toThrow(Challenge.ChallengeParseError)
      expect(() => Challenge.serialize({ ...fields, header })).toThrow(Challenge.ChallengeFormatError)
      const echoed = Credential.serialize({ challenge: { ...fields, header }, payload: {} })
      expect(() => Credential.deserialize(echoed)).toThrow(Credential.CredentialParseError)
    }
  })

  it('behavior: Payment-Authorization in any case is accepted and sent verbatim; Authorization stays implicit', () => {
    expect(Challenge.deserialize('Payment id="a", realm="r", method="tempo", intent="charge", request="e30", header="payment-authorization"').header).toBe('payment-authorization')
    expect(Challenge.credentialHeader({ header: 'payment-authorization' })).toBe('Payment-Authorization')
    expect(Challenge.credentialHeader({ header: 'AUTHORIZATION' })).toBe('Authorization')
    expect(Challenge.credentialHeader({})).toBe('Authorization')
    expect(Challenge.serialize({ ...fields, header: 'Authorization' })).not.toContain('header=')
  })
})
