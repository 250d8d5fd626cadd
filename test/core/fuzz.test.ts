/**
 * Fuzzing of the header parsers and formatters: on arbitrary and mutated input they only ever throw the core's
 * typed errors (never a TypeError or RangeError), and whatever they format is a single-line header value.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import * as AcceptPayment from '../../src/core/AcceptPayment.js'
import * as Challenge from '../../src/core/Challenge.js'
import * as Credential from '../../src/core/Credential.js'
import { EncodingError, decodeObject, decodeText, encodeBytes, encodeText } from '../../src/core/Encoding.js'
import * as Receipt from '../../src/core/Receipt.js'

const runs = { numRuns: 300 }
const secret = 'fuzz-test-secret-0123456789abcdefghijklmnop'

type ErrorClass = abstract new (...args: any[]) => Error

/** Runs `fn`; a thrown error must be one of `allowed`, anything else fails with the original error. */
function onlyTyped<T>(fn: () => T, ...allowed: ErrorClass[]): T | undefined {
  try {
    return fn()
  } catch (error) {
    if (allowed.some((type) => error instanceof type)) return undefined
    throw error
  }
}

// Header-shaped noise: the tokens, separators and quoting characters the parsers branch on.
const headerNoise = fc
  .array(
    fc.oneof(
      fc.constantFrom('Payment', 'payment', 'PAYMENT', 'Basic', ' ', '  ', '\t', ',', ', ', '=', '==', '"', '\\', '\\"', '\\\\'),
      fc.constantFrom('id', 'realm', 'method', 'intent', 'request', 'expires', 'digest', 'opaque', 'header', 'description'),
      fc.constantFrom('e30', 'tempo', 'charge', 'eyJ', '_w', 'W10', 'bnVsbA', '\r\n', '\u0000', '\u007f', 'é', '\u2014', '😀', '\ud800'),
      fc.string({ maxLength: 4 }),
    ),
    { maxLength: 40 },
  )
  .map((parts) => parts.join(''))

const anyString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.string({ unit: 'grapheme', maxLength: 200 }),
  headerNoise,
)

type Edit = { at: number; kind: 'insert' | 'delete' | 'replace' | 'truncate' | 'repeat'; text: string; length: number }
const edit = fc.record({
  at: fc.nat(),
  kind: fc.constantFrom('insert', 'delete', 'replace', 'truncate', 'repeat'),
  text: fc.oneof(headerNoise, fc.string({ unit: 'binary', maxLength: 6 })),
  length: fc.integer({ min: 1, max: 12 }),
}) as fc.Arbitrary<Edit>

/** Applies edits (insertions, deletions, replacements, truncation, repetition) to a valid header. */
function mutate(header: string, edits: Edit[]): string {
  let out = header
  for (const { at, kind, text, length } of edits) {
    const i = out.length === 0 ? 0 : at % (out.length + 1)
    if (kind === 'insert') out = out.slice(0, i) + text + out.slice(i)
    else if (kind === 'delete') out = out.slice(0, i) + out.slice(i + length)
    else if (kind === 'replace') out = out.slice(0, i) + text + out.slice(i + text.length)
    else if (kind === 'truncate') out = out.slice(0, i)
    else out = out.slice(0, i) + out.slice(i, i + length).repeat(3) + out.slice(i + length)
  }
  return out
}

const requestObject = fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 })
const validChallenge = fc
  .record(
    {
      realm: fc.domain(),
      method: fc.stringMatching(/^[a-z]{1,8}$/),
      intent: fc.stringMatching(/^[a-z-]{1,8}$/),
      request: requestObject,
      expires: fc.constant('2030-01-01T00:00:00Z'),
      description: fc.string({ maxLength: 20 }),
      header: fc.constant('Payment-Authorization'),
    },
    { requiredKeys: ['realm', 'method', 'intent', 'request'] },
  )
  .map((fields) => Challenge.create({ ...fields, secret }))

