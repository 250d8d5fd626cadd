import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { setup, testEnv } from './support.js'

// GET /cheap is priced and POST /cheap is free: a POST the origin serves as GET gets the priced resource for free.
// POST /v1/exports is priced: a spelling the gateway does not price but the origin routes there is the same leak.
const table = {
  service: { title: 'Disguise API', version: '1.0.0' },
  methods: { ledger: {}, backup: {} },
  routes: [
    { pattern: '/cheap', method: 'POST', free: true },
    { pattern: '/cheap', method: 'GET', price: '1.00' },
    { pattern: '/v1/exports', method: 'POST', price: '1.00' },
  ],
}

type Routed = { framework: string; method: string; path: string }
type Sent = { path?: string; method?: string; type?: string; body?: string | Uint8Array; headers?: Record<string, string> }

/** The request as the test sends it, through the gateway or straight to the origin. */
function init(framework: string, sent: Sent): RequestInit {
  const headers: Record<string, string> = { 'x-framework': framework, ...sent.headers }
  if (sent.type !== undefined) headers['content-type'] = sent.type
  return { method: sent.method ?? 'POST', headers, ...(sent.body !== undefined ? { body: sent.body } : {}) }
}

/** What the framework's origin serves the request as when it reaches it unfiltered. */
async function direct(framework: string, sent: Sent): Promise<Routed> {
  const res = await testEnv.ORIGIN.fetch(new Request(`https://origin${sent.path ?? '/cheap'}`, init(framework, sent)))
  return (await res.json()) as Routed
}

/** Sends the request through the gateway: it must be refused (or priced) and never reach the origin. */
async function throughGateway(framework: string, sent: Sent, pricing: unknown = table) {
  const t = setup({ pricing })
  const res = await t.request(sent.path ?? '/cheap', init(framework, sent))
  const text = await res.text()
  return { status: res.status, text, headers: res.headers, hits: await t.hits(), detail: text.startsWith('{') ? (JSON.parse(text) as { detail?: string }).detail : undefined }
}

const form = 'application/x-www-form-urlencoded'
const multipart = (head: string) => ({ type: 'multipart/form-data; boundary=b', body: `--b\r\n${head}\r\n\r\nGET\r\n--b--\r\n` })

describe('invariant 5: a free method on a priced path is forwarded only when it is provably not a priced request in disguise', () => {
  // Each case: the framework whose default parsing reads it as GET /cheap, and the request.
  const disguised: [string, string, Sent, number][] = [
    ['a JSON body with _method (Laravel input bag)', 'laravel', { type: 'application/json', body: '{"_method":"GET"}' }, 400],
    ['a JSON body with _method (express.json and a body-reading method override)', 'express', { type: 'application/json', body: '{"_method":"GET"}' }, 400],
    ['a multipart part named by Content-ID', 'rack', multipart('Content-ID: _method'), 400],
    ['a multipart name with a quoted-pair', 'rack', multipart('Content-Disposition: form-data; name="\\_method"'), 400],
    ['a form under "<form type>, text/plain" (Rack cuts at ",")', 'rack', { type: `${form}, text/plain`, body: '_method=GET' }, 415],
    ['a form under "<form type>,x"', 'rack', { type: `${form},x`, body: '_method=GET' }, 415],
    ['a form under "<form type> x" (PHP cuts at a space)', 'laravel', { type: `${form} x`, body: '_method=GET' }, 415],
    ['Rack 2 fields separated by ";"', 'rack', { type: form, body: 'x=1;_method=GET' }, 400],
    ['a Rack 2 field "[_method]"', 'rack', { type: form, body: '[_method]=GET' }, 400],
    ['a Rack 2 field "_method]"', 'rack', { type: form, body: '_method]=GET' }, 400],
    ['a form field "_method%00" (PHP ends a name at NUL)', 'laravel', { type: form, body: '_method%00=GET' }, 400],
    ['a query parameter "_method%00"', 'laravel', { path: '/cheap?_method%00=GET' }, 400],
  ]

  it.each(disguised)('error: %s is refused and not forwarded', async (_, framework, sent, status) => {
    // The framework does serve it as the priced GET /cheap.
    expect(await direct(framework, sent)).toMatchObject({ method: 'GET', path: '/cheap' })
    const res = await throughGateway(framework, sent)
    expect(res.status).toBe(status)
    expect(res.headers.get('content-type')).toBe('application/problem+json')
    expect(res.hits).toBe(0)
  })

  it('error: OPTIONS on a priced path is answered by the gateway, not forwarded to an origin that ignores the method', async () => {
    const res = await throughGateway('none', { method: 'OPTIONS' })
    expect(res.status).toBe(204)
    expect(res.headers.get('allow')).toBe('GET, HEAD, OPTIONS, POST')
    expect(res.hits).toBe(0)
  })

  it.each([
    ['rails', '/v1/exports.json'],
    ['rails', '/v1/exports.xml'],
    ['rails', '/v1/exports.json/'],
    ['spring', '/v1/exports.csv'],
    ['spring', '/v1/exports.tar.gz'],
    ['spring', '/v1/exports.x.json/'],
  ])(
    'error: %s routes %s as POST /v1/exports (a format suffix): the gateway prices it like it',
    async (framework, path) => {
      expect(await direct(framework, { path, type: 'application/json', body: '{}' })).toMatchObject({ method: 'POST', path: '/v1/exports' })
      const res = await throughGateway(framework, { path, type: 'application/json', body: '{}' })
      expect(res.status).toBe(402)
      expect(res.hits).toBe(0)
    },
  )
})

