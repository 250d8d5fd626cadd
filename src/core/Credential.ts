/** @module `Authorization: Payment` credentials (core spec, "Credentials"). */
import * as v from 'valibot'
import * as Challenge from './Challenge.js'
import { EncodingError, decodeText, encodeJson } from './Encoding.js'

/** A decoded credential; `challenge.request` is kept as the echoed wire string. */
export type Credential = {
  challenge: Challenge.Echoed
  source?: string | undefined
  payload: Record<string, unknown>
}

/**
 * Largest credential accepted, in characters of its base64url token (the spec asks for at least 4 KB).
 * @example
 * if (token.length > maxLength) throw new CredentialParseError('too large')
 */
export const maxLength = 32 * 1024

/**
 * Schema of a decoded credential.
 * @example
 * v.parse(Schema, input)
 */
export const Schema = v.object({
  challenge: Challenge.Schema,
  source: v.optional(v.pipe(v.string(), v.maxLength(512))),
  payload: v.record(v.string(), v.unknown()),
})

/**
 * Raised when an Authorization value is not a valid Payment credential.
 * @example
 * throw new CredentialParseError('…')
 */
export class CredentialParseError extends Error {
  override readonly name: string = 'CredentialParseError'

  constructor(message: string, options?: ErrorOptions) {
    // Garbage credentials are what bots send: a parse error is an answer (a 402), and capturing a stack trace was
    // most of what refusing one cost.
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    super(message, options)
    Error.stackTraceLimit = limit
  }
}

/**
 * Reads the `Payment` credential of an Authorization value; undefined when the value uses another scheme.
 * Throws when it holds more than one Payment credential or a malformed one.
 * @example
 * const credential = Credential.fromHeader(request.headers.get('authorization'))
 */
export function fromHeader(header: string | null | undefined): Credential | undefined {
  const read = readHeader(header)
  if (read.type === 'multiple') throw new MultipleCredentialsError('more than one Payment credential')
  if (read.type === 'malformed') throw new CredentialParseError(read.detail)
  return read.type === 'credential' ? read.credential : undefined
}

/** What an Authorization value holds, as `readHeader` finds it. */
export type HeaderRead = { type: 'none' } | { type: 'credential'; credential: Credential } | { type: 'multiple' } | { type: 'malformed'; detail: string }

/**
 * `fromHeader` without throwing: garbage is what most bots send, and a refusal should cost no exception.
 * @example
 * const read = Credential.readHeader(request.headers.get('authorization'))
 * if (read.type === 'malformed') return refuse(read.detail)
 */
export function readHeader(header: string | null | undefined): HeaderRead {
  if (!header) return { type: 'none' }
  // Duplicate header lines arrive joined by ", "; a Payment token never contains a comma.
  const tokens = header
    .split(',')
    .map((part) => part.trim())
    .filter((part) => /^payment(\s|$)/i.test(part))
  if (tokens.length === 0) return { type: 'none' }
  if (tokens.length > 1) return { type: 'multiple' }
  const parsed = parse(tokens[0]!)
  return typeof parsed === 'string' ? { type: 'malformed', detail: parsed } : { type: 'credential', credential: parsed }
}

/**
 * Raised when a request carries several Payment credentials (core spec: the server should reject it with 400).
 * @example
 * throw new MultipleCredentialsError('…')
 */
export class MultipleCredentialsError extends CredentialParseError {
  override readonly name = 'MultipleCredentialsError'
}

/**
 * Parses `Payment <base64url JSON>`.
 * @example
 * const credential = Credential.deserialize('Payment eyJjaGFsbGVuZ2UiOnsi…')
 */
export function deserialize(header: string): Credential {
  const parsed = parse(header)
  if (typeof parsed === 'string') throw new CredentialParseError(parsed)
  return parsed
}

// The credential, or why it is refused.
function parse(header: string): Credential | string {
  const match = /^payment[ \t]+([A-Za-z0-9_-]+={0,2})[ \t]*$/i.exec(header)
  if (!match) return 'expected "Payment <base64url>"'
  const token = match[1]!
  if (token.length > maxLength) return `credential larger than ${maxLength} characters`
  let text: string
  try {
    text = decodeText(token)
  } catch (error) {
    if (error instanceof EncodingError) return error.message
    throw error
  }
  // A credential is a JSON object: other text is refused before parsing (garbage is what most bots send).
  if (!/^[ \t\r\n]*\{/.test(text)) return 'not a JSON object'
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return 'not JSON'
  }
  const result = v.safeParse(Schema, json)
  if (!result.success) {
    const issue = result.issues[0]
    const path = issue.path?.map((p) => String(p.key)).join('.') ?? ''
    return `invalid credential${path ? ` at ${path}` : ''}: ${issue.message}`
  }
  return strip(result.output as Credential)
}

/**
 * Writes a credential as an Authorization value. An object `challenge.request` is encoded canonically.
 * @example
 * headers.set('authorization', Credential.serialize({ challenge, payload: { type: 'hash', hash } }))
 */
export function serialize(credential: {
  challenge: Challenge.Echoed | Challenge.Challenge
  source?: string | undefined
  payload: Record<string, unknown>
}): string {
  const challenge =
    typeof credential.challenge.request === 'string'
      ? credential.challenge
      : Challenge.toEchoed(credential.challenge as Challenge.Challenge)
  return `Payment ${encodeJson(strip({ challenge, source: credential.source, payload: credential.payload }))}`
}

function strip<T extends Record<string, unknown>>(value: T): T {
  for (const key of Object.keys(value)) if (value[key] === undefined) delete value[key]
  return value
}
