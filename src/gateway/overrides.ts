/**
 * @module Method-override material: headers, query parameters and body fields some frameworks route on (Rack and
 * Rails, Laravel and Symfony honour `_method` in a form by default; Laravel also in a JSON body). Every spelling
 * a common parser accepts is read as the override it stands for, so a request carrying one is refused, not
 * priced as one route and served as another.
 */

/** Headers that change the method or path a framework routes on. */
const overrideHeaders = new Set(['x-http-method-override', 'x-http-method', 'x-method-override', 'x-original-url', 'x-rewrite-url', 'x-original-method'])

/** Parameter and field names that change the method a framework routes on, in the form `overrideName` gives. */
const overrideNames = new Set(['_method', 'x-http-method-override', 'x-http-method', 'x-method-override'])

/** The kinds of body the gateway reads fields from: `none` is a body without a Content-Type (Rack reads it as a form). */
export type BodyKind = 'form' | 'multipart' | 'json' | 'none'

/**
 * The override a decoded parameter or field name stands for under the most permissive common parser, if any: a
 * name ends at NUL (PHP), case is ignored, surrounding spaces are trimmed, `.` or a space reads as `_` (PHP), and
 * each piece between brackets counts (`_method[x]`, Rack 2's `[_method]` and `_method]`, and `a[_method]`).
 * @example
 * overrideName('_METHOD') // '_method'
 * overrideName('[_method]') // '_method'
 * overrideName('_method\u0000x') // '_method'
 * overrideName('method') // undefined
 */
export function overrideName(name: string): string | undefined {
  // Every override name holds "method": most names are passed over by this test alone.
  if (!/method/i.test(name)) return undefined
  for (const piece of name.split('\0', 1)[0]!.split(/[[\]]/)) {
    const base = piece.trim().toLowerCase().replace(/[ .]/g, '_')
    if (overrideNames.has(base)) return base
  }
  return undefined
}

/**
 * The first override header (in any case, `_` read as `-` as Rack and PHP do) or query parameter a request carries.
 * @example
 * routingOverride(request.headers, new URL('https://x/paid?a=1;%5Fmethod=GET')) // '%5Fmethod'
 */
export function routingOverride(headers: Headers, url: URL): string | undefined {
  for (const name of headers.keys()) if (overrideHeaders.has(name.replace(/_/g, '-'))) return name
  return url.search.length > 1 ? formOverride(url.search.slice(1)) : undefined
}

/**
 * Why a body of the given kind is refused (the override field it names, as sent, or that it cannot be read);
 * undefined when it holds none. Every body is also read as a form, and a body that is not multipart as JSON when
 * it parses: an origin whose parsers ignore the type finds the fields either way.
 * @example
 * bodyOverride(new TextEncoder().encode('{"a":{"_method":"GET"}}'), 'json') // 'the body field "_method" is not accepted: …'
 */
export function bodyOverride(bytes: Uint8Array, kind: BodyKind): string | undefined {
  const text = latin1.decode(bytes)
  let field: string | undefined
  if (kind === 'multipart') field = multipartOverride(text)
  else {
    let json: unknown
    try {
      json = JSON.parse(utf8.decode(bytes))
    } catch {
      if (kind === 'json') return 'the body is not UTF-8 JSON'
    }
    field = jsonOverride(json)
  }
  field ??= formOverride(text)
  return field === undefined ? undefined : `the body field ${JSON.stringify(field.slice(0, 100))} is not accepted: it could change the method the origin serves`
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false })
const latin1 = new TextDecoder('latin1')

// Fields separated by "&" or ";" (Rack 2), names read with "+" as a space and %XX (and IIS's %uXXXX) decoded.
function formOverride(text: string): string | undefined {
  for (const field of text.split(/[&;]/)) {
    const name = field.split('=', 1)[0]!
    if (overrideName(/[%+]/.test(name) ? unescape(name) : name)) return name
  }
  return undefined
}

function unescape(text: string): string {
  return text.replace(/\+/g, ' ').replace(/%u([0-9a-f]{4})|%([0-9a-f]{2})/gi, (_, wide, byte) => String.fromCharCode(parseInt(wide ?? byte, 16)))
}

// Every object key at any depth.
function jsonOverride(value: unknown): string | undefined {
  const stack = [value]
  while (stack.length > 0) {
    const item = stack.pop()
    if (typeof item !== 'object' || item === null) continue
    if (Array.isArray(item)) {
      for (const inner of item) if (typeof inner === 'object') stack.push(inner)
      continue
    }
    for (const key in item) {
      if (overrideName(key)) return key
      const inner = (item as Record<string, unknown>)[key]
      if (typeof inner === 'object') stack.push(inner)
    }
  }
  return undefined
}

// Every `name` parameter and `Content-ID` anywhere in the body, whatever the part structure (parsers differ on it),
// its value read as each common parser reads it: a quoted string with quoted-pairs undone (Rack, PHP) or not, a
// token, the text up to `"` or `;` (older Rack), each also percent-decoded. An RFC 2231 `name*` or an RFC 2047
// encoded word (`=?…?=`) is refused: RFC 7578 senders use neither, and parsers disagree on them. Each value is
// read within 1 KiB of its parameter (so a crafted body costs linear time), and one that runs past it is refused.
function multipartOverride(text: string): string | undefined {
  let count = 0
  for (const match of text.matchAll(/\bname(\*?)\s*=\s*|content-id\s*:\s*/gi)) {
    if (match[1] || ++count > 10_000) return match[0]
    const start = match.index + match[0].length
    const window = text.slice(start, start + 1024)
    const line = window.split(/[\r\n]/, 1)[0]!
    const quoted = /^"((?:[^"\\]|\\.)*)("?)/.exec(line)
    const bare = line.replace(/^["<]/, '')
    const token = bare.split(/[\s"';,<>()\\/?=:[\]]/, 1)[0]!
    const upToQuote = bare.split(/[";]/, 1)[0]!
    const cut = line.length === 1024 && (quoted ? !quoted[2] : token.length === bare.length || upToQuote.length === bare.length)
    if (cut) return line.slice(0, 100)
    for (const name of [quoted?.[1] ?? '', quoted?.[1]?.replace(/\\(.)/g, '$1') ?? '', token, upToQuote]) {
      if (name.includes('=?') || overrideName(name) || overrideName(unescape(name))) return name
    }
  }
  return undefined
}
