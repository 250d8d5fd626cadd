import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { AmbiguousPathError, canonicalPath } from '../../src/gateway/path.js'
import { setup } from './support.js'

type Echo = { path: string }

describe('gateway: no spelling of a priced path reaches the origin for free', () => {
  // "/paid" is priced (GET, POST); each of these is either priced too (402) or refused (400).
  const priced = [
    '/paid',
    '/PAID',
    '/Paid/',
    '/paid/',
    '/%70aid',
    '/p%61%69d',
    '/%50%41%49%44',
    '/./paid',
    '/x/../paid',
    '/%2e/paid',
    '/x/%2e%2e/paid',
    '/x/.%2E/paid',
    '/pa\nid',
    '/pa\tid',
    '/paid?x=/free',
  ]
  const refused = [
    '/paid;x',
    '/paid;',
    '/paid%3Bx',
    '/paid%00',
    '/paid%0a',
    '/paid%0d%0a',
    '/paid%E2%80%A8',
    '/paid%E2%80%A9',
    '/paid%C2%85',
    '/paid%E2%80%8B',
    '/paid%2500',
    '/%2570aid',
    '/%252570aid',
    '//paid',
    '/x//paid',
    '/x%2F..%2Fpaid',
    '/x%2f%2e%2e%2fpaid',
    '/paid%2F',
    '/paid%5C',
    '/x%5C..%5Cpaid',
    '/paid.',
    '/paid%2E',
    '/paid%20',
    '/paid%09',
    '/paid%C0%AF',
    '/paid%',
    '/pa%ZZid',
    '/%EF%BD%90aid',
    '/pa%C5%BFd',
    '/PA%E2%84%AAD',
  ]

  it.each(priced)('behavior: %j is priced like /paid', async (path) => {
    const t = setup()
    const res = await t.request(path)
    expect(res.status).toBe(402)
    expect(await t.hits()).toBe(0)
  })

  it.each(refused)('error: %j is refused as ambiguous (400) and not forwarded', async (path) => {
    const t = setup()
    const res = await t.request(path)
    expect(res.status).toBe(400)
    expect(((await res.json()) as { detail: string }).detail).toMatch(/^ambiguous path/)
    expect(await t.hits()).toBe(0)
  })

  it('behavior: the origin receives the canonical path the price was decided on', async () => {
    const t = setup()
    const res = await t.request('/caf%C3%A9/%7Euser/a%3Fb/%40x/%21')
    expect(res.status).toBe(200)
    expect(((await res.json()) as Echo).path).toBe('/caf%C3%A9/~user/a%3Fb/@x/!')
  })

  it('error: a lowercase method and routing override headers or parameters are refused', async () => {
    const t = setup()
    expect((await t.request('/edit/1', { method: 'PATCH' })).status).toBe(402)
    // The runtime may normalize the method's case; either way it is never served for free.
    expect([400, 402]).toContain((await t.request('/edit/1', { method: 'patch' })).status)
    for (const name of ['x-http-method-override', 'x-http-method', 'x-method-override', 'x-original-url', 'x-rewrite-url']) {
      const res = await t.request('/other', { method: 'POST', headers: { [name]: name.includes('url') ? '/paid' : 'GET' } })
      expect(res.status).toBe(400)
    }
    expect((await t.request('/other?_method=GET', { method: 'POST' })).status).toBe(400)
    expect(await t.hits()).toBe(0)
  })

  it('property: whatever reaches the origin unpaid does not read as /paid under any common server interpretation', async () => {
    const t = setup()
    // Each letter of "paid" in some spelling, with tricky pieces around and between the letters.
    const letter = (c: string) => {
      const hex = c.charCodeAt(0).toString(16)
      const wide = String.fromCharCode(0xff41 + c.charCodeAt(0) - 0x61)
      return fc.constantFrom(c, c.toUpperCase(), `%${hex}`, `%${hex.toUpperCase()}`, `%25${hex}`, encodeURIComponent(wide))
    }
    const tricks = fc.constantFrom('/', '//', '.', './', '../', 'x/../', '%2e', '%2e%2e/', '%2f', '%5c', ';', ';x', '%3b', '%00', '%0a', '%0d%0a', '%20', ' ', '%09', '%e2%80%a8', '%c2%85', '%e2%80%8b', '%', '%25')
    const junk = fc.oneof({ arbitrary: fc.constant(''), weight: 6 }, { arbitrary: tricks, weight: 1 })
    const spelling = fc.tuple(junk, letter('p'), junk, letter('a'), junk, letter('i'), junk, letter('d'), junk).map((parts) => `/${parts.join('')}`)
    let forwarded = 0
    let priced = 0
    await fc.assert(
      fc.asyncProperty(spelling, async (path) => {
        const res = await t.request(path)
        if (res.status === 402) priced++
        if (res.status !== 200) {
          expect([400, 402]).toContain(res.status)
          return
        }
        forwarded++
        const seen = ((await res.json()) as Echo).path
        for (const reading of readings(seen)) expect(reading).not.toBe('/paid')
      }),
      { numRuns: 400 },
    )
    expect(priced).toBeGreaterThan(0)
  })
})

