import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { describe, expect, it } from 'vitest'
import * as Challenge from '../../src/core/Challenge.js'
import type * as Session from '../../src/core/Session.js'
import { createGateway } from '../../src/gateway/gateway.js'
import { PricingError, parsePricing } from '../../src/gateway/pricing.js'
import { ledger } from '../support/ledger-method.js'
import { ledgerSession, pathUsd } from '../support/ledger-session.js'
import { meteredGateway, open, readEvents, receiptOf, sessionChallenge, sessionPayer, spent, until, voucher } from './session-support.js'
import { base, testEnv } from './support.js'

const payee = privateKeyToAccount(generatePrivateKey())

// Prices in pathUSD (6 decimals): a request 1000 base units, an event 100, a token 1 in and 2 out.
const pricing = {
  service: { title: 'Metered API', version: '1.0.0' },
  methods: { tempo: {}, ledger: {} },
  routes: [
    { pattern: '/meter/report', method: ['GET', 'POST'], intent: 'session', session: { unit: 'request', price: '0.001' }, description: 'A report' },
    { pattern: '/sse/events', method: ['GET', 'POST'], intent: 'session', session: { unit: 'event', price: '0.0001', suggestedDeposit: '0.01' } },
    { pattern: '/missing', method: ['GET', 'POST'], intent: 'session', session: { unit: 'request', price: '0.001' } },
    { pattern: '/meter/both', method: ['GET', 'POST'], intent: ['charge', 'session'], price: '0.01', session: { unit: 'request', price: '0.001' }, accept: [{ method: 'ledger' }, { method: 'tempo' }] },
    {
      pattern: '/llm/v1/:api(chat/completions|completions|responses)',
      method: 'POST',
      intent: 'session',
      session: { unit: 'tokens', input: '0.000001', output: '0.000002', maxInputTokens: 1000, maxOutputTokens: 50 },
    },
    { pattern: '/llm/bytes/v1/chat/completions', method: 'POST', intent: 'session', session: { unit: 'tokens', input: '0.000001', output: '0.000002', maxOutputTokens: 50 } },
  ],
}

const setup = () => meteredGateway(pricing, payee.address)
const payer = (deposit?: bigint) => sessionPayer(payee.address, deposit)