describe('fuzz: WWW-Authenticate parsing', () => {
  it('behavior: arbitrary strings only ever raise ChallengeParseError', () => {
    fc.assert(
      fc.property(anyString, (header) => {
        onlyTyped(() => Challenge.deserializeAll(header), Challenge.ChallengeParseError)
        onlyTyped(() => Challenge.deserialize(header), Challenge.ChallengeParseError)
      }),
      runs,
    )
  })

  it('behavior: mutated valid headers only ever raise ChallengeParseError, and what parses is a complete challenge', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(validChallenge, { minLength: 1, maxLength: 3 }), fc.array(edit, { minLength: 1, maxLength: 4 }), async (pending, edits) => {
        const header = (await Promise.all(pending)).map(Challenge.serialize).join(', ')
        expect(Challenge.deserializeAll(header)).toHaveLength(pending.length)
        const parsed = onlyTyped(() => Challenge.deserializeAll(mutate(header, edits)), Challenge.ChallengeParseError)
        for (const challenge of parsed ?? []) {
          expect(challenge.id).not.toBe('')
          expect(challenge.method).toMatch(/^[a-z]+$/)
          expect(typeof challenge.request).toBe('object')
        }
      }),
      runs,
    )
  })

  it('behavior: long hostile headers complete and only raise typed errors', () => {
    const prefix = 'Payment id="a", realm="r", method="tempo", intent="charge", request="e30", '
    const hostile = [
      prefix + 'x="' + '\\'.repeat(60_000),
      prefix + 'x="' + '\\"'.repeat(30_000),
      prefix + 'x='.repeat(20_000),
      prefix + ', '.repeat(30_000),
      'Payment ' + 'a="b" '.repeat(10_000),
      '"'.repeat(63_000),
      'Payment '.repeat(8_000),
      prefix + 'x'.repeat(70_000),
    ]
    for (const header of hostile) onlyTyped(() => Challenge.deserializeAll(header), Challenge.ChallengeParseError)
    // The adversarial vector's shape still parses to its challenge however long the unclosed extension gets.
    expect(Challenge.deserialize(prefix + 'fuzz="' + '\\'.repeat(60_000)).id).toBe('a')
  })
})

describe('fuzz: Authorization parsing', () => {
  const payload = fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 4 })
  const validCredential = fc
    .tuple(validChallenge, payload, fc.option(fc.string({ maxLength: 30 }), { nil: undefined }))
    .map(async ([pending, body, source]) => Credential.serialize({ challenge: await pending, payload: body, source }))

  function parseAll(header: string) {
    onlyTyped(() => Credential.fromHeader(header), Credential.CredentialParseError)
    const credential = onlyTyped(() => Credential.deserialize(header), Credential.CredentialParseError)
    // The server decodes the echoed request next; that may only fail with a parse error too.
    if (credential) onlyTyped(() => Challenge.fromEchoed(credential.challenge), Challenge.ChallengeParseError)
  }

  it('behavior: arbitrary strings only ever raise CredentialParseError', () => {
    fc.assert(fc.property(anyString, (text) => parseAll(text)), runs)
    fc.assert(fc.property(anyString, (text) => parseAll(`Payment ${text}`)), runs)
  })

  it('behavior: base64url of arbitrary JSON or bytes only ever raises CredentialParseError', () => {
    const almostCredential = fc.record({
      challenge: fc.oneof(fc.anything(), fc.record({ id: fc.anything(), realm: fc.anything(), method: fc.anything(), intent: fc.anything(), request: fc.oneof(fc.string(), fc.anything()) })),
      payload: fc.anything(),
      source: fc.anything(),
    })
    const json = fc.oneof(fc.jsonValue(), almostCredential).map((value) => JSON.stringify(value) ?? 'null')
    fc.assert(fc.property(json, (text) => parseAll(`Payment ${encodeText(text)}`)), runs)
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => parseAll(`Payment ${encodeBytes(bytes)}`)), runs)
  })

  it('behavior: mutated valid credentials only ever raise typed errors', async () => {
    await fc.assert(
      fc.asyncProperty(validCredential, fc.array(edit, { minLength: 1, maxLength: 4 }), async (pending, edits) => {
        const header = await pending
        expect(Credential.deserialize(header).challenge.id).not.toBe('')
        parseAll(mutate(header, edits))
        parseAll(`${header}, ${mutate(header, edits)}`)
      }),
      runs,
    )
  })

  it('behavior: deeply nested and oversized credentials are refused or parsed, never a RangeError', () => {
    const deep = (depth: number) => `{"challenge":{"id":"a","realm":"r","method":"tempo","intent":"charge","request":"e30"},"payload":{"x":${'['.repeat(depth)}${']'.repeat(depth)}}}`
    for (const depth of [1_000, 10_000, 12_000]) parseAll(`Payment ${encodeText(deep(depth))}`)
    parseAll(`Payment ${'A'.repeat(Credential.maxLength + 4)}`)
    const nestedRequest = encodeText('['.repeat(10_000) + ']'.repeat(10_000))
    parseAll(`Payment ${encodeText(JSON.stringify({ challenge: { id: 'a', realm: 'r', method: 'tempo', intent: 'charge', request: nestedRequest }, payload: {} }))}`)
  })
})

