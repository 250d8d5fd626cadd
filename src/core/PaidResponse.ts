/** @module The headers of a paid success response (core spec, "Payment-Receipt Header" and "Caching"). */
import * as Receipt from './Receipt.js'

/**
 * A copy of a successful response carrying the `Payment-Receipt`, with `Cache-Control` made private:
 * `public` and `s-maxage` are dropped, `private` is added, other directives (such as `no-store`) stay.
 * Only for success: the core spec forbids a receipt on an error response.
 * @example
 * return PaidResponse.withReceipt(await fetch(origin), outcome.receipt)
 */
export function withReceipt(response: Response, receipt: Receipt.Receipt): Response {
  if (response.status >= 400) throw new RangeError('a Payment-Receipt must not be sent on an error response')
  const headers = new Headers(response.headers)
  headers.set('payment-receipt', Receipt.serialize(receipt))
  headers.set('cache-control', privateCacheControl(headers.get('cache-control')))
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers })
}

/**
 * A Cache-Control value that keeps shared caches from storing the response.
 * @example
 * privateCacheControl('public, max-age=60') // 'private, max-age=60'
 */
export function privateCacheControl(value: string | null): string {
  const kept = (value ?? '')
    .split(',')
    .map((directive) => directive.trim())
    .filter((directive) => directive && !/^(public|private|s-maxage\s*=.*)$/i.test(directive))
  return ['private', ...kept].join(', ')
}