describe('gateway: session pricing table', () => {
  it('error: session entries are checked at load, naming the entry', async () => {
    const table = (route: Record<string, unknown>) => ({ ...pricing, routes: [{ pattern: '/x', method: 'POST', ...route }] })
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ intent: 'session' }, /routes\[0\] \(POST \/x\).*"session" intent needs "session"/],
      [{ intent: 'session', session: { unit: 'tokens', price: '0.1' } }, /routes\[0\] \(POST \/x\).*"tokens" session takes "input" and "output"/],
      [{ intent: 'session', session: { unit: 'tokens', input: '0.1', output: '0.2' } }, /needs "maxOutputTokens"/],
      [{ intent: 'session', session: { unit: 'event', price: '0.1', maxOutputTokens: 5 } }, /belong to a "tokens" session/],
      [{ intent: 'session', session: { unit: 'request', price: '0.1', allowFields: ['top_k'] } }, /belong to a "tokens" session/],
      [{ intent: 'session', session: { unit: 'tokens', input: '0.1', output: '0.2', maxOutputTokens: 5, allowFields: ['max_tokens'] } }, /allowFields\[0\].*read by the gateway itself/],
      [{ intent: 'session', session: { unit: 'minute', price: '0.1' } }, /must be "request", "event" or "tokens"/],
      [{ price: '0.1', session: { unit: 'request', price: '0.1' } }, /"session" intent needs "session" \(and only it takes one\)/],
      [{ intent: 'session', price: '0.1', session: { unit: 'request', price: '0.1' } }, /a route without that intent takes none/],
      [{ intent: ['session', 'session'], session: { unit: 'request', price: '0.1' } }, /must not repeat an intent/],
    ]
    for (const [route, message] of cases) expect(() => parsePricing(table(route)), JSON.stringify(route)).toThrow(message)
    expect(() => parsePricing(table({ intent: 'session', session: { unit: 'tokens', input: '0.1', output: '0.2', maxOutputTokens: 5 } }))).not.toThrow()
    // A price the method cannot express, and a method with no session side, fail when the gateway is built.
    const build = (route: Record<string, unknown>) => () =>
      createGateway({ pricing: table(route), env: testEnv, factories: { ledger: () => ledger().method, tempo: () => ledger({ name: 'tempo' }).method }, sessionFactories: { tempo: () => ledgerSession(payee.address).method } })
    // The deployed tempo session factory: the payee key is a secret, and prices finer than the token's decimals are refused.
    const deployed = (route: Record<string, unknown>, env: Record<string, unknown>) => () =>
      createGateway({ pricing: tempoTable(route), env: { ...testEnv, ...env }, factories: { tempo: () => ledger({ name: 'tempo' }).method } })
    const key = generatePrivateKey()
    const tempoTable = (route: Record<string, unknown>) => ({ ...table(route), methods: { tempo: { chainId: 42431, recipient: privateKeyToAccount(key).address } } })
    expect(deployed({ intent: 'session', session: { unit: 'request', price: '0.001' } }, { TEMPO_PAYEE_KEY: undefined })).toThrow(/methods\.tempo \(session\): TEMPO_PAYEE_KEY is missing/)
    expect(deployed({ intent: 'session', session: { unit: 'request', price: '0.0000001' } }, { TEMPO_PAYEE_KEY: key })).toThrow(PricingError)
    expect(deployed({ intent: 'session', session: { unit: 'request', price: '0.001' } }, { TEMPO_PAYEE_KEY: key })).not.toThrow()
    // Protocol v1 (a TempoStreamChannel escrow) is a table setting; it needs its escrow, and takes no operator.
    const v1Table = (session: Record<string, unknown>) => ({
      ...table({ intent: 'session', session: { unit: 'request', price: '0.001' } }),
      methods: { tempo: { chainId: 42431, recipient: privateKeyToAccount(key).address, session } },
    })
    const v1 = (session: Record<string, unknown>) => () =>
      createGateway({ pricing: v1Table(session), env: { ...testEnv, TEMPO_PAYEE_KEY: key, RATE_LIMIT_CHALLENGES: '0' }, factories: { tempo: () => ledger({ name: 'tempo' }).method }, log: () => {} })
    expect(v1({ sessionProtocol: 'v1' })).toThrow(/methods\.tempo \(session\):.*escrow.*required/)
    expect(v1({ sessionProtocol: 'v1', escrow: payee.address, operator: payee.address })).toThrow(/methods\.tempo \(session\):.*operator/)
    expect(v1({ sessionProtocol: 'v3' })).toThrow(/methods\.tempo/)
    const escrowV1 = privateKeyToAccount(generatePrivateKey()).address.toLowerCase()
    const unpaid = await v1({ sessionProtocol: 'v1', escrow: escrowV1 })().fetch(new Request(`${base}/x`, { method: 'POST' }))
    expect(sessionChallenge(unpaid).request).toMatchObject({ methodDetails: { sessionProtocol: 'v1', escrowContract: escrowV1 } })
    expect(build({ intent: 'session', session: { unit: 'request', price: '0.1' }, accept: [{ method: 'ledger' }] })).toThrow(/routes\[0\] \(POST \/x\) accept\[0\] \(ledger\).*does not serve the "session" intent/)
  })

  it('behavior: an unpaid request gets the session challenge (beside the charge ones where both are offered), touching no storage; /openapi.json advertises the session offers', async () => {
    const t = setup()
    const challenge = sessionChallenge(await t.request('/meter/report'))
    expect(challenge.request).toMatchObject({ amount: '1000', unitType: 'request', currency: pathUsd, recipient: payee.address.toLowerCase() })
    const both = await t.request('/meter/both')
    expect(Challenge.fromResponse(both).map((c) => `${c.method}/${c.intent}`)).toEqual(['ledger/charge', 'tempo/charge', 'tempo/session'])
    const tokens = sessionChallenge(await t.request('/llm/v1/chat/completions', { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } }))
    expect(tokens.request).toMatchObject({ amount: '2', unitType: 'llm_token' })
    expect((await t.origin()).hits).toBe(0)
    // The same with every Durable Object failing on use: the 402 path touches none.
    const untouchable = { idFromName: () => { throw new Error('storage touched') }, get: () => { throw new Error('storage touched') } }
    const storageFree = createGateway({
      pricing,
      env: { ...testEnv, RATE_LIMIT_CHALLENGES: '0', RATE_LIMIT_VERIFICATIONS: '0', CHANNEL_STATE: untouchable, PAYER_CHANNELS: untouchable, REPLAY_GUARD: untouchable, IDEMPOTENCY_CACHE: untouchable } as never,
      factories: { ledger: () => ledger().method, tempo: () => ledger({ name: 'tempo' }).method },
      sessionFactories: { tempo: () => t.session.method },
    })
    for (const path of ['/meter/report', '/meter/both', '/sse/events']) expect((await storageFree.fetch(new Request(`${base}${path}`))).status).toBe(402)

    const document = (await (await t.request('/openapi.json')).json()) as { paths: Record<string, Record<string, { 'x-payment-info'?: { offers: unknown[] } }>> }
    expect(document.paths['/meter/report']!.get!['x-payment-info']!.offers).toEqual([
      { intent: 'session', method: 'tempo', amount: '1000', currency: pathUsd, description: 'A report. Session, 1000 base units per request' },
    ])
    expect(document.paths['/sse/events']!.get!['x-payment-info']!.offers).toEqual([{ intent: 'session', method: 'tempo', amount: '100', currency: pathUsd, description: 'Session, 100 base units per streamed event' }])
    expect(document.paths['/meter/both']!.get!['x-payment-info']!.offers).toMatchObject([{ intent: 'charge', method: 'ledger' }, { intent: 'charge', method: 'tempo' }, { intent: 'session', method: 'tempo', amount: '1000' }])
    const llm = Object.entries(document.paths).find(([path]) => path.startsWith('/llm/v1/'))![1]
    expect(llm.post!['x-payment-info']!.offers).toEqual([{ intent: 'session', method: 'tempo', amount: null, currency: pathUsd, description: 'Session, per token: input 1, output 2 base units' }])
  })
})

