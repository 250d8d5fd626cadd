/**
 * @module The forward decision on a priced path (a path a priced route matches under some method): a request goes
 * on only as what the table names it, and only when nothing in it can make the origin serve it as something else.
 * What the gateway cannot read with certainty is refused, not forwarded.
 */
import * as Body from '../core/Body.js'
import { BadRequestError, ContentTooLargeError, MethodNotAllowedError, UnsupportedMediaTypeError, type PaymentError } from '../core/Errors.js'
import * as Server from '../core/Server.js'
import { preflight, type Cors } from './cors.js'
import { bodyOverride, type BodyKind } from './overrides.js'
import type { Match } from './routes.js'

/** What `screen` needs besides the request: the body bound and the table's CORS settings. */
export type ScreenOptions = { limit: number; cors: Cors | undefined }

/**
 * Decides a request at a priced path. Answers the request to go on with (its body re-attached when it was read),
 * or the gateway's own answer: OPTIONS the table does not forward (`204`, a CORS preflight), a method it neither
 * prices nor frees there (`405`), and a body that names a method override (`400`), is larger than `limit` (`413`)
 * or is in an encoding the gateway does not read (`415`). The body of a free method is always read. A priced
 * one's is read when the challenge binds its digest (every method but GET and HEAD: the core reads it then
 * anyway), so that nothing is challenged that would be refused once paid, and a GET's or HEAD's only once it
 * presents a credential. None is read on a route that prices every method alike.
 * @example
 * const next = await screen(request, resolve(routes, request.method, path), { limit, cors })
 * if (next instanceof Response) return next
 */
export async function screen(request: Request, match: Match, options: ScreenOptions): Promise<Request | Response> {
  const route = match.route
  if (!route) {
    if (request.method === 'OPTIONS') return preflight(request, match.allowed, options.cors)
    const response = refuse(new MethodNotAllowedError({ detail: `${request.method} is neither priced nor free at this path (allowed: ${match.allowed.join(', ')})` }))
    response.headers.set('allow', [...match.allowed, 'OPTIONS'].sort().join(', '))
    return response
  }
  // A route pricing every method, when nothing else is named here, serves any method alike: an override changes nothing.
  if ((!route.methods && match.allowed.length === 1) || !request.body) return request
  const type = request.headers.get('content-type')
  const kind = bodyKind(type)
  const free = route.entry.free
  if (kind === 'other' && !free) return request
  const encoding = request.headers.get('content-encoding')
  const unread = !kind || kind === 'other'
    ? `${JSON.stringify(type!.slice(0, 100))} bodies are not read here: send JSON, a form or multipart/form-data, in UTF-8`
    : encoding !== null && encoding.toLowerCase() !== 'identity' ? 'bodies with a Content-Encoding are not read here' : undefined
  const tooLarge = () => refuse(new ContentTooLargeError({ detail: `bodies on a priced path are limited to ${options.limit} bytes` }))
  if (Number(request.headers.get('content-length') ?? '0') > options.limit) return tooLarge()
  if (!free) {
    // Checked before the 402, so nothing is challenged that would be refused once paid.
    if (unread) return refuse(new UnsupportedMediaTypeError({ detail: unread }))
    if ((request.method === 'GET' || request.method === 'HEAD') && !presentsPayment(request.headers.get(route.entry.credentialHeader ?? 'authorization'))) return request
  }
  const reader = request.body.getReader()
  const read = await Body.readUpTo(reader, options.limit)
  if (!read.complete) {
    await reader.cancel().catch(() => {})
    return tooLarge()
  }
  const bytes = Body.concat(read.chunks, read.size)
  if (unread && bytes.length > 0) return refuse(new UnsupportedMediaTypeError({ detail: unread }))
  const refused = unread ? undefined : bodyOverride(bytes, kind as BodyKind)
  if (refused !== undefined) return refuse(new BadRequestError({ detail: refused }))
  return new Request(request, { body: bytes })
}

/**
 * Whether a credentials header carries a Payment credential.
 * @example
 * presentsPayment('Bearer k, Payment eyJ…') // true
 */
export function presentsPayment(value: string | null): boolean {
  return value !== null && /(^|,)\s*payment(\s|$)/i.test(value)
}

function refuse(error: PaymentError): Response {
  return Server.problemResponse(error)
}

/**
 * The kind of body a Content-Type names: one the gateway reads, `other` (a type no common framework reads fields
 * from), or undefined when parsers could read it differently: a header that is not one media type (Rack cuts it
 * at `,`, PHP at a space), a charset other than UTF-8, an unknown or repeated parameter, or a mention of json,
 * form or multipart outside the types read (Laravel reads any type mentioning `/json` as JSON).
 */
function bodyKind(header: string | null): BodyKind | 'other' | undefined {
  if (header === null) return 'none'
  // RFC 9110 §8.3.1: type "/" subtype *( OWS ";" OWS parameter ).
  const [type, ...params] = header.toLowerCase().split(/[ \t]*;[ \t]*/) as [string, ...string[]]
  if (!/^[\w!#$&^+.-]+\/[\w!#$&^+.-]+$/.test(type)) return undefined
  const kind = type === 'application/x-www-form-urlencoded' ? 'form' : /^multipart\/(form-data|mixed|related)$/.test(type) ? 'multipart' : /^[^/]+\/[^/]*json/.test(type) ? 'json' : 'other'
  if (kind === 'other') return /json|form|multipart/i.test(header) ? undefined : kind
  const names = params.map((param) => /^(charset)=("?)utf-8\2$/.exec(param)?.[1] ?? (kind === 'multipart' ? /^(boundary)=("?)[\w'()+./:=?-]{1,70}\2$/.exec(param)?.[1] : undefined))
  if (names.includes(undefined) || new Set(names).size < names.length || (kind === 'multipart' && !names.includes('boundary'))) return undefined
  return kind
}
