/** @module `WWW-Authenticate: Payment` challenges: build, bind, format and parse (core spec, "The Payment Authentication Scheme"). */
import * as v from 'valibot'
import { AuthParamsError, quote, splitChallenges } from './AuthParams.js'
import * as ChallengeId from './ChallengeId.js'
import { EncodingError, decodeObject, encodeJson } from './Encoding.js'

/** A challenge with its `request` decoded. `opaque` and `digest` are the exact wire strings. */
export type Challenge = {
  id: string
  realm: string
  method: string
  intent: string
  request: Record<string, unknown>
  expires?: string | undefined
  digest?: string | undefined
  description?: string | undefined
  opaque?: string | undefined
  /** The request header the credential goes in when it is not `Authorization`; bound into the id. */
  header?: string | undefined
}

/** A challenge as a credential echoes it: `request` stays the base64url wire string the HMAC covers. */
export type Echoed = Omit<Challenge, 'request'> & { request: string }

/**
 * Raised when a header value is not a valid Payment challenge.
 * @example
 * throw new ChallengeParseError('…')
 */
export class ChallengeParseError extends Error {
  override readonly name = 'ChallengeParseError'
}

/**
 * Raised when a challenge cannot be written to a header safely.
 * @example
 * throw new ChallengeFormatError('…')
 */
export class ChallengeFormatError extends Error {
  override readonly name = 'ChallengeFormatError'
}

/**
 * Largest `WWW-Authenticate` value the parser reads (clients must handle 4 KB; servers should stay under 8 KB).
 * @example
 * if (header.length > maxHeaderLength) throw new ChallengeParseError('header too large')
 */
export const maxHeaderLength = 64 * 1024

const methodId = /^[a-z]+$/
const intentId = /^[A-Za-z0-9-]+$/

/**
 * The alternate credential header a challenge may name, for routes whose `Authorization` already carries the
 * application's own credentials (a Bearer API key).
 * @example
 * headers.set(Challenge.paymentAuthorization, Credential.serialize(credential))
 */
export const paymentAuthorization = 'Payment-Authorization'

/** The header that carries a Payment credential: the default `Authorization`, or `Payment-Authorization`. */
export type CredentialHeader = 'Authorization' | typeof paymentAuthorization

/**
 * Whether a `header` parameter names a field the credential may go in. The list is closed (core spec, alternate
 * credential header, mpp-specs #328): only `Payment-Authorization`, or `Authorization` spelled out, so a challenge
 * can never steer a credential into `Host`, `Content-Length`, `Cookie` or `Proxy-Authorization`.
 * @example
 * Challenge.isCredentialHeader('Payment-Authorization') // true
 * Challenge.isCredentialHeader('Proxy-Authorization') // false
 */
export function isCredentialHeader(header: string | undefined): boolean {
  if (header === undefined) return true
  const name = header.toLowerCase()
  return name === 'authorization' || name === 'payment-authorization'
}

/**
 * The header a client sends a challenge's credential in (field names compare case-insensitively).
 * @example
 * Challenge.credentialHeader({ ...challenge, header: 'Payment-Authorization' }) // 'Payment-Authorization'
 */
export function credentialHeader(challenge: Pick<Challenge, 'header'>): CredentialHeader {
  return isDefaultHeader(challenge.header) ? 'Authorization' : paymentAuthorization
}

const EchoedSchema = v.object({
  id: v.pipe(v.string(), v.minLength(1)),
  realm: v.string(),
  method: v.pipe(v.string(), v.regex(methodId)),
  intent: v.pipe(v.string(), v.regex(intentId)),
  request: v.pipe(v.string(), v.maxLength(maxHeaderLength)),
  expires: v.optional(v.string()),
  digest: v.optional(v.string()),
  description: v.optional(v.string()),
  opaque: v.optional(v.string()),
  header: v.optional(v.pipe(v.string(), v.check((header: string) => isCredentialHeader(header), 'header must be Payment-Authorization'))),
})

/**
 * Schema of an echoed challenge inside a credential.
 * @example
 * v.parse(Challenge.Schema, credential.challenge)
 */
export const Schema = EchoedSchema

/**
 * Builds a bound challenge: encodes `request` canonically and computes its HMAC id.
 * @example
 * const challenge = await Challenge.create({ secret, realm: 'api.example.com', method: 'tempo', intent: 'charge', request: { amount: '1' } })
 */