const gzip = async (text: string) => new Uint8Array(await new Response(new Blob([text]).stream().pipeThrough(new CompressionStream('gzip'))).arrayBuffer())
const utf16 = (text: string) => new Uint8Array(Uint16Array.from(text, (c) => c.charCodeAt(0)).buffer)

describe('invariant 5: the spellings beyond the known ones', () => {
  it.each<[string, string, () => Promise<Sent> | Sent, number]>([
    ['an override header spelled with "_" (a CGI server reads it as X-HTTP-Method-Override)', 'rack', () => ({ headers: { x_http_method_override: 'GET' } }), 400],
    ['a gzip-encoded JSON body (body-parser inflates it)', 'express', async () => ({ type: 'application/json', headers: { 'content-encoding': 'gzip' }, body: await gzip('{"_method":"GET"}') }), 415],
    ['a UTF-16 JSON body (body-parser decodes any utf-* charset)', 'express', () => ({ type: 'application/json; charset=utf-16le', body: utf16('{"_method":"GET"}') }), 415],
    ['a type mentioning "/json" in a parameter (Laravel reads it as JSON)', 'laravel', () => ({ type: 'text/plain; x="/json"', body: '{"_method":"GET"}' }), 415],
    ['a second name parameter on the Content-Disposition line (Rack 2 takes the last)', 'rack', () => multipart('Content-Disposition: form-data; name="x"; name="_method"'), 400],
    ['an unquoted name ending in a stray quote (Rack reads the token)', 'rack', () => multipart('Content-Disposition: form-data; name=_method"'), 400],
    ['a multipart name on a continuation line', 'rack', () => multipart('Content-Disposition: form-data;\r\n name="_method"'), 400],
    ['a Content-ID on a continuation line', 'rack', () => multipart('Content-ID:\r\n _method'), 400],
    ['a multipart name padded past 1 KiB with spaces (PHP drops leading spaces)', 'laravel', () => multipart(`Content-Disposition: form-data; name="${' '.repeat(2000)}_method"`), 400],
    ['a multipart name behind 2000 brackets (Rack 2 drops leading brackets)', 'rack', () => multipart(`Content-Disposition: form-data; name="${'['.repeat(2000)}_method"`), 400],
  ])('error: %s is refused and not forwarded', async (_, framework, make, status) => {
    expect(await direct(framework, await make())).toMatchObject({ method: 'GET', path: '/cheap' })
    const res = await throughGateway(framework, await make())
    expect(res.status).toBe(status)
    expect(res.hits).toBe(0)
  })
})

