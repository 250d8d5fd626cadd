/**
 * S5 — the meter never undercounts: per-token and per-event session routes of the gateway against payers who craft
 * bodies that make the origin do more than was reserved, and origins whose answers are hard to count.
 */
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { describe, expect, it } from 'vitest'
import { sseEvents } from '../../src/gateway/sse.js'
import { type Event, meteredGateway, open, readEvents, receiptOf, sessionChallenge, sessionPayer, spent, until, voucher } from './session-support.js'

const payee = privateKeyToAccount(generatePrivateKey())

// pathUSD base units: a token 1 in and 2 out (the demo's 10 and 20 on /demo), an event 100.
const pricing = {
  service: { title: 'Metered API', version: '1.0.0' },
  methods: { tempo: {} },
  routes: [
    {
      pattern: '/llm/v1/:api(chat/completions|completions|responses)',
      method: 'POST',
      intent: 'session',
      session: { unit: 'tokens', input: '0.000001', output: '0.000002', maxInputTokens: 1000, maxOutputTokens: 50 },
    },
    {
      pattern: '/llm/demo/v1/chat/completions',
      method: 'POST',
      intent: 'session',
      session: { unit: 'tokens', input: '0.00001', output: '0.00002', maxInputTokens: 1000, maxOutputTokens: 256 },
    },
    {
      pattern: '/llm/allow/v1/chat/completions',
      method: 'POST',
      intent: 'session',
      session: { unit: 'tokens', input: '0.000001', output: '0.000002', maxOutputTokens: 50, allowFields: ['top_k'] },
    },
    { pattern: '/sse/events', method: ['GET', 'POST'], intent: 'session', session: { unit: 'event', price: '0.0001' } },
  ],
}

const words = (n: number) => Array.from({ length: n }, (_, i) => `w${i}`).join(' ')
const bytes = (text: string) => new TextEncoder().encode(text).length
const json = { 'content-type': 'application/json' }

function setup(log?: (line: string) => void) {
  const t = meteredGateway(pricing, payee.address, { log })
  const challenges = new Map<string, Awaited<ReturnType<typeof sessionChallenge>>>()
  /** The session challenge of a route (asked once per path). */
  const challenge = async (path: string) => {
    if (!challenges.has(path)) challenges.set(path, sessionChallenge(await t.request(path, { method: 'POST', body: '{}', headers: json })))
    return challenges.get(path)!
  }
  /** Opens a fresh channel with a voucher for `cumulative` and sends `body` to `path` on it. */
  const paid = async (path: string, body: unknown, cumulative = 10_000n, headers: Record<string, string> = {}) => {
    const p = sessionPayer(payee.address, 100_000n)
    const url = path.split('?')[0]!
    const response = await t.request(path, { method: 'POST', body: JSON.stringify(body), headers: { ...json, ...headers, authorization: await open(await challenge(url), p, cumulative) } })
    return { p, response }
  }
  return { ...t, challenge, paid }
}