export async function create(parameters: Omit<Challenge, 'id'> & { id?: string | undefined; secret: string }): Promise<Challenge> {
  const { secret, id: _ignored, ...fields } = parameters
  const id = await ChallengeId.compute(secret, { ...fields, request: encodeJson(fields.request) })
  return compact({ id, ...fields })
}

/**
 * Converts a challenge to its echoed form, with `request` encoded canonically.
 * @example
 * Challenge.toEchoed(challenge).request // 'eyJhbW91bnQiOiIxIn0'
 */
export function toEchoed(challenge: Challenge): Echoed {
  return compact({ ...challenge, request: encodeJson(challenge.request) })
}

/**
 * Decodes an echoed challenge's `request`.
 * @example
 * Challenge.fromEchoed(credential.challenge).request.amount
 */
export function fromEchoed(echoed: Echoed): Challenge {
  try {
    return compact({ ...echoed, request: decodeObject(echoed.request) })
  } catch (error) {
    throw new ChallengeParseError('request is not base64url JSON', { cause: error })
  }
}

/**
 * Writes one challenge as a `WWW-Authenticate` value.
 * @example
 * Challenge.serialize(challenge) // 'Payment id="…", realm="api.example.com", method="tempo", intent="charge", request="…"'
 */
export function serialize(challenge: Challenge | Echoed): string {
  let request: string
  try {
    request = typeof challenge.request === 'string' ? challenge.request : encodeJson(challenge.request)
  } catch (error) {
    if (error instanceof EncodingError) throw new ChallengeFormatError(`request: ${error.message}`, { cause: error })
    throw error
  }
  const params: [string, string | undefined][] = [
    ['id', challenge.id],
    ['realm', challenge.realm],
    ['method', challenge.method],
    ['intent', challenge.intent],
    ['request', request],
    ['expires', challenge.expires],
    ['digest', challenge.digest],
    ['description', challenge.description],
    // The credential header is bound into the id, so the client must learn it; the default stays implicit.
    ['header', isDefaultHeader(challenge.header) ? undefined : challenge.header],
    ['opaque', challenge.opaque],
  ]
  if (!challenge.id) throw new ChallengeFormatError('id must not be empty')
  if (!methodId.test(challenge.method)) throw new ChallengeFormatError('method must be lowercase a-z')
  if (!intentId.test(challenge.intent)) throw new ChallengeFormatError('intent must be a token')
  if (!isCredentialHeader(challenge.header)) throw new ChallengeFormatError('header must be Payment-Authorization')
  try {
    return `Payment ${params
      .filter((p): p is [string, string] => p[1] !== undefined)
      .map(([name, value]) => `${name}=${quote(value)}`)
      .join(', ')}`
  } catch (error) {
    if (error instanceof AuthParamsError) throw new ChallengeFormatError(error.message, { cause: error })
    throw error
  }
}

/** The parameters a run of challenges shares (one offer's), for `formatter`. */
export type FixedParams = Pick<Challenge, 'realm' | 'method' | 'intent' | 'description' | 'header'> & { request: string }

/** The parameters each challenge of a run has of its own, for `formatter`. */
export type OwnParams = Pick<Challenge, 'id' | 'expires' | 'digest' | 'opaque'>

/**
 * A formatter for many challenges sharing their fixed parameters (one offer's realm, method, intent, request,
 * description and header): those are checked and quoted once, each call adds a challenge's own. The output is
 * `serialize`'s for the same challenge.
 * @example
 * const format = Challenge.formatter({ realm, method: 'tempo', intent: 'charge', request: wire })
 * headers.append('www-authenticate', format({ id, expires, opaque }))
 */
export function formatter(fixed: FixedParams): (own: OwnParams) => string {
  const realm = quoteParam(fixed.realm)
  const middle = `, method=${quoteParam(fixed.method)}, intent=${quoteParam(fixed.intent)}, request=${quoteParam(fixed.request)}`
  const tail = `${fixed.description !== undefined ? `, description=${quoteParam(fixed.description)}` : ''}${isDefaultHeader(fixed.header) ? '' : `, header=${quoteParam(fixed.header!)}`}`
  if (!methodId.test(fixed.method)) throw new ChallengeFormatError('method must be lowercase a-z')
  if (!intentId.test(fixed.intent)) throw new ChallengeFormatError('intent must be a token')
  if (!isCredentialHeader(fixed.header)) throw new ChallengeFormatError('header must be Payment-Authorization')
  return (own) => {
    if (!own.id) throw new ChallengeFormatError('id must not be empty')
    return `Payment id=${quoteOwn(own.id)}, realm=${realm}${middle}${own.expires !== undefined ? `, expires=${quoteOwn(own.expires)}` : ''}${
      own.digest !== undefined ? `, digest=${quoteOwn(own.digest)}` : ''
    }${tail}${own.opaque !== undefined ? `, opaque=${quoteOwn(own.opaque)}` : ''}`
  }
}