describe('invariant 5: what the gateway forwards on a priced path', () => {
  it.each<[string, Sent]>([
    ['a JSON body without override fields', { type: 'application/json; charset=UTF-8', body: '{"method":"_method","items":[{"name":"x"}]}' }],
    ['a form body without override fields', { type: form, body: 'name=_method&note=a;b&x=%5F' }],
    ['a multipart upload whose file is named _method', { ...multipart('Content-Disposition: form-data; name="file"; filename="_method"'), type: 'multipart/form-data; boundary="b"' }],
    ['an empty body of any type', { type: 'text/plain', body: '' }],
    ['no body', {}],
  ])('behavior: %s goes to the origin unchanged', async (_, sent) => {
    const res = await throughGateway('none', sent)
    expect(res.status).toBe(200)
    expect(res.hits).toBe(1)
    expect(JSON.parse(res.text).body).toBe(typeof sent.body === 'string' ? sent.body : '')
  })

  it('error: a free method is refused a body the gateway does not read; a priced one is challenged with it', async () => {
    const text = await throughGateway('none', { type: 'text/plain', body: '_method=GET' })
    expect(text.status).toBe(415)
    expect(text.detail).toMatch(/^"text\/plain" bodies are not read here/)
    const priced = await throughGateway('none', { path: '/v1/exports', type: 'application/pdf', body: '%PDF' })
    expect(priced.status).toBe(402)
    for (const type of ['application/json; charset=latin1', 'application/json; v=1', 'multipart/form-data', 'multipart/form-data; boundary=a; boundary=b', 'application/x-www-form-urlencoded;charset=utf-8;charset=utf-8']) {
      expect((await throughGateway('none', { type, body: 'a=1' })).status, type).toBe(415)
    }
    expect(text.hits + priced.hits).toBe(0)
  })

  it('error: a route pricing every method prices an override in a body too, where another route prices the path', async () => {
    const pricing = { ...table, routes: [...table.routes, { pattern: '/cheap', method: '*', price: '0.01' }] }
    expect((await throughGateway('rack', { method: 'PUT', type: form, body: '_method=GET' }, pricing)).status).toBe(400)
    // Alone at its path it is the price of every method: nothing to read.
    expect((await throughGateway('rack', { path: '/any', method: 'PUT', type: 'text/plain', body: '_method=GET' }, { ...table, routes: [{ pattern: '/any', method: '*', price: '0.01' }] })).status).toBe(402)
  })

  it('error: on a priced path a free route of every method frees nothing; it still frees other paths', async () => {
    const pricing = { ...table, routes: [...table.routes, { pattern: '/*', method: '*', free: true }] }
    const res = await throughGateway('rack', { method: 'PUT', body: 'x' }, pricing)
    expect(res.status).toBe(405)
    expect(res.headers.get('allow')).toBe('GET, HEAD, OPTIONS, POST')
    expect((await throughGateway('rack', { path: '/other', method: 'PUT', body: 'x' }, pricing)).status).toBe(200)
  })

  it('behavior: "formatSuffixes": false says the origin has none: /v1/exports.json is then not priced', async () => {
    const res = await throughGateway('none', { path: '/v1/exports.json', type: 'application/json', body: '{}' }, { ...table, formatSuffixes: false })
    expect(res.status).toBe(200)
  })

  it('error: a free route of a suffixed spelling does not free it where the origin serves it as the priced pattern', async () => {
    const pricing = { ...table, routes: [{ pattern: '/v1/exports.csv', method: 'POST', free: true }, ...table.routes] }
    expect(await direct('rails', { path: '/v1/exports.csv' })).toMatchObject({ method: 'POST', path: '/v1/exports' })
    const res = await throughGateway('rails', { path: '/v1/exports.csv' }, pricing)
    expect(res.status).toBe(402)
    expect(res.hits).toBe(0)
    // Unless the table says the origin has no format suffixes.
    expect((await throughGateway('none', { path: '/v1/exports.csv' }, { ...pricing, formatSuffixes: false })).status).toBe(200)
  })
})