describe('S5 — per-token routes: what a request can make the origin produce is reserved or refused', () => {
  it('S5 — an abandoned per-token stream pays for every generated delta it forwarded: tool-call arguments, reasoning, refusals, audio and whole-message chunks (chat), and the responses API\'s other *.delta events', async () => {
    const t = setup()
    const cases = [
      ...(['tool', 'reasoning', 'refusal', 'audio', 'message', 'content'] as const).map((kind) => ({ api: 'chat/completions', kind, body: { stream: true, max_completion_tokens: 40, messages: [{ role: 'user', content: 'go' }] } })),
      ...(['tool', 'reasoning', 'refusal', 'audio', 'content'] as const).map((kind) => ({ api: 'responses', kind, body: { stream: true, max_output_tokens: 40, input: 'go' } })),
    ]
    for (const { api, kind, body } of cases) {
      const { p, response } = await t.paid(`/llm/v1/${api}?delay=30&kind=${kind}&reply=${words(40)}`, body)
      expect(response.status, `${api} ${kind}`).toBe(200)
      // The reserve taken up front (held in the channel; receipts count only what delivered work cost): the input
      // bound and 40 output tokens at 2.
      const reserve = await spent(p)
      expect(receiptOf(response).spent).toBe('0')
      const input = reserve - 80n
      const generated = (e: Event) => (api === 'responses' ? e.event.endsWith('.delta') : /"(delta|message)"/.test(e.data) && !e.data.includes('"role"'))
      const seen = await readEvents(response, (_, all) => all.filter(generated).length === 3)
      expect(seen.filter(generated)).toHaveLength(3)
      await until(async () => t.pending.length > 0)
      await Promise.all(t.pending.splice(0))
      const charged = await spent(p)
      // At least one output token per generated delta forwarded, never more than the reserve.
      expect(charged, `${api} ${kind}: charged ${charged} of reserve ${reserve}`).toBeGreaterThanOrEqual(input + 3n * 2n)
      expect(charged).toBeLessThanOrEqual(reserve)
    }
  })

  it('S5 — n, best_of and a list of prompts multiply the output reserve, and the payer pays the usage of every choice', async () => {
    const t = setup()
    const cases: [string, Record<string, unknown>, number][] = [
      ['chat/completions', { n: 8, max_completion_tokens: 50, messages: [{ role: 'user', content: 'go' }] }, 8],
      ['chat/completions', { n: 3, stream: true, max_tokens: 50, messages: [{ role: 'user', content: 'go' }] }, 3],
      ['completions', { best_of: 3, max_tokens: 50, prompt: 'go' }, 3],
      ['completions', { n: 2, max_tokens: 50, prompt: ['a', 'b', 'c', 'd'] }, 8],
    ]
    for (const [api, body, choices] of cases) {
      const { p, response } = await t.paid(`/llm/v1/${api}?reply=${words(50)}`, body)
      expect(response.status, `${api} ${JSON.stringify(body)}`).toBe(200)
      if (body.stream) await readEvents(response)
      else await response.arrayBuffer()
      // The origin generated 50 tokens per choice and reports 7 in.
      expect(await spent(p), `${api} ${JSON.stringify(body)}`).toBe(7n + BigInt(50 * choices) * 2n)
    }
  })

  it('S5 — maxInputTokens bounds what is forwarded: a request that may hold more input tokens (one per byte) is refused with 413 before the origin is called', async () => {
    const t = setup()
    const { p, response } = await t.paid('/llm/v1/chat/completions', { max_completion_tokens: 5, messages: [{ role: 'user', content: 'x'.repeat(51_000) }] }, 60_000n, { 'x-usage-input': '51000' })
    expect(response.status).toBe(413)
    expect(await response.json()).toMatchObject({ type: 'https://paymentauth.org/problems/content-too-large', detail: expect.stringMatching(/maxInputTokens.*1000/) })
    expect(await spent(p)).toBe(0n)
    expect((await t.origin()).hits).toBe(0)
  })

  it('S5 — input the body does not bound (images, audio, files, stored prompts and responses, hosted tools) is refused with 400 before the origin is called', async () => {
    const t = setup()
    const user = (content: unknown) => ({ max_completion_tokens: 5, messages: [{ role: 'user', content }] })
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ['chat/completions', user([{ type: 'text', text: 'what is this?' }, { type: 'image_url', image_url: { url: 'https://example.com/a.png' } }]), /image_url/],
      ['chat/completions', user([{ type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } }]), /input_audio/],
      ['chat/completions', user([{ type: 'file', file: { file_id: 'file-abc' } }]), /file/],
      ['chat/completions', { max_completion_tokens: 5, messages: [{ role: 'assistant', audio: { id: 'audio_abc' } }, { role: 'user', content: 'again' }] }, /audio/],
      ['chat/completions', { ...user('search'), web_search_options: {} }, /web_search_options/],
      ['chat/completions', { ...user('hi'), tools: [{ type: 'web_search' }] }, /web_search/],
      ['chat/completions', { ...user('hi'), vendor_plugins: [{ id: 'web' }] }, /vendor_plugins/],
      ['responses', { max_output_tokens: 5, input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'https://example.com/a.png' }] }] }, /input_image/],
      ['responses', { max_output_tokens: 5, input: [{ role: 'user', content: [{ type: 'input_file', file_id: 'file-abc' }] }] }, /input_file/],
      ['responses', { max_output_tokens: 5, input: 'and then?', previous_response_id: 'resp_abc' }, /previous_response_id/],
      ['responses', { max_output_tokens: 5, prompt: { id: 'pmpt_abc' } }, /prompt/],
      ['responses', { max_output_tokens: 5, input: 'hi', conversation: 'conv_abc' }, /conversation/],
      ['responses', { max_output_tokens: 5, input: [{ type: 'item_reference', id: 'msg_abc' }] }, /item_reference/],
      ['responses', { max_output_tokens: 5, input: 'hi', tools: [{ type: 'file_search', vector_store_ids: ['vs_abc'] }] }, /file_search/],
      ['responses', { max_output_tokens: 5, input: 'hi', background: true }, /background/],
    ]
    for (const [api, body, field] of cases) {
      const { p, response } = await t.paid(`/llm/v1/${api}`, body, 10_000n, { 'x-usage-input': '1105' })
      expect(response.status, `${api} ${JSON.stringify(body)}`).toBe(400)
      expect(await response.json()).toMatchObject({ type: 'https://paymentauth.org/problems/bad-request', detail: expect.stringMatching(field) })
      expect(await spent(p)).toBe(0n)
    }
    expect((await t.origin()).hits).toBe(0)
    // A field the operator allows is forwarded as sent.
    const allowed = await t.paid('/llm/allow/v1/chat/completions', { top_k: 5, messages: [{ role: 'user', content: 'go' }] })
    expect(allowed.response.status).toBe(200)
    expect(((await allowed.response.json()) as { received: { body: Record<string, unknown> } }).received.body).toMatchObject({ top_k: 5, max_completion_tokens: 50 })
  })

  it('S5 — a body shaped to slip past the checks (content that is neither text nor a list of parts, a limit whose reserve no number holds) is refused with 400, never served or a 500', async () => {
    const t = setup()
    const cases: [string, Record<string, unknown>][] = [
      ['chat/completions', { max_completion_tokens: 5, messages: [{ role: 'user', content: { type: 'image_url', image_url: { url: 'https://example.com/a.png' } } }] }],
      ['responses', { max_output_tokens: 5, input: [{ role: 'user', content: { type: 'input_image', image_url: 'https://example.com/a.png' } }] }],
      ['chat/completions', { max_completion_tokens: Number.MAX_SAFE_INTEGER, messages: [{ role: 'user', content: 'go' }] }],
      ['completions', { max_tokens: 2 ** 40, n: 2 ** 20, prompt: 'go' }],
      ['chat/completions', { stream: 'true', messages: [{ role: 'user', content: 'go' }] }],
    ]
    for (const [api, body] of cases) {
      const { p, response } = await t.paid(`/llm/v1/${api}`, body)
      expect(response.status, `${api} ${JSON.stringify(body)}`).toBe(400)
      expect(await response.json()).toMatchObject({ type: 'https://paymentauth.org/problems/bad-request' })
      expect(await spent(p)).toBe(0n)
    }
    expect((await t.origin()).hits).toBe(0)
  })

  it('S5 — only the output limit field the target API honours sets the reserve, conflicting ones are refused, and the origin always receives the reserved bound in that field', async () => {
    const t = setup()
    const refused: [string, Record<string, unknown>][] = [
      ['chat/completions', { max_output_tokens: 1, messages: [{ role: 'user', content: 'go' }] }],
      ['chat/completions', { max_tokens: 1, max_completion_tokens: 40, messages: [{ role: 'user', content: 'go' }] }],
      ['responses', { max_tokens: 1, input: 'go' }],
      ['responses', { max_completion_tokens: 1, input: 'go' }],
      ['completions', { max_completion_tokens: 1, prompt: 'go' }],
      ['completions', { max_output_tokens: 1, prompt: 'go' }],
    ]
    for (const [api, body] of refused) {
      const { p, response } = await t.paid(`/llm/v1/${api}?reply=${words(2000)}`, body)
      expect(response.status, `${api} ${JSON.stringify(body)}`).toBe(400)
      expect(await response.json()).toMatchObject({ type: 'https://paymentauth.org/problems/bad-request', detail: expect.stringMatching(/max_/) })
      expect(await spent(p)).toBe(0n)
    }
    expect((await t.origin()).hits).toBe(0)
    // Accepted: the origin receives the bound in the field it reads, and generates at most that.
    const accepted: [string, Record<string, unknown>, string, number][] = [
      ['chat/completions', { messages: [{ role: 'user', content: 'go' }] }, 'max_completion_tokens', 50],
      ['chat/completions', { max_tokens: 12, messages: [{ role: 'user', content: 'go' }] }, 'max_tokens', 12],
      ['responses', { input: 'go' }, 'max_output_tokens', 50],
      ['completions', { prompt: 'go' }, 'max_tokens', 50],
    ]
    for (const [api, body, field, limit] of accepted) {
      const { p, response } = await t.paid(`/llm/v1/${api}?reply=${words(2000)}`, body)
      expect(response.status).toBe(200)
      const answer = (await response.json()) as { received: { body: Record<string, unknown> } }
      expect(answer.received.body[field], `${api} ${field}`).toBe(limit)
      expect(await spent(p)).toBe(7n + BigInt(limit) * 2n)
    }
  })

  it('S5 — usage above the reserve is charged from the channel\'s balance where the vouchers cover it, and recorded as an event where they do not', async () => {
    const lines: string[] = []
    const t = setup((line) => lines.push(line))
    const body = { max_completion_tokens: 20, messages: [{ role: 'user', content: 'go' }] }
    // The vouchers cover more than the reserve: the whole usage (5000 in, 900 out) is charged.
    const covered = await t.paid('/llm/v1/chat/completions', body, 10_000n, { 'x-usage-input': '5000', 'x-usage-output': '900' })
    expect(covered.response.status).toBe(200)
    await covered.response.arrayBuffer()
    expect(await spent(covered.p)).toBe(5000n + 900n * 2n)
    expect(lines.filter((line) => line.includes('usage-above-reserve'))).toEqual([])

    // The vouchers cover 100 more than the reserve: that much is charged, the rest recorded.
    const reserveOf = async () => {
      const probe = await t.paid('/llm/v1/chat/completions', body, 1n)
      expect(probe.response.status).toBe(402)
      return BigInt(((await probe.response.json()) as { requiredTopUp: string }).requiredTopUp) + 1n
    }
    const reserve = await reserveOf()
    const short = await t.paid('/llm/v1/chat/completions', body, reserve + 100n, { 'x-usage-input': '5000', 'x-usage-output': '900' })
    expect(short.response.status).toBe(200)
    await short.response.arrayBuffer()
    expect(await spent(short.p)).toBe(reserve + 100n)
    const recorded = lines.map((line) => JSON.parse(line) as Record<string, string>).filter((line) => line.event === 'payment.usage-above-reserve')
    expect(recorded).toHaveLength(1)
    expect(recorded[0]).toMatchObject({ reference: short.p.channelId, detail: expect.stringContaining(`${5000n + 1800n - reserve - 100n} base units`) })
  })
})

