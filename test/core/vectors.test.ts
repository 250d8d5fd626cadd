/** Every core scenario of the cross-SDK conformance vectors, run through the core functions directly. */
import { describe, expect, it } from 'vitest'
import * as Challenge from '../../src/core/Challenge.js'
import * as ChallengeId from '../../src/core/ChallengeId.js'
import * as Credential from '../../src/core/Credential.js'
import { EncodingError, decodeText, encodeText } from '../../src/core/Encoding.js'
import authorizationVectors from '../fixtures/vectors/authorization.json'
import base64urlVectors from '../fixtures/vectors/base64url.json'
import challengeIdVectors from '../fixtures/vectors/challenge-id.json'
import wwwAuthenticateVectors from '../fixtures/vectors/www-authenticate.json'

type Expectation = true | { success: false; error_type: string }
type Wire = string | { prefix: string; repeat: string; count: number; suffix?: string }
type Scenario = {
  name: string
  object?: Record<string, unknown>
  wire?: Wire
  tests: Partial<Record<'parse' | 'format' | 'roundtrip', Expectation>>
}
type File = { scenarios: Scenario[] }

/** A `{prefix, repeat, count}` wire is a hostile long header: prefix, then `repeat` written `count` times. */
function expand(wire: Wire): string {
  return typeof wire === 'string' ? wire : wire.prefix + wire.repeat.repeat(wire.count) + (wire.suffix ?? '')
}

/** Decodes base64url with the platform's own decoder, independent of the code under test. */
function decodeJsonIndependently(text: string): unknown {
  const base64 = text.replace(/-/g, '+').replace(/_/g, '/')
  const binary = atob(base64 + '='.repeat((4 - (base64.length % 4)) % 4))
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0))))
}

/**
 * Reads a well-formed `Payment name="value", …` header into a map with `request` decoded, without the
 * parser under test, so formats are compared semantically (parameter order and JSON key order ignored).
 */
function semanticChallenge(header: string): Record<string, unknown> {
  expect(header).toMatch(/^Payment /)
  const params: Record<string, unknown> = {}
  const rest = header.slice('Payment '.length).replace(/([a-z]+)="((?:[^"\\]|\\.)*)"(?:, |$)/g, (_, name: string, raw: string) => {
    expect(params).not.toHaveProperty(name)
    const value = raw.replace(/\\(.)/g, '$1')
    params[name] = name === 'request' ? decodeJsonIndependently(value) : value
    return ''
  })
  expect(rest).toBe('')
  return params
}

/** A credential header decoded independently, with its echoed `request` decoded. */
function semanticCredential(header: string): Record<string, unknown> {
  const match = /^Payment ([A-Za-z0-9_-]+)$/.exec(header)
  expect(match).not.toBeNull()
  const credential = decodeJsonIndependently(match![1]!) as { challenge: { request: string } }
  return { ...credential, challenge: { ...credential.challenge, request: decodeJsonIndependently(credential.challenge.request) } }
}

/** The canonical credential object of the vectors: the echoed challenge's `request` decoded. */
function parseCredential(header: string): Record<string, unknown> {
  const credential = Credential.deserialize(header)
  const parsed: Record<string, unknown> = { challenge: Challenge.fromEchoed(credential.challenge) }
  if (credential.source !== undefined) parsed.source = credential.source
  parsed.payload = credential.payload
  return parsed
}

const errorTypes: Record<string, (error: unknown) => boolean> = {
  parse_error: (e) => e instanceof Challenge.ChallengeParseError || e instanceof Credential.CredentialParseError,
  format_error: (e) => e instanceof Challenge.ChallengeFormatError,
  encoding_error: (e) => e instanceof EncodingError,
  generation_error: (e) => e instanceof ChallengeId.WeakSecretError,
}

function expectFailure(run: () => unknown, expectation: { success: false; error_type: string }) {
  let thrown: unknown
  try {
    run()
  } catch (error) {
    thrown = error
  }
  expect(thrown, 'expected a failure').toBeDefined()
  expect(errorTypes[expectation.error_type]!(thrown), `${String(thrown)} is not a ${expectation.error_type}`).toBe(true)
}