describe('CORS on priced paths', () => {
  const cors = { origins: ['https://app.example.com'], headers: ['x-api-key'], maxAge: 600 }
  const preflight = { method: 'OPTIONS', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'GET' } }

  it('behavior: the gateway answers a preflight from the table; an origin it does not list gets no CORS headers', async () => {
    const res = await throughGateway('none', preflight, { ...table, cors })
    expect(res.status).toBe(204)
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example.com')
    expect(res.headers.get('access-control-allow-methods')).toBe('GET, HEAD, POST')
    expect(res.headers.get('access-control-allow-headers')).toBe('authorization, payment-authorization, content-type, idempotency-key, x-api-key')
    expect(res.headers.get('access-control-max-age')).toBe('600')
    expect(res.headers.get('vary')).toBe('Origin')
    const other = await throughGateway('none', { ...preflight, headers: { ...preflight.headers, origin: 'https://evil.example' } }, { ...table, cors })
    expect(other.status).toBe(204)
    expect(other.headers.get('access-control-allow-origin')).toBeNull()
    expect(other.hits + res.hits).toBe(0)
  })

  it('behavior: the 402 exposes its challenge to an allowed origin', async () => {
    const res = await throughGateway('none', { method: 'GET', headers: { origin: 'https://app.example.com' } }, { ...table, cors: { origins: ['*'] } })
    expect(res.status).toBe(402)
    expect(res.headers.get('access-control-allow-origin')).toBe('*')
    expect(res.headers.get('access-control-expose-headers')).toBe('www-authenticate, payment-receipt, retry-after')
  })

  it('behavior: a table that frees OPTIONS at a path has it forwarded to the origin', async () => {
    const res = await throughGateway('none', preflight, { ...table, routes: [{ pattern: '/cheap', method: 'OPTIONS', free: true }, ...table.routes] })
    expect(res.status).toBe(200)
    expect(res.hits).toBe(1)
  })

  it('error: credentials with "*" origins are refused when the table is read', () => {
    expect(() => setup({ pricing: { ...table, cors: { origins: ['*'], credentials: true } } })).toThrow(/credentials/)
  })
})

describe('invariant 5: property', () => {
  // "_method" spelled with each letter in some case or escape, the "_" as PHP and Rack read it, and tricky pieces around.
  const hex = (c: string) => c.charCodeAt(0).toString(16)
  const letter = (c: string) =>
    fc.oneof({ arbitrary: fc.constant(c), weight: 6 }, { arbitrary: fc.constantFrom(`%${hex(c)}`, `%${hex(c).toUpperCase()}`), weight: 3 }, { arbitrary: fc.constant(c.toUpperCase()), weight: 1 })
  const underscore = fc.constantFrom('_', '.', '%5F', '%2E', '+_', ' .', '%20_')
  const junk = fc.constantFrom('', '', '', '[', ']', '[[', ']]', '[x]', '%00', '%00x', '%5B', '%5D', ' ', '+', 'x', '=1;', '=1&', ';', '\\')
  const name = fc.tuple(junk, underscore, ...[...'method'].map(letter), junk).map((parts) => parts.join(''))

  it('property: whatever Rack, Laravel or Spring read as a GET override in a form or the query is refused, and never forwarded', async () => {
    const t = setup({ pricing: table })
    let disguised = 0
    await fc.assert(
      fc.asyncProperty(name, fc.constantFrom('rack', 'laravel', 'spring'), fc.boolean(), async (field, framework, inQuery) => {
        const sent: Sent = inQuery ? { path: `/cheap?${field}=GET` } : { type: form, body: `${field}=GET` }
        const routed = await direct(framework, sent)
        if (routed.method !== 'GET') return
        disguised++
        const res = await t.request(sent.path ?? '/cheap', init(framework, sent))
        expect([400, 415]).toContain(res.status)
      }),
      { numRuns: 1000 },
    )
    // Not vacuous: some spellings do reach GET at the framework.
    expect(disguised).toBeGreaterThan(10)
    expect(await t.hits()).toBe(0)
  })
})
