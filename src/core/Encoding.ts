/** @module base64url without padding (RFC 4648 §5) and JCS JSON (RFC 8785), as the core spec encodes `request`, credentials and receipts. */
import canonicalize from 'canonicalize'

const base64url = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
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
  // Straight to the base64url alphabet: btoa plus three replacements cost several times more (every 402 encodes).
  let out = ''
  const whole = bytes.length - (bytes.length % 3)
  let i = 0
  for (; i < whole; i += 3) {
    const v = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!
    out += base64url[v >>> 18]! + base64url[(v >>> 12) & 63]! + base64url[(v >>> 6) & 63]! + base64url[v & 63]!
  }
  const rest = bytes.length - whole
  if (rest > 0) {
    const v = (bytes[i]! << 16) | (rest === 2 ? bytes[i + 1]! << 8 : 0)
    out += base64url[v >>> 18]! + base64url[(v >>> 12) & 63]! + (rest === 2 ? base64url[(v >>> 6) & 63]! : '')
  }
  return out
}


/**
 * Decodes base64url (padding tolerated, any other character refused) to bytes.
 * @example
 * decodeBytes('_w') // Uint8Array [255]
 */
export function decodeBytes(text: string): Uint8Array<ArrayBuffer> {
  let end = text.length
  if (text.charCodeAt(end - 1) === 61) end-- // '='
  if (text.charCodeAt(end - 1) === 61) end--
  if (end % 4 === 1) throw new EncodingError('not base64url')
  const bytes = new Uint8Array(Math.floor((end * 3) / 4))
  let bits = 0
  let buffer = 0
  let out = 0
  for (let i = 0; i < end; i++) {
    const code = text.charCodeAt(i)
    const value = code < 128 ? sextets[code]! : -1
    if (value < 0) throw new EncodingError('not base64url')
    buffer = ((buffer << 6) | value) & 0xffffff
    bits += 6
    if (bits >= 8) {
      bits -= 8
      bytes[out++] = (buffer >>> bits) & 0xff
    }
  }
  return bytes
}

// The value of each base64url character by char code; -1 for every other character.
const sextets = Int8Array.from({ length: 128 }, (_, code) => base64url.indexOf(String.fromCharCode(code)))

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