describe('S5 — per-event routes: every event forwarded is counted', () => {
  it('S5 — an event route refuses an answer that is not an event stream: nothing forwarded, nothing charged', async () => {
    const t = setup()
    const p = sessionPayer(payee.address)
    const challenge = sessionChallenge(await t.request('/sse/events'))
    const response = await t.request('/sse/events?json=1&n=21', { headers: { authorization: await open(challenge, p, 5000n) } })
    expect(response.status).toBe(502)
    expect(await response.json()).toMatchObject({ type: 'https://paymentauth.org/problems/origin-failed', detail: expect.stringMatching(/event stream/) })
    expect(await spent(p)).toBe(0n)
  })

  it('S5 — an event ends at every blank line the SSE spec allows (LF CR, CRLF CR), so each is charged', async () => {
    const t = setup()
    for (const sep of ['lfcr', 'crlfcr', 'cr', 'crlf']) {
      const p = sessionPayer(payee.address)
      const challenge = sessionChallenge(await t.request('/sse/events'))
      const response = await t.request(`/sse/events?n=3&sep=${sep}`, { headers: { authorization: await open(challenge, p, 5000n) } })
      expect(response.status).toBe(200)
      const text = await response.text()
      expect(text, sep).toContain('data: event 2')
      expect(await spent(p), sep).toBe(300n)
    }
  })

  it('S5 — the SSE reader splits events at each blank line of the SSE spec however the bytes are chunked, and passes them byte for byte', async () => {
    const endings = ['\n', '\r', '\r\n']
    for (const a of endings) {
      for (const b of endings) {
        // CR then LF is one line ending (CRLF), not a blank line.
        if (a === '\r' && b === '\n') continue
        const text = `data: one${a}${b}: note${a}${b}id: 2${a}data: two${a}data: more${a}${b}data: three`
        for (let cut = 0; cut <= text.length; cut++) {
          const chunks = [text.slice(0, cut), text.slice(cut)].map((part) => new TextEncoder().encode(part))
          const reader = new ReadableStream<Uint8Array>({
            start(controller) {
              for (const chunk of chunks) controller.enqueue(chunk)
              controller.close()
            },
          }).getReader()
          const events = []
          for await (const event of sseEvents(reader)) events.push(event)
          const label = JSON.stringify({ a, b, cut })
          expect(events.map((e) => e.raw).join(''), label).toBe(text)
          expect(events.map((e) => e.data).filter((d) => d !== undefined), label).toEqual(['one', 'two\nmore', 'three'])
        }
      }
    }
  })
})

describe('S5 — per-token reserve sizing', () => {
  it('behavior: unit "tokens": the reserve is sized from the request (its size as forwarded, one token per byte, and the output limit it names), so a short prompt asks a small voucher', async () => {
    const t = setup()
    const path = '/llm/demo/v1/chat/completions'
    const body = { messages: [{ role: 'user', content: 'Say hi' }], max_tokens: 16 }
    const short = await t.paid(path, body, 1n)
    expect(short.response.status).toBe(402)
    const { requiredTopUp } = (await short.response.json()) as { requiredTopUp: string }
    const served = await t.request(path, { method: 'POST', body: JSON.stringify(body), headers: { ...json, authorization: await voucher(await t.challenge(path), short.p, 1n + BigInt(requiredTopUp)) } })
    expect(served.status).toBe(200)
    const { received } = (await served.json()) as { received: { body: Record<string, unknown> } }
    // The input bound is the forwarded body's size (10 a token), the output bound its max_tokens (20 a token).
    const forwarded = bytes(JSON.stringify(received.body))
    expect(BigInt(requiredTopUp) + 1n).toBe(BigInt(forwarded) * 10n + 16n * 20n)
    expect(BigInt(requiredTopUp)).toBeLessThan(1500n)
  })
})