describe('fuzz: Payment-Receipt and base64url decoding', () => {
  it('behavior: arbitrary receipt values only ever raise ReceiptError', () => {
    const almostReceipt = fc.record({ status: fc.oneof(fc.constant('success'), fc.anything()), method: fc.anything(), timestamp: fc.oneof(fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), fc.anything()), reference: fc.anything() })
    const json = fc.oneof(fc.jsonValue(), almostReceipt).map((value) => JSON.stringify(value) ?? 'null')
    fc.assert(fc.property(anyString, (text) => void onlyTyped(() => Receipt.deserialize(text), Receipt.ReceiptError)), runs)
    fc.assert(fc.property(json, (text) => void onlyTyped(() => Receipt.deserialize(encodeText(text)), Receipt.ReceiptError)), runs)
  })

  it('behavior: base64url decoding only ever raises EncodingError', () => {
    fc.assert(
      fc.property(anyString, (text) => {
        onlyTyped(() => decodeText(text), EncodingError)
        onlyTyped(() => decodeObject(text), EncodingError)
      }),
      runs,
    )
  })
})

describe('fuzz: Accept-Payment', () => {
  const offers = [
    { method: 'tempo', intent: 'charge' },
    { method: 'stripe', intent: 'charge' },
    { method: 'tempo', intent: 'session' },
  ]
  const acceptNoise = fc
    .array(fc.oneof(fc.constantFrom('tempo', 'stripe', '*', '/', 'charge', 'session', ';', 'q=', '0', '1', '0.5', '1.000', ',', ' ', 'Q=', '=', '\u0000'), fc.string({ maxLength: 3 })), { maxLength: 20 })
    .map((parts) => parts.join(''))

  it('behavior: parse never throws and select returns a reordering of a subset of the offers', () => {
    fc.assert(
      fc.property(fc.oneof(anyString, acceptNoise), (header) => {
        const ranges = AcceptPayment.parse(header)
        for (const range of ranges ?? []) expect(range.q).toBeGreaterThanOrEqual(0)
        const selected = AcceptPayment.select(offers, header)
        expect(selected.length).toBeGreaterThan(0)
        expect(new Set(selected).size).toBe(selected.length)
        for (const offer of selected) expect(offers).toContain(offer)
      }),
      runs,
    )
  })
})

