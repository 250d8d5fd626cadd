/** @module CORS on priced paths, from the pricing table's `cors`: the gateway answers preflights there itself. */
import type { PricingTable } from './pricing.js'

/** The pricing table's CORS settings. */
export type Cors = NonNullable<PricingTable['cors']>

// What a browser needs to send to pay, and to read of the answers.
const paying = ['authorization', 'payment-authorization', 'content-type', 'idempotency-key']
const exposed = 'www-authenticate, payment-receipt, retry-after'

/**
 * The gateway's answer to an OPTIONS the table does not forward: `204` with `Allow`, and for a preflight from an
 * allowed origin the methods (those the table names at the path), the headers paying needs and the table's.
 * @example
 * return withCors(preflight(request, ['GET', 'HEAD'], table.cors), request, table.cors)
 */
export function preflight(request: Request, allowed: readonly string[], cors: Cors | undefined): Response {
  const headers = new Headers({ allow: [...allowed.filter((method) => method !== '*'), 'OPTIONS'].sort().join(', ') })
  if (cors && request.headers.has('access-control-request-method')) {
    headers.set('access-control-allow-methods', allowed.join(', '))
    headers.set('access-control-allow-headers', [...paying, ...(cors.headers ?? [])].join(', '))
    if (cors.maxAge !== undefined) headers.set('access-control-max-age', String(cors.maxAge))
  }
  return new Response(null, { status: 204, headers })
}

/**
 * A response on a priced path with the CORS headers for the request's origin, when the table allows it: the
 * origin, credentials if allowed, and the payment headers exposed (added to what the response exposes).
 * @example
 * return withCors(await payAndForward(...), request, table.cors)
 */
export function withCors(response: Response, request: Request, cors: Cors | undefined): Response {
  const origin = request.headers.get('origin')
  if (!cors || origin === null || response.status === 101) return response
  const star = cors.origins.includes('*')
  if (!star && !cors.origins.includes(origin)) return response
  const out = new Response(response.body, response)
  out.headers.set('access-control-allow-origin', star ? '*' : origin)
  if (!star) out.headers.append('vary', 'Origin')
  if (cors.credentials) out.headers.set('access-control-allow-credentials', 'true')
  const expose = out.headers.get('access-control-expose-headers')
  out.headers.set('access-control-expose-headers', expose ? `${expose}, ${exposed}` : exposed)
  return out
}