function headerSuite(
  label: string,
  file: File,
  codec: { parse: (header: string) => unknown; format: (object: any) => string; semantic: (header: string) => unknown },
) {
  describe(label, () => {
    for (const scenario of file.scenarios) {
      const kinds = Object.keys(scenario.tests)
      it(`vector: ${scenario.name} (${kinds.join(', ')})`, () => {
        expect(kinds.length).toBeGreaterThan(0)
        for (const [kind, expectation] of Object.entries(scenario.tests)) {
          if (kind === 'parse') {
            const wire = expand(scenario.wire!)
            if (expectation === true) expect(codec.parse(wire)).toStrictEqual(scenario.object)
            else expectFailure(() => codec.parse(wire), expectation)
          } else if (kind === 'format') {
            if (expectation === true) {
              const formatted = codec.format(scenario.object)
              expect(formatted).not.toMatch(/[\r\n]/)
              expect(codec.semantic(formatted)).toStrictEqual(codec.semantic(expand(scenario.wire!)))
            } else expectFailure(() => codec.format(scenario.object), expectation)
          } else if (kind === 'roundtrip') {
            expect(expectation).toBe(true)
            expect(codec.parse(codec.format(scenario.object))).toStrictEqual(scenario.object)
          } else throw new Error(`unknown test kind ${kind}`)
        }
      })
    }
  })
}

headerSuite('www-authenticate.json', wwwAuthenticateVectors as File, {
  parse: (header) => Challenge.deserialize(header),
  format: (object) => Challenge.serialize(object),
  semantic: semanticChallenge,
})

headerSuite('authorization.json', authorizationVectors as File, {
  parse: parseCredential,
  format: (object) => Credential.serialize(object),
  semantic: semanticCredential,
})

describe('base64url.json', () => {
  type Base64Scenario = { name: string; decoded?: string; encoded: string; tests: Scenario['tests'] }
  for (const scenario of (base64urlVectors as { scenarios: Base64Scenario[] }).scenarios) {
    it(`vector: ${scenario.name} (${Object.keys(scenario.tests).join(', ')})`, () => {
      for (const [kind, expectation] of Object.entries(scenario.tests)) {
        if (kind === 'parse') {
          if (expectation === true) expect(decodeText(scenario.encoded)).toBe(scenario.decoded)
          else expectFailure(() => decodeText(scenario.encoded), expectation)
        } else if (kind === 'format') {
          expect(expectation).toBe(true)
          expect(encodeText(scenario.decoded!)).toBe(scenario.encoded)
        } else if (kind === 'roundtrip') {
          expect(decodeText(encodeText(scenario.decoded!))).toBe(scenario.decoded)
        } else throw new Error(`unknown test kind ${kind}`)
      }
    })
  }
})

describe('challenge-id.json', () => {
  type IdScenario = {
    name: string
    input: { secretKey: string; request: Record<string, unknown> } & Record<string, unknown>
    expected?: string
    tests?: { generate: { success: false; error_type: string } }
  }
  for (const scenario of (challengeIdVectors as { scenarios: IdScenario[] }).scenarios) {
    it(`vector: ${scenario.name}`, async () => {
      const { secretKey, ...fields } = scenario.input
      const create = () => Challenge.create({ ...(fields as Omit<Challenge.Challenge, 'id'>), secret: secretKey })
      if (scenario.tests) {
        expect(scenario.expected).toBeUndefined()
        let thrown: unknown
        await create().catch((error) => (thrown = error))
        expect(errorTypes[scenario.tests.generate.error_type]!(thrown), String(thrown)).toBe(true)
        return
      }
      const challenge = await create()
      expect(challenge.id).toBe(scenario.expected)
      // The worker checks echoed challenges with verify: the same slots must verify under the same secret only.
      const echoed = Challenge.toEchoed(challenge)
      expect(await ChallengeId.verify(secretKey, echoed, scenario.expected!)).toBe(true)
      expect(await ChallengeId.verify(`${secretKey}-other`, echoed, scenario.expected!)).toBe(false)
    })
  }

  it('behavior: a non-default credential header travels in the challenge, so its echo verifies', async () => {
    const scenario = (challengeIdVectors as { scenarios: IdScenario[] }).scenarios.find((s) => s.name === 'with_payment_authorization_header')!
    const { secretKey, ...fields } = scenario.input
    const challenge = await Challenge.create({ ...(fields as Omit<Challenge.Challenge, 'id'>), secret: secretKey })
    const header = Challenge.serialize(challenge)
    expect(header).toContain('header="Payment-Authorization"')
    const parsed = Challenge.deserialize(header)
    expect(parsed.header).toBe('Payment-Authorization')
    expect(await Challenge.verifyBinding(Challenge.toEchoed(parsed), [secretKey])).toBe(true)
    // Dropping the header from the echo breaks the binding.
    const { header: _dropped, ...withoutHeader } = Challenge.toEchoed(parsed)
    expect(await Challenge.verifyBinding(withoutHeader, [secretKey])).toBe(false)
  })

  it('behavior: the default Authorization header stays implicit on the wire', async () => {
    const challenge = await Challenge.create({
      realm: 'api.example.com', method: 'tempo', intent: 'charge', request: {}, header: 'Authorization',
      secret: 'test-vector-secret-minimum-32-byte-secret',
    })
    expect(Challenge.serialize(challenge)).not.toContain('header=')
  })
})
