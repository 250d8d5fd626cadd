/** @module Stateless challenge binding: HMAC-SHA256 over the challenge slots (core spec, "Challenge Binding"). */
import { EncodingError, decodeBytes, encodeBytes } from './Encoding.js'

/**
 * The smallest secret accepted, in bytes of its UTF-8 form.
 * @example
 * new TextEncoder().encode(secret).length >= minSecretBytes
 */
export const minSecretBytes = 32

/** The slots the id binds; `request` is the base64url wire string. */
export type Slots = {
  realm: string
  method: string
  intent: string
  request: string
  expires?: string | undefined
  digest?: string | undefined
  opaque?: string | undefined
  header?: string | undefined
}

/**
 * Raised when a secret is too short to bind challenges safely.
 * @example
 * throw new WeakSecretError('…')
 */
export class WeakSecretError extends Error {
  override readonly name = 'WeakSecretError'
}

const utf8 = new TextEncoder()
const keys = new Map<string, Promise<CryptoKey>>()

/**
 * Refuses secrets shorter than 32 bytes.
 * @example
 * ChallengeId.assertSecret(env.MPP_SECRET_KEY)
 */
export function assertSecret(secret: string, name = 'secret'): void {
  if (utf8.encode(secret).length < minSecretBytes) {
    throw new WeakSecretError(`${name} must be at least ${minSecretBytes} bytes`)
  }
}

/**
 * The HMAC input: seven pipe-joined slots, with a non-default credential header slot before `opaque`.
 * @example
 * ChallengeId.input({ realm: 'r', method: 'tempo', intent: 'charge', request: 'e30' }) // 'r|tempo|charge|e30|||'
 */
export function input(slots: Slots): string {
  const parts = [slots.realm, slots.method, slots.intent, slots.request, slots.expires ?? '', slots.digest ?? '']
  // `Authorization` is the default header and leaves the input unchanged (conformance vectors).
  if (slots.header && slots.header.toLowerCase() !== 'authorization') parts.push(slots.header)
  parts.push(slots.opaque ?? '')
  return parts.join('|')
}

/**
 * Computes the challenge id: base64url(HMAC-SHA256(secret, input)) without padding.
 * @example
 * const id = await ChallengeId.compute(secret, { realm, method: 'tempo', intent: 'charge', request })
 */
export async function compute(secret: string, slots: Slots): Promise<string> {
  const mac = await crypto.subtle.sign('HMAC', await key(secret), utf8.encode(input(slots)))
  return encodeBytes(new Uint8Array(mac))
}

/**
 * Checks an id against the slots in constant time (WebCrypto's verify compares the MACs).
 * @example
 * await ChallengeId.verify(secret, echoed, echoed.id) // true
 */
export async function verify(secret: string, slots: Slots, id: string): Promise<boolean> {
  let mac: Uint8Array<ArrayBuffer>
  try {
    mac = decodeId(id)
  } catch {
    return false
  }
  if (mac.length !== 32) return false
  return crypto.subtle.verify('HMAC', await key(secret), mac, utf8.encode(input(slots)))
}

function decodeId(id: string): Uint8Array<ArrayBuffer> {
  if (!/^[A-Za-z0-9_-]{43}$/.test(id)) throw new EncodingError('not an id')
  return decodeBytes(id)
}

function key(secret: string): Promise<CryptoKey> {
  let cached = keys.get(secret)
  if (!cached) {
    assertSecret(secret)
    cached = crypto.subtle.importKey('raw', utf8.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify'])
    // Few secrets exist per isolate (current plus rotations); keep their imported keys.
    if (keys.size > 16) keys.clear()
    keys.set(secret, cached)
  }
  return cached
}
