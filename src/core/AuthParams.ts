/** @module A single-pass tokenizer for RFC 9110 auth-params (token68-free `Payment` challenges). */

/** One `Payment` challenge's parameters, in wire order, with quoted-strings unescaped. */
export type Params = { name: string; value: string }[]

/**
 * Raised on a header that is not a list of `Payment` challenges.
 * @example
 * throw new AuthParamsError('…')
 */
export class AuthParamsError extends Error {
  override readonly name = 'AuthParamsError'
}

const tchar = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/

/**
 * Splits a `WWW-Authenticate` value into its `Payment` challenges. Linear in the input: every
 * character is read once, with no backtracking. Challenges of other schemes are skipped.
 * @example
 * splitChallenges('Payment id="a", realm="r"') // [[{ name: 'id', value: 'a' }, { name: 'realm', value: 'r' }]]
 */
export function splitChallenges(header: string): Params[] {
  const challenges: { scheme: string; params: Params; malformed: boolean }[] = []
  let i = 0
  const n = header.length
  const skipWs = () => {
    while (i < n && (header[i] === ' ' || header[i] === '\t')) i++
  }
  const readToken = () => {
    const start = i
    while (i < n && tchar.test(header[i]!)) i++
    return header.slice(start, i)
  }
  // Reads a quoted-string starting at `"`; returns undefined when unterminated.
  const readQuoted = () => {
    i++
    let out = ''
    while (i < n) {
      const ch = header[i]!
      if (ch === '\\') {
        if (i + 1 >= n) return undefined
        out += header[i + 1]
        i += 2
      } else if (ch === '"') {
        i++
        return out
      } else {
        out += ch
        i++
      }
    }
    return undefined
  }

  let current: (typeof challenges)[number] | undefined
  while (i < n) {
    skipWs()
    if (header[i] === ',') {
      i++
      continue
    }
    if (i >= n) break
    const token = readToken()
    if (!token) {
      // A stray character: the value is not a well-formed list.
      if (current) current.malformed = true
      i++
      continue
    }
    const afterToken = i
    skipWs()
    if (header[i] === '=') {
      // Either an auth-param of the current challenge, or a token68 (`abc==`).
      i++
      skipWs()
      if (!current) throw new AuthParamsError('parameter before any scheme')
      let value: string | undefined
      if (header[i] === '"') {
        value = readQuoted()
        // An unterminated quoted-string ends the header; the parameter is dropped.
        if (value === undefined) break
      } else {
        value = readToken()
      }
      current.params.push({ name: token.toLowerCase(), value })
      skipWs()
      // Anything other than a comma after a value ends this parameter early (a stray quote, say).
      if (i < n && header[i] !== ',') {
        while (i < n && header[i] !== ',') {
          if (header[i] === '"') {
            const skipped = readQuoted()
            if (skipped === undefined) i = n
          } else i++
        }
      }
      continue
    }
    i = afterToken
    // A new scheme starts here.
    current = { scheme: token, params: [], malformed: false }
    challenges.push(current)
  }
  return challenges.filter((c) => c.scheme.toLowerCase() === 'payment').map((c) => c.params)
}

/**
 * Quotes a value as an RFC 9110 quoted-string, refusing control characters (header injection) and
 * characters a header value cannot carry.
 * @example
 * quote('Pay "now"') // '"Pay \\"now\\""'
 */
export function quote(value: string): string {
  // CR, LF, NUL and other controls could split or smuggle a header.
  if (/[\u0000-\u0008\u000a-\u001f\u007f]/.test(value)) throw new AuthParamsError('control character in parameter value')
  // RFC 9110 §5.6.4: qdtext is ASCII or obs-text (0x80-0xFF); fetch's Headers refuses anything above
  // U+00FF with a TypeError, so refuse it here with a typed error instead.
  if (/[^\u0000-\u00ff]/.test(value)) throw new AuthParamsError('character outside Latin-1 in parameter value')
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`
}
