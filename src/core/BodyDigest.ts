/** @module RFC 9530 `Content-Digest` values for body binding (core spec, "Request Body Digest Binding"). */

/**
 * The `sha-256=:<base64>:` digest of a body.
 * @example
 * await BodyDigest.compute(new TextEncoder().encode('{}')) // 'sha-256=:RBNvo1WzZ4oRRq0W9+hknpT7T8If536DEMBg9hyq/4o=:'
 */
export async function compute(body: ArrayBuffer | Uint8Array<ArrayBuffer>): Promise<string> {
  const hash = new Uint8Array(await crypto.subtle.digest('SHA-256', body))
  let binary = ''
  for (const byte of hash) binary += String.fromCharCode(byte)
  return `sha-256=:${btoa(binary)}:`
}

/**
 * Whether a body matches a digest value. Only sha-256 is produced and accepted; the comparison is on
 * digests, which are public, so it need not be constant time.
 * @example
 * await BodyDigest.matches(body, challenge.digest!) // true
 */
export async function matches(body: ArrayBuffer | Uint8Array<ArrayBuffer>, digest: string): Promise<boolean> {
  return (await compute(body)) === digest.trim()
}