describe('invariant 5: the gateway never forwards a request that reaches a priced resource unpaid', () => {
  // "/cheap" frees POST where GET is priced: an origin honouring `_method` would serve GET for free.
  const carveOut = {
    service: { title: 'Carve-out API', version: '1.0.0' },
    methods: { ledger: {}, backup: {} },
    routes: [
      { pattern: '/cheap', method: 'POST', free: true },
      { pattern: '/cheap', method: 'GET', price: '1.00' },
      { pattern: '/open', method: 'POST', free: true },
    ],
  }
  const form = (body: BodyInit, type?: string): RequestInit => ({ method: 'POST', body, ...(type ? { headers: { 'content-type': type } } : {}) })
  const multipart = (disposition: string) =>
    form(`--b\r\nContent-Disposition: form-data; ${disposition}\r\n\r\nGET\r\n--b--\r\n`, 'multipart/form-data; boundary=b')

  it('error: a method the table neither prices nor frees at a priced path answers 405 with Allow, and is not forwarded', async () => {
    const t = setup()
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const res = await t.request('/v1/reports/1', { method })
      expect(res.status).toBe(405)
      expect(res.headers.get('allow')).toBe('GET, HEAD, OPTIONS')
      expect(res.headers.get('content-type')).toBe('application/problem+json')
      expect(((await res.json()) as { detail: string }).detail).toMatch(new RegExp(`^${method} is neither priced nor free`))
    }
    const edit = await t.request('/edit/1', { method: 'DELETE' })
    expect(edit.status).toBe(405)
    expect(edit.headers.get('allow')).toBe('OPTIONS, PATCH')
    expect(await t.hits()).toBe(0)
    // HEAD stays priced as GET; a "*" route prices every method.
    expect((await t.request('/v1/reports/1', { method: 'HEAD' })).status).toBe(402)
    expect((await t.request('/files/a', { method: 'DELETE' })).status).toBe(402)
    expect(await t.hits()).toBe(0)
    // The gateway answers OPTIONS (CORS preflight); paths no priced route matches are forwarded as before.
    expect((await t.request('/v1/reports/1', { method: 'OPTIONS' })).status).toBe(204)
    expect((await t.request('/v1/status', { method: 'PUT' })).status).toBe(200)
    expect((await t.request('/other', { method: 'DELETE' })).status).toBe(200)
    expect(await t.hits()).toBe(2)
  })

  it('error: the 405 lists the freed methods too', async () => {
    const t = setup({ pricing: carveOut })
    const res = await t.request('/cheap', { method: 'PUT' })
    expect(res.status).toBe(405)
    expect(res.headers.get('allow')).toBe('GET, HEAD, OPTIONS, POST')
  })

  it.each([
    '/v1/reports/1?%5Fmethod=GET',
    '/v1/reports/1?%5fMeThOd=GET',
    '/paid?%5Fmethod=GET',
    '/paid?_METHOD=GET',
    '/paid?x=1&_method=GET',
    '/paid?.method=GET',
    '/paid?+_method=GET',
    '/paid?_method%5B%5D=GET',
    '/paid?_method[x]=GET',
    '/paid?x-http-method-override=GET',
    '/cheap?%5Fmethod=GET',
    '/other?%5F%6D%65%74%68%6F%64=GET',
  ])('error: the override query parameter in %j is refused with 400', async (path) => {
    const t = setup({ pricing: path.startsWith('/cheap') ? carveOut : undefined })
    const res = await t.request(path, { method: 'POST' })
    expect(res.status).toBe(400)
    expect(((await res.json()) as { detail: string }).detail).toMatch(/is not accepted: it could change the route/)
    expect(await t.hits()).toBe(0)
  })

  it.each([
    ['form-encoded', form('_method=GET', 'application/x-www-form-urlencoded')],
    ['form-encoded, charset and case', form('a=1&_METHOD=GET', 'Application/X-WWW-Form-Urlencoded; charset=utf-8')],
    ['form-encoded, percent-encoded name', form('%5Fmethod=GET', 'application/x-www-form-urlencoded')],
    ['form-encoded, PHP spelling', form('.method=GET', 'application/x-www-form-urlencoded')],
    ['no content type (Rack reads it as a form)', form(new TextEncoder().encode('_method=GET'))],
    ['multipart, quoted name', multipart('name="_method"')],
    ['multipart, bare name', multipart('name=_method')],
    ['multipart, uppercase', multipart('NAME="_METHOD"')],
    ['multipart, RFC 2231 name', multipart("name*=utf-8''%5Fmethod")],
    ['multipart/mixed', form('--b\r\nContent-Disposition: form-data; name="_method"\r\n\r\nGET\r\n--b--\r\n', 'multipart/mixed; boundary=b')],
  ])('error: a _method field in a %s body is refused with 400 and not forwarded', async (_, init) => {
    const t = setup({ pricing: carveOut })
    const res = await t.request('/cheap', init)
    expect(res.status).toBe(400)
    expect(((await res.json()) as { detail: string }).detail).toMatch(/^the body field ".+" is not accepted: it could change the method/)
    expect(await t.hits()).toBe(0)
  })

  it('error: a _method field in the body of a priced request is refused before the 402 (its challenge would bind that body)', async () => {
    const t = setup()
    const res = await t.request('/paid', form('_method=GET', 'application/x-www-form-urlencoded'))
    expect(res.status).toBe(400)
    expect(res.headers.get('www-authenticate')).toBeNull()
  })

  it('error: a form body over the inspection bound (MAX_INSPECTED_BODY_BYTES) on a priced path answers 413, declared or streamed', async () => {
    const t = setup({ pricing: carveOut, env: { MAX_INSPECTED_BODY_BYTES: '65536' } })
    const big = `a=${'x'.repeat(64 * 1024)}`
    expect((await t.request('/cheap', form(big, 'application/x-www-form-urlencoded'))).status).toBe(413)
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 9; i++) controller.enqueue(new TextEncoder().encode('y'.repeat(8 * 1024)))
        controller.close()
      },
    })
    const streamed = await t.request('/cheap', { method: 'POST', body: stream, headers: { 'content-type': 'multipart/form-data; boundary=b' } })
    expect(streamed.status).toBe(413)
    expect(((await streamed.json()) as { type: string }).type).toBe('https://paymentauth.org/problems/content-too-large')
    expect(await t.hits()).toBe(0)
  })

  it('behavior: form bodies without override fields are forwarded unchanged; other bodies and unpriced paths are not read', async () => {
    const t = setup({ pricing: carveOut })
    const body = 'name=method&note=_method+is+a+value&x=%5F'
    const res = await t.request('/cheap', form(body, 'application/x-www-form-urlencoded'))
    expect(res.status).toBe(200)
    expect(((await res.json()) as { body: string }).body).toBe(body)
    const upload = multipart('name="file"; filename="_method"')
    expect((await t.request('/cheap', upload)).status).toBe(200)
    // A JSON body is read too; a large body on a path no priced route matches is passed as it came.
    const json = JSON.stringify({ method: '_method', pad: 'z'.repeat(80 * 1024) })
    expect((await t.request('/cheap', form(json, 'application/json'))).status).toBe(200)
    expect((await t.request('/cheap', form(JSON.stringify({ _method: 'GET' }), 'application/json'))).status).toBe(400)
    const open = await t.request('/open', form(`a=${'x'.repeat(80 * 1024)}&_method=GET`, 'application/x-www-form-urlencoded'))
    expect(open.status).toBe(200)
    expect(((await open.json()) as { body: string }).body).toHaveLength(80 * 1024 + 14)
  })
})

