/** @module base64url without padding (RFC 4648 §5) and JCS JSON (RFC 8785), as the core spec encodes `request`, credentials and receipts. */
import canonicalize from 'canonicalize'

const alphabet = /^[A-Za-z0-9_-]*$/
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
const utf8 = new TextEncoder()

/**
 * Raised when a value is not valid base64url or not valid UTF-8 or JSON.
 * @example
 * throw new EncodingError('…')
 */
export class EncodingError extends Error {
  override readonly name = 'EncodingError'
}

/**
 * Encodes bytes as base64url without padding.
 * @example
 * encodeBytes(new Uint8Array([255])) // '_w'
 */
export function encodeBytes(bytes: Uint8Array): string {
  let binary = ''
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000))
  }
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

/**
 * Decodes base64url (padding tolerated, any other character refused) to bytes.
 * @example
 * decodeBytes('_w') // Uint8Array [255]
 */
export function decodeBytes(text: string): Uint8Array {
  const body = text.replace(/={1,2}$/, '')
  if (!alphabet.test(body) || body.length % 4 === 1) throw new EncodingError('not base64url')
  const binary = atob(body.replace(/-/g, '+').replace(/_/g, '/'))
  const bytes = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  return bytes
}

/**
 * Encodes a UTF-8 string as base64url without padding.
 * @example
 * encodeText('{}') // 'e30'
 */
export function encodeText(text: string): string {
  return encodeBytes(utf8.encode(text))
}

/**
 * Decodes base64url to a string, refusing bytes that are not valid UTF-8.
 * @example
 * decodeText('e30') // '{}'
 */
export function decodeText(text: string): string {
  try {
    return strictUtf8.decode(decodeBytes(text))
  } catch (error) {
    if (error instanceof EncodingError) throw error
    throw new EncodingError('not valid UTF-8')
  }
}

/**
 * Serializes a JSON value canonically (RFC 8785).
 * @example
 * canonicalJson({ b: 1, a: 2 }) // '{"a":2,"b":1}'
 */
export function canonicalJson(value: unknown): string {
  let text: string | undefined
  try {
    text = canonicalize(value)
  } catch (error) {
    // RFC 8785 §3.2.2 / I-JSON: lone surrogates, NaN, Infinity and cycles have no canonical form.
    throw new EncodingError(`value has no canonical JSON form: ${(error as Error).message}`, { cause: error })
  }
  if (text === undefined) throw new EncodingError('value is not JSON')
  return text
}

/**
 * Encodes a JSON value as base64url of its canonical form, as the spec requires for `request` and `opaque`.
 * @example
 * encodeJson({}) // 'e30'
 */
export function encodeJson(value: unknown): string {
  return encodeText(canonicalJson(value))
}

/**
 * Decodes base64url JSON to a value.
 * @example
 * decodeJson('e30') // {}
 */
export function decodeJson(text: string): unknown {
  const json = decodeText(text)
  try {
    return JSON.parse(json)
  } catch {
    throw new EncodingError('not JSON')
  }
}

/**
 * Decodes base64url JSON that must be a plain object.
 * @example
 * decodeObject('e30') // {}
 */
export function decodeObject(text: string): Record<string, unknown> {
  const value = decodeJson(text)
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new EncodingError('not a JSON object')
  return value as Record<string, unknown>
}