// An id, expiry, digest or opaque value is base64url, an RFC 3339 time or a digest: nothing to escape, usually.
const plainValue = /^[A-Za-z0-9_\-.:+=]*$/
const quoteOwn = (value: string) => (plainValue.test(value) ? `"${value}"` : quoteParam(value))

function quoteParam(value: string): string {
  try {
    return quote(value)
  } catch (error) {
    if (error instanceof AuthParamsError) throw new ChallengeFormatError(error.message, { cause: error })
    throw error
  }
}

/**
 * Parses every `Payment` challenge in a `WWW-Authenticate` value (several may share one value).
 * @example
 * const [challenge] = Challenge.deserializeAll(response.headers.get('www-authenticate')!)
 */
export function deserializeAll(header: string): Challenge[] {
  if (header.length > maxHeaderLength) throw new ChallengeParseError('header too large')
  let all
  try {
    all = splitChallenges(header)
  } catch (error) {
    throw new ChallengeParseError('not an auth-param list', { cause: error })
  }
  if (all.length === 0) throw new ChallengeParseError('no Payment challenge')
  return all.map(fromParams)
}

/**
 * Parses a `WWW-Authenticate` value holding exactly one `Payment` challenge.
 * @example
 * const challenge = Challenge.deserialize('Payment id="a", realm="r", method="tempo", intent="charge", request="e30"')
 */
export function deserialize(header: string): Challenge {
  const all = deserializeAll(header)
  if (all.length !== 1) throw new ChallengeParseError('expected one Payment challenge')
  return all[0]!
}

/**
 * Parses all `Payment` challenges of a response, across header lines.
 * @example
 * const offers = Challenge.fromResponse(await fetch(url))
 */
export function fromResponse(response: Response): Challenge[] {
  const header = response.headers.get('www-authenticate')
  if (!header) throw new ChallengeParseError('no WWW-Authenticate header')
  // Headers.get joins several lines with ", ", which the list grammar reads back unchanged.
  return deserializeAll(header)
}

/**
 * Checks that an echoed challenge carries the id this server would have issued, under the current or a previous secret.
 * @example
 * if (!(await Challenge.verifyBinding(echoed, [secret]))) throw new InvalidChallengeError()
 */
export async function verifyBinding(echoed: Echoed, secrets: readonly string[]): Promise<boolean> {
  for (const secret of secrets) {
    if (await ChallengeId.verify(secret, echoed, echoed.id)) return true
  }
  return false
}

function fromParams(params: { name: string; value: string }[]): Challenge {
  const seen = new Map<string, string>()
  for (const { name, value } of params) {
    if (seen.has(name)) throw new ChallengeParseError(`duplicate parameter: ${name}`)
    seen.set(name, value)
  }
  const required = (name: string) => {
    const value = seen.get(name)
    if (value === undefined || value === '') throw new ChallengeParseError(`missing parameter: ${name}`)
    return value
  }
  const id = required('id')
  const realm = seen.get('realm')
  if (realm === undefined) throw new ChallengeParseError('missing parameter: realm')
  const method = required('method')
  const intent = required('intent')
  const requestWire = required('request')
  if (!methodId.test(method)) throw new ChallengeParseError('method must be lowercase a-z')
  if (!intentId.test(intent)) throw new ChallengeParseError('intent must be a token')
  const header = seen.get('header')
  // A challenge naming any other field is refused, never followed (the allow-list is closed).
  if (!isCredentialHeader(header)) throw new ChallengeParseError('header must be Payment-Authorization')
  let request
  try {
    request = decodeObject(requestWire)
  } catch (error) {
    if (error instanceof EncodingError) throw new ChallengeParseError(`request: ${error.message}`, { cause: error })
    throw error
  }
  return compact({
    id,
    realm,
    method,
    intent,
    request,
    expires: seen.get('expires'),
    digest: seen.get('digest'),
    description: seen.get('description'),
    header,
    opaque: seen.get('opaque'),
  })
}

function isDefaultHeader(header: string | undefined): boolean {
  return header === undefined || header.toLowerCase() === 'authorization'
}

function compact<T extends Record<string, unknown>>(value: T): T {
  for (const key of Object.keys(value)) if (value[key] === undefined) delete value[key]
  return value
}
