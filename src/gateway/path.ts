/**
 * @module The one canonical form of a request path, or a refusal when the path could mean different
 * things to the gateway and to the origin. The gateway prices, matches and forwards this form only, so
 * no spelling of a priced path (encoded, double-encoded, dotted, doubled, padded) reaches it for free.
 */

/**
 * Why a path was refused.
 * @example
 * throw new AmbiguousPathError('…')
 */
export class AmbiguousPathError extends Error {
  override readonly name = 'AmbiguousPathError'
}

// A path that is already canonical: URL path characters only (no '%', no ';'), and no "//" and no segment
// ending in '.' (which covers "." and ".."). Most requests take this exit.
const plain = /^[A-Za-z0-9\-._~!$&'()*+,=:@/]*$/
const plainTraps = /\/\/|\.(?:\/|$)/

// Characters the URL standard percent-encodes in a path (plus '%' itself), written back encoded.
const encodeInPath = /[\u0000-\u0020"#%<>?`{}\u007f-\uffff]/u
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/**
 * Returns the canonical path of a URL pathname: every percent-escape decoded once, checked, and the URL
 * path characters re-encoded (uppercase hex). Throws AmbiguousPathError when the decoded path holds an
 * encoded '/' or '\', a '%' (double encoding), ';' (path parameters), control, format or line-terminator
 * characters, text that Unicode compatibility normalization would change, an empty, '.' or '..' segment,
 * or a segment ending in '.' or a space (which some servers trim).
 * @example
 * canonicalPath('/%70aid') // '/paid'
 * canonicalPath('/paid%2500') // throws AmbiguousPathError
 */
export function canonicalPath(pathname: string): string {
  if (!pathname.startsWith('/')) throw new AmbiguousPathError('the path must start with "/"')
  if (plain.test(pathname) && !plainTraps.test(pathname)) return pathname
  if (/%(?:2f|5c)/i.test(pathname)) throw new AmbiguousPathError('the path encodes "/" or "\\"')
  const decoded = decode(pathname)
  if (decoded.includes('%')) throw new AmbiguousPathError('the path holds "%" once decoded (double encoding)')
  if (decoded.includes('\\')) throw new AmbiguousPathError('the path holds "\\"')
  if (decoded.includes(';')) throw new AmbiguousPathError('the path holds ";" (path parameters)')
  if (/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Co}\p{Cs}\p{Cn}]/u.test(decoded)) {
    throw new AmbiguousPathError('the path holds control, format, line-terminator or unassigned characters')
  }
  if (decoded.normalize('NFKC') !== decoded) throw new AmbiguousPathError('the path changes under Unicode normalization')
  const segments = decoded.split('/').slice(1)
  segments.forEach((segment, i) => {
    if (segment === '' && i < segments.length - 1) throw new AmbiguousPathError('the path holds an empty segment ("//")')
    if (segment === '.' || segment === '..') throw new AmbiguousPathError('the path holds a dot segment')
    if (/[. ]$/.test(segment)) throw new AmbiguousPathError('a path segment ends in "." or a space')
  })
  return encode(decoded)
}

function decode(pathname: string): string {
  if (!pathname.includes('%')) return pathname
  const bytes: number[] = []
  for (let i = 0; i < pathname.length; i++) {
    const code = pathname.charCodeAt(i)
    if (code === 0x25) {
      const hex = pathname.slice(i + 1, i + 3)
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw new AmbiguousPathError('the path holds a "%" that is not an escape')
      bytes.push(parseInt(hex, 16))
      i += 2
    } else if (code < 0x80) {
      bytes.push(code)
    } else {
      bytes.push(...new TextEncoder().encode(pathname[i]!))
    }
  }
  try {
    return decoder.decode(new Uint8Array(bytes))
  } catch {
    throw new AmbiguousPathError('the path is not valid UTF-8 once decoded')
  }
}

function encode(decoded: string): string {
  let out = ''
  for (const char of decoded) {
    if (!encodeInPath.test(char)) {
      out += char
      continue
    }
    for (const byte of new TextEncoder().encode(char)) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return out
}