describe('fuzz: formatting', () => {
  const text = fc.oneof(fc.string({ unit: 'binary', maxLength: 30 }), headerNoise)
  const anyChallenge = fc.record(
    {
      id: text,
      realm: text,
      method: fc.oneof(text, fc.stringMatching(/^[a-z]{1,8}$/)),
      intent: fc.oneof(text, fc.stringMatching(/^[a-z]{1,8}$/)),
      request: fc.oneof(requestObject, text, fc.dictionary(text, fc.jsonValue({ maxDepth: 2, stringUnit: 'binary' }), { maxKeys: 3 })),
      expires: text,
      digest: text,
      description: text,
      opaque: text,
      header: fc.oneof(text, fc.constantFrom('Payment-Authorization', 'Authorization')),
    },
    { requiredKeys: ['id', 'realm', 'method', 'intent', 'request'] },
  )

  it('behavior: a formatted challenge is one line of header-safe characters that parses back to itself', () => {
    fc.assert(
      fc.property(anyChallenge, (challenge) => {
        const header = onlyTyped(() => Challenge.serialize(challenge as Challenge.Challenge | Challenge.Echoed), Challenge.ChallengeFormatError)
        if (header === undefined) return
        expect(header).not.toMatch(/[\r\n\u0000]/)
        expect(header).toMatch(/^[\t\u0020-\u007e\u0080-\u00ff]*$/)
        // A string request is a wire value: it may not decode, but every parameter must survive exactly.
        const parsed = onlyTyped(() => Challenge.deserialize(header), Challenge.ChallengeParseError)
        if (parsed === undefined) {
          expect(typeof challenge.request).toBe('string')
          return
        }
        const { header: credentialHeader, request, ...rest } = challenge
        const expected = { ...rest, request: typeof request === 'string' ? parsed.request : request, ...(credentialHeader?.toLowerCase() === 'authorization' ? {} : { header: credentialHeader }) }
        expect(JSON.parse(JSON.stringify(parsed))).toStrictEqual(JSON.parse(JSON.stringify(expected)))
      }),
      { numRuns: 500 },
    )
  })

  it('behavior: a formatter of fixed parameters writes what serialize writes, or refuses what it refuses', () => {
    const wire = fc.oneof(text, fc.stringMatching(/^[A-Za-z0-9_-]{0,40}$/))
    fc.assert(
      fc.property(anyChallenge, wire, (challenge, request) => {
        const whole = { ...challenge, request } as Challenge.Echoed
        const expected = onlyTyped(() => Challenge.serialize(whole), Challenge.ChallengeFormatError)
        const formatted = onlyTyped(() => Challenge.formatter(whole)(whole), Challenge.ChallengeFormatError)
        expect(formatted).toBe(expected)
      }),
      { numRuns: 500 },
    )
  })

  it('behavior: CRLF anywhere in a challenge parameter is a format error', () => {
    const withBreak = fc.tuple(fc.string({ maxLength: 10 }), fc.constantFrom('\r\n', '\n', '\r'), fc.string({ maxLength: 10 })).map((parts) => parts.join(''))
    fc.assert(
      fc.property(withBreak, fc.constantFrom('realm', 'description', 'opaque', 'expires', 'digest', 'id'), (value, field) => {
        const challenge = { id: 'a', realm: 'r', method: 'tempo', intent: 'charge', request: {}, [field]: value }
        expect(() => Challenge.serialize(challenge)).toThrow(Challenge.ChallengeFormatError)
      }),
      runs,
    )
  })

  it('behavior: credentials and receipts format to bare base64url tokens', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ unit: 'binary', maxLength: 6 }), fc.jsonValue({ maxDepth: 3, stringUnit: 'binary' }), { maxKeys: 4 }), text, (payload, realm) => {
        // Lone surrogates have no canonical JSON form: a typed EncodingError, never a plain Error.
        const header = onlyTyped(() => Credential.serialize({ challenge: { id: 'a', realm, method: 'tempo', intent: 'charge', request: {} }, payload }), EncodingError)
        if (header !== undefined) expect(header).toMatch(/^Payment [A-Za-z0-9_-]+$/)
        const receipt = onlyTyped(() => Receipt.serialize({ status: 'success', method: 'tempo', timestamp: '2026-01-01T00:00:00Z', reference: realm, extra: payload }), Receipt.ReceiptError)
        if (receipt !== undefined) expect(receipt).toMatch(/^[A-Za-z0-9_-]*$/)
      }),
      runs,
    )
  })
})