describe('canonicalPath', () => {
  it('behavior: plain paths are returned as they are', () => {
    for (const path of ['/', '/v1/reports/7', '/a-b_c~d/e.f/', "/x!$&'()*+,=:@"]) expect(canonicalPath(path)).toBe(path)
  })

  it('behavior: escapes are decoded once and written back in the one canonical spelling', () => {
    expect(canonicalPath('/%70aid')).toBe('/paid')
    expect(canonicalPath('/a%3fb')).toBe('/a%3Fb')
    expect(canonicalPath('/caf%c3%a9')).toBe('/caf%C3%A9')
    expect(canonicalPath('/a b')).toBe('/a%20b')
  })

  it('error: the refusal names what is ambiguous', () => {
    expect(() => canonicalPath('/a%252F')).toThrow(AmbiguousPathError)
    expect(() => canonicalPath('/a%2Fb')).toThrow(/encodes "\/"/)
    expect(() => canonicalPath('/a%25')).toThrow(/double encoding/)
    expect(() => canonicalPath('/a;b')).toThrow(/path parameters/)
    expect(() => canonicalPath('/a//b')).toThrow(/empty segment/)
    expect(() => canonicalPath('/a%0Ab')).toThrow(/control/)
    expect(() => canonicalPath('/%EF%BD%90')).toThrow(/normalization/)
  })
})

/** Ways servers read a path: decoding (repeatedly), case folding, compatibility forms, dropping path
 * parameters, collapsing slashes, resolving dot segments and trimming trailing dots, spaces and slashes. */
function readings(path: string): string[] {
  const out = new Set<string>()
  let decoded = path
  for (let i = 0; i < 3; i++) {
    try {
      decoded = decodeURIComponent(decoded)
    } catch {
      break
    }
    out.add(decoded)
  }
  for (const base of [...out, path]) {
    let s = base.normalize('NFKC').toLowerCase().replace(/\\/g, '/').replace(/;[^/]*/g, '')
    s = s.replace(/[\u0000-\u001f\u007f\u0085\u2028\u2029\u200b]/g, '').replace(/\/{2,}/g, '/')
    const stack: string[] = []
    for (const segment of s.split('/').slice(1)) {
      const trimmed = segment.replace(/[. ]+$/, '')
      if (segment === '..') stack.pop()
      else if (segment !== '.' && segment !== '') stack.push(trimmed)
    }
    out.add(`/${stack.join('/')}`)
  }
  return [...out]
}