describe('gateway: session routes', () => {
  it('behavior: unit "request": open then vouchers pay request after request; the origin never sees payment material; an origin error is not charged', async () => {
    const t = setup()
    const p = payer()
    const challenge = sessionChallenge(await t.request('/meter/report'))
    const first = await t.request('/meter/report?q=1', { headers: { authorization: await open(challenge, p, 1000n), 'payment-receipt': 'x', 'x-keep': 'yes' } })
    expect(first.status).toBe(200)
    expect(receiptOf(first)).toMatchObject({ intent: 'session', channelId: p.channelId, spent: '1000', units: 1 })
    expect(first.headers.get('payment-session')).toBe(p.channelId)
    const seen = (await first.json()) as { headers: Record<string, string>; search: string }
    expect(seen.search).toBe('?q=1')
    expect(seen.headers['x-keep']).toBe('yes')
    for (const name of ['authorization', 'payment-authorization', 'payment-receipt']) expect(seen.headers[name]).toBeUndefined()
    expect(JSON.stringify(seen)).not.toContain('Payment ')

    const second = await t.request('/meter/report', { headers: { authorization: await voucher(challenge, p, 2000n) } })
    expect(second.status).toBe(200)
    expect(receiptOf(second)).toMatchObject({ spent: '2000', acceptedCumulative: '2000' })

    // The origin answers 404: nothing is charged and no receipt is sent.
    const missingChallenge = sessionChallenge(await t.request('/missing'))
    const q = payer()
    const missing = await t.request('/missing', { headers: { authorization: await open(missingChallenge, q, 1000n) } })
    expect(missing.status).toBe(404)
    expect(missing.headers.get('payment-receipt')).toBeNull()
    expect(await spent(q)).toBe(0n)
  })

  it('race: two requests racing with the same voucher: exactly one is served', async () => {
    const t = setup()
    const p = payer()
    const challenge = sessionChallenge(await t.request('/meter/report'))
    expect((await t.request('/meter/report', { headers: { authorization: await open(challenge, p, 1000n) } })).status).toBe(200)
    const credential = await voucher(challenge, p, 2000n)
    const answers = await Promise.all(Array.from({ length: 4 }, () => t.request('/meter/report', { headers: { authorization: credential } })))
    expect(answers.map((a) => a.status).sort()).toEqual([200, 402, 402, 402])
    expect(await spent(p)).toBe(2000n)
    expect((await t.origin()).hits).toBe(2)
  })

  it('behavior: unit "event": each data event costs one unit (comments, keep-alives and [DONE] are free); an exhausted balance asks for a voucher mid-stream and the stream goes on once it arrives', async () => {
    const t = setup()
    const p = payer()
    const challenge = sessionChallenge(await t.request('/sse/events'))
    // The open voucher covers one event (the unit taken up front); the stream asks for the rest.
    const response = await t.request('/sse/events?n=3', { headers: { authorization: await open(challenge, p, 100n) } })
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe('text/event-stream')
    const vouchers: string[] = []
    const events = await readEvents(response, async (event) => {
      if (event.event !== 'payment-need-voucher') return
      const need = JSON.parse(event.data) as Session.NeedVoucher
      vouchers.push(need.requiredCumulative)
      const answer = await t.request('/sse/events', { method: 'POST', headers: { authorization: await voucher(challenge, p, BigInt(need.requiredCumulative)) } })
      expect(answer.status).toBe(204)
    })
    expect(vouchers).toEqual(['200', '300'])
    // The origin's events pass byte for byte, ids included.
    expect(events.filter((e) => e.event === 'message').map((e) => e.raw)).toEqual([': hello\n\n', 'id: 0\ndata: event 0\n\n', 'id: 1\ndata: event 1\n\n', 'id: 2\ndata: event 2\n\n', ':\n\n', 'data: [DONE]\n\n'])
    const final = events.at(-1)!
    expect(final.event).toBe('payment-receipt')
    expect(JSON.parse(final.data)).toMatchObject({ spent: '300', units: 3, acceptedCumulative: '300' })
    expect(await spent(p)).toBe(300n)
  })

  it('behavior: unit "event": a payer who goes away stops the origin stream and pays only for the events delivered', async () => {
    const t = setup()
    const p = payer()
    const challenge = sessionChallenge(await t.request('/sse/events'))
    const response = await t.request('/sse/events?n=50&delay=50', { headers: { authorization: await open(challenge, p, 5000n) } })
    expect(response.status).toBe(200)
    const events = await readEvents(response, (_, seen) => seen.filter((e) => /^data: event/m.test(e.raw)).length === 3)
    expect(events.filter((e) => /^data: event/m.test(e.raw))).toHaveLength(3)
    await until(async () => (await t.origin()).cancelled === 1)
    expect(await spent(p)).toBe(300n)
  })

  it('behavior: unit "tokens", unstreamed: the reserve (the forwarded body\'s size, the default output limit sent to the origin) settles to the reported usage', async () => {
    const t = setup()
    const p = payer()
    const challenge = sessionChallenge(await t.request('/llm/v1/chat/completions', { method: 'POST', body: '{}' }))
    const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] })
    // Reserve: one input token per byte of the forwarded body (84) at 1 + 50 output tokens at 2 = 184.
    const response = await t.request('/llm/v1/chat/completions', { method: 'POST', body, headers: { authorization: await open(challenge, p, 200n), 'content-type': 'application/json' } })
    expect(response.status).toBe(200)
    const json = (await response.json()) as { usage: unknown; received: { body: Record<string, unknown>; headers: Record<string, string> } }
    expect(json.received.body).toMatchObject({ model: 'm', max_completion_tokens: 50 })
    expect(json.received.headers.authorization).toBeUndefined()
    // Usage 7 in, 5 out: 7 + 10.
    expect(receiptOf(response)).toMatchObject({ spent: '17', units: 12, usage: 'reported' })
    expect(await spent(p)).toBe(17n)
  })

  it('behavior: unit "tokens", streamed: usage is asked for and settled; no usage is charged the reserve and says so', async () => {
    const t = setup()
    const p = payer()
    const challenge = sessionChallenge(await t.request('/llm/v1/chat/completions', { method: 'POST', body: '{}' }))
    const body = JSON.stringify({ model: 'm', stream: true, max_tokens: 20, messages: [] })
    // Reserve: the forwarded body's size in + 20 out (the request's own limit).
    const streamed = await t.request('/llm/v1/chat/completions', { method: 'POST', body, headers: { authorization: await open(challenge, p, 140n) } })
    expect(streamed.status).toBe(200)
    const events = await readEvents(streamed)
    const first = JSON.parse(events.find((e) => e.data.includes('received'))!.data) as { received: { body: Record<string, unknown> } }
    expect(first.received.body).toMatchObject({ stream: true, max_tokens: 20, stream_options: { include_usage: true } })
    expect(first.received.body.max_completion_tokens).toBeUndefined()
    expect(events.some((e) => e.data === '[DONE]')).toBe(true)
    expect(JSON.parse(events.at(-1)!.data)).toMatchObject({ spent: '17', usage: 'reported' })

    // No usage reported: the reserve (the body's 37 bytes in, 10 out at 2), and the receipt says it is the reserve.
    const responses = sessionChallenge(await t.request('/llm/v1/responses', { method: 'POST', body: '{}' }))
    const none = await t.request('/llm/v1/responses', { method: 'POST', body: JSON.stringify({ input: 'hi', max_output_tokens: 10 }), headers: { authorization: await voucher(responses, p, 141n), 'x-no-usage': '1' } })
    expect(none.status, await none.clone().text()).toBe(200)
    expect(receiptOf(none)).toMatchObject({ spent: String(17 + 57), usage: 'reserved' })
    expect(await spent(p)).toBe(74n)
  })

  it('behavior: unit "tokens": the forwarded body\'s size bounds the input; too small a voucher is a 402 naming the top-up, and the origin is not called', async () => {
    const t = setup()
    const p = payer()
    const challenge = sessionChallenge(await t.request('/llm/bytes/v1/chat/completions', { method: 'POST', body: '{}' }))
    const body = JSON.stringify({ messages: [{ role: 'user', content: 'x'.repeat(30) }] })
    // As forwarded, with the default output limit written in.
    const forwarded = JSON.stringify({ ...(JSON.parse(body) as object), max_completion_tokens: 50 })
    const reserve = BigInt(new TextEncoder().encode(forwarded).length) + 50n * 2n
    const short = await t.request('/llm/bytes/v1/chat/completions', { method: 'POST', body, headers: { authorization: await open(challenge, p, 2n) } })
    expect(short.status).toBe(402)
    expect(await short.json()).toMatchObject({ type: 'https://paymentauth.org/problems/session/insufficient-balance', requiredTopUp: String(reserve - 2n) })
    expect((await t.origin()).hits).toBe(0)
    const paid = await t.request('/llm/bytes/v1/chat/completions', { method: 'POST', body, headers: { authorization: await voucher(challenge, p, reserve) } })
    expect(paid.status).toBe(200)
    expect(receiptOf(paid)).toMatchObject({ spent: '17', usage: 'reported' })
  })

  it('behavior: unit "tokens": a payer who goes away before the usage arrived pays the input reserve and a token per byte of the output forwarded', async () => {
    const t = setup()
    const p = payer()
    const challenge = sessionChallenge(await t.request('/llm/v1/chat/completions', { method: 'POST', body: '{}' }))
    const body = JSON.stringify({ stream: true, messages: [] })
    const reply = Array.from({ length: 40 }, (_, i) => `w${i}`).join(' ')
    const response = await t.request(`/llm/v1/chat/completions?delay=50&reply=${encodeURIComponent(reply)}`, { method: 'POST', body, headers: { authorization: await open(challenge, p, 200n) } })
    expect(response.status).toBe(200)
    const events = await readEvents(response, (_, seen) => seen.filter((e) => e.data.includes('"content"')).length === 3)
    expect(events.filter((e) => e.data.includes('"content"'))).toHaveLength(3)
    await until(async () => (await t.origin()).cancelled === 1)
    // The settlement outlives the response: it is handed to waitUntil, so the runtime keeps it alive.
    await until(async () => t.pending.length === 1)
    await Promise.all(t.pending)
    // In: the forwarded body's bytes. Out: the role delta (at least one) and three deltas of 3 bytes ("w0 "), at 2.
    const forwarded = JSON.stringify({ ...(JSON.parse(body) as object), max_completion_tokens: 50, stream_options: { include_usage: true } })
    expect(await spent(p)).toBe(BigInt(new TextEncoder().encode(forwarded).length) + (1n + 3n * 3n) * 2n)
  })
})
