/**
 * @module Method-override material: headers, query parameters and form fields some frameworks route on
 * (Rack and Rails, Laravel and Symfony honour `_method` in a form body by default). A request carrying one
 * could be priced as one route and served as another, so the gateway refuses it before anything else.
 */
import * as Body from '../core/Body.js'
import { BadRequestError, ContentTooLargeError } from '../core/Errors.js'

/** Headers that change the method or path a framework routes on. */
const overrideHeaders = ['x-http-method-override', 'x-http-method', 'x-method-override', 'x-original-url', 'x-rewrite-url', 'x-original-method']

/** Parameter and field names that change the method a framework routes on, in the form `overrideName` gives. */
const overrideNames = new Set(['_method', 'x-http-method-override', 'x-http-method', 'x-method-override'])

/**
 * Largest form body read on a priced path to look for override fields; a larger one answers 413.
 * @example
 * if (size > maxFormBytes) throw new ContentTooLargeError()
 */
export const maxFormBytes = 64 * 1024

/**
 * The override a decoded parameter or field name stands for under a common parser, if any: case is ignored,
 * surrounding spaces are trimmed and `.` or a space read as `_` (PHP), and `_method[x]` is `_method`.
 * @example
 * overrideName('_METHOD') // '_method'
 * overrideName('.method') // '_method'
 * overrideName('method') // undefined
 */
export function overrideName(name: string): string | undefined {
  const base = name.trim().toLowerCase().split('[')[0]!.replace(/[ .]/g, '_')
  return overrideNames.has(base) ? base : undefined
}

/**
 * The first override header or query parameter (names decoded, any case) a request carries.
 * @example
 * routingOverride(request.headers, new URL('https://x/paid?%5Fmethod=GET')) // '_method'
 */
export function routingOverride(headers: Headers, url: URL): string | undefined {
  for (const name of overrideHeaders) if (headers.has(name)) return name
  if (url.search.length > 1) {
    for (const name of url.searchParams.keys()) {
      const found = overrideName(name)
      if (found) return found
    }
  }
  return undefined
}

/** Media types whose bodies frameworks read form fields from; Rack also reads a POST with no type as a form. */
function formKind(contentType: string | null): 'urlencoded' | 'multipart' | undefined {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase()
  if (type === '' || type === 'application/x-www-form-urlencoded') return 'urlencoded'
  if (type.startsWith('multipart/')) return 'multipart'
  return undefined
}

// The `name` (or RFC 2231 `name*`) parameter of a multipart part's Content-Disposition, quoted or not.
const partName = /\bname(\*?)\s*=\s*(?:"([^"\r\n]*)"|([^;\r\n]*))/gi

/**
 * Refuses a form-encoded or multipart body holding an override field, reading at most `maxFormBytes`.
 * Answers the request to forward: the same one when its body is not a form, else one over the bytes read.
 * Throws ContentTooLargeError (413) for a larger form body, BadRequestError (400) for an override field.
 * @example
 * request = await refuseFormOverride(request)
 */
export async function refuseFormOverride(request: Request): Promise<Request> {
  const kind = request.body ? formKind(request.headers.get('content-type')) : undefined
  if (!kind) return request
  const tooLarge = () => new ContentTooLargeError({ detail: `form bodies on a priced path are limited to ${maxFormBytes} bytes` })
  if (Number(request.headers.get('content-length') ?? '0') > maxFormBytes) throw tooLarge()
  const reader = request.body!.getReader()
  const read = await Body.readUpTo(reader, maxFormBytes)
  if (!read.complete) {
    await reader.cancel().catch(() => {})
    throw tooLarge()
  }
  const bytes = Body.concat(read.chunks, read.size)
  const field = kind === 'urlencoded' ? urlencodedOverride(bytes) : multipartOverride(bytes)
  if (field !== undefined) {
    throw new BadRequestError({ detail: `the form field "${field}" is not accepted: it could change the method the origin serves` })
  }
  return new Request(request, { body: bytes })
}

function urlencodedOverride(bytes: Uint8Array): string | undefined {
  for (const name of new URLSearchParams(new TextDecoder().decode(bytes)).keys()) {
    const found = overrideName(name)
    if (found) return found
  }
  return undefined
}

function multipartOverride(bytes: Uint8Array): string | undefined {
  // Byte for byte (latin1), so no multipart parser's leniency decides: every `name=` anywhere is looked at.
  const text = new TextDecoder('latin1').decode(bytes)
  for (const match of text.matchAll(partName)) {
    let name = match[2] ?? match[3] ?? ''
    if (match[1]) name = name.replace(/^[^']*'[^']*'/, '')
    const found = overrideName(name) ?? overrideName(percentDecoded(name))
    if (found) return found
  }
  return undefined
}

function percentDecoded(value: string): string {
  try {
    return decodeURIComponent(value)
  } catch {
    return value
  }
}
